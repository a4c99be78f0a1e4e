"""Large exports from a hub on PostgreSQL: the memory of the process that writes them.

Usage: .venv/bin/python bench/export_pg_bench.py [--ops 1000000]

Starts a throwaway PostgreSQL cluster (as bench/hub_pg_bench.py does, fsync off: only
reads are measured), a migrated hub database holding ``--ops`` progress events of 10,000
learners (rows written by the server itself, ``generate_series``), and the progress rows
they would have folded. Then, each in a fresh process, the peak resident memory (RSS) and
time of:

- the xAPI export (``reports.xapi_statements``, every event) as it is: rows through a
  server-side cursor, 1,000 at a time;
- the progress CSV (``reports.progress_csv``, 3,000,000 rows at most);
- each again through a plain cursor, as the exports read before (psycopg receives the
  whole answer before the first row).

Prints figures; not part of the test suite.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from passerelle.server import db as dbmod
from passerelle.server.reports import impact as reports

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hub_pg_bench import Cluster  # noqa: E402


def fill(url: str, ops: int) -> None:
    db = dbmod.connect(url)
    raw = db.conn.raw
    with db.atomic():
        raw.execute("INSERT INTO users (uuid, version, deleted, role, display_name)"
                    " SELECT 'learner-' || lpad(i::text, 5, '0'), 'v', 0, 'learner', 'L' || i"
                    " FROM generate_series(0, 9999) i")
        raw.execute(
            "INSERT INTO ops (origin, seq, version, kind, entity, subject, payload, event_id)"
            " SELECT 'box', i, lpad((1735689600000 + i * 1000)::text, 13, '0') || '.00000.box',"
            " 'event', 'progress', 'learner-' || lpad((i %% 10000)::text, 5, '0'),"
            " json_build_object('event_id', 'e' || i, 'pack_id', 'pack-fr',"
            "  'node_id', 'node-' || (i %% 300), 'type', 'answer', 'correct', i %% 3 > 0,"
            "  'seconds', i %% 120, 'progress', 0.5, 'question_id', 'q' || (i %% 7))::text, 'e' || i"
            " FROM generate_series(1, %s) i", [ops])
        raw.execute(
            "INSERT INTO progress (learner_uuid, pack_id, node_id, progress, seconds, answers,"
            " correct, first_version, last_version)"
            " SELECT 'learner-' || lpad((i %% 10000)::text, 5, '0'), 'pack-fr',"
            " 'node-' || (i / 10000), 0.5, 60, 3, 2, 'v', 'v'"
            " FROM generate_series(0, least(%s, 3000000) - 1) i", [ops])
    db.execute("VACUUM ANALYZE")
    db.close()


def _plain_chunks(db, sql, parameters=(), size=2000):
    """How the exports read before: a plain cursor, fetchmany over an answer held whole."""
    cursor = db.execute(sql, list(parameters))
    while rows := cursor.fetchmany(size):
        yield rows


def _run(url: str, what: str, out) -> None:
    db = dbmod.connect(url)
    if what.endswith("plain cursor"):
        reports.engines.chunks = _plain_chunks
    t = time.perf_counter()
    chunks = (reports.xapi_statements(db) if what.startswith("xapi")
              else reports.progress_csv(db))
    size = sum(len(chunk) for chunk in chunks)
    out.put((size, time.perf_counter() - t,
             resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=1_000_000)
    args = parser.parse_args()
    pgroot = Path(tempfile.mkdtemp(prefix="export-pg-cluster-"))
    cluster = Cluster(pgroot, fsync=False).start()
    try:
        url = cluster.create("hub")
        t = time.perf_counter()
        fill(url, args.ops)
        print(f"{args.ops:,} events written in {time.perf_counter() - t:.0f} s", flush=True)
        ctx = multiprocessing.get_context("spawn")  # a fresh process: its own peak memory
        for what in ("xapi", "xapi, plain cursor", "progress CSV", "progress CSV, plain cursor"):
            out = ctx.Queue()
            p = ctx.Process(target=_run, args=(url, what, out))
            p.start()
            size, seconds, peak = out.get()
            p.join()
            print(f"{what}: {size / 2**20:,.0f} MB written in {seconds:.0f} s;"
                  f" peak RSS of the process {peak:,.0f} MB", flush=True)
    finally:
        cluster.stop()
        shutil.rmtree(pgroot, ignore_errors=True)


if __name__ == "__main__":
    main()
