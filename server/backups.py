"""Backups from the web pages: download one now, restore an uploaded one, and every night
one on the USB stick when a stick is plugged in.

The copy itself is :func:`passerelle.server.db.backup` (SQLite's online backup API, one
consistent file, written beside and renamed), the same as ``passerelle backup``; restoring is
:func:`passerelle.server.db.restore` (checked first, a safety copy kept, a new device id).

The nightly backup is a box-local choice (kept in ``meta``, never synced: a stick is plugged
into one box). A background thread, like the sync timer, looks once in a while: when the
choice is on, the box's clock is past the night hour, no USB backup was made in the last 20
hours and a stick is present, it writes ``passerelle-backups/passerelle-<time>.db`` on the
stick and keeps the newest seven there.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime
from pathlib import Path

import sqlite_utils
from passerelle.server import db as dbmod

NIGHTLY_KEY = "usb_backup_nightly"
LAST_KEY = "usb_backup_last"
FOLDER = "passerelle-backups"
KEEP = 7
NIGHT_HOUR = 2          # local time of the box
MIN_GAP_SECONDS = 20 * 3600
CHECK_SECONDS = 15 * 60
USB_ROOTS = ("/media", "/run/media", "/mnt")


def nightly_enabled(db: sqlite_utils.Database) -> bool:
    return dbmod.get_meta(db, NIGHTLY_KEY) == "1"


def set_nightly(db: sqlite_utils.Database, on: bool) -> None:
    with db.conn:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                   [NIGHTLY_KEY, "1" if on else "0"])


def last_usb_backup(db: sqlite_utils.Database) -> float | None:
    value = dbmod.get_meta(db, LAST_KEY)
    return float(value) if value else None


def usb_sticks(roots=USB_ROOTS, mounted=os.path.ismount) -> list[Path]:
    """Writable mounted drives one or two levels under the mount roots (``/media/<user>/<label>``,
    ``/media/<label>``, ``/mnt/<label>``). Only mount points: an empty ``/media/pi`` is the
    box's own SD card, where a "USB backup" would protect nothing."""
    found = []
    for root in map(Path, roots):
        if not root.is_dir():
            continue
        for first in sorted(root.iterdir()):
            if not first.is_dir() or first.name.startswith("."):
                continue
            below = sorted(p for p in first.iterdir() if p.is_dir()) \
                if os.access(first, os.R_OK | os.X_OK) else []
            for candidate in [first, *below]:
                if mounted(candidate) and os.access(candidate, os.W_OK) and candidate not in found:
                    found.append(candidate)
    return found


def backup_now(home) -> Path:
    """A backup in the box's own backups folder."""
    return dbmod.backup(home.db_path, home.ensure().backups)


def backup_to_usb(db: sqlite_utils.Database, home, roots=USB_ROOTS, mounted=os.path.ismount
                  ) -> Path | None:
    """A backup on the first writable stick (None when there is none); old ones pruned."""
    sticks = usb_sticks(roots, mounted)
    if not sticks:
        return None
    folder = sticks[0] / FOLDER
    folder.mkdir(exist_ok=True)
    written = dbmod.backup(home.db_path, folder)
    for old in sorted(folder.glob("passerelle-*.db"))[:-KEEP]:
        old.unlink(missing_ok=True)
    with db.conn:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                   [LAST_KEY, str(time.time())])
    return written


def due(db: sqlite_utils.Database, now: float | None = None) -> bool:
    """Is a nightly USB backup due? On, past the night hour, none in the last 20 hours."""
    now = time.time() if now is None else now
    if not nightly_enabled(db):
        return False
    last = last_usb_backup(db)
    if last is not None and now - last < MIN_GAP_SECONDS:
        return False
    return datetime.fromtimestamp(now).hour >= NIGHT_HOUR


def restore_upload(home, source: Path) -> dict:
    """Put an uploaded backup in place of the database (checked first; a safety copy kept)."""
    return dbmod.restore(home.db_path, source, home.ensure().backups)


class NightlyBackup:
    """The thread that makes the nightly USB backup (started only by a serving box)."""

    def __init__(self, connect, home, roots=USB_ROOTS, every: float = CHECK_SECONDS):
        self._connect, self._home, self._roots, self._every = connect, home, roots, every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="nightly-backup", daemon=True)
        self._thread.start()

    def check(self) -> Path | None:
        db = self._connect()
        try:
            if due(db):
                return backup_to_usb(db, self._home, self._roots)
            return None
        finally:
            db.close()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self.check()
                self.last_error = None
            except Exception as exc:  # noqa: BLE001 - a full stick must not stop the timer
                self.last_error = str(exc)

    def stop(self) -> None:
        self._stop.set()
