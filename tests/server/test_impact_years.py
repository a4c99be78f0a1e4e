"""The yearly activity summary on both engines: kept by the fold like the daily and monthly
ones, back-filled by its migration, and the impact report that reads it for whole years giving
exactly what the months and days gave."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from passerelle.server import db as dbmod
from passerelle.server import records
from passerelle.server.reports import impact as reports

FIRST = date(2024, 10, 1)
DAYS = 3 * 365  # into 2027: four calendar years, three year boundaries


def sums(db, table: str, key: str, width: int) -> dict:
    """(period, learner, pack) -> (events, seconds), the period cut to ``width`` characters."""
    return {(k[:width], learner, pack): (events, seconds) for k, learner, pack, events, seconds in
            db.execute(f"SELECT substr({key}, 1, {width}), learner_uuid, pack_id, sum(events),"
                       f" sum(seconds) FROM {table} GROUP BY substr({key}, 1, {width}),"
                       f" learner_uuid, pack_id").fetchall()}


def random_events(db, rng: random.Random, n: int) -> list[records.Op]:
    """``n`` events of 25 learners (with profiles) and one without a record, in 3 packs over
    four calendar years, each folded as the box records it."""
    learners = [f"learner-{i}" for i in range(25)]
    for i, learner in enumerate(learners):
        records.put(db, "user", learner, {"role": "learner", "display_name": f"L{i}", "profile": {
            "gender": rng.choice(["woman", "man", "non-binary", None])}})
    learners.append("gone-learner")  # a learner whose record never reached this database
    ops = []
    for i in range(n):
        day = FIRST + timedelta(days=rng.randrange(DAYS))
        ops.append(records.event(db, rng.choice(learners), {
            "event_id": f"e{i}", "pack_id": rng.choice(["p1", "p2", "demo-fr"]),
            "node_id": "n", "type": "progress", "seconds": rng.randrange(900),
            "occurred_at": f"{day.isoformat()}T{rng.randrange(24):02d}:30:00+00:00"}))
    return ops


def test_the_yearly_rows_are_the_monthly_ones_added_up_and_never_counted_twice(databases):
    db = databases.new("hub")
    ops = random_events(db, random.Random(30), 300)
    years = sums(db, "activity_years", "year", 4)
    assert years == sums(db, "activity_months", "month", 4) == sums(db, "activity_days", "day", 4)
    assert sum(events for events, _ in years.values()) == 300
    assert len({k[0] for k in years}) == 4
    # Re-applied one by one, then re-synced as a batch (shuffled, with duplicates): no change.
    with records.write_tx(db):
        assert not any(records.apply(db, op) for op in ops[:20])
        again = ops + ops[:50]
        random.Random(1).shuffle(again)
        assert records.apply_many(db, again) == []
    assert sums(db, "activity_years", "year", 4) == years


def _months_and_days_only(start, end):
    """The report's reading of the summaries without the yearly one (as it was before it)."""
    parts = reports._months_and_days(start, end)
    return " UNION ALL ".join(sql for sql, _ in parts), [p for _, ps in parts for p in ps], False


def test_the_report_over_any_range_is_the_one_the_months_and_days_give(databases, monkeypatch):
    db = databases.new("hub")
    rng = random.Random(31)
    ops = random_events(db, rng, 400)
    records.put(db, "organisation", "org", {"name": "Programme", "languages": ["fr"],
                                            "profile_fields": {"gender": "optional"}})
    # Sessions with people present (some of whom learned nothing): reached too.
    present = [*sorted({op.subject for op in ops[:40]}), "only-present"]
    marks = []
    for i in range(30):
        day = FIRST + timedelta(days=rng.randrange(DAYS))
        marks.append((day, rng.choice(present)))
        records.put(db, "class_session", f"s{i}", {"class_uuid": "c", "date": day.isoformat()})
        records.put(db, "attendance", f"a{i}", {"session_uuid": f"s{i}",
                                                "learner_uuid": marks[-1][1], "present": 1})
    ranges = [(date(2025, 1, 1), date(2025, 12, 31)), (date(2025, 1, 1), date(2026, 12, 31)),
              (date(2024, 12, 31), date(2026, 1, 1)), (date(2024, 11, 15), date(2027, 2, 3)),
              (date(2025, 1, 1), date(2026, 3, 31)), (date(2025, 6, 1), date(2026, 12, 31)),
              (date(2025, 3, 1), date(2025, 3, 31)), (date(2026, 2, 2), date(2026, 2, 2)),
              (date(2024, 1, 1), date(2024, 12, 31))]
    for _ in range(12):
        start = FIRST + timedelta(days=rng.randrange(DAYS))
        ranges.append((start, start + timedelta(days=rng.randrange(800))))
    with_years = [reports.impact(db, start, end) for start, end in ranges]
    monkeypatch.setattr(reports, "_activity", _months_and_days_only)
    without = [reports.impact(db, start, end) for start, end in ranges]
    for (start, end), new, old in zip(ranges, with_years, without, strict=True):
        assert new.rows() == old.rows(), (start, end)
        inside = [op for op in ops if start <= date.fromisoformat(records.activity_day(op)) <= end]
        assert new.people == len({op.subject for op in inside}
                                 | {who for day, who in marks if start <= day <= end}), (start, end)
        assert new.seconds == sum(op.payload["seconds"] for op in inside), (start, end)
    assert with_years[1].people > 0


@pytest.mark.parametrize(("start", "end", "years", "distinct"), [
    ("2025-01-01", "2025-12-31", ["2025"], True),
    ("2025-01-01", "2027-12-31", ["2025", "2027"], False),
    ("2024-12-31", "2026-01-01", ["2025"], False),
    ("2025-01-02", "2025-12-31", [], False),
    ("2025-03-01", "2025-03-31", [], True),
    ("2025-03-07", "2025-03-07", [], True),
])
def test_whole_years_are_read_from_the_yearly_summary(start, end, years, distinct):
    sql, params, one_per_pair = reports._activity(date.fromisoformat(start), date.fromisoformat(end))
    assert ("activity_years" in sql) == bool(years)
    assert [p for p in params if len(p) == 4] == years
    assert one_per_pair is distinct


def test_the_migration_fills_the_yearly_summary_from_the_monthly_one(databases):
    url = databases.url("hub")
    db = dbmod.connect(url)
    databases.made.append(db)
    rows = [("2019-05", "a", "p1", 2, 60), ("2019-11", "a", "p1", 1, 30), ("2019-11", "b", "p1", 4, 8),
            ("2025-01", "a", "p1", 3, 90), ("2025-12", "a", "p2", 1, 5), ("2026-02", "b", "p1", 7, 70)]
    with db.atomic():
        for row in rows:
            db.execute("INSERT INTO activity_months (month, learner_uuid, pack_id, events, seconds)"
                       " VALUES (?, ?, ?, ?, ?)", list(row))
        # As before the migration ran: no yearly table, the migration not recorded.
        if databases.engine == "postgresql":
            db.execute("DROP TABLE activity_years CASCADE")
            db.execute("DELETE FROM schema_migrations WHERE name = 'm0030_activity_years'")
        else:
            db.execute("DROP TABLE activity_years")
            db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm0030_activity_years'")
    db.close()
    databases.made.remove(db)
    dbmod.prepare(url)
    db = dbmod.connect(url)
    databases.made.append(db)
    assert sorted(db.execute("SELECT year, learner_uuid, pack_id, events, seconds"
                             " FROM activity_years").fetchall()) == [
        ("2019", "a", "p1", 3, 90), ("2019", "b", "p1", 4, 8), ("2025", "a", "p1", 3, 90),
        ("2025", "a", "p2", 1, 5), ("2026", "b", "p1", 7, 70)]
    if databases.engine == "postgresql":  # each year in its own partition, none in DEFAULT
        assert db.execute("SELECT count(*) FROM activity_years_other").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM activity_years_y2019").fetchone()[0] == 2
    # And the fold goes on adding to them.
    records.event(db, "a", {"pack_id": "p1", "node_id": "n", "type": "progress", "seconds": 10,
                            "occurred_at": "2025-06-01T10:00:00+00:00"})
    assert db.execute("SELECT events, seconds FROM activity_years WHERE year = '2025'"
                      " AND learner_uuid = 'a' AND pack_id = 'p1'").fetchone() == (4, 100)
