"""The data home: every byte of a box's state lives under one directory.

Keeping it in one place makes a box easy to back up, move to a bigger SD card
or wipe. ``tmp/`` sits inside the home on purpose: imports write there first
and then rename into place, which is only atomic on the same filesystem.
The layout is documented in ``docs/data-home.md``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

DB_NAME = "passerelle.db"


@dataclass(frozen=True)
class Home:
    root: Path

    @property
    def db_path(self) -> Path:
        return self.root / DB_NAME

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    @property
    def index(self) -> Path:
        return self.root / "index"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def backups(self) -> Path:
        return self.root / "backups"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def secret_key_path(self) -> Path:
        return self.root / "secret_key"

    def ensure(self) -> Home:
        """Create the home and its folders (owner-only: it holds learners' data)."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o750)
        for folder in (self.storage, self.index, self.logs, self.backups, self.tmp):
            folder.mkdir(exist_ok=True, mode=0o750)
        return self

    def secret_key(self) -> bytes:
        """The key that signs sessions and CSRF tokens, made once per box, never a default.

        Written with O_EXCL so that two processes starting together agree on one key.
        """
        path = self.secret_key_path
        if not path.exists():
            key = secrets.token_hex(32).encode()
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(key)
                    f.flush()
                    os.fsync(f.fileno())
        key = path.read_bytes().strip()
        if len(key) < 32:
            # An empty file can only come from a power cut during the first start.
            path.unlink()
            return self.secret_key()
        return key
