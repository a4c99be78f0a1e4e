"""The SQL fragments that differ between the two engines a Passerelle database runs on.

Boxes run SQLite; a hub may run PostgreSQL (:mod:`.pg`). Most of the SQL the
server writes is the same on both (``ON CONFLICT`` upserts, ``?`` placeholders,
which the PostgreSQL engine turns into its own). What differs is named here,
once, and code that needs it asks the database it holds: ``dialect.of(db)``.

The PostgreSQL engine also rewrites the SQLite spellings already written
through the code (``INSERT OR IGNORE``, scalar ``max(a, b)``, ``json_extract``,
``COLLATE NOCASE``): see :func:`passerelle.server.pg.translate`.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext


class Dialect:
    """SQLite's spelling (the default, and what every box runs)."""

    name = "sqlite"
    # Row locks: SQLite has one writer at a time (BEGIN IMMEDIATE), so a row needs no lock
    # of its own; PostgreSQL locks the rows a writer reads to change.
    for_update = ""

    def greatest(self, *exprs: str) -> str:
        return f"max({', '.join(exprs)})"

    def least(self, *exprs: str) -> str:
        return f"min({', '.join(exprs)})"

    def json_text(self, column: str, key: str) -> str:
        """A top-level key of a JSON text column, as text."""
        return f"json_extract({column}, '$.{key}')"

    def group_concat(self, expr: str) -> str:
        """The texts of a group's ``expr``, joined by commas (aggregate)."""
        return f"group_concat({expr})"

    def json_is_true(self, column: str, key: str) -> str:
        """Whether a top-level key of a JSON text column is ``true``."""
        return f"json_extract({column}, '$.{key}') = 1"

    def nocase(self, expr: str) -> str:
        """An expression ordered without regard to ASCII case."""
        return f"{expr} COLLATE NOCASE"

    def contains_folded(self, column: str) -> str:
        """Whether ``column``, folded as names are compared (``accounts.fold``: lower case,
        no accents), holds the parameter, folded already. On SQLite through the
        ``passerelle_fold`` function the caller registers on its connection."""
        return f"instr(passerelle_fold({column}), ?) > 0"

    def day_of_ms(self, expr: str) -> str:
        """The UTC day (YYYY-MM-DD) of a count of milliseconds since 1970."""
        return f"date(({expr}) / 1000, 'unixepoch')"

    def insert_ignore(self, table: str, columns: list[str] | tuple[str, ...]) -> str:
        """An insert that does nothing when the row's key is already there."""
        return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES"
                f" ({', '.join('?' * len(columns))}) ON CONFLICT DO NOTHING")

    def analytics(self, db):
        """Around a report's statements that aggregate over the whole organisation."""
        return nullcontext()

    # Many rows in one statement (records.write_rows): False, the statement takes one row and
    # is run once per row (SQLite runs in the process: a statement costs no round trip).
    rows_as_json = False

    def rows_source(self, table: str, columns: list[str] | tuple[str, ...]) -> str:
        """What follows ``INSERT INTO table (columns)`` to insert the rows given."""
        return f"VALUES ({', '.join('?' * len(columns))})"


class PostgresDialect(Dialect):
    name = "postgresql"
    for_update = " FOR UPDATE"

    def greatest(self, *exprs: str) -> str:
        return f"greatest({', '.join(exprs)})"

    def least(self, *exprs: str) -> str:
        return f"least({', '.join(exprs)})"

    def json_text(self, column: str, key: str) -> str:
        return f"({column}::jsonb ->> '{key}')"

    def group_concat(self, expr: str) -> str:
        return f"string_agg(({expr})::text, ',')"

    def json_is_true(self, column: str, key: str) -> str:
        return f"coalesce({column}::jsonb -> '{key}' = 'true'::jsonb, false)"

    def nocase(self, expr: str) -> str:
        return f"lower({expr})"

    def contains_folded(self, column: str) -> str:
        # The fold in SQL: decomposed (NFKD), without the combining marks of Latin letters
        # (accents) and of Arabic ones (short vowels), then lower case by ICU's root locale,
        # since the columns' own collation ("C") lowers only ASCII letters.
        return (f"strpos(lower(regexp_replace(normalize({column}, NFKD),"
                r" '[\u0300-\u036f\u064b-\u065f\u0670]', '', 'g')" ' COLLATE "und-x-icu"),'
                " ?) > 0")

    # One parameter, a JSON array of objects, whatever the number of rows: one round trip and
    # one plan for a whole batch, each value read as its column's type by the table's own row
    # type (no list of types to keep beside the schema).
    rows_as_json = True

    def rows_source(self, table: str, columns: list[str] | tuple[str, ...]) -> str:
        return f"SELECT {', '.join(columns)} FROM json_populate_recordset(NULL::{table}, ?)"

    # A report groups a million learners at once: with PostgreSQL's default work_mem (4 MB) its
    # hash aggregates and the sort of a UNION spill to disk in batches. For the report's
    # transaction only, and only for the one connection that runs it.
    REPORT_WORK_MEM = "256MB"

    @contextmanager
    def analytics(self, db):
        with db.atomic():
            db.execute(f"SET LOCAL work_mem = '{self.REPORT_WORK_MEM}'")
            yield

    def day_of_ms(self, expr: str) -> str:
        return f"to_char(to_timestamp(({expr}) / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


SQLITE = Dialect()
POSTGRES = PostgresDialect()


def of(db) -> Dialect:
    """The dialect of a database handle (a plain sqlite-utils database is SQLite)."""
    return getattr(db, "dialect", SQLITE)


def chunks(db, sql: str, parameters=(), size: int = 2000):
    """The rows of a large read (an export), ``size`` at a time, never all in memory at once.

    SQLite's cursor already steps through the answer as it is read; PostgreSQL's database
    reads through a server-side cursor (``PgDatabase.stream_chunks``).
    """
    stream = getattr(db, "stream_chunks", None)
    if stream is not None:
        yield from stream(sql, list(parameters), size)
        return
    cursor = db.execute(sql, list(parameters))
    while rows := cursor.fetchmany(size):
        yield rows


def is_postgres_url(target) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))
