"""What one ZIM's FTS5 index costs a serving process: memory per thread, CPU per search.

Builds (once, under ``--data``) an FTS5 index of ``--articles`` articles with the
generated ZIM's text (bench/zim_bench.py: the same vocabulary and lengths), straight
through ``SearchIndex`` (no ZIM needed), then searches it from 8 threads as a server's
threads do, and one search after the other, for each ``--setting`` (mapped window in
bytes : page cache in KiB, per connection).

    .venv/bin/python bench/zim_fts_memory.py --articles 30000 --setting 16777216:4000 --setting 0:2000
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _box import REPO, memory_split, rss_mb  # noqa: E402
from zim_bench import page, title_of, vocabulary  # noqa: E402


def build(path: Path, count: int) -> None:
    from passerelle import search_index as si

    rng = random.Random(7)
    words = vocabulary(rng)
    weights = [1 / (rank + 1) for rank in range(len(words))]
    part = path.with_suffix(".part")
    part.unlink(missing_ok=True)
    index = si.SearchIndex(part, parallel=True)
    docs = []
    for i in range(count):
        text = rng.choices(words, weights, k=rng.randint(250, 400))
        body = "".join(f"<p>{' '.join(text[j:j + 60])}.</p>" for j in range(0, len(text), 60))
        docs.append(si.Document(id=f"Article_{i}", pack_id="zim:bench", kind="article",
                                language="fr", title=title_of(words, i),
                                body=si.extract_html_text(page(title_of(words, i), body)),
                                pack_title="Encyclopédie de test"))
        if len(docs) == 5000 or i == count - 1:
            index.index(docs)
            docs = []
    index.optimize()
    index.close()
    part.rename(path)


def measure(path: Path, mmap_bytes: int, cache_kib: int, searches: int) -> None:
    """In a fresh process, so that each setting starts from the same memory."""
    from passerelle import search_index as si

    words = vocabulary(random.Random(7))
    rng = random.Random(11)
    picked = [words[rng.randrange(20, 5000)] for _ in range(searches)]
    queries = [w if i % 3 else f"{w} {words[rng.randrange(20, 5000)]}" for i, w in enumerate(picked)]
    index = si.SearchIndex(path, mmap_bytes=mmap_bytes, cache_kib=cache_kib)
    pid = os.getpid()
    idle = rss_mb(pid)
    todo, lock = iter(queries), threading.Lock()

    def worker():
        while True:
            with lock:
                q = next(todo, None)
            if q is None:
                return
            index.search(q, limit=10)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = rss_mb(pid)
    cpu, wall = [], []
    for q in queries:
        t, c = time.perf_counter(), time.thread_time()
        index.search(q, limit=10)
        cpu.append((time.thread_time() - c) * 1000)
        wall.append((time.perf_counter() - t) * 1000)
    cpu.sort()
    wall.sort()
    n = len(queries) - 1
    print(f"window {mmap_bytes} B, cache {cache_kib} KiB: RSS {idle:.0f} -> {after:.0f} MB after "
          f"{len(queries)} searches from 8 threads ({memory_split(pid)}); one by one: CPU p50 "
          f"{cpu[n // 2]:.1f} ms, p95 {cpu[n * 95 // 100]:.1f} ms; wall p50 {wall[n // 2]:.1f} ms, "
          f"p95 {wall[n * 95 // 100]:.1f} ms (load average {os.getloadavg()[0]:.1f})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--articles", type=int, default=30_000)
    parser.add_argument("--data", type=Path, default=REPO / "bench" / "data")
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--setting", action="append", default=[],
                        help="WINDOW_BYTES:CACHE_KIB (default: 16777216:4000 and 0:2000)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = args.data / f"fts_{args.articles // 1000}k.db"
    if args.measure:
        mmap_bytes, cache_kib = map(int, args.measure.split(":"))
        measure(path, mmap_bytes, cache_kib, args.searches)
        return 0
    if not path.exists():
        args.data.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        build(path, args.articles)
        print(f"built {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.monotonic() - started:.0f} s")
    for setting in args.setting or ["16777216:4000", "0:2000"]:
        subprocess.run([sys.executable, __file__, "--articles", str(args.articles), "--data",
                        str(args.data), "--searches", str(args.searches), "--measure", setting],
                       check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
