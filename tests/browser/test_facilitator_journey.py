"""A facilitator's first ten minutes, in Chromium: signed in straight to their classes, a
session today, attendance, a lesson built from the topic tree and assigned, the grid updating
in place while a learner works. Staff pages met are checked with axe-core; screenshots are
taken on a tablet, a phone and a desktop, in French and in Arabic."""

import re

import pytest

from tests.browser.test_coordinator_journey import axe_clean, screenshots
from tests.conftest import PASSWORDS

pytestmark = pytest.mark.browser


def test_a_facilitators_first_ten_minutes(live_server, page_factory, box):
    staff = page_factory(live_server.url, locale="en-GB", bypass_csp=True,
                         viewport={"width": 800, "height": 1280})
    taps = 0

    # Sign-in, from the page a learner's tablet shows: straight to their classes.
    staff.goto("/signin")
    staff.get_by_role("link", name="Facilitators and coordinators").click()
    taps += 1
    staff.get_by_label("Username").fill("fatou")
    staff.get_by_label("Password").fill(PASSWORDS["fatou"])
    staff.get_by_role("button", name="Sign in").click()
    taps += 1
    staff.wait_for_url("**/manage")
    assert staff.get_by_role("link", name="Groupe A").is_visible()
    axe_clean(staff)

    # A session today (the date is filled in), then attendance with one tap per learner.
    staff.get_by_role("link", name="Groupe A").click()
    taps += 1
    class_path = staff.url.split(live_server.url)[1]
    staff.get_by_label("Topic").fill("Tablets")
    staff.get_by_role("button", name="Open a session and take attendance").click()
    taps += 1
    staff.wait_for_url(re.compile(r".*/manage/sessions/.*"))
    axe_clean(staff)
    amina = staff.get_by_role("button", name=re.compile("Amina"))
    amina.click()
    taps += 1
    staff.wait_for_function("() => document.getElementById('present-count').textContent === '1'")
    assert amina.get_attribute("aria-pressed") == "true"
    screenshots(staff, "session", staff.url.split(live_server.url)[1])

    # A lesson from the topic tree: icons, previews, order, saved, then assigned.
    staff.goto("/manage")
    staff.get_by_role("link", name="Lessons").click()
    taps += 1
    staff.get_by_role("link", name="Build a new lesson").click()
    taps += 1
    screenshots(staff, "builder", "/manage/lessons/new")
    staff.get_by_label("Title of the lesson").fill("First steps")
    tree = staff.locator("details.tree-pack").first
    assert tree.locator("svg.icon[role=img]").count() >= 2, "an icon per kind of resource"
    preview = staff.get_by_role("link", name="Preview Bienvenue")
    assert preview.get_attribute("target") == "_blank"
    staff.get_by_label("Bienvenue").check()
    taps += 1
    staff.get_by_label("Petit quiz").check()
    taps += 1
    staff.get_by_role("button", name="Add the ticked resources").click()
    taps += 1
    chosen = staff.locator("ol.chosen li")
    assert "Bienvenue" in chosen.nth(0).inner_text() and "Petit quiz" in chosen.nth(1).inner_text()
    staff.get_by_role("button", name="Move Petit quiz up").click()
    taps += 1
    assert "Petit quiz" in staff.locator("ol.chosen li").nth(0).inner_text()
    assert staff.get_by_label("Title of the lesson").input_value() == "First steps"
    axe_clean(staff)
    staff.get_by_role("button", name="Save the lesson").click()
    taps += 1
    assert "First steps is saved" in staff.locator(".flash").inner_text()
    staff.get_by_role("link", name="Assign it to Groupe A").click()
    taps += 1
    staff.get_by_role("button", name="Assign", exact=True).click()
    taps += 1
    assert "First steps" in staff.locator("#assignments").inner_text()

    # The grid, then a learner works: it changes in place, without a reload.
    staff.get_by_role("link", name="Progress of the class").click()
    taps += 1
    axe_clean(staff)
    assert staff.locator("meta[http-equiv=refresh]").count() == 0
    row = staff.locator("tr", has_text="Amina")
    assert row.locator("td.completed").count() == 0
    staff.evaluate("() => { window.stillTheSamePage = true; }")

    tablet = page_factory(live_server.url, locale="fr-BE")
    tablet.goto("/signin")
    tablet.get_by_role("link", name="Groupe A").click()
    tablet.get_by_role("link", name="Amina").click()
    tablet.locator("input[name=secret]").fill("1234")
    tablet.locator("form.signin-learner button[type=submit]").click()
    tablet.wait_for_url("**/")
    tablet.goto("/learn/demo-fr/basics/welcome")
    tablet.locator("form.done-form button").click()

    staff.get_by_role("link", name="Refresh now").click()
    staff.wait_for_function(
        "() => document.querySelectorAll('#class-grid tr td.completed').length === 1")
    assert staff.evaluate("() => window.stillTheSamePage === true"), "updated in place"
    assert "Completed" in staff.locator("tr", has_text="Amina").locator("td.completed").inner_text()
    screenshots(staff, "grid", f"{class_path}/grid")
    screenshots(staff, "facilitator-home", "/manage")
    print(f"facilitator taps: {taps}")
