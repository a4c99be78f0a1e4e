"""PDF documents: the box renders each page to an image; the tablet shows one page at a time."""

import pytest

from tests.browser.test_learner_journeys import events_of, sign_in_as_amina

pytestmark = pytest.mark.browser

SHOWN = "img => img.complete && img.naturalWidth > 0"


def completed(box):
    return [e for e in events_of(box.home, "basics/guide") if e["type"] == "completed"]


def test_a_learner_reads_a_pdf_page_by_page(live_server, page_factory, box):
    page = page_factory(live_server.url, locale="en-GB")
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    sign_in_as_amina(page)
    page.goto("/learn/demo-fr/basics/guide")
    image = page.locator("img.pdf-page")
    page.wait_for_function(f"() => ({SHOWN})(document.querySelector('img.pdf-page'))")
    assert image.get_attribute("alt") == "Page 1 of 2"
    assert page.locator(".pdf-status").inner_text() == "Page 1 of 2"
    # The page fills the column; the browser chose a width step from the srcset.
    assert image.bounding_box()["width"] > 600
    assert "/1/" in image.evaluate("img => img.currentSrc")
    # Something was drawn: the rendered page is not blank.
    assert image.evaluate("""img => { const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d'); g.drawImage(img, 0, 0);
        const d = g.getImageData(0, 0, c.width, c.height).data;
        for (let i = 0; i < d.length; i += 4) { if (d[i] < 128) return true; } return false; }""")
    assert not completed(box)
    # The next page was fetched ahead, so turning is instant.
    page.wait_for_function("() => performance.getEntriesByType('resource')"
                           ".some(e => e.name.includes('/2/') && e.name.endsWith('.webp'))")
    page.get_by_role("link", name="Next page").click()
    page.wait_for_function("() => document.querySelector('img.pdf-page').alt === 'Page 2 of 2'")
    page.wait_for_function(f"() => ({SHOWN})(document.querySelector('img.pdf-page'))")
    assert "/2/" in image.evaluate("img => img.currentSrc")
    assert page.locator(".pdf-status").inner_text() == "Page 2 of 2"
    assert page.url.endswith("?page=2")  # a reload stays on this page
    assert page.locator(".pdf-next").get_attribute("aria-disabled") == "true"
    # The last page was shown: the completed event arrives through the progress queue.
    page.wait_for_function(
        "() => { const k = Object.keys(localStorage).find(k => k.startsWith('passerelle-queue-'));"
        " return k && JSON.parse(localStorage.getItem(k)).length === 0; }", timeout=10000)
    assert len(completed(box)) == 1
    # Back with the keyboard, then zoom (a link: the page comes back larger).
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("() => document.querySelector('.pdf-status').textContent === 'Page 1 of 2'")
    before = image.bounding_box()["width"]
    page.get_by_role("link", name="Zoom in").click()
    page.wait_for_url("**/guide?page=1&zoom=150")
    page.wait_for_function(f"() => ({SHOWN})(document.querySelector('img.pdf-page'))")
    assert image.bounding_box()["width"] > before * 1.4
    assert len(completed(box)) == 1, "going back and zooming completes nothing more"
    assert not [e for e in errors if "Content Security Policy" in e]
    assert not [u for u in requests if "pdfjs" in u or u.endswith(".pdf")], "no pdf.js, no PDF"
    # The link stays, for tablets that would rather download it.
    assert page.get_by_role("link", name="Open the document").count() == 1


def test_without_javascript_pages_turn_and_the_last_one_completes(live_server, page_factory, box):
    page = page_factory(live_server.url, locale="en-GB", java_script_enabled=False)
    sign_in_as_amina(page)
    page.goto("/learn/demo-fr/basics/guide")
    image = page.locator("img.pdf-page")
    assert image.get_attribute("alt") == "Page 1 of 2"
    response = page.request.get(live_server.url + image.get_attribute("src"))
    assert response.status == 200 and response.headers["content-type"] == "image/webp"
    assert not completed(box)
    page.get_by_role("link", name="Next page").click()
    page.wait_for_url("**/guide?page=2")
    assert page.locator("img.pdf-page").get_attribute("alt") == "Page 2 of 2"
    assert len(completed(box)) == 1
    href = page.get_by_role("link", name="Open the document").get_attribute("href")
    response = page.request.get(live_server.url + href)
    assert response.status == 200 and response.body().startswith(b"%PDF")
