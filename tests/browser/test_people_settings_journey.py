"""A coordinator with a few hundred people: finds them, acts on several at once, gives new PINs,
downloads the list, changes the settings; then a learner on their own page changes their PIN.
Pages are checked with axe-core, and screenshots taken on a phone, a tablet and a desktop, in
French and in Arabic (test-artifacts/)."""

import re

import pytest

from tests.browser.test_coordinator_journey import axe_clean, screenshots

pytestmark = pytest.mark.browser


def fill_the_box(box) -> None:
    """300 more learners, half of them in Groupe B; Amina completed a module."""
    from passerelle.server import records
    from passerelle.server.app import create_app
    from passerelle.server.db import get_db
    from passerelle.server.learning import progress
    from passerelle.server.people import accounts
    from passerelle.server.reports import impact

    with create_app({"home": box.home}).app_context():
        db = get_db()
        with records.write_tx(db):
            for i in range(300):
                uid = accounts.new_uuid()
                records.put(db, "user", uid, {"role": "learner", "display_name": f"Élève {i:03d}",
                                              "avatar": accounts.AVATARS[i % 12]})
                if i % 2:
                    accounts.add_member(db, box.ids["class_b"], uid)
        for node in impact.module_resources(db, "demo-fr", "basics"):
            progress.complete(db, box.ids["amina"], "demo-fr", node)


def effects_screenshots(page) -> None:
    """The settings page saying what a new sign-in mode means, in French and Arabic."""
    from tests.browser.conftest import ARTIFACTS
    from tests.browser.test_coordinator_journey import SIZES

    for lang in ("fr", "ar"):
        page.goto(f"/language/{lang}?next=/manage/settings")
        page.locator("input[name=signin_mode][value=picture]").check()
        page.locator("form.form button[type=submit]").click()
        assert page.locator(".effects").is_visible()
        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            page.screenshot(path=str(ARTIFACTS / f"staff-settings-effects-{lang}-{size}.png"),
                            full_page=True)
    page.set_viewport_size({"width": 800, "height": 1280})
    page.goto("/language/en?next=/manage/settings")


def shoot(page, name: str, width: int) -> None:
    from tests.browser.conftest import ARTIFACTS

    ARTIFACTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": width, "height": 740})
    page.screenshot(path=str(ARTIFACTS / f"staff-{name}.png"), full_page=True)
    page.set_viewport_size({"width": 800, "height": 1280})


def fits_the_screen(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth + 1")


def test_a_coordinator_with_many_people_then_a_learner_on_their_own_page(
        box, server_factory, page_factory, tmp_path):
    fill_the_box(box)
    server = server_factory()
    page = page_factory(server.url, locale="en-GB", bypass_csp=True,
                        viewport={"width": 800, "height": 1280})
    page.goto("/signin/staff")
    page.get_by_label("Username").fill("cora")
    page.get_by_label("Password").fill("coordinator passphrase")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/manage")

    # People, one tap from the staff home: the first page of 306, in name order.
    page.get_by_role("link", name="People").click()
    page.wait_for_load_state("load")
    assert "306 people" in page.locator("main .count").inner_text()
    assert page.locator(".people-table tbody tr").count() == 50
    axe_clean(page)
    page.get_by_role("link", name="Next page").click()
    page.wait_for_url("**after=*")
    page.wait_for_load_state("load")
    assert page.locator(".people-table tbody tr").count() == 50
    page.get_by_role("link", name="Previous page").click()
    page.wait_for_url("**before=*")
    page.wait_for_load_state("load")
    assert page.locator(".people-table tbody tr").first.inner_text().strip().startswith("Amina")

    # A search, accents ignored, and a class filter.
    page.get_by_label("Name or username").fill("eleve 01")
    page.get_by_label("Class", exact=True).select_option(label="Groupe B")
    page.get_by_role("button", name="Search").click()
    assert "5 people" in page.locator("main .count").inner_text()  # 011, 013, 015, 017, 019
    names = page.locator(".people-table td.who").all_inner_texts()
    assert [n.strip() for n in names] == [f"Élève 01{i}" for i in (1, 3, 5, 7, 9)]

    # Two of them moved to Groupe A, in one form.
    page.get_by_label("Choose Élève 011").check()
    page.get_by_label("Choose Élève 013").check()
    page.get_by_label("Do this").select_option("move")
    page.get_by_label("Class (to add or move to)").select_option(label="Groupe A")
    page.get_by_role("button", name="Do it").click()
    assert "2 people moved to Groupe A: Élève 011, Élève 013" in page.locator(".flash").inner_text()
    assert "3 people" in page.locator("main .count").inner_text()  # the search is kept

    # Amina and Bart forgot their PINs: new ones, after a page that says what happens.
    page.get_by_label("Name or username").fill("")
    page.get_by_label("Class", exact=True).select_option(label="Groupe A")
    page.get_by_role("button", name="Search").click()
    page.get_by_label("Choose Amina").check()
    page.get_by_label("Choose Bart").check()
    page.get_by_label("Do this").select_option("reset")
    page.get_by_role("button", name="Do it").click()
    assert "New codes for 2 people?" in page.locator("h1").inner_text()
    assert "Their current codes stop working" in page.locator("main").inner_text()
    axe_clean(page)
    page.get_by_role("button", name="Yes, give them new codes").click()
    assert "shown only now" in page.locator("main").inner_text()
    row = page.locator(".new-codes tr", has_text="Amina")
    amina_pin = row.locator(".pin-shown").inner_text()
    assert re.fullmatch(r"\d{4}", amina_pin)
    axe_clean(page)
    shoot(page, "new-codes-en-phone", 360)
    page.emulate_media(media="print")  # printed: the list alone, without the menus
    assert not page.locator("header.top").is_visible()
    shoot(page, "new-codes-en-print", 800)
    page.emulate_media(media="screen")
    page.get_by_role("link", name="Back to the people").click()

    # The list as a file, re-importable.
    with page.expect_download() as download:
        page.get_by_role("link", name="Download this list (CSV)").click()
    saved = tmp_path / "people.csv"
    download.value.save_as(saved)
    text = saved.read_text(encoding="utf-8")
    assert "Amina" in text and "Élève 011" in text and "Élève 012" not in text
    page.goto("/manage/people/import")
    page.get_by_label("CSV file").set_input_files(str(saved))
    page.get_by_role("button", name="Check the file").click()
    assert "Will add 0, will update 0, unchanged 5." in page.locator("main").inner_text()

    # Removing two asks first; they go to the bin.
    page.goto("/manage/people?q=eleve+29")
    page.get_by_label("Choose Élève 298").check()
    page.get_by_label("Choose Élève 299").check()
    page.get_by_label("Do this").select_option("remove")
    page.get_by_role("button", name="Do it").click()
    assert "Remove 2 people?" in page.locator("h1").inner_text()
    page.get_by_role("button", name="Yes, remove these 2 people").click()
    assert "2 people were removed." in page.locator(".flash").inner_text()
    assert page.get_by_role("button", name="Put Élève 299 back").is_visible()

    # On a phone the table becomes cards: nothing wider than the screen.
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto("/manage/people")
    wide = page.evaluate("""() => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 15).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))""")
    assert fits_the_screen(page), wide
    page.set_viewport_size({"width": 800, "height": 1280})
    screenshots(page, "people", "/manage/people")

    # Settings, one tap from the staff home: learners may change their PIN and profile; a
    # change of sign-in mode says first what it means, and can be left.
    page.goto("/manage")
    page.get_by_role("link", name="Settings").click()
    axe_clean(page)
    page.get_by_label("Learners may change their own PIN or pictures").check()
    page.get_by_label("Learners may change their own avatar").check()
    page.get_by_label("Pick their name, then three pictures").check()
    page.get_by_role("button", name="Save the settings").click()
    effects = page.locator(".effects").inner_text()
    assert "0 of the 301 learners already have what this mode asks for" in effects
    assert "301 learners have none yet" in effects
    page.get_by_role("link", name="No, go back").click()
    page.get_by_label("Learners may change their own PIN or pictures").check()
    page.get_by_label("Learners may change their own avatar").check()
    page.get_by_role("button", name="Save the settings").click()
    assert "The settings are saved." in page.locator(".flash").inner_text()
    assert page.get_by_label("Learners may change their own PIN or pictures").is_checked()
    screenshots(page, "settings", "/manage/settings")
    effects_screenshots(page)

    # Amina, with the PIN she was given, changes it on her own page.
    learner = page_factory(server.url, locale="en-GB", bypass_csp=True,
                           viewport={"width": 360, "height": 740})
    learner.goto(f"/signin/learner/{box.ids['amina']}")
    learner.locator("input[name=secret]").fill(amina_pin)
    learner.locator("form.signin-learner button[type=submit]").click()
    learner.wait_for_url(server.url + "/")
    learner.get_by_role("link", name="My page").click()
    main = learner.locator("main").inner_text()
    assert "My certificates" in main and "resources completed" in main
    assert fits_the_screen(learner)
    axe_clean(learner)
    learner.get_by_label("My PIN now").fill("0000" if amina_pin != "0000" else "1111")
    learner.get_by_label("My new PIN (4 digits)").fill("4682")
    learner.get_by_label("My new PIN again").fill("4682")
    learner.get_by_role("button", name="Save my new PIN").click()
    assert "Your current code is not right." in learner.locator("main").inner_text()
    learner.get_by_label("My PIN now").fill(amina_pin)
    learner.get_by_label("My new PIN (4 digits)").fill("4682")
    learner.get_by_label("My new PIN again").fill("4682")
    learner.get_by_role("button", name="Save my new PIN").click()
    assert "Your new code is saved." in learner.locator(".flash").inner_text()
    certificate = learner.locator(".certificates a").first
    certificate.click()
    assert "Certificate of completion" in learner.locator("main").inner_text()
    learner.go_back()
    screenshots(learner, "me", "/me")
    learner.get_by_role("button", name="Sign out").click()
    learner.goto(f"/signin/learner/{box.ids['amina']}")
    learner.locator("input[name=secret]").fill("4682")
    learner.locator("form.signin-learner button[type=submit]").click()
    learner.wait_for_url(server.url + "/")
