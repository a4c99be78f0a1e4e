"""The exercise player with its script, in Chromium: each answer one request, no page loaded;
a learner on a tablet in French and one on a phone in Arabic reach mastery, and the
facilitator's grid shows it. Screenshots go to test-artifacts/ (or $PRACTICE_SHOTS)."""

import os
import re
from pathlib import Path

import pytest

from tests.browser.conftest import ARTIFACTS
from tests.conftest import PASSWORDS, PINS

pytestmark = pytest.mark.browser

# Not a PASSERELLE_* variable: those are the box's settings.
SHOTS = Path(os.environ.get("PRACTICE_SHOTS") or ARTIFACTS)
EXERCISE = "/practice/demo-fr/basics/quiz"
TABLET = {"width": 800, "height": 1280}
PHONE = {"width": 390, "height": 844}


def assign_the_exercise(box) -> None:
    """A lesson holding the exercise, assigned to Groupe A (the grid shows its resources)."""
    from passerelle.server.app import create_app
    from passerelle.server.db import get_db
    from passerelle.server.learning import lessons

    app = create_app({"home": box.home})
    with app.app_context():
        db = get_db()
        lesson = lessons.create_lesson(db, "Petit quiz", [{"pack_id": "demo-fr",
                                                           "node_id": "basics/quiz"}],
                                       box.ids["fatou"])
        lessons.assign(db, lesson, box.ids["class_a"], box.ids["fatou"])
    app.extensions["passerelle.db_pool"].close()


def sign_in(page, name: str, lang: str) -> None:
    page.goto("/signin")
    page.get_by_role("link", name="Groupe A").click()
    page.get_by_role("link", name=name).click()
    page.locator("input[name=secret]").fill(PINS[name.lower()])
    page.locator("form.signin-learner button[type=submit]").click()
    page.wait_for_url("**/")
    page.goto(f"/language/{lang}?next={EXERCISE}")
    page.wait_for_url(f"**{EXERCISE}")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"practice-{name}.png"), full_page=True)


def answer(page, right: bool) -> None:
    """Answer the question shown, right or wrong."""
    page.locator("#question").wait_for()
    if page.locator("input[name=answer][type=radio]").count():
        page.locator(f"input[name=answer][value=\"{0 if right else 1}\"]").check()
    else:
        a, b = map(int, re.findall(r"\d+", page.locator("#prompt").inner_text())[:2])
        page.locator("#answer").fill(str(a + b if right else a + b + 1))
    page.locator("button[value=check]").click()
    page.locator("#feedback").wait_for()


def play_to_mastery(page, name: str, congratulations: str) -> dict:
    """A wrong answer, a hint (the form's way), then right answers to mastery and one more
    after "Keep practising"; what was requested meanwhile."""
    seen = {"loads": [], "answers": 0}
    page.on("request", lambda r: seen["loads"].append(r.url) if r.resource_type == "document"
            else seen.__setitem__("answers", seen["answers"] + ("/api/v1/practice/" in r.url)))
    # A hint is asked through the form (a page load); the script goes on from there.
    page.locator("button[value=hint]").click()
    page.locator("#hints").wait_for()
    assert len(seen["loads"]) == 1
    shot(page, f"{name}-hint")
    answer(page, right=False)
    assert page.locator("#feedback.is-wrong").count() == 1
    assert page.locator(".right-answer").count() == 1  # the right answer, as on the form path
    shot(page, f"{name}-wrong")
    page.locator("button[value=next]").click()
    for _ in range(4):
        answer(page, right=True)
        assert page.locator("#feedback.is-right").count() == 1
        if page.locator(".celebrate").count():
            break
        page.locator("button[value=next]").click()
    assert congratulations in page.locator(".celebrate").inner_text()
    assert page.locator(".way-on").count() == 1  # the way on, as on the form path
    shot(page, f"{name}-mastered")
    page.locator(".practice-next button[value=next]").click()  # "Keep practising"
    page.locator("#question").wait_for()
    assert "more=1" in page.url
    answer(page, right=True)
    assert page.locator("button[value=next]").count() == 1  # keeps practising: next question
    assert len(seen["loads"]) == 1, seen["loads"]  # only the hint loaded a page
    return seen


def test_learners_answer_with_the_script_and_the_grid_shows_it(live_server, page_factory, box):
    assign_the_exercise(box)

    tablet = page_factory(live_server.url, locale="fr-BE", viewport=TABLET)
    sign_in(tablet, "Amina", "fr")
    assert tablet.locator("#question[data-check]").count() == 1
    shot(tablet, "tablet-fr-question")
    seen = play_to_mastery(tablet, "tablet-fr", "Bravo ! Vous maîtrisez cet exercice.")
    assert seen["answers"] == 4  # one request per answer: wrong, right, right, one more

    phone = page_factory(live_server.url, locale="ar", viewport=PHONE)
    sign_in(phone, "Bart", "ar")
    assert phone.locator("html").get_attribute("dir") == "rtl"
    shot(phone, "phone-ar-question")
    seen = play_to_mastery(phone, "phone-ar", "تهانينا! لقد أتقنت هذا التمرين.")
    assert seen["answers"] == 4
    # Nothing wider than the phone's screen.
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"]

    staff = page_factory(live_server.url, locale="fr-BE", viewport=TABLET)
    staff.goto("/signin/staff")
    staff.locator("input[name=username]").fill("fatou")
    staff.locator("input[name=password]").fill(PASSWORDS["fatou"])
    staff.locator("form.form button[type=submit]").click()
    staff.wait_for_url("**/manage")
    staff.goto(f"/manage/classes/{box.ids['class_a']}/grid")
    for name in ("Amina", "Bart"):
        assert staff.locator("tr", has_text=name).locator("td.completed").count() == 1, name
    shot(staff, "grid-fr")
