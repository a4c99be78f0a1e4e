"""A hostile pack cannot run anything with the box's origin, whatever types it declares."""

from __future__ import annotations

import re
import sqlite3

import pytest
from passerelle.kiosk.markdown import render_markdown

from tests.content.packhelpers import article_pack, sha

SCRIPT = b"fetch('/api/v1/me').then(r => r.text()).then(t => fetch('/leak?' + t));\n"
PAGE = b"<!doctype html><title>x</title><script src='/files/" + sha(SCRIPT).encode() + b"'></script>\n"
SVG_WITH_SCRIPT = (b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40">'
                   b'<rect width="40" height="40" fill="red"/>'
                   b"<script>fetch('/api/v1/me')</script></svg>\n")


def install(app, tmp_path, body: str, files, pack_id="evil-pack"):
    pack = article_pack(tmp_path / pack_id, body, files, pack_id=pack_id)
    app.extensions["passerelle.library"].import_pack(pack)


def declare(app, blob: bytes, mime: str) -> None:
    """What the catalog of a box installed before types were checked may hold."""
    db = sqlite3.connect(app.config["DB_PATH"])
    with db:
        db.execute("UPDATE content_node_files SET mime = ? WHERE sha256 = ?", [mime, sha(blob)])
    db.close()


@pytest.fixture
def evil(app, tmp_path):
    """Passes import: its page and script hide as text, its SVG carries a script."""
    install(app, tmp_path, f"![pic](sha256:{sha(SVG_WITH_SCRIPT)})\n\n[Open](sha256:{sha(PAGE)})\n",
            [(SVG_WITH_SCRIPT, "image/svg+xml", "image"), (PAGE, "text/plain", "transcript"),
             (SCRIPT, "text/plain", "transcript")])
    return app


@pytest.mark.parametrize("declared", ["text/html; charset=utf-8", "text/html", "application/xml",
                                      "application/xhtml+xml", "text/xml", "image/svg+xml+html"])
def test_a_page_in_the_catalog_is_only_a_download(evil, as_user, declared):
    declare(evil, PAGE, declared)
    amina = as_user("amina")
    response = amina.get(f"/files/{sha(PAGE)}")
    assert response.status_code == 200 and response.data == PAGE
    assert response.mimetype == "application/octet-stream"
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    csp = response.headers["Content-Security-Policy"]
    assert csp.startswith("sandbox;") and "allow-scripts" not in csp and "allow-same-origin" not in csp
    # Named in the URL as a page, still a download.
    named = amina.get(f"/files/{sha(PAGE)}/index.html")
    assert named.mimetype == "application/octet-stream"
    assert named.headers["Content-Disposition"].startswith("attachment")


@pytest.mark.parametrize("declared", ["text/javascript", "application/javascript", "text/css",
                                      "application/ecmascript", "text/plain"])
def test_a_script_is_never_served_as_one(evil, client, declared):
    declare(evil, SCRIPT, declared)
    response = client.get(f"/files/{sha(SCRIPT)}")
    # Not a JavaScript or CSS type, with nosniff: a browser refuses it in <script> or <link>.
    assert response.mimetype in ("application/octet-stream", "text/plain")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "allow-scripts" not in response.headers["Content-Security-Policy"]


def test_text_and_svg_open_in_a_sandbox_without_scripts(evil, client):
    text = client.get(f"/files/{sha(PAGE)}")
    assert text.mimetype == "text/plain"
    svg = client.get(f"/files/{sha(SVG_WITH_SCRIPT)}")
    assert svg.mimetype == "image/svg+xml" and svg.headers["Content-Disposition"].startswith("inline")
    for response in (text, svg):
        csp = response.headers["Content-Security-Policy"]
        assert csp.split(";")[0] == "sandbox" and "default-src 'none'" in csp


def test_media_of_legitimate_packs_is_served_as_before(client, app):
    db = sqlite3.connect(app.config["DB_PATH"])
    files = {(node, role): sha256 for node, role, sha256 in db.execute(
        "SELECT node_id, role, sha256 FROM content_node_files WHERE pack_id = 'demo-fr'")}
    video = client.get(f"/files/{files[('basics/clip', 'main')]}")
    assert video.mimetype == "video/webm" and video.headers["Content-Disposition"].startswith("inline")
    assert not video.headers["Content-Security-Policy"].startswith("sandbox")
    pdf = client.get(f"/files/{files[('basics/guide', 'main')]}/Guide.pdf")
    assert pdf.mimetype == "application/pdf" and pdf.headers["Content-Disposition"].startswith("inline")
    assert not pdf.headers["Content-Security-Policy"].startswith("sandbox")  # the PDF viewer needs it
    subtitles = client.get(f"/files/{files[('basics/clip', 'subtitles')]}")
    assert subtitles.mimetype == "text/vtt" and subtitles.data.startswith(b"WEBVTT")
    image = client.get(f"/files/{files[('basics/welcome', 'image')]}")
    assert image.mimetype == "image/svg+xml" and image.headers["Content-Disposition"].startswith("inline")
    html = client.get("/learn/demo-fr/basics/welcome").get_data(as_text=True)
    assert f'src="/files/{files[("basics/welcome", "image")]}"' in html


@pytest.mark.parametrize("link", [
    "//evil.example/x", "/\\evil.example/x", "\\\\evil.example/x", "<\t//evil.example/x>",
    "</\t/evil.example/x>", "< //evil.example/x>", "/%2F/evil.example/x", "/%5Cevil.example",
    "https://evil.example/", "HTTP://evil.example/", "evil.example/x", "mailto:a@evil.example",
])
def test_markdown_links_to_other_hosts_are_not_clickable(link):
    html = str(render_markdown(f"[Click]({link})"))
    assert 'href="#"' in html and "data-outside=" in html, html


@pytest.mark.parametrize("link", ["javascript:fetch('/api/v1/me')", "JaVaScRiPt:alert(1)",
                                  "vbscript:x", "data:text/html,<script>x</script>",
                                  "java\tscript:alert(1)", "&#106;avascript:alert(1)"])
def test_markdown_script_links_never_become_links(link):
    html = str(render_markdown(f"[Click]({link})"))
    # Either markdown-it refuses the address (the text stays text) or it leads nowhere.
    assert re.findall(r'href="([^"]*)"', html) in ([], ["#"]), html


@pytest.mark.parametrize("link", ["/learn/demo-fr/basics", "#part-2", "/search?q=caf%C3%A9"])
def test_markdown_links_on_the_box_stay_links(link):
    assert f'href="{link}"' in str(render_markdown(f"[Here]({link})"))


def test_an_article_from_a_pack_cannot_link_off_the_box(app, tmp_path, client):
    install(app, tmp_path, "[Home](//evil.example/steal) [Also](/\\evil.example) [Fine](/search)\n", [])
    html = client.get("/learn/evil-pack/read-me").get_data(as_text=True)
    assert 'href="//' not in html and 'href="/%5C' not in html and "evil.example/steal" in html
    assert 'href="/search"' in html
