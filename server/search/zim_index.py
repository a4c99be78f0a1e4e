"""Full-text search of ZIM files that carry no full-text index of their own.

Kiwix's big files carry a Xapian index, which the search page asks directly
(``server/packs/zim.py``). Many others (zimit captures, Wikibooks, small
exports) carry at most a title index. Their articles are indexed here into
the box's own SQLite FTS5 search (``passerelle.search_index``), so a learner
finds them by their text like a lesson.

- **One index file per ZIM** (``HOME/index/zim/<uuid>.db``): a ZIM's index
  never makes the lessons' index drift (its start-up count check), searches
  are limited to one ZIM by opening its file, and forgetting a ZIM deletes it.
- **A background job, bounded.** The server's indexing thread reads a slice
  of entries (at most ``BATCH_ENTRIES`` entries, ``BATCH_CHARS`` of text,
  about ``SLICE_SECONDS`` of work), indexes it in one transaction, then
  sleeps as long as it worked: at most half of one core, and memory bounded
  by one slice whatever the size of the ZIM. A Pi keeps serving.
- **Resumable.** Each slice's end is written to ``zim_index_jobs`` after its
  documents are committed; after a kill -9 or a power cut the next start goes
  on from there (the last slice may be indexed twice: documents are upserted
  by path, so that is harmless). A file lock per ZIM keeps two processes (a
  server and a command) from indexing the same ZIM at once.
- **Skippable.** ``content import --no-index``, the setting ``zim_index``
  (off: nothing is queued by itself), and the coordinator's content page
  (start, or stop and drop the index).
- **Hostile files.** An entry libzim cannot read is counted and passed over; a
  failure of the whole job is kept as its ``error`` and shown on the content
  page. The ZIM stays served either way.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from passerelle import search_index as si
from passerelle.content import zim as zimlib
from passerelle.content.library import release_memory

BATCH_ENTRIES = 400          # entries read per slice (articles, media, redirects)
BATCH_CHARS = 2_000_000      # text per slice: bounds the indexer's memory
SLICE_SECONDS = 0.5          # work per slice, then as long a pause
MAX_TEXT = 50_000            # characters of an article indexed (its beginning)
IDLE_SECONDS = 30.0          # how often an idle indexer looks for queued ZIMs
# Each serving thread searches through a connection of its own, and both SQLite's
# mapped window and its page cache are per connection: with a 16 MiB window and 4 MB of
# cache, 8 threads searching one 30,000-article index held 80-110 MB more; without a
# window and with 2 MB of cache, 20 MB (bench/zim_fts_memory.py). Reads through the OS
# page cache cost no measurable CPU per search; 1 MB of cache cost ~30 % more.
MMAP_BYTES = 0
CACHE_KIB = 2000

STATES = ("queued", "done", "skipped", "failed")


@dataclass
class IndexStatus:
    uuid: str
    state: str               # queued | done | skipped | failed
    next_entry: int
    entry_count: int
    indexed: int
    unreadable: int
    error: str | None
    started_at: str | None
    updated_at: str

    @property
    def percent(self) -> int:
        if self.state == "done":
            return 100
        return min(99, self.next_entry * 100 // self.entry_count) if self.entry_count else 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def exclusive(lock_path: Path):
    """True when this process holds the lock file now (no other process does): a server and
    a command never run the same background job at once."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)   # releases the lock; so does a killed process


class ZimIndexer:
    """Jobs, index files and searches of the ZIMs indexed by the box.

    ``connect()`` returns a new ``sqlite_utils.Database`` of the main database
    (the jobs table); ``folder`` holds the index files.
    """

    def __init__(self, zims: zimlib.ZimLibrary, connect: Callable, folder: str | os.PathLike,
                 *, may_write: Callable[[], bool] = lambda: True,
                 logger: logging.Logger | None = None, mmap_bytes: int = MMAP_BYTES,
                 cache_kib: int = CACHE_KIB):
        self.zims = zims
        self.mmap_bytes = mmap_bytes
        self.cache_kib = cache_kib
        self.connect = connect
        self.folder = Path(folder)
        self.may_write = may_write
        self.logger = logger or logging.getLogger("passerelle.search")
        self._indexes: dict[str, si.SearchIndex] = {}
        self._lock = threading.Lock()

    @contextmanager
    def _db(self):
        db = self.connect()
        try:
            yield db
        finally:
            db.close()

    # -- jobs --

    def status(self, uuid: str) -> IndexStatus | None:
        with self._db() as db:
            row = db.execute(f"SELECT {_JOB_COLUMNS} FROM zim_index_jobs WHERE uuid = ?",
                             [uuid]).fetchone()
        return IndexStatus(*row) if row else None

    def statuses(self) -> dict[str, IndexStatus]:
        with self._db() as db:
            rows = db.execute(f"SELECT {_JOB_COLUMNS} FROM zim_index_jobs").fetchall()
        return {row[0]: IndexStatus(*row) for row in rows}

    def _set(self, uuid: str, **values) -> None:
        values["updated_at"] = _now()
        with self._db() as db:
            with db.atomic():
                db.execute("INSERT OR IGNORE INTO zim_index_jobs (uuid, state, updated_at)"
                           " VALUES (?, 'queued', ?)", [uuid, values["updated_at"]])
                db.execute(f"UPDATE zim_index_jobs SET {', '.join(f'{k} = ?' for k in values)}"
                           " WHERE uuid = ?", [*values.values(), uuid])

    def queue(self, uuid: str) -> IndexStatus:
        """Index this ZIM (again from where it stopped; from the start after a failure)."""
        info = self.zims.get(uuid)   # ZimNotFound for an unknown one
        job = self.status(uuid)
        if job is not None and job.state in ("queued", "done"):
            return job
        restart = job is None or job.state == "failed"
        self._set(uuid, state="queued", error=None,
                  **({"next_entry": 0, "indexed": 0, "unreadable": 0} if restart else {}),
                  **({"started_at": _now()} if restart else {}),
                  entry_count=info.article_count + info.media_count)
        return self.status(uuid)

    def skip(self, uuid: str) -> None:
        """Do not index this ZIM (its index, if any, is dropped: it would be incomplete)."""
        self.zims.get(uuid)
        self._drop_file(uuid)
        self._set(uuid, state="skipped", next_entry=0, indexed=0, unreadable=0, error=None)

    def forget(self, uuid: str) -> None:
        """The ZIM was removed: its job and its index file go."""
        self._drop_file(uuid)
        with self._db() as db:
            with db.atomic():
                db.execute("DELETE FROM zim_index_jobs WHERE uuid = ?", [uuid])

    def queue_new(self) -> list[str]:
        """Queue every ZIM without a full-text index that has no job yet (the setting
        ``zim_index`` on), and forget the jobs of ZIMs that are no longer on the box."""
        known = {z.uuid: z for z in self.zims.list()}
        jobs = self.statuses()
        for uuid in set(jobs) - set(known):
            self.forget(uuid)
        queued = []
        for uuid, info in known.items():
            if uuid not in jobs and not info.has_fulltext:
                self.queue(uuid)
                queued.append(uuid)
        return queued

    def pending(self) -> list[str]:
        with self._db() as db:
            return [r[0] for r in db.execute(
                "SELECT uuid FROM zim_index_jobs WHERE state = 'queued' ORDER BY updated_at")]

    # -- index files --

    def path(self, uuid: str) -> Path:
        return self.folder / f"{uuid}.db"

    def index(self, uuid: str, create: bool = False) -> si.SearchIndex | None:
        with self._lock:
            found = self._indexes.get(uuid)
            if found is None and (create or self.path(uuid).exists()):
                found = self._indexes[uuid] = si.SearchIndex(
                    self.path(uuid), mmap_bytes=self.mmap_bytes, cache_kib=self.cache_kib)
            return found

    def _drop_file(self, uuid: str) -> None:
        with self._lock:
            found = self._indexes.pop(uuid, None)
        if found is not None:
            found.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path(uuid)}{suffix}").unlink(missing_ok=True)

    def _exclusive(self, uuid: str):
        """True when this process may index the ZIM now (no other process is)."""
        return exclusive(self.folder / f"{uuid}.lock")

    # -- indexing --

    def step(self, uuid: str, slice_seconds: float = SLICE_SECONDS) -> bool:
        """Index one slice of a queued ZIM; True when more remains to do now."""
        job = self.status(uuid)
        if job is None or job.state != "queued":
            return False
        try:
            info = self.zims.get(uuid)
        except zimlib.ZimNotFound:
            self.forget(uuid)
            return False
        if not info.available or not self.may_write():
            return False   # its disk is unplugged, or ours is full: it waits, queued
        with self._exclusive(uuid) as mine:
            if not mine:
                return False
            try:
                return self._slice(info, job, slice_seconds)
            except (zimlib.ZimNotFound, zimlib.ZimUnsupported) as exc:
                self.logger.warning("indexing ZIM %s paused: %s", uuid, exc)
                return False
            except (zimlib.InvalidZim, si.SearchError, RuntimeError, OSError) as exc:
                self.logger.error("indexing ZIM %s failed: %s", uuid, exc)
                self._set(uuid, state="failed", error=str(exc)[:500])
                return False
            finally:
                # A slice's documents, its HTML and libzim's buffers are freed now, but
                # glibc would keep their pages: the process would stay at its highest
                # slice for good. Nothing here makes reference cycles: no collection.
                release_memory(collect=False)

    def _slice(self, info: zimlib.ZimInfo, job: IndexStatus, slice_seconds: float) -> bool:
        started = time.monotonic()
        total = self.zims.entry_count(info.uuid)
        cursor, unreadable, chars = job.next_entry, 0, 0
        docs: list[si.Document] = []
        while (cursor < total and chars < BATCH_CHARS and cursor - job.next_entry < BATCH_ENTRIES
               and time.monotonic() - started < slice_seconds):
            found, cursor, bad = self.zims.articles(
                info.uuid, cursor, min(50, BATCH_ENTRIES - (cursor - job.next_entry)))
            unreadable += bad
            for article in found:
                text = si.extract_html_text(article.html)[:MAX_TEXT]
                chars += len(text)
                docs.append(si.Document(
                    id=article.path, pack_id=f"zim:{info.uuid}", kind="article",
                    language=info.lang, title=article.title, body=text, pack_title=info.title))
        index = self.index(info.uuid, create=True)
        if docs:
            index.index(docs)
        done = cursor >= total
        if done:
            index.optimize()
        # After the documents are committed: a crash in between indexes this slice again.
        self._set(info.uuid, next_entry=cursor, entry_count=total, indexed=index.count(),
                  unreadable=job.unreadable + unreadable, state="done" if done else "queued")
        if done:
            self.logger.info("search: indexed %s articles of ZIM %s", index.count(), info.uuid)
        return not done

    def run(self, uuid: str, pause_ratio: float = 0.0, stop: threading.Event | None = None) -> None:
        """Index a queued ZIM to the end here (the command line, benchmarks, tests)."""
        while not (stop and stop.is_set()):
            started = time.monotonic()
            if not self.step(uuid):
                return
            if pause_ratio and stop is not None:
                stop.wait((time.monotonic() - started) * pause_ratio)

    # -- searching --

    def search(self, uuid: str, query: str, start: int = 0, count: int = 10
               ) -> tuple[int, list[zimlib.ZimHit]] | None:
        """(estimated total, hits with snippets) from this ZIM's FTS5 index, or None when it
        has none (yet). A ZIM being indexed answers from what is indexed so far."""
        index = self.index(uuid)
        if index is None:
            return None
        result = index.search(query, limit=count, offset=start)
        return result.total, [zimlib.ZimHit(uuid, h.id, h.title, h.snippet) for h in result.hits]

    def close(self) -> None:
        with self._lock:
            indexes, self._indexes = list(self._indexes.values()), {}
        for index in indexes:
            index.close()


_JOB_COLUMNS = ("uuid, state, next_entry, entry_count, indexed, unreadable, error, started_at,"
                " updated_at")


class BackgroundIndexer:
    """The serving box's indexing thread: one slice, a pause as long, the next…

    It runs any job queue with ``queue_new()``, ``pending()``, ``run(key, pause_ratio,
    stop)``, ``close()`` and a ``logger``: the ZIMs' here, the packs' document text in
    ``pack_text``."""

    def __init__(self, indexer, *, auto_queue: bool = True,
                 idle_seconds: float = IDLE_SECONDS, pause_ratio: float = 1.0,
                 name: str = "zim-indexer"):
        self.indexer = indexer
        self.name = name
        self.auto_queue = auto_queue
        self.idle_seconds = idle_seconds
        self.pause_ratio = pause_ratio
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.auto_queue:
                    self.indexer.queue_new()
                for uuid in self.indexer.pending():
                    self.indexer.run(uuid, self.pause_ratio, self._stop)
            except Exception:  # noqa: BLE001 - the thread must outlive one bad file
                self.indexer.logger.exception("background indexing (%s)", self.name)
            self._wake.wait(self.idle_seconds)
            self._wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.indexer.close()


def start_background(app) -> BackgroundIndexer:
    """Start the serving box's indexing thread (``serve``); the content page wakes it."""
    from passerelle.server.packs.zim import indexer

    background = BackgroundIndexer(indexer(app), auto_queue=app.config["SETTINGS"]["zim_index"])
    app.extensions["passerelle.zim_indexing"] = background
    background.start()
    return background


def wake(app) -> None:
    """A ZIM was queued: index it now rather than at the next idle check."""
    background = app.extensions.get("passerelle.zim_indexing")
    if background is not None:
        background.wake()
