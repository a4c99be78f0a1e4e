"""Soak: many simulated boxes syncing with one hub over the real protocol, with real keys.

Usage: .venv/bin/python bench/soak_bench.py [--boxes 200] [--minutes 5] [--period 60]
                                            [--events 2] [--sites 50] [--workers 2]
                                            [--postgresql]

A hub (`passerelle serve` on 127.0.0.1, 8 threads) and ``--boxes`` boxes, each a
real SQLite data home with its own Ed25519 device key, trusted by the hub (as
pairing would leave them: the hub is each box's anchor), spread over ``--sites``
sites. Every box, on its own timer (``--period`` seconds, ±50 % jitter: the
15-minute interval compressed), records ``--events`` learning events of its own
learner and runs ``sync_client.sync_once`` (hello, vector, pull, push, done),
then once more at once: a sync with nothing new, timed. Boxes run as threads
in ``--workers`` processes. Prints errors, syncs, the p50/p95 of a nothing-new
sync and of a sync with new events, and the hub's memory (VmRSS at the end,
VmHWM peak). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import atexit
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from passerelle.server import db as dbmod
from passerelle.server import records, sync

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _box import Server  # noqa: E402


def vm(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def prepare(root: Path, boxes: int, n_sites: int, hub_url: str | None = None
            ) -> tuple[Path, list[Path]]:
    from passerelle.server.people import sites

    template = root / "template.db"
    dbmod.prepare(template)
    conn = dbmod.connect(template)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    hub_home = root / "hub"
    hub_home.mkdir()
    if hub_url:
        (hub_home / "passerelle.toml").write_text(f'database_url = "{hub_url}"\n')
    else:
        shutil.copy(template, hub_home / "passerelle.db")
    hub = dbmod.connect(hub_url or hub_home / "passerelle.db")
    records.put(hub, "organisation", "org-soak", {"name": "Soak programme", "languages": ["fr"]})
    records.put(hub, "user", "coordinator", {"role": "coordinator", "display_name": "Coordinator",
                                             "username": "coordinator"})
    hub_key = sync.identity(hub, hub_home)
    site_ids = [sites.create_site(hub, f"Site {i:03d}") for i in range(n_sites)]
    homes = []
    for i in range(boxes):
        home = root / f"box{i:04d}"
        home.mkdir()
        shutil.copy(template, home / "passerelle.db")
        db = dbmod.connect(home / "passerelle.db")
        db.execute("UPDATE meta SET value = ? WHERE key = 'device_id'", [f"soak-box-{i:04d}"])
        db.conn.commit()
        ident = sync.identity(db, home)  # makes the box's key
        sync.trust(db, hub_key["device_id"], hub_key["public_key"], label="hub",
                   organisation="org-soak", anchor=True)
        sync.trust(hub, ident["device_id"], ident["public_key"], label=f"box {i}")
        sync.assign_site(hub, ident["device_id"], site_ids[i % n_sites])
        db.close()
        homes.append(home)
    hub.close()
    return hub_home, homes


def run_boxes(args: tuple) -> dict:
    homes, url, seconds, period, events, seed = args
    rng = random.Random(seed)
    lock = threading.Lock()
    stats = {"syncs": 0, "errors": [], "idle_ms": [], "busy_ms": [], "pushed": 0, "pulled": 0}
    stop_at = time.monotonic() + seconds

    def box(home: Path, index: int) -> None:
        from passerelle.server.sync import client

        factory = lambda: dbmod.connect(home / "passerelle.db")  # noqa: E731
        learner = f"learner-of-{home.name}"
        first = True
        time.sleep(rng.uniform(0, period))  # boxes do not all start in the same second
        while time.monotonic() < stop_at:
            db = factory()
            try:
                if first:
                    from passerelle.server.people import sites
                    if sites.this_site(db) is not None:
                        records.put(db, "user", learner, {"role": "learner", "display_name": home.name,
                                                          "site": sites.this_site(db)})
                        first = False
                for _ in range(events):
                    records.event(db, learner, {"pack_id": "pack-fr", "node_id": f"n{rng.randrange(50)}",
                                                "type": "answer", "correct": True, "seconds": 20})
            finally:
                db.close()
            for busy in (True, False):
                t = time.perf_counter()
                result = client.sync_once(factory, home, url, timeout=60)
                ms = (time.perf_counter() - t) * 1000
                with lock:
                    stats["syncs"] += 1
                    if not result.ok:
                        stats["errors"].append(result.summary()[:200])
                    elif busy:
                        stats["busy_ms"].append(ms)
                        stats["pushed"] += result.pushed.applied
                        stats["pulled"] += result.pulled.applied
                    else:
                        stats["idle_ms"].append(ms)
            time.sleep(period * rng.uniform(0.5, 1.5))

    threads = [threading.Thread(target=box, args=(h, i), daemon=True) for i, h in enumerate(homes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 600)
    return stats


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--period", type=float, default=60)
    parser.add_argument("--events", type=int, default=2)
    parser.add_argument("--sites", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--postgresql", action="store_true", help="the hub on PostgreSQL")
    args = parser.parse_args()
    cluster = pgroot = None
    if args.postgresql:
        from hub_pg_bench import Cluster

        pgroot = Path(tempfile.mkdtemp(prefix="soak-pg-"))
        cluster = Cluster(pgroot, fsync=True).start()
        atexit.register(lambda: (cluster.stop(), shutil.rmtree(pgroot, ignore_errors=True)))
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        hub_home, homes = prepare(root, args.boxes, args.sites,
                                  cluster.create("soak_hub") if cluster else None)
        print(f"hub on {'PostgreSQL' if cluster else 'SQLite'}; load average "
              f"{os.getloadavg()[0]:.1f} at the start")
        print(f"{args.boxes} boxes in {args.sites} sites prepared in {time.perf_counter() - t:.0f} s")
        server = Server(hub_home, threads=8)
        try:
            shares = [(homes[i::args.workers], server.url, args.minutes * 60, args.period, args.events, i)
                      for i in range(args.workers)]
            with multiprocessing.Pool(args.workers) as pool:
                parts = pool.map(run_boxes, shares)
            rss, hwm = vm(server.proc.pid, "VmRSS"), vm(server.proc.pid, "VmHWM")
        finally:
            server.stop()
            log = (hub_home / "bench-server.log").read_text(errors="replace").splitlines()
            errors_logged = [line for line in log if "Error" in line or "error" in line]
            print(f"hub log: {len(errors_logged)} error lines; the last ones:")
            for line in errors_logged[-6:]:
                print("   ", line[:300])
    errors = [e for p in parts for e in p["errors"]]
    idle = [ms for p in parts for ms in p["idle_ms"]]
    busy = [ms for p in parts for ms in p["busy_ms"]]
    print(f"{sum(p['syncs'] for p in parts):,} syncs in {args.minutes:g} min; errors: {len(errors)}")
    for e in errors[:5]:
        print("  ", e)
    print(f"ops pushed {sum(p['pushed'] for p in parts):,}, pulled {sum(p['pulled'] for p in parts):,}")
    print(f"nothing-new sync: p50 {statistics.median(idle) if idle else float('nan'):.0f} ms, "
          f"p95 {pct(idle, 0.95):.0f} ms ({len(idle)} syncs)")
    print(f"sync with new events: p50 {statistics.median(busy) if busy else float('nan'):.0f} ms, "
          f"p95 {pct(busy, 0.95):.0f} ms ({len(busy)} syncs)")
    print(f"hub memory: VmRSS {rss:.0f} MB at the end, VmHWM {hwm:.0f} MB peak")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
