"""Cold start, idle memory and request latency of `passerelle serve` (prints figures).

Usage: .venv/bin/python bench/serve_bench.py [--runs 5] [--requests 2000] [--clients 20]

Starts the real server on 127.0.0.1 with a fresh data home, measures the time
from process start to the first served page, the resident memory when idle
and after load, and the latency of the home page and the health route with
concurrent clients. Targets (issue 5): cold start under 2 s, idle memory
under 80 MB. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from _box import PASSERELLE, free_port, rss_mb  # shared with the other benchmarks


def start(home: str, port: int) -> tuple[subprocess.Popen, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([PASSERELLE, "--home", home, "serve", "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                r.read()
                return proc, time.perf_counter() - t0
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("server exited during start") from None
            time.sleep(0.01)


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def load(port: int, path: str, requests: int, clients: int) -> tuple[list[float], int]:
    url = f"http://127.0.0.1:{port}{path}"
    errors = 0

    def one(_):
        t = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                r.read()
                ok = r.status == 200
        except OSError:
            ok = False
        return time.perf_counter() - t, ok

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(requests)))
    errors = sum(1 for _, ok in results if not ok)
    return [t * 1000 for t, _ in results], errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    starts = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as home:
            proc, seconds = start(home, free_port())
            starts.append(seconds)
            proc.terminate()
            proc.wait()
    print(f"cold start to first page (new data home): median {statistics.median(starts):.2f} s, "
          f"max {max(starts):.2f} s over {args.runs} runs (target < 2 s)")

    with tempfile.TemporaryDirectory() as home:
        port = free_port()
        proc, _ = start(home, port)
        time.sleep(1)
        print(f"idle memory (RSS): {rss_mb(proc.pid):.1f} MB (target < 80 MB)")
        for path in ("/", "/api/v1/health"):
            latencies, errors = load(port, path, args.requests, args.clients)
            print(f"GET {path:<16} {args.requests} requests, {args.clients} clients: "
                  f"p50 {percentile(latencies, 50):.1f} ms, p95 {percentile(latencies, 95):.1f} ms, "
                  f"errors {errors}")
        print(f"memory after load (RSS): {rss_mb(proc.pid):.1f} MB")
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
