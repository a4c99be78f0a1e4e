"""The database: SQLite in WAL mode through sqlite-utils.

- One connection per request (Flask's ``g``) or per command, never a shared
  module-level connection: Waitress serves from many threads and a SQLite
  connection must stay in the thread that made it.
- WAL lets learners' pages read while a write is committing; ``busy_timeout``
  makes a second writer wait instead of failing; ``synchronous=FULL`` because
  a learner's progress must survive a power cut, not only a crash.
- On start :func:`prepare` checks integrity, applies migrations and makes the
  box's device id. A corrupt file is a :class:`~.errors.DatabaseProblem`
  whose message names the recovery command.
- :func:`backup` and :func:`restore` use SQLite's online backup API, so both
  are consistent while the server keeps serving.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils
from flask import Flask, current_app, g

from .errors import DatabaseProblem, NotFound
from .migrations import MIGRATIONS, all_sets, apply_all


def new_uuid() -> str:
    """Identifier for every record that may ever leave the box (learners, progress, classes)."""
    return str(uuid.uuid4())


def connect(path: str | os.PathLike, busy_timeout_ms: int = 5000) -> sqlite_utils.Database:
    conn = sqlite3.connect(str(path), timeout=busy_timeout_ms / 1000)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")
    return sqlite_utils.Database(conn)


def problems(db: sqlite_utils.Database, full: bool = False) -> list[str]:
    """What SQLite's integrity check finds; an empty list means the file is sound."""
    pragma = "integrity_check" if full else "quick_check"
    try:
        rows = [r[0] for r in db.execute(f"PRAGMA {pragma}").fetchall()]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    return [] if rows == ["ok"] else rows


def recovery_hint(db_path: Path) -> str:
    backups = sorted((db_path.parent / "backups").glob("*.db"))
    if backups:
        return f"restore the latest backup with: passerelle restore {backups[-1]}"
    return ("no backup was found in the home's backups/ folder; move the damaged file "
            f"aside ({db_path}) to start empty, or restore a backup from elsewhere "
            "with: passerelle restore FILE")


def prepare(db_path: Path, busy_timeout_ms: int = 5000) -> dict:
    """Open the database at start: integrity check, WAL, migrations, device id.

    Returns a summary (device id, schema version) for the log and the health route.
    """
    try:
        db = connect(db_path, busy_timeout_ms)
        found = problems(db)
    except sqlite3.DatabaseError as exc:
        found, db = [str(exc)], None
    if found:
        if db is not None:
            db.close()
        raise DatabaseProblem(
            f"the database {db_path} is damaged ({found[0]}); {recovery_hint(db_path)}"
        )
    try:
        db.execute("PRAGMA journal_mode = WAL")
        apply_all(db)
        device_id = ensure_device_id(db)
        return {"device_id": device_id, "schema_version": schema_version(db)}
    finally:
        db.close()


def schema_version(db: sqlite_utils.Database) -> str:
    applied = MIGRATIONS.applied(db)
    return applied[-1].name if applied else ""


def ensure_device_id(db: sqlite_utils.Database) -> str:
    with db.atomic():
        db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('device_id', ?)", [new_uuid()]
        )
        db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('created_at', ?)", [_now()]
        )
    return get_meta(db, "device_id")


def get_meta(db: sqlite_utils.Database, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- Backup and restore --------------------------------------------------------

def default_backup_path(backups_dir: Path) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
    return backups_dir / f"passerelle-{stamp}.db"


def backup(db_path: Path, dest: Path) -> Path:
    """Copy the live database to ``dest``, consistently, while others read and write it.

    SQLite's backup API copies a single snapshot; the copy is written beside
    ``dest`` and renamed, so a power cut never leaves a half-written backup.
    """
    if not Path(db_path).exists():
        raise NotFound(f"there is no database at {db_path} to back up")
    dest = Path(dest)
    if dest.is_dir():
        dest = default_backup_path(dest)
    if dest.exists():
        raise DatabaseProblem(f"{dest} already exists; choose another name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    src = sqlite3.connect(str(db_path), timeout=30)
    out = sqlite3.connect(str(partial))
    try:
        src.backup(out)
        # The copy leaves WAL mode off so the backup is one self-contained file.
        out.execute("PRAGMA journal_mode = DELETE")
    finally:
        out.close()
        src.close()
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, dest)
    return dest


def validate_backup(path: Path) -> None:
    """Refuse anything but a sound Passerelle database before it replaces the live one."""
    path = Path(path)
    if not path.is_file():
        raise NotFound(f"{path} is not a file")
    with open(path, "rb") as f:
        if f.read(16) != b"SQLite format 3\x00":
            raise DatabaseProblem(f"{path} is not a SQLite database")
    db = sqlite_utils.Database(sqlite3.connect(f"file:{path}?mode=ro", uri=True))
    try:
        found = problems(db, full=True)
        if found:
            raise DatabaseProblem(f"{path} is damaged ({found[0]}); it was not restored")
        if not db["meta"].exists() or not MIGRATIONS.applied(db):
            raise DatabaseProblem(f"{path} is not a Passerelle database; it was not restored")
        unknown = [m.name for s in all_sets() for m in s.applied(db)
                   if m.name not in {k.name for k in s._migrations}]
        if unknown:
            raise DatabaseProblem(
                f"{path} comes from a newer Passerelle (migration {unknown[-1]}); "
                "upgrade this box before restoring it"
            )
    finally:
        db.close()


def restore(db_path: Path, source: Path, backups_dir: Path) -> dict:
    """Put a backup back into the live database, keeping a safety copy of what it replaces.

    The backup API writes into the live file under SQLite's own locking, so a
    server that is running sees either the old or the restored data, never a
    mix. A restored box takes a new device id: its log of operations went back
    in time, and a new origin keeps it from reusing sequence numbers that were
    already sent to other boxes.
    """
    validate_backup(source)
    safety = None
    if Path(db_path).exists():
        safety = backup(db_path, default_backup_path(backups_dir).with_suffix(".pre-restore.db"))
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    live = sqlite3.connect(str(db_path), timeout=30)
    try:
        src.backup(live)
    finally:
        src.close()
        live.close()
    db = connect(db_path)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        apply_all(db)
        old = get_meta(db, "device_id")
        new = new_uuid()
        with db.atomic():
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('device_id', ?)", [new])
            db.execute(
                "INSERT INTO device_history (device_id, retired_at, reason) VALUES (?, ?, ?)",
                [old, _now(), "restored from backup"],
            )
    finally:
        db.close()
    return {"restored": str(source), "safety_copy": str(safety) if safety else None,
            "device_id": new, "previous_device_id": old}


# --- Flask integration -----------------------------------------------------------

def get_db() -> sqlite_utils.Database:
    """This request's connection, opened on first use and closed when the request ends."""
    if "db" not in g:
        g.db = connect(current_app.config["DB_PATH"], current_app.config["DB_BUSY_TIMEOUT_MS"])
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
