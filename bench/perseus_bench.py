"""Khan Academy (Perseus) questions served to a class: page weight, 30 tablets at once, coverage.

Usage:
  .venv/bin/python bench/perseus_bench.py                          # ../shared/interop/kolibri/perseus
  .venv/bin/python bench/perseus_bench.py --perseus DIR --tablets 30 --rounds 5

A Kolibri export folder is written with Kolibri's content-database schema
(``tests/content/kolibri_channel.py``): one exercise node per real ``.perseus``
file of DIR, as Kolibri Studio publishes them. It is imported into a fresh box
with ``content import`` (the bundled library and N learners with a PIN), served by
a real ``passerelle serve`` on 127.0.0.1. Then:

- **page weight, first visit**: for each exercise, its question page (HTML, math as
  inline MathML included) and the same-origin stylesheets, scripts and icon sprite it
  links, with ``Accept-Encoding: gzip``, as a tablet with an empty cache loads them.
  The question's pictures (``${☣ LOCALPATH}`` images, graphie SVGs) are media, counted
  apart as the learner pages' budget does. Target: under 60 KB.
- **30 tablets in a class**: N signed-in learners (one keep-alive connection each, own
  cookies), each on an exercise of its own (round robin), open a question page, read and
  answer it for THINK seconds (drawn between half and one and a half times ``--think-s``)
  and open the next, for ``--duration`` seconds. p50 / p95 of the page, server CPU per page.
  Target: p95 under 50 ms.
- **30 tablets at once**: the same tablets open a question page at the same instant (a
  barrier before each of ``--rounds`` rounds): the worst moment of a class, when the
  facilitator says "go". One process serves the 30 pages one core's worth at a time, so
  the last waits for the other 29.
- **coverage**: ``bench/perseus_coverage.py`` over DIR (questions that render and check
  correctly, by widget).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "content"))
import perseus_coverage  # noqa: E402
from _box import PASSERELLE, PIN, Server, prepare  # noqa: E402
from kolibri_bench import Tablet, cpu_tree_s, pct  # noqa: E402
from page_weight import ASSET, SPRITE, fetch  # noqa: E402

TARGET_KB = 60
TARGET_P95_MS = 50
CHANNEL = "5e25e05e25e05e25e05e25e05e25e05e"
DEFAULT_DIR = HERE.parent.parent / "shared" / "interop" / "kolibri" / "perseus"
IMAGE = re.compile(r'<img[^>]+src="(/files/[^"]+)"')


def channel(root: Path, files: list[Path]) -> list[str]:
    """A KOLIBRI_DATA folder with one exercise per .perseus file; their node ids."""
    from kolibri_channel import ExportFolder, hexid

    ex = ExportFolder(root, channel_id=CHANNEL, name="Khan Academy (bench)")
    topic = ex.node(hexid("perseus-topic"), CHANNEL, "topic", "Exercises", order=1)
    nodes = []
    for n, path in enumerate(files):
        node = ex.node(hexid("perseus-" + path.name), topic, "exercise", path.stem[:12], order=n,
                       options={"completion_criteria": {"model": "mastery", "threshold": {
                           "mastery_model": "num_correct_in_a_row_5"}}})
        ex.file(node, "exercise", path.read_bytes(), "perseus")
        nodes.append(node)
    ex.save()
    return nodes


def sign_in(tablet: Tablet, user: str) -> None:
    path = f"/signin/learner/{user}"
    html = tablet.request("GET", path).decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    tablet.request("POST", path, form={"csrf_token": token, "secret": PIN}, expect=302)


def weight(base: str, path: str) -> dict:
    """Bytes on the wire of a first visit: the page, its CSS/JS/sprite, and its pictures apart."""
    wire, raw, html = fetch(base + path)
    page = {"html": wire, "assets": 0, "media": 0, "math": html.count("<math"),
            "playable": 'id="question"' in html}
    for asset in sorted(set(ASSET.findall(html)) | set(SPRITE.findall(html))):
        page["assets"] += fetch(base + asset)[0]
    for image in sorted(set(IMAGE.findall(html))):
        page["media"] += fetch(base + image.replace("&amp;", "&"))[0]
    return page


def at_once(server: Server, users: list[str], paths: list[str], rounds: int,
            think_s: float = 0, duration_s: float = 0) -> dict:
    """``rounds`` pages per tablet at the same instant; or, with ``think_s``, pages one after
    another with a learner's reading time between them, for ``duration_s``."""
    tablets = [Tablet(server.url, timeout=120) for _ in users]
    for tablet, user in zip(tablets, users, strict=True):
        sign_in(tablet, user)
    for tablet, path in zip(tablets, paths, strict=True):  # warm: each tablet has opened its exercise once
        tablet.request("GET", path)
    times: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(tablets))
    end = time.monotonic() + duration_s

    def run(i: int) -> None:
        rng = random.Random(i)  # each tablet its own reading times: no lockstep
        if think_s:
            time.sleep(rng.uniform(0, think_s))  # the class does not start in one instant
        for _ in range(10**9 if think_s else rounds):
            if think_s:
                if time.monotonic() >= end:
                    break
            else:
                barrier.wait()
            t0 = time.perf_counter()
            body = tablets[i].request("GET", paths[i])
            spent = time.perf_counter() - t0
            if b'class="practice' not in body:
                raise SystemExit(f"not an exercise page: {paths[i]}")
            with lock:
                times.append(spent)
            if think_s:
                time.sleep(rng.uniform(0.5, 1.5) * think_s)

    cpu0 = cpu_tree_s(server.proc.pid)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(tablets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = cpu_tree_s(server.proc.pid) - cpu0
    for tablet in tablets:
        tablet.close()
    return {"p50": pct(times, 50), "p95": pct(times, 95), "max": max(times), "n": len(times),
            "cpu_ms": cpu * 1000 / len(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--perseus", type=Path, default=DEFAULT_DIR, help="a folder of .perseus files")
    parser.add_argument("--tablets", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5, help="pages opened at once by each tablet")
    parser.add_argument("--think-s", type=float, default=5,
                        help="a learner's time on a question, on average, in the class measure")
    parser.add_argument("--duration", type=float, default=60, help="seconds of the class measure")
    args = parser.parse_args()
    files = sorted(args.perseus.glob("*.perseus"))
    if not files:
        raise SystemExit(f"no .perseus file in {args.perseus}")

    with tempfile.TemporaryDirectory(prefix="perseus-bench-") as tmp:
        tmp = Path(tmp)
        home = tmp / "box"
        ids = prepare(home, learners=args.tablets)
        nodes = channel(tmp / "KOLIBRI_DATA", files)
        subprocess.run([PASSERELLE, "--home", str(home), "content", "import", str(tmp / "KOLIBRI_DATA"),
                        "--channel", CHANNEL], check=True, stdout=subprocess.DEVNULL)
        from kolibri_channel import hexid

        pack = "kolibri-" + CHANNEL
        # Khan Academy's content_id is the exercise's identity on the box.
        paths = [f"/practice/{pack}/{hexid('content' + node)}" for node in nodes]
        server = Server(home)
        try:
            pages = [weight(server.url, p) for p in paths]
            playable = [(p, w) for p, w in zip(paths, pages, strict=True) if w["playable"]]
            totals = sorted((w["html"] + w["assets"]) / 1024 for _p, w in playable)
            print(f"{len(files)} real Khan Academy exercises; {len(playable)} open on a question "
                  f"(the others have too few playable questions and are hidden)")
            print(f"page weight, first visit, gzip (HTML with its math + CSS + JS + icons): "
                  f"min {totals[0]:.1f} KB, median {totals[len(totals) // 2]:.1f} KB, "
                  f"max {totals[-1]:.1f} KB (target < {TARGET_KB} KB); "
                  f"HTML alone {min(w['html'] for _p, w in playable) / 1024:.1f}–"
                  f"{max(w['html'] for _p, w in playable) / 1024:.1f} KB; "
                  f"{sum(w['math'] for _p, w in playable)} formulas as MathML; pictures "
                  f"(media, apart) up to {max(w['media'] for _p, w in playable) / 1024:.1f} KB")
            users = ids["learners"]
            order = [playable[i % len(playable)][0] for i in range(len(users))]
            r = at_once(server, users, order, 0, args.think_s, args.duration)
            print(f"{args.tablets} tablets in a class, {args.think_s:g} s on each question on average,"
                  f" {args.duration:g} s: p50 {r['p50'] * 1000:.1f} ms, p95 {r['p95'] * 1000:.1f} ms,"
                  f" max {r['max'] * 1000:.1f} ms (target p95 < {TARGET_P95_MS} ms); server CPU "
                  f"{r['cpu_ms']:.1f} ms per page; n={r['n']}; load average "
                  f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
            r = at_once(server, users, order, args.rounds)
            print(f"{args.tablets} tablets opening a question at once, {args.rounds} rounds: "
                  f"p50 {r['p50'] * 1000:.1f} ms, p95 {r['p95'] * 1000:.1f} ms, max "
                  f"{r['max'] * 1000:.1f} ms; server CPU "
                  f"{r['cpu_ms']:.1f} ms per page; n={r['n']}; load average "
                  f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        finally:
            server.stop()
    print("coverage (bench/perseus_coverage.py):")
    perseus_coverage.main(str(args.perseus))


if __name__ == "__main__":
    main()
