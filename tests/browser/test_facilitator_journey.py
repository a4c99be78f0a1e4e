"""A facilitator runs a session: opens it, takes attendance, watches the grid as a learner works."""

import re

import pytest

from tests.conftest import PASSWORDS

pytestmark = pytest.mark.browser


def test_a_session_attendance_and_the_grid_changing(live_server, page_factory, box):
    staff = page_factory(live_server.url, locale="en-GB")
    staff.goto("/signin/staff")
    staff.get_by_label("Username").fill("fatou")
    staff.get_by_label("Password").fill(PASSWORDS["fatou"])
    staff.get_by_role("button", name="Sign in").click()
    staff.wait_for_url("**/manage")

    # A lesson for the class, assigned to everyone.
    staff.goto("/manage/lessons")
    staff.get_by_label("Title of the lesson").fill("First steps")
    staff.get_by_label("Bienvenue").check()
    staff.get_by_label("Petit quiz").check()
    staff.get_by_role("button", name="Create the lesson").click()
    staff.goto(f"/manage/classes/{box.ids['class_a']}")
    staff.get_by_role("button", name="Assign").click()

    # Open a session and take attendance with one tap per learner.
    staff.get_by_label("Topic").fill("Tablets")
    staff.get_by_role("button", name="Open a session and take attendance").click()
    staff.wait_for_url(re.compile(r".*/manage/sessions/.*"))
    amina = staff.get_by_role("button", name=re.compile("Amina"))
    amina.click()
    staff.wait_for_function("() => document.getElementById('present-count').textContent === '1'")
    assert amina.get_attribute("aria-pressed") == "true"
    staff.reload()
    assert staff.locator("#present-count").inner_text() == "1", "the tap was saved"

    # The grid before and after the learner works.
    staff.goto(f"/manage/classes/{box.ids['class_a']}/grid")
    row = staff.locator("tr", has_text="Amina")
    assert row.locator("td.completed").count() == 0

    tablet = page_factory(live_server.url, locale="fr-BE")
    tablet.goto("/signin")
    tablet.get_by_role("link", name="Groupe A").click()
    tablet.get_by_role("link", name="Amina").click()
    tablet.locator("input[name=secret]").fill("1234")
    tablet.locator("form.signin-learner button[type=submit]").click()
    tablet.wait_for_url("**/")
    tablet.goto("/learn/demo-fr/basics/welcome")
    tablet.locator("form.done-form button").click()

    staff.reload()
    row = staff.locator("tr", has_text="Amina")
    assert row.locator("td.completed").count() == 1
    assert "Completed" in row.locator("td.completed").inner_text()
