"""Free space on the data home's disk, and what the box does as it runs out.

The database, the content, the logs, the caches and the request bodies Waitress
spools all share the data home's disk (usually the SD card). Two floors, both
settings, keep learners' writes working longest:

- below ``disk_warning_mb`` the health route reports the disk as ``low`` and
  the staff home warns, while there is still time to act;
- below ``disk_reserve_mb`` the box stops its optional writes (the access log
  and the application log's routine lines, the PDF page cache, search
  indexing) and accepts no request body it would have to spool to disk, so
  the space left goes to learners' progress.

When the disk is full all the same, SQLite answers ``SQLITE_FULL`` and file
writes ``ENOSPC``: :func:`is_full` recognises them, and the edges answer 507
with words a person understands instead of an internal error.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024
_SQLITE_FULL = 13  # the primary result code; extended codes keep it in their low byte
_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


@dataclass(frozen=True)
class Space:
    """Free and total bytes on the data home's disk, with the two floors."""

    free: int
    total: int
    warning: int
    reserve: int

    @property
    def status(self) -> str:
        """``ok``; ``low`` below the warning floor; ``critical`` below the reserve."""
        if self.free < self.reserve:
            return "critical"
        if self.free < self.warning:
            return "low"
        return "ok"

    def as_dict(self) -> dict:
        return {"status": self.status, "free_mb": self.free // MiB, "total_mb": self.total // MiB,
                "warning_mb": self.warning // MiB, "reserve_mb": self.reserve // MiB}


def free_bytes(path: str | os.PathLike) -> int:
    """Bytes an unprivileged process may still write on the disk holding ``path``."""
    return shutil.disk_usage(path).free


def space(root: str | os.PathLike, settings) -> Space:
    usage = shutil.disk_usage(root)
    return Space(free=usage.free, total=usage.total, warning=settings["disk_warning_mb"] * MiB,
                 reserve=settings["disk_reserve_mb"] * MiB)


def optional_writes_allowed(root: str | os.PathLike, settings) -> bool:
    """False once free space is below the reserve: caches, indexing and routine logs wait.

    One ``statvfs`` call (microseconds): cheap enough to ask before each such write.
    """
    try:
        return free_bytes(root) >= settings["disk_reserve_mb"] * MiB
    except OSError:  # the home vanished or cannot be read: writing there will fail anyway
        return False


def import_margin(settings) -> int:
    """Space a pack import must leave free: the reserve, and never less than the library's."""
    from passerelle.content.library import SPACE_MARGIN

    return max(SPACE_MARGIN, settings["disk_reserve_mb"] * MiB)


def is_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an exception it was raised from, means the disk is full."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS:
            return True
        if isinstance(exc, sqlite3.Error):
            code = getattr(exc, "sqlite_errorcode", None)
            if code is not None and code & 0xFF == _SQLITE_FULL:
                return True
            if "database or disk is full" in str(exc):
                return True
        exc = exc.__cause__ or exc.__context__
    return False


# Below this, even an error line would not fit: trying would only print a traceback per
# line on stderr (logging's handleError).
NO_ROOM = 1 * MiB


class SkipWhenLow(logging.Filter):
    """A log handler's filter: below the reserve, only warnings and errors are written;
    on a full disk, nothing."""

    def __init__(self, root: Path, settings, keep_level: int = logging.WARNING):
        super().__init__()
        self.root, self.settings, self.keep_level = root, settings, keep_level

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            free = free_bytes(self.root)
        except OSError:
            return False
        if free < NO_ROOM:
            return False
        return record.levelno >= self.keep_level or free >= self.settings["disk_reserve_mb"] * MiB
