"""Passerelle and kiwix-serve side by side on the same ZIM.

Generates (once, kept under ``--data``, default ``bench/data/``, not committed)
a ZIM of 100,000 HTML articles with python-libzim's ``Creator`` (a Xapian
full-text index and a title index, as Kiwix's own files), then in one run:

- indexes it into Passerelle's SQLite FTS5 index, as a box does for a ZIM
  without a full-text index (time, peak memory of the indexing process);
- starts kiwix-serve (Debian's ``kiwix-tools``; installed with apt when it
  is missing and this runs as root) and ``passerelle serve`` on 127.0.0.1;
- measures, for each: article fetches with 30 concurrent clients (requests/s,
  p50/p95), searches (p50/p95; Passerelle with its FTS5 index and through the
  ZIM's Xapian index, kiwix-serve with Xapian), the main page, and memory
  (resident size before and after the load; Passerelle's also without any ZIM).

    .venv/bin/python bench/zim_bench.py                       # generated ZIM
    .venv/bin/python bench/zim_bench.py --zim ../shared/interop/zim/wikipedia_en_ray_charles_mini_2020-03.zim

Prints one line per figure; ``--json`` for a machine-readable summary.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _box import PASSERELLE, REPO, cpu_seconds, free_port, memory_split, rss_mb  # noqa: E402

DATA = REPO / "bench" / "data"
ARTICLES = 100_000
CLIENTS = 30
REQUESTS = 3000
SEARCHES = 200
PER_PAGE_ZIM = 5  # the hits of each ZIM the merged search page shows (PER_ZIM in server/packs/zim.py)


# --- the generated ZIM --------------------------------------------------------------------

def vocabulary(rng: random.Random, size: int = 20_000) -> list[str]:
    """Pronounceable made-up words (a Zipf-like draw below makes some of them common)."""
    onsets = ["b", "c", "d", "f", "g", "l", "m", "n", "p", "r", "s", "t", "v", "ch", "tr", "pl", "gr"]
    vowels = ["a", "e", "i", "o", "u", "ou", "ai", "é", "an", "on"]
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(rng.randint(1, 4))))
    return sorted(words)


def generate(path: Path, count: int = ARTICLES, seed: int = 7) -> Path:
    """A ZIM like a small Wikipedia: ``count`` articles of ~2 KB, titles, links, an index."""
    from libzim.writer import Creator, Hint, Item, StringProvider

    class Article(Item):
        def __init__(self, path_, title, html):
            super().__init__()
            self.p, self.t, self.h = path_, title, html

        def get_path(self): return self.p
        def get_title(self): return self.t
        def get_mimetype(self): return "text/html"
        def get_contentprovider(self): return StringProvider(self.h)
        def get_hints(self): return {Hint.FRONT_ARTICLE: True}

    rng = random.Random(seed)
    words = vocabulary(rng)
    weights = [1 / (rank + 1) for rank in range(len(words))]
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part.zim")
    part.unlink(missing_ok=True)
    creator = Creator(str(part)).config_indexing(True, "fra").config_nbworkers(2)
    started = time.monotonic()
    with creator:
        creator.set_mainpath("Accueil")
        for key, value in (("Title", "Encyclopédie de test"), ("Language", "fra"),
                           ("Name", "bench_fr_100k"), ("Description", f"{count} articles générés"),
                           ("Creator", "Passerelle bench"), ("Publisher", "Passerelle bench"),
                           ("Date", "2026-01-01")):
            creator.add_metadata(key, value)
        links = "".join(f'<li><a href="Article_{i}">{title_of(words, i)}</a></li>' for i in range(50))
        creator.add_item(Article("Accueil", "Accueil", page("Accueil", f"<ul>{links}</ul>")))
        for i in range(count):
            text = rng.choices(words, weights, k=rng.randint(250, 400))
            paras = "".join(f"<p>{' '.join(text[j:j + 60])}.</p>" for j in range(0, len(text), 60))
            see = rng.randrange(count)
            body = paras + f'<p>Voir <a href="Article_{see}">{title_of(words, see)}</a>.</p>'
            creator.add_item(Article(f"Article_{i}", title_of(words, i), page(title_of(words, i), body)))
            if i % 10_000 == 0:
                print(f"  generating: {i}/{count} articles, {time.monotonic() - started:.0f} s",
                      flush=True)
    part.rename(path)
    print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.monotonic() - started:.0f} s")
    return path


def title_of(words: list[str], i: int) -> str:
    r = random.Random(i)
    return f"{r.choice(words).capitalize()} {r.choice(words)} {i}"


def page(title: str, body: str) -> str:
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>'
            f"<body><h1>{title}</h1>{body}</body></html>")


# --- measuring ----------------------------------------------------------------------------

def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def get(base: str, path: str, conn_cache: dict | None = None) -> tuple[int, int]:
    """(status, bytes) of one GET over a kept-alive connection of this thread."""
    parsed = urllib.parse.urlsplit(base)
    key = (threading.get_ident(), parsed.netloc)
    cache = conn_cache if conn_cache is not None else {}
    conn = cache.get(key)
    if conn is None:
        conn = cache[key] = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    except (http.client.HTTPException, OSError):
        conn.close()
        cache.pop(key, None)
        raise
    return response.status, len(body)


def load(base: str, paths: list[str], clients: int = CLIENTS) -> dict:
    """``paths`` fetched by ``clients`` threads at once: requests/s, p50/p95 in ms, errors."""
    times: list[float] = []
    errors = [0]
    lock = threading.Lock()
    todo = iter(paths)
    cache: dict = {}

    def worker():
        while True:
            with lock:
                path = next(todo, None)
            if path is None:
                return
            t = time.perf_counter()
            try:
                status, _ = get(base, path, cache)
                ok = status in (200, 302)
            except (http.client.HTTPException, OSError):
                ok = False
            elapsed = time.perf_counter() - t
            with lock:
                times.append(elapsed)
                errors[0] += not ok

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    for conn in cache.values():
        conn.close()
    return {"rps": len(times) / wall, "p50": percentile(times, 50) * 1000,
            "p95": percentile(times, 95) * 1000, "errors": errors[0], "n": len(times)}


def sequential(base: str, paths: list[str]) -> dict:
    """One client, one request after the other (latency as one learner sees it)."""
    return load(base, paths, clients=1)


def measured(pid: int, run, paths: list[str]) -> dict:
    """``run(paths)`` (load or sequential), with the server's CPU time per request and
    the load average: on a shared machine the wall-clock times also count the waits for
    a core, the CPU time does not."""
    cpu = cpu_seconds(pid)
    found = run(paths)
    found["cpu_ms"] = (cpu_seconds(pid) - cpu) * 1000 / max(1, len(paths))
    found["load"] = os.getloadavg()[0]
    return found


def wait_for(url: str, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"{what} exited during start") from None
            time.sleep(0.2)
    raise SystemExit(f"{what} did not start")


def kiwix_serve() -> str:
    found = shutil.which("kiwix-serve")
    if found:
        return found
    if os.geteuid() == 0:
        print("installing Debian's kiwix-tools (apt-get install kiwix-tools)", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "kiwix-tools"], check=True,
                       stdout=subprocess.DEVNULL)
        found = shutil.which("kiwix-serve")
    if not found:
        raise SystemExit("kiwix-serve is missing: apt-get install kiwix-tools")
    return found


def queries(zim: Path, count: int, generated: bool) -> list[str]:
    """Search words: the generated ZIM's vocabulary (common to rare), else titles' words."""
    rng = random.Random(11)
    if generated:
        words = vocabulary(random.Random(7))
        picked = [words[rng.randrange(20, 5000)] for _ in range(count)]
        return [w if i % 3 else f"{w} {words[rng.randrange(20, 5000)]}" for i, w in enumerate(picked)]
    from libzim.reader import Archive

    archive = Archive(str(zim))
    titles = []
    for i in range(archive.entry_count):
        entry = archive._get_entry_by_id(i)
        if not entry.is_redirect and entry.get_item().mimetype.startswith("text/html"):
            titles.append(entry.title)
    pool = [w for t in titles for w in t.split() if len(w) > 3] or ["the"]
    return [rng.choice(pool) for _ in range(count)]


def article_paths(zim: Path, count: int) -> list[str]:
    from libzim.reader import Archive

    archive = Archive(str(zim))
    rng = random.Random(5)
    found = []
    tries = 0
    while len(found) < min(count, 2000) and tries < 50 * count:
        tries += 1
        entry = archive._get_entry_by_id(rng.randrange(archive.entry_count))
        if not entry.is_redirect and entry.get_item().mimetype.startswith("text/html"):
            found.append(entry.path)
    return [found[i % len(found)] for i in range(count)] if found else []


def run(zim: Path, requests: int, searches: int, generated: bool) -> dict:
    import sqlite3

    from _box import Server, prepare

    results: dict = {"zim": str(zim), "size_mb": round(zim.stat().st_size / 1e6)}
    work = Path(tempfile.mkdtemp(prefix="zim-bench-"))
    home = work / "box"
    env = {**os.environ, "PASSERELLE_HOME": str(home)}
    prepare(home)
    subprocess.run([PASSERELLE, "content", "import", str(zim)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    db = sqlite3.connect(home / "passerelle.db")
    uuid, name, has_fulltext = db.execute("SELECT uuid, name, has_fulltext FROM content_zims").fetchone()
    db.close()

    # Indexing into our FTS5 index, as for a ZIM without one: alone in its process.
    # Its own peak and CPU time, from wait4: the children's rusage of this process would
    # also hold the peaks of the imports before it.
    started = time.monotonic()
    indexing = subprocess.Popen([PASSERELLE, "index", "zim", uuid], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(indexing.pid, 0)
    indexing.returncode = os.waitstatus_to_exitcode(status)
    if indexing.returncode:
        raise SystemExit(f"passerelle index zim failed ({indexing.returncode})")
    results["index_seconds"] = round(time.monotonic() - started, 1)
    results["index_cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 1)
    results["index_peak_mb"] = round(usage.ru_maxrss / 1024)
    results["index_load"] = round(os.getloadavg()[0], 1)
    index_file = home / "index" / "zim" / f"{uuid}.db"
    results["index_mb"] = round(index_file.stat().st_size / 1e6, 1)
    print(f"our FTS5 index: {results['index_seconds']} s ({results['index_cpu_seconds']} s of CPU,"
          f" load average {results['index_load']}), peak {results['index_peak_mb']} MB "
          f"(the indexing process), {results['index_mb']} MB on disk", flush=True)

    paths = article_paths(zim, requests)
    words = queries(zim, searches, generated)
    quoted = [urllib.parse.quote(p) for p in paths]

    # kiwix-serve: the same file, alone.
    port = free_port()
    book = zim.stem
    kiwix = subprocess.Popen([kiwix_serve(), "-i", "127.0.0.1", "-p", str(port), str(zim)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/catalog/v2/entries", kiwix, "kiwix-serve")
        rss_idle = rss_mb(kiwix.pid)
        k = results["kiwix"] = {}
        k["main"] = measured(kiwix.pid, lambda ps: sequential(base, ps), [f"/{book}/"] * 50)
        k["article"] = measured(kiwix.pid, lambda ps: load(base, ps),
                                [f"/{book}/{p}" for p in quoted])
        k["search"] = measured(kiwix.pid, lambda ps: sequential(base, ps),
                               [f"/search?content={book}&pattern={urllib.parse.quote(w)}"
                                for w in words])
        k["rss_idle_mb"], k["rss_mb"] = round(rss_idle), round(rss_mb(kiwix.pid))
        k["memory"] = memory_split(kiwix.pid)
    finally:
        kiwix.terminate()
        kiwix.wait(timeout=30)

    server = Server(home, threads=8)
    try:
        base = server.url
        rss_idle = rss_mb(server.proc.pid)   # the ZIM is opened on its first request
        memory_idle = memory_split(server.proc.pid)
        p = results["passerelle"] = {}
        pid = server.proc.pid
        seq = lambda ps: sequential(base, ps)  # noqa: E731
        p["main"] = measured(pid, seq, [f"/zim/{uuid}/"] * 50)
        p["main_page_kiosk"] = measured(pid, seq, [f"/read/{uuid}/"] * 50)
        p["article"] = measured(pid, lambda ps: load(base, ps), [f"/zim/{uuid}/{q}" for q in quoted])
        p["rss_articles_mb"] = round(rss_mb(pid))
        search_paths = [f"/api/v1/zims/search?zim={uuid}&q={urllib.parse.quote(w)}" for w in words]
        if has_fulltext:
            p["search_xapian"] = measured(pid, seq, search_paths)
            p["rss_xapian_mb"] = round(rss_mb(pid))
            # What a learner waits for: the search page, lessons and this ZIM's hits merged,
            # shown without the Xapian hits' snippets; then the one request of the page's
            # script that fills them in (the paths the page shows, found beforehand).
            p["search_page_xapian"] = measured(pid, seq, [f"/search?q={urllib.parse.quote(w)}"
                                                          for w in words])
            later = []
            for w in words:
                with urllib.request.urlopen(f"{base}/api/v1/zims/search?zim={uuid}&count=5&q="
                                            f"{urllib.parse.quote(w)}") as answer:
                    hits = json.load(answer)["sources"]
                shown = [h["path"] for s in hits for h in s["hits"]][:PER_PAGE_ZIM]
                later.append(f"/api/v1/zims/{uuid}/snippets?q={urllib.parse.quote(w)}&"
                             + "&".join(f"path={urllib.parse.quote(x)}" for x in shown))
            p["snippets_xapian"] = measured(pid, seq, later)
        # The same ZIM as if it had no index of its own: searched in the box's FTS5 index.
        db = sqlite3.connect(home / "passerelle.db")
        db.execute("UPDATE content_zims SET has_fulltext = 0")
        db.commit()
        db.close()
        time.sleep(2.5)   # the server reads its ZIM catalogue again every 2 s
        p["search_fts"] = measured(pid, seq, search_paths)
        p["search_page_fts"] = measured(pid, seq, [f"/search?q={urllib.parse.quote(w)}"
                                                   for w in words])
        p["rss_idle_mb"], p["rss_mb"] = round(rss_idle), round(rss_mb(pid))
        p["memory_idle"] = memory_idle
        p["memory"] = memory_split(pid)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return results


def show(results: dict) -> None:
    def line(label, r):
        print(f"  {label:<28} {r['rps']:7.0f} req/s  p50 {r['p50']:7.1f} ms  p95 {r['p95']:7.1f} ms"
              f"  CPU {r['cpu_ms']:6.1f} ms/request  ({r['n']} requests, {r['errors']} errors,"
              f" load average {r['load']:.1f})")

    print(f"ZIM {results['zim']} ({results['size_mb']} MB)")
    for who in ("kiwix", "passerelle"):
        print(who)
        for key, r in results[who].items():
            if isinstance(r, dict):
                line(key, r)
        stages = "".join(f", {results[who][k]} MB after the {what}" for k, what in
                         (("rss_articles_mb", "articles"), ("rss_xapian_mb", "Xapian searches"))
                         if k in results[who])
        idle = f" ({results[who]['memory_idle']})" if "memory_idle" in results[who] else ""
        print(f"  memory (RSS): {results[who]['rss_idle_mb']} MB idle{idle}{stages}, "
              f"{results[who]['rss_mb']} MB after the load ({results[who]['memory']})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zim", type=Path, help="a ZIM file (default: the generated one)")
    parser.add_argument("--data", type=Path, default=DATA, help="where the generated ZIM is kept")
    parser.add_argument("--articles", type=int, default=ARTICLES)
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--searches", type=int, default=SEARCHES)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    generated = args.zim is None
    zim = args.zim or args.data / f"bench_fr_{args.articles // 1000}k.zim"
    if generated and not zim.exists():
        generate(zim, args.articles)
    results = run(zim, args.requests, args.searches, generated)
    show(results)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
