"""In Chromium: a visitor looks around without signing in and is counted without a name; a
learner never meets a teaching guide; a facilitator sees it, marked "For facilitators"; the
coordinator's impact report shows the drop-in use. The ZIM reader's address follows the article.
Pages met are checked with axe-core; screenshots (tablet, phone, desktop; French and Arabic)
are left in test-artifacts/ to look at."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from passerelle.content import build_pack, zim

from tests.browser.test_coordinator_journey import axe_clean, screenshots
from tests.conftest import PASSWORDS, PINS
from tests.server.test_coach_content import PACK, make_pack

pytestmark = pytest.mark.browser


def install(box, tmp_path, zim_path=None):
    """The guides pack (and a ZIM) on the box, before its server starts."""
    from passerelle.server.app import create_app

    app = create_app({"home": box.home, "TESTING": True})
    built = build_pack(make_pack(tmp_path / "src"), tmp_path / "guides.zip",
                       created="2026-11-01T00:00:00Z")
    app.extensions["passerelle.library"].import_pack(built.path)
    if zim_path is not None:
        return app.extensions["passerelle.zims"].add(zim_path).uuid
    return None


def staff_sign_in(page, who: str) -> None:
    page.goto("/signin/staff")
    page.locator("input[name=username]").fill(who)
    page.locator("input[name=password]").fill(PASSWORDS[who])
    page.locator("form button[type=submit]").first.click()
    page.wait_for_url("**/manage")


def test_guests_counted_and_guides_for_staff_only(server_factory, page_factory, box, tmp_path):
    install(box, tmp_path)
    server = server_factory()

    # A visitor: "just look around", a pack, a topic, a lesson. No guide anywhere.
    guest = page_factory(server.url, locale="fr-BE", viewport={"width": 800, "height": 1280})
    guest.goto("/signin")
    guest.get_by_role("link", name=re.compile("Juste regarder")).click()
    guest.wait_for_url(server.url + "/")
    guest.get_by_role("link", name=re.compile(f"Atelier courriel {PACK}")).click()
    guest.get_by_role("link", name=re.compile("Mail")).click()
    guest.wait_for_url(f"**/learn/{PACK}/mail")
    topic = guest.locator("main").inner_text()
    assert "Écrire un courriel" in topic and "Guide de l" not in topic and "Pour les animateurs" not in topic
    guest.get_by_role("link", name=re.compile("Écrire un courriel")).click()
    guest.wait_for_url(f"**/learn/{PACK}/mail/lesson")
    assert guest.request.get(f"{server.url}/learn/{PACK}/mail/guide").status == 404

    # A learner: the topic has no guide, and its address answers "not found".
    learner = page_factory(server.url, locale="fr-BE", viewport={"width": 360, "height": 740})
    learner.goto("/signin")
    learner.get_by_role("link", name="Groupe A").click()
    learner.get_by_role("link", name="Amina").click()
    learner.get_by_label(re.compile("4")).fill(PINS["amina"])
    learner.locator("form.signin-learner button[type=submit]").click()
    learner.wait_for_url("**/")
    learner.goto(f"/learn/{PACK}/mail")
    assert "Guide de l" not in learner.locator("main").inner_text()
    learner_screenshots(learner, "learner-topic-without-guides", f"/learn/{PACK}/mail")
    assert learner.goto(f"/learn/{PACK}/mail/guide").status == 404
    learner.goto("/search?q=zanzibarite")
    assert "Guide de l" not in learner.locator("main").inner_text()

    # A facilitator: the guides are there, each marked "For facilitators".
    staff = page_factory(server.url, locale="en-GB", bypass_csp=True,
                         viewport={"width": 800, "height": 1280})
    staff_sign_in(staff, "fatou")
    staff.goto(f"/learn/{PACK}/mail")
    guide_tile = staff.locator("a.tile", has_text="Guide de l")
    assert guide_tile.is_visible() and "For facilitators" in guide_tile.inner_text()
    assert "For facilitators" not in staff.locator("a.tile", has_text="Écrire un courriel").inner_text()
    axe_clean(staff)
    screenshots(staff, "guides-topic", f"/learn/{PACK}/mail")
    guide_tile.click()
    staff.wait_for_url(f"**/learn/{PACK}/mail/guide")
    assert staff.locator(".guide-badge").first.is_visible()
    assert "zanzibarite" in staff.locator("main").inner_text()
    staff.goto("/search?q=zanzibarite")
    assert staff.locator("ol.results .guide-badge").count() == 1
    axe_clean(staff)

    # The coordinator's report: the drop-in use, next to the learners.
    coordinator = page_factory(server.url, locale="en-GB", bypass_csp=True,
                               viewport={"width": 800, "height": 1280})
    staff_sign_in(coordinator, "cora")
    coordinator.goto("/manage/reports")
    section = coordinator.locator("section", has=coordinator.locator("#guests-title"))
    assert section.is_visible()
    assert coordinator.locator('[data-cell="guests|all|visits"]').inner_text() == "1"
    assert int(coordinator.locator('[data-cell="guests|all|page_views"]').inner_text()) >= 4
    assert coordinator.locator(f'[data-cell="guests:pack|{PACK}|page_views"]').inner_text() == "3"
    axe_clean(coordinator)
    screenshots(coordinator, "report-guests", "/manage/reports")


@pytest.mark.skipif(not zim.AVAILABLE, reason=zim.UNAVAILABLE_REASON)
def test_the_zim_reader_address_follows_the_article(server_factory, page_factory, box, tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from zimfixtures import make_zim

    wide = '<table style="width:1200px"><tr><td>' + "Une très large table. " * 40 + "</td></tr></table>"
    path = make_zim(tmp_path / "usb" / "wiki.zim", articles={
        "Accueil": ("Accueil", '<p>Bienvenue. <a href="Clavier">Clavier</a></p>' + wide),
        "Clavier": ("Clavier", '<p id="k">Le clavier sert à taper du texte.</p>')})
    uuid = install(box, tmp_path, path)
    server = server_factory()
    page = page_factory(server.url, locale="fr-BE", viewport={"width": 360, "height": 740})
    page.goto(f"/read/{uuid}/")
    frame = page.frame_locator("iframe.zim-frame")
    # The main page fits the phone: nothing wider than the frame but what scrolls inside it.
    frame.locator("table").wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.screenshot(path=str(_artifact("zim-main-fr-phone.png")), full_page=True)
    frame.get_by_role("link", name="Clavier").click()
    frame.locator("#k").wait_for()
    page.wait_for_url(f"**/read/{uuid}/Clavier")
    page.reload()
    assert page.frame_locator("iframe.zim-frame").locator("#k").inner_text().startswith("Le clavier")
    assert page.title().startswith("Clavier")


def learner_screenshots(page, name: str, path: str) -> None:
    """A learner's page at each size, in French and Arabic, under test-artifacts/."""
    from tests.browser.test_coordinator_journey import SIZES

    for lang in ("fr", "ar"):
        page.goto(f"/language/{lang}?next={path}")
        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            page.screenshot(path=str(_artifact(f"{name}-{lang}-{size}.png")), full_page=True)
    page.set_viewport_size({"width": 360, "height": 740})


def test_an_english_question_keeps_its_direction_in_arabic(server_factory, page_factory, box,
                                                          tmp_path):
    """A Khan Academy question of a Kolibri channel, in the Arabic interface on a phone."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "content"))
    from kolibri_channel import CHANNEL, hexid, standard
    from passerelle.content import kolibri
    from passerelle.server.app import create_app

    ex, ids = standard(tmp_path / "KOLIBRI_DATA")
    ex.save()
    app = create_app({"home": box.home, "TESTING": True})
    kolibri.import_channel(app.extensions["passerelle.library"], ex.root, CHANNEL)
    server = server_factory()
    page = page_factory(server.url, locale="ar", viewport={"width": 360, "height": 740})
    url = f"/practice/kolibri-{CHANNEL}/{hexid('content' + ids['exercise'])}"
    page.goto(f"/language/ar?next={url}")
    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    assert page.evaluate("getComputedStyle(document.getElementById('prompt')).direction") == "ltr"
    learner_screenshots(page, "perseus-question", url)


def _artifact(name: str) -> Path:
    from tests.browser.conftest import ARTIFACTS

    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
