"""PDF pages rendered by the box: images cached on disk, the viewer's links, hostile documents."""

import io
import json
import re
import sqlite3
import threading

import pytest
from passerelle.server.packs import pdfpages

from tests.conftest import csrf_token, english_client


def events_of(home, node_id):
    db = sqlite3.connect(home / "passerelle.db")
    return [json.loads(p) for (p,) in db.execute(
        "SELECT payload FROM ops WHERE kind = 'event' AND json_extract(payload, '$.node_id') = ?",
        [node_id])]


@pytest.fixture
def guide(app):
    db = sqlite3.connect(app.config["DB_PATH"])
    return db.execute("SELECT sha256 FROM content_node_files"
                      " WHERE node_id = 'basics/guide' AND role = 'main'").fetchone()[0]


def cached(app, sha):
    return sorted(p.name for p in (app.config["HOME"].root / "cache" / "pdf" / sha).glob("*.webp"))


def test_a_page_is_rendered_once_then_served_from_the_cache(app, client, guide):
    renderer = pdfpages.renderer(app)
    first = client.get(f"/pdf/{guide}/1/800.webp")
    assert first.status_code == 200 and first.mimetype == "image/webp"
    assert first.data[:4] == b"RIFF" and first.data[8:12] == b"WEBP"
    assert first.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert renderer.renders == 1
    again = client.get(f"/pdf/{guide}/1/800.webp")
    assert again.data == first.data and renderer.renders == 1  # not rendered again
    assert cached(app, guide) == ["1-800.webp"]
    # A wider step is a different (larger) image; the tablet's browser asks for it by srcset.
    wide = client.get(f"/pdf/{guide}/1/1600.webp")
    assert wide.status_code == 200 and len(wide.data) > len(first.data)
    from PIL import Image

    assert Image.open(io.BytesIO(wide.data)).size[0] == 1600
    # The browser's cache check costs nothing either.
    etag = again.headers["ETag"]
    assert client.get(f"/pdf/{guide}/1/800.webp", headers={"If-None-Match": etag}).status_code == 304


def test_pages_and_widths_that_do_not_exist_are_404(client, guide, demo_app_sha):
    assert client.get(f"/pdf/{guide}/3/800.webp").status_code == 404  # the guide has 2 pages
    assert client.get(f"/pdf/{guide}/0/800.webp").status_code == 404
    assert client.get(f"/pdf/{guide}/1/801.webp").status_code == 404  # only the fixed steps
    assert client.get(f"/pdf/{'0' * 64}/1/800.webp").status_code == 404  # not an installed file
    assert client.get(f"/pdf/{demo_app_sha}/1/800.webp").status_code == 404  # not a PDF


@pytest.fixture
def demo_app_sha(app):
    db = sqlite3.connect(app.config["DB_PATH"])
    return db.execute("SELECT sha256 FROM content_node_files WHERE node_id = 'basics/game'"
                      ).fetchone()[0]


def test_thirty_tablets_opening_the_same_page_render_it_once(app, guide):
    renderer = pdfpages.renderer(app)
    answers, barrier = [], threading.Barrier(30)

    def tablet():
        client = app.test_client()
        barrier.wait()
        answers.append(client.get(f"/pdf/{guide}/2/1200.webp"))

    threads = [threading.Thread(target=tablet) for _ in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200] * 30
    assert len({a.data for a in answers}) == 1
    assert renderer.renders == 1


def upload_pdf(as_user, data: bytes, title: str) -> None:
    """A facilitator adds a PDF to the box's own material."""
    fatou = as_user("fatou")
    token = csrf_token(fatou)
    response = fatou.post("/manage/material/file", content_type="multipart/form-data", data={
        "csrf_token": token, "title": title, "file": (io.BytesIO(data), "doc.pdf")})
    assert response.status_code == 302


def material_pdf(app) -> tuple[str, str, str]:
    db = sqlite3.connect(app.config["DB_PATH"])
    return db.execute("SELECT pack_id, node_id, sha256 FROM content_node_files"
                      " WHERE pack_id LIKE 'local-%' AND mime = 'application/pdf'").fetchone()


def test_a_damaged_pdf_gets_a_clear_error_and_the_server_carries_on(app, as_user, guide):
    broken = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    upload_pdf(as_user, broken, "Horaires")
    pack_id, node_id, sha = material_pdf(app)
    amina = as_user("amina")
    response = amina.get(f"/pdf/{sha}/1/800.webp")
    assert response.status_code == 422
    assert "This document cannot be shown as pages" in response.get_data(as_text=True)
    page = amina.get(f"/learn/{pack_id}/{node_id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "This document cannot be shown as pages" in html
    assert "Open the document" in html and "pdfviewer.js" not in html
    # Other documents are still shown.
    assert amina.get(f"/pdf/{guide}/1/800.webp").status_code == 200


def test_a_page_too_slow_to_draw_is_stopped_and_the_renderer_replaced(app, guide, tmp_path):
    source = app.extensions["passerelle.library"].blob_path(guide)
    hurried = pdfpages.Renderer(tmp_path / "cache", timeout=0.001)
    hurried._counts[guide] = 2  # the count is quick; drawing 1600 px is not that quick
    with pytest.raises(pdfpages.DocumentError, match="longer than"):
        hurried.image(guide, source, 1, 1600)
    with pytest.raises(pdfpages.DocumentError, match="longer than"):  # remembered: no new wait
        hurried.image(guide, source, 1, 1600)
    assert not list((tmp_path / "cache").rglob("*.webp*")), "no image, no temp file left"
    patient = pdfpages.Renderer(tmp_path / "cache")
    assert patient.image(guide, source, 1, 1600).is_file()  # a new worker was started


def test_a_worker_killed_while_idle_is_started_again(app, guide, tmp_path):
    source = app.extensions["passerelle.library"].blob_path(guide)
    renderer = pdfpages.Renderer(tmp_path / "cache")
    assert renderer.page_count(guide, source) == 2
    pdfpages._worker.proc.kill()
    assert renderer.image(guide, source, 2, 800).is_file()


def test_the_cache_stays_under_its_size_removing_the_oldest(app, guide, tmp_path):
    source = app.extensions["passerelle.library"].blob_path(guide)
    probe = pdfpages.Renderer(tmp_path / "probe")
    one = probe.image(guide, source, 1, 800).stat().st_size
    small = pdfpages.Renderer(tmp_path / "small", max_bytes=int(one * 2.5))
    for width in pdfpages.WIDTHS:
        small.image(guide, source, 1, width)
    names = sorted(p.name for p in (tmp_path / "small" / guide).glob("*.webp"))
    assert "1-800.webp" not in names  # the first made went first
    assert sum(p.stat().st_size for p in (tmp_path / "small" / guide).glob("*.webp")) <= one * 2.5


def test_the_viewer_works_without_javascript_and_the_last_page_completes(app, box, as_user, guide):
    amina = as_user("amina")
    html = amina.get("/learn/demo-fr/basics/guide").get_data(as_text=True)
    assert 'alt="Page 1 of 2"' in html
    assert f'src="/pdf/{guide}/1/800.webp"' in html
    assert f"/pdf/{guide}/1/1600.webp 1600w" in html
    assert re.search(r'class="pdf-button pdf-next" rel="next" href="\?page=2"', html)
    assert "pdf.min.js" not in html and "vendor/pdfjs" not in html
    assert not [e for e in events_of(box.home, "basics/guide") if e["type"] == "completed"]
    html = amina.get("/learn/demo-fr/basics/guide?page=2").get_data(as_text=True)
    assert 'alt="Page 2 of 2"' in html and 'href="?page=1"' in html
    amina.get("/learn/demo-fr/basics/guide?page=2")  # seen again: still one completion
    completed = [e for e in events_of(box.home, "basics/guide") if e["type"] == "completed"]
    assert len(completed) == 1
    # Out-of-range or nonsense pages show the nearest page, zoom keeps to its steps.
    assert 'alt="Page 2 of 2"' in amina.get("/learn/demo-fr/basics/guide?page=99").get_data(
        as_text=True)
    html = english_client(app).get("/learn/demo-fr/basics/guide?page=x&zoom=150").get_data(
        as_text=True)
    assert 'alt="Page 1 of 2"' in html and "zoom-150" in html and "150vw" in html


def test_an_absurd_page_size_gives_a_bounded_image(tmp_path):
    import pypdf
    from PIL import Image

    for size in [(3, 14400), (14400, 14400)]:  # a ribbon 200 inches tall, a 200-inch square
        writer = pypdf.PdfWriter()
        writer.add_blank_page(*size)
        source = tmp_path / f"{size[0]}x{size[1]}.pdf"
        with open(source, "wb") as f:
            writer.write(f)
        image = pdfpages.Renderer(tmp_path / "cache").image("f" * 64, source, 1, 1600)
        width, height = Image.open(image).size
        assert width <= 1600 and height <= 1600 * pdfpages.MAX_ASPECT
        image.unlink()
