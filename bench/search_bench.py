"""Benchmark of passerelle.search_index on a synthetic multilingual corpus.

    .venv/bin/python bench/search_bench.py [--nodes 50000] [--queries 200] [--keep DIR]
        [--workers 0,2] [--concurrency-only]

Prints build time (analysis included), index size, incremental add of 1,000
nodes, single-threaded query latency (p50/p95) per query type, the RSS of
the process, then latency under 20 concurrent searchers through Waitress (a
tiny WSGI app in a subprocess on 127.0.0.1, searching in worker processes as
the server does, after a warm-up with another query set; the searchers are
wrk's connections, or Python threads with --client python) and the serving
memory (PSS of the server, its workers and helpers). The corpus is
deterministic (seeded): Zipf-distributed words,
~2 KB of text per node, French/Dutch/English/Arabic with a shared vocabulary
(internet, email, video...) as in real lesson packs.
"""

from __future__ import annotations

import argparse
import atexit
import bisect
import http.client
import itertools
import json
import random
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from passerelle.search_index import Document, SearchIndex, default_workers
from passerelle.server.settings import SETTINGS

# The concurrency test serves with as many Waitress threads as the server does.
SERVER_THREADS = next(s.default for s in SETTINGS if s.name == "threads")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _box import child_pids, cpu_seconds  # noqa: E402

KINDS = ["article", "article", "article", "video", "exercise", "document", "audio", "html5",
         "topic"]
LANGS = ["fr", "fr", "en", "nl", "ar"]

SEED_WORDS = {
    "fr": """mot passe sécurité ordinateur courriel message fraction addition soustraction
             élève leçon vidéo appel téléphone réseau données compte connexion hameçonnage
             curriculum lettre emploi nombre calcul multiplication division école internet
             fichier dossier imprimer écran clavier souris navigateur recherche page""",
    "en": """password security computer email message fraction addition subtraction student
             lesson video call phone network data account login phishing resume letter job
             number calculation multiplication division school internet file folder print
             screen keyboard mouse browser search page algebra""",
    "nl": """wachtwoord veiligheid computer bericht breuk optellen aftrekken leerling les
             video gesprek telefoon netwerk gegevens account inloggen phishing cv brief baan
             getal rekenen vermenigvuldigen delen school internet bestand map printen scherm
             toetsenbord muis browser zoeken pagina""",
    "ar": """كلمة المرور الأمان الحاسوب البريد رسالة كسر جمع طرح تلميذ درس فيديو مكالمة
             هاتف شبكة بيانات حساب دخول تصيد سيرة رسالة عمل عدد حساب ضرب قسمة مدرسة
             الإنترنت ملف مجلد طباعة شاشة لوحة فأرة متصفح بحث صفحة""",
}
SYLLABLES = {
    "fr": "ba be bi bo bu ca ce ci co cu da de di do du fa fe fi la le li lo lu ma me mi "
          "mo mu na ne ni no nu pa pe pi po pu ra re ri ro ru sa se si so su ta te ti to tu "
          "é è on an in eu ou ai ion tion ment",
    "en": "ba be bi bo ca co da de di do fa fe fo ga go ha he hi la le li lo ma me mi mo na "
          "ne no pa pe pi po ra re ri ro sa se si so ta te ti to th sh ing er ly ed st",
    "nl": "ba be bo da de di do ge go ha he ho ka ke ko la le lo ma me mo na ne no pa pe po "
          "ra re ro sa se so ta te to va ve vo wa we ij ui oe aa ee oo en heid ing",
    "ar": "با بي تا تي ثا جا حا خا دا را زا سا شا صا طا عا غا فا قا كا لا ما نا ها وا يا "
          "ب ت ث ج ح خ د ر ز س ش ص ط ع غ ف ق ك ل م ن ه و ي",
}


def make_vocab(rng: random.Random, lang: str, size: int, shared: list[str]) -> list[str]:
    syl = SYLLABLES[lang].split()
    words = list(dict.fromkeys(SEED_WORDS[lang].split()))
    seen = set(words)
    while len(words) < size:
        # A few shared words (internet, video...) sit among the frequent ones.
        if shared and len(words) % 25 == 0 and rng.random() < 0.5:
            w = rng.choice(shared)
        else:
            w = "".join(rng.choice(syl) for _ in range(rng.choice((2, 2, 3, 3, 3, 4))))
            if lang == "ar" and rng.random() < 0.3:
                w = "ال" + w
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


class Zipf:
    def __init__(self, words: list[str], s: float = 1.05):
        self.words = words
        self.cum = list(itertools.accumulate(1.0 / (r ** s) for r in range(1, len(words) + 1)))

    def sample(self, rng: random.Random, k: int) -> list[str]:
        total = self.cum[-1]
        return [self.words[bisect.bisect_left(self.cum, rng.random() * total)] for _ in range(k)]


def make_corpus(n: int, seed: int = 42, start: int = 0, vocab_size: int = 30_000):
    rng = random.Random(seed)
    shared = [w for w in SEED_WORDS["en"].split() if w in SEED_WORDS["fr"] or w in SEED_WORDS["nl"]]
    vocabs = {lang: Zipf(make_vocab(random.Random(f"{seed}-{lang}"), lang, vocab_size, shared))
              for lang in SEED_WORDS}
    docs = []
    for i in range(start, start + n):
        lang = rng.choice(LANGS)
        z = vocabs[lang]
        pack = f"pack-{lang}-{i % 40:02d}"
        body_words = z.sample(rng, 300)  # about 2 KB of text
        body = ". ".join(" ".join(body_words[j:j + 12]).capitalize()
                         for j in range(0, len(body_words), 12))
        docs.append(Document(
            id=f"{pack}/node-{i}", pack_id=pack, kind=rng.choice(KINDS), language=lang,
            title=" ".join(z.sample(rng, rng.randint(2, 6))).capitalize(),
            description=" ".join(z.sample(rng, rng.randint(8, 20))),
            tags=z.sample(rng, rng.randint(1, 4)),
            body=body,
            topic_path=[" ".join(z.sample(rng, 2)).capitalize()],
            pack_title=f"Pack {pack}",
        ))
    return docs, vocabs


def percentiles(samples: list[float]) -> str:
    samples = sorted(samples)
    p50 = statistics.median(samples)
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    return f"p50 {p50 * 1000:6.1f} ms   p95 {p95 * 1000:6.1f} ms"


# The serving side of the concurrency test: a few lines of WSGI over one index, as the
# server does: searches go to a SearchPool of N worker processes (the server's setting
# search_workers), or, with 0, run in Waitress' threads (one SQLite connection each).
SERVER_CODE = r"""
import json, logging, sys, urllib.parse, waitress
logging.getLogger("waitress").setLevel(logging.ERROR)  # no "Task queue depth" lines
from passerelle.search_index import SearchIndex, SearchPool
path, port, threads, workers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
idx = SearchIndex(path, readonly=True)  # the bench built it; never prepared again here
searcher = SearchPool(path, workers, fallback=idx) if workers else idx
def app(environ, start_response):
    qs = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    if environ.get("PATH_INFO") == "/workers":
        body = json.dumps({"pids": searcher.pids() if workers else [],
                           "fallbacks": searcher.fallbacks if workers else 0}).encode()
    elif environ.get("PATH_INFO") == "/search":
        r = searcher.search(qs.get("q", [""])[0], kinds=qs.get("kind"),
                            languages=qs.get("language"))
        body = json.dumps({"total": r.total, "mode": r.mode, "facets": r.facets,
                           "hits": [h.__dict__ for h in r.hits]}).encode()
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found"]
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
waitress.serve(app, host="127.0.0.1", port=port, threads=threads, _quiet=True)
"""


def _memory(pid: int) -> dict[str, int]:
    """kB of RSS, PSS, PSS of the heap and of mapped files, of one process."""
    out = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("Rss", "Pss", "Pss_Anon", "Pss_File"):
                    out[key] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return out


def _children(pid: int) -> list[int]:
    return child_pids().get(pid, [])


def rss_of(pid: int, workers: list[int] = ()) -> str:
    """The serving memory: the server process, its search workers and multiprocessing's
    helpers (forkserver, resource tracker). Each SQLite connection maps the index file
    (mmap_size): pages of the OS page cache shared by all, counted in RSS once per
    process but in PSS once in all, so PSS sums to the memory really used. Anonymous
    PSS is the processes' own heap."""
    helpers = [c for c in _children(pid) if c not in workers]
    helpers += [g for c in helpers for g in _children(c) if g not in workers]
    parts = [("server", [pid]), (f"{len(workers)} workers", list(workers)),
             ("helpers", helpers)]
    total = {"Pss": 0, "Pss_Anon": 0, "Pss_File": 0}
    shown = []
    for name, pids in parts:
        if not pids:
            continue
        m = {"Rss": 0, "Pss": 0, "Pss_Anon": 0, "Pss_File": 0}
        for p in pids:
            for k, v in _memory(p).items():
                m[k] += v
        for k in total:
            total[k] += m[k]
        shown.append(f"{name} PSS {m['Pss'] / 1024:.0f} MB (heap {m['Pss_Anon'] / 1024:.0f}, "
                     f"index file {m['Pss_File'] / 1024:.0f}; RSS {m['Rss'] / 1024:.0f})")
    return (f"PSS {total['Pss'] / 1024:.0f} MB in all = heap {total['Pss_Anon'] / 1024:.0f} MB "
            f"+ mapped index file {total['Pss_File'] / 1024:.0f} MB\n      " + "; ".join(shown))


def _cpu_seconds(pids) -> float:
    """User + system CPU time used so far by these processes (gone ones count 0)."""
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except (OSError, ValueError, IndexError):
            pass
    return total


def _urls(queries: list[tuple[str, dict]]) -> list[str]:
    urls = []
    for q, kw in queries:
        params = [("q", q)] + [(k.rstrip("s") if k != "languages" else "language", v)
                               for k, vs in kw.items() for v in vs]
        urls.append("/search?" + urllib.parse.urlencode(params))
    return urls


def _drive(port: int, urls: list[str], clients: int, requests: int, time_limit: float
           ) -> tuple[list[float], int, float]:
    """``clients`` closed-loop clients sending ``requests`` requests in all: (times, errors, wall)."""
    counter = itertools.count()
    lock = threading.Lock()
    times: list[float] = []
    errors = [0]
    stop_at = time.monotonic() + time_limit

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            i = next(counter)
            if i >= requests or time.monotonic() > stop_at:
                break
            t = time.perf_counter()
            try:
                conn.request("GET", urls[i % len(urls)])
                resp = conn.getresponse()
                body = resp.read()
                ok = resp.status == 200 and "total" in json.loads(body)
            except (OSError, http.client.HTTPException, ValueError):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            elapsed = time.perf_counter() - t
            with lock:
                times.append(elapsed)
                if not ok:
                    errors[0] += 1
        conn.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times, errors[0], time.perf_counter() - t0


# wrk's side of the concurrency test: one connection per searcher, each walking
# its own stride of the query list; p50/p95 and counts from wrk's own histogram.
WRK_LUA = r"""
local paths = %(paths)s
local stride = %(stride)d
local threads = 0
function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
end
local n = 0
function request()
  local i = (tonumber(offset) + n * stride) %% #paths + 1
  n = n + 1
  return wrk.format("GET", paths[i])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"p50": %%d, "p95": %%d, "requests": %%d, "errors": %%d, ' ..
    '"duration": %%d}\n', latency:percentile(50), latency:percentile(95), summary.requests,
    e.connect + e.read + e.write + e.status + e.timeout, summary.duration))
end
"""


def _drive_wrk(port: int, urls: list[str], clients: int, seconds: float) -> dict:
    """``clients`` closed-loop connections from wrk (C) for ``seconds``: the searchers'
    own HTTP work takes next to no CPU from the 2 cores the server runs on, as
    tablets' would not. Returns wrk's figures (latencies in seconds)."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "search.lua"
        script.write_text(WRK_LUA % {"paths": "{" + ", ".join(json.dumps(u) for u in urls) + "}",
                                     "stride": clients})
        out = subprocess.run(["wrk", "-t", str(clients), "-c", str(clients),
                              "-d", f"{max(1, round(seconds))}s", "--timeout", "30s",
                              "-s", str(script), f"http://127.0.0.1:{port}"],
                             capture_output=True, text=True, timeout=seconds + 60, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    r = json.loads(line[len("RESULT "):])
    return {"p50": r["p50"] / 1e6, "p95": r["p95"] / 1e6, "requests": r["requests"],
            "errors": r["errors"], "wall": r["duration"] / 1e6}


def _get_json(port: int, path: str) -> dict:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", path)
        return json.loads(c.getresponse().read())
    finally:
        c.close()


def concurrent_bench(path: Path, queries: list[tuple[str, dict]], clients: int, requests: int,
                     threads: int, workers: int = 0, warm: list[tuple[str, dict]] = (),
                     warm_seed: int | None = None, time_limit: float = 180.0,
                     client: str = "python", seconds: float = 15.0) -> dict:
    """20 client threads against a Waitress subprocess on 127.0.0.1, bounded in count and time,
    after warming it with ``warm`` (another query set). Returns the figures."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-c", SERVER_CODE, str(path), str(port),
                               str(threads), str(workers)], stdout=subprocess.DEVNULL)
    how = f"{workers} search worker processes" if workers else "searches in Waitress' threads"
    try:
        deadline = time.monotonic() + 30
        while True:  # wait for the port
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the Waitress test server did not start") from None
                time.sleep(0.2)
        # A server that has been running has seen other searches: its workers' analysis
        # caches and the page cache are warm. Warm it with another query set, as many
        # requests, through as many clients (so every worker gets started and used).
        if warm:
            t = time.perf_counter()
            _drive(port, _urls(warm), clients, len(warm), time_limit)
            warmed = (f"warmed first with {len(warm)} searches of another query set "
                      f"(seed {warm_seed}) in {time.perf_counter() - t:.1f} s")
        else:
            warmed = "not warmed"
        workers_before = _get_json(port, "/workers")["pids"]
        cpu_before = _cpu_seconds([server.pid]), _cpu_seconds(workers_before)
        if client == "wrk":
            w = _drive_wrk(port, _urls(queries), clients, seconds)
            count, errors, wall, p50, p95 = w["requests"], w["errors"], w["wall"], w["p50"], w["p95"]
            driver = "wrk, one connection per searcher"
        else:
            times, errors, wall = _drive(port, _urls(queries), clients, requests, time_limit)
            ordered = sorted(times)
            count, p50 = len(times), statistics.median(ordered)
            p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
            driver = "Python http.client threads in the bench process"
        state = _get_json(port, "/workers")
        cpu = (_cpu_seconds([server.pid]) - cpu_before[0],
               _cpu_seconds(set(workers_before) & set(state["pids"])) - cpu_before[1])
        rate = count / wall
        print(f"\n{clients} concurrent searchers through Waitress ({threads} threads, {how}; "
              f"{count} requests, mixed queries; {warmed}; client: {driver}):")
        print(f"  {'all':18s} p50 {p50 * 1000:6.1f} ms   p95 {p95 * 1000:6.1f} ms   "
              f"errors {errors}   {rate:.1f} requests/s")
        # A closed loop: each client waits for its answer before asking again,
        # so latency is about clients / throughput; both are printed.
        print(f"  (closed loop: {clients} clients / {rate:.1f} requests/s = "
              f"{clients / rate * 1000:.0f} ms per request on average)")
        # CPU per request is what the load of the other processes on the machine does not
        # change much: what the serving process (one GIL) spends, and what the workers do.
        print(f"  CPU per request: server process {cpu[0] / count * 1000:.1f} ms"
              + (f", workers {cpu[1] / count * 1000:.1f} ms" if workers else ""))
        if state["fallbacks"]:
            print(f"  searches answered in the server process (workers failed): "
                  f"{state['fallbacks']}")
        memory = rss_of(server.pid, state["pids"])
        print(f"  serving memory: {memory}")
        return {"workers": workers, "p50": p50, "p95": p95, "client": client,
                "cpu": cpu[0] / count, "worker_cpu": cpu[1] / count,
                "rate": rate, "errors": errors, "memory": memory.split("\n")[0]}
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def typo(rng: random.Random, word: str) -> str:
    i = rng.randrange(1, len(word) - 1)
    return word[:i] + word[i + 1] + word[i] + word[i + 2:] if rng.random() < 0.5 \
        else word[:i] + word[i + 1:]


def make_queries(docs, vocabs, seed: int, n: int):
    """The query set of the benchmark: {type: [(query, filters)]}, the random
    generator (suggestion prefixes continue from it) and the mid-frequency words."""
    rng = random.Random(seed)
    mid = {lang: z.words[30:3000] for lang, z in vocabs.items()}

    def word():
        lang = rng.choice(LANGS)
        return rng.choice(mid[lang]), lang

    def from_doc(k):
        d = rng.choice(docs)
        ws = d.body.replace(".", "").lower().split()
        i = rng.randrange(0, len(ws) - k)
        return ws[i:i + k], d

    def and_query():
        # Two words of the same node (one of its title, one of its body): a real match.
        d = rng.choice(docs)
        return f"{rng.choice(d.title.lower().split())} {rng.choice(from_words(d.body))}"

    def from_words(text):
        return text.replace(".", "").lower().split()

    queries = {
        "word": [(word()[0], {}) for _ in range(n)],
        "AND (2 words)": [(and_query(), {}) for _ in range(n)],
        "phrase": [('"' + " ".join(from_doc(2)[0]) + '"', {}) for _ in range(n)],
        "filtered": [(word()[0], {"kinds": ["video", "article"], "languages": ["fr"]})
                     for _ in range(n)],
    }
    fuzzy = []
    while len(fuzzy) < n:
        w = rng.choice(mid[rng.choice(LANGS)])
        if len(w) >= 6:
            fuzzy.append((typo(rng, w), {}))
    queries["fuzzy fallback"] = fuzzy

    return queries, rng, mid


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=50_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--keep", help="directory for the index file (default: a temp dir)")
    ap.add_argument("--optimize", action="store_true",
                    help="optimize() again after the build (a large batch already ends with one)")
    ap.add_argument("--clients", type=int, default=20, help="concurrent searchers (0: skip)")
    ap.add_argument("--requests", type=int, default=2000,
                    help="requests of the concurrency test, in all")
    ap.add_argument("--threads", type=int, default=SERVER_THREADS,
                    help=f"Waitress threads (default: {SERVER_THREADS}, the server's `threads` "
                         "setting)")
    ap.add_argument("--workers", default=str(default_workers()),
                    help="search worker processes of the concurrency test, as the server's "
                         "search_workers (default: auto = %(default)s here); 0: in Waitress' "
                         "threads; a list (0,2) runs one server after the other")
    ap.add_argument("--client", default="wrk" if shutil.which("wrk") else "python",
                    help="load generator of the concurrency test: wrk (C, default when "
                         "installed; tablets' HTTP work does not run on the box) or python "
                         "(threads of this process, sharing its cores); wrk,python runs both")
    ap.add_argument("--seconds", type=float, default=15.0,
                    help="length of a wrk run (python: --requests requests)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the list of --workers this many times, alternating")
    ap.add_argument("--concurrency-only", action="store_true",
                    help="with --keep: reuse the index an earlier run (same --nodes and --seed) "
                         "left there, and run only the concurrency test")
    args = ap.parse_args(argv)
    try:
        worker_counts = [int(w) for w in args.workers.split(",")]
    except ValueError:
        ap.error("--workers: whole numbers separated by commas, e.g. 0,2")
    if args.concurrency_only and not args.keep:
        ap.error("--concurrency-only needs --keep DIR (where an earlier run kept its index)")

    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="search-bench-"))
    if not args.keep:  # a 50,000-node index is 250+ MB: do not leave it in /tmp
        atexit.register(shutil.rmtree, tmp, True)
    path = tmp / "search.db"
    t = time.perf_counter()
    docs, vocabs = make_corpus(args.nodes, args.seed)
    print(f"corpus: {args.nodes} nodes, {sum(len(d.body) for d in docs) / len(docs):.0f} "
          f"chars of body per node (generated in {time.perf_counter() - t:.1f} s)")
    if args.concurrency_only:
        if not path.exists():
            ap.error(f"--concurrency-only: no index at {path}")
        print(f"index: {path} (kept by an earlier run; {path.stat().st_size / 1e6:.0f} MB)")
        queries, _, _ = make_queries(docs, vocabs, args.seed, args.queries)
        run_concurrency(args, path, docs, vocabs, queries, worker_counts)
        return 0
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    extra, _ = make_corpus(1000, args.seed + 1, start=args.nodes)

    idx = SearchIndex(path, parallel=True)  # a single-threaded build, as the CLI does
    t = time.perf_counter()
    idx.index(docs)
    build = time.perf_counter() - t
    print(f"full build:        {build:6.1f} s  ({args.nodes / build:.0f} nodes/s, stemming included)")
    if args.optimize:
        t = time.perf_counter()
        idx.optimize()
        print(f"optimize:          {time.perf_counter() - t:6.1f} s")
    wal = Path(str(path) + "-wal")
    wal_size = wal.stat().st_size if wal.exists() else 0
    free = idx._read("PRAGMA freelist_count")[0][0] * idx._read("PRAGMA page_size")[0][0]
    print(f"index file size:   {path.stat().st_size / 1e6:6.1f} MB  "
          f"({free / 1e6:.1f} MB of free pages, reused by later writes; "
          f"WAL left by the build: {wal_size / 1e6:.1f} MB)")

    t = time.perf_counter()
    idx.index(extra)
    print(f"incremental 1,000: {time.perf_counter() - t:6.2f} s")

    queries, rng, mid = make_queries(docs, vocabs, args.seed, args.queries)
    n = args.queries

    print(f"\nquery latency, single thread, {n} queries each, 20 hits with snippets:")
    modes = {}
    for name, qs in queries.items():
        times = []
        for q, kw in qs:
            t = time.perf_counter()
            r = idx.search(q, **kw)
            times.append(time.perf_counter() - t)
            modes[r.mode] = modes.get(r.mode, 0) + 1
        print(f"  {name:18s} {percentiles(times)}")
    for k in (1, 2):
        prefixes = [rng.choice(rng.choice(list(mid.values())))[:k] for _ in range(n)]
        times = []
        for p in prefixes:
            t = time.perf_counter()
            idx.suggest(p)
            times.append(time.perf_counter() - t)
        print(f"  suggest {k}-letter   {percentiles(times)}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nmax RSS of this process: {rss:.0f} MB (includes the generated corpus)")
    print(f"modes seen: {modes}")
    idx.close()
    run_concurrency(args, path, docs, vocabs, queries, worker_counts)
    return 0


def run_concurrency(args, path: Path, docs, vocabs, queries: dict, worker_counts: list[int]):
    if not args.clients:
        return
    mixed = [q for qs in queries.values() for q in qs]
    random.Random(args.seed).shuffle(mixed)
    # The warm-up set: the same generator with another seed (other words, other typos).
    warm_seed = args.seed + 1000
    warm_queries, _, _ = make_queries(docs, vocabs, warm_seed, args.queries)
    warm = [q for qs in warm_queries.values() for q in qs]
    random.Random(warm_seed).shuffle(warm)
    results = []
    for _ in range(args.rounds):
        for workers in worker_counts:
            for client in args.client.split(","):
                results.append(concurrent_bench(path, mixed, args.clients, args.requests,
                                                args.threads, workers, warm, warm_seed,
                                                client=client, seconds=args.seconds))
    if len(results) > 1:
        print(f"\nside by side ({args.clients} searchers, {args.threads} Waitress threads, "
              f"servers run one after the other{', alternating' if args.rounds > 1 else ''}):")
        for r in results:
            how = (f"{r['workers']} workers" if r["workers"] else "in-process") + f", {r['client']}"
            print(f"  {how:20s} p50 {r['p50'] * 1000:6.1f} ms   p95 {r['p95'] * 1000:6.1f} ms   "
                  f"{r['rate']:6.1f} requests/s   errors {r['errors']}   CPU/request: server "
                  f"{r['cpu'] * 1000:.1f} ms, workers {r['worker_cpu'] * 1000:.1f} ms\n"
                  f"  {'':20s} {r['memory']}")


if __name__ == "__main__":
    sys.exit(main())
