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
pairing and the background scheduler build on them. Device keys and trust are in
:mod:`.keys`, USB bundles in :mod:`.bundles`, peers and the log in :mod:`.peers`,
pairing codes in :mod:`.pairing`.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import sqlite_utils
from passerelle.server import records
from passerelle.server.errors import InvalidInput
from passerelle.server.learning import events
from passerelle.server.records import Op
from passerelle.server.sync.keys import device_key

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
SKIP_ENTITY = "~skip"                        # placeholder rows of skipped runs (partition.py)


class SyncRefused(InvalidInput):
    """A batch or bundle that this box will not apply (nothing of it was applied)."""

    code = "sync_refused"


# --- Version vectors --------------------------------------------------------------------

# The version vector is records.version_vector (the ``heads`` table, one read); sync calls it
# ``vector``.
vector = records.version_vector


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
                  self.payload, self._payload_text)

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
    # A placeholder (own ops of a learner who left this site, pruned) is never signed: it is
    # not an operation, and a signature would let it travel as one.
    while True:
        rows = db.execute(
            "SELECT seq, version, kind, entity, subject, payload FROM ops o WHERE origin = ?"
            " AND seq > ? AND entity <> ? AND NOT EXISTS (SELECT 1 FROM op_signatures s"
            "   WHERE s.origin = o.origin AND s.seq = o.seq) ORDER BY seq LIMIT ?",
            [origin, after, SKIP_ENTITY, chunk]).fetchall()
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
    top = db.execute("SELECT max(seq) FROM ops WHERE origin = ? AND entity <> ?",
                     [origin, SKIP_ENTITY]).fetchone()[0]
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


def make_verifier(raw: bytes) -> Verifier:
    """The checker of one device's signatures (``ValueError`` if ``raw`` is not a key)."""
    return Verifier(raw)


class Verifier:
    """Checks Ed25519 signatures with libsodium (PyNaCl), not OpenSSL (``cryptography``).

    A hub verifies every operation it receives once, and verification is the largest share
    of its CPU per op: libsodium takes 74 µs a signature where OpenSSL through ``cryptography``
    takes 172 µs on the same core, and it lets go of the GIL meanwhile, so the server's
    other threads go on. Keys are still made and ops still signed with ``cryptography``
    (:mod:`.keys`); both follow RFC 8032, libsodium also refuses keys of small order.
    ``verify`` raises ``cryptography``'s ``InvalidSignature``, which the callers catch, for a
    signature that does not match and for one that is not even 64 bytes.
    """

    __slots__ = ("_key", "_refused")

    def __init__(self, raw: bytes):
        from cryptography.exceptions import InvalidSignature
        from nacl.exceptions import CryptoError
        from nacl.signing import VerifyKey

        if not isinstance(raw, (bytes, bytearray, memoryview)) or len(raw) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        self._key = VerifyKey(bytes(raw))
        self._refused = (CryptoError, ValueError, TypeError), InvalidSignature

    def verify(self, signature: bytes, message: bytes) -> None:
        errors, invalid = self._refused
        try:
            self._key.verify(message, signature)
        except errors:
            raise invalid from None


# Signatures of a large batch are checked on several cores at once: libsodium lets go of the
# GIL while it verifies (a hub's batch of 5,000 ops is 0.4 s of verification on one core here).
VERIFY_THREADS = min(4, os.cpu_count() or 1)
VERIFY_PER_THREAD = 500  # fewer signatures than this are not worth a thread


def first_forged(pending: list[tuple[SignedOp, Verifier]]) -> SignedOp | None:
    """The first op, in ``pending``'s order, whose signature does not verify; None if all do."""
    from cryptography.exceptions import InvalidSignature

    def first_bad(part):
        for op, verifier in part:
            try:
                verifier.verify(op.signature, op.message())
            except InvalidSignature:
                return op
        return None

    threads = min(VERIFY_THREADS, len(pending) // VERIFY_PER_THREAD)
    if threads < 2:
        return first_bad(pending)
    size = -(-len(pending) // threads)
    with ThreadPoolExecutor(threads, thread_name_prefix="verify") as pool:
        for bad in pool.map(first_bad, [pending[i:i + size] for i in range(0, len(pending), size)]):
            if bad is not None:  # the parts come back in order: the first forged op of all
                return bad
    return None


def apply_batch(db: sqlite_utils.Database, batch: Iterable[SignedOp],
                trusted_keys: Mapping[str, bytes], now_ms: int | None = None, *,
                revoked: Iterable[str] = (), max_ahead_ms: int = MAX_CLOCK_AHEAD_MS,
                skips: Iterable[tuple[str, int, int]] | None = None) -> ApplyResult:
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

    ``skips`` (from a box's hub only, see :mod:`.partition`): runs ``(origin, first, last)``
    of ops that are not this box's; each is recorded when it comes next in its origin's order.
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    ops = sorted(batch, key=lambda s: (s.origin, s.seq))
    revoked = set(revoked)
    result = ApplyResult()
    verifiers: dict[str, object] = {}
    hold_from: dict[str, tuple[int, str]] = {}
    known: dict[str, int] = {}
    to_verify: list[tuple[SignedOp, Verifier]] = []
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
            known[op.origin] = records.head(db, op.origin)
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
        to_verify.append((op, verifier))
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
    forged = first_forged(to_verify)
    if forged is not None:
        raise SyncRefused(
            f"operation {forged.origin}:{forged.seq} is not signed by device {forged.origin} "
            "(altered, or forged by the box that relayed it); nothing of this batch was applied")
    runs: dict[str, list[tuple[int, int]]] = {}
    for origin, first, last in sorted(skips or ()):
        runs.setdefault(origin, []).append((first, last))
    with records.write_tx(db):
        # Each origin's row of heads locked (in sorted order, as every writer takes them) until
        # the commit: two pushes relaying one origin at once apply it one after the other, and
        # the second finds the first's ops there (contiguity holds with many writers).
        have = {origin: records.head(db, origin, lock=True)
                for origin in sorted({op.origin for op in ops})}
        start = dict(have)
        newest = ""
        signatures = []
        to_apply: list[SignedOp] = []
        for op in ops:
            if op.seq <= have[op.origin]:
                result.duplicates += 1  # contiguity: everything up to `have` is already here
                continue
            held = hold_from.get(op.origin)
            if runs and held is None:
                have[op.origin] = _take_skips(db, runs, op.origin, have[op.origin], op.seq)
            if held is None and op.seq != have[op.origin] + 1:
                held = hold_from[op.origin] = (op.seq, "gap")
            if held is not None and op.seq >= held[0]:
                first, count, why = result.held.get(op.origin, (op.seq, 0, held[1]))
                result.held[op.origin] = (first, count + 1, why)
                continue
            to_apply.append(op)
            have[op.origin] = op.seq
        new = {(o.origin, o.seq) for o in records.apply_many(db, [op.op for op in to_apply],
                                                              heads=False)}
        for op in to_apply:
            if (op.origin, op.seq) in new:
                result.applied += 1
                signatures.append((op.origin, op.seq, op.signature))
                newest = max(newest, op.version)
            else:
                result.duplicates += 1
        for origin in list(runs):  # runs after an origin's last op in the batch, or alone
            if origin not in hold_from:
                if origin not in have:
                    have[origin] = start[origin] = records.head(db, origin, lock=True)
                have[origin] = _take_skips(db, runs, origin, have[origin], None)
        if signatures:
            records.write_rows(db, "op_signatures", ("origin", "seq", "signature"), signatures,
                               "ON CONFLICT DO NOTHING")
        for origin, seq in have.items():
            if seq > start[origin]:
                db.execute("UPDATE heads SET max_seq = ? WHERE origin = ?", [seq, origin])
        if newest:
            records.observe_version(db, newest)  # last: the clock row is every writer's
    result.vector = vector(db)
    return result


def record_skip(db: sqlite_utils.Database, origin: str, first: int, last: int) -> None:
    """The placeholder row that stands for ``first..last`` of ``origin``: one row at ``last``,
    unsigned, folded into nothing (see :mod:`.partition`)."""
    db.execute("INSERT INTO ops (origin, seq, version, kind, entity, subject, payload, event_id)"
               " VALUES (?, ?, '', 'put', ?, '', ?, NULL) ON CONFLICT (origin, seq) DO NOTHING",
               [origin, last, SKIP_ENTITY, json.dumps({"first": first})])
    records.raise_head(db, origin, last)


def _take_skips(db, runs: dict[str, list[tuple[int, int]]], origin: str, have: int,
                before: int | None) -> int:
    """Record the skipped runs of ``origin`` that continue its ops at ``have`` and end before
    seq ``before``; returns the new highest seq. A run after a gap is dropped (what follows
    it is then held as a gap, and asked for again)."""
    pending = runs.get(origin, [])
    while pending and (before is None or pending[0][1] < before):
        first, last = pending.pop(0)
        if first <= have + 1 < last + 1:
            record_skip(db, origin, first, last)
            have = last
    if not pending:
        runs.pop(origin, None)
    return have


def is_vector(value) -> bool:
    """Whether ``value`` is a version vector as it travels (JSON): {device: seq ≥ 0}."""
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for k, v in value.items())


def parse_vector(text: str) -> dict[str, int]:
    try:
        value = json.loads(text)
        if not is_vector(value):
            raise ValueError
    except ValueError:
        raise InvalidInput('a vector is JSON like {"DEVICE": 120}') from None
    return value

