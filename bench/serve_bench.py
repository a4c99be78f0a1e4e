"""Cold start, idle memory and request latency of `passerelle serve` (prints figures).

Usage: .venv/bin/python bench/serve_bench.py [--runs 5] [--requests 2000] [--clients 20]
       .venv/bin/python bench/serve_bench.py --profile 300 [--top 25]

Starts the real server on 127.0.0.1 with a fresh data home, measures the time
from process start to the first served page, the resident memory when idle
and after load, and the latency of the home page and the health route with
concurrent clients. Targets: cold start under 2 s, idle memory
under 80 MB. Traffic goes to 127.0.0.1 only.

``--profile N``: where a request's time goes, in this process. A box with the
bundled library and one learner signed in through the PIN form; N requests of
each kind (home, topic, article as that learner, POST /api/v1/progress with 3
events) through the production WSGI stack (access log included) with the
Flask test client; prints the CPU time per request of each kind and, under
cProfile, the functions that take the most of it. Counts, not latencies: use
it to decide what to change on a busy machine.
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


def profile(n: int, top: int) -> None:
    import cProfile
    import itertools
    import pstats
    import re
    from pathlib import Path

    from _box import PIN, nodes, prepare
    from passerelle.server.app import create_app
    from passerelle.server.web.serve import build_wsgi
    from werkzeug.test import Client

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "box"
        learner = prepare(home, learners=1)["learners"][0]
        found = nodes(home)
        app = create_app({"home": home})
        client = Client(build_wsgi(app, app.config["SETTINGS"]))
        page = client.get(f"/signin/learner/{learner}").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        client.post(f"/signin/learner/{learner}", data={"csrf_token": token, "secret": PIN})
        page = client.get("/").get_data(as_text=True)
        token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
        headers = {"Accept-Encoding": "gzip", "Accept-Language": "fr"}
        pack, node = found["article"].split("/", 3)[2:]
        ids = itertools.count()

        def post():
            events = [{"event_id": f"profile-{next(ids)}", "pack_id": pack, "node_id": node,
                       "type": "progress", "progress": 0.5, "seconds": 5} for _ in range(3)]
            return client.post("/api/v1/progress", json={"events": events},
                               headers={**headers, "X-CSRFToken": token})

        kinds = {"home": lambda: client.get("/", headers=headers),
                 "topic": lambda: client.get(found["topic"], headers=headers),
                 "article": lambda: client.get(found["article"], headers=headers),
                 "POST progress": post}
        for name, call in kinds.items():
            for _ in range(20):  # warm caches, as a running server has them
                assert call().status_code == 200, name
            cpu = time.process_time()
            for _ in range(n):
                call()
            cpu = (time.process_time() - cpu) / n
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(n):
                call()
            profiler.disable()
            print(f"\n{name}: {cpu * 1000:.2f} ms of CPU per request (without the profiler)")
            stats = pstats.Stats(profiler)
            stats.sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--profile", type=int, metavar="N",
                        help="profile N requests of each kind in this process instead")
    parser.add_argument("--top", type=int, default=25, help="functions shown per kind with --profile")
    args = parser.parse_args()
    if args.profile:
        profile(args.profile, args.top)
        return

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
