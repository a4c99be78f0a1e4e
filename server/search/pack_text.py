"""The text inside a pack's documents joins the search index after the import, in the background.

Reading the text of every PDF, EPUB and html5 page of a big channel (and parsing every
exercise's prompts and hints) was about half the time of its import, for something a
learner needs only once the channel is there. So an import indexes each node's title,
description, tags, topic path and small texts (articles, subtitles) at once: the
channel is browsable and found by its titles as soon as its catalogue is committed.
The text of the nodes of ``DEFERRED_KINDS`` follows here:

- **A job per pack, bounded.** The server's indexing thread (the same
  :class:`~passerelle.server.search.zim_index.BackgroundIndexer` as for ZIM files) reads a
  slice of nodes (at most ``BATCH_NODES``, ``BATCH_CHARS`` of text, about
  ``SLICE_SECONDS`` of work), writes their documents again with their text in one
  transaction, then sleeps as long as it worked: at most half of one core, memory bounded
  by one slice.
- **Resumable.** The position after a slice is written to ``pack_text_jobs`` once its
  documents are committed; after a kill -9 or a power cut the next start goes on from
  there (a slice may be written twice: documents are upserted by id). A lock file keeps
  a server and a command from running the same job at once.
- **Small packs at once.** A pack with at most ``INLINE_NODES`` such nodes gets its text
  within the import, as before: there is nothing to wait for.
- ``passerelle index text`` runs the queued jobs to the end now; the coordinator's content
  page shows how far each has gone.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from passerelle import content as lib
from passerelle import search_index as si
from passerelle.server.search.zim_index import IndexStatus, exclusive

DEFERRED_KINDS = ("document", "html5", "exercise")
BATCH_NODES = 200          # nodes read per slice
BATCH_CHARS = 2_000_000    # text per slice: bounds the memory of a slice
SLICE_SECONDS = 0.5        # work per slice, then as long a pause (in the server)
INLINE_NODES = 50          # a pack with at most this many such nodes is indexed within its import

_JOB_COLUMNS = ("pack_id, state, next_entry, entry_count, indexed, unreadable, error, started_at,"
                " updated_at")


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


class PackTextIndexer:
    """The jobs that add the text of packs' documents to the search index.

    ``service`` is the :class:`~passerelle.server.search.service.SearchService` (its index
    and its library); the jobs are rows of the main database, reached through the
    library's ``connect``; ``folder`` holds the lock files.
    """

    def __init__(self, service, folder: str | os.PathLike, *,
                 may_write: Callable[[], bool] = lambda: True,
                 logger: logging.Logger | None = None):
        self.service = service
        self.library: lib.Library = service.library
        self.folder = Path(folder)
        self.may_write = may_write
        self.logger = logger or logging.getLogger("passerelle.search")
        # Called when a job is queued (the serving box's thread wakes up for it).
        self.on_queue: Callable[[], None] | None = None

    @contextmanager
    def _db(self):
        db = self.library.connect()
        try:
            yield db
        finally:
            db.close()

    # -- jobs --

    def status(self, pack_id: str) -> IndexStatus | None:
        with self._db() as db:
            row = db.execute(f"SELECT {_JOB_COLUMNS} FROM pack_text_jobs WHERE pack_id = ?",
                             [pack_id]).fetchone()
        return IndexStatus(*row) if row else None

    def statuses(self) -> dict[str, IndexStatus]:
        with self._db() as db:
            rows = db.execute(f"SELECT {_JOB_COLUMNS} FROM pack_text_jobs").fetchall()
        return {row[0]: IndexStatus(*row) for row in rows}

    def _version(self, pack_id: str) -> int | None:
        with self._db() as db:
            row = db.execute("SELECT version FROM pack_text_jobs WHERE pack_id = ?",
                             [pack_id]).fetchone()
        return row[0] if row else None

    def queue(self, pack_id: str, version: int) -> IndexStatus:
        """Index the text of this pack's documents from its first node (it was just
        installed: its documents were written again without their text)."""
        info = self.library.get(pack_id)   # PackNotFound for an unknown one
        now = _now()
        with self._db() as db:
            with db.atomic():
                db.execute("DELETE FROM pack_text_jobs WHERE pack_id = ?", [pack_id])
                db.execute("INSERT INTO pack_text_jobs (pack_id, version, state, next_entry,"
                           " entry_count, indexed, unreadable, started_at, updated_at)"
                           " VALUES (?, ?, 'queued', 0, ?, 0, 0, ?, ?)",
                           [pack_id, version, info.node_count, now, now])
        if self.on_queue is not None:
            self.on_queue()
        return self.status(pack_id)

    def forget(self, pack_id: str) -> None:
        with self._db() as db:
            with db.atomic():
                db.execute("DELETE FROM pack_text_jobs WHERE pack_id = ?", [pack_id])

    def queue_new(self) -> list[str]:
        """Forget the jobs of packs that are no longer installed, and start again those of
        packs replaced since (the background thread calls this before each round; packs
        are queued by their import)."""
        installed = {p.id: p.version for p in self.library.list()}
        with self._db() as db:
            jobs = dict(db.execute("SELECT pack_id, version FROM pack_text_jobs").fetchall())
        queued = []
        for pack_id, version in jobs.items():
            if pack_id not in installed:
                self.forget(pack_id)
            elif installed[pack_id] != version:
                self.queue(pack_id, installed[pack_id])
                queued.append(pack_id)
        return queued

    def pending(self) -> list[str]:
        with self._db() as db:
            return [r[0] for r in db.execute(
                "SELECT pack_id FROM pack_text_jobs WHERE state = 'queued' ORDER BY updated_at")]

    def small(self, pack_id: str) -> bool:
        """Few enough nodes with text to read that the import may as well do it."""
        return len(self.library.nodes_from(pack_id, 0, DEFERRED_KINDS, INLINE_NODES + 1)) <= INLINE_NODES

    # -- indexing --

    def step(self, pack_id: str, slice_seconds: float = SLICE_SECONDS) -> bool:
        """Index one slice of a queued pack's text; True when more remains to do now."""
        job = self.status(pack_id)
        if job is None or job.state != "queued":
            return False
        try:
            info = self.library.get(pack_id)
        except lib.PackNotFound:
            self.forget(pack_id)
            return False
        if info.version != self._version(pack_id) or not self.may_write():
            return False   # being replaced (its import queues it again), or the disk is full
        with exclusive(self.folder / f"{pack_id}.lock") as mine:
            if not mine:
                return False
            try:
                return self._slice(pack_id, info.version, job, slice_seconds)
            except (si.SearchError, OSError, RuntimeError) as exc:
                self.logger.error("indexing the text of %s failed: %s", pack_id, exc)
                self._update(pack_id, info.version, state="failed", error=str(exc)[:500])
                return False

    def _slice(self, pack_id: str, version: int, job: IndexStatus, slice_seconds: float) -> bool:
        from passerelle.server.search.service import node_text

        started = time.monotonic()
        cursor, chars, done = job.next_entry, 0, False
        bodies: dict[str, str] = {}
        while len(bodies) < BATCH_NODES and chars < BATCH_CHARS and time.monotonic() - started < slice_seconds:
            want = min(20, BATCH_NODES - len(bodies))
            found = self.library.nodes_from(pack_id, cursor, DEFERRED_KINDS, want)
            for position, node in found:
                text = node_text(self.library, node)
                cursor = position + 1
                if text:
                    bodies[f"{pack_id}/{node['id']}"] = text
                    chars += len(text)
                if chars >= BATCH_CHARS or time.monotonic() - started >= slice_seconds:
                    break
            if len(found) < want and (not found or cursor > found[-1][0]):
                done = True
                break
        index = self.service.index
        # Each document again with its text, as indexed at the import (topic path included);
        # one the index no longer has (its pack was replaced meanwhile) is not brought back.
        stored = index.stored(bodies)
        written = index.index([dataclasses.replace(stored[i], body=b) for i, b in bodies.items()
                               if i in stored])
        if written:
            self.service.clear_cache()
        # After the documents are committed: a crash in between indexes this slice again.
        self._update(pack_id, version, next_entry=cursor, indexed=job.indexed + written,
                     state="done" if done else "queued")
        if done:
            self.logger.info("search: indexed the text of %s documents of %s", job.indexed + written,
                             pack_id)
        return not done

    def _update(self, pack_id: str, version: int, **values) -> None:
        values["updated_at"] = _now()
        with self._db() as db:
            with db.atomic():
                # Not a job queued again meanwhile for a new version of the pack.
                db.execute(f"UPDATE pack_text_jobs SET {', '.join(f'{k} = ?' for k in values)}"
                           " WHERE pack_id = ? AND version = ?", [*values.values(), pack_id, version])

    def run(self, pack_id: str, pause_ratio: float = 0.0, stop: threading.Event | None = None,
            slice_seconds: float = SLICE_SECONDS) -> None:
        """Index a queued pack's text to the end here (an import, the command line, tests)."""
        while not (stop and stop.is_set()):
            started = time.monotonic()
            if not self.step(pack_id, slice_seconds):
                return
            if pause_ratio and stop is not None:
                stop.wait((time.monotonic() - started) * pause_ratio)

    def close(self) -> None:
        pass


def start_background(app):
    """Start the serving box's thread for packs' document text (``serve``)."""
    from passerelle.server.search.service import service
    from passerelle.server.search.zim_index import BackgroundIndexer

    text = service(app).text
    background = BackgroundIndexer(text, name="pack-text-indexer")
    # A pack imported by the server (the content page): its text now, not at the next idle check.
    text.on_queue = background.wake
    app.extensions["passerelle.text_indexing"] = background
    background.start()
    return background


def run_all(text: PackTextIndexer, report: Callable[[str, IndexStatus], None] | None = None
            ) -> list[str]:
    """Run every queued job to the end here (``passerelle index text``); the ids of the
    packs left queued because another process (a serving box) is indexing them."""
    left = []
    for pack_id in text.pending():
        while text.step(pack_id, slice_seconds=5.0):
            if report is not None:
                report(pack_id, text.status(pack_id))
        job = text.status(pack_id)
        if job is not None and job.state == "queued":
            left.append(pack_id)
        elif report is not None and job is not None:
            report(pack_id, job)
    return left
