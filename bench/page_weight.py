"""Page weight of learner pages on a first visit: gzip bytes of HTML + CSS + JS (prints figures).

Usage: .venv/bin/python bench/page_weight.py

Starts the real server on 127.0.0.1 with a fresh data home (bundled library
plus the test fixture pack, which has a video, a PDF and an exercise), and
for the home page, a topic, an article, a video page, the exercise player and
a PDF document, fetches the page and the same-origin stylesheets and scripts
it links, as a tablet with an empty cache would, with ``Accept-Encoding:
gzip``. Reports the bytes on the wire (what the server sent, gzip when it
compresses) and, for reference, the uncompressed size. Media (video, images,
the PDF itself) is not counted: the budget is the page's own weight.
Target: under 60 KB per page. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import gzip
import re
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _box import Server, nodes, prepare  # noqa: E402

TARGET_KB = 60
ASSET = re.compile(r'<(?:script[^>]+src|link[^>]+rel="stylesheet"[^>]+href)="(/[^"]+)"')
SPRITE = re.compile(r'xlink:href="(/static/[^"#]+)#')  # the icons (one SVG sprite, once per page)


def fetch(url: str) -> tuple[int, int, str]:
    """(bytes on the wire, bytes decoded, text) of one GET."""
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(request, timeout=30) as r:
        raw = r.read()
        body = gzip.decompress(raw) if r.headers.get("Content-Encoding") == "gzip" else raw
    return len(raw), len(body), body.decode("utf-8", errors="replace")


def weigh(base: str, path: str) -> tuple[int, int, list[tuple[str, int, int]]]:
    wire, plain, html = fetch(base + path)
    parts = [(path, wire, plain)]
    # The PDF viewer's worker is fetched by its script, not by a tag: counted too.
    for asset in dict.fromkeys(ASSET.findall(html) + SPRITE.findall(html)):
        a_wire, a_plain, _ = fetch(base + asset)
        parts.append((asset, a_wire, a_plain))
    return sum(p[1] for p in parts), sum(p[2] for p in parts), parts


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "box"
        prepare(home, demo_pack=True)
        pages = {"home": "/", **nodes(home)}
        server = Server(home)
        try:
            print(f"{'page':<9} {'path':<48} {'gzip KB':>8} {'plain KB':>9}  files")
            for name, path in pages.items():
                wire, plain, parts = weigh(server.url, path)
                flag = "" if wire / 1024 < TARGET_KB else f"  over {TARGET_KB} KB"
                print(f"{name:<9} {path[:48]:<48} {wire / 1024:8.1f} {plain / 1024:9.1f}  {len(parts)}{flag}")
                for asset, a_wire, a_plain in parts:
                    print(f"{'':<9}   {asset[-46:]:<46} {a_wire / 1024:8.1f} {a_plain / 1024:9.1f}")
        finally:
            server.stop()
    print(f"target: under {TARGET_KB} KB per page on the wire (gzip), first visit, media excluded")


if __name__ == "__main__":
    main()
