"""Sync: operations travel between boxes, signed by the box that made them.

Everything that syncs is an operation in ``ops`` (see :mod:`.records`), named
by ``(origin device, seq)``. Two boxes compare *version vectors* (the highest
contiguous ``seq`` each holds per origin) and the sender streams, in bounded
batches, the operations the other lacks. Each batch is verified as a whole
(every operation signed by its origin's trusted Ed25519 key) and applied in
one write transaction; applying is idempotent, so a batch sent twice, a
transfer cut in the middle, or a USB bundle imported twice never duplicates
or loses anything. The design, the wire format and the bundle format are in
``docs/sync.md``.

Pure functions over a ``sqlite_utils.Database`` and paths: the HTTP transport,
pairing and the background scheduler build on them.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import secrets
import time
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils
from passerelle.content import signing
from passerelle.server import records
from passerelle.server.errors import InvalidInput, NotFound
from passerelle.server.learning import events
from passerelle.server.people import accounts
from passerelle.server.records import Op

KEY_FILE = "device.key"
KEY_PREFIX = signing.PREFIX
OP_DOMAIN = "passerelle-op/1"
BUNDLE_FORMAT = "passerelle-sync-bundle"
BUNDLE_VERSION = 1
BUNDLE_SUFFIX = ".bundle"

DEFAULT_MAX_OPS = 5000
DEFAULT_MAX_BYTES = 4 * 1024 * 1024          # uncompressed JSON lines per batch
MAX_CLOCK_AHEAD_MS = 24 * 3600 * 1000        # ops stamped further ahead are held back
SKEW_REPORT_MS = 5 * 60 * 1000               # smaller differences are not worth a word
SCRYPT = {"n": 2**15, "r": 8, "p": 1}        # 32 MiB of memory, ~0.1 s on a Pi 4
KINDS = ("put", "delete", "event")


class SyncRefused(InvalidInput):
    """A batch or bundle that this box will not apply (nothing of it was applied)."""

    code = "sync_refused"


# --- Device keys ------------------------------------------------------------------------

def _home_root(home) -> Path:
    """A :class:`~.home.Home` or a plain path to the data home."""
    return home if isinstance(home, Path) else Path(home.root) if hasattr(home, "ensure") else Path(home)


def device_key(db: sqlite_utils.Database, home):
    """This box's Ed25519 private key, made on first use in ``HOME/device.key`` (mode 0600).

    The key never enters the database, so a backup never carries it. Its public
    half is kept in ``meta.device_public_key`` for ``sync identity`` and status.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = _home_root(home) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        raise InvalidInput(f"{path} is not an Ed25519 private key; move it aside to make a new "
                           "one (other boxes must then trust the new public key)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"{path} is not an Ed25519 private key")
    public = public_key_text(key.public_key())
    row = db.execute("SELECT value FROM meta WHERE key = 'device_public_key'").fetchone()
    if row is None or row[0] != public:
        with records.write_tx(db):
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('device_public_key', ?)",
                       [public])
    return key


def public_key_text(public_key) -> str:
    # Same text form as publishers' keys (content.signing): one format for every key.
    return signing.public_key_text(public_key)


def parse_public_key(text: str) -> bytes:
    """``ed25519:<base64>`` (or bare base64) → the 32 raw bytes."""
    try:
        return signing.parse_public_key(text)
    except signing.SignatureError as exc:
        raise InvalidInput(f"not a public key: {exc}") from None


def organisation_of(db: sqlite_utils.Database) -> str | None:
    """The uuid of the organisation this box belongs to (None on a box not yet set up)."""
    org = accounts.organisation(db)
    return org["uuid"] if org else None


def bundles_encrypted(db: sqlite_utils.Database) -> bool:
    """Whether the organisation asks that USB bundles be encrypted (its record says so)."""
    return bool((accounts.organisation(db) or {}).get("encrypt_bundles"))


def set_bundles_encrypted(db: sqlite_utils.Database, on: bool) -> None:
    """Record the organisation's choice as an operation, so that every box follows it."""
    accounts.update_organisation(db, encrypt_bundles=1 if on else 0)


def identity(db: sqlite_utils.Database, home) -> dict:
    key = device_key(db, home)
    return {"device_id": records.device_id(db), "public_key": public_key_text(key.public_key()),
            "organisation": organisation_of(db)}


# --- Trust ------------------------------------------------------------------------------



def trust(db: sqlite_utils.Database, device_id: str, public_key: str, *, label: str | None = None,
          organisation: str | None = None, anchor: bool = False) -> dict:
    """Accept a device's operations from now on (by hand, or by pairing with a code).

    Trusting a device here makes it a direct trust (no longer only vouched for by a hub).
    ``anchor``: this box also takes the list of devices that device sends (the hub this
    box paired with); an existing anchor stays one.
    """
    device_id = device_id.strip()
    if not device_id or any(c in device_id for c in ". \t\n"):
        raise InvalidInput(f"not a device id: {device_id!r}")
    if device_id == records.device_id(db):
        raise InvalidInput("this is this box's own device id; a box always trusts itself")
    text = KEY_PREFIX + base64.b64encode(parse_public_key(public_key)).decode()
    organisation = organisation or organisation_of(db)
    with records.write_tx(db):
        db.execute(
            "INSERT INTO sync_devices (device_id, public_key, organisation, label, paired_at, anchor)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET"
            " public_key = excluded.public_key, organisation = excluded.organisation,"
            " label = coalesce(excluded.label, label), paired_at = excluded.paired_at,"
            " revoked_at = NULL, vouched_by = NULL, anchor = max(anchor, excluded.anchor)",
            [device_id, text, organisation, label, records.now_iso(), 1 if anchor else 0])
    return {"device_id": device_id, "public_key": text, "organisation": organisation}


def revoke(db: sqlite_utils.Database, device_id: str) -> dict:
    """Refuse the device's bundles and new operations; those already applied stay."""
    with records.write_tx(db):
        found = db.execute("SELECT revoked_at FROM sync_devices WHERE device_id = ?",
                           [device_id]).fetchone()
        if found is None:
            raise NotFound(f"device {device_id} is not in this box's trusted devices "
                           "(see `passerelle sync status`)")
        if found[0] is None:
            db.execute("UPDATE sync_devices SET revoked_at = ? WHERE device_id = ?",
                       [records.now_iso(), device_id])
    held = vector(db).get(device_id, 0)
    return {"device_id": device_id, "ops_kept": held}


def devices(db: sqlite_utils.Database) -> list[dict]:
    cursor = db.execute("SELECT * FROM sync_devices ORDER BY coalesce(label, device_id)")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def trusted_keys(db: sqlite_utils.Database) -> dict[str, bytes]:
    """device id → raw public key of every device whose ops this box accepts, itself included.

    Devices paired for another organisation than this box's are left out: a box
    receives only its own organisation's data.
    """
    org = organisation_of(db)
    keys = {}
    for device_id, key, device_org in db.execute(
            "SELECT device_id, public_key, organisation FROM sync_devices WHERE revoked_at IS NULL"):
        if org is None or device_org is None or device_org == org:
            keys[device_id] = parse_public_key(key)
    own = db.execute("SELECT value FROM meta WHERE key = 'device_public_key'").fetchone()
    if own is not None:
        keys[records.device_id(db)] = parse_public_key(own[0])
    return keys


def revoked_devices(db: sqlite_utils.Database) -> dict[str, str]:
    return dict(db.execute("SELECT device_id, revoked_at FROM sync_devices"
                           " WHERE revoked_at IS NOT NULL").fetchall())


# --- Version vectors --------------------------------------------------------------------

def vector(db: sqlite_utils.Database) -> dict[str, int]:
    """``{origin: highest seq}``, like :func:`records.version_vector` but one index probe per
    origin instead of a scan of the whole log (a "nothing new" exchange stays fast)."""
    found: dict[str, int] = {}
    row = db.execute("SELECT origin FROM ops ORDER BY origin LIMIT 1").fetchone()
    while row is not None:
        origin = row[0]
        found[origin] = db.execute("SELECT max(seq) FROM ops WHERE origin = ?", [origin]).fetchone()[0]
        row = db.execute("SELECT origin FROM ops WHERE origin > ? ORDER BY origin LIMIT 1",
                         [origin]).fetchone()
    return found


# --- Signed operations ------------------------------------------------------------------

def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


_quote = json.encoder.encode_basestring_ascii  # what json.dumps does to a string, in C


class SignedOp:
    """An op with its origin's signature, as it travels; the payload is parsed only when needed."""

    __slots__ = ("origin", "seq", "version", "kind", "entity", "subject", "signature",
                 "_payload", "_payload_text")

    def __init__(self, origin: str, seq: int, version: str, kind: str, entity: str, subject: str,
                 signature: bytes, payload: dict | None = None, payload_text: str | None = None):
        self.origin, self.seq, self.version, self.kind = origin, seq, version, kind
        self.entity, self.subject, self.signature = entity, subject, signature
        self._payload, self._payload_text = payload, payload_text

    @classmethod
    def from_op(cls, op: Op, signature: bytes) -> SignedOp:
        return cls(op.origin, op.seq, op.version, op.kind, op.entity, op.subject, signature,
                   payload=op.payload)

    @property
    def payload(self) -> dict:
        if self._payload is None:
            self._payload = json.loads(self._payload_text)
        return self._payload

    @property
    def payload_text(self) -> str:
        """The payload as canonical JSON (what ``ops.payload`` holds, what is signed)."""
        if self._payload_text is None:
            self._payload_text = canonical_json(self._payload)
        return self._payload_text

    @property
    def op(self) -> Op:
        return Op(self.origin, self.seq, self.version, self.kind, self.entity, self.subject,
                  self.payload)

    def message(self) -> bytes:
        """Same bytes as :func:`op_message`, built without parsing the payload."""
        return (f'["{OP_DOMAIN}",{_quote(self.origin)},{self.seq},{_quote(self.version)},'
                f'{_quote(self.kind)},{_quote(self.entity)},{_quote(self.subject)},'
                f'{self.payload_text}]').encode()

    def line(self) -> str:
        """One JSON line of a batch: canonical JSON of the op and its base64 signature."""
        return (f'{{"entity":{_quote(self.entity)},"kind":{_quote(self.kind)},'
                f'"origin":{_quote(self.origin)},"payload":{self.payload_text},"seq":{self.seq},'
                f'"signature":"{base64.b64encode(self.signature).decode()}",'
                f'"subject":{_quote(self.subject)},"version":{_quote(self.version)}}}')

    @classmethod
    def from_line(cls, line: str | bytes) -> SignedOp:
        try:
            d = json.loads(line)
            seq = d["seq"]
            strings = [d[k] for k in ("origin", "version", "kind", "entity", "subject")]
            if (not isinstance(seq, int) or isinstance(seq, bool) or seq < 1
                    or not all(isinstance(s, str) for s in strings)
                    or not isinstance(d["payload"], dict)):
                raise ValueError("bad field types")
            signature = base64.b64decode(d["signature"], validate=True)
        except (ValueError, KeyError, TypeError):
            raise SyncRefused("a batch holds a malformed operation line") from None
        origin, version, kind, entity, subject = strings
        return cls(origin, seq, version, kind, entity, subject, signature, payload=d["payload"])

    def __eq__(self, other) -> bool:
        return isinstance(other, SignedOp) and self.line() == other.line()

    def __repr__(self) -> str:
        return f"SignedOp({self.origin}:{self.seq} {self.kind} {self.entity} {self.subject})"


def op_message(op: Op) -> bytes:
    """The bytes an origin signs: its op as canonical JSON, domain-separated."""
    return canonical_json([OP_DOMAIN, op.origin, op.seq, op.version, op.kind, op.entity,
                           op.subject, op.payload]).encode()


def sign_pending(db: sqlite_utils.Database, home, chunk: int = 5000) -> int:
    """Sign this box's own operations that have no signature yet (lazily, before export).

    Commits every ``chunk`` signatures so memory and the write lock stay short.
    """
    key = device_key(db, home)
    origin = records.device_id(db)
    done = 0
    after = db.execute("SELECT coalesce(max(seq), 0) FROM op_signatures WHERE origin = ?",
                       [origin]).fetchone()[0]
    # Own ops are signed in seq order, so everything after the highest signed seq is unsigned;
    # the NOT EXISTS also catches a hole (e.g. a crash between two chunks is not one, but cheap).
    while True:
        rows = db.execute(
            "SELECT seq, version, kind, entity, subject, payload FROM ops o WHERE origin = ?"
            " AND seq > ? AND NOT EXISTS (SELECT 1 FROM op_signatures s"
            "   WHERE s.origin = o.origin AND s.seq = o.seq) ORDER BY seq LIMIT ?",
            [origin, after, chunk]).fetchall()
        if not rows:
            return done
        signed = [(origin, seq, key.sign(op_message(Op(origin, seq, v, k, e, s, json.loads(p)))))
                  for seq, v, k, e, s, p in rows]
        with records.write_tx(db):
            db.conn.executemany("INSERT OR IGNORE INTO op_signatures (origin, seq, signature)"
                                " VALUES (?, ?, ?)", signed)
        done += len(rows)
        after = rows[-1][0]


def _unsigned_own(db: sqlite_utils.Database) -> bool:
    origin = records.device_id(db)
    top = db.execute("SELECT max(seq) FROM ops WHERE origin = ?", [origin]).fetchone()[0]
    signed = db.execute("SELECT max(seq) FROM op_signatures WHERE origin = ?", [origin]).fetchone()[0]
    return top is not None and (signed or 0) < top


# --- Export: bounded batches of what the other side lacks -------------------------------

@dataclass
class Batch:
    ops: list[SignedOp]
    nbytes: int  # uncompressed JSON lines

    def lines(self) -> bytes:
        return "".join(s.line() + "\n" for s in self.ops).encode()


def changes_for(db: sqlite_utils.Database, their_vector: Mapping[str, int] | None,
                max_ops: int = DEFAULT_MAX_OPS, max_bytes: int = DEFAULT_MAX_BYTES, *,
                home=None, origins: Iterable[str] | None = None) -> Iterator[Batch]:
    """Yield batches of the ops the other side lacks, in (origin, seq) order.

    Per origin, every op with ``seq > their_vector[origin]``. A batch holds at
    most ``max_ops`` ops and about ``max_bytes`` of JSON lines (one op more than
    that never: a single op larger than ``max_bytes`` travels alone); the query
    pages by primary key, so memory stays bounded whatever the backlog. With
    ``home`` this box's own unsigned ops are signed first; without it, they must
    have been (``sign_pending``). An origin's stream stops at an op without a
    signature (only possible for ops older than sync): it cannot be relayed.
    """
    if home is not None:
        sign_pending(db, home)
    elif _unsigned_own(db):
        raise ValueError("this box has unsigned operations: call sign_pending(db, home) first")
    theirs = dict(their_vector or {})
    ours = vector(db)
    wanted = sorted(o for o in (ours if origins is None else set(origins) & ours.keys())
                    if ours[o] > theirs.get(o, 0))
    batch: list[SignedOp] = []
    size = 0
    for origin in wanted:
        after = theirs.get(origin, 0)
        stop = False
        while not stop:
            rows = db.execute(
                "SELECT o.seq, o.version, o.kind, o.entity, o.subject, o.payload, s.signature"
                " FROM ops o LEFT JOIN op_signatures s ON s.origin = o.origin AND s.seq = o.seq"
                " WHERE o.origin = ? AND o.seq > ? ORDER BY o.seq LIMIT ?",
                [origin, after, max_ops]).fetchall()
            if not rows:
                break
            for seq, version, kind, entity, subject, payload, signature in rows:
                if signature is None or seq != after + 1:
                    stop = True  # unsigned or a hole: nothing after it may travel
                    break
                signed = SignedOp(origin, seq, version, kind, entity, subject, bytes(signature),
                                  payload_text=payload)
                line_size = len(payload) + len(origin) + len(version) + len(subject) + 200
                if batch and (len(batch) >= max_ops or size + line_size > max_bytes):
                    yield Batch(batch, size)
                    batch, size = [], 0
                batch.append(signed)
                size += line_size
                after = seq
    if batch:
        yield Batch(batch, size)


# --- Apply: verify everything, then one transaction -------------------------------------

@dataclass
class ApplyResult:
    applied: int = 0
    duplicates: int = 0
    # origin → (first seq not applied, how many ops, why) for ops held back, not refused
    held: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    clock_ahead_ms: dict[str, int] = field(default_factory=dict)  # origin → how far ahead
    vector: dict[str, int] = field(default_factory=dict)

    @property
    def held_count(self) -> int:
        return sum(n for _, n, _ in self.held.values())

    def add(self, other: ApplyResult) -> None:
        self.applied += other.applied
        self.duplicates += other.duplicates
        for origin, (seq, n, why) in other.held.items():
            if origin in self.held:
                first, count, _ = self.held[origin]
                self.held[origin] = (min(first, seq), count + n, why)
            else:
                self.held[origin] = (seq, n, why)
        for origin, ms in other.clock_ahead_ms.items():
            self.clock_ahead_ms[origin] = max(ms, self.clock_ahead_ms.get(origin, ms))
        self.vector = other.vector


def make_verifier(raw: bytes):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(raw)


def apply_batch(db: sqlite_utils.Database, batch: Iterable[SignedOp],
                trusted_keys: Mapping[str, bytes], now_ms: int | None = None, *,
                revoked: Iterable[str] = (), max_ahead_ms: int = MAX_CLOCK_AHEAD_MS) -> ApplyResult:
    """Verify a whole batch, then apply it in one write transaction; idempotent.

    Refused outright (:class:`SyncRefused`, nothing applied): a malformed op, or
    an op whose signature is not its origin's (a relay forging another box's
    op, a changed byte). Held back, not applied, reported in ``held``, while the
    rest of the batch applies (per origin, from the first such op onwards, so
    each origin's ops stay contiguous): ops of an origin this box does not
    trust or has revoked, ops stamped more than ``max_ahead_ms`` ahead of
    ``now_ms`` (a box whose clock is wrong), and ops after a gap (a batch that
    arrived before the one preceding it). Held ops are asked for again by the
    next exchange, which starts from the returned ``vector``.
    """
    from cryptography.exceptions import InvalidSignature

    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    ops = sorted(batch, key=lambda s: (s.origin, s.seq))
    revoked = set(revoked)
    result = ApplyResult()
    verifiers: dict[str, object] = {}
    hold_from: dict[str, tuple[int, str]] = {}
    known: dict[str, int] = {}
    for op in ops:
        if op.kind not in KINDS:
            raise SyncRefused(f"operation {op.origin}:{op.seq} has an unknown kind {op.kind!r}")
        try:
            ms, _, version_device = records.parse_version(op.version)
        except ValueError:
            raise SyncRefused(f"operation {op.origin}:{op.seq} has a malformed version") from None
        if version_device != op.origin:
            raise SyncRefused(f"operation {op.origin}:{op.seq} carries another device's version")
        if op.origin not in known:
            known[op.origin] = db.execute("SELECT coalesce(max(seq), 0) FROM ops WHERE origin = ?",
                                          [op.origin]).fetchone()[0]
        if op.seq <= known[op.origin]:
            # Already here (contiguity): it will count as a duplicate and change nothing, so its
            # signature is not worth checking again; a batch resent after a cut costs little.
            continue
        key = trusted_keys.get(op.origin)
        if key is None:
            if op.origin not in hold_from:
                why = "revoked" if op.origin in revoked else "untrusted"
                hold_from[op.origin] = (op.seq, why)
            continue
        verifier = verifiers.get(op.origin)
        if verifier is None:
            verifier = verifiers[op.origin] = make_verifier(key)
        try:
            verifier.verify(op.signature, op.message())
        except InvalidSignature:
            raise SyncRefused(
                f"operation {op.origin}:{op.seq} is not signed by device {op.origin} (altered, "
                "or forged by the box that relayed it); nothing of this batch was applied") from None
        if (op.kind == "event" and op.origin not in hold_from
                and len(op.payload_text) > events.MAX_EVENT_BYTES):
            # Larger than any event a box accepts from a tablet: kept out of the log, and the
            # origin's later ops wait behind it (contiguity) until someone looks.
            hold_from[op.origin] = (op.seq, "event too large")
        ahead = ms - now_ms
        if ahead > SKEW_REPORT_MS:
            result.clock_ahead_ms[op.origin] = max(ahead, result.clock_ahead_ms.get(op.origin, 0))
        if ahead > max_ahead_ms and op.origin not in hold_from:
            hold_from[op.origin] = (op.seq, "clock ahead")
    with records.write_tx(db):
        have: dict[str, int] = {}
        newest = ""
        signatures = []
        for op in ops:
            if op.origin not in have:
                have[op.origin] = db.execute("SELECT coalesce(max(seq), 0) FROM ops WHERE origin = ?",
                                             [op.origin]).fetchone()[0]
            if op.seq <= have[op.origin]:
                result.duplicates += 1  # contiguity: everything up to `have` is already here
                continue
            held = hold_from.get(op.origin)
            if held is None and op.seq != have[op.origin] + 1:
                held = hold_from[op.origin] = (op.seq, "gap")
            if held is not None and op.seq >= held[0]:
                first, count, why = result.held.get(op.origin, (op.seq, 0, held[1]))
                result.held[op.origin] = (first, count + 1, why)
                continue
            if records.apply(db, op.op):
                result.applied += 1
                signatures.append((op.origin, op.seq, op.signature))
                newest = max(newest, op.version)
            else:
                result.duplicates += 1
            have[op.origin] = op.seq
        if signatures:
            db.conn.executemany("INSERT OR IGNORE INTO op_signatures (origin, seq, signature)"
                                " VALUES (?, ?, ?)", signatures)
        if newest:
            records.observe_version(db, newest)
    result.vector = vector(db)
    return result


# --- USB bundles ------------------------------------------------------------------------

@dataclass
class BundleInfo:
    path: Path
    ops: int
    batches: int
    bytes: int
    vector: dict[str, int]


def _scrypt_key(passphrase: str, salt: bytes, params: Mapping[str, int]) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=params["n"], r=params["r"], p=params["p"]).derive(
        passphrase.encode("utf-8"))


def default_bundle_name(device: str, when: datetime | None = None) -> str:
    when = when or datetime.now(UTC)
    return f"passerelle-{device}-{when.strftime('%Y%m%d-%H%M%S')}{BUNDLE_SUFFIX}"


def export_bundle(db: sqlite_utils.Database, home, dest_path, since_vector: Mapping[str, int] | None = None,
                  *, passphrase: str | None = None, max_ops: int = DEFAULT_MAX_OPS,
                  max_bytes: int = DEFAULT_MAX_BYTES, log: bool = True) -> BundleInfo:
    """Write the ops a peer at ``since_vector`` lacks (everything by default) into one file.

    ``dest_path`` is a folder (the file is named ``passerelle-<device>-<time>.bundle``)
    or a file path. The zip is written under a temporary name beside it, synced
    and renamed, so a stick pulled out mid-write never leaves a file that looks whole.
    """
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if passphrase is None and bundles_encrypted(db):
        raise InvalidInput("your organisation asks for encrypted bundles: give a passphrase "
                           "(--passphrase), and the same one when importing")
    key = device_key(db, home)
    device = records.device_id(db)
    dest = Path(dest_path)
    if dest.is_dir():
        dest = dest / default_bundle_name(device)
    partial = dest.with_name("." + dest.name + ".partial")
    encryption = None
    aes = None
    if passphrase:
        salt = secrets.token_bytes(16)
        encryption = {"algorithm": "AES-256-GCM", "kdf": "scrypt", **SCRYPT,
                      "salt": base64.b64encode(salt).decode()}
        aes = AESGCM(_scrypt_key(passphrase, salt, SCRYPT))
    sign_pending(db, home)
    # A read transaction: the vector we announce and the ops we write are one snapshot.
    db.execute("BEGIN")
    try:
        have = vector(db)
        entries = []
        total = 0
        with zipfile.ZipFile(partial, "w", allowZip64=True) as zf:
            for number, batch in enumerate(changes_for(db, since_vector, max_ops, max_bytes), 1):
                name = f"batches/{number:04d}.jsonl.gz" + (".enc" if aes else "")
                data = gzip.compress(batch.lines(), compresslevel=6, mtime=0)
                if aes:
                    nonce = secrets.token_bytes(12)
                    data = nonce + aes.encrypt(nonce, data, name.encode())
                zf.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data)
                first, last = batch.ops[0], batch.ops[-1]
                entries.append({"name": name, "ops": len(batch.ops), "bytes": len(data),
                                "sha256": hashlib.sha256(data).hexdigest(),
                                "first": [first.origin, first.seq], "last": [last.origin, last.seq]})
                total += len(batch.ops)
            now = datetime.now(UTC)
            manifest = {
                "format": BUNDLE_FORMAT, "format_version": BUNDLE_VERSION,
                "from_device": device, "public_key": public_key_text(key.public_key()),
                "organisation": organisation_of(db),
                "created": now.isoformat(timespec="seconds"), "created_ms": int(now.timestamp() * 1000),
                "since": dict(sorted((since_vector or {}).items())), "have": have,
                "ops": total, "encryption": encryption, "batches": entries,
            }
            manifest_bytes = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
            zf.writestr(zipfile.ZipInfo("bundle.json", (1980, 1, 1, 0, 0, 0)), manifest_bytes,
                        compress_type=zipfile.ZIP_DEFLATED)
            zf.writestr(zipfile.ZipInfo("signature", (1980, 1, 1, 0, 0, 0)),
                        base64.b64encode(key.sign(manifest_bytes)) + b"\n")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        db.execute("COMMIT")
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, dest)
    _fsync_dir(dest.parent)
    info = BundleInfo(dest, total, len(entries), dest.stat().st_size, have)
    if log:
        _log(db, "export", None, str(dest), True,
             f"exported {total} operations in {len(entries)} batches", ops=total)
    return info


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (FAT on a stick) cannot sync a folder
    finally:
        os.close(fd)


@dataclass
class ImportResult(ApplyResult):
    from_device: str = ""
    batches: int = 0
    clock_note: str = ""

    def summary(self) -> str:
        words = [f"imported {self.applied} operations from {self.from_device}"
                 f" ({self.duplicates} already here)"]
        for origin, (seq, n, why) in sorted(self.held.items()):
            words.append(f"held back {n} operations of {origin} from #{seq}: {HELD_WORDS[why]}")
        if self.clock_note:
            words.append(self.clock_note)
        return "; ".join(words)


HELD_WORDS = {
    "untrusted": "that device is not trusted here (passerelle sync trust)",
    "revoked": "that device was revoked",
    "clock ahead": "they are stamped more than a day ahead of this box's clock; they will be "
                   "accepted once this box's time reaches them, or fix that device's clock",
    "gap": "earlier operations of that device are missing here; import an older bundle first",
    "event too large": "a learning event of that device is larger than any box accepts from a "
                       "tablet; it was not taken in",
}


def days_text(ms: int) -> str:
    hours = ms / 3_600_000
    return f"{hours / 24:.1f} days" if hours >= 24 else f"{hours:.1f} hours"


def read_bundle_manifest(path) -> tuple[dict, bytes, bytes]:
    try:
        with zipfile.ZipFile(path) as zf:
            manifest_bytes = zf.read("bundle.json")
            signature = zf.read("signature")
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except (zipfile.BadZipFile, KeyError, OSError, EOFError):
        raise SyncRefused(f"{path} is not a whole sync bundle (damaged, or written only in part);"
                          " nothing was imported") from None
    try:
        manifest = json.loads(manifest_bytes)
        if manifest.get("format") != BUNDLE_FORMAT:
            raise ValueError
    except ValueError:
        raise SyncRefused(f"{path} is not a Passerelle sync bundle; nothing was imported") from None
    return manifest, manifest_bytes, signature


def import_bundle(db: sqlite_utils.Database, path, *, passphrase: str | None = None,
                  now_ms: int | None = None, log: bool = True) -> ImportResult:
    """Verify a bundle completely, then apply it batch by batch (see docs/sync.md).

    Before anything is applied: the exporting device must be trusted and not
    revoked, bundle.json must carry its signature, the organisation must be
    this box's, and every batch's SHA-256 must match bundle.json (one changed
    byte anywhere and nothing is applied). Then each batch goes through
    :func:`apply_batch`; should one be refused there (an op signature that
    does not verify, which a correctly-signed bundle only holds if its exporter
    relayed a forgery), the batches before it stay applied: they were verified
    and applying is idempotent.
    """
    from cryptography.exceptions import InvalidSignature, InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    path = Path(path)
    peer = None
    try:
        manifest, manifest_bytes, signature = read_bundle_manifest(path)
        peer = manifest.get("from_device")
        keys = trusted_keys(db)
        revoked = revoked_devices(db)
        if peer in revoked:
            raise SyncRefused(f"the bundle comes from device {peer}, which was revoked on "
                              f"{revoked[peer][:10]}; nothing was imported")
        if peer not in keys:
            raise SyncRefused(f"the bundle comes from device {peer}, which this box does not trust; "
                              f"add it with `passerelle sync trust {peer} PUBLIC_KEY` if it is "
                              "one of yours; nothing was imported")
        try:
            make_verifier(keys[peer]).verify(base64.b64decode(signature.strip(), validate=True),
                                         manifest_bytes)
        except (InvalidSignature, ValueError):
            raise SyncRefused("bundle.json is not signed by the device it names (the bundle was "
                              "altered); nothing was imported") from None
        ours = organisation_of(db)
        theirs = manifest.get("organisation")
        if ours and theirs and ours != theirs:
            raise SyncRefused(f"the bundle belongs to organisation {theirs}, this box to {ours}; "
                              "nothing was imported")
        if not manifest.get("encryption") and bundles_encrypted(db):
            raise SyncRefused("your organisation asks for encrypted bundles and this one is not "
                              "encrypted; export it again with a passphrase; nothing was imported")
        entries = manifest.get("batches") or []
        if not isinstance(entries, list) or not all(
                isinstance(e, dict) and isinstance(e.get("name"), str)
                and isinstance(e.get("sha256"), str) for e in entries):
            raise SyncRefused("bundle.json lists its batches wrongly; nothing was imported")
        aes = None
        encryption = manifest.get("encryption")
        if encryption:
            if not passphrase:
                raise SyncRefused("this bundle is encrypted: give its passphrase (--passphrase)")
            aes = AESGCM(_scrypt_key(passphrase, base64.b64decode(encryption["salt"]), encryption))
        with zipfile.ZipFile(path) as zf:
            for entry in entries:  # every hash first: a changed byte means nothing is applied
                if _member_hash(zf, entry["name"]) != entry["sha256"]:
                    raise SyncRefused(f"{entry['name']} in the bundle was altered (its SHA-256 does "
                                      "not match bundle.json); nothing was imported")
            result = ImportResult(from_device=peer)
            now_ms = int(time.time() * 1000) if now_ms is None else now_ms
            ahead = manifest.get("created_ms", 0) - now_ms
            if ahead > SKEW_REPORT_MS:
                result.clock_note = (f"the clock of {peer} was {days_text(ahead)} ahead of this box's "
                                     "when it wrote the bundle")
            result.vector = vector(db)
            for entry in entries:
                data = zf.read(entry["name"])
                if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                    raise SyncRefused(f"{entry['name']} changed while it was being imported")
                if aes:
                    try:
                        data = aes.decrypt(data[:12], data[12:], entry["name"].encode())
                    except InvalidTag:
                        raise SyncRefused("the passphrase is wrong (or the bundle was altered); "
                                          "nothing more was imported") from None
                batch = [SignedOp.from_line(line) for line in gzip.decompress(data).splitlines()
                         if line.strip()]
                result.add(apply_batch(db, batch, keys, now_ms, revoked=revoked))
                result.batches += 1
        if not result.clock_note and result.clock_ahead_ms:
            origin, ms = max(result.clock_ahead_ms.items(), key=lambda kv: kv[1])
            result.clock_note = f"operations of {origin} are stamped {days_text(ms)} ahead of this box"
        _remember_peer(db, peer, manifest.get("have") or {})
    except SyncRefused as exc:
        if log:
            _log(db, "import", peer, str(path), False, exc.message)
        raise
    if log:
        _log(db, "import", peer, str(path), not result.held, result.summary(), ops=result.applied,
             duplicates=result.duplicates, held=result.held_count)
    return result


def _member_hash(zf: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    try:
        with zf.open(name) as f:
            for chunk in iter(lambda: f.read(1024 * 1024), b""):
                digest.update(chunk)
    except KeyError:
        raise SyncRefused(f"the bundle lacks {name}; nothing was imported") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return ""  # a CRC error: the member was altered on the way
    return digest.hexdigest()


def _remember_peer(db: sqlite_utils.Database, device: str, have: Mapping[str, int]) -> None:
    if not isinstance(have, dict):
        return
    record_peer(db, device, vector=have)


def peer_vector(db: sqlite_utils.Database, device: str) -> dict[str, int] | None:
    row = db.execute("SELECT vector FROM sync_peers WHERE device_id = ?", [device]).fetchone()
    return json.loads(row[0]) if row else None


# --- The log ----------------------------------------------------------------------------

def log_attempt(db: sqlite_utils.Database, direction: str, peer: str | None, path: str | None,
                ok: bool, message: str, ops: int = 0, duplicates: int = 0, held: int = 0) -> None:
    """One line of ``sync_log`` (export, import, sync or pair), the last 500 kept."""
    _log(db, direction, peer, path, ok, message, ops, duplicates, held)


def _log(db: sqlite_utils.Database, direction: str, peer: str | None, path: str | None, ok: bool,
         message: str, ops: int = 0, duplicates: int = 0, held: int = 0) -> None:
    with records.write_tx(db):
        db.execute("INSERT INTO sync_log (at, direction, peer, path, ops, duplicates, held, ok, message)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [records.now_iso(), direction, peer, path, ops, duplicates, held, 1 if ok else 0, message])
        db.execute("DELETE FROM sync_log WHERE id <= (SELECT max(id) FROM sync_log) - 500")


def status(db: sqlite_utils.Database, home) -> dict:
    ident = identity(db, home)
    last = {}
    for direction in ("export", "import"):
        cursor = db.execute("SELECT * FROM sync_log WHERE direction = ? ORDER BY id DESC LIMIT 1",
                            [direction])
        row = cursor.fetchone()
        last[direction] = dict(zip([d[0] for d in cursor.description], row, strict=True)) if row else None
    cursor = db.execute("SELECT * FROM sync_log WHERE direction = 'sync' ORDER BY id DESC LIMIT 1")
    row = cursor.fetchone()
    last["sync"] = dict(zip([d[0] for d in cursor.description], row, strict=True)) if row else None
    cursor = db.execute("SELECT * FROM sync_log WHERE ok = 0 ORDER BY id DESC LIMIT 1")
    row = cursor.fetchone()
    error = dict(zip([d[0] for d in cursor.description], row, strict=True)) if row else None
    ours = vector(db)
    default = default_peer(db)
    return {**ident, "vector": ours, "devices": devices(db), "last": last,
            "last_error": error, "peers": peers(db, ours),
            "default_peer": default["device_id"] if default else None}


# --- Peers: where they are, what they hold, how the last sync went ----------------------

def record_peer(db: sqlite_utils.Database, device: str, *, vector: Mapping[str, int] | None = None,
                url: str | None = None, ok: bool | None = None, error: str | None = None,
                version: str | None = None) -> None:
    """Remember what a peer holds (``vector``), where it answers (``url``) and how the last
    sync with it went (``ok``: last success now; ``error``: the last error, in words)."""
    now = records.now_iso()
    with records.write_tx(db):
        db.execute("INSERT INTO sync_peers (device_id, vector, seen_at) VALUES (?, '{}', ?)"
                   " ON CONFLICT (device_id) DO NOTHING", [device, now])
        if vector is not None:
            db.execute("UPDATE sync_peers SET vector = ?, seen_at = ? WHERE device_id = ?",
                       [canonical_json(dict(vector)), now, device])
        if url is not None:
            db.execute("UPDATE sync_peers SET url = ? WHERE device_id = ?", [url, device])
        if version is not None:
            db.execute("UPDATE sync_peers SET version = ? WHERE device_id = ?", [version, device])
        if ok:
            db.execute("UPDATE sync_peers SET last_ok_at = ?, last_error = NULL, last_error_at = NULL"
                       " WHERE device_id = ?", [now, device])
        if error is not None:
            db.execute("UPDATE sync_peers SET last_error = ?, last_error_at = ? WHERE device_id = ?",
                       [error, now, device])


def peer_label(db: sqlite_utils.Database, device: str) -> str | None:
    """The name people know a device by (its label here), if it has one."""
    row = db.execute("SELECT label FROM sync_devices WHERE device_id = ?", [device]).fetchone()
    return row[0] if row else None


def set_default_peer(db: sqlite_utils.Database, device: str) -> None:
    with records.write_tx(db):
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('sync_default_peer', ?)", [device])


def default_peer(db: sqlite_utils.Database) -> dict | None:
    """The peer ``sync now`` uses without ``--peer``: the hub this box paired with."""
    row = db.execute("SELECT value FROM meta WHERE key = 'sync_default_peer'").fetchone()
    if row is None:
        return None
    found = db.execute("SELECT url FROM sync_peers WHERE device_id = ?", [row[0]]).fetchone()
    return {"device_id": row[0], "url": found[0] if found else None}


def peer_by_url(db: sqlite_utils.Database, url: str) -> str | None:
    row = db.execute("SELECT device_id FROM sync_peers WHERE url = ? ORDER BY seen_at DESC LIMIT 1",
                     [url]).fetchone()
    return row[0] if row else None


def ops_waiting(ours: Mapping[str, int], theirs: Mapping[str, int]) -> int:
    """How many operations this box holds that a peer at ``theirs`` lacks."""
    return sum(max(0, seq - theirs.get(origin, 0)) for origin, seq in ours.items())


def peers(db: sqlite_utils.Database, ours: Mapping[str, int] | None = None) -> list[dict]:
    """Every peer this box synced or exchanged bundles with, and what it is waiting for."""
    ours = vector(db) if ours is None else ours
    cursor = db.execute(
        "SELECT p.*, d.label, d.revoked_at FROM sync_peers p"
        " LEFT JOIN sync_devices d ON d.device_id = p.device_id ORDER BY coalesce(d.label, p.device_id)")
    names = [d[0] for d in cursor.description]
    found = []
    for row in cursor.fetchall():
        peer = dict(zip(names, row, strict=True))
        theirs = json.loads(peer.pop("vector"))
        peer["ops_waiting"] = ops_waiting(ours, theirs)
        found.append(peer)
    return found


# --- Trust learned from the hub ---------------------------------------------------------

def device_list(db: sqlite_utils.Database) -> list[dict]:
    """The devices of this box's organisation it knows, revoked ones included (what a hub
    tells the boxes that paired with it, so that they accept each other's operations)."""
    org = organisation_of(db)
    found = []
    for device_id, key, label, device_org, revoked_at in db.execute(
            "SELECT device_id, public_key, label, organisation, revoked_at FROM sync_devices"
            " ORDER BY device_id"):
        if org is None or device_org is None or device_org == org:
            found.append({"device_id": device_id, "public_key": key, "label": label,
                          "revoked_at": revoked_at})
    return found


def adopt_devices(db: sqlite_utils.Database, anchor: str, listed: Iterable[Mapping]) -> dict:
    """Take the device list of the hub this box paired with (``anchor``).

    Devices the hub vouched for mirror the hub's list (key, name, revocation); a
    device trusted here directly only takes the hub's revocation, never a new key.
    A device the hub revoked stays revoked here even before this box has seen it.
    """
    own = records.device_id(db)
    row = db.execute("SELECT organisation, anchor, revoked_at FROM sync_devices WHERE device_id = ?",
                     [anchor]).fetchone()
    if row is None or not row[1] or row[2] is not None:
        return {"added": 0, "revoked": 0}  # only a hub this box paired with may vouch
    organisation = row[0]
    added = revoked = 0
    with records.write_tx(db):
        for d in listed:
            device, key = d.get("device_id"), d.get("public_key")
            revoked_at, label = d.get("revoked_at"), d.get("label")
            if (not isinstance(device, str) or not isinstance(key, str) or device in (own, anchor)
                    or not device or any(c in device for c in ". \t\n")
                    or not isinstance(revoked_at, str | None) or not isinstance(label, str | None)):
                continue
            try:
                key = KEY_PREFIX + base64.b64encode(parse_public_key(key)).decode()
            except InvalidInput:
                continue
            here = db.execute("SELECT public_key, vouched_by, revoked_at FROM sync_devices"
                              " WHERE device_id = ?", [device]).fetchone()
            if here is None:
                db.execute("INSERT INTO sync_devices (device_id, public_key, organisation, label,"
                           " paired_at, revoked_at, vouched_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [device, key, organisation, label, records.now_iso(), revoked_at, anchor])
                added += revoked_at is None
                revoked += revoked_at is not None
            elif here[1] == anchor:
                if here[2] is None and revoked_at is not None:
                    revoked += 1
                db.execute("UPDATE sync_devices SET public_key = ?, label = ?, revoked_at = ?"
                           " WHERE device_id = ?", [key, label, revoked_at, device])
            elif revoked_at is not None and here[2] is None:
                db.execute("UPDATE sync_devices SET revoked_at = ? WHERE device_id = ?",
                           [revoked_at, device])
                revoked += 1
    return {"added": added, "revoked": revoked}


# --- Pairing codes ----------------------------------------------------------------------

PAIR_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read aloud, typed without doubt
PAIR_CODE_LENGTH = 10                               # 31^10 ≈ 2^49.5 codes
PAIR_MINUTES = 10
PAIR_MAX_FAILURES = 5                               # wrong tries before every open code is burnt
PAIR_SCRYPT = {"n": 2**14, "r": 8, "p": 1}          # 16 MiB, ~50 ms: makes guessing offline costly
PAIR_DOMAIN = "passerelle-pair/1"


class PairingRefused(SyncRefused):
    """A pairing attempt with a wrong, expired or used code (nothing was recorded)."""

    code = "pairing_refused"
    status = 403


class OtherOrganisation(SyncRefused):
    """A box of another organisation (a hub serves one organisation)."""

    code = "other_organisation"
    status = 409


def format_code(raw: str) -> str:
    return f"{raw[:5]}-{raw[5:]}"


def normalise_code(text: str) -> str:
    """What a person typed → the code's 10 symbols (case, spaces and dashes do not matter)."""
    cleaned = "".join(c for c in str(text).upper() if c not in " -_.\t")
    if len(cleaned) != PAIR_CODE_LENGTH or any(c not in PAIR_ALPHABET for c in cleaned):
        raise InvalidInput("a pairing code is 10 letters and digits like K7QMX-W3P2D (never 0, 1, "
                           "I, L or O); the hub's coordinator makes one with `passerelle sync code`")
    return cleaned


def pairing_key(code: str, hub_device: str) -> bytes:
    """The secret both sides derive from the code (slow on purpose), salted by the hub's id."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=(PAIR_DOMAIN + ":" + hub_device).encode(), length=32,
                  n=PAIR_SCRYPT["n"], r=PAIR_SCRYPT["r"], p=PAIR_SCRYPT["p"]).derive(
        normalise_code(code).encode())


def pair_transcript(hub_device: str, hub_key: str, box_device: str, box_key: str,
                    label: str | None, organisation: str | None, nonce: str) -> bytes:
    """What both MACs cover: both device ids and public keys, so no key can be swapped."""
    return canonical_json([PAIR_DOMAIN, hub_device, hub_key, box_device, box_key, label,
                           organisation, nonce]).encode()


def pair_mac(key: bytes, role: str, transcript: bytes, extra: str = "") -> str:
    import hmac

    return hmac.new(key, role.encode() + b"\n" + transcript + b"\n" + extra.encode(),
                    hashlib.sha256).hexdigest()


def make_pairing_code(db: sqlite_utils.Database, home, *, minutes: int = PAIR_MINUTES,
                      now_ms: int | None = None) -> dict:
    """A one-time code a box uses to pair with this hub (valid ``minutes``, stored hashed).

    The coordinator's page calls this too. Only the scrypt key derived from the code
    is kept, and only for a day; a code is burnt by its first use or by
    ``PAIR_MAX_FAILURES`` wrong attempts.
    """
    if organisation_of(db) is None:
        raise InvalidInput("this box is not set up yet: set it up first (boxes that pair with it "
                           "join its organisation)")
    device_key(db, home)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    raw = "".join(secrets.choice(PAIR_ALPHABET) for _ in range(PAIR_CODE_LENGTH))
    key = pairing_key(raw, records.device_id(db))
    expires_ms = now_ms + minutes * 60_000
    with records.write_tx(db):
        db.execute("DELETE FROM sync_pair_codes WHERE expires_ms < ?", [now_ms - 24 * 3600 * 1000])
        db.execute("INSERT INTO sync_pair_codes (key, created_at, expires_ms) VALUES (?, ?, ?)",
                   [key, records.now_iso(), expires_ms])
    expires = datetime.fromtimestamp(expires_ms / 1000, UTC)
    return {"code": format_code(raw), "expires_ms": expires_ms,
            "expires_at": expires.isoformat(timespec="seconds"), "minutes": minutes}


def accept_pairing(db: sqlite_utils.Database, home, request: Mapping, nonce: str, *,
                   hub_label: str | None = None, now_ms: int | None = None) -> dict:
    """The hub's half of pairing: check the box's MAC, trust the box, answer with ours.

    ``request`` holds the box's ``device_id``, ``public_key``, ``label``,
    ``organisation`` (None for a box not set up yet, which joins this hub's) and
    ``mac``; ``nonce`` is the single-use nonce it was made over.
    """
    box_device, box_key = request.get("device_id"), request.get("public_key")
    label, box_org, mac = request.get("label"), request.get("organisation"), request.get("mac")
    if not (isinstance(box_device, str) and isinstance(box_key, str) and isinstance(mac, str)
            and isinstance(label, str | None) and isinstance(box_org, str | None)):
        raise InvalidInput("a pairing request needs device_id, public_key, label, organisation "
                           "and mac")
    if label is not None:
        label = label.strip()[:80] or None
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    hub_device = records.device_id(db)
    hub_key = public_key_text(device_key(db, home).public_key())
    org = organisation_of(db)
    if org is None:
        raise InvalidInput("this hub is not set up yet; set it up before pairing boxes with it")
    transcript = pair_transcript(hub_device, hub_key, box_device, box_key, label, box_org, nonce)
    import hmac

    refusal: SyncRefused | None = None
    with records.write_tx(db):
        rows = db.execute("SELECT key, expires_ms, used_at, used_by FROM sync_pair_codes").fetchall()
        match = next((r for r in rows if hmac.compare_digest(
            pair_mac(bytes(r[0]), "box", transcript), mac)), None)
        if match is None:
            # A wrong code cannot be told apart from a guess at any open code: each counts
            # against all of them, so a few wrong tries burn them.
            db.execute("UPDATE sync_pair_codes SET failures = failures + 1"
                       " WHERE used_at IS NULL AND expires_ms >= ?", [now_ms])
            db.execute("DELETE FROM sync_pair_codes WHERE used_at IS NULL AND failures >= ?",
                       [PAIR_MAX_FAILURES])
            refusal = PairingRefused(
                "the pairing code is wrong (or was made on another hub); check it, or ask the "
                "hub's coordinator for a new one (`passerelle sync code`); after a few wrong tries "
                "a code no longer works")
        elif match[2] is not None:
            refusal = PairingRefused(f"this pairing code was already used (at {match[2][:16]}); "
                                     "ask the hub's coordinator for a new one")
        elif match[1] < now_ms:
            refusal = PairingRefused("this pairing code has expired (codes last "
                                     f"{PAIR_MINUTES} minutes); ask the hub's coordinator for a "
                                     "new one")
        elif box_org is not None and box_org != org:
            refusal = OtherOrganisation(
                f"this box belongs to another organisation ({box_org}) than the hub "
                f"({organisation_name(db)}, {org}); a hub serves one organisation, so this box "
                "cannot sync with it")
        elif box_device == hub_device:
            refusal = PairingRefused("a box cannot pair with itself")
        else:
            db.execute("UPDATE sync_pair_codes SET used_at = ?, used_by = ? WHERE key = ?",
                       [records.now_iso(), box_device, match[0]])
            trust(db, box_device, box_key, label=label, organisation=org)
    if refusal is not None:
        raise refusal
    reply = {"device_id": hub_device, "public_key": hub_key, "label": hub_label,
             "organisation": {"uuid": org, "name": organisation_name(db)}}
    reply["mac"] = pair_mac(bytes(match[0]), "hub", transcript, canonical_json(reply))
    return reply


def organisation_name(db: sqlite_utils.Database) -> str | None:
    org = accounts.organisation(db)
    return org["name"] if org else None


def parse_vector(text: str) -> dict[str, int]:
    try:
        value = json.loads(text)
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, int) for k, v in value.items()):
            raise ValueError
    except ValueError:
        raise InvalidInput('a vector is JSON like {"DEVICE": 120}') from None
    return value


__all__ = ["SignedOp", "Batch", "ApplyResult", "ImportResult", "BundleInfo", "SyncRefused",
           "device_key", "identity", "trust", "revoke", "trusted_keys", "revoked_devices", "vector",
           "sign_pending", "changes_for", "apply_batch", "export_bundle", "import_bundle", "status",
           "op_message", "record_peer", "default_peer", "set_default_peer", "peers", "device_list",
           "adopt_devices", "make_pairing_code", "accept_pairing", "PairingRefused",
           "OtherOrganisation", "log_attempt"]
