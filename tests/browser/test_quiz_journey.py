"""A quiz that assesses, in Chromium: a facilitator makes it from installed questions (sections,
a question replaced, the order changed), starts it for a class; a learner answers it on a
tablet and submits; the facilitator ends it, reads "1 out of 2" and the most missed question,
and prints the report on A4. Staff pages met are checked with axe-core; screenshots in French
and in Arabic are left in test-artifacts/."""

import re

import pytest

from tests.browser.conftest import ARTIFACTS
from tests.browser.test_coordinator_journey import axe_clean, screenshots
from tests.browser.test_printing import A4, printed, size, text_of
from tests.conftest import PASSWORDS

pytestmark = pytest.mark.browser


def test_a_quiz_from_making_to_the_printed_report(live_server, page_factory, box):
    staff = page_factory(live_server.url, locale="en-GB", bypass_csp=True,
                         viewport={"width": 800, "height": 1280})
    staff.goto("/signin/staff")
    staff.get_by_label("Username").fill("fatou")
    staff.get_by_label("Password").fill(PASSWORDS["fatou"])
    staff.get_by_role("button", name="Sign in").click()
    staff.wait_for_url("**/manage")

    # Made from the installed questions: one added, replaced by another of its exercise, a
    # second section, the order changed with the arrows.
    staff.get_by_role("link", name="Quizzes").click()
    staff.get_by_role("link", name="Make a new quiz").click()
    staff.get_by_label("Title of the quiz").fill("Check-up")
    staff.locator("summary", has_text="Petit quiz").click()
    staff.get_by_label("Combien de doigts pour toucher ?").check()
    staff.get_by_role("button", name="Add the ticked questions").click()
    chosen = staff.locator("ol.chosen li")
    assert "Combien de doigts" in chosen.nth(0).inner_text()
    staff.get_by_role("button", name="Replace question 1").click()
    assert "Combien font" in staff.locator("ol.chosen li").nth(0).inner_text()
    staff.get_by_role("button", name="Add a section").click()
    staff.get_by_label("Title of section 1 (optional)").fill("Début")
    staff.get_by_label("Title of section 2 (optional)").fill("Calcul")
    staff.locator("summary", has_text="Petit quiz").click()
    staff.get_by_label("Combien de doigts pour toucher ?").check()
    staff.get_by_label("Add them to").select_option(label="Section 1")
    staff.get_by_role("button", name="Add the ticked questions").click()
    staff.get_by_role("button", name="Move question 2 up").click()
    staff.get_by_role("button", name="Move question 2 down").click()  # into section 2
    sections = staff.locator("fieldset.quiz-section-edit")
    assert "Combien de doigts" in sections.nth(0).inner_text()
    assert "Combien font" in sections.nth(1).inner_text()
    assert staff.get_by_label("Title of the quiz").input_value() == "Check-up"
    axe_clean(staff)
    staff.get_by_role("button", name="Save the quiz").click()
    assert "Check-up is saved" in staff.locator(".flash").inner_text()

    # Started for the class, twice allowed.
    staff.get_by_role("link", name="Start it for Groupe A").click()
    staff.get_by_label("How many times may each learner submit?").select_option(label="2 times")
    axe_clean(staff)
    staff.get_by_role("button", name="Start the quiz").click()
    staff.wait_for_url(re.compile(r".*/manage/quiz-runs/[0-9a-f-]+$"))
    report_path = staff.url.split(live_server.url)[1]
    assert "Open: learners can answer now." in staff.locator("main").inner_text()

    # A learner on a tablet: the quiz on her home, both questions on one page, submitted.
    tablet = page_factory(live_server.url, locale="fr-BE", viewport={"width": 800, "height": 1280})
    tablet.goto("/signin")
    tablet.get_by_role("link", name="Groupe A").click()
    tablet.get_by_role("link", name="Amina").click()
    tablet.locator("input[name=secret]").fill("1234")
    tablet.locator("form.signin-learner button[type=submit]").click()
    tablet.wait_for_url("**/")
    tablet.get_by_role("link", name=re.compile("Check-up")).click()
    quiz_path = tablet.url.split(live_server.url)[1]
    for lang in ("ar", "fr"):  # the page to answer, to look at; French to go on
        tablet.goto(f"/language/{lang}?next={quiz_path}")
        tablet.screenshot(path=str(ARTIFACTS / f"learner-quiz-{lang}.png"), full_page=True)
    assert tablet.locator("h2", has_text="Début").is_visible()
    assert tablet.locator("h2", has_text="Calcul").is_visible()
    tablet.get_by_label("Un", exact=True).check()
    tablet.get_by_role("button", name="Envoyer", exact=True).click()
    assert "pas répondu à 1 question" in tablet.locator("#blanks").inner_text()
    a, b = map(int, re.findall(r"\d+", tablet.locator(".prompt", has_text="Combien font")
                                .inner_text()))
    tablet.get_by_label("Votre réponse (un nombre)").fill(str(a + b + 1))  # a wrong sum
    tablet.get_by_role("button", name="Envoyer", exact=True).click()
    assert "Vous avez 1 sur 2." in tablet.locator("main").inner_text()
    assert tablet.get_by_role("link", name="Réessayer").is_visible()
    for lang in ("ar", "fr"):  # her result and her home, to look at; French to go on
        tablet.goto(f"/language/{lang}?next={quiz_path}")
        tablet.screenshot(path=str(ARTIFACTS / f"learner-quiz-result-{lang}.png"), full_page=True)
        tablet.goto(f"/language/{lang}?next=/")
        tablet.screenshot(path=str(ARTIFACTS / f"learner-quiz-home-{lang}.png"), full_page=True)
    assert "1 sur 2" in tablet.locator("section.quizzes").inner_text()

    # The report: "1 out of 2", the most missed question as she saw it, with its right answer.
    staff.goto(report_path)
    scores = staff.locator("section[aria-labelledby=scores-title]")
    assert "1 out of 2" in scores.locator("tr", has_text="Amina").inner_text()
    assert "not submitted" in scores.locator("tr", has_text="Bart").inner_text()
    missed = staff.locator("article.missed-question").first
    assert f"Combien font {a} + {b}" in missed.inner_text()
    assert f"The right answer: {a + b}" in missed.inner_text()
    axe_clean(staff)

    # Ended: nothing more to submit, gone from her home.
    staff.get_by_role("button", name="End the quiz").click()
    assert "has ended" in staff.locator(".flash").inner_text()
    assert "Ended." in staff.locator("main").inner_text()
    tablet.goto("/")
    assert tablet.locator("section.quizzes").count() == 0

    # Printed: A4, without buttons or the header, the scores and the missed question on paper.
    staff.emulate_media(media="print")
    pdf = printed(staff)
    assert size(pdf) == A4
    text = text_of(pdf)
    assert "1 out of 2" in text and f"Combien font {a} + {b}" in text
    assert "End the quiz" not in text and "Open it again" not in text and "Sign out" not in text
    staff.emulate_media(media="screen")

    # Two taps from the staff home to the report.
    staff.goto("/manage")
    staff.get_by_role("link", name="Quizzes").click()
    staff.get_by_role("link", name="Check-up · Groupe A").click()
    assert staff.url.endswith(report_path)

    # Screenshots to look at: the report (screen and print), the learner's page, in FR and AR.
    screenshots(staff, "quiz-report", report_path)
    for lang in ("fr", "ar"):
        staff.goto(f"/language/{lang}?next={report_path}")
        staff.emulate_media(media="print")
        staff.screenshot(path=str(ARTIFACTS / f"staff-quiz-report-print-{lang}.png"), full_page=True)
        staff.emulate_media(media="screen")
    screenshots(staff, "quizzes", "/manage/quizzes")
    staff.goto("/manage/quizzes")
    edit = staff.get_by_role("link", name="Edit Check-up").get_attribute("href")
    screenshots(staff, "quiz-builder", edit)


def test_finding_questions_by_words_then_deleting_the_quiz(live_server, page_factory, box):
    staff = page_factory(live_server.url, locale="en-GB", bypass_csp=True,
                         viewport={"width": 1280, "height": 900})
    staff.goto("/signin/staff")
    staff.get_by_label("Username").fill("fatou")
    staff.get_by_label("Password").fill(PASSWORDS["fatou"])
    staff.get_by_role("button", name="Sign in").click()
    staff.wait_for_url("**/manage")
    staff.goto("/manage/quizzes/new")
    staff.get_by_label("Title of the quiz").fill("À jeter")
    staff.get_by_label("Find questions by words").fill("DOIGTS")
    staff.get_by_label("Find questions by words").press("Enter")  # Enter only finds
    staff.get_by_label("Combien de doigts pour toucher ?").check()  # shown open, no tap needed
    assert "questions hold these words" in staff.locator("[role=status]").inner_text()
    assert staff.get_by_label("Combien font", exact=False).count() == 0
    staff.get_by_role("button", name="Add the ticked questions").click()
    staff.get_by_label("Title of the quiz").press("Enter")  # nothing moves, nothing is lost
    assert "Combien de doigts" in staff.locator("ol.chosen li").nth(0).inner_text()
    axe_clean(staff)
    for lang in ("fr", "ar"):
        path = staff.url.split(live_server.url)[1]
        staff.goto(f"/language/{lang}?next={path}")
        staff.screenshot(path=str(ARTIFACTS / f"quiz-builder-find-{lang}.png"), full_page=True)
    staff.goto("/language/en?next=/manage/quizzes/new")
    staff.get_by_label("Title of the quiz").fill("À jeter")
    staff.get_by_label("Find questions by words").fill("doigts")
    staff.get_by_role("button", name="Find", exact=True).click()
    staff.get_by_label("Combien de doigts pour toucher ?").check()
    staff.get_by_role("button", name="Add the ticked questions").click()
    staff.get_by_role("button", name="Save the quiz").click()
    staff.get_by_role("link", name="Delete À jeter").click()
    assert "keep their questions, answers and reports" in staff.locator("main").inner_text()
    staff.get_by_role("button", name="Yes, delete À jeter").click()
    assert "The quiz À jeter is deleted." in staff.locator(".flash").inner_text()
    assert staff.get_by_role("link", name="Delete À jeter").count() == 0
