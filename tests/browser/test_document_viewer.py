"""PDF documents open in the viewer shipped with the box (pdf.js), page by page."""

import pytest

from tests.browser.test_learner_journeys import events_of, sign_in_as_amina

pytestmark = pytest.mark.browser


def test_a_learner_reads_a_pdf_page_by_page(live_server, page_factory, box):
    page = page_factory(live_server.url, locale="en-GB")
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    sign_in_as_amina(page)
    page.goto("/learn/demo-fr/basics/guide")
    viewer = page.locator(".pdf-viewer")
    page.wait_for_selector(".pdf-page[data-page='1'][data-rendered=true]", timeout=15000)
    assert viewer.is_visible()
    assert page.locator(".pdf-status").inner_text() == "Page 1 of 2"
    first = page.locator(".pdf-page[data-page='1']")
    # Something was drawn: the canvas is not blank.
    assert first.evaluate("""c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (let i = 0; i < d.length; i += 4) { if (d[i] < 128) return true; } return false; }""")
    assert not [e for e in events_of(box.home, "basics/guide") if e["type"] == "completed"]
    page.get_by_role("button", name="Next page").click()
    page.wait_for_selector(".pdf-page[data-page='2'][data-rendered=true]", timeout=15000)
    assert page.locator(".pdf-status").inner_text() == "Page 2 of 2"
    assert page.get_by_role("button", name="Next page").is_disabled()
    # Zoom redraws the page larger.
    before = page.locator(".pdf-page").bounding_box()["width"]
    page.get_by_role("button", name="Zoom in").click()
    page.wait_for_selector(".pdf-page[data-page='2'][data-rendered=true]")
    assert page.locator(".pdf-page").bounding_box()["width"] > before
    # The last page was shown: the completed event arrives through the progress queue.
    page.wait_for_function(
        "() => { const k = Object.keys(localStorage).find(k => k.startsWith('passerelle-queue-'));"
        " return k && JSON.parse(localStorage.getItem(k)).length === 0; }", timeout=10000)
    completed = [e for e in events_of(box.home, "basics/guide") if e["type"] == "completed"]
    assert len(completed) == 1
    assert any("/static/" in u and "pdf.worker.min.js" in u for u in requests), "worker from the box"
    assert not [e for e in errors if "Content Security Policy" in e]
    # The link stays, for tablets that would rather download it.
    assert page.get_by_role("link", name="Open the document").count() == 1


def test_without_javascript_the_document_link_remains(live_server, page_factory):
    page = page_factory(live_server.url, locale="en-GB", java_script_enabled=False)
    page.goto("/learn/demo-fr/basics/guide")
    assert not page.locator(".pdf-viewer").is_visible()
    href = page.get_by_role("link", name="Open the document").get_attribute("href")
    response = page.request.get(live_server.url + href)
    assert response.status == 200 and response.body().startswith(b"%PDF")
