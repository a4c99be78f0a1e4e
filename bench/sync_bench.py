"""Sync throughput and memory: N ops from one box to another, directly, by a bundle file, and
over HTTP to a real `passerelle serve` hub.

Usage: .venv/bin/python bench/sync_bench.py [--ops 1000000] [--batch 5000] [--keep DIR]
       .venv/bin/python bench/sync_bench.py --http [--ops 1000000] [--pull] [--runs 20]
       .venv/bin/python bench/sync_bench.py --boxes 50 [--box-ops 2000]

Box A gets N operations (80 % progress events, 20 % puts of users, memberships
and attendance, through records' own write path). Then, each side in its own
process so its peak memory is its own:

1. A signs its ops (the one-time lazy signing before a first export);
2. direct: A streams ``changes_for`` batches (gzip JSON lines, length-prefixed)
   through a pipe into B, which verifies and applies each with ``apply_batch``;
3. bundle: A writes a bundle file, a fresh box C imports it;
4. "nothing new": B's vector, A's ``changes_for`` on it (no batch), timed.

``--http``: a hub (`passerelle serve`, set up, on 127.0.0.1) and box A paired
with a code; A's N ops (signed beforehand, timed apart) go to the hub with
``sync_client.sync_once`` in a process of its own: total time, bytes on the
wire per op, peak RSS of the box process and of the hub (its VmHWM). Then 20
syncs with nothing new (median, p95). ``--pull`` also has a fresh box C pull
everything from the hub. ``--boxes N``: N boxes of ``--box-ops`` ops each,
paired, then all syncing with one hub at once (one process each, released
together): errors, total time, hub RSS. (A second round where every box pulls
the 49 others' ops would verify ~5 million signatures: not run here.)

Targets (sync issue): peak memory of each side under 200 MB; a "nothing new"
exchange under 300 ms; 50 boxes at once with zero errors. Prints figures; not
part of the test suite.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from passerelle.server import db as dbmod
from passerelle.server import records
from passerelle.server import sync as sync

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _box import Server  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def open_box(home: Path):
    home.mkdir(parents=True, exist_ok=True)
    dbmod.prepare(home / "passerelle.db")
    return dbmod.connect(home / "passerelle.db")


def fill(db, n: int, chunk: int = 20_000) -> None:
    rng = random.Random(1)
    learners = [f"learner-{i:05d}" for i in range(2000)]
    done = 0
    while done < n:
        with records.write_tx(db):
            for _ in range(min(chunk, n - done)):
                r = rng.random()
                who = rng.choice(learners)
                if r < 0.8:
                    op = records._new_op(db, "event", "progress", who, {
                        "event_id": f"e-{done}", "pack_id": "pack-fr",
                        "node_id": f"node-{rng.randrange(300)}", "type": "answer",
                        "correct": rng.random() < 0.7, "seconds": rng.randrange(120),
                        "progress": round(rng.random(), 2)})
                elif r < 0.9:
                    op = records._new_op(db, "put", "user", who, {
                        "role": "learner", "display_name": f"Learner {who[-5:]}",
                        "avatar": "fox", "language": "fr", "created_at": "2026-11-01T10:00:00Z"})
                elif r < 0.95:
                    op = records._new_op(db, "put", "membership", f"m-{who}", {
                        "class_uuid": "class-a", "user_uuid": who, "role": "learner"})
                else:
                    op = records._new_op(db, "put", "attendance", f"att-{done}", {
                        "session_uuid": f"s-{done // 500}", "learner_uuid": who, "present": 1})
                records.apply(db, op)
                done += 1


# --- roles, each run in its own process ---------------------------------------------------

def role_sign(home: Path) -> dict:
    db = dbmod.connect(home / "passerelle.db")
    t = time.perf_counter()
    signed = sync.sign_pending(db, home)
    return {"signed": signed, "seconds": time.perf_counter() - t, "peak_mb": peak_mb()}


def role_send(home: Path, since: dict, batch: int) -> dict:
    db = dbmod.connect(home / "passerelle.db")
    out = sys.stdout.buffer
    t = time.perf_counter()
    sent = wire = 0
    for b in sync.changes_for(db, since, max_ops=batch, home=home):
        data = gzip.compress(b.lines(), compresslevel=6, mtime=0)
        out.write(struct.pack(">I", len(data)) + data)
        sent += len(b.ops)
        wire += len(data) + 4
    out.flush()
    return {"sent": sent, "wire_bytes": wire, "seconds": time.perf_counter() - t, "peak_mb": peak_mb()}


def role_receive(home: Path) -> dict:
    db = dbmod.connect(home / "passerelle.db")
    keys = sync.trusted_keys(db)
    inp = sys.stdin.buffer
    t = time.perf_counter()
    total = sync.ApplyResult()
    while head := inp.read(4):
        data = inp.read(struct.unpack(">I", head)[0])
        ops = [sync.SignedOp.from_line(line) for line in gzip.decompress(data).splitlines()]
        total.add(sync.apply_batch(db, ops, keys))
    return {"applied": total.applied, "duplicates": total.duplicates, "held": total.held_count,
            "seconds": time.perf_counter() - t, "peak_mb": peak_mb()}


def role_export(home: Path, dest: Path, batch: int) -> dict:
    db = dbmod.connect(home / "passerelle.db")
    t = time.perf_counter()
    info = sync.export_bundle(db, home, dest, max_ops=batch)
    return {"ops": info.ops, "bytes": info.bytes, "seconds": time.perf_counter() - t,
            "peak_mb": peak_mb()}


def role_import(home: Path, path: Path) -> dict:
    db = dbmod.connect(home / "passerelle.db")
    t = time.perf_counter()
    result = sync.import_bundle(db, path)
    return {"applied": result.applied, "seconds": time.perf_counter() - t, "peak_mb": peak_mb()}


def role_http_sync(home: Path, url: str, batch: int, start_at: float) -> dict:
    from passerelle.server.sync import client as sync_client

    db_path = home / "passerelle.db"
    if start_at < 0:  # started with others: say so, then wait for the word to go together
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        sys.stdin.readline()
    t = time.perf_counter()
    result = sync_client.sync_once(lambda: dbmod.connect(db_path), home, url, max_ops=batch,
                                   timeout=300)
    return {"ok": result.ok, "error": result.error.message if result.error else None,
            "pulled": result.pulled.applied, "pushed": result.pushed.applied,
            "held": result.pulled.held_count + result.pushed.held_count,
            "bytes_sent": result.bytes_sent, "bytes_received": result.bytes_received,
            "seconds": time.perf_counter() - t, "peak_mb": peak_mb()}


def role_http_nothing(home: Path, url: str, runs: int) -> dict:
    from passerelle.server.sync import client as sync_client

    db_path = home / "passerelle.db"
    timings = []
    for _ in range(runs):
        t = time.perf_counter()
        result = sync_client.sync_once(lambda: dbmod.connect(db_path), home, url)
        timings.append(time.perf_counter() - t)
        if not result.ok or result.pulled.applied or result.pushed.applied:
            raise SystemExit(f"not a 'nothing new' sync: {result.summary()}")
    return {"timings": timings, "peak_mb": peak_mb()}


def run_role(*args: str, stdin=None, stdout=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, "--role", *args], stdin=stdin, stdout=stdout,
                            stderr=subprocess.PIPE)


def result_of(proc: subprocess.Popen) -> dict:
    err = proc.stderr.read().decode()
    proc.wait()
    if proc.returncode != 0:
        raise SystemExit(f"a role failed:\n{err}")
    return json.loads(err.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=sync.DEFAULT_MAX_OPS)
    parser.add_argument("--keep", type=Path, help="Work in this folder and keep it.")
    parser.add_argument("--http", action="store_true",
                        help="Box to a real `passerelle serve` hub over loopback HTTP.")
    parser.add_argument("--pull", action="store_true", help="With --http: a fresh box pulls it all.")
    parser.add_argument("--runs", type=int, default=20, help="'Nothing new' syncs to time.")
    parser.add_argument("--boxes", type=int, help="This many boxes syncing with one hub at once.")
    parser.add_argument("--box-ops", type=int, default=2000, help="Ops per box with --boxes.")
    parser.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        role, *rest = args.role
        if role == "sign":
            figures = role_sign(Path(rest[0]))
        elif role == "send":
            figures = role_send(Path(rest[0]), json.loads(rest[1]), int(rest[2]))
        elif role == "receive":
            figures = role_receive(Path(rest[0]))
        elif role == "export":
            figures = role_export(Path(rest[0]), Path(rest[1]), int(rest[2]))
        elif role == "http-sync":
            figures = role_http_sync(Path(rest[0]), rest[1], int(rest[2]), float(rest[3]))
        elif role == "http-nothing":
            figures = role_http_nothing(Path(rest[0]), rest[1], int(rest[2]))
        else:
            figures = role_import(Path(rest[0]), Path(rest[1]))
        print(json.dumps(figures), file=sys.stderr)
        return

    if args.http or args.boxes:
        root = args.keep or Path(tempfile.mkdtemp(prefix="sync-bench-http-"))
        try:
            if args.boxes:
                bench_many_boxes(root, args.boxes, args.box_ops, args.batch)
            else:
                bench_http(root, args.ops, args.batch, args.runs, args.pull)
        finally:
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)
        return

    root = args.keep or Path(tempfile.mkdtemp(prefix="sync-bench-"))
    try:
        a_home, b_home, c_home = root / "a", root / "b", root / "c"
        a, b, c = open_box(a_home), open_box(b_home), open_box(c_home)
        t = time.perf_counter()
        fill(a, args.ops)
        print(f"filled box A with {args.ops:,} ops in {time.perf_counter() - t:.1f} s")
        ident = sync.identity(a, a_home)
        for other, home in ((b, b_home), (c, c_home)):
            sync.device_key(other, home)
            sync.trust(other, ident["device_id"], ident["public_key"], label="A")
        for db in (a, b, c):
            db.close()

        signed = result_of(run_role("sign", str(a_home)))
        print(f"sign (once, lazily): {signed['signed']:,} ops in {signed['seconds']:.1f} s "
              f"({signed['seconds'] / max(1, signed['signed']) * 1e6:.0f} µs/op), "
              f"peak {signed['peak_mb']:.0f} MB")

        t = time.perf_counter()
        receiver = run_role("receive", str(b_home), stdin=subprocess.PIPE)
        sender = run_role("send", str(a_home), "{}", str(args.batch), stdout=receiver.stdin)
        receiver.stdin.close()
        sent, got = result_of(sender), result_of(receiver)
        wall = time.perf_counter() - t
        print(f"direct: {got['applied']:,} applied ({got['duplicates']} duplicates, {got['held']} held) "
              f"in {wall:.1f} s = {args.ops / wall:,.0f} ops/s; "
              f"{sent['wire_bytes'] / max(1, sent['sent']):.1f} bytes/op on the wire (gzip); "
              f"peak sender {sent['peak_mb']:.0f} MB, receiver {got['peak_mb']:.0f} MB")

        bundle = root / "a.bundle"
        exported = result_of(run_role("export", str(a_home), str(bundle), str(args.batch)))
        imported = result_of(run_role("import", str(c_home), str(bundle)))
        print(f"bundle: export {exported['seconds']:.1f} s (peak {exported['peak_mb']:.0f} MB), "
              f"{exported['bytes']:,} bytes = {exported['bytes'] / max(1, exported['ops']):.1f} bytes/op; "
              f"import {imported['applied']:,} ops in {imported['seconds']:.1f} s "
              f"(peak {imported['peak_mb']:.0f} MB)")

        a = dbmod.connect(a_home / "passerelle.db")
        b = dbmod.connect(b_home / "passerelle.db")
        timings = []
        for _ in range(5):
            t = time.perf_counter()
            theirs = sync.vector(b)
            batches = list(sync.changes_for(a, theirs, home=a_home))
            timings.append(time.perf_counter() - t)
            assert batches == []
        print(f"nothing new: {min(timings) * 1000:.1f} ms best, {max(timings) * 1000:.1f} ms worst of 5 "
              "(receiver's vector + sender's changes_for, both on disk)")
        same = (sync.vector(a) == sync.vector(b)
                and a.execute("SELECT count(*) FROM progress").fetchone()
                == b.execute("SELECT count(*) FROM progress").fetchone())
        print(f"boxes agree: {same}")
        a.close()
        b.close()
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


# --- over HTTP, with a real hub ------------------------------------------------------------

def vm_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Hub(Server):
    """A set-up box served by `passerelle serve` on 127.0.0.1 (see bench/_box.py)."""

    def __init__(self, home: Path):
        from passerelle.server.people import accounts

        db = open_box(home)
        if accounts.needs_setup(db):
            accounts.setup(db, org_name="Bench organisation", languages=["fr"], signin_mode="pin",
                           profile_fields=None, display_name="Cora", username="cora",
                           password="coordinator passphrase")
        db.close()
        super().__init__(home)

    def code(self) -> str:
        db = dbmod.connect(self.home / "passerelle.db")
        try:
            return sync.make_pairing_code(db, self.home)["code"]
        finally:
            db.close()



def pair(home: Path, hub: Hub, name: str) -> None:
    from passerelle.server.sync import client as sync_client

    db = dbmod.connect(home / "passerelle.db")
    try:
        sync_client.pair(db, home, hub.url, hub.code(), label=name)
    finally:
        db.close()


def bench_http(root: Path, ops: int, batch: int, runs: int, pull: bool) -> None:
    hub = Hub(root / "hub")
    try:
        a_home = root / "a"
        a = open_box(a_home)
        t = time.perf_counter()
        fill(a, ops)
        print(f"filled box A with {ops:,} ops in {time.perf_counter() - t:.1f} s")
        a.close()
        signed = result_of(run_role("sign", str(a_home)))
        print(f"sign (once, lazily, before a first sync): {signed['signed']:,} ops in "
              f"{signed['seconds']:.1f} s ({signed['seconds'] / max(1, signed['signed']) * 1e6:.0f}"
              " µs/op)")
        pair(a_home, hub, "A")
        print(f"hub before the sync: RSS {vm_mb(hub.proc.pid, 'VmRSS'):.0f} MB")

        t = time.perf_counter()
        got = result_of(run_role("http-sync", str(a_home), hub.url, str(batch), "0"))
        wall = time.perf_counter() - t
        if not got["ok"]:
            raise SystemExit(f"the sync failed: {got['error']}")
        print(f"push over HTTP: {got['pushed']:,} ops applied by the hub in {got['seconds']:.1f} s "
              f"({got['pushed'] / got['seconds']:,.0f} ops/s; {wall:.1f} s with process start); "
              f"{got['bytes_sent'] / max(1, got['pushed']):.1f} bytes/op sent, "
              f"{got['bytes_received']:,} bytes received; peak RSS box {got['peak_mb']:.0f} MB, "
              f"hub {vm_mb(hub.proc.pid, 'VmHWM'):.0f} MB")

        nothing = result_of(run_role("http-nothing", str(a_home), hub.url, str(runs)))
        ms = sorted(x * 1000 for x in nothing["timings"])
        p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
        print(f"nothing new, {runs} syncs (hello + vectors, both sides holding {ops:,} ops): "
              f"median {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms")

        if pull:
            c_home = root / "c"
            open_box(c_home).close()
            pair(c_home, hub, "C")
            got = result_of(run_role("http-sync", str(c_home), hub.url, str(batch), "0"))
            if not got["ok"]:
                raise SystemExit(f"the pull failed: {got['error']}")
            print(f"pull over HTTP (fresh box C): {got['pulled']:,} ops in {got['seconds']:.1f} s "
                  f"({got['pulled'] / got['seconds']:,.0f} ops/s); "
                  f"{got['bytes_received'] / max(1, got['pulled']):.1f} bytes/op received; "
                  f"peak RSS box {got['peak_mb']:.0f} MB, hub {vm_mb(hub.proc.pid, 'VmHWM'):.0f} MB")
        hub_db = dbmod.connect(hub.home / "passerelle.db")
        a = dbmod.connect(a_home / "passerelle.db")
        print(f"hub and A agree: {sync.vector(hub_db) == sync.vector(a)}; hub integrity: "
              f"{hub_db.execute('PRAGMA quick_check').fetchone()[0]}")
        hub_db.close()
        a.close()
    finally:
        hub.stop()


def bench_many_boxes(root: Path, n: int, box_ops: int, batch: int) -> None:
    hub = Hub(root / "hub")
    try:
        homes = []
        t = time.perf_counter()
        for i in range(n):
            home = root / f"box{i:02d}"
            db = open_box(home)
            fill(db, box_ops)
            sync.sign_pending(db, home)
            db.close()
            pair(home, hub, f"box {i}")
            homes.append(home)
        print(f"{n} boxes of {box_ops:,} ops each, signed and paired, in "
              f"{time.perf_counter() - t:.1f} s")
        results, wall = together(homes, hub, batch)
        errors = [r.get("error") for r in results if not r.get("ok")]
        pushed = sum(r.get("pushed", 0) for r in results)
        pulled = sum(r.get("pulled", 0) for r in results)
        slowest = max(r.get("seconds", 0) for r in results)
        print(f"{n} boxes at once: {n - len(errors)} ok, {len(errors)} errors; {pushed:,} ops "
              f"applied by the hub in {wall:.1f} s (slowest box {slowest:.1f} s; the boxes also "
              f"pulled {pulled:,} ops the others had pushed before them); hub RSS "
              f"{vm_mb(hub.proc.pid, 'VmRSS'):.0f} MB, peak {vm_mb(hub.proc.pid, 'VmHWM'):.0f} MB; "
              f"box peak RSS max {max(r.get('peak_mb', 0) for r in results):.0f} MB")
        for error in errors[:5]:
            print(f"  error: {error}")
    finally:
        hub.stop()


def together(homes: list[Path], hub: Hub, batch: int) -> tuple[list[dict], float]:
    """One sync per box, each in its own process, all released at the same moment."""
    procs = [run_role("http-sync", str(home), hub.url, str(batch), "-1", stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE) for home in homes]
    for proc in procs:  # every process has imported everything and waits
        proc.stdout.readline()
    t = time.perf_counter()
    for proc in procs:
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    results = [result_of_lenient(p) for p in procs]
    return results, time.perf_counter() - t


def result_of_lenient(proc: subprocess.Popen) -> dict:
    err = proc.stderr.read().decode()
    proc.wait()
    try:
        return json.loads(err.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"ok": False, "error": err.strip().splitlines()[-1] if err.strip() else "crashed"}


if __name__ == "__main__":
    main()
