"""The installed content of a box: a catalog in SQLite and a content-addressed blob store.

Atomicity (an import fully lands or the box is exactly as before):

1. Read and validate the manifest (and its signature) before touching anything.
2. Under the library lock, copy each *missing* blob into ``tmp/content/staging/``
   (same filesystem as storage), hashing while copying; a blob is renamed from
   ``<sha>.part`` to ``<sha>`` only once its hash and size match (html5 apps are
   validated there too); one ``sync`` makes the whole batch durable.
3. Move the staged blobs into ``storage/ab/cd/<sha>`` (renames) and fsync the
   directories: a blob that is in storage is always complete and verified.
4. Swap the catalog (pack row, every node, every file) in ONE SQLite transaction.

Durability is one global ``sync`` per step, not a flush per file and per directory: a
channel's import touches tens of thousands of each, and on a Pi's SD card every flush
is a journal commit. Scoped flushes (many at once) were measured too: 1-4 s slower than
the two syncs here, and not measured on an SD card (docs/benchmarks.md).

A failure before 4 leaves the catalog untouched; a refused pack (bad hash,
hostile zip, ENOSPC) also wipes what it staged, so storage is unchanged. A
kill -9 leaves verified blobs in staging or storage; the next import reuses
them and removes ``*.part`` leftovers.

Garbage collection vs imports: every mutating operation (import, remove, gc,
verify's quarantine) holds an exclusive ``flock`` on ``tmp/content/lock``. GC
therefore never runs between step 3 and step 4 of an import, which is the only
time storage holds a blob the catalog does not yet reference but an import will.
Readers (the server serving a blob) need no lock: a removed file stays readable
through an already open descriptor.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from . import media
from .errors import (
    BlobMismatch,
    ContentError,
    InvalidPack,
    LibraryBusy,
    NotEnoughSpace,
    PackNotFound,
    Problem,
    SourceUnavailable,
    UnsafePack,
    VersionConflict,
)
from .manifest import (
    DEFAULT_LIMITS,
    Limits,
    ManifestFacts,
    check_manifest,
    parse_manifest,
)
from .packio import (
    CHUNK,
    SHA_RE,
    PackSource,
    open_source,
    scan_zip,
    unsafe_member_name,
    write_pack,
)
from .signing import verify_signature

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]
SPACE_MARGIN = 64 * 1024 * 1024
# Errors that prove the pack is bad (or cannot fit): what it staged is wiped.
# Anything else (a dropped connection, Ctrl-C) keeps staged blobs for the retry.
_WIPE_ON = (InvalidPack, BlobMismatch, NotEnoughSpace, VersionConflict)

MIGRATIONS = Migrations("content")


@MIGRATIONS()
def m0001_content_catalog(db: Database) -> None:
    # The exact manifest bytes are kept so that export is byte-identical and
    # unknown fields survive; signature.json too, so re-exported packs stay signed.
    db.execute("""
        CREATE TABLE content_packs (
            id TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            title TEXT NOT NULL,
            language TEXT NOT NULL,
            publisher TEXT NOT NULL,
            license TEXT NOT NULL,
            created TEXT NOT NULL,
            manifest BLOB NOT NULL,
            manifest_sha256 TEXT NOT NULL,
            signature BLOB,
            signer TEXT,
            node_count INTEGER NOT NULL,
            total_size INTEGER NOT NULL,
            installed_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
    """)
    # One row per node; `data` is the node's full JSON so unknown fields survive.
    # (pack_id, node_id) is the key progress elsewhere in the database uses.
    db.execute("""
        CREATE TABLE content_nodes (
            pack_id TEXT NOT NULL REFERENCES content_packs(id) ON DELETE CASCADE,
            node_id TEXT NOT NULL,
            parent_id TEXT,
            kind TEXT NOT NULL,
            title TEXT NOT NULL,
            language TEXT,
            position INTEGER NOT NULL,
            sort_order INTEGER,
            data TEXT NOT NULL,
            PRIMARY KEY (pack_id, node_id)
        )
    """)
    db.execute("CREATE INDEX content_nodes_parent ON content_nodes (pack_id, parent_id)")
    db.execute("""
        CREATE TABLE content_node_files (
            pack_id TEXT NOT NULL,
            node_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            mime TEXT NOT NULL,
            role TEXT NOT NULL,
            lang TEXT,
            PRIMARY KEY (pack_id, node_id, position),
            FOREIGN KEY (pack_id, node_id) REFERENCES content_nodes(pack_id, node_id) ON DELETE CASCADE
        )
    """)
    db.execute("CREATE INDEX content_node_files_sha256 ON content_node_files (sha256)")
    # What storage holds (verified on the way in); GC deletes rows nothing references.
    db.execute("""
        CREATE TABLE content_blobs (
            sha256 TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            added_at TEXT NOT NULL
        )
    """)


# --- results -----------------------------------------------------------------------------

@dataclass
class Diff:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def diff(installed: dict | None, new: dict) -> Diff:
    """Nodes added, changed and removed between two manifests (ids are stable across versions).

    Nodes are compared a pair at a time, found by position, so manifests whose nodes are
    decoded as they are read (``parse_manifest(..., lazy_nodes=True)``) are never held whole."""
    old = (installed or {}).get("nodes", [])
    old_at = {n["id"]: i for i, n in enumerate(old)}
    seen: set[str] = set()
    out = Diff()
    for node in new["nodes"]:
        node_id = node["id"]
        if node_id in seen:
            continue
        seen.add(node_id)
        if node_id not in old_at:
            out.added.append(node_id)
        elif old[old_at[node_id]] != node:
            out.changed.append(node_id)
    out.removed = [i for i in old_at if i not in seen]
    return out


@dataclass
class ImportResult:
    pack_id: str
    version: int
    status: str  # installed | updated | downgraded | reinstalled | already installed | dry run
    previous_version: int | None = None
    diff: Diff = field(default_factory=Diff)
    blobs_total: int = 0
    blobs_copied: int = 0
    bytes_copied: int = 0
    bytes_total: int = 0
    blobs_removed: int = 0
    signer: str | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["diff"] = self.diff.as_dict()
        return d


@dataclass
class PackInfo:
    id: str
    version: int
    title: str
    language: str
    publisher: str
    license: str
    created: str
    node_count: int
    total_size: int
    signer: str | None
    installed_at: str
    updated_at: str
    missing_blobs: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class VerifyReport:
    checked: int = 0
    bytes_checked: int = 0
    damaged: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    affected_packs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.damaged or self.missing)

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


# A big pack's manifest is kept zlib-compressed in the catalogue: SQLite holds a value twice
# while it writes it (its parameter and the row), 32 MB for a 20,000-node channel's 16 MB
# manifest, the highest point of such an import's memory; compressed, about 3 MB. Small ones
# stay as they are. A zlib stream starts with 0x78, a JSON document never does.
STORED_RAW_MAX = 1 << 20


def stored_manifest(value: bytes | str) -> bytes:
    """A pack's own manifest bytes from the catalogue's ``manifest`` column."""
    if isinstance(value, str):
        return value.encode()
    if value[:1] == b"\x78":
        return zlib.decompress(value)
    return bytes(value)


def _manifest_to_store(data: bytes) -> bytes:
    return zlib.compress(data, 1) if len(data) > STORED_RAW_MAX else data


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _fsync_dir(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the library ---------------------------------------------------------------------------

class Library:
    """Installed packs. ``connect()`` must return a new ``sqlite_utils.Database`` each call."""

    def __init__(self, connect: Callable[[], Database], storage_dir: str | os.PathLike,
                 tmp_dir: str | os.PathLike, listeners: Iterable[Any] = (), *,
                 trusted_keys: Iterable[str] = (), require_signature: bool = False,
                 limits: Limits = DEFAULT_LIMITS, space_margin: int = SPACE_MARGIN,
                 lock_timeout: float = 0.0):
        self.connect = connect
        self.storage = Path(storage_dir)
        self.work = Path(tmp_dir) / "content"
        self.staging = self.work / "staging"
        self.quarantine = self.storage / "quarantine"
        self.listeners = list(listeners)
        self.trusted_keys = list(trusted_keys)
        self.require_signature = require_signature
        self.limits = limits
        self.space_margin = space_margin
        self.lock_timeout = lock_timeout

    # -- paths and low-level helpers --

    def blob_path(self, sha256: str) -> Path:
        return Path(self._blob_name(sha256))

    def _blob_name(self, sha256: str) -> str:
        # A string, not three Path joins: imports of tens of thousands of blobs call this a lot.
        return os.path.join(self.storage, sha256[:2], sha256[2:4], sha256)

    def _has_blob(self, sha256: str, size: int) -> bool:
        try:
            return os.stat(self._blob_name(sha256)).st_size == size
        except FileNotFoundError:
            return False

    @contextmanager
    def _db(self) -> Iterator[Database]:
        db = self.connect()
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Exclusive across processes and threads (one open file description per holder)."""
        self.work.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.work / "lock", os.O_RDWR | os.O_CREAT, 0o640)
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LibraryBusy("another content operation (import, remove, verify) is "
                                          "running on this box; try again when it has finished") from None
                    time.sleep(0.1)
            yield
        finally:
            os.close(fd)  # closing releases the lock, as does the death of the process

    def _clean_work(self, keep: set[str]) -> None:
        """Leftovers of an interrupted run: partial files always; staged blobs not needed now."""
        if not self.staging.is_dir():
            return
        for entry in os.scandir(self.staging):
            # "keys" names what an interrupted conversion staged (see ImportSession).
            if entry.name.endswith(".part") or (entry.name not in keep and entry.name != "keys"):
                _remove(Path(entry.path))

    def _wipe_staging(self) -> None:
        if self.staging.exists():
            shutil.rmtree(self.staging, ignore_errors=True)

    # -- queries --

    def _installed_row(self, db: Database, pack_id: str) -> dict | None:
        row = db.execute("SELECT version, manifest, manifest_sha256 FROM content_packs WHERE id = ?",
                         [pack_id]).fetchone()
        return None if row is None else {"version": row[0], "manifest": stored_manifest(row[1]),
                                         "manifest_sha256": row[2]}

    def list(self) -> list[PackInfo]:
        with self._db() as db:
            rows = db.execute("""
                SELECT p.id, p.version, p.title, p.language, p.publisher, p.license, p.created,
                       p.node_count, p.total_size, p.signer, p.installed_at, p.updated_at,
                       (SELECT COUNT(DISTINCT f.sha256) FROM content_node_files f
                        WHERE f.pack_id = p.id AND NOT EXISTS
                          (SELECT 1 FROM content_blobs b WHERE b.sha256 = f.sha256))
                FROM content_packs p ORDER BY p.id
            """).fetchall()
        return [PackInfo(*r) for r in rows]

    def get(self, pack_id: str) -> PackInfo:
        for info in self.list():
            if info.id == pack_id:
                return info
        raise PackNotFound(f"no pack {pack_id!r} is installed")

    def manifest(self, pack_id: str) -> dict:
        with self._db() as db:
            row = self._installed_row(db, pack_id)
        if row is None:
            raise PackNotFound(f"no pack {pack_id!r} is installed")
        return json.loads(row["manifest"])

    def iter_nodes(self, pack_id: str) -> Iterator[dict]:
        """Every node of a pack (full JSON, parents first), for the search indexer."""
        with self._db() as db:
            # Not the manifest: a big pack's is large, and its nodes are read one by one below.
            if db.execute("SELECT 1 FROM content_packs WHERE id = ?", [pack_id]).fetchone() is None:
                raise PackNotFound(f"no pack {pack_id!r} is installed")
            cursor = db.execute("SELECT data FROM content_nodes WHERE pack_id = ? ORDER BY position",
                                [pack_id])
            for (data,) in cursor:
                yield json.loads(data)

    def nodes_from(self, pack_id: str, position: int, kinds: Iterable[str], limit: int
                   ) -> list[tuple[int, dict]]:
        """Up to ``limit`` (position, node) of these kinds from ``position`` on, in order: a
        background step reads a big pack a slice at a time and resumes from a position."""
        kinds = list(kinds)
        with self._db() as db:
            rows = db.execute(
                f"SELECT position, data FROM content_nodes WHERE pack_id = ? AND position >= ?"
                f" AND kind IN ({', '.join('?' * len(kinds))}) ORDER BY position LIMIT ?",
                [pack_id, position, *kinds, limit]).fetchall()
        return [(pos, json.loads(data)) for pos, data in rows]

    def open_blob(self, sha256: str) -> BinaryIO:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise PackNotFound(f"{sha256!r} is not a blob id")
        try:
            return open(self.blob_path(sha256), "rb")
        except FileNotFoundError:
            raise PackNotFound(f"blob {sha256} is not on this box") from None

    def open_member(self, html5_sha256: str, member_path: str) -> BinaryIO:
        """One file of an installed html5 app, by its path inside the zip (never outside it)."""
        member_path = member_path.lstrip("/") or "index.html"
        if member_path.endswith("/"):
            member_path += "index.html"
        if unsafe_member_name(member_path):
            raise PackNotFound(f"{member_path!r} is not a valid path in an html5 app")
        blob = self.open_blob(html5_sha256)
        try:
            zf = zipfile.ZipFile(blob)
            info = zf.getinfo(member_path)
        except (zipfile.BadZipFile, KeyError):
            blob.close()
            raise PackNotFound(f"{member_path} is not in html5 app {html5_sha256[:12]}") from None
        if info.is_dir():
            blob.close()
            raise PackNotFound(f"{member_path} is a folder")
        return _Member(zf.open(info), zf, blob, info.file_size)

    # -- import --

    def plan(self, source, *, force: bool = False) -> ImportResult:
        """What importing ``source`` would do (``--dry-run``); changes nothing."""
        return self.import_pack(source, force=force, dry_run=True)

    def import_pack(self, source: str | os.PathLike | PackSource, *, force: bool = False,
                    dry_run: bool = False, progress: Progress | None = None) -> ImportResult:
        """Install or update a pack from a zip, a folder, a URL or a :class:`PackSource`."""
        src = open_source(source, self.limits)
        try:
            return self._import(src, force, dry_run, progress)
        finally:
            src.close()

    @contextmanager
    def session(self) -> Iterator[ImportSession]:
        """The library lock, held while a converter stages blobs and then imports (see :class:`ImportSession`)."""
        with self._lock():
            session = ImportSession(self)
            try:
                yield session
            except BaseException:
                session.drop_empty_dirs()
                raise
            finally:
                session.close()

    def _read_manifest(self, src: PackSource) -> tuple[bytes, dict, ManifestFacts]:
        data = src.manifest_bytes()
        # Nodes decoded as they are read: a big pack's manifest is never held as objects.
        manifest, problems = parse_manifest(data, self.limits, lazy_nodes=True)
        facts = None
        if manifest is not None:
            # Its blob table, html5 zips and node ids too, in the same pass over the nodes.
            problems, facts = check_manifest(manifest, self.limits)
        if problems or facts is None:
            raise InvalidPack(problems, f"{src.description}: invalid pack")
        return data, manifest, facts

    def _import(self, src: PackSource, force: bool, dry_run: bool, progress: Progress | None,
                session: ImportSession | None = None) -> ImportResult:
        data, manifest, facts = self._read_manifest(src)
        release_memory()  # what validating every node freed
        signer = verify_signature(data, src.signature_bytes(), self.trusted_keys, self.require_signature)
        pack_id, version = manifest["id"], manifest["version"]
        manifest_sha = hashlib.sha256(data).hexdigest()
        blobs = facts.blobs
        if dry_run:
            with self._db() as db:
                return self._decide(db, manifest, manifest_sha, blobs, force, signer, dry_run=True,
                                    ids=facts.ids)
        with nullcontext() if session is not None else self._lock():
            with self._db() as db:
                result = self._decide(db, manifest, manifest_sha, blobs, force, signer, ids=facts.ids)
                if result.status == "already installed":
                    return result
                old_blobs = {r[0] for r in db.execute(
                    "SELECT DISTINCT sha256 FROM content_node_files WHERE pack_id = ?", [pack_id])}
            missing = {sha: size for sha, size in blobs.items() if not self._has_blob(sha, size)}
            # What a session staged stays until the end: a converter may still read it
            # (a Kolibri exercise's images come out of its staged zip).
            self._clean_work(keep=set(missing) | (set(session.fresh) if session is not None else set()))
            try:
                self._preflight(src, missing)
                staged = self._stage(src, facts.served_zips, missing, result, progress,
                                     session.fresh if session is not None else {})
                self._move_into_storage(staged, session._dirs if session is not None else frozenset())
                staged = None
                # SQLite copies the manifest twice while it writes it (its parameter, its
                # row): what the staging freed is given back first.
                release_memory(collect=False)
                self._commit(manifest, data, src.signature_bytes(), signer, blobs, progress)
            except _WIPE_ON:
                self._wipe_staging()
                raise
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    self._wipe_staging()
                    free = shutil.disk_usage(self.work).free
                    raise NotEnoughSpace(sum(missing.values()) + self.space_margin, free, str(self.storage)) from None
                raise
            self._wipe_staging()
            result.blobs_removed = self._gc(old_blobs - set(blobs))
        # A big pack's manifest is large: let it go before the listeners (the search
        # index) read the pack again from the catalogue.
        data = manifest = blobs = missing = facts = None  # noqa: F841
        release_memory()
        self._notify("pack_installed", pack_id, version)
        return result

    def _decide(self, db: Database, manifest: dict, manifest_sha: str, blobs: dict, force: bool,
                signer: str | None, dry_run: bool = False, ids: list[str] | None = None) -> ImportResult:
        pack_id, version = manifest["id"], manifest["version"]
        installed = self._installed_row(db, pack_id)
        result = ImportResult(pack_id, version, "installed", signer=signer,
                              blobs_total=len(blobs), bytes_total=sum(blobs.values()))
        if installed is not None:
            result.previous_version = installed["version"]
            stored = installed["manifest"]
            old, _problems = parse_manifest(stored,
                                            Limits(max_manifest_bytes=2**62), lazy_nodes=True)
            if version < installed["version"] and not force:
                raise VersionConflict(pack_id, installed["version"], version)
            if version == installed["version"]:
                complete = all(self._has_blob(s, n) for s, n in blobs.items())
                if installed["manifest_sha256"] == manifest_sha and complete and not force:
                    result.status = "already installed"
                    return result
                if installed["manifest_sha256"] != manifest_sha and not force:
                    raise VersionConflict.same_version(pack_id, version)
                result.status = "reinstalled"
            else:
                result.status = "updated" if version > installed["version"] else "downgraded"
            result.diff = diff(old, manifest)
        elif ids is not None:
            result.diff = Diff(added=list(ids))  # a first install: every node is new
        else:
            result.diff = diff(None, manifest)
        missing = {s: n for s, n in blobs.items() if not self._has_blob(s, n)}
        result.blobs_copied, result.bytes_copied = len(missing), sum(missing.values())
        if dry_run:
            result.status = f"dry run: would be {result.status}"
        return result

    def _preflight(self, src: PackSource, missing: dict[str, int]) -> None:
        """Every missing blob is in the source with the declared size, and it fits on disk."""
        problems: list[Problem] = []
        for sha, size in missing.items():
            have = src.blob_size(sha)
            if have is None:
                problems.append(Problem(f"files/{sha}", "missing from the pack"))
            elif have is not ... and have != size:
                raise BlobMismatch(sha, f"{have} bytes in the pack but the manifest says {size}")
        if problems:
            raise InvalidPack(problems, f"{src.description}: incomplete pack")
        staged = 0
        for sha in missing:
            try:
                staged += os.stat(self.staging / sha).st_size
            except FileNotFoundError:
                pass
        needed = sum(missing.values()) - staged + self.space_margin
        free = shutil.disk_usage(self.work).free
        if needed > free:
            raise NotEnoughSpace(needed, free, str(self.storage))

    def _stage(self, src: PackSource, html5: dict[str, str], missing: dict[str, int], result: ImportResult,
               progress: Progress | None, fresh: dict[str, int]) -> list[str]:
        """``html5``: the zips served member by member, sha → the entry each must have (served_zips)."""
        self.staging.mkdir(parents=True, exist_ok=True)
        total = sum(missing.values())
        done = 0
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        staged = []
        if progress:
            progress(0, total, "copy")
        for sha in sorted(missing):
            size = missing[sha]
            final = self.staging / sha
            if fresh.get(sha) == size and final.exists():
                # Staged and hashed by this session a moment ago, under the same lock.
                if sha in html5:
                    self._check_html5(final, sha, html5[sha])
                done += size
                staged.append(sha)
                continue
            if final.exists() and final.stat().st_size == size and _file_sha256(final) == sha:
                # Left by an interrupted run. Rehashed because it was never fsynced:
                # after a power cut its name may exist with garbage in it.
                done += size
                staged.append(sha)
                continue
            part = self.staging / (sha + ".part")
            h = hashlib.sha256()
            n_read = 0
            with src.open_blob(sha, size) as stream, open(part, "wb") as out:
                while True:
                    n = stream.readinto(buf)
                    if not n:
                        break
                    n_read += n
                    if n_read > size:
                        raise BlobMismatch(sha, f"longer than the {size} bytes the manifest declares")
                    h.update(view[:n])
                    out.write(view[:n])
                    done += n
                    if progress:
                        progress(done, total, "copy")
            if n_read != size:
                raise BlobMismatch(sha, f"{n_read} bytes but the manifest says {size}")
            if h.hexdigest() != sha:
                raise BlobMismatch(sha, f"content does not match its SHA-256 (got {h.hexdigest()[:16]}…)")
            if sha in html5:
                self._check_html5(part, sha, html5[sha])
            os.replace(part, final)
            staged.append(sha)
        # One sync for the whole batch instead of an fsync per blob: with thousands of
        # small files, per-file fsync made imports 6x slower than `cp`. Nothing enters
        # storage before this returns, so storage still only ever holds durable blobs.
        os.sync()
        return staged

    def _check_html5(self, path: Path, sha: str, entry: str = "index.html") -> None:
        label = f"files/{sha} (html5 app): "
        try:
            with zipfile.ZipFile(path) as zf:
                problems = scan_zip(zf, self.limits, label, self.limits.html5_max_members,
                                    self.limits.html5_max_total)
                if entry not in zf.namelist():
                    problems.append(Problem(label.rstrip(": "), f"no {entry} in the zip"))
        except zipfile.BadZipFile as exc:
            raise InvalidPack([Problem(f"files/{sha}", f"html5 app is not a valid zip ({exc})")]) from None
        errors = [p for p in problems if p.severity == "error"]
        if errors:
            raise UnsafePack(errors, "unsafe html5 app refused")

    def _move_into_storage(self, staged: list[str], made: set[str] | frozenset = frozenset()) -> None:
        """``made``: storage folders a session made (or found) while it staged, whose own
        entries must be made durable too."""
        dirs: set[str] = set()
        staging = os.fspath(self.staging)
        for sha in staged:
            dest = self._blob_name(sha)
            parent = os.path.dirname(dest)
            try:
                os.replace(os.path.join(staging, sha), dest)
            except FileNotFoundError:
                # Its folder is new (a converter's session makes them while it stages): a
                # mkdir only then, rather than a stat of every folder first.
                os.makedirs(parent, exist_ok=True)
                dirs.add(os.path.dirname(parent))
                dirs.add(os.fspath(self.storage))
                os.replace(os.path.join(staging, sha), dest)
            else:
                if parent in made and parent not in dirs:
                    dirs.add(os.path.dirname(parent))
                    dirs.add(os.fspath(self.storage))
            dirs.add(parent)
        # Make the renames durable before the catalog can point at them: one sync
        # rather than an fsync per directory (a pack touches thousands of ab/cd/).
        if len(dirs) > 16:
            os.sync()
        else:
            for d in dirs:
                _fsync_dir(d)

    def _commit(self, manifest: dict, data: bytes, signature: bytes | None, signer: str | None,
                blobs: dict[str, int], progress: Progress | None) -> None:
        pack_id = manifest["id"]
        now = _now()
        nodes = manifest["nodes"]
        encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

        def rows() -> Iterator[tuple[list, list]]:
            # A few hundred nodes' rows at a time, made as SQLite takes them (a big pack's
            # rows, all at once, are large), each node decoded once for both tables.
            node_rows: list = []
            file_rows: list = []
            for position, node in enumerate(nodes):
                node_rows.append((pack_id, node["id"], node.get("parent"), node["kind"], node["title"],
                                  node.get("language"), position, node.get("order"), encode(node)))
                # The catalog keeps the normalised type: what the box serves is decided from it.
                file_rows.extend((pack_id, node["id"], j, f["sha256"], f["size"], media.normalise(f["mime"]),
                                  f["role"], f.get("lang")) for j, f in enumerate(node.get("files", ())))
                if len(node_rows) == 500:
                    yield node_rows, file_rows
                    node_rows, file_rows = [], []
            yield node_rows, file_rows
        with self._db() as db:
            conn: sqlite3.Connection = db.conn
            with db.atomic():
                installed_at = conn.execute("SELECT installed_at FROM content_packs WHERE id = ?",
                                            [pack_id]).fetchone()
                conn.execute("DELETE FROM content_node_files WHERE pack_id = ?", [pack_id])
                conn.execute("DELETE FROM content_nodes WHERE pack_id = ?", [pack_id])
                conn.execute("DELETE FROM content_packs WHERE id = ?", [pack_id])
                conn.execute(
                    "INSERT INTO content_packs (id, version, title, language, publisher, license, created,"
                    " manifest, manifest_sha256, signature, signer, node_count, total_size, installed_at,"
                    " updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    [pack_id, manifest["version"], manifest["title"], manifest["language"],
                     manifest["publisher"], manifest["license"], manifest["created"], _manifest_to_store(data),
                     hashlib.sha256(data).hexdigest(), signature, signer, len(nodes),
                     sum(blobs.values()), installed_at[0] if installed_at else now, now])
                for node_rows, file_rows in rows():
                    conn.executemany("INSERT INTO content_nodes VALUES (?,?,?,?,?,?,?,?,?)", node_rows)
                    conn.executemany("INSERT INTO content_node_files VALUES (?,?,?,?,?,?,?,?)", file_rows)
                conn.executemany("INSERT OR IGNORE INTO content_blobs VALUES (?,?,?)",
                                 [(s, n, now) for s, n in blobs.items()])
                if progress:
                    # Last call before COMMIT (tests kill the process here).
                    progress(len(nodes), len(nodes), "catalog")

    # -- remove, gc --

    def remove(self, pack_id: str) -> int:
        """Uninstall a pack; returns how many blobs nothing else used and were deleted."""
        with self._lock():
            with self._db() as db:
                if self._installed_row(db, pack_id) is None:
                    raise PackNotFound(f"no pack {pack_id!r} is installed")
                old = {r[0] for r in db.execute(
                    "SELECT DISTINCT sha256 FROM content_node_files WHERE pack_id = ?", [pack_id])}
                with db.atomic():
                    db.execute("DELETE FROM content_node_files WHERE pack_id = ?", [pack_id])
                    db.execute("DELETE FROM content_nodes WHERE pack_id = ?", [pack_id])
                    db.execute("DELETE FROM content_packs WHERE id = ?", [pack_id])
            removed = self._gc(old)
        self._notify("pack_removed", pack_id)
        return removed

    def gc(self, scan_storage: bool = True) -> int:
        """Delete every blob nothing refers to (and, with ``scan_storage``, stray files)."""
        with self._lock():
            with self._db() as db:
                candidates = {r[0] for r in db.execute("SELECT sha256 FROM content_blobs")}
            removed = self._gc(candidates)
            if scan_storage:
                with self._db() as db:
                    known = {r[0] for r in db.execute("SELECT sha256 FROM content_blobs")}
                for path in self._storage_files():
                    if path.name not in known:
                        _remove(path)
                        removed += 1
            self._clean_work(keep=set())
        return removed

    def _gc(self, candidates: set[str]) -> int:
        """Caller holds the lock. Rows first (one transaction), files after the commit:
        a crash in between leaves only unreferenced files, which ``gc()`` sweeps."""
        if not candidates:
            return 0
        with self._db() as db:
            conn = db.conn
            with db.atomic():
                conn.execute("CREATE TEMP TABLE IF NOT EXISTS gc_candidates (sha256 TEXT PRIMARY KEY)")
                conn.execute("DELETE FROM gc_candidates")
                conn.executemany("INSERT OR IGNORE INTO gc_candidates VALUES (?)", [(s,) for s in candidates])
                doomed = [r[0] for r in conn.execute(
                    "SELECT c.sha256 FROM gc_candidates c WHERE NOT EXISTS "
                    "(SELECT 1 FROM content_node_files f WHERE f.sha256 = c.sha256)")]
                conn.executemany("DELETE FROM content_blobs WHERE sha256 = ?", [(s,) for s in doomed])
                conn.execute("DELETE FROM gc_candidates")
        for sha in doomed:
            _remove(self.blob_path(sha))
        return len(doomed)

    def _storage_files(self) -> Iterator[Path]:
        if not self.storage.is_dir():
            return
        for a in sorted(os.scandir(self.storage), key=lambda e: e.name):
            if len(a.name) != 2 or not a.is_dir(follow_symlinks=False):
                continue
            for b in os.scandir(a.path):
                if b.is_dir(follow_symlinks=False):
                    for f in os.scandir(b.path):
                        yield Path(f.path)

    # -- export, verify --

    def export(self, pack_id: str, dest: str | os.PathLike, format: str = "zip",
               progress: Progress | None = None) -> Path:
        """Write an installed pack out again: the exact manifest bytes, blobs from storage."""
        if format not in ("zip", "folder"):
            raise ValueError("format must be 'zip' or 'folder'")
        with self._db() as db:
            row = db.execute("SELECT manifest, signature FROM content_packs WHERE id = ?", [pack_id]).fetchone()
            if row is None:
                raise PackNotFound(f"no pack {pack_id!r} is installed")
            files = db.execute("SELECT sha256, MAX(size), MIN(mime) FROM content_node_files "
                               "WHERE pack_id = ? GROUP BY sha256", [pack_id]).fetchall()
        missing = [sha for sha, size, _ in files if not self._has_blob(sha, size)]
        if missing:
            raise InvalidPack([Problem(f"files/{s}", "missing from storage") for s in missing],
                              f"pack {pack_id!r} is incomplete on this box (re-import it to repair)")

        def opener(sha: str):
            return lambda: open(self.blob_path(sha), "rb")

        return write_pack(Path(dest), stored_manifest(row[0]), None if row[1] is None else bytes(row[1]),
                          [(sha, size, mime, opener(sha)) for sha, size, mime in files],
                          folder=(format == "folder"), progress=progress)

    def verify(self, progress: Progress | None = None) -> VerifyReport:
        """Rehash every stored blob; damaged ones go to ``storage/quarantine/``."""
        report = VerifyReport()
        with self._lock():
            with self._db() as db:
                rows = db.execute("SELECT sha256, size FROM content_blobs ORDER BY sha256").fetchall()
            total = sum(r[1] for r in rows)
            done = 0
            bad: list[str] = []
            buf = bytearray(CHUNK)
            for sha, size in rows:
                path = self.blob_path(sha)
                h = hashlib.sha256()
                n_read = 0
                try:
                    with open(path, "rb") as f:
                        while n := f.readinto(buf):
                            h.update(memoryview(buf)[:n])
                            n_read += n
                            done += n
                            if progress:
                                progress(done, total, "verify")
                except FileNotFoundError:
                    report.missing.append(sha)
                    bad.append(sha)
                    continue
                report.checked += 1
                report.bytes_checked += n_read
                if n_read != size or h.hexdigest() != sha:
                    report.damaged.append(sha)
                    bad.append(sha)
                    self.quarantine.mkdir(parents=True, exist_ok=True)
                    target = self.quarantine / f"{sha}.{int(time.time())}"
                    os.replace(path, target)
                    report.quarantined.append(str(target))
            if bad:
                with self._db() as db:
                    with db.atomic():
                        db.conn.executemany("DELETE FROM content_blobs WHERE sha256 = ?", [(s,) for s in bad])
                    marks = ",".join("?" * len(bad))
                    report.affected_packs = [r[0] for r in db.execute(
                        f"SELECT DISTINCT pack_id FROM content_node_files WHERE sha256 IN ({marks}) "
                        "ORDER BY pack_id", bad)]
        return report

    # -- listeners --

    def _notify(self, event: str, *args) -> None:
        for listener in self.listeners:
            method = getattr(listener, event, None)
            if method is None:
                continue
            try:
                method(*args)
            except Exception:
                log.exception("content listener %r failed on %s%r", listener, event, args)


class ImportSession:
    """Blobs staged on their first read, then one import that takes them as they are.

    For sources whose files are not named by SHA-256 (a Kolibri channel names them
    by md5): reading every file once to learn its SHA-256 for the manifest, then
    again to copy it, read a channel twice. :meth:`stage` copies a stream into the
    staging area while computing SHA-256 and the source's own hash; the converter
    builds the manifest from what it staged; :meth:`import_pack` then installs it
    without reading those blobs again: the library lock is held from the first
    staged byte to the catalogue swap, so nothing else can have touched them.

    A run killed half-way leaves its staged blobs and a ``keys`` index (the
    source's name for each); :meth:`staged` finds them again and re-hashes them,
    as the library does for any staged blob, because they were never synced.
    A half-copied ``<key>.part`` is continued from its end (HTTP ``Range``).
    """

    KEY = re.compile(r"^[a-z0-9][a-z0-9._-]{0,80}$")

    def __init__(self, library: Library):
        self.library = library
        self.fresh: dict[str, int] = {}       # sha256 → size, staged and hashed under this lock
        self._keys: dict[str, tuple[str, int]] | None = None
        self._keys_file = None
        self._made = False
        # stage() may run in several threads at once (a converter copying on every core).
        self._book = threading.Lock()
        self._local = threading.local()
        self._dirs: set[str] = set()  # storage/ab/cd folders known to exist

    def has(self, sha256: str, size: int) -> bool:
        """Already in storage (nothing to read)."""
        return self.library._has_blob(sha256, size)

    def reserve(self, size: int) -> None:
        """Refuse, before anything is copied, a conversion that will not fit (``size`` bytes to stage)."""
        free = shutil.disk_usage(self.library.work).free
        if size + self.library.space_margin > free:
            raise NotEnoughSpace(size + self.library.space_margin, free, str(self.library.storage))

    def path(self, sha256: str) -> Path:
        """Where a blob can be read during the session: staged by it, else in storage."""
        return self.library.staging / sha256 if sha256 in self.fresh else self.library.blob_path(sha256)

    def _index(self) -> dict[str, tuple[str, int]]:
        if self._keys is None:
            self._keys = {}
            try:
                text = (self.library.staging / "keys").read_text(errors="replace")
            except FileNotFoundError:
                text = ""
            for line in text.splitlines():
                parts = line.split(" ")
                if len(parts) == 3 and SHA_RE.match(parts[1]) and parts[2].isdigit():
                    self._keys[parts[0]] = (parts[1], int(parts[2]))
        return self._keys

    def staged(self, key: str) -> tuple[str, int] | None:
        """(sha256, size) of a blob an interrupted run staged under ``key``, re-hashed; else None."""
        found = self._index().get(key)
        if found is None:
            return None
        sha, size = found
        final = self.library.staging / sha
        if self.fresh.get(sha) == size:
            return found
        try:
            if final.stat().st_size != size or _file_sha256(final) != sha:
                return None
        except FileNotFoundError:
            return None
        self.fresh[sha] = size
        return found

    def stage(self, open_at: Callable[[int], BinaryIO], key: str, *, expect: dict[str, str] | None = None,
              limit: int | None = None, on_read: Callable[[int], None] | None = None) -> tuple[str, int]:
        """Copy a stream into staging while hashing it; return its (sha256, size).

        ``open_at(offset)`` opens the source at ``offset``: the ``<key>.part`` of an
        interrupted call is re-hashed and continued, not fetched again. ``expect``
        maps other hash names (``md5``) to the digest the content must have; a
        mismatch deletes the copy and raises :class:`BlobMismatch`.
        """
        if not self.KEY.match(key):
            raise ValueError(f"unusable staging key {key!r}")
        lib = self.library
        with self._book:
            if not self._made:
                lib.staging.mkdir(parents=True, exist_ok=True)
                self._made = True
            self._index()
        # Strings, not Paths, and one buffer per thread: a channel stages tens of thousands of
        # small files, and a fresh 1 MB buffer (zeroed, then faulted in) per file cost more than
        # hashing most of them.
        staging = os.fspath(lib.staging)
        part = os.path.join(staging, f"{key}.part")
        hashers = [hashlib.sha256()]
        names = list(expect or {})
        for name in names:
            hashers.append(hashlib.new(name, usedforsecurity=False))
        limit = lib.limits.max_blob_size if limit is None else limit
        view = self._buffer()
        size = 0
        try:
            with open(part, "rb", buffering=0) as f:
                while n := f.readinto(view):
                    for h in hashers:
                        h.update(view[:n])
                    size += n
        except FileNotFoundError:
            pass
        whole = False
        try:
            with open_at(size) as stream:
                n = 0
                try:
                    while n < len(view) and (got := stream.readinto(view[n:])):
                        n += got
                except BaseException:
                    if n:  # what came before a dropped connection is kept, to continue from
                        with open(part, "ab", buffering=0) as out:
                            _write_all(out, view[:n])
                    raise
                if size + n > limit:
                    _remove(Path(part))
                    raise BlobMismatch(key, f"larger than the limit of {limit} bytes")
                if not size and n < len(view):
                    # The whole file is in the buffer (most of a channel's files are): hashed,
                    # checked, then written straight under its SHA-256, with no ``.part``
                    # and no rename; nothing is written at all if it does not match.
                    chunk = view[:n]
                    for h in hashers:
                        h.update(chunk)
                    size, whole = n, True
                    if on_read:
                        on_read(n)
                else:
                    with open(part, "ab", buffering=0) as out:
                        while n:
                            size += n
                            if size > limit:
                                out.close()
                                _remove(Path(part))
                                raise BlobMismatch(key, f"larger than the limit of {limit} bytes")
                            chunk = view[:n]
                            for h in hashers:
                                h.update(chunk)
                            _write_all(out, chunk)
                            if on_read:
                                on_read(n)
                            n = stream.readinto(view)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                _remove(Path(part))
                raise NotEnoughSpace(size + lib.space_margin, shutil.disk_usage(lib.work).free,
                                     str(lib.storage)) from None
            raise
        sha = hashers[0].hexdigest()
        for name, h in zip(names, hashers[1:], strict=True):
            if h.hexdigest() != expect[name]:
                if not whole:
                    _remove(Path(part))
                raise BlobMismatch(sha, f"{name} is {h.hexdigest()}, its name says {expect[name]}")
        final = os.path.join(staging, sha)
        if whole:
            self._write_new(final, part, view[:size], lib)
        else:
            os.replace(part, final)
        # Its folder in storage made now, on the staging thread, rather than one mkdir after
        # another when the blobs are moved in (an empty folder in storage is harmless: gc
        # leaves them too; the blob itself enters storage only after the sync).
        parent = os.path.dirname(lib._blob_name(sha))
        if parent not in self._dirs:
            os.makedirs(parent, exist_ok=True)
            self._dirs.add(parent)
        with self._book:
            self.fresh[sha] = size
            self._index()[key] = (sha, size)
            if self._keys_file is None:
                self._keys_file = open(lib.staging / "keys", "a")  # noqa: SIM115 - closed by close()
            self._keys_file.write(f"{key} {sha} {size}\n")
            self._keys_file.flush()  # a kill -9 loses no line (a power cut may: the blob is then read again)
        return sha, size

    @staticmethod
    def _write_new(final: str, part: str, data: memoryview, lib: Library) -> None:
        """Write a verified blob under its name in staging. Created exclusively: a name that
        exists already (the same blob staged by another thread a moment ago, or a leftover of
        an interrupted run, possibly incomplete) is replaced whole, through a ``.part``, so
        that it never shows a half-written file to a reader."""
        try:
            try:
                fd = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                with open(part, "wb", buffering=0) as out:
                    _write_all(out, data)
                os.replace(part, final)
                return
            try:
                with open(fd, "wb", buffering=0) as out:
                    _write_all(out, data)
            except BaseException:
                _remove(Path(final))
                raise
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                _remove(Path(part))
                raise NotEnoughSpace(len(data) + lib.space_margin, shutil.disk_usage(lib.work).free,
                                     str(lib.storage)) from None
            raise

    def drop_empty_dirs(self) -> None:
        """After a failed conversion or import: the storage folders made while staging that
        received nothing, so that storage is left as it was (a kill -9 may leave some empty
        folders, which nothing reads and the next import uses)."""
        for parent in sorted(self._dirs):
            for d in (parent, os.path.dirname(parent)):
                try:
                    os.rmdir(d)
                except OSError:  # not empty (blobs of other packs), or gone already
                    break
        self._dirs.clear()

    def _buffer(self) -> memoryview:
        view = getattr(self._local, "view", None)
        if view is None:
            view = self._local.view = memoryview(bytearray(CHUNK))
        return view

    def close(self) -> None:
        if self._keys_file is not None:
            self._keys_file.close()
            self._keys_file = None

    def import_pack(self, source: PackSource, *, force: bool = False,
                    progress: Progress | None = None) -> ImportResult:
        """Import a pack whose blobs this session staged (any others are copied as usual)."""
        src = open_source(source, self.library.limits)
        self.close()  # the import may wipe staging, "keys" included
        self._keys = None  # a big channel's index of staged files (MB): read again if needed
        try:
            return self.library._import(src, force, False, progress, session=self)
        finally:
            src.close()
            self.fresh.clear()  # staging is wiped or cleaned by the import


class _Member:
    """A member stream of an html5 zip that closes the zip and the blob with it."""

    def __init__(self, stream: BinaryIO, zf: zipfile.ZipFile, blob: BinaryIO, size: int):
        self._stream, self._zf, self._blob = stream, zf, blob
        self.size = size  # uncompressed, for Content-Length and Range

    def read(self, n: int = -1) -> bytes:
        return self._stream.read(n)

    def close(self) -> None:
        self._stream.close()
        self._zf.close()
        self._blob.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def release_memory(collect: bool = True) -> None:
    """Give the memory a finished step freed back to the system.

    Importing a big channel builds and drops tens of MB of small objects (rows, plans,
    decoded nodes); the C allocator keeps the freed pages, so the process would stay at
    its highest point through the steps that follow. ``malloc_trim`` (glibc) returns them;
    elsewhere this does nothing. ``collect=False`` skips the garbage collector's full
    pass (tens of ms with the GIL held in a serving process; steps that make no cycles
    free everything without it)."""
    import ctypes
    import gc

    if collect:
        gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _write_all(out: BinaryIO, data: memoryview) -> None:
    while data:  # an unbuffered write may take less than asked
        data = data[out.write(data):]


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass


__all__ = [
    "MIGRATIONS",
    "ContentError",
    "Diff",
    "ImportResult",
    "ImportSession",
    "Library",
    "PackInfo",
    "SourceUnavailable",
    "VerifyReport",
    "diff",
    "stored_manifest",
]
