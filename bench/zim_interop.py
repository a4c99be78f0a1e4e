"""Conformance check against real ZIM files (../shared/interop/zim by default), in Chromium.

Imports every ``*.zim`` of a folder into a fresh data home with the real CLI,
serves it, and, in Debian's headless Chromium, opens each ZIM from the
learners' library (its main page must render inside the kiosk frame) and runs
the search page for a few queries. Prints one line per check; exits non-zero
on a failure. Not part of the test suite (the files are not in the repository).

    .venv/bin/python bench/zim_interop.py [FOLDER]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).with_name("passerelle")
FOLDER = Path(sys.argv[1] if len(sys.argv) > 1 else HERE.parent / "shared" / "interop" / "zim")
SEARCHES = ["Ray Charles", "кніга"]


def main() -> int:
    from passerelle.server import accounts
    from passerelle.server.app import create_app
    from passerelle.server.db import get_db
    from playwright.sync_api import sync_playwright

    home = Path(tempfile.mkdtemp(prefix="zim-interop-")) / "box"
    app = create_app({"home": home, "TESTING": True})
    with app.app_context():
        accounts.setup(get_db(), org_name="Interop", languages=["en", "fr"], signin_mode="pin",
                       profile_fields={}, display_name="C", username="cora",
                       password="coordinator passphrase")
    failures = 0
    zims = sorted(FOLDER.glob("*.zim"))
    for path in zims:
        done = subprocess.run([str(BIN), "--home", str(home), "content", "import", str(path)],
                              check=False, capture_output=True, text=True)
        print(f"import {path.name}: {done.stdout.strip() or done.stderr.strip()}")
        failures += done.returncode != 0
    port = 8765
    server = subprocess.Popen([str(BIN), "--home", str(home), "serve", "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/api/v1/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_context(base_url=base, locale="en").new_page()
            page.goto("/")
            tiles = page.locator("a.tile.zim")
            hrefs = [tiles.nth(i).get_attribute("href") for i in range(tiles.count())]
            names = [tiles.nth(i).inner_text().replace("\n", " / ") for i in range(tiles.count())]
            for href, name in zip(hrefs, names, strict=True):
                page.goto(href)
                frame = page.frame_locator("iframe.zim-frame")
                try:
                    frame.locator("body").wait_for(timeout=10000)
                    text = frame.locator("body").inner_text(timeout=10000).strip()
                    heading = text.splitlines()[0] if text else ""
                    url = page.locator("iframe.zim-frame").get_attribute("src")
                    ok = bool(text)
                except Exception as exc:  # noqa: BLE001 - report and go on
                    ok, heading, url = False, str(exc).splitlines()[0], ""
                failures += not ok
                print(f"{'ok  ' if ok else 'FAIL'} main page of {name!r}: {url} -> {heading[:60]!r}")
            for query in SEARCHES:
                page.goto(f"/search?q={query}")
                hits = page.locator("li.zim-hit a")
                found = [hits.nth(i).inner_text() for i in range(min(hits.count(), 5))]
                chips = page.locator("nav.sources a.chip")
                facets = [chips.nth(i).inner_text() for i in range(chips.count())]
                print(f"{'ok  ' if found else 'FAIL'} search {query!r}: facets {facets}; first hits {found}")
                failures += not found
                if found:
                    hits.first.click()
                    body = page.frame_locator("iframe.zim-frame").locator("body")
                    print(f"     opened {page.url} -> {body.inner_text(timeout=10000).strip()[:50]!r}")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=15)
    print("failures:", failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
