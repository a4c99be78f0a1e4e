"""A coordinator chooses topics of a channel on a Kolibri server on the LAN (a fake one on 127.0.0.1) while its
database comes in the background: in French on a phone with no script at all (the page refreshes itself),
in English on a desktop (the topics come at once the second time, and the import does not download the
database again), and in Arabic on a tablet (the update's changes after a download followed, then a server
gone between two clicks, said in words with a way back)."""

import re
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "content"))
sys.path.insert(0, str(Path(__file__).parents[1] / "server"))

import test_kolibri_lan_fetch as lan_fetch  # noqa: E402
from kolibri_channel import CHANNEL  # noqa: E402
from test_kolibri_lan_admin import newer_version  # noqa: E402
from test_kolibri_lan_fetch import DATABASE, HeldKolibri  # noqa: E402

from tests.browser.conftest import ARTIFACTS  # noqa: E402
from tests.browser.test_kolibri_lan_and_facets import sign_in  # noqa: E402

pytestmark = pytest.mark.browser
# The fake Kolibri of the server tests, holding its database back until released.
fake_kolibri, held_kolibri = lan_fetch.fake_kolibri, lan_fetch.held_kolibri
SHOTS = ARTIFACTS / "lan-fetch"
PHONE = {"width": 360, "height": 740}
TABLET = {"width": 800, "height": 1280}
DESKTOP = {"width": 1366, "height": 768}
WAIT = 120_000  # ms: generous, for a busy machine


def shot(page, name: str):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def list_channels(page, address: str):
    page.goto("/manage/content")
    page.fill("#f-server", address)
    page.locator("form[action$='/manage/content/lan'] button").click()
    page.locator("li.channel").first.wait_for()


def database_requests() -> int:
    return sum(1 for path, _ in HeldKolibri.requests if path == DATABASE)


def test_topics_and_update_follow_a_download_from_a_lan_kolibri(server_factory, page_factory, tmp_path,
                                                                   held_kolibri):
    url, ex, ids = held_kolibri
    (tmp_path / "media").mkdir()
    server = server_factory({"PASSERELLE_USB_ROOTS": str(tmp_path / "media")})

    # French, a phone, no script at all: the download is followed by the page refreshing itself.
    fr = page_factory(server.url, locale="fr-BE", viewport=PHONE, java_script_enabled=False)
    sign_in(fr)
    list_channels(fr, url.removeprefix("http://"))
    fr.get_by_role("button", name="Choisir les thèmes").click()
    fr.wait_for_url(re.compile(r".*/manage/content/lan/fetch/[\w-]{32}$"))
    # The bytes received out of the total, once the server has said how many (the page asks again).
    fr.locator(".lan-fetch progress[value]").wait_for(timeout=WAIT)
    fr.locator("meta[http-equiv=refresh]").wait_for(state="attached")
    assert "Téléchargement du catalogue de la chaîne" in fr.locator("h1").inner_text()
    shot(fr, "lan-fetch-progress-fr-phone")
    HeldKolibri.release.set()
    fr.get_by_label(re.compile("^Numbers")).wait_for(timeout=WAIT)  # the page refreshed itself
    assert fr.locator("meta[http-equiv=refresh]").count() == 0
    assert "Test channel" in fr.locator("h1").inner_text()
    assert fr.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(fr, "lan-topics-fr-phone")

    # English, a desktop: the same channel again comes at once (the download just made), and the
    # import of a ticked topic does not download the database a second time.
    en = page_factory(server.url, locale="en-GB", viewport=DESKTOP)
    sign_in(en)
    en.goto("/language/en")
    list_channels(en, url)
    en.get_by_role("button", name="Choose topics").click()
    en.get_by_label(re.compile("^Numbers")).check()
    assert en.locator("#kolibri-total").inner_text() not in ("0 byte", "0 B")
    shot(en, "lan-topics-en-desktop")
    en.locator("form.kolibri-topics button[type=submit]").click()
    en.wait_for_url("**/manage/content")
    en.locator("li.job.done", has_text="(v3)").wait_for(timeout=WAIT)
    assert database_requests() == 1
    assert "Test channel: done" in en.locator("ul.lan-fetches").inner_text()  # the page left, found again
    shot(en, "lan-imported-en-desktop")

    # Arabic, a tablet: version 4 appears on the server; its database is followed, then the changes.
    HeldKolibri.root = tmp_path / "v4"
    newer_version(HeldKolibri.root)
    HeldKolibri.release = threading.Event()
    ar = page_factory(server.url, locale="ar", viewport=TABLET)
    sign_in(ar)
    ar.goto("/language/ar")
    list_channels(ar, url)
    assert ar.locator("html").get_attribute("dir") == "rtl"
    ar.get_by_role("button", name="عرض ما يغيّره التحديث").click()
    ar.wait_for_url(re.compile(r".*/manage/content/lan/fetch/[\w-]{32}$"))
    ar.locator(".lan-fetch progress[value]").wait_for(timeout=WAIT)
    assert "جارٍ تنزيل فهرس محتويات" in ar.locator("h1").inner_text()
    shot(ar, "lan-fetch-progress-ar-tablet")
    HeldKolibri.release.set()
    ar.get_by_text("من الإصدار 3 إلى الإصدار 4.").wait_for(timeout=WAIT)
    shot(ar, "lan-update-ar-tablet")

    # The server goes away between the list and the next click: said in words, with a way back.
    list_channels(ar, url)
    ar.evaluate("""() => document.querySelectorAll("input[name=server]")
                   .forEach(i => { i.value = 'http://127.0.0.1:1/'; })""")
    ar.get_by_role("button", name="اختيار المواضيع").click()
    problem = ar.locator(".lan-problem")
    problem.wait_for(timeout=WAIT)
    assert "لا ردّ من" in problem.inner_text()
    assert ar.get_by_role("link", name="العودة إلى المحتوى").count() == 1
    shot(ar, "lan-fetch-failed-ar-tablet")
    assert CHANNEL in ar.locator("input[name=channel]").get_attribute("value")
