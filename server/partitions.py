"""Year partitions of the report summaries on a hub on PostgreSQL.

``activity_days``, ``activity_months`` and ``activity_years`` (one row per day, month or
year, learner and pack, kept by the fold) are partitioned by year there (migrations m0029 and
m0030): ``<table>_y2025`` holds 2025's rows, ``<table>_other`` (the DEFAULT partition) any row whose year has no partition yet.
:func:`ensure_summary_years` makes this year's and the next years' partitions at each start
of the hub, and those of any year whose rows the DEFAULT partition took, moving them. SQLite (every box) has no
partitions: nothing here runs there.
"""

from __future__ import annotations

from datetime import UTC, datetime

# Each summary and its partition key (text: 'YYYY-MM-DD', 'YYYY-MM' or 'YYYY').
SUMMARIES = {"activity_days": "day", "activity_months": "month", "activity_years": "year"}
YEARS_AHEAD = 2


def add_year(db, table: str, year: int) -> bool:
    """The partition of ``table`` for ``year``, made if missing (its rows moved out of the
    DEFAULT partition first, which PostgreSQL requires); True when made. Call in a transaction."""
    raw = db.conn.raw
    name = f"{table}_y{year:04d}"
    if raw.execute("SELECT to_regclass(%s)", [name]).fetchone()[0] is not None:
        return False
    key = SUMMARIES[table]
    low, high = f"{year:04d}", f"{year + 1:04d}"
    # The parent locked first: no fold writes a row of that year into DEFAULT meanwhile.
    raw.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")
    raw.execute(f"CREATE TEMP TABLE summary_move ON COMMIT DROP AS SELECT * FROM {table}_other"
                f" WHERE {key} >= %s AND {key} < %s", [low, high])
    raw.execute(f"DELETE FROM {table}_other WHERE {key} >= %s AND {key} < %s", [low, high])
    raw.execute(f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES FROM ('{low}') TO ('{high}')")
    raw.execute(f"INSERT INTO {table} SELECT * FROM summary_move")
    raw.execute("DROP TABLE summary_move")
    return True


def ensure_summary_years(db, now: datetime | None = None) -> list[str]:
    """This year's and the next :data:`YEARS_AHEAD` years' partitions of each summary (made
    ahead, so the fold writes into them from the first day of a year); the ones made."""
    if not partitioned(db):
        return []
    year = (now or datetime.now(UTC)).year
    made = []
    with db.atomic():
        for table, key in SUMMARIES.items():
            if db.conn.raw.execute("SELECT to_regclass(%s)", [f"{table}_other"]).fetchone()[0] is None:
                continue  # not made yet (a migration before the one that makes it is running)
            # And the years of rows the DEFAULT partition took meanwhile (events of a past
            # year synced late): they move to a partition of their own.
            strays = {int(r[0]) for r in db.conn.raw.execute(
                f"SELECT DISTINCT substr({key}, 1, 4) FROM {table}_other"
                f" WHERE {key} ~ '^[0-9]{{4}}'")}
            for y in sorted(strays | set(range(year, year + YEARS_AHEAD + 1))):
                if add_year(db, table, y):
                    made.append(f"{table}_y{y:04d}")
    return made


def partitioned(db) -> bool:
    if getattr(db, "dialect", None) is None or db.dialect.name != "postgresql":
        return False
    return db.conn.raw.execute(
        "SELECT count(*) FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid"
        " WHERE c.relname = 'activity_days'").fetchone()[0] > 0
