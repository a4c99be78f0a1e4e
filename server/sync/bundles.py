"""USB bundles: a zip of signed operations, optionally encrypted with a passphrase, written
so that a power cut or a full stick never leaves a bundle that looks whole; imported with the
same verify-then-apply as a network sync."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import secrets
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils
from passerelle.server import records
from passerelle.server.errors import InvalidInput, NotFound
from passerelle.server.sync.keys import (
    bundles_encrypted,
    device_key,
    organisation_of,
    public_key_text,
    revoked_devices,
    trusted_keys,
)
from passerelle.server.sync.ops import (
    BUNDLE_FORMAT,
    BUNDLE_SUFFIX,
    BUNDLE_VERSION,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_OPS,
    SCRYPT,
    SKEW_REPORT_MS,
    ApplyResult,
    SyncRefused,
    is_vector,
    make_verifier,
    sign_pending,
    vector,
)
from passerelle.server.sync.partition import (
    apply_received,
    changes_for_site,
    is_anchor,
    parse_lines,
    prune_departed,
)
from passerelle.server.sync.peers import log_result, remember_peer

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
                  max_bytes: int = DEFAULT_MAX_BYTES, log: bool = True,
                  site: str | None = None) -> BundleInfo:
    """Write the ops a peer at ``since_vector`` lacks (everything by default) into one file.

    ``dest_path`` is a folder (the file is named ``passerelle-<device>-<time>.bundle``)
    or a file path. The zip is written under a temporary name beside it, synced
    and renamed, so a stick pulled out mid-write never leaves a file that looks whole.
    With ``site``, only that site's and organisation-wide ops, the rest as skips
    (:mod:`.partition`): what the hub writes for a box of a site.
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
            for number, batch in enumerate(changes_for_site(db, since_vector, site, max_ops,
                                                            max_bytes), 1):
                name = f"batches/{number:04d}.jsonl.gz" + (".enc" if aes else "")
                data = gzip.compress(batch.lines(), compresslevel=6, mtime=0)
                if aes:
                    nonce = secrets.token_bytes(12)
                    data = nonce + aes.encrypt(nonce, data, name.encode())
                zf.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data)
                ends = [[op.origin, op.seq] for op in batch.ops] or [
                    [s[0], s[1]] for s in getattr(batch, "skips", [])]
                entries.append({"name": name, "ops": len(batch.ops), "bytes": len(data),
                                "sha256": hashlib.sha256(data).hexdigest(),
                                "first": ends[0], "last": ends[-1]})
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
            if site:  # the hub's word on the site of the box it wrote this for
                manifest["site"] = site
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
        log_result(db, "export", None, str(dest), True,
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
    pruned: int = 0  # learners who moved to another site, taken off this box

    def summary(self) -> str:
        words = [f"imported {self.applied} operations from {self.from_device}"
                 f" ({self.duplicates} already here)"]
        for origin, (seq, n, why) in sorted(self.held.items()):
            words.append(f"held back {n} operations of {origin} from #{seq}: {HELD_WORDS[why]}")
        if self.clock_note:
            words.append(self.clock_note)
        if self.pruned:
            words.append(f"{self.pruned} learner(s) who moved to another site were taken off this "
                         "box (the hub and their new site keep everything)")
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
                batch, skips = parse_lines(gzip.decompress(data).splitlines())
                result.add(apply_received(db, batch, skips, keys, now_ms, revoked=revoked,
                                          from_anchor=is_anchor(db, peer)))
                result.batches += 1
        if not result.clock_note and result.clock_ahead_ms:
            origin, ms = max(result.clock_ahead_ms.items(), key=lambda kv: kv[1])
            result.clock_note = f"operations of {origin} are stamped {days_text(ms)} ahead of this box"
        remember_peer(db, peer, manifest.get("have") or {})
        if is_anchor(db, peer):
            # As after a sync over the network: the hub says which site this box is in, and a
            # learner who moved to another site leaves this box once everything of theirs
            # here is in what the hub held when it wrote the bundle (its signed vector). A box
            # that only ever sees USB sticks still ends up holding its own site's learners only.
            from passerelle.server.people import sites

            if isinstance(manifest.get("site"), str) and manifest["site"]:
                sites.set_this_site(db, manifest["site"])
            result.pruned = len(prune_departed(db, have if is_vector(have := manifest.get("have")) else {}).learners)
    except SyncRefused as exc:
        if log:
            log_result(db, "import", peer, str(path), False, exc.message)
        raise
    if log:
        log_result(db, "import", peer, str(path), not result.held, result.summary(), ops=result.applied,
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
