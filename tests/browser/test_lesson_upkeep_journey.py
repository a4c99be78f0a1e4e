"""A facilitator looking after lessons, classes and groups, then printing and downloading
reports, in Chromium and without any form needing JavaScript: a saved lesson edited with the
picker's filters and reordered, copied to a group, the class renamed, a group edited, the
grid downloaded as CSV and printed on A4. Pages met are checked with axe-core; screenshots on
a phone, a tablet and a desktop, in French and in Arabic, go to test-artifacts/."""

import csv
import io
import re

import pytest
from passerelle.server import records
from passerelle.server.db import get_db
from passerelle.server.learning import lessons

from tests.browser.test_coordinator_journey import axe_clean, screenshots
from tests.browser.test_printing import A4, hidden_when_printed, printed, size, text_of
from tests.conftest import PASSWORDS

pytestmark = pytest.mark.browser


@pytest.fixture
def a_term_under_way(app, box):
    """Groupe A has the lesson "First steps" and a group "Readers" (Amina); Amina finished
    the first resource."""
    with app.app_context():
        db = get_db()
        lesson = lessons.create_lesson(db, "First steps", [
            {"pack_id": "demo-fr", "node_id": "basics/welcome"},
            {"pack_id": "demo-fr", "node_id": "basics/clip"}], box.ids["fatou"])
        lessons.assign(db, lesson, box.ids["class_a"], box.ids["fatou"])
        group = lessons.create_group(db, box.ids["class_a"], "Readers")
        lessons.set_group_member(db, group, box.ids["amina"], True)
        records.event(db, box.ids["amina"], {"event_id": "done-welcome", "pack_id": "demo-fr",
                                             "node_id": "basics/welcome", "type": "completed",
                                             "progress": 1.0, "seconds": 120})
    return lesson


def test_a_facilitator_keeps_lessons_classes_and_reports_up_to_date(
        a_term_under_way, live_server, page_factory, box):
    staff = page_factory(live_server.url, locale="en-GB", bypass_csp=True, accept_downloads=True,
                         viewport={"width": 800, "height": 1280})
    staff.goto("/signin/staff")
    staff.get_by_label("Username").fill("fatou")
    staff.get_by_label("Password").fill(PASSWORDS["fatou"])
    staff.get_by_role("button", name="Sign in").click()
    staff.wait_for_url("**/manage")

    # Lessons, one tap from home: edit a saved one, find the quiz with the filters, reorder.
    staff.get_by_role("link", name="Lessons").click()
    staff.get_by_role("link", name="Edit First steps").click()
    builder_path = staff.url.split(live_server.url)[1]
    assert "Bienvenue" in staff.locator("ol.chosen li").nth(0).inner_text()
    staff.get_by_label("Kind").select_option("exercise")
    staff.get_by_role("button", name="Find", exact=True).click()
    assert "1 resource found" in staff.locator("#found-title").inner_text()
    assert staff.locator("ul.found li").count() == 1
    staff.get_by_label("Petit quiz").check()
    staff.get_by_role("button", name="Add the ticked resources").click()
    staff.get_by_role("button", name="Move Petit quiz up").click()
    chosen = staff.locator("ol.chosen li")
    assert "Petit quiz" in chosen.nth(1).inner_text() and "Un petit clip" in chosen.nth(2).inner_text()
    staff.get_by_label("Title of the lesson").fill("First steps, autumn")
    axe_clean(staff)
    staff.get_by_role("button", name="Save the lesson").click()
    assert "First steps, autumn is saved" in staff.locator(".flash").inner_text()

    # A copy for the group "Readers", and a preview as learners see it.
    staff.get_by_role("link", name="Preview First steps, autumn").click()
    tiles = staff.locator("ol.tiles.lesson li")
    assert tiles.count() == 3 and "Petit quiz" in tiles.nth(1).inner_text()
    staff.get_by_role("link", name="Back to the lessons").click()
    staff.get_by_role("link", name="Copy First steps, autumn to a class or group").click()
    staff.get_by_label("Assign the copy to").select_option(label="Groupe A, group Readers")
    axe_clean(staff)
    staff.get_by_role("button", name="Copy and assign").click()
    assignments = staff.locator("#assignments").inner_text()
    assert "First steps, autumn (copy)" in assignments and "(group Readers)" in assignments

    # The class renamed, the group renamed and given Bart too.
    class_path = staff.url.split(live_server.url)[1].split("#")[0]
    staff.get_by_role("link", name="Rename the class").click()
    staff.get_by_label("Name of the class").fill("Groupe A, spring")
    staff.get_by_role("button", name="Save").click()
    assert staff.locator("h1").inner_text() == "Groupe A, spring"
    axe_clean(staff)
    staff.get_by_role("link", name="Group Readers", exact=True).click()
    staff.get_by_label("Name of the group").fill("Good readers")
    staff.get_by_label("Bart").check()
    staff.get_by_role("button", name="Save the group").click()
    assert "Group Good readers (2)" in staff.locator("#groups").inner_text()
    assert "(group Good readers)" in staff.locator("#assignments").inner_text()

    # The grid: downloaded as a spreadsheet, then printed on A4 without the buttons.
    staff.get_by_role("link", name="Progress of the class").click()
    with staff.expect_download() as download:
        staff.get_by_role("link", name="Download as a spreadsheet (CSV)").click()
    text = open(download.value.path(), encoding="utf-8-sig").read()
    found = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert found[0][0] == "Learner" and "Bienvenue" in found[0]
    amina = next(r for r in found if r[0] == "Amina")
    assert amina[found[0].index("Bienvenue")] == "Completed"
    staff.wait_for_function("() => !document.querySelector('[data-print]').hidden")  # print.js
    staff.emulate_media(media="print")
    for selector in ("header.top", "[data-print]", ".no-print", ".back-home"):
        assert hidden_when_printed(staff, selector), selector
    assert staff.locator(".print-only").is_visible()
    reader = printed(staff)
    assert size(reader) == A4
    paper = text_of(reader)
    assert "Amina" in paper and "Bienvenue" in paper and "Download" not in paper
    # The same on paper in Arabic: right to left, A4, the words of the page's language.
    from tests.browser.conftest import ARTIFACTS

    grid_path = staff.url.split(live_server.url)[1]
    staff.goto(f"/language/ar?next={grid_path}")
    assert staff.locator("html").get_attribute("dir") == "rtl"
    staff.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
    ARTIFACTS.mkdir(exist_ok=True)
    staff.screenshot(path=str(ARTIFACTS / "staff-grid-printed-ar-a4.png"), full_page=True)
    reader = printed(staff)
    assert size(reader) == A4 and "Amina" in text_of(reader)
    staff.emulate_media(media="screen")
    staff.set_viewport_size({"width": 800, "height": 1280})
    staff.goto(f"/language/en?next={grid_path}")

    # One lesson's report, from the class page.
    staff.goto(class_path)
    staff.get_by_role("link", name="Progress in First steps, autumn (copy)").click()
    assert staff.locator("h1").inner_text() == "Progress of the lesson First steps, autumn (copy)"
    rows = staff.locator("table.grid tbody tr")
    assert rows.count() == 2  # Amina and Bart, the group's learners
    axe_clean(staff)

    for name, path in (("lesson-builder", builder_path), ("class-upkeep", class_path),
                       ("grid-print", f"{class_path}/grid"),
                       ("activity-log", f"{class_path}/activity"), ("lessons", "/manage/lessons")):
        screenshots(staff, name, path)
    assert re.search(r"/manage/classes/[0-9a-f-]+$", class_path)
