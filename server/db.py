"""The database: SQLite in WAL mode through sqlite-utils.

- A request borrows a connection from its app's small pool (Flask's ``g``)
  and gives it back when it ends; a command opens its own. Opening a
  connection costs more than most requests (SQLite parses the whole schema on
  a connection's first statement: about 1.5 ms, and closing the last one
  checkpoints the WAL): see :class:`Pool`. A connection is only ever used by
  one request at a time, never shared between threads at once.
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
import threading
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlite_utils
from flask import Flask, current_app, g, has_request_context
from passerelle.server import dialect
from passerelle.server.errors import ConfigError, DatabaseProblem, NotFound
from passerelle.server.migrations import MIGRATIONS, all_sets, apply_all
from passerelle.server.records import now_iso


def new_uuid() -> str:
    """Identifier for every record that may ever leave the box (learners, progress, classes)."""
    return str(uuid.uuid4())


class Database(sqlite_utils.Database):
    """sqlite-utils' database, remembering the cursors it handed out.

    A cursor that was not read to its end keeps its statement open, and with
    it a read snapshot of the WAL: a pooled connection given to the next
    request would show that request stale data. :meth:`reset` closes them.
    """

    dialect = dialect.SQLITE

    def __init__(self, conn: sqlite3.Connection, **kwargs):
        self._cursors: weakref.WeakSet[sqlite3.Cursor] = weakref.WeakSet()
        super().__init__(conn, **kwargs)

    def execute(self, sql: str, parameters=None) -> sqlite3.Cursor:
        cursor = super().execute(sql, parameters)
        self._cursors.add(cursor)
        return cursor

    def reset(self) -> None:
        """Back to a clean state: no statement left open, no transaction left half-done."""
        for cursor in list(self._cursors):
            cursor.close()
        self._cursors.clear()
        if self.conn.in_transaction:
            self.conn.rollback()


def connect(path: str | os.PathLike, busy_timeout_ms: int = 5000,
            check_same_thread: bool = True) -> Database:
    """A connection to the database at ``path``: a SQLite file, or a ``postgresql://`` URL (a hub)."""
    if dialect.is_postgres_url(path):
        from passerelle.server import pg  # only a hub on PostgreSQL loads its driver

        return pg.connect(path)
    conn = sqlite3.connect(str(path), timeout=busy_timeout_ms / 1000,
                           check_same_thread=check_same_thread)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA synchronous = FULL")
    # Idle pooled connections keep the WAL file from being deleted; after a
    # checkpoint it is cut back to this size instead of keeping its largest.
    conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
    return Database(conn)


WAL_SIZE_LIMIT = 32 * 1024 * 1024


class Pool:
    """Connections to one database, reused from request to request.

    A new connection costs about 1.5 ms before its first answer (the schema is
    parsed again) and closing the last one checkpoints the WAL with fsyncs;
    both were most of a simple request's database time. Idle connections wait
    in a stack (the most recently used first: its page cache is warm); a
    request takes one, or opens one when none is idle, and gives it back
    :meth:`Database.reset`. At most ``keep`` idle connections are kept (the
    number of server threads); extra ones are closed.

    ``check_same_thread`` is off because a connection may serve requests of
    several Waitress threads over its life, one at a time: the pool hands each
    one to a single borrower.
    """

    def __init__(self, path: str | os.PathLike, busy_timeout_ms: int, keep: int):
        self.path, self.busy_timeout_ms, self.keep = str(path), busy_timeout_ms, keep
        self._idle: list[Database] = []
        self._lock = threading.Lock()
        self._closed = False

    def acquire(self) -> Database:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return connect(self.path, self.busy_timeout_ms, check_same_thread=False)

    def release(self, db: Database) -> None:
        try:
            db.reset()
        except sqlite3.Error:  # a connection in an unknown state is not reused
            db.close()
            return
        with self._lock:
            if not self._closed and len(self._idle) < self.keep:
                self._idle.append(db)
                return
        db.close()

    def close(self) -> None:
        """Close the idle connections (at shutdown: the last close checkpoints the WAL)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()


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


def engine_errors() -> tuple[type[Exception], ...]:
    """The database errors of the engines in use (psycopg's only once a hub loaded it)."""
    import sys

    psycopg = sys.modules.get("psycopg")
    return (sqlite3.Error,) if psycopg is None else (sqlite3.Error, psycopg.Error)


def target(home, settings) -> str:
    """Where the records are: the ``database_url`` setting, or the SQLite file in the home."""
    return settings["database_url"] or str(home.db_path)


def reports_target(home, settings) -> str:
    """Where the impact report and the large exports read: the ``reports_database_url``
    replica, or the records' database itself."""
    url = settings["reports_database_url"]
    if not url:
        return target(home, settings)
    if not (dialect.is_postgres_url(url) and dialect.is_postgres_url(settings["database_url"])):
        raise ConfigError("reports_database_url is a read replica of the hub's PostgreSQL "
                          "database: both it and database_url must be postgresql:// URLs")
    return url


@contextmanager
def reports_db() -> Iterator[Database]:
    """The connection a report reads in a request: the request's own, or one to the replica
    (``reports_database_url``) for the time of the report, in one consistent snapshot."""
    config = current_app.config
    if config["REPORTS_DB_PATH"] == config["DB_PATH"]:
        yield get_db()
        return
    with snapshot(config["REPORTS_DB_PATH"], config["DB_BUSY_TIMEOUT_MS"]) as db:
        yield db


def prepare(db_path: Path | str, busy_timeout_ms: int = 5000, sets=None) -> dict:
    """Open the database at start: integrity check, WAL, migrations, device id.

    ``db_path`` may be a ``postgresql://`` URL (a hub on PostgreSQL). ``sets`` limits the
    migrations applied (a hub on PostgreSQL keeps only its content library in the home's
    SQLite file). Returns a summary (device id, schema version) for the log and the health route.
    """
    if dialect.is_postgres_url(db_path):
        return _prepare_postgres(str(db_path))
    db_path = Path(db_path)
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
        if sets is not None:
            for migrations in sets:
                migrations.apply(db)
            return {}
        apply_all(db)
        device_id = ensure_device_id(db)
        return {"device_id": device_id, "schema_version": schema_version(db)}
    finally:
        db.close()


def _prepare_postgres(url: str) -> dict:
    from passerelle.server import migrations, partitions, pg

    try:
        db = pg.connect(url)
    except pg.psycopg.Error as exc:
        raise DatabaseProblem(f"cannot reach the PostgreSQL database {_safe_url(url)}: "
                              f"{str(exc).strip()}") from None
    try:
        pg.migrate(db, all_sets(), migrations.POSTGRES_VARIANTS)
        partitions.ensure_summary_years(db)  # a hub that ran past New Year gets the next ones
        device_id = ensure_device_id(db)
        return {"device_id": device_id, "schema_version": schema_version(db)}
    finally:
        db.close()


def _safe_url(url: str) -> str:
    """A URL as a message may show it: without its password."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def schema_version(db: sqlite_utils.Database) -> str:
    if dialect.of(db) is dialect.POSTGRES:
        from passerelle.server import pg

        names = pg.applied(db, MIGRATIONS.name)
        return names[-1] if names else ""
    applied = MIGRATIONS.applied(db)
    return applied[-1].name if applied else ""


def ensure_device_id(db: sqlite_utils.Database) -> str:
    with db.atomic():
        db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('device_id', ?)", [new_uuid()]
        )
        db.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('created_at', ?)", [now_iso()]
        )
    return get_meta(db, "device_id")


def get_meta(db: sqlite_utils.Database, key: str) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    return row[0] if row else None




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


def backup_postgres(url: str, dest: Path) -> Path:
    """A hub on PostgreSQL: ``pg_dump`` of its database (see docs/deployment.md for WAL archiving)."""
    from passerelle.server import pg

    dest = Path(dest)
    if dest.is_dir():
        dest = default_backup_path(dest).with_suffix(".pgdump")
    if dest.exists():
        raise DatabaseProblem(f"{dest} already exists; choose another name")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        pg.dump(url, dest)
    except (OSError, RuntimeError) as exc:
        raise DatabaseProblem(f"the backup of {_safe_url(url)} failed: {exc}") from None
    return dest


def move_to_postgres(db_path: Path, url: str) -> dict:
    """Move a hub's SQLite database into an empty PostgreSQL database, keeping its device id."""
    from passerelle.server import pg

    prepare(db_path)
    _prepare_postgres(url)
    lite, post = connect(db_path), pg.connect(url)
    try:
        try:
            copied = pg.move_from_sqlite(lite, post)
        except ValueError as exc:
            raise DatabaseProblem(str(exc)) from None
        return {"device_id": get_meta(post, "device_id"), "tables": copied}
    finally:
        lite.close()
        post.close()


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
    already sent to other boxes. Everyone signs in again.
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
                [old, now_iso(), "restored from backup"],
            )
            # Sessions ended after the backup was taken would otherwise come back to life.
            db.execute("DELETE FROM signins")
    finally:
        db.close()
    return {"restored": str(source), "safety_copy": str(safety) if safety else None,
            "device_id": new, "previous_device_id": old}


# --- Flask integration -----------------------------------------------------------

@contextmanager
def snapshot(path: str | os.PathLike, busy_timeout_ms: int = 5000) -> Iterator[Database]:
    """A connection of its own reading one consistent state until closed (a long download
    outlives its request, and must not see half of a write made meanwhile)."""
    db = connect(path, busy_timeout_ms)
    try:
        # PostgreSQL's default (read committed) gives each statement its own snapshot.
        db.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
                    if dialect.of(db) is dialect.POSTGRES else "BEGIN")
        yield db
    finally:
        db.conn.rollback()
        db.close()


def get_db() -> Database:
    """This request's connection, taken from the pool on first use and given back at its end.

    Outside a request (an app context in a command or a test), a connection of
    its own, closed when the context ends, as commands expect.
    """
    if "db" not in g:
        if has_request_context():
            g.db = pool(current_app).acquire()
            g.db_pooled = True
        else:
            g.db = connect(current_app.config["DB_PATH"], current_app.config["DB_BUSY_TIMEOUT_MS"])
    return g.db


def pool(app: Flask) -> Pool:
    return app.extensions["passerelle.db_pool"]


def close_db(_exc: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is None:
        return
    if g.pop("db_pooled", False):
        pool(current_app).release(db)  # rolls back whatever the request left half-done
    else:
        db.close()


def init_app(app: Flask) -> None:
    keep = max(4, app.config["SETTINGS"]["threads"])
    if dialect.is_postgres_url(app.config["DB_PATH"]):
        from passerelle.server import pg

        app.extensions["passerelle.db_pool"] = pg.PgPool(app.config["DB_PATH"], keep)
    else:
        app.extensions["passerelle.db_pool"] = Pool(
            app.config["DB_PATH"], app.config["DB_BUSY_TIMEOUT_MS"], keep=keep)
    app.teardown_appcontext(close_db)
