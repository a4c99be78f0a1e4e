"""The impact report on a hub on PostgreSQL at the scale of a national programme.

Usage: .venv/bin/python bench/impact_pg_bench.py [--learners 1000000] [--events 200000000]
                                                 [--keep-cluster DIR]

Starts a throwaway PostgreSQL cluster (as bench/hub_pg_bench.py does) and a migrated hub
database, then writes with COPY the summaries a year of ``--events`` events of
``--learners`` learners would leave (the impact report reads nothing else): the
learners with a profile, ``activity_days`` (each learner active on 12 days of 2025 in
one of 20 packs, the events spread over those days), ``activity_months`` and
``activity_years`` (the same added up by month and by year, as the fold keeps them), five completions each in ``progress``,
class sessions with attendance. The raw events themselves are never written: no
report reads them. Then ``reports.impact`` for the year (median of 3) and for
10 Feb - 20 Nov (whole months and edge days), and a check that the CSV holds the
report's rows.

Prints figures; not part of the test suite. Disk: about 1 GB per 200,000 learners.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from passerelle.server import db as dbmod
from passerelle.server.reports import impact as reports

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub_pg_bench import Cluster, cluster_cpu_seconds  # noqa: E402

YEAR = date(2025, 1, 1)
PACKS = [f"pack-{i:02d}" for i in range(20)]
GENDERS = ["woman", "man", "non-binary"]
AGES = ["under-18", "18-25", "26-40", "41-60", "over-60"]


def _ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp() * 1000)


def fill(db, learners: int, events: int, chunk: int = 20_000) -> dict[str, int]:
    """COPY the summaries; the rows written per table."""
    raw = db.conn.raw
    rng = random.Random(18)
    per_learner = events // learners
    counts = {"users": 0, "activity_days": 0, "activity_months": 0, "activity_years": 0,
              "progress": 0,
              "class_sessions": 0, "attendance": 0}
    profiles = [json.dumps({"age_band": a, "gender": g}, sort_keys=True)
                for g in GENDERS for a in AGES]
    days_of_year = [YEAR + timedelta(days=d) for d in range(365)]
    versions = [f"{_ms(d):013d}.00000.hub" for d in days_of_year]
    # The keys are made after the rows (a bulk load's usual order: one sort per index instead of
    # a B-tree insert per row at a random place).
    keys = {t: [r[0] for r in raw.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
        " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary"
        " ORDER BY array_position(i.indkey, a.attnum)", [t]).fetchall()]
        for t in ("activity_days", "activity_months", "activity_years", "progress")}
    with db.atomic():
        for table in keys:
            raw.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_pkey")
        db.execute("INSERT INTO organisations (uuid, version, deleted, name, profile_fields)"
                   " VALUES ('org', 'v', 0, 'Programme', ?)",
                   [json.dumps({"age_band": True, "gender": True})])
        for first in range(0, learners, chunk):
            if first and first % 200_000 == 0:
                print(f"  {first:,} learners written", flush=True)
            users, days, months, years, progress = [], [], [], [], []
            for i in range(first, min(first + chunk, learners)):
                uid = f"learner-{i:07d}"
                users.append(f"{uid}\tv\t0\tlearner\tL{i}\t{rng.choice(profiles)}\n")
                active = sorted(rng.sample(range(365), 12))
                pack = rng.choice(PACKS)
                per_day, rest = divmod(per_learner, 12)
                month: dict[str, list[int]] = {}
                for k, d in enumerate(active):
                    n = per_day + (1 if k < rest else 0)
                    day = days_of_year[d].isoformat()
                    days.append(f"{day}\t{uid}\t{pack}\t{n}\t{n * 45}\n")
                    m = month.setdefault(day[:7], [0, 0])
                    m[0] += n
                    m[1] += n * 45
                months.extend(f"{m}\t{uid}\t{pack}\t{v[0]}\t{v[1]}\n" for m, v in month.items())
                years.append(f"{YEAR.year}\t{uid}\t{pack}\t{per_learner}\t{per_learner * 45}\n")
                for n in range(5):
                    v = versions[active[n]]
                    progress.append(f"{uid}\t{pack}\tnode-{n}\t1\t{v}\t300\t{v}\t{v}\n")
            for table, columns, lines in (
                    ("users", "uuid, version, deleted, role, display_name, profile", users),
                    ("activity_days", "day, learner_uuid, pack_id, events, seconds", days),
                    ("activity_months", "month, learner_uuid, pack_id, events, seconds", months),
                    ("activity_years", "year, learner_uuid, pack_id, events, seconds", years),
                    ("progress", "learner_uuid, pack_id, node_id, progress, completed_version,"
                                 " seconds, first_version, last_version", progress)):
                with raw.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    copy.write("".join(lines))
                counts[table] += len(lines)
        # Sessions: one a week in each of 500 classes, 20 learners present at each.
        sessions, attendance = [], []
        for c in range(500):
            for w in range(52):
                s = f"s-{c}-{w}"
                sessions.append(f"{s}\tv\t0\tclass-{c}\t{(YEAR + timedelta(weeks=w)).isoformat()}\n")
                attendance.extend(f"a-{c}-{w}-{k}\tv\t0\t{s}\tlearner-{(c * 20 + k) % learners:07d}"
                                  f"\t1\n" for k in range(20))
        with raw.cursor().copy("COPY class_sessions (uuid, version, deleted, class_uuid, date)"
                               " FROM STDIN") as copy:
            copy.write("".join(sessions))
        with raw.cursor().copy("COPY attendance (uuid, version, deleted, session_uuid,"
                               " learner_uuid, present) FROM STDIN") as copy:
            copy.write("".join(attendance))
        counts["class_sessions"], counts["attendance"] = len(sessions), len(attendance)
        for table, columns in keys.items():
            raw.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({', '.join(columns)})")
    return counts


def sizes(db) -> str:
    # A partitioned summary's size is its partitions'.
    rows = db.execute(
        "SELECT t, coalesce((SELECT sum(pg_total_relation_size(relid))"
        " FROM pg_partition_tree(t::regclass)), pg_total_relation_size(t::regclass))"
        " FROM unnest(ARRAY['users', 'activity_days', 'activity_months', 'activity_years',"
        " 'progress']) t").fetchall()
    return ", ".join(f"{name} {size / 2**30:.1f} GB" for name, size in sorted(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=200_000_000)
    parser.add_argument("--no-fsync", action="store_true",
                        help="load faster (the report's timings do not depend on it)")
    parser.add_argument("--keep", action="store_true",
                        help="leave the cluster running (its URL printed), for --url")
    parser.add_argument("--url", help="report on a database a --keep run filled")
    args = parser.parse_args()
    pgroot = Path(tempfile.mkdtemp(prefix="impact-pg-cluster-"))
    cluster = None
    if args.url is None:
        cluster = Cluster(pgroot, fsync=not args.no_fsync).start()
    try:
        if args.url is None:
            url = cluster.create("hub")
            db = dbmod.connect(url)
            t = time.perf_counter()
            counts = fill(db, args.learners, args.events)
            copied = time.perf_counter() - t
            t = time.perf_counter()
            db.execute("VACUUM ANALYZE")
            vacuumed = time.perf_counter() - t
            print(f"{args.learners:,} learners standing for {args.events:,} events in 2025, written"
                  f" with COPY in {copied:.0f} s (VACUUM ANALYZE {vacuumed:.0f} s): "
                  + ", ".join(f"{n:,} {table}" for table, n in counts.items())
                  + f"; {sizes(db)}; load average {os.getloadavg()[0]:.1f}", flush=True)
            if args.keep:
                print(f"kept: {url} (stop: pg_ctl -D {pgroot / 'data'} stop)", flush=True)
        else:
            db = dbmod.connect(args.url)
        data = Path(db.execute("SHOW data_directory").fetchone()[0])
        runs, cpu = [], []
        for _ in range(3):
            t, c = time.perf_counter(), cluster_cpu_seconds(data) + time.process_time()
            report = reports.impact(db, YEAR, date(2025, 12, 31))
            runs.append(time.perf_counter() - t)
            time.sleep(0.5)  # parallel workers' time is counted once they end
            cpu.append(cluster_cpu_seconds(data) + time.process_time() - c)
        t = time.perf_counter()
        partial = reports.impact(db, date(2025, 2, 10), date(2025, 11, 20))
        partial_s = time.perf_counter() - t
        csv_text = "".join(reports.impact_csv(report))
        lines = csv_text.count("\n")
        assert lines == len(report.rows()) + 1, (lines, len(report.rows()))
        print(f"impact, one year (the yearly summary): {statistics.median(runs):.2f} s (median of 3:"
              f" {', '.join(f'{r:.2f}' for r in runs)}; CPU of server and client"
              f" {statistics.median(cpu):.2f} s); people {report.people:,},"
              f" hours {reports.hours(report.seconds)}, completed {report.completed:,},"
              f" sessions {report.sessions:,}, attendances {report.attendances:,}")
        print(f"impact, 10 Feb - 20 Nov (months + edge days): {partial_s:.2f} s;"
              f" people {partial.people:,}")
        print(f"CSV: {lines} lines = the report's rows + header; load average"
              f" {os.getloadavg()[0]:.1f}")
        db.close()
    finally:
        if cluster is not None and not args.keep:
            cluster.stop()
        if not args.keep:
            shutil.rmtree(pgroot, ignore_errors=True)


if __name__ == "__main__":
    main()
