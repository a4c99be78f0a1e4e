"""The PostgreSQL engine: a hub's database when ``database_url`` is a ``postgresql://`` URL.

Boxes never import this module (nor psycopg): :mod:`.db` imports it only for a
PostgreSQL URL, and an architecture test checks that psycopg is imported here
and nowhere else.

Not an ORM: :class:`PgDatabase` offers the part of sqlite-utils' ``Database``
that the hub's code uses (``execute``, ``conn.execute/executemany/commit``,
``conn.in_transaction``, ``atomic``), and :func:`translate` rewrites the SQLite
spellings that code was written in:

- ``?`` placeholders become ``%s`` (and a literal ``%`` becomes ``%%``);
- ``BEGIN IMMEDIATE`` becomes ``BEGIN`` (row locks, taken with ``FOR UPDATE``
  where it matters, replace SQLite's single writer);
- ``INSERT OR IGNORE`` becomes ``ON CONFLICT DO NOTHING``; ``INSERT OR REPLACE``
  an upsert on the table's primary key;
- scalar ``max(a, b)`` / ``min(a, b)`` become ``greatest`` / ``least``;
- ``json_extract(x, '$.k')`` becomes ``x::jsonb #>> '{k}'`` (text);
- ``x COLLATE NOCASE`` becomes ``lower(x)``.

Connections run in autocommit: a transaction is what ``write_tx`` or
``atomic`` opens with ``BEGIN``, so a read never holds a snapshot open between
requests. Every text column is ``COLLATE "C"`` (see :func:`translate_ddl`), so
versions and ids compare bytewise, as SQLite compares them: the order of
hybrid-clock versions is the same on both engines.
"""

from __future__ import annotations

import functools
import itertools
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg_pool
from passerelle.server.dialect import POSTGRES
from psycopg.adapt import Dumper, Loader
from psycopg.pq import TransactionStatus


class _BoolAsInt(Dumper):
    """SQLite stores True as 1 in INTEGER columns, and so does the hub's schema here."""

    oid = psycopg.adapters.types["int8"].oid

    def dump(self, obj):
        return b"1" if obj else b"0"


class _NumericAsSQLite(Loader):
    """A ``numeric`` read as SQLite gives the same value: an int when whole, else a float.

    PostgreSQL's ``sum()`` of integers is ``numeric``, which psycopg reads as ``Decimal``,
    where the code, written for SQLite, expects an int (a CSV quotes a Decimal, gettext
    does not choose a plural by one)."""

    def load(self, data):
        text = bytes(data)
        return float(text) if text.strip(b"-+").strip(b"0123456789") else int(text)


def _configure(conn: psycopg.Connection) -> None:
    conn.adapters.register_dumper(bool, _BoolAsInt)
    conn.adapters.register_loader("numeric", _NumericAsSQLite)
    # SQLite's date functions work in UTC: so does every PostgreSQL session of the hub.
    conn.execute("SET TIME ZONE 'UTC'")


def _open(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    _configure(conn)
    return conn


# --- SQL translation ---------------------------------------------------------------------

_STRING = re.compile(r"'(?:[^']|'')*'")
_MASK = re.compile(r"\x00(\d+)\x00")
_INSERT_OR = re.compile(r"^(\s*)INSERT\s+OR\s+(IGNORE|REPLACE)\s+INTO\s+(\w+)(\s*\(([^)]*)\))?",
                        re.I | re.S)
_MINMAX = re.compile(r"\b(max|min)\s*\(", re.I)
_JSON = re.compile(r"json_extract\(\s*([\w.]+)\s*,\s*\x00(\d+)\x00\s*\)", re.I)
_NOCASE = re.compile(r"([\w.]+)\s+COLLATE\s+NOCASE\b", re.I)
_BEGIN = re.compile(r"^\s*BEGIN\s+(IMMEDIATE|DEFERRED|EXCLUSIVE)(\s+TRANSACTION)?\s*$", re.I)

# Primary keys by table, for INSERT OR REPLACE (read from the catalogue once per process).
_PRIMARY_KEYS: dict[str, tuple[str, ...]] = {}
_PK_LOCK = threading.Lock()


def _mask(sql: str) -> tuple[str, list[str]]:
    literals: list[str] = []

    def keep(m: re.Match) -> str:
        literals.append(m.group(0))
        return f"\x00{len(literals) - 1}\x00"

    return _STRING.sub(keep, sql), literals


def _unmask(sql: str, literals: list[str]) -> str:
    return _MASK.sub(lambda m: literals[int(m.group(1))], sql)


def _close_paren(sql: str, start: int) -> tuple[int, int]:
    """Index of the parenthesis closing the one before ``start``, and its top-level commas."""
    depth, commas = 1, 0
    for i in range(start, len(sql)):
        c = sql[i]
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i, commas
        elif c == "," and depth == 1:
            commas += 1
    return len(sql), commas


def _scalar_minmax(sql: str) -> str:
    out, pos = [], 0
    for m in _MINMAX.finditer(sql):
        if m.start() < pos:
            continue
        _, commas = _close_paren(sql, m.end())
        if commas:
            out.append(sql[pos:m.start()])
            out.append("greatest(" if m.group(1).lower() == "max" else "least(")
            pos = m.end()
    out.append(sql[pos:])
    return "".join(out)


def _json_path(literal: str) -> str:
    path = literal[1:-1]
    if not path.startswith("$."):
        raise ValueError(f"unsupported JSON path {literal}")
    return "'{" + ",".join(path[2:].split(".")) + "}'"


@functools.lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """SQLite's SQL as the hub writes it → PostgreSQL's (see the module docstring)."""
    if _BEGIN.match(sql):
        return "BEGIN"
    code, literals = _mask(sql)
    code = code.replace("%", "%%").replace("?", "%s")
    m = _INSERT_OR.match(code)
    if m:
        lead, how, table, listed, columns = m.groups()
        code = f"{lead}INSERT INTO {table}{listed or ''}" + code[m.end():]
        if how.upper() == "IGNORE":
            code = code.rstrip().rstrip(";") + " ON CONFLICT DO NOTHING"
        else:
            keys = _PRIMARY_KEYS.get(table.lower())
            if not keys:
                raise ValueError(f"INSERT OR REPLACE into {table}, whose primary key is unknown")
            if columns is None:
                raise ValueError(f"INSERT OR REPLACE into {table} must name its columns")
            names = [c.strip() for c in columns.split(",")]
            rest = [c for c in names if c not in keys]
            action = (f"DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in rest)}"
                      if rest else "DO NOTHING")
            code = code.rstrip().rstrip(";") + f" ON CONFLICT ({', '.join(keys)}) {action}"
    code = _scalar_minmax(code)
    code = _JSON.sub(lambda j: f"({j.group(1)}::jsonb #>> {_json_path(literals[int(j.group(2))])})",
                     code)
    code = _NOCASE.sub(r"lower(\1)", code)
    return _unmask(code, [lit.replace("%", "%%") for lit in literals])


_TYPES = [(re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\b"),
           "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
          (re.compile(r"\bINTEGER\b"), "BIGINT"),
          (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
          (re.compile(r"\bBLOB\b"), "BYTEA"),
          (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"')]
_DDL_TYPED = re.compile(r"^\s*(CREATE\s+TABLE|ALTER\s+TABLE\s+\w+\s+ADD\s+COLUMN)\b", re.I)


def translate_ddl(sql: str) -> str:
    """A migration's DDL in SQLite → PostgreSQL: the same tables, columns, keys and indexes.

    Column types map to their PostgreSQL equivalents (INTEGER → BIGINT, REAL →
    DOUBLE PRECISION, BLOB → BYTEA, TEXT → TEXT COLLATE "C", an INTEGER PRIMARY
    KEY → an identity column), ``WITHOUT ROWID`` goes. Statements that are not
    DDL go through :func:`translate`.
    """
    if not _DDL_TYPED.match(sql):
        return translate(sql)
    code, literals = _mask(sql)
    code = re.sub(r"\)\s*WITHOUT\s+ROWID\s*$", ")", code.rstrip(), flags=re.I)
    for pattern, replacement in _TYPES:
        code = pattern.sub(replacement, code)
    # ``TEXT COLLATE "C"`` must not be rewritten again by the later patterns: none matches it.
    return _unmask(code.replace("%", "%%"), [lit.replace("%", "%%") for lit in literals])


# --- Connections and the database ----------------------------------------------------------

class PgConnection:
    """What code reaches as ``db.conn`` (sqlite3.Connection's methods the hub uses)."""

    def __init__(self, raw: psycopg.Connection, translator=translate):
        self.raw = raw
        self._translate = translator

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def execute(self, sql: str, parameters=None):
        return self.raw.execute(self._translate(sql), _params(parameters))

    def executemany(self, sql: str, rows):
        cursor = self.raw.cursor()
        cursor.executemany(self._translate(sql), [_params(r) for r in rows])
        return cursor

    def commit(self) -> None:
        if self.in_transaction:
            self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self.raw.execute("ROLLBACK")

    def close(self) -> None:
        self.raw.close()


_STREAMS = itertools.count(1)


def _params(parameters):
    if parameters is None:
        return []
    if isinstance(parameters, dict):
        raise TypeError("the PostgreSQL engine takes ? placeholders, not named ones")
    return list(parameters)


class PgDatabase:
    """A PostgreSQL connection shaped like the sqlite-utils ``Database`` the hub's code uses."""

    dialect = POSTGRES

    def __init__(self, raw: psycopg.Connection, url: str, translator=translate):
        self.url = url
        self.conn = PgConnection(raw, translator)
        _load_primary_keys(raw)

    def execute(self, sql: str, parameters=None):
        return self.conn.execute(sql, parameters)

    @contextmanager
    def atomic(self) -> Iterator[PgDatabase]:
        if self.conn.in_transaction:
            yield self
            return
        self.conn.raw.execute("BEGIN")
        try:
            yield self
            self.conn.raw.execute("COMMIT")
        except BaseException:
            self.conn.rollback()
            raise

    def stream_chunks(self, sql: str, parameters=None, size: int = 2000) -> Iterator[list[tuple]]:
        """A large read through a server-side cursor, ``size`` rows at a time (see
        :func:`passerelle.server.dialect.chunks`): the whole answer never sits in this process
        (a plain cursor receives it all before the first row), so an export of millions of
        rows keeps the process's memory flat. A cursor lives in a transaction: outside one,
        a read-only snapshot of its own, ended when the rows are read or the reader stops.
        """
        raw = self.conn.raw
        own = not self.conn.in_transaction
        if own:
            raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            with raw.cursor(name=f"passerelle_stream_{next(_STREAMS)}") as cursor:
                cursor.execute(self.conn._translate(sql), _params(parameters))
                while rows := cursor.fetchmany(size):
                    yield rows
        finally:
            if own:
                self.conn.rollback()  # read only: nothing to keep

    def table_names(self) -> list[str]:
        # A partition (server/partitions.py) is part of its table, not a table of its own.
        return [r[0] for r in self.conn.raw.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
            " AND NOT c.relispartition ORDER BY 1")]

    def reset(self) -> None:
        self.conn.rollback()

    def close(self) -> None:
        self.conn.close()


def _load_primary_keys(raw: psycopg.Connection, refresh: bool = False) -> None:
    with _PK_LOCK:
        if _PRIMARY_KEYS and not refresh:
            return
        rows = raw.execute(
            "SELECT c.relname, a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()"
            " JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, pos) ON true"
            " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum"
            " WHERE i.indisprimary ORDER BY c.relname, k.pos").fetchall()
        found: dict[str, list[str]] = {}
        for table, column in rows:
            found.setdefault(table, []).append(column)
        _PRIMARY_KEYS.clear()
        _PRIMARY_KEYS.update({t: tuple(c) for t, c in found.items()})
        translate.cache_clear()


def connect(url: str) -> PgDatabase:
    return PgDatabase(_open(url), url)


class PgPool:
    """The app's connections (:class:`psycopg_pool.ConnectionPool`), lent one per request."""

    def __init__(self, url: str, keep: int):
        self.url = url
        self._pool = psycopg_pool.ConnectionPool(
            url, min_size=1, max_size=max(keep, 4), kwargs={"autocommit": True},
            configure=_configure, open=True)

    def acquire(self) -> PgDatabase:
        return PgDatabase(self._pool.getconn(), self.url)

    def release(self, db: PgDatabase) -> None:
        try:
            db.reset()
        except psycopg.Error:
            pass  # the pool checks a returned connection and throws away a broken one
        self._pool.putconn(db.conn.raw)

    def close(self) -> None:
        self._pool.close()


# --- Migrations ----------------------------------------------------------------------------

class _Migrating(PgDatabase):
    """The database as a migration function sees it: DDL written for SQLite, translated."""

    def __init__(self, db: PgDatabase):
        self.url = db.url
        self.conn = PgConnection(db.conn.raw, translate_ddl)

    def execute(self, sql: str, parameters=None):
        drop = re.match(r"^\s*DROP\s+TRIGGER\s+(IF\s+EXISTS\s+)?(\w+)\s*$", sql, re.I)
        if drop:  # PostgreSQL names a trigger's table: find it
            row = self.conn.raw.execute("SELECT tgrelid::regclass::text FROM pg_trigger"
                                        " WHERE tgname = %s", [drop.group(2)]).fetchone()
            if row is None:
                if drop.group(1):
                    return None
                raise psycopg.errors.UndefinedObject(f"trigger {drop.group(2)} does not exist")
            return self.conn.raw.execute(f"DROP TRIGGER {drop.group(2)} ON {row[0]}")
        if re.match(r"^\s*CREATE\s+TRIGGER\b", sql, re.I):
            raise NotImplementedError(
                "a SQLite trigger needs a PostgreSQL variant of its migration"
                " (migrations.postgres_variant)")
        return super().execute(sql, parameters)


MIGRATIONS_TABLE = "schema_migrations"


def applied(db: PgDatabase, set_name: str) -> list[str]:
    exists = db.conn.raw.execute("SELECT to_regclass(%s)", [MIGRATIONS_TABLE]).fetchone()[0]
    if exists is None:
        return []
    return [r[0] for r in db.conn.raw.execute(
        f"SELECT name FROM {MIGRATIONS_TABLE} WHERE migration_set = %s ORDER BY id", [set_name])]


def migrate(db: PgDatabase, sets, variants: dict) -> None:
    """Apply each set's pending migrations, in order, each in a transaction with its record.

    A migration runs as written (its SQLite DDL translated), or as its
    PostgreSQL variant when it has one (``variants``: name → function).
    An advisory lock keeps two hub processes starting at once from both migrating.
    """
    raw = db.conn.raw
    raw.execute(f"""CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
        id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        migration_set TEXT NOT NULL, name TEXT NOT NULL, applied_at TEXT NOT NULL,
        UNIQUE (migration_set, name))""")
    with db.atomic():
        raw.execute("SELECT pg_advisory_xact_lock(7340001)")
        for migrations in sets:
            done = set(applied(db, migrations.name))
            for migration in migrations._migrations:
                if migration.name in done:
                    continue
                run = variants.get(migration.name, migration.fn)
                raw.execute("SAVEPOINT migration")
                run(_Migrating(db))
                raw.execute(f"INSERT INTO {MIGRATIONS_TABLE} (migration_set, name, applied_at)"
                            " VALUES (%s, %s, now()::text)", [migrations.name, migration.name])
                raw.execute("RELEASE migration")
    _load_primary_keys(raw, refresh=True)


# --- Moving a SQLite hub here, and backups ----------------------------------------------------

def move_from_sqlite(sqlite_db, db: PgDatabase) -> dict[str, int]:
    """Copy every table of a migrated SQLite database into a migrated, empty PostgreSQL one.

    The device id comes along (``meta`` is copied whole): the hub keeps its identity, its
    operations' origin and the trust of the boxes paired with it. One transaction: a move
    that fails leaves the PostgreSQL database as it was. The trigger that keeps the
    summaries is off during the copy, since the summaries are copied as they are.
    """
    raw = db.conn.raw
    ours = set(db.table_names()) - {MIGRATIONS_TABLE}
    theirs = {r[0] for r in sqlite_db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    tables = sorted(ours & theirs)
    copied: dict[str, int] = {}
    with db.atomic():
        if raw.execute("SELECT count(*) FROM ops").fetchone()[0]:
            raise ValueError("the PostgreSQL database already holds operations; "
                             "a hub moves into an empty database")
        raw.execute("ALTER TABLE ops DISABLE TRIGGER USER")
        for table in tables:
            raw.execute(f"DELETE FROM {table}")
            names = [r[1] for r in sqlite_db.execute(f"PRAGMA table_info({table})")]
            insert = (f"INSERT INTO {table} ({', '.join(names)}) VALUES"
                      f" ({', '.join(['%s'] * len(names))})")
            cursor = sqlite_db.execute(f"SELECT {', '.join(names)} FROM {table}")
            count = 0
            while rows := cursor.fetchmany(5000):
                with raw.cursor() as out:
                    out.executemany(insert, rows)
                count += len(rows)
            copied[table] = count
        raw.execute("ALTER TABLE ops ENABLE TRIGGER USER")
        for table, column in raw.execute(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND is_identity = 'YES'").fetchall():
            if table in copied:  # identity columns go on after the copied ids
                raw.execute(f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                            f" coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)")
    return copied


def dump(url: str, dest) -> None:
    """``pg_dump`` in its custom format (restored with ``pg_restore``): one consistent snapshot
    while the hub keeps serving. Written beside ``dest`` and renamed, so never half a file."""
    import os
    import shutil
    import subprocess
    from pathlib import Path

    program = shutil.which("pg_dump") or next(
        iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))), None)
    if program is None:
        raise FileNotFoundError("pg_dump is not installed (Debian: apt-get install postgresql-client)")
    dest = Path(dest)
    partial = dest.with_name(dest.name + ".partial")
    done = subprocess.run([str(program), "--format=custom", "--no-owner", f"--file={partial}",
                           f"--dbname={url}"], capture_output=True, text=True, check=False)
    if done.returncode:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"pg_dump failed: {done.stderr.strip()}")
    with open(partial, "rb") as f:
        os.fsync(f.fileno())
    os.replace(partial, dest)
