"""A new coordinator's first hour, in Chromium: setup, a class with a facilitator, a roster,
a forgotten PIN restored, backups. Each staff page met is checked with axe-core, and
screenshots are taken on a tablet, a phone and a desktop, in French and in Arabic."""

import re

import pytest

from tests.browser.test_accessibility import violations

pytestmark = pytest.mark.browser

SIZES = {"tablet": (800, 1280), "phone": (360, 740), "desktop": (1366, 900)}


def screenshots(page, name: str, path: str, languages=("fr", "ar")) -> None:
    """The page at each size, in each language, under test-artifacts/ (to look at)."""
    from tests.browser.conftest import ARTIFACTS

    ARTIFACTS.mkdir(exist_ok=True)
    for lang in languages:
        page.goto(f"/language/{lang}?next={path}")
        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            page.screenshot(path=str(ARTIFACTS / f"staff-{name}-{lang}-{size}.png"), full_page=True)
    page.set_viewport_size({"width": 800, "height": 1280})
    page.goto(f"/language/en?next={path}")


def axe_clean(page) -> None:
    found = violations(page)
    assert not found, f"{page.url}:\n" + "\n".join(found)


def test_a_coordinator_from_setup_to_a_backup(server_factory, page_factory, tmp_path):
    server = server_factory(home_dir=tmp_path / "new-box")
    page = page_factory(server.url, locale="en-GB", bypass_csp=True,
                        viewport={"width": 800, "height": 1280})

    # Setup: every password problem at once, then the box is ready.
    page.goto("/setup")
    page.get_by_label("Name of the organisation").fill("Maison de quartier")
    page.get_by_label("Your name").fill("Nadia")
    page.get_by_label("Username", exact=True).fill("nadia")
    page.get_by_label("Password (at least 10 characters)").fill("aaaa")
    page.get_by_label("The same password again").fill("aaab")
    page.get_by_role("button", name="Create the organisation").click()
    body = page.locator("main").inner_text()
    assert "at least 10 characters" in body and "more different characters" in body
    assert "not the same" in body
    page.get_by_label("Password (at least 10 characters)").fill("une phrase assez longue")
    page.get_by_label("The same password again").fill("une phrase assez longue")
    page.get_by_role("button", name="Create the organisation").click()
    page.wait_for_url("**/manage")
    axe_clean(page)

    # A facilitator.
    page.get_by_role("link", name="People").click()
    # The people page also has a search form with a role filter: the add form is the one.
    add = page.locator("form", has=page.get_by_role("button", name="Add", exact=True))
    add.get_by_label("Role").select_option("facilitator")
    add.get_by_label("Name shown on screen").fill("Fatou")
    add.get_by_label("Username (needed").fill("fatou")
    add.get_by_label("Password (at least 10 characters)").fill("facilitator passphrase")
    add.get_by_role("button", name="Add", exact=True).click()
    assert "Fatou was added." in page.locator(".flash").inner_text()

    # A class, with Fatou assigned when it is created.
    page.get_by_role("link", name="Back to the staff home").click()
    page.get_by_role("link", name="Classes and sessions").click()
    page.get_by_label("Name of the class").fill("Français du soir")
    page.get_by_label("Fatou").check()
    page.get_by_role("button", name="Create the class").click()
    page.wait_for_url(re.compile(r".*/manage/classes/[0-9a-f-]+$"))
    assert "Fatou" in page.locator("#facilitators").inner_text()
    axe_clean(page)
    class_path = page.url.split(server.url)[1]

    # A roster, checked then imported into the class.
    roster = tmp_path / "liste.csv"
    roster.write_text("display_name,pin,class\nAmina,1234,Français du soir\n"
                      "Bart,2345,Français du soir\nChloé,3456,Français du soir\n", encoding="utf-8")
    page.goto("/manage/people/import")
    page.get_by_label("CSV file").set_input_files(str(roster))
    page.get_by_role("button", name="Check the file").click()
    axe_clean(page)
    page.get_by_role("button", name="Import these 3 people").click()
    assert "3 people were imported." in page.locator(".flash").inner_text()

    # Amina forgot her PIN: a new one, from the class page, without losing her.
    page.goto(class_path)
    assert "Learners (3)" in page.locator("main").inner_text()
    screenshots(page, "class", class_path)
    page.get_by_role("link", name="Edit Amina or reset the PIN").click()
    axe_clean(page)
    page.get_by_label("4-digit PIN for the learner").fill("9876")
    page.get_by_role("button", name="Save the new secret").click()
    assert "Amina has a new secret" in page.locator(".flash").inner_text()
    screenshots(page, "person", page.url.split(server.url)[1])
    learner = page_factory(server.url, locale="en-GB")
    learner.goto("/signin")
    learner.get_by_role("link", name="Français du soir").click()
    learner.get_by_role("link", name="Amina").click()
    learner.locator("input[name=secret]").fill("9876")
    learner.locator("form.signin-learner button[type=submit]").click()
    learner.wait_for_url(server.url + "/")
    assert "Amina" in learner.locator("header").inner_text()

    # Taking Chloé out of the class asks first, on a page of its own.
    page.goto(class_path)
    page.get_by_role("link", name="Take Chloé out of the class").click()
    assert "Take Chloé out of Français du soir?" in page.locator("h1").inner_text()
    axe_clean(page)
    page.get_by_role("link", name="No, go back").click()
    assert "Learners (3)" in page.locator("main").inner_text()

    # Backups: the nightly one on a USB stick, and one downloaded now.
    page.goto("/manage")
    page.get_by_role("link", name="Backups").click()
    axe_clean(page)
    page.get_by_role("button", name="Turn the nightly backup on").click()
    assert "Every night, a backup is written" in page.locator(".flash").inner_text()
    assert page.get_by_role("button", name="Turn the nightly backup off").is_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download a backup now").first.click()
    saved = tmp_path / "backup.db"
    download.value.save_as(saved)
    assert saved.read_bytes()[:16] == b"SQLite format 3\x00"
    screenshots(page, "backups", "/manage/backups")
    screenshots(page, "home", "/manage")


def test_every_staff_page_touched_passes_axe(live_server, page_factory, box):
    from tests.browser.test_accessibility import check

    page = page_factory(live_server.url, locale="en-GB", bypass_csp=True,
                        viewport={"width": 800, "height": 1280})
    page.goto("/signin/staff")
    page.get_by_label("Username").fill("cora")
    page.get_by_label("Password").fill("coordinator passphrase")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/manage")
    found = []
    for path in ("/", "/manage/people", f"/manage/people/{box.ids['amina']}",
                 f"/manage/people/{box.ids['amina']}/delete", "/manage/classes",
                 f"/manage/classes/{box.ids['class_a']}", f"/manage/classes/{box.ids['class_a']}/grid",
                 f"/manage/sessions/{box.ids['session_a']}", "/manage/lessons",
                 "/manage/lessons/new", "/manage/content", "/manage/content/demo-fr",
                 "/manage/content/demo-fr/remove", "/manage/material", "/manage/sync",
                 "/manage/backups", "/manage/reports"):
        found += check(page, path)
    assert not found, "\n".join(found)
    # The material page: one id per field (the HTML validator's one error).
    page.goto("/manage/material")
    ids = page.evaluate("() => [...document.querySelectorAll('[id]')].map(e => e.id)")
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    # The grid of a long lesson on a phone: wider than the screen, it scrolls inside its own
    # box (the page itself never scrolls sideways).
    from passerelle.server.app import create_app
    from passerelle.server.db import get_db
    from passerelle.server.learning import lessons

    with create_app({"home": box.home}).app_context():
        db = get_db()
        items = [{"pack_id": "demo-fr", "node_id": f"basics/{n}"}
                 for n in ("welcome", "clip", "game", "quiz", "guide")]
        lesson = lessons.create_lesson(db, "Tout le module", items, box.ids["cora"])
        lessons.assign(db, lesson, box.ids["class_a"], box.ids["cora"])
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(f"/manage/classes/{box.ids['class_a']}/grid")
    region = page.locator(".grid-scroll")
    assert region.evaluate("e => e.scrollWidth > e.clientWidth"), "the grid is wider than a phone"
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")
