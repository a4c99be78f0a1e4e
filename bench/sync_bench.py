"""Sync throughput and memory: N ops from one box to another, directly and by a bundle file.

Usage: .venv/bin/python bench/sync_bench.py [--ops 1000000] [--batch 5000] [--keep DIR]

Box A gets N operations (80 % progress events, 20 % puts of users, memberships
and attendance, through records' own write path). Then, each side in its own
process so its peak memory is its own:

1. A signs its ops (the one-time lazy signing before a first export);
2. direct: A streams ``changes_for`` batches (gzip JSON lines, length-prefixed)
   through a pipe into B, which verifies and applies each with ``apply_batch``;
3. bundle: A writes a bundle file, a fresh box C imports it;
4. "nothing new": B's vector, A's ``changes_for`` on it (no batch), timed.

Targets (sync issue): peak memory of each side under 200 MB; a "nothing new"
exchange under 300 ms. Prints figures; not part of the test suite.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from passerelle.server import db as dbmod
from passerelle.server import records, sync


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
        else:
            figures = role_import(Path(rest[0]), Path(rest[1]))
        print(json.dumps(figures), file=sys.stderr)
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


if __name__ == "__main__":
    main()
