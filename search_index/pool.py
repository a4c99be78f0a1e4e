"""Searches in worker processes, so that a threaded server searches on every core.

A search is 10-20 ms of mostly Python (query analysis, ranking samples,
snippets). Served from the threads of one process it holds the GIL, so
searches share one core, and a burst of them slows every other page of the
box. :class:`SearchPool` hands each search to one of a few worker processes,
each holding its own read-only :class:`SearchIndex` (opened once): measured
on 2 cores, 20 searchers got twice the throughput, and page requests no
longer queue behind searches for the GIL.

- Started on first use, one worker at a time as concurrent searches need
  them, up to ``workers``. Workers come from multiprocessing's *forkserver*
  (the server is threaded: a plain fork could copy a lock another thread
  holds), preloaded with this library so a worker starts in milliseconds;
  ``spawn`` where forkserver is missing.
- A caller thread talks to its worker over a pipe of its own: no executor
  thread in between, so a search costs one send and one receive (~0.3 ms
  with a 20-hit result, see docs/search.md). A result is a pickled :class:`SearchResult`; a
  :class:`SearchError` raised in a worker is raised again in the caller.
- A worker that died (the OOM killer, ``kill -9``) is replaced and the search
  asked again once; if that fails too, this call searches in the calling
  process and it is logged, and the pool rests for a minute before starting
  workers again. A search that outlasts ``timeout`` kills its worker.
- Workers only read. Writes stay with the caller's :class:`SearchIndex`;
  workers see them through WAL, as any other connection does.
- ``close()`` (idempotent, also run at interpreter exit) stops the workers,
  and the forkserver if this module started it.
"""

from __future__ import annotations

import atexit
import collections
import logging
import multiprocessing
import os
import select
import signal
import threading
import time
import traceback
import weakref
from pathlib import Path

from .errors import SearchError
from .index import SearchIndex, SearchResult

MAX_AUTO_WORKERS = 4   # beyond 4, searches would crowd out pages on a Pi's 4 cores
DEFAULT_TIMEOUT = 30.0  # seconds; a search takes milliseconds, this only catches a stuck worker
REST_SECONDS = 60.0     # after workers failed twice in a row, search in-process this long
STOP_GRACE = 2.0        # seconds a worker gets to leave by itself at close()

_LOG = logging.getLogger(__name__)


def default_workers() -> int:
    """Worker processes for "auto": the CPUs this process may use, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))  # a container's or taskset's limit, not the host's
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_AUTO_WORKERS))


class _RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, chained to it for the logs."""

    def __init__(self, tb: str):
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class _WorkerLost(Exception):
    pass


# --- The worker process ---------------------------------------------------------------

def _serve(conn, path: str, busy_timeout_ms: int) -> None:
    """A worker's loop: (query, filters) in, (ok, result or exception, traceback) out."""
    busy = False
    stopping = False

    def on_term(_signum, _frame):
        # systemd stops the box by sending SIGTERM to every process of the service at
        # once: finish the search in hand (the server is still answering it), then leave.
        nonlocal stopping
        stopping = True
        if not busy:
            raise SystemExit(0)

    # Ctrl-C in a terminal reaches the whole process group: the server decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, on_term)
    index = None
    try:
        while not stopping:
            try:
                request = conn.recv()
            except (EOFError, OSError):  # the server went away (even by kill -9): so do we
                break
            if request is None:
                break
            busy = True
            query, filters = request
            try:
                if index is None:  # opened here, so a missing file fails one search only
                    index = SearchIndex(path, readonly=True, busy_timeout_ms=busy_timeout_ms)
                answer = (True, index.search(query, **filters), None)
            except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller
                answer = (False, exc, traceback.format_exc())
            try:
                conn.send(answer)
            except (EOFError, OSError):
                break
            except Exception as exc:  # noqa: BLE001 - an exception that does not pickle
                conn.send((False, SearchError(f"{type(exc).__name__}: {exc}"),
                           traceback.format_exc()))
            busy = False
    finally:
        if index is not None:
            index.close()
        conn.close()


# --- The caller's side ------------------------------------------------------------------

class _Worker:
    __slots__ = ("process", "conn", "searches", "_answer", "_exit")

    def __init__(self, process, conn):
        self.process = process
        self.conn = conn
        self.searches = 0
        # Poll objects made once: multiprocessing's own checks (is_alive(),
        # Connection.poll()) build and tear down a selector on every call,
        # ~60 us each of the serving process's GIL per search.
        self._answer = self._exit = None
        if hasattr(select, "poll"):
            self._answer = select.poll()
            self._answer.register(conn.fileno(), select.POLLIN)
            self._exit = select.poll()  # the sentinel is readable once the process has ended
            self._exit.register(process.sentinel, select.POLLIN)

    def alive(self) -> bool:
        if self._exit is None:
            return self.process.is_alive()
        return not self._exit.poll(0)

    def answered(self, timeout: float) -> bool:
        """Whether the answer (or the end of the worker) came within ``timeout`` seconds."""
        if self._answer is None:
            return self.conn.poll(timeout)
        return bool(self._answer.poll(max(0, round(timeout * 1000))))

    def stop(self, grace: float = 0.0) -> None:
        """Ask the worker to leave, wait up to ``grace`` seconds, then kill it; reap it."""
        try:
            if grace:
                try:
                    self.conn.send(None)
                except (OSError, ValueError):
                    pass
                self.process.join(grace)
            if self.process.is_alive():
                self.process.kill()
            self.process.join(5)
        except (OSError, ValueError, AssertionError):
            pass
        finally:
            self.conn.close()


_open_pools: weakref.WeakSet = weakref.WeakSet()
_helpers_lock = threading.Lock()
_started_helpers = 0  # the pid of the process whose pool started multiprocessing's forkserver


def _start_method() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


def _forkserver_running() -> bool:
    from multiprocessing import forkserver

    return getattr(getattr(forkserver, "_forkserver", None), "_forkserver_pid", None) is not None


def _stop_helpers_if_ours() -> None:
    """Stop the forkserver (and its resource tracker) when this module started them and
    no pool is left: a test run or a short-lived process keeps no idle helper around."""
    global _started_helpers
    with _helpers_lock:
        if _started_helpers != os.getpid() or any(not p.finished for p in list(_open_pools)):
            return
        _started_helpers = 0
        from multiprocessing import forkserver, resource_tracker

        for helper, pid in ((getattr(forkserver, "_forkserver", None), "_forkserver_pid"),
                            (getattr(resource_tracker, "_resource_tracker", None), "_pid")):
            if getattr(helper, pid, None) is None:
                continue
            try:
                helper._stop()  # private, but the only way; absent: they end with the process
            except (AttributeError, OSError):
                pass


@atexit.register
def _close_all() -> None:
    for pool in list(_open_pools):
        pool.close()


class SearchPool:
    """``search()`` like :meth:`SearchIndex.search`, run in up to ``workers`` processes.

    Safe to share between threads: each search borrows one idle worker (or
    starts one, up to ``workers``; beyond, it waits for one). ``fallback`` is
    the index searched in this process when workers fail; by default one is
    opened read-only when first needed.
    """

    def __init__(self, path: str | os.PathLike, workers: int, *, busy_timeout_ms: int = 10_000,
                 timeout: float = DEFAULT_TIMEOUT, fallback: SearchIndex | None = None,
                 logger: logging.Logger | None = None):
        if workers < 1:
            raise ValueError("a search pool needs at least one worker")
        self.path = Path(path)
        self.size = workers
        self.busy_timeout_ms = busy_timeout_ms
        self.timeout = timeout
        self.logger = logger or _LOG
        self.closed = False
        self.started = 0       # workers started over the pool's life (tests, logs)
        self.replaced = 0      # workers found dead or killed, and dropped
        self.fallbacks = 0     # searches answered in this process because workers failed
        self._fallback = fallback
        self._fallback_lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._count = 0        # workers alive or being started
        self._busy: set[_Worker] = set()
        self._lock = threading.Lock()  # guards the fields above and below
        self._waiters: collections.deque[_Waiter] = collections.deque()  # first come, first served
        self._start_lock = threading.Lock()  # multiprocessing's start is not thread-safe
        self._rest_until = 0.0
        self._method = _start_method()
        _open_pools.add(self)

    # --- searching ------------------------------------------------------------------------

    def search(self, query: str, **filters) -> SearchResult:
        """The same result as ``SearchIndex(path).search(query, **filters)``."""
        if time.monotonic() >= self._rest_until:
            for attempt in (1, 2):
                try:
                    # The second time, a new worker: the others may have died with the first
                    # (the OOM killer, a kill of the group) and not be reaped yet.
                    worker = self._acquire(new=attempt == 2)
                except _PoolClosed:
                    break
                except Exception as exc:  # noqa: BLE001 - cannot start processes here
                    self.logger.error("search workers cannot be started (%s): searching in "
                                      "the server process for %.0f s", exc, REST_SECONDS)
                    self._rest_until = time.monotonic() + REST_SECONDS
                    break
                try:
                    ok, value, tb = self._call(worker, query, filters)
                except _WorkerLost as exc:
                    self._drop(worker)
                    if attempt == 1:
                        then = "asking another"
                    elif worker.searches:
                        then = "searching in the server process"
                    else:  # even a new worker failed: something is wrong with workers here
                        self._rest_until = time.monotonic() + REST_SECONDS
                        then = f"searching in the server process for {REST_SECONDS:.0f} s"
                    self.logger.warning("search worker %s stopped (%s); %s",
                                        worker.process.pid, exc, then)
                    continue
                self._release(worker)
                if ok:
                    return value
                if tb:
                    value.__cause__ = _RemoteTraceback(tb)
                raise value
        self.fallbacks += 1
        return self._local().search(query, **filters)

    def _call(self, worker: _Worker, query: str, filters: dict):
        try:
            worker.conn.send((query, filters))
            if not worker.answered(self.timeout):
                self._drop(worker)
                raise SearchError(f"the search took longer than {self.timeout:g} s")
            answer = worker.conn.recv()
        except (EOFError, OSError) as exc:
            raise _WorkerLost(f"{type(exc).__name__}: {exc}" if str(exc) else
                              type(exc).__name__) from None
        except SearchError:
            raise
        except BaseException:
            # Interrupted between question and answer: the answer would be read by the
            # next search. This worker is not used again.
            self._drop(worker)
            raise
        worker.searches += 1
        return answer

    def _local(self) -> SearchIndex:
        with self._fallback_lock:
            if self._fallback is None:
                self._fallback = SearchIndex(self.path, readonly=True,
                                             busy_timeout_ms=self.busy_timeout_ms)
            return self._fallback

    # --- workers --------------------------------------------------------------------------

    def _acquire(self, new: bool = False) -> _Worker:
        """An idle worker, or a new one while there are fewer than ``size``; else wait
        in line. ``new``: a new worker if there is room for one.

        Waiting callers are served first come, first served: a worker handed
        back goes straight to the longest waiting caller (``_release``). With a
        plain condition, the thread handing a worker back took the next request
        and often the same worker again before the woken waiter could run: with
        8 server threads on 2 workers, p95 was 1.5-1.6x p50 (1.4x now)."""
        with self._lock:
            if self.closed:
                raise _PoolClosed()
            waiter = None
            if new and self._count < self.size:
                self._count += 1
            elif self._waiters:  # others came first
                waiter = _Waiter()
                self._waiters.append(waiter)
            else:
                while self._idle:
                    worker = self._idle.pop()  # the most recently used: its caches are warm
                    if worker.alive():
                        self._busy.add(worker)
                        return worker
                    self._count -= 1  # died while idle (OOM killer, kill -9): replaced below
                    self.replaced += 1
                    self.logger.warning("search worker %s had stopped (exit status %s); "
                                        "starting another", worker.process.pid,
                                        worker.process.exitcode)
                    worker.stop()
                if self._count < self.size:
                    self._count += 1
                else:
                    waiter = _Waiter()
                    self._waiters.append(waiter)
        if waiter is not None:
            waiter.lock.acquire()  # released by whoever serves this caller
            if waiter.worker is not None:
                return waiter.worker  # handed over already busy
            if not waiter.start:
                raise _PoolClosed()
            # A worker was dropped: this caller starts its replacement (counted already).
        try:
            worker = self._start()
        except BaseException:
            with self._lock:
                self._count -= 1
                self._serve_next_waiter_a_start()
            raise
        with self._lock:
            if self.closed:
                self._count -= 1
                closing = True
            else:
                self._busy.add(worker)
                closing = False
        if closing:
            worker.stop()
            if self.finished:
                _stop_helpers_if_ours()
            raise _PoolClosed()
        return worker

    def _start(self) -> _Worker:
        with self._start_lock:
            try:
                return self._start_with(self._method)
            except OSError as exc:
                if self._method != "forkserver":
                    raise
                # The forkserver listens on a Unix socket in the temp dir: a data home
                # deep enough makes its path too long (108 bytes). Spawn needs no socket.
                self.logger.warning("search: the forkserver cannot start (%s); spawning "
                                    "workers instead", exc)
                self._method = "spawn"
                return self._start_with(self._method)

    def _start_with(self, method: str) -> _Worker:
        global _started_helpers
        ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            with _helpers_lock:
                if not _forkserver_running():
                    # Preloaded once in the forkserver, shared by every worker forked
                    # from it; '__main__' too, or each worker would import it again
                    # (so, as with any multiprocessing program, a script using a pool
                    # keeps its work under `if __name__ == "__main__":`).
                    ctx.set_forkserver_preload(["__main__", __name__])
                    _started_helpers = os.getpid()
        parent, child = ctx.Pipe(duplex=True)
        process = ctx.Process(target=_serve, name="passerelle-search",
                              args=(child, str(self.path), self.busy_timeout_ms), daemon=True)
        try:
            process.start()
        except BaseException:
            parent.close()
            raise
        finally:
            # Only the worker may hold its end: then its death reads as EOF here.
            child.close()
        self.started += 1
        if self.started == 1:
            self.logger.info("search: worker processes (%s), up to %d", method, self.size)
        return _Worker(process, parent)

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            if not self.closed:
                if self._waiters:  # straight to the longest waiting caller, still busy
                    waiter = self._waiters.popleft()
                    waiter.worker = worker
                    waiter.lock.release()
                    return
                self._busy.discard(worker)
                self._idle.append(worker)
                return
            self._busy.discard(worker)
            self._count -= 1
        worker.stop(STOP_GRACE)  # closed while this search ran
        if self.finished:
            _stop_helpers_if_ours()

    def _drop(self, worker: _Worker) -> None:
        with self._lock:
            if worker not in self._busy:
                return  # already dropped
            self._busy.discard(worker)
            self._count -= 1
            self.replaced += 1
            self._serve_next_waiter_a_start()
        worker.stop()
        if self.finished:
            _stop_helpers_if_ours()

    def _serve_next_waiter_a_start(self) -> None:
        """A worker slot came free (a worker was dropped, or failed to start): the
        longest waiting caller starts a worker in it. Call with the lock held."""
        if self._waiters and not self.closed and self._count < self.size:
            waiter = self._waiters.popleft()
            self._count += 1
            waiter.start = True
            waiter.lock.release()

    def pids(self) -> list[int]:
        """Process ids of the workers alive now (busy or idle)."""
        with self._lock:
            workers = [*self._idle, *self._busy]
        return [w.process.pid for w in workers if w.process.pid and w.alive()]

    # --- closing --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every worker (a search in flight finishes first). Idempotent."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            while self._waiters:  # nothing for them: they search in their own process
                self._waiters.popleft().lock.release()
        for worker in idle:
            worker.stop(STOP_GRACE)
        # Busy workers are stopped by their callers when they hand them back (_release).
        if self.finished:
            _stop_helpers_if_ours()

    @property
    def finished(self) -> bool:
        """Closed, and no worker left."""
        return self.closed and self._count == 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _PoolClosed(Exception):
    pass


class _Waiter:
    """A caller waiting for a worker: its lock is released when it is handed one
    (``worker``), told to start one (``start``), or the pool closes (neither)."""
    __slots__ = ("lock", "worker", "start")

    def __init__(self):
        self.lock = threading.Lock()
        self.lock.acquire()
        self.worker: _Worker | None = None
        self.start = False
