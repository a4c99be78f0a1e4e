"""What searching a ZIM through its own Xapian index costs a serving process.

Starts ``passerelle serve`` (8 threads) on a data home holding one ZIM (imported once,
under ``--home``, with ``--no-index``: its Xapian index answers), then measures the
server's memory, split into anonymous (the heap) and file-backed (mapped pages of the
ZIM and the libraries, which the kernel takes back under pressure):

- idle, then after the ZIM's main page (the file opened);
- after ``--articles`` random articles fetched by 30 clients (``0``: none), as
  ``zim_bench.py`` does before its searches;
- after ``--searches`` API searches one after the other (``/api/v1/zims/search``),
  with their p50/p95 and the server's CPU time per search;
- after as many learners' search pages (5 hits of each ZIM among the lessons).

    .venv/bin/python bench/zim_search_memory.py --zim /work/cache/zim/bench_fr_100k.zim --json

The words are those of ``zim_bench.py --zim`` (the titles' words), so figures compare.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _box import PASSERELLE, Server, cpu_seconds, memory_kinds, prepare  # noqa: E402
from zim_bench import article_paths, load, queries, sequential  # noqa: E402


def stage(pid: int) -> dict:
    anon, file_backed = memory_kinds(pid)
    return {"rss_mb": round(anon + file_backed, 1), "anon_mb": round(anon, 1),
            "file_mb": round(file_backed, 1)}


def timed(pid: int, run, paths: list[str]) -> dict:
    cpu = cpu_seconds(pid)
    found = run(paths)
    return {"p50": round(found["p50"], 1), "p95": round(found["p95"], 1),
            "errors": found["errors"], "rps": round(found["rps"], 1),
            "cpu_ms": round((cpu_seconds(pid) - cpu) * 1000 / max(1, len(paths)), 1),
            "load": round(os.getloadavg()[0], 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zim", type=Path, required=True)
    parser.add_argument("--home", type=Path, help="the data home (kept; made on first use)")
    parser.add_argument("--articles", type=int, default=3000)
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    home = args.home or Path("/tmp") / f"zim-search-memory-{args.zim.stem}"
    env = {**os.environ, "PASSERELLE_HOME": str(home)}
    if not (home / "passerelle.db").exists():
        prepare(home)
        subprocess.run([PASSERELLE, "content", "import", "--no-index", str(args.zim)], check=True,
                       env=env, stdout=subprocess.DEVNULL)
    import sqlite3

    db = sqlite3.connect(home / "passerelle.db")
    (uuid,) = db.execute("SELECT uuid FROM content_zims").fetchone()
    db.close()
    words = queries(args.zim, args.searches, generated=False)
    paths = [f"/zim/{uuid}/{urllib.parse.quote(p)}" for p in article_paths(args.zim, args.articles)]

    results: dict = {"zim": str(args.zim)}
    server = Server(home, threads=8)
    try:
        pid, base = server.proc.pid, server.url
        seq = lambda ps: sequential(base, ps)  # noqa: E731
        results["idle"] = stage(pid)
        sequential(base, [f"/zim/{uuid}/"] * 5)
        results["opened"] = stage(pid)
        if paths:
            results["articles"] = timed(pid, lambda ps: load(base, ps), paths)
            results["after_articles"] = stage(pid)
        results["search_api"] = timed(pid, seq, [
            f"/api/v1/zims/search?zim={uuid}&q={urllib.parse.quote(w)}" for w in words])
        results["after_api"] = stage(pid)
        results["search_page"] = timed(pid, seq, [f"/search?q={urllib.parse.quote(w)}"
                                                  for w in words])
        results["after_pages"] = stage(pid)
        time.sleep(6)   # past the server's next chance to hand freed heap back
        sequential(base, [f"/zim/{uuid}/"])
        results["end"] = stage(pid)
    finally:
        server.stop()
    for key, value in results.items():
        print(f"{key:>15}: {value}")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
