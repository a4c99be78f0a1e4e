"""Background sync: try every N minutes, back off on failure, never in the learners' way.

One daemon thread per serving process. It calls ``run_once`` (which syncs with
every peer that has an address, see :mod:`.sync_client`) at a fixed interval.
After a failure it retries after 30 s, then 1, 2, 4 ... minutes, never waiting
longer than the interval, so a hub that comes back
is reached within one interval, and a box whose hub is away for days makes one
cheap connection attempt per interval rather than a storm. A little jitter
keeps 50 boxes started together from calling the hub in the same second.

Learners first: the thread lowers its own CPU priority (Linux schedules
threads individually, so ``setpriority`` on the thread's id works even though
Python shares one interpreter), and the sync code applies bounded batches, so
a learner's progress write waits for at most one batch.

The clock and the wait are injectable so the tests can drive the schedule
without sleeping.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

LOG = logging.getLogger("passerelle.sync")
FIRST_RETRY_S = 30.0


@dataclass
class ScheduleState:
    running: bool = False
    failures: int = 0
    next_at: float | None = None      # wall-clock seconds (time.time()) of the next attempt
    last_ok_at: float | None = None
    last_error: str | None = None


def retry_delay(failures: int, interval_s: float) -> float:
    """Seconds to wait after ``failures`` consecutive failures (1 = the first one)."""
    if failures <= 0:
        return interval_s
    return min(interval_s, FIRST_RETRY_S * 2 ** (failures - 1))


class BackgroundSync:
    def __init__(self, run_once: Callable[[], object], interval_s: float, *,
                 clock: Callable[[], float] = time.time, jitter: float = 0.1,
                 first_delay_s: float = 20.0):
        self.run_once = run_once
        self.interval_s = interval_s
        self.clock = clock
        self.jitter = jitter
        self.first_delay_s = first_delay_s
        self.state = ScheduleState()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()   # one sync at a time, whether scheduled or asked for
        self._thread: threading.Thread | None = None

    # --- control --------------------------------------------------------------------

    def start(self) -> None:
        self.state.next_at = self.clock() + self.first_delay_s
        self._thread = threading.Thread(target=self._loop, name="background-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def trigger(self) -> None:
        """Sync as soon as possible (the coordinator pressed "Sync now")."""
        self.state.next_at = self.clock()
        self._wake.set()

    # --- the loop -------------------------------------------------------------------

    def _loop(self) -> None:
        _lower_priority()
        while not self._stop.is_set():
            wait = (self.state.next_at or 0) - self.clock()
            if wait > 0:
                self._wake.wait(wait)
                self._wake.clear()
                continue
            self.attempt()

    def attempt(self) -> bool:
        """One attempt now, then schedule the next; True when it succeeded."""
        with self._lock:
            self.state.running = True
            try:
                self.run_once()
            except Exception as exc:  # noqa: BLE001 — any failure is reported and retried, never fatal
                self.state.failures += 1
                self.state.last_error = str(exc) or type(exc).__name__
                delay = retry_delay(self.state.failures, self.interval_s)
                LOG.warning("background sync failed (%s); next try in %.0f s",
                            self.state.last_error, delay)
                ok = False
            else:
                self.state.failures = 0
                self.state.last_error = None
                self.state.last_ok_at = self.clock()
                delay = self.interval_s
                ok = True
            finally:
                self.state.running = False
            spread = delay * self.jitter
            self.state.next_at = self.clock() + delay + random.uniform(-spread, spread)
            return ok


def _lower_priority() -> None:
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        pass


# --- In the app -------------------------------------------------------------------------

EXTENSION = "passerelle_sync"


def init_app(app) -> None:
    """Give the app its (not yet started) background sync; ``serve`` starts it.

    Created for every app so that the coordinator's "Sync now" works the same way
    in tests and on a box; only a serving process runs the timer thread.
    """
    from passerelle.server import db as dbmod
    from passerelle.server.sync import client as sync_client

    settings = app.config["SETTINGS"]
    home = app.config["HOME"]
    path, timeout_ms = dbmod.target(home, settings), settings["db_busy_timeout_ms"]

    def run_once():
        results = sync_client.sync_all(
            lambda: dbmod.connect(path, timeout_ms), home,
            timeout=settings["sync_timeout_seconds"], max_ops=settings["sync_batch_ops"])
        failed = [r for r in results if not r.ok]
        if failed:
            raise RuntimeError("; ".join(r.summary() for r in failed))

    interval = settings["sync_interval_minutes"] * 60 or 24 * 3600
    app.extensions[EXTENSION] = BackgroundSync(run_once, interval)


def scheduler(app) -> BackgroundSync:
    return app.extensions[EXTENSION]


def sync_soon(app) -> None:
    """Sync now, in the background: wakes the timer thread, or runs once in a new thread."""
    sync = scheduler(app)
    if sync._thread is not None and sync._thread.is_alive():
        sync.trigger()
    elif not sync.state.running:
        threading.Thread(target=sync.attempt, name="sync-now", daemon=True).start()


def start_serving(app, port: int) -> list:
    """What a serving box runs beside Waitress: the sync timer and the LAN announcement.

    Returns the things to close on shutdown.
    """
    from passerelle.server.sync import discovery

    settings = app.config["SETTINGS"]
    started = []
    if settings["sync_interval_minutes"] > 0:
        sync = scheduler(app)
        sync.start()
        started.append(sync)
    # The nightly USB backup (off until a coordinator turns it on) checks on the same terms.
    from passerelle.server import backups
    from passerelle.server import db as dbmod

    home = app.config["HOME"]
    nightly = backups.NightlyBackup(
        lambda: dbmod.connect(dbmod.target(home, settings), settings["db_busy_timeout_ms"]), home,
        roots=settings["usb_roots"])
    nightly.start()
    started.append(nightly)
    if settings["discovery"]:
        info = _announcement(app)
        announcer = discovery.Announcer(host=settings["host"], port=port, **info)
        if announcer.start():
            started.append(announcer)
    return started


def stop_serving(started: list) -> None:
    for thing in started:
        (thing.close if hasattr(thing, "close") else thing.stop)()


def _announcement(app) -> dict:
    from passerelle.server import __version__, records
    from passerelle.server import db as dbmod
    from passerelle.server.people import accounts

    settings = app.config["SETTINGS"]
    db = dbmod.connect(app.config["DB_PATH"], settings["db_busy_timeout_ms"])
    try:
        org = accounts.organisation(db) or {}
        return {"device_id": records.device_id(db), "organisation": org.get("uuid"),
                "role": "hub" if settings["hub_mode"] else "box", "version": __version__,
                "name": f"{org.get('name') or 'Passerelle'} ({socket.gethostname()})"}
    finally:
        db.close()
