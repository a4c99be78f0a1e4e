"""A hostile pack in a real browser: its page and its scripts never run with the box's origin.

The attack as it was found: a pack ships a page (declared ``text/html; charset=utf-8``)
and a script, and its own article links to the page. Opened with the box's origin, the
page loads the script under ``script-src 'self'`` and calls ``/api/v1/me`` with the
learner's session. Such types are now refused at import; the catalog below is edited
as a box installed before that may still hold them, to show that serving alone holds.
"""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile

import pytest
from passerelle.server.app import create_app

from tests.browser.test_learner_journeys import sign_in_as_amina
from tests.content.packhelpers import article_pack, sha

pytestmark = pytest.mark.browser

SCRIPT = (b"window.__ran = true; document.documentElement.setAttribute('data-ran', 'script');\n"
          b"fetch('/api/v1/me', {credentials: 'include'}).then(r => r.text())"
          b".then(t => fetch('/api/v1/leak?' + encodeURIComponent(t)));\n")
PAGE = (b"<!doctype html><html><title>Page</title>"
        b"<script>document.documentElement.setAttribute('data-ran', 'inline');"
        b"fetch('/api/v1/me')</script>"
        b"<script src='/files/" + sha(SCRIPT).encode() + b"'></script><p>Hello</p></html>\n")
SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40">'
       b'<rect width="40" height="40" fill="#c00"/>'
       b"<script>document.documentElement.setAttribute('data-ran', 'svg');"
       b"fetch('/api/v1/me')</script></svg>\n")
SHOWN = "img => img.complete && img.naturalWidth > 0"
LOAD_AS_SCRIPT = """src => new Promise(resolve => {
    const s = document.createElement('script');
    s.src = src;
    s.onload = () => resolve('ran');
    s.onerror = () => resolve('refused');
    document.head.appendChild(s);
})"""


# An html5 app runs its scripts, but in an opaque origin: it may ask, it may not read.
APP_PAGE = b"""<!doctype html><title>Game</title><body><script>
fetch('/api/v1/me', {credentials: 'include'})
  .then(r => r.text()).then(t => { document.body.dataset.result = 'read: ' + t; })
  .catch(() => { document.body.dataset.result = 'refused'; });
</script></body>"""


def app_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("index.html", APP_PAGE)
    return out.getvalue()


@pytest.fixture
def evil_box(box, tmp_path):
    body = (f"![A red square](sha256:{sha(SVG)})\n\n[Open the page](sha256:{sha(PAGE)})\n\n"
            f"[Open the picture](sha256:{sha(SVG)})\n")
    pack = article_pack(tmp_path / "evil", body, [(SVG, "image/svg+xml", "image"),
                                                  (PAGE, "text/plain", "transcript"),
                                                  (SCRIPT, "text/plain", "transcript")],
                        pack_id="evil-pack")
    game = app_zip()
    manifest = json.loads((pack / "manifest.json").read_text())
    manifest["nodes"].append({"id": "game", "parent": "root", "kind": "html5", "title": "Game",
                              "order": 1, "files": [{"sha256": sha(game), "size": len(game),
                                                     "mime": "application/zip", "role": "main"}]})
    (pack / "manifest.json").write_text(json.dumps(manifest))
    (pack / "files" / sha(game)).write_bytes(game)
    create_app({"home": box.home, "TESTING": True}).extensions["passerelle.library"].import_pack(pack)
    db = sqlite3.connect(box.home / "passerelle.db")
    with db:
        db.execute("UPDATE content_node_files SET mime = 'text/html; charset=utf-8' WHERE sha256 = ?",
                   [sha(PAGE)])
        db.execute("UPDATE content_node_files SET mime = 'text/javascript' WHERE sha256 = ?",
                   [sha(SCRIPT)])
    db.close()
    return box


def test_a_packs_page_and_scripts_cannot_use_the_learners_session(evil_box, server_factory,
                                                                   page_factory):
    server = server_factory()
    page = page_factory(server.url, locale="en-GB")
    seen = []
    page.context.on("request", lambda r: seen.append(r.url))
    sign_in_as_amina(page)
    # The session is live: the box's own pages may read the learner's data.
    assert page.evaluate("fetch('/api/v1/me').then(r => r.status)") == 200
    seen.clear()

    page.goto("/learn/evil-pack/read-me")
    # The SVG still shows as an image in the article (an <img> never runs its script).
    page.wait_for_function(f"() => ({SHOWN})(document.querySelector('.article img, main img'))")

    # One click on the pack's link: a download, never a page with the box's origin.
    with page.expect_download() as download:
        page.get_by_role("link", name="Open the page").click()
    assert download.value.url.endswith(f"/files/{sha(PAGE)}")
    assert page.url.endswith("/learn/evil-pack/read-me")

    # The pack's script, loaded by a page of the box under script-src 'self': refused.
    assert page.evaluate(LOAD_AS_SCRIPT, f"/files/{sha(SCRIPT)}") == "refused"
    assert page.evaluate("window.__ran === undefined")
    assert page.evaluate("document.documentElement.getAttribute('data-ran')") is None

    # The SVG opened on its own is a document, but one in a sandbox that runs no script.
    page.get_by_role("link", name="Open the picture").click()
    page.wait_for_url(f"**/files/{sha(SVG)}")
    assert page.evaluate("document.documentElement.getAttribute('data-ran')") is None
    assert page.evaluate("origin") == "null"  # an opaque origin: no cookie, no session

    assert not [url for url in seen if "/api/v1/me" in url or "/leak" in url], seen

    # The pack's html5 app: its script runs, in a sandbox whose requests carry no session
    # the app may read (no CORS answer for an opaque origin).
    page.goto("/learn/evil-pack/game")
    frame = page.wait_for_selector("iframe.app").content_frame()
    frame.wait_for_function("() => document.body && document.body.dataset.result")
    assert frame.evaluate("document.body.dataset.result") == "refused"
