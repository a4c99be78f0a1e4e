"""A learner's hour, as a person meets it, on a tablet and on a phone, in French and in Arabic.

Amina follows the lesson her facilitator assigned (previous/next, "n of m"), masters
its exercise and goes back to the lesson, then searches with a typo. In Arabic the
content stays French and left to right inside the right-to-left interface. Every page
is checked with axe-core, and screenshots are kept in test-artifacts/ to be looked at.
"""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import ARTIFACTS
from tests.browser.test_accessibility import violations
from tests.conftest import PINS, REPO

pytestmark = pytest.mark.browser

DEVICES = {
    "tablet": {"viewport": {"width": 800, "height": 1280}, "has_touch": True},
    "phone": {"viewport": {"width": 360, "height": 740}, "has_touch": True, "is_mobile": True,
              "device_scale_factor": 2},
}
LOCALES = {"fr": "fr-BE", "ar": "ar"}
LESSON = [("digital-skills-fr", "passwords/strong-passwords"), ("demo-fr", "basics/welcome"),
          ("demo-fr", "basics/quiz")]


@pytest.fixture
def hour_server(box, server_factory):
    """The test box, with the bundled French digital-skills pack and a lesson for Groupe A."""
    from passerelle.content import build_pack
    from passerelle.server.app import create_app
    from passerelle.server.db import get_db
    from passerelle.server.learning import lessons

    app = create_app({"home": box.home, "TESTING": True})
    built = build_pack(REPO / "content" / "bundled" / "digital-skills-fr",
                       box.home.parent / "digital-skills-fr.zip", created="2026-11-01T00:00:00Z")
    app.extensions["passerelle.library"].import_pack(built.path)
    with app.app_context():
        db = get_db()
        lesson = lessons.create_lesson(db, "Premiers pas", [
            {"pack_id": p, "node_id": n} for p, n in LESSON], created_by=box.ids["fatou"])
        lessons.assign(db, lesson, box.ids["class_a"], box.ids["fatou"])
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    app.extensions["passerelle.search"].close()
    return server_factory()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"learner-hour-{name}.png"), full_page=True)


def axe_clean(page, where: str) -> None:
    found = violations(page)
    assert not found, f"{where}:\n" + "\n".join(found)


def big_enough(page, selector: str) -> None:
    """Tap targets of 44 px or more, with text no smaller than 16 px."""
    for box_, size in page.locator(selector).evaluate_all(
            "els => els.filter(e => e.offsetParent).map(e => [{height: e.getBoundingClientRect()"
            ".height, what: e.outerHTML.slice(0, 80)}, parseFloat(getComputedStyle(e).fontSize)])"):
        assert box_["height"] >= 44, f"{box_['what']} is {box_['height']}px high"
        assert size >= 16, f"{box_['what']} has {size}px text"


def ltr_french(page, selector: str) -> None:
    element = page.locator(selector).first
    assert element.get_attribute("lang") == "fr"
    assert element.evaluate("e => getComputedStyle(e).direction") == "ltr"


@pytest.mark.parametrize("device, language", [("tablet", "fr"), ("phone", "ar"),
                                              ("tablet", "ar"), ("phone", "fr")])
def test_a_learners_hour(hour_server, page_factory, box, device, language):
    name = f"{device}-{language}"
    page = page_factory(hour_server.url, locale=LOCALES[language], bypass_csp=True,
                        **DEVICES[device])
    rtl = language == "ar"

    # Sign in: the class, the name, the code. The interface speaks the tablet's language.
    page.goto("/signin")
    assert page.locator("html").get_attribute("dir") == ("rtl" if rtl else "ltr")
    page.get_by_role("link", name="Groupe A").click()
    page.get_by_role("link", name="Amina").click()
    page.locator("input[name=secret]").fill(PINS["amina"])
    page.locator("form.signin-learner button[type=submit]").click()
    page.wait_for_url(re.compile(r"/$"))
    header = page.locator("header.top").bounding_box()
    assert header["height"] <= DEVICES[device]["viewport"]["height"] / 6, "the header stays small"
    big_enough(page, "header.top a, header.top button")
    shot(page, f"{name}-1-home")
    axe_clean(page, "home")

    # The assigned lesson, in its order, with its position and the way on.
    lesson = page.locator("section.assigned ol.lesson a")
    assert lesson.count() == 3
    lesson.first.click()
    page.wait_for_url(re.compile(r"strong-passwords\?lesson="))
    assert re.fullmatch(r"1\D+3", page.locator(".place-here").inner_text().strip())
    ltr_french(page, ".article-body")
    ltr_french(page, "h1")
    image = page.locator(".article-body img").first
    assert image.get_attribute("width") and image.get_attribute("height")
    assert "**" not in page.locator(".article-body").inner_text()
    big_enough(page, "form.done-form button, nav.place a")
    shot(page, f"{name}-2-article")
    axe_clean(page, "article")

    # "I have finished" goes on to the next item of the lesson, not back to a module.
    page.locator("form.done-form button").click()
    page.wait_for_url(re.compile(r"basics/welcome\?lesson="))
    assert re.fullmatch(r"2\D+3", page.locator(".place-here").inner_text().strip())
    assert "strong-passwords" in page.locator("nav.place a[rel=prev]").get_attribute("href")
    ltr_french(page, ".breadcrumbs [aria-current] span")
    assert "basics/quiz" in page.locator("nav.place a[rel=next]").get_attribute("href")
    shot(page, f"{name}-3-next")
    page.locator("form.done-form button").click()

    # The exercise, to mastery, then back to the lesson: no endless questions.
    page.wait_for_url(re.compile(r"/practice/demo-fr/basics/quiz\?lesson="))
    assert page.locator(".position").count() == 0, "no 'Question 1 of 3' that starts again"
    ltr_french(page, "#prompt")
    axe_clean(page, "exercise")
    for _ in range(6):
        if page.locator("input[name=answer][type=radio]").count():
            page.locator("label.choice", has_text=re.compile(r"^\s*Un\s*$")).click()
        else:
            a, b = map(int, re.findall(r"\d+", page.locator("#prompt").inner_text())[:2])
            page.locator("#answer").fill(str(a + b))
        page.locator("button[value=check]").click()
        # The page's script answers in place: wait for the feedback it shows.
        page.locator("#feedback").wait_for()
        assert page.locator("#feedback.is-right").count() == 1
        if page.locator(".celebrate").count():
            break
        page.locator("button[value=next]").click()
    assert page.locator(".celebrate").count() == 1
    assert page.locator("button[value=next]").inner_text() != "", "practising more is a choice"
    back = page.locator(".way-on a", has_text=re.compile(
        "Retour à la leçon" if not rtl else "العودة إلى الدرس"))
    big_enough(page, ".way-on a, .practice-next button")
    shot(page, f"{name}-4-mastered")
    axe_clean(page, "mastered")
    back.click()
    page.wait_for_url(re.compile(r"/#assigned-title$"))
    done = page.locator("section.assigned ol.lesson a.completed")
    assert done.count() == 3, "the lesson shows all three items done"

    # A search with a typo finds the article, and says what it searched for.
    page.goto("/search")
    box_ = page.locator("#q")
    box_.press_sequentially("mot de pa", delay=30)
    page.locator("#suggestions a", has_text="mot de passe").first.wait_for()
    box_.press_sequentially("se", delay=30)
    box_.press("Enter")
    page.wait_for_url(re.compile(r"/search\?q=mot"))
    assert "mot de passe" in page.locator(".did-you-mean").inner_text()
    first = page.locator("ol.results > li").first
    assert first.locator("a").first.inner_text() == "Un mot de passe solide"
    ltr_french(page, "ol.results .snippet")
    snippets = " ".join(page.locator("ol.results .snippet").all_inner_texts())
    for raw in ("**", "![", "## "):
        assert raw not in snippets
    shot(page, f"{name}-5-search")
    axe_clean(page, "search")

    # Signing out: the next person gets the tablet's own language, not Amina's choice.
    page.goto("/language/nl?next=/")
    page.locator("form.signout button").click()
    page.wait_for_url(re.compile(r"/signin$"))
    assert page.locator("html").get_attribute("lang") == language
