"""Kiwix ZIM files (Wikipedia, Wikibooks, zimit captures…), read in place with python-libzim.

A ZIM is never unpacked: a Wikipedia is up to 100 GB, and libzim reads any
entry from the file directly (its directory is sorted, its clusters are
compressed one by one). The catalogue keeps one row per ZIM, keyed by the
ZIM's own UUID (a new release of a ZIM has a new UUID), with the path it is
served from, its size, its mtime and its checksum.

Identity without reading 100 GB: every ZIM carries, in its last 16 bytes, the
MD5 of everything before them, and a UUID in its header. Both are read when
the file is opened, so a file is recognised again (a USB disk that comes back
under another mount point) by UUID + embedded checksum + size, at the cost of
two small reads. Verifying the checksum over the whole file (``Archive.check()``)
is what libzim offers against bit rot; it reads every byte, so it runs at
import for files up to ``FULL_CHECK_MAX`` (seconds), on request for bigger
ones, and for free during ``copy`` (the copy is hashed while written).

A ZIM whose disk is not mounted is "unavailable": it stays in the catalogue,
hidden from learners, until the disk returns. Nothing here ever deletes a file
it did not copy into the data home itself.

python-libzim publishes wheels for x86_64 and aarch64 (64-bit Raspberry Pi OS),
not for 32-bit ARM. Without it, this module still imports: ``AVAILABLE`` is
False, ``UNAVAILABLE_REASON`` says why in one line, and every operation that
needs to open a ZIM raises :class:`ZimUnsupported`.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from .errors import ContentError, NotEnoughSpace, PackNotFound
from .library import MIGRATIONS

try:
    from libzim.reader import Archive
    from libzim.search import Query, Searcher
    from libzim.suggestion import SuggestionSearcher
except ImportError:  # pragma: no cover - exercised on platforms without a wheel
    Archive = Query = Searcher = SuggestionSearcher = None
    AVAILABLE = False
    UNAVAILABLE_REASON = (
        "ZIM files (Wikipedia, Kiwix libraries) need python-libzim, which has no build for "
        f"this platform ({platform.machine() or 'unknown'}, Python {platform.python_version()}); "
        "use a 64-bit system to serve them")
else:
    AVAILABLE = True
    UNAVAILABLE_REASON = ""

Progress = Callable[[int, int, str], None]
CHUNK = 1024 * 1024
# Files up to this size are checked byte for byte at import (a few seconds on a Pi's disk).
FULL_CHECK_MAX = 2 * 1024**3
SPACE_MARGIN = 64 * 1024 * 1024
MAX_ILLUSTRATION = 256 * 1024
MAX_REDIRECTS = 16
# HTML read of one article for indexing or a snippet: a 5 MB page must not make the
# indexer's memory jump (its first megabyte holds far more text than is indexed of it).
MAX_ARTICLE_BYTES = 1024 * 1024
SPLIT_SUFFIX = re.compile(r"\.zim[a-z]{2}$", re.IGNORECASE)
# ZIM metadata names languages with ISO 639-3 codes; the kiosk speaks ISO 639-1.
ISO639_3 = {
    "ara": "ar", "bel": "be", "ben": "bn", "bre": "br", "cat": "ca", "ces": "cs", "dan": "da",
    "deu": "de", "ell": "el", "eng": "en", "epo": "eo", "spa": "es", "fas": "fa", "fin": "fi",
    "fra": "fr", "ful": "ff", "hau": "ha", "heb": "he", "hin": "hi", "hun": "hu", "ibo": "ig",
    "ind": "id", "ita": "it", "jpn": "ja", "kin": "rw", "kor": "ko", "lin": "ln", "lit": "lt",
    "mlg": "mg", "nld": "nl", "nor": "no", "pol": "pl", "por": "pt", "ron": "ro", "rus": "ru",
    "slk": "sk", "slv": "sl", "som": "so", "sqi": "sq", "srp": "sr", "swa": "sw", "swe": "sv",
    "tam": "ta", "tha": "th", "tur": "tr", "ukr": "uk", "urd": "ur", "vie": "vi", "wol": "wo",
    "yor": "yo", "zho": "zh", "zul": "zu", "amh": "am", "tir": "ti", "kab": "kab", "ber": "ber",
}


@MIGRATIONS()
def m0002_zim_catalog(db: Database) -> None:
    # One row per ZIM release (its UUID). `path` is where it is served from: a
    # file on another disk, or under storage/zim/ when it was copied (`copied`).
    db.execute("""
        CREATE TABLE content_zims (
            uuid TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            title TEXT NOT NULL,
            description TEXT NOT NULL,
            language TEXT NOT NULL,
            creator TEXT NOT NULL,
            publisher TEXT NOT NULL,
            date TEXT NOT NULL,
            tags TEXT NOT NULL,
            path TEXT NOT NULL,
            parts INTEGER NOT NULL,
            copied INTEGER NOT NULL DEFAULT 0,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            checksum TEXT NOT NULL,
            verified_at TEXT,
            article_count INTEGER NOT NULL,
            media_count INTEGER NOT NULL,
            main_path TEXT,
            has_fulltext INTEGER NOT NULL,
            has_title_index INTEGER NOT NULL,
            illustration BLOB,
            hidden INTEGER NOT NULL DEFAULT 0,
            added_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
    """)


def kiosk_language(language: str) -> str:
    """A ZIM's ``Language`` ("fra", "eng,fra") as the kiosk names it: "fr"."""
    first = (language or "").split(",")[0].strip().lower()
    return ISO639_3.get(first, first)


# --- errors -------------------------------------------------------------------------------

class ZimUnsupported(ContentError):
    """python-libzim is not installed on this platform."""

    def __init__(self) -> None:
        super().__init__(UNAVAILABLE_REASON or "ZIM support is not available")


class InvalidZim(ContentError):
    """Not a ZIM, or a damaged one (truncated, wrong magic number, checksum mismatch…)."""


class ZimNotFound(PackNotFound):
    """No ZIM with that UUID, no such entry in it, or its disk is not mounted."""


# --- results ------------------------------------------------------------------------------

@dataclass
class ZimInfo:
    uuid: str
    name: str
    title: str
    description: str
    language: str            # as the ZIM says it (ISO 639-3, maybe "eng,fra")
    creator: str
    publisher: str
    date: str
    tags: str
    path: str
    parts: int
    copied: bool
    size: int
    mtime_ns: int
    checksum: str
    verified_at: str | None
    article_count: int
    media_count: int
    main_path: str | None
    has_fulltext: bool
    has_title_index: bool
    has_illustration: bool
    hidden: bool
    added_at: str
    updated_at: str
    available: bool = True

    @property
    def lang(self) -> str:
        """The first language as an ISO 639-1 code when there is one (for ``lang=`` and sorting)."""
        return kiosk_language(self.language)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["lang"] = self.lang
        return d


@dataclass
class AddResult:
    uuid: str
    title: str
    status: str   # added | already added | moved | replaced | copied
    path: str
    size: int
    verified: bool
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ZimItem:
    path: str
    title: str
    mimetype: str
    size: int
    content: memoryview


@dataclass
class ZimHit:
    uuid: str
    path: str
    title: str
    snippet: str = ""        # escaped HTML with <mark>, made by the search edge


@dataclass
class ZimArticle:
    """An HTML article read for indexing: its entry number, path, title and (capped) HTML."""

    entry: int
    path: str
    title: str
    html: str


@dataclass
class ZimResults:
    uuid: str
    total: int
    mode: str     # fulltext | title
    hits: list[ZimHit]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _require() -> None:
    if not AVAILABLE:
        raise ZimUnsupported()


# --- files on disk ------------------------------------------------------------------------

def zim_parts(path: str | os.PathLike) -> tuple[Path, list[Path]]:
    """The path libzim opens, and the files it reads: one ``x.zim``, or ``x.zimaa``, ``x.zimab``…

    libzim opens a split ZIM from its name without the two letters (``x.zim``);
    a user may name either.
    """
    path = Path(path).absolute()
    if SPLIT_SUFFIX.search(path.name):
        base = path.with_name(path.name[:-2])
    elif path.is_file():
        return path, [path]
    else:
        base = path
    parts = []
    for first in "abcdefghijklmnopqrstuvwxyz":
        for second in "abcdefghijklmnopqrstuvwxyz":
            part = base.with_name(base.name + first + second)
            if not part.is_file():
                return base, parts
            parts.append(part)
    return base, parts


def _stat(parts: list[Path]) -> tuple[int, int] | None:
    """(total size, newest mtime_ns), or None when a part is missing."""
    size = mtime = 0
    try:
        for part in parts:
            st = os.stat(part)
            size += st.st_size
            mtime = max(mtime, st.st_mtime_ns)
    except OSError:
        return None
    return size, mtime


def _text(archive, key: str) -> str:
    try:
        return bytes(archive.get_metadata(key)).decode("utf-8", errors="replace").strip()
    except (KeyError, RuntimeError):
        return ""


# libzim's cache of decompressed clusters (one per process; libzim's default 16 MiB).
# Its count undercounts what the clusters hold: 8 threads reading 3,000 random articles
# of a 100,000-article ZIM kept +60 MB with 16 MiB, +21 MB with 4 MiB. Random reads
# rarely hit it anyway, and a walk from end to end (indexing) never comes back to a
# cluster; two clusters (~2 MiB each) keep the entries of one page together.
CLUSTER_CACHE_BYTES = 4 * 1024 * 1024


def limit_cluster_cache(max_bytes: int = CLUSTER_CACHE_BYTES) -> None:
    """Bound libzim's cache of decompressed clusters (the whole process)."""
    if AVAILABLE:
        from libzim.reader import set_cluster_cache_max_size

        set_cluster_cache_max_size(int(max_bytes))


def open_archive(path: str | os.PathLike) -> Any:
    """Open a ZIM with libzim; any damage libzim reports becomes one :class:`InvalidZim` line."""
    _require()
    base, parts = zim_parts(path)
    if not parts:
        raise ZimNotFound(f"{path}: no such file")
    try:
        return Archive(str(base))
    except RuntimeError as exc:
        # libzim's own words: "zim-file is too small to contain a header", "Invalid magic
        # number", "Zim file(s) is of bad size or corrupted" (truncated), "Invalid version".
        raise InvalidZim(f"{path}: not a valid ZIM file ({exc})") from None


def inspect(path: str | os.PathLike, *, full_check: bool | None = None) -> dict:
    """Open, check and describe a ZIM without changing anything.

    ``full_check``: verify the embedded MD5 over every byte (True), never
    (False), or when the file is at most ``FULL_CHECK_MAX`` bytes (None).
    """
    archive = open_archive(path)
    base, parts = zim_parts(path)
    stat = _stat(parts)
    if stat is None:
        raise ZimNotFound(f"{path}: a part of the file disappeared")
    size, mtime = stat
    if full_check is None:
        full_check = size <= FULL_CHECK_MAX
    verified = False
    if full_check:
        if not archive.has_checksum:
            raise InvalidZim(f"{path}: damaged ZIM file (it carries no checksum to verify)")
        if not archive.check():
            raise InvalidZim(f"{path}: damaged ZIM file (its checksum does not match its content)")
        verified = True
    main_path = None
    try:
        if archive.has_main_entry:
            main_path = _resolve(archive, archive.main_entry).path
        # Reading the main page proves the directory and a cluster are readable.
        if main_path is not None:
            bytes(archive.get_entry_by_path(main_path).get_item().content[:64])
    except (RuntimeError, KeyError) as exc:
        raise InvalidZim(f"{path}: damaged ZIM file (its main page cannot be read: {exc})") from None
    illustration = None
    try:
        if archive.has_illustration(48):
            data = bytes(archive.get_illustration_item(48).content)
            illustration = data if len(data) <= MAX_ILLUSTRATION else None
    except (RuntimeError, KeyError):
        illustration = None
    title = _text(archive, "Title") or base.stem
    return {
        "uuid": str(archive.uuid), "name": _text(archive, "Name") or base.stem, "title": title,
        "description": _text(archive, "Description"), "language": _text(archive, "Language"),
        "creator": _text(archive, "Creator"), "publisher": _text(archive, "Publisher"),
        "date": _text(archive, "Date"), "tags": _text(archive, "Tags"),
        "path": str(base), "parts": len(parts), "size": size, "mtime_ns": mtime,
        "checksum": archive.checksum if archive.has_checksum else "",
        "verified": verified, "article_count": _counter(archive, "article_count"),
        "media_count": _counter(archive, "media_count"), "main_path": main_path,
        "has_fulltext": archive.has_fulltext_index, "has_title_index": archive.has_title_index,
        "illustration": illustration,
    }


def _counter(archive, name: str) -> int:
    """An article or media count; 0 when the cluster holding it is damaged (libzim reads the
    counter from the file's metadata: a damaged one must not make the whole file unreadable)."""
    try:
        return getattr(archive, name)
    except RuntimeError:
        return 0


def _resolve(archive, entry):
    """Follow redirects to the entry that holds content (bounded: a loop is damage)."""
    for _ in range(MAX_REDIRECTS):
        if not entry.is_redirect:
            return entry
        entry = entry.get_redirect_entry()
    raise ZimNotFound(f"too many redirects from {entry.path}")


# --- the catalogue ------------------------------------------------------------------------

_COLUMNS = ("uuid", "name", "title", "description", "language", "creator", "publisher", "date",
            "tags", "path", "parts", "copied", "size", "mtime_ns", "checksum", "verified_at",
            "article_count", "media_count", "main_path", "has_fulltext", "has_title_index",
            "illustration IS NOT NULL", "hidden", "added_at", "updated_at")


class ZimLibrary:
    """The box's ZIM files. ``connect()`` returns a new ``sqlite_utils.Database`` each call.

    Opened archives are kept (libzim is thread-safe for reading and caches its
    directory), and reopened when the file's size or mtime changes.
    """

    def __init__(self, connect: Callable[[], Database], storage_dir: str | os.PathLike,
                 space_margin: int = SPACE_MARGIN, cache_seconds: float = 2.0):
        self.connect = connect
        self.folder = Path(storage_dir) / "zim"
        self.space_margin = space_margin
        self._open: dict[str, tuple[Any, tuple[int, int]]] = {}
        self._lock = threading.Lock()
        # The catalogue's rows, read once for every request of the next two seconds: a
        # Wikipedia page pulls 30 entries at once, and a database connection per entry was
        # most of the time of serving one. Changes made here clear it; a command run in
        # another process shows within ``cache_seconds``.
        self._rows: tuple[float, dict[str, tuple]] | None = None
        self._cache_seconds = cache_seconds

    @contextmanager
    def _db(self) -> Iterator[Database]:
        db = self.connect()
        try:
            yield db
        finally:
            db.close()

    # -- queries --

    def _catalogue(self) -> dict[str, tuple]:
        now = time.monotonic()
        cached = self._rows
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        with self._db() as db:
            rows = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM content_zims"
                              " ORDER BY title COLLATE NOCASE, uuid").fetchall()
        found = {row[0]: tuple(row) for row in rows}
        self._rows = (now, found)
        return found

    def _changed(self) -> None:
        self._rows = None

    def list(self, *, include_hidden: bool = True) -> list[ZimInfo]:
        found = [self._info(r) for r in self._catalogue().values()]
        return [z for z in found if include_hidden or not z.hidden]

    def get(self, uuid: str) -> ZimInfo:
        row = self._catalogue().get(uuid)
        if row is None:
            raise ZimNotFound(f"no ZIM {uuid!r} on this box")
        return self._info(row)

    def _info(self, row) -> ZimInfo:
        info = ZimInfo(*row)
        for flag in ("copied", "has_fulltext", "has_title_index", "has_illustration", "hidden"):
            setattr(info, flag, bool(getattr(info, flag)))
        stat = _stat(zim_parts(info.path)[1] or [Path(info.path)])
        # Same size: the same file (its UUID is checked again when it is opened).
        info.available = AVAILABLE and stat is not None and stat[0] == info.size
        return info

    def illustration(self, uuid: str) -> bytes | None:
        with self._db() as db:
            row = db.execute("SELECT illustration FROM content_zims WHERE uuid = ?", [uuid]).fetchone()
        return bytes(row[0]) if row and row[0] is not None else None

    # -- add, copy, hide, remove --

    def add(self, path: str | os.PathLike, *, copy: bool = False, full_check: bool | None = None,
            progress: Progress | None = None) -> AddResult:
        """Register a ZIM to serve in place, or ``copy`` it into the data home first.

        Everything is checked before the catalogue changes: a damaged file
        raises :class:`InvalidZim` and leaves the box as it was.
        """
        facts = inspect(path, full_check=False if copy else full_check)
        try:
            existing = self.get(facts["uuid"])
        except ZimNotFound:
            existing = None
        if existing is not None and existing.available and (
                existing.copied or (existing.path == facts["path"] and not copy)):
            # The same release, already served (a copy in the data home wins over a disk).
            return AddResult(existing.uuid, existing.title, "already added", existing.path,
                             existing.size, facts["verified"])
        warnings = []
        if copy:
            facts = self._copy(facts, progress)
        elif not facts["verified"]:
            warnings.append(f"checksum not verified ({facts['size'] // 1024**2} MiB): "
                            "import again with --verify to read the whole file")
        status = "copied" if copy else ("moved" if existing is not None else "added")
        now = _now()
        with self._db() as db:
            conn = db.conn
            with db.atomic():
                replaced = conn.execute("SELECT uuid FROM content_zims WHERE path = ? AND uuid != ?",
                                        [facts["path"], facts["uuid"]]).fetchall()
                if replaced:
                    # The file at this path is now another release: the old one is gone.
                    status = "replaced"
                    conn.executemany("DELETE FROM content_zims WHERE uuid = ?", replaced)
                row = {k: facts[k] for k in (
                    "uuid", "name", "title", "description", "language", "creator", "publisher",
                    "date", "tags", "path", "parts", "size", "mtime_ns", "checksum",
                    "article_count", "media_count", "main_path", "illustration")}
                row.update(copied=int(copy), verified_at=now if facts["verified"] else None,
                           has_fulltext=int(facts["has_fulltext"]),
                           has_title_index=int(facts["has_title_index"]),
                           hidden=int(existing.hidden) if existing else 0,
                           added_at=existing.added_at if existing else now, updated_at=now)
                conn.execute(f"INSERT OR REPLACE INTO content_zims ({', '.join(row)}) VALUES "
                             f"({', '.join('?' * len(row))})", list(row.values()))
        with self._lock:
            self._open.pop(facts["uuid"], None)
        self._changed()
        return AddResult(facts["uuid"], facts["title"], status, facts["path"], facts["size"],
                         facts["verified"], warnings)

    def _copy(self, facts: dict, progress: Progress | None) -> dict:
        """Copy (and join) the file into storage/zim/, hashing it on the way: the MD5 a ZIM
        carries in its last 16 bytes is checked for free. Atomic: ``.part``, fsync, rename."""
        self.folder.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", facts["name"])[:80] or "zim"
        dest = self.folder / f"{safe}_{facts['uuid'][:8]}.zim"
        free = shutil.disk_usage(self.folder).free
        if facts["size"] + self.space_margin > free:
            raise NotEnoughSpace(facts["size"] + self.space_margin, free, str(self.folder))
        parts = zim_parts(facts["path"])[1]
        part = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        md5 = hashlib.md5(usedforsecurity=False)
        done, total, tail = 0, facts["size"], b""
        try:
            with open(part, "wb") as out:
                for src in parts:
                    with open(src, "rb") as f:
                        while chunk := f.read(CHUNK):
                            out.write(chunk)
                            # The checksum covers all but the last 16 bytes (the checksum itself).
                            data = tail + chunk
                            md5.update(data[:-16])
                            tail = data[-16:]
                            done += len(chunk)
                            if progress:
                                progress(done, total, "copy")
                out.flush()
                os.fsync(out.fileno())
            if done != total:
                raise InvalidZim(f"{facts['path']}: the file changed while it was copied")
            if facts["checksum"] and md5.hexdigest() != facts["checksum"]:
                raise InvalidZim(f"{facts['path']}: damaged ZIM file (its checksum does not "
                                 "match its content)")
            os.replace(part, dest)
            fd = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        copied = inspect(dest, full_check=False)
        if copied["uuid"] != facts["uuid"]:  # pragma: no cover - the bytes were just hashed
            dest.unlink(missing_ok=True)
            raise InvalidZim(f"{dest}: the copy is not the same ZIM")
        copied["verified"] = bool(facts["checksum"])
        return copied

    def set_hidden(self, uuid: str, hidden: bool) -> None:
        with self._db() as db:
            cursor = db.execute("UPDATE content_zims SET hidden = ?, updated_at = ? WHERE uuid = ?",
                                [int(hidden), _now(), uuid])
            db.conn.commit()
        self._changed()
        if cursor.rowcount == 0:
            raise ZimNotFound(f"no ZIM {uuid!r} on this box")

    def remove(self, uuid: str) -> bool:
        """Forget a ZIM; delete its file only if it is our own copy. True if a file was deleted."""
        info = self.get(uuid)
        with self._db() as db:
            with db.atomic():
                db.execute("DELETE FROM content_zims WHERE uuid = ?", [uuid])
        self._changed()
        with self._lock:
            self._open.pop(uuid, None)
        path = Path(info.path)
        if info.copied and path.parent == self.folder:
            path.unlink(missing_ok=True)
            return True
        return False

    # -- reading --

    def archive(self, uuid: str, info: ZimInfo | None = None):
        """The opened archive of an available ZIM (ZimNotFound when its disk is gone)."""
        _require()
        with self._lock:
            cached = self._open.get(uuid)
        info = info or self.get(uuid)
        stat = _stat(zim_parts(info.path)[1] or [Path(info.path)])
        if stat is None or stat[0] != info.size:
            raise ZimNotFound(f"{info.title}: its disk is not connected")
        if cached and cached[1] == stat:
            return cached[0]
        try:
            archive = Archive(info.path)
        except RuntimeError:
            raise ZimNotFound(f"{info.title}: the file cannot be opened") from None
        if str(archive.uuid) != uuid:
            raise ZimNotFound(f"{info.title}: another file is now at {info.path}")
        with self._lock:
            self._open[uuid] = (archive, stat)
        return archive

    def main_path(self, uuid: str) -> str:
        info = self.get(uuid)
        if not info.main_path:
            raise ZimNotFound(f"{info.title} has no main page")
        return info.main_path

    def read(self, uuid: str, path: str) -> ZimItem | str:
        """The entry at ``path``: a :class:`ZimItem`, or the path it redirects to (a str)."""
        archive = self.archive(uuid)
        try:
            entry = archive.get_entry_by_path(path)
        except KeyError:
            raise ZimNotFound(f"{path} is not in this ZIM") from None
        if entry.is_redirect:
            return _resolve(archive, entry).path
        try:
            item = entry.get_item()
            return ZimItem(item.path, item.title, item.mimetype, item.size, item.content)
        except RuntimeError as exc:
            raise InvalidZim(f"{path}: cannot be read from the ZIM ({exc})") from None

    def entry_count(self, uuid: str) -> int:
        """How many entries :meth:`articles` walks through (articles, media, redirects)."""
        return self.archive(uuid).entry_count

    def articles(self, uuid: str, start: int, count: int,
                 max_bytes: int = MAX_ARTICLE_BYTES) -> tuple[list[ZimArticle], int, int]:
        """The HTML articles among entries ``start`` to ``start + count`` (by entry number):
        (articles, the entry to read next, entries that could not be read).

        Redirects, media and, in old-layout files, entries outside the ``A/``
        namespace are passed over. A damaged cluster makes its entries
        unreadable, not the walk: they are counted and skipped, so a hostile
        file can neither stop nor crash the indexing of the rest. Entries are
        read by number through libzim's ``_get_entry_by_id``, the only way its
        Python API walks a whole archive.
        """
        archive = self.archive(uuid)
        old_layout = not archive.has_new_namespace_scheme
        stop = min(archive.entry_count, start + count)
        found, unreadable = [], 0
        for number in range(start, stop):
            try:
                entry = archive._get_entry_by_id(number)
                if entry.is_redirect or (old_layout and not entry.path.startswith("A/")):
                    continue
                item = entry.get_item()
                if not item.mimetype.startswith("text/html"):
                    continue
                html = bytes(item.content[:max_bytes]).decode("utf-8", errors="replace")
                found.append(ZimArticle(number, entry.path, entry.title or item.title, html))
            except (RuntimeError, KeyError, IndexError, UnicodeError):
                unreadable += 1
        return found, stop, unreadable

    def article_html(self, uuid: str, path: str, max_bytes: int = 64 * 1024) -> str:
        """The beginning of an article's HTML (for a search snippet); "" when it cannot be read."""
        try:
            found = self.read(uuid, path)
        except (ZimNotFound, InvalidZim):
            return ""
        if isinstance(found, str) or not found.mimetype.startswith("text/html"):
            return ""
        return bytes(found.content[:max_bytes]).decode("utf-8", errors="replace")

    def search(self, uuid: str, query: str, start: int = 0, count: int = 10) -> ZimResults:
        """Full text through the ZIM's own Xapian index, else titles through its title index."""
        info = self.get(uuid)
        archive = self.archive(uuid, info)
        if archive.has_fulltext_index:
            found = Searcher(archive).search(Query().set_query(query))
            total = found.getEstimatedMatches()
            paths = list(found.getResults(start, count))
            mode = "fulltext"
            if start == 0 and archive.has_title_index:
                # Xapian ranks "Ray Charles in Person" above "Ray Charles" itself: the article
                # whose title is the query leads, as a reader expects of an encyclopedia.
                exact = self._exact_title(archive, query)
                if exact is not None:
                    paths = [exact] + [p for p in paths if p != exact][:count - 1]
        elif archive.has_title_index:
            found = SuggestionSearcher(archive).suggest(query)
            total = found.getEstimatedMatches()
            paths = list(found.getResults(start, count))
            mode = "title"
        else:
            return ZimResults(uuid, 0, "none", [])
        return ZimResults(uuid, total, mode, self._hits(archive, uuid, paths))

    def suggest(self, uuid: str, prefix: str, count: int = 8) -> list[ZimHit]:
        """Titles starting like ``prefix`` (the ZIM's title index), redirects resolved once each."""
        archive = self.archive(uuid)
        if not archive.has_title_index:
            return []
        found = SuggestionSearcher(archive).suggest(prefix)
        return self._hits(archive, uuid, list(found.getResults(0, count)))

    @staticmethod
    def _exact_title(archive, query: str) -> str | None:
        wanted = " ".join(query.casefold().split())
        for path in SuggestionSearcher(archive).suggest(query).getResults(0, 5):
            try:
                entry = _resolve(archive, archive.get_entry_by_path(path))
            except (KeyError, ZimNotFound):
                continue
            if " ".join(entry.title.casefold().split()) == wanted:
                return entry.path
        return None

    def _hits(self, archive, uuid: str, paths: list[str]) -> list[ZimHit]:
        hits, seen = [], set()
        for path in paths:
            try:
                entry = _resolve(archive, archive.get_entry_by_path(path))
            except (KeyError, ZimNotFound):
                continue
            if entry.path in seen:
                continue  # "Charles, Ray" and "Ray Charles" are one article
            seen.add(entry.path)
            hits.append(ZimHit(uuid, entry.path, entry.title))
        return hits


__all__ = [
    "AVAILABLE",
    "FULL_CHECK_MAX",
    "UNAVAILABLE_REASON",
    "AddResult",
    "InvalidZim",
    "ZimArticle",
    "ZimHit",
    "ZimInfo",
    "ZimItem",
    "ZimLibrary",
    "ZimNotFound",
    "ZimResults",
    "ZimUnsupported",
    "inspect",
    "kiosk_language",
    "limit_cluster_cache",
    "open_archive",
    "zim_parts",
]
