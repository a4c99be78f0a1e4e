"""Sites and a flat sync at the scale of a programme: the vector, a box's bytes per day, the
impact report from the summaries.

Usage: .venv/bin/python bench/sites_bench.py vector [--origins 5000]
       .venv/bin/python bench/sites_bench.py bytes [--sites 100] [--learners 20] [--events 20]
       .venv/bin/python bench/sites_bench.py impact [--learners 100000] [--events 20000000]
       .venv/bin/python bench/sites_bench.py prune [--learners 200] [--events 500]

``vector``: a hub database holding ``--origins`` origins (10 ops each, rows written
directly, with their ``heads`` row) and as many devices; times ``sync.vector`` (what the
``vector`` answer computes: one read of ``heads``; median of 20) and, for comparison, a
GROUP BY over the log, and prints the gzip size of the answer's vector, and of the
device list it now sends only when it changed.

``bytes``: a hub with ``--sites`` sites, each with ``--learners`` learners; a day
brings ``--events`` events per learner in every site, interleaved as boxes push
them. Prints the bytes (gzip batches, as on the wire) a box of one site pulls
for that day with sites, and what it pulled before sites (everything), and the
hub's time to choose them.

``impact``: synthetic summaries for one year (``activity_days``, ``activity_months``,
``activity_years``, ``progress`` completions, learners with profiles) standing for ``--events``
events of ``--learners`` learners, written in bulk (executemany in large
transactions: SQLite's COPY); then ``reports.impact`` for the year, timed
(median of 3), and a check that the CSV equals the report's rows.

``prune``: a box of one site with ``--learners`` learners and ``--events`` events each
(interleaved on the box's own origin, as tablets write them); one learner in ten moves to
another site; times ``prune_departed`` (the hub holding everything) and prints what is
left of them, the placeholder rows made and the database's size before and after a VACUUM.

Prints figures; not part of the test suite.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from passerelle.server import db as dbmod
from passerelle.server import records, sync
from passerelle.server.reports import impact as reports


def open_db(home: Path):
    home.mkdir(parents=True, exist_ok=True)
    dbmod.prepare(home / "passerelle.db")
    return dbmod.connect(home / "passerelle.db")


def timed(fn, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        t = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), result


# --- vector --------------------------------------------------------------------------------

def bench_vector(root: Path, origins: int) -> None:
    db = open_db(root / "hub")
    rng = random.Random(3)
    with records.write_tx(db):
        for i in range(origins):
            origin = f"{rng.getrandbits(128):032x}"
            db.conn.executemany(
                "INSERT INTO ops (origin, seq, version, kind, entity, subject, payload)"
                " VALUES (?, ?, ?, 'event', 'progress', 'l', '{}')",
                [(origin, s, f"{1765000000000 + s:013d}.00000.{origin}") for s in range(1, 11)])
            records.raise_head(db, origin, 10)
            db.execute("INSERT INTO sync_devices (device_id, public_key, organisation, label,"
                       " paired_at) VALUES (?, ?, NULL, ?, '2026-12-01T00:00:00+00:00')",
                       [origin, "ed25519:" + "A" * 43 + "=", f"Box {i:05d} of the programme"])
    ms, vec = timed(lambda: sync.vector(db), 20)
    group_ms, _ = timed(lambda: dict(db.execute(
        "SELECT origin, max(seq) FROM ops GROUP BY origin").fetchall()), 20)
    body = json.dumps({"vector": vec}).encode()
    devices = json.dumps(sync.device_list(db)).encode()
    list_ms, _ = timed(lambda: sync.device_list(db), 5)
    print(f"origins: {len(vec):,}")
    print(f"sync.vector (one read of heads): {ms:.1f} ms (median of 20)")
    print(f"for comparison, a GROUP BY over the log: {group_ms:.1f} ms")
    print(f"vector JSON: {len(body) / 1024:.0f} KB, gzip {len(gzip.compress(body)) / 1024:.0f} KB")
    print(f"device list JSON: {len(devices) / 1024:.0f} KB, gzip "
          f"{len(gzip.compress(devices)) / 1024:.0f} KB, built in {list_ms:.1f} ms (now built and "
          f"sent only when its version changes)")


# --- bytes per day -------------------------------------------------------------------------

def bench_bytes(root: Path, n_sites: int, learners: int, events: int) -> None:
    from passerelle.server.people import sites

    home = root / "hub"
    db = open_db(home)
    site_ids = [sites.create_site(db, f"Site {i:03d}") for i in range(n_sites)]
    people = {s: [] for s in site_ids}
    with records.write_tx(db):
        for s in site_ids:
            for j in range(learners):
                uid = f"{s[:8]}-learner-{j:03d}"
                records.apply(db, records._new_op(db, "put", "user", uid, {
                    "role": "learner", "display_name": f"L {j}", "site": s}))
                people[s].append(uid)
    sync.sign_pending(db, home)
    before = sync.vector(db)  # the box is up to date with yesterday
    rng = random.Random(5)
    order = [(s, uid) for s in site_ids for uid in people[s] for _ in range(events)]
    rng.shuffle(order)  # the hub relays what every site's boxes pushed, interleaved
    with records.write_tx(db):
        for n, (_, uid) in enumerate(order):
            records.apply(db, records._new_op(db, "event", "progress", uid, {
                "event_id": f"e{n}", "pack_id": "pack-fr", "node_id": f"node-{rng.randrange(200)}",
                "type": "answer", "correct": rng.random() < 0.7, "seconds": rng.randrange(90)}))
    sync.sign_pending(db, home)

    def pulled(site):
        wire = ops = skips = 0
        for batch in sync.changes_for_site(db, before, site, 5000):
            wire += len(gzip.compress(batch.lines(), compresslevel=6, mtime=0)) + 4
            ops += len(batch.ops)
            skips += len(getattr(batch, "skips", []))
        return wire, ops, skips

    t = time.perf_counter()
    wire, ops, skips = pulled(site_ids[0])
    site_s = time.perf_counter() - t
    t = time.perf_counter()
    all_wire, all_ops, _ = pulled(None)
    all_s = time.perf_counter() - t
    print(f"{n_sites} sites x {learners} learners x {events} events: {len(order):,} ops in the day")
    print(f"a box of one site pulls {ops:,} ops + {skips:,} skip lines = {wire / 1024:.0f} KB "
          f"({wire / max(ops, 1):.0f} B per own op); hub time {site_s:.2f} s")
    print(f"before sites it pulled {all_ops:,} ops = {all_wire / 1024:.0f} KB; hub time "
          f"{all_s:.2f} s; ratio {all_wire / wire:.0f}x")


# --- impact report -------------------------------------------------------------------------

def bench_impact(root: Path, learners: int, events: int) -> None:
    db = open_db(root / "hub")
    rng = random.Random(11)
    year = date(2025, 1, 1)
    packs = [f"pack-{i}" for i in range(20)]
    with records.write_tx(db):
        db.execute("UPDATE organisations SET profile_fields = ?",
                   [json.dumps({"gender": True, "age_band": True})])
        org = db.execute("SELECT count(*) FROM organisations").fetchone()[0]
        if not org:
            records.put(db, "organisation", "org", {"name": "Programme", "profile_fields":
                                                    {"gender": True, "age_band": True}})
    per_learner = events // learners
    t0 = time.perf_counter()
    day_rows = month_rows = progress_rows = 0
    chunk = 5000
    for first in range(0, learners, chunk):
        days, months, users, progress = [], {}, [], []
        for i in range(first, min(first + chunk, learners)):
            uid = f"learner-{i:07d}"
            users.append((uid, "v", 0, "learner", f"L{i}", json.dumps(
                {"gender": rng.choice(["woman", "man", "non-binary"]),
                 "age_band": rng.choice(["under-18", "18-25", "26-40", "41-60", "over-60"])})))
            active = sorted(rng.sample(range(365), 12))  # 12 days of the year, many events each
            pack = rng.choice(packs)
            per_day = max(1, per_learner // len(active))
            for d in active:
                day = year + timedelta(days=d)
                days.append((day.isoformat(), uid, pack, per_day, per_day * 45))
                key = (day.isoformat()[:7], uid, pack)
                m = months.setdefault(key, [0, 0])
                m[0] += per_day
                m[1] += per_day * 45
            for n in range(5):
                ms = int(time.mktime((year + timedelta(days=active[n])).timetuple()) * 1000)
                v = f"{ms:013d}.00000.hub"
                progress.append((uid, pack, f"node-{n}", 1.0, v, 300, v, v))
        with records.write_tx(db):
            db.conn.executemany("INSERT INTO users (uuid, version, deleted, role, display_name,"
                                " profile) VALUES (?, ?, ?, ?, ?, ?)", users)
            db.conn.executemany("INSERT INTO activity_days (day, learner_uuid, pack_id, events,"
                                " seconds) VALUES (?, ?, ?, ?, ?)", days)
            db.conn.executemany("INSERT INTO activity_months (month, learner_uuid, pack_id, events,"
                                " seconds) VALUES (?, ?, ?, ?, ?)",
                                [(*k, *v) for k, v in months.items()])
            years: dict[tuple, list[int]] = {}
            for (month, learner, pack), (n, seconds) in months.items():
                y = years.setdefault((month[:4], learner, pack), [0, 0])
                y[0] += n
                y[1] += seconds
            db.conn.executemany("INSERT INTO activity_years (year, learner_uuid, pack_id, events,"
                                " seconds) VALUES (?, ?, ?, ?, ?)",
                                [(*k, *v) for k, v in years.items()])
            db.conn.executemany("INSERT INTO progress (learner_uuid, pack_id, node_id, progress,"
                                " completed_version, seconds, first_version, last_version)"
                                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", progress)
        day_rows += len(days)
        month_rows += len(months)
        progress_rows += len(progress)
    print(f"{learners:,} learners, standing for {per_learner * learners:,} events: "
          f"{day_rows:,} daily rows, {month_rows:,} monthly rows, {progress_rows:,} completions; "
          f"written in {time.perf_counter() - t0:.0f} s")
    db.execute("ANALYZE")
    runs = []
    for _ in range(3):
        t = time.perf_counter()
        report = reports.impact(db, year, date(2025, 12, 31))
        runs.append(time.perf_counter() - t)
    t = time.perf_counter()
    partial = reports.impact(db, date(2025, 2, 10), date(2025, 11, 20))
    partial_s = time.perf_counter() - t
    csv_rows = "".join(reports.impact_csv(report)).count("\n")
    assert csv_rows == len(report.rows()) + 1, (csv_rows, len(report.rows()))
    print(f"impact, one year (the yearly summary): {statistics.median(runs):.2f} s (median of 3); "
          f"people {report.people:,}, hours {report.hours}, completed {report.completed:,}")
    print(f"impact, 10 Feb - 20 Nov (months + edge days): {partial_s:.2f} s; people {partial.people:,}")
    print(f"CSV: {csv_rows} lines = the report's rows + header")


def bench_prune(root: Path, learners: int, events: int) -> None:
    from passerelle.server.people import sites

    home = root / "box"
    db = open_db(home)
    here, there = sites.create_site(db, "Here"), sites.create_site(db, "There")
    sites.set_this_site(db, here)
    people = [f"learner-{j:04d}" for j in range(learners)]
    with records.write_tx(db):
        for uid in people:
            records.apply(db, records._new_op(db, "put", "user", uid, {
                "role": "learner", "display_name": uid, "site": here}))
    rng = random.Random(5)
    order = [uid for uid in people for _ in range(events)]
    rng.shuffle(order)
    with records.write_tx(db):
        for n, uid in enumerate(order):
            records.apply(db, records._new_op(db, "event", "progress", uid, {
                "event_id": f"e{n}", "pack_id": "pack-fr", "node_id": f"node-{rng.randrange(200)}",
                "type": "answer", "correct": rng.random() < 0.7, "seconds": rng.randrange(90)}))
    sync.sign_pending(db, home)
    movers = people[::10]
    for uid in movers:
        sites.move(db, "user", uid, there)
    sync.sign_pending(db, home)
    db.execute("VACUUM")
    size = (home / "passerelle.db").stat().st_size
    rows = db.execute("SELECT count(*) FROM ops").fetchone()[0]
    t = time.perf_counter()
    pruned = sync.prune_departed(db, sync.vector(db))
    took = time.perf_counter() - t
    db.execute("VACUUM")
    left = sum(db.execute("SELECT count(*) FROM progress WHERE learner_uuid = ?", [u]).fetchone()[0]
               for u in movers)
    print(f"{learners} learners x {events} events ({rows:,} rows in ops); {len(movers)} move away")
    print(f"prune_departed: {len(pruned.learners)} learners, {pruned.ops:,} ops in {took:.2f} s "
          f"({took / max(len(pruned.learners), 1) * 1000:.0f} ms per learner); progress rows left "
          f"of them: {left}")
    print(f"ops rows {rows:,} -> {db.execute('SELECT count(*) FROM ops').fetchone()[0]:,} "
          f"(placeholders {db.execute('SELECT count(*) FROM ops WHERE entity = ?', [sync.ops.SKIP_ENTITY]).fetchone()[0]:,});"
          f" database {size / 1e6:.1f} MB -> {(home / 'passerelle.db').stat().st_size / 1e6:.1f} MB"
          " after VACUUM")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["vector", "bytes", "impact", "prune"])
    parser.add_argument("--origins", type=int, default=5000)
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--learners", type=int, default=None)
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--keep", type=Path, help="Build in this folder and keep it.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sites-bench-") as tmp:
        root = args.keep or Path(tmp)
        if args.what == "vector":
            bench_vector(root, args.origins)
        elif args.what == "bytes":
            bench_bytes(root, args.sites, args.learners or 20, args.events or 20)
        elif args.what == "prune":
            bench_prune(root, args.learners or 200, args.events or 500)
        else:
            bench_impact(root, args.learners or 100_000, args.events or 20_000_000)


if __name__ == "__main__":
    main()
