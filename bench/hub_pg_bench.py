"""A hub on PostgreSQL: apply throughput box -> hub in verified ops/s, and writers at once.

Usage: .venv/bin/python bench/hub_pg_bench.py [--boxes 4] [--box-ops 20000] [--workers 1 2]
                                              [--no-fsync]

Starts a throwaway PostgreSQL cluster of its own (Debian's initdb and pg_ctl, as the
``postgres`` user when run as root, on 127.0.0.1; fsync on unless ``--no-fsync``). Makes
``--boxes`` SQLite boxes of ``--box-ops`` operations each (80 % progress events, 20 % puts, as
bench/sync_bench.py), signed beforehand (timed apart), and writes their batches of 5,000 as
the JSON lines that travel. Then, for each ``--workers`` count, a fresh migrated hub database
that trusts the boxes, and that many processes (a hub's request processes) each applying
whole boxes' batches with ``sync.apply_batch``: every op's Ed25519 signature verified, then
applied in one transaction per batch. Figure: ops applied / wall time, from the moment all
workers start.

Then the concurrency figures: 16 threads writing the hub's own operations (ops/s, sequence
numbers contiguous), and 50 pushes of one relayed origin at once (time, final vector).
Prints figures; not part of the test suite.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from passerelle.server import db as dbmod
from passerelle.server import records, sync

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _box import free_port  # noqa: E402
from sync_bench import fill  # noqa: E402

BATCH = 5000


class Cluster:
    def __init__(self, root: Path, fsync: bool):
        bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))[-1].parent
        self.bindir, self.root, self.port = bindir, root, free_port()
        self.as_user = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(root, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.fsync = fsync

    def run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True)

    def start(self) -> Cluster:
        data = self.root / "data"
        self.run(str(self.bindir / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres",
                 "--encoding=UTF8", "--locale=C")
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root}"
                f" -c max_connections=200 -c shared_buffers=256MB"
                + ("" if self.fsync else " -c fsync=off -c synchronous_commit=off"))
        self.run(str(self.bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-w", "-l",
                 str(self.root / "log"), "start")
        return self

    def url(self, name: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def create(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        dbmod.prepare(self.url(name))
        return self.url(name)

    def cpu_seconds(self) -> float:
        return cluster_cpu_seconds(self.root / "data")

    def stop(self) -> None:
        self.run(str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "stop")


def cluster_cpu_seconds(data: Path) -> float:
    """CPU time of a cluster's processes so far (the ones that ended count in their parent's),
    from /proc: the server's share of a run's work."""
    tick = os.sysconf("SC_CLK_TCK")
    main = int((data / "postmaster.pid").read_text().split()[0])

    def stat(pid: int) -> list[str]:
        text = Path(f"/proc/{pid}/stat").read_text()
        return text[text.rindex(")") + 2:].split()

    fields = stat(main)
    total = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != main:
            try:
                fields = stat(int(entry.name))
            except (OSError, ValueError):
                continue
            if int(fields[1]) == main:
                total += int(fields[11]) + int(fields[12])
    return total / tick


def make_box(root: Path, name: str, ops: int) -> tuple[str, str, Path]:
    home = root / name
    home.mkdir(parents=True)
    dbmod.prepare(home / "passerelle.db")
    db = dbmod.connect(home / "passerelle.db")
    db.execute("UPDATE meta SET value = ? WHERE key = 'device_id'", [name])
    db.conn.commit()
    fill(db, ops)
    sync.sign_pending(db, home)
    lines = root / f"{name}.lines"
    with open(lines, "w") as out:
        for batch in sync.changes_for(db, {}, max_ops=BATCH, home=home):
            out.write(batch.lines().decode())
    key = sync.identity(db, home)["public_key"]
    db.close()
    return name, key, lines


def apply_worker(url: str, files: list[str], start, results) -> None:
    db = dbmod.connect(url)
    keys = sync.trusted_keys(db)
    start.wait()
    t = time.perf_counter()
    cpu = time.process_time()
    applied = 0
    for path in files:
        with open(path) as f:
            lines = f.read().splitlines()
        for i in range(0, len(lines), BATCH):
            ops = [sync.SignedOp.from_line(line) for line in lines[i:i + BATCH]]
            applied += sync.apply_batch(db, ops, keys).applied
    results.put((applied, time.perf_counter() - t, time.process_time() - cpu))
    db.close()


def bench_apply(cluster: Cluster, boxes: list, workers: int, name: str,
                sqlite: Path | None = None) -> None:
    if sqlite is None:
        url = cluster.create(name)
    else:  # the same on a SQLite hub, for comparison on the same machine at the same time
        dbmod.prepare(sqlite)
        url = str(sqlite)
    hub = dbmod.connect(url)
    for device, key, _ in boxes:
        sync.trust(hub, device, key, label=device)
    hub.close()
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    shares = [[str(b[2]) for b in boxes[i::workers]] for i in range(workers)]
    procs = [ctx.Process(target=apply_worker, args=(url, share, start, results))
             for share in shares if share]
    for p in procs:
        p.start()
    time.sleep(1)
    server_cpu = cluster.cpu_seconds()
    t = time.perf_counter()
    start.set()
    done = [results.get() for _ in procs]
    wall = time.perf_counter() - t
    for p in procs:
        p.join()
    time.sleep(1)  # the workers' server processes end, and their time is counted
    server_cpu = cluster.cpu_seconds() - server_cpu if sqlite is None else 0.0
    applied = sum(a for a, _, _ in done)
    client_cpu = sum(c for _, _, c in done)
    hub = dbmod.connect(url)
    vector = sync.vector(hub)
    hub.close()
    assert sum(vector.get(b[0], 0) for b in boxes) == applied, vector
    engine = "SQLite" if sqlite else "PostgreSQL"
    cpu = client_cpu + server_cpu
    print(f"apply box -> {engine} hub, {workers} worker process(es): {applied:,} ops in {wall:.1f} s = "
          f"{applied / wall:,.0f} verified ops/s; CPU {client_cpu:.1f} s in the workers"
          f" + {server_cpu:.1f} s in PostgreSQL = {applied / cpu:,.0f} ops per CPU-second"
          f"; load average {os.getloadavg()[0]:.1f}")


def bench_own_ops(cluster: Cluster, threads: int = 16, per_thread: int = 200) -> None:
    url = cluster.create("own_ops")
    barrier = threading.Barrier(threads + 1)

    def work(i: int) -> None:
        db = dbmod.connect(url)
        barrier.wait()
        for k in range(per_thread):
            records.event(db, f"learner-{i}", {"pack_id": "p", "node_id": f"n{k % 20}",
                                               "type": "progress", "progress": 0.5})
        db.close()

    ts = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    db = dbmod.connect(url)
    me = records.device_id(db)
    seqs = [r[0] for r in db.execute("SELECT seq FROM ops WHERE origin = ? ORDER BY seq", [me])]
    db.close()
    total = threads * per_thread
    print(f"{threads} threads writing own ops: {len(seqs):,} of {total:,} written, contiguous: "
          f"{seqs == list(range(1, total + 1))}, {total / wall:,.0f} ops/s ({wall:.1f} s)")


def bench_pushes(cluster: Cluster, box, pushes: int = 50) -> None:
    url = cluster.create("pushes")
    device, key, path = box
    hub = dbmod.connect(url)
    sync.trust(hub, device, key, label=device)
    keys = sync.trusted_keys(hub)
    hub.close()
    lines = Path(path).read_text().splitlines()[:BATCH]
    ops = [sync.SignedOp.from_line(line) for line in lines]
    barrier = threading.Barrier(pushes + 1)
    applied = []

    def work() -> None:
        db = dbmod.connect(url)
        barrier.wait()
        applied.append(sync.apply_batch(db, ops, keys).applied)
        db.close()

    ts = [threading.Thread(target=work) for _ in range(pushes)]
    for t in ts:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    db = dbmod.connect(url)
    vector = sync.vector(db)[device]
    db.close()
    print(f"{pushes} concurrent pushes of one origin's {len(ops):,} ops: applied {sum(applied):,} "
          f"in all, final vector {vector:,} (= op count: {vector == len(ops)}), {wall:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boxes", type=int, default=4)
    parser.add_argument("--box-ops", type=int, default=20_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-fsync", action="store_true")
    parser.add_argument("--sqlite", action="store_true", help="also apply to a SQLite hub")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hub-pg-bench-"))
    pgroot = Path(tempfile.mkdtemp(prefix="hub-pg-cluster-"))  # the postgres user's own
    cluster = Cluster(pgroot, fsync=not args.no_fsync).start()
    try:
        t = time.perf_counter()
        boxes = [make_box(root, f"box{i}", args.box_ops) for i in range(args.boxes)]
        print(f"{args.boxes} boxes of {args.box_ops:,} ops made and signed in "
              f"{time.perf_counter() - t:.0f} s (not counted); fsync "
              f"{'off' if args.no_fsync else 'on'}; load average {os.getloadavg()[0]:.1f}")
        for n in args.workers:
            bench_apply(cluster, boxes, n, f"hub_{n}")
        if args.sqlite:
            bench_apply(cluster, boxes, 1, "", sqlite=root / "sqlite-hub.db")
        bench_own_ops(cluster)
        bench_pushes(cluster, boxes[0])
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(pgroot, ignore_errors=True)


if __name__ == "__main__":
    main()
