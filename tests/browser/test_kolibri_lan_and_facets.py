"""A coordinator, in French on a desktop and in Arabic on a tablet, lists the channels of a Kolibri server on
the LAN (a fake one on 127.0.0.1), imports ticked topics, sees what a newer version on a USB drive changes
before updating; a learner then filters search results by the channel's labels."""

import http.server
import re
import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "content"))

from kolibri_channel import hexid, standard  # noqa: E402
from test_kolibri_remote import FakeKolibri  # noqa: E402

from tests.browser.conftest import ARTIFACTS  # noqa: E402
from tests.conftest import PASSWORDS  # noqa: E402

pytestmark = pytest.mark.browser
SHOTS = ARTIFACTS / "kolibri-lan"
DESKTOP = {"width": 1280, "height": 800}
TABLET = {"width": 768, "height": 1024}


def labelled_channel(root: Path, version: int = 3):
    ex, ids = standard(root)
    for node, activity, category, level in (
            (ids["video"], "UD5UGM0z", "d&WXdXWF.qs0Xlaxq.nG96nHDc", "wnarlxKo"),   # watch, maths, lower primary
            (ids["audio"], "mkA1R3NU", "PbGoe2MV", "wnarlxKo"),                      # listen, daily life
            (ids["pdf"], "wA01urpi", "d&WXdXWF.qs0Xlaxq", "BkGYi3lD")):             # read, maths, upper primary
        ex.db.execute("UPDATE content_contentnode SET learning_activities = ?, categories = ?, grade_levels = ?"
                      " WHERE id = ?", [activity, category, level, node])
    if version != 3:
        ex.db.execute("UPDATE content_channelmetadata SET version = ?", [version])
        ex.db.execute("UPDATE content_contentnode SET title = 'Counting video, new cut' WHERE id = ?",
                      [ids["video"]])
        extra = ex.node(hexid("new"), ids["topic"], "audio", "A new song", order=9)
        ex.file(extra, "audio", b"ID3 new song", "mp3")
    ex.save()
    return ids


@pytest.fixture
def kolibri_server(tmp_path):
    labelled_channel(tmp_path / "lan" / "KOLIBRI_DATA")
    FakeKolibri.root, FakeKolibri.requests, FakeKolibri.cut = tmp_path / "lan" / "KOLIBRI_DATA", [], {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeKolibri)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def sign_in(page):
    page.goto("/signin/staff")
    page.fill("input[name=username]", "cora")
    page.fill("input[name=password]", PASSWORDS["cora"])
    page.locator("main button[type=submit]").click()
    page.wait_for_url("**/manage")


def shot(page, name: str):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_lan_import_update_diff_and_search_facets(server_factory, page_factory, tmp_path, kolibri_server):
    media = tmp_path / "media"
    media.mkdir()
    server = server_factory({"PASSERELLE_USB_ROOTS": str(media)})

    # French, desktop: list the LAN server's channels, tick a topic, import it.
    fr = page_factory(server.url, locale="fr-BE", viewport=DESKTOP)
    sign_in(fr)
    fr.goto("/manage/content")
    fr.fill("#f-server", kolibri_server.removeprefix("http://"))
    shot(fr, "content-lan-form-fr-desktop")
    fr.locator("form[action$='/manage/content/lan'] button").click()
    channel = fr.locator("li.channel", has_text="Test channel")
    assert "Français" in channel.inner_text() and "Version 3" in channel.inner_text()
    shot(fr, "lan-channels-fr-desktop")
    channel.get_by_role("button", name="Choisir les thèmes").click()
    fr.get_by_label(re.compile("^Numbers")).check()
    fr.get_by_label(re.compile("^Other things")).check()
    assert fr.locator("#kolibri-total").inner_text() != "0 octet"
    shot(fr, "lan-topics-fr-desktop")
    fr.locator("form.kolibri-topics button[type=submit]").click()
    fr.wait_for_url("**/manage/content")
    fr.locator("li.job.done", has_text="(v3)").wait_for(timeout=120_000)
    assert "Test channel (v3)" in fr.locator("li.job.done").inner_text()

    # A newer version on a USB drive: the French page shows what changes, before anything is done.
    labelled_channel(media / "usb0" / "KOLIBRI_DATA", version=4)
    fr.goto("/manage/content")
    fr.get_by_role("link", name="Voir ce que la mise à jour change").click()
    fr.wait_for_url(re.compile(r".*/manage/content/kolibri/update\?.*"))
    body = fr.locator("main").inner_text()
    assert "De la version 3 à la version 4." in body and "Counting video, new cut" in body
    assert "A new song" in body
    shot(fr, "update-diff-fr-desktop")

    # Arabic, tablet: the same pages, right to left.
    ar = page_factory(server.url, locale="ar", viewport=TABLET)
    sign_in(ar)
    ar.goto("/manage/content")
    assert ar.locator("html").get_attribute("dir") == "rtl"
    ar.fill("#f-server", kolibri_server)
    ar.locator("form[action$='/manage/content/lan'] button").click()
    assert "Test channel" in ar.locator("li.channel").inner_text()
    assert "مثبّتة: الإصدار 3" in ar.locator("li.channel").inner_text()
    shot(ar, "lan-channels-ar-tablet")
    ar.goto("/manage/content")
    ar.fill("#f-server", "127.0.0.1:1")  # nothing listens there: said in words
    ar.locator("form[action$='/manage/content/lan'] button").click()
    assert "لا ردّ من" in ar.locator("main").inner_text()
    shot(ar, "lan-unreachable-ar-tablet")
    ar.goto("/manage/content")
    ar.get_by_role("link", name="عرض ما يغيّره التحديث").click()
    assert "من الإصدار 3 إلى الإصدار 4." in ar.locator("main").inner_text()
    shot(ar, "update-diff-ar-tablet")
    ar.get_by_role("button", name="التحديث الآن").click()
    ar.wait_for_url("**/manage/content")
    ar.locator("li.job.done", has_text="(v4)").wait_for(timeout=120_000)
    shot(ar, "content-after-update-ar-tablet")

    # Search: the channel's labels as filters, links that work without a script.
    fr.goto("/search?q=about")
    facets = fr.locator("nav.chips.facet")
    assert facets.count() == 3
    assert "Regarder (1)" in facets.nth(0).inner_text()
    shot(fr, "search-facets-fr-desktop")
    fr.get_by_role("link", name="Regarder (1)").click()
    results = fr.locator("ol.results")
    assert "Counting video, new cut" in results.inner_text() and "A booklet" not in results.inner_text()
    assert fr.get_by_role("link", name="Regarder (1)").get_attribute("aria-current") == "true"
    ar.goto("/search?q=about")
    assert "المشاهدة (1)" in ar.locator("nav.chips.facet").nth(0).inner_text()
    ar.get_by_role("link", name=re.compile("^الرياضيات")).click()
    assert "A booklet" in ar.locator("ol.results").inner_text()
    shot(ar, "search-facets-ar-tablet")
