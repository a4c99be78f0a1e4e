"""Accessibility, checked by axe-core in the real browser, and text resized to 200%.

axe-core (tests/browser/vendor, test-only) runs with the WCAG 2.0/2.1 A and AA
rules on each page a learner meets; a serious or critical violation fails.
"""

from pathlib import Path

import pytest

from tests.browser.test_learner_journeys import sign_in_as_amina

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def violations(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS)
    assert len(result["passes"]) > 10, "axe ran its rules"
    found = []
    for v in result["violations"]:
        if v["impact"] in ("serious", "critical"):
            targets = [" ".join(map(str, n["target"])) for n in v["nodes"][:5]]
            found.append(f"{v['id']} ({v['impact']}): {v['help']} — {targets}")
    return found


def check(page, path: str) -> list[str]:
    page.goto(path)
    page.wait_for_load_state("load")
    return [f"{path}: {v}" for v in violations(page)]


def tablet(page_factory, live_server, locale="en-GB", **kwargs):
    # bypass_csp: Playwright injects axe as an inline script, which the box's CSP rightly refuses.
    return page_factory(live_server.url, locale=locale, bypass_csp=True, **kwargs)


def test_guest_and_sign_in_pages_pass_axe(live_server, page_factory, box):
    page = tablet(page_factory, live_server)
    found = check(page, "/")
    found += check(page, "/signin")
    found += check(page, f"/signin/class/{box.ids['class_a']}")
    found += check(page, f"/signin/learner/{box.ids['amina']}")
    found += check(page, "/signin/staff")
    assert not found, "\n".join(found)


def test_learner_pages_pass_axe(live_server, page_factory):
    page = tablet(page_factory, live_server)
    sign_in_as_amina(page)
    found = []
    for path in ("/", "/learn/demo-fr/basics", "/learn/demo-fr/basics/welcome",
                 "/learn/demo-fr/basics/clip", "/learn/demo-fr/basics/guide",
                 "/practice/demo-fr/basics/quiz"):
        found += check(page, path)
    assert not found, "\n".join(found)


def test_search_results_pass_axe(live_server, page_factory):
    page = tablet(page_factory, live_server)
    page.goto("/search?q=bienvenue")
    assert page.locator(".results li").count() >= 1, "the search page has results to check"
    found = [f"search: {v}" for v in violations(page)]
    assert not found, "\n".join(found)


def test_arabic_home_passes_axe(live_server, page_factory):
    page = tablet(page_factory, live_server)
    sign_in_as_amina(page)
    page.goto("/language/ar?next=/")
    assert page.locator("html").get_attribute("dir") == "rtl"
    found = check(page, "/")
    page.locator("form.signout button").click()
    # The next person finds the browser's language, not the last learner's...
    assert page.locator("html").get_attribute("dir") == "ltr"
    page.goto("/language/ar?next=/")  # ...and a guest may choose Arabic too
    assert page.locator("html").get_attribute("dir") == "rtl"
    assert page.locator(".signout").count() == 0
    found += [f"/ (guest): {v}" for v in violations(page)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("path", ["/", "/learn/demo-fr/basics", "/learn/demo-fr/basics/welcome"])
def test_text_at_200_percent_needs_no_horizontal_scrolling(live_server, page_factory, path):
    page = page_factory(live_server.url, locale="en-GB", viewport={"width": 800, "height": 600})
    page.goto(path)
    page.evaluate("document.documentElement.style.fontSize = '200%'")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    wide = page.evaluate("""() => Array.from(document.querySelectorAll('body *'))
        .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
        .slice(0, 5).map(e => e.tagName + '.' + e.className)""")
    assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 200%: {wide}"
