"""A ZIM's own HTML runs in Chromium, contained: it can neither read the session nor use the API."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from passerelle.content import zim

sys.path.insert(0, str(Path(__file__).parents[1]))

from zimfixtures import DEFAULT_ARTICLES, HOSTILE, icon_48, make_zim  # noqa: E402

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not zim.AVAILABLE, reason=zim.UNAVAILABLE_REASON)]


def sign_in_as_amina(page):
    page.goto("/signin")
    page.get_by_role("link", name="Groupe A").click()
    page.get_by_role("link", name="Amina").click()
    page.get_by_label(re.compile("4")).fill("1234")
    page.locator("form.signin-learner button[type=submit]").click()
    page.wait_for_url("**/")


@pytest.fixture
def wiki(box, tmp_path):
    from passerelle.server.db import connect

    articles = {**DEFAULT_ARTICLES,
                "Accueil": ("Accueil", '<p><a href="Clavier">Clavier</a></p>'),
                "Clavier": ("Clavier", '<p>Le clavier.</p><img id="pic" src="clavier.png" alt="">')}
    path = make_zim(tmp_path / "usb" / "w.zim", articles=articles,
                    extra={"hostile.html": ("text/html", HOSTILE),
                           "clavier.png": ("image/png", icon_48())})
    library = zim.ZimLibrary(lambda: connect(box.home / "passerelle.db"), box.home / "storage")
    return library.add(path).uuid


def test_a_script_in_a_zim_article_cannot_read_the_session_or_call_the_api(
        box, wiki, live_server, page_factory):
    # The ZIM is added before the server starts: a server lists ZIMs again only after its
    # two-second cache, and a quick sign-in could show the library from before.
    page = page_factory(live_server.url, locale="fr-BE")
    sign_in_as_amina(page)
    # The library shows the ZIM; tapping it opens its main page inside the kiosk's frame.
    page.get_by_role("link", name=re.compile("Wikipédia test")).click()
    frame = page.frame_locator("iframe.zim-frame")
    assert frame.locator("h1").inner_text() == "Accueil"
    # Its links work inside the frame; the article's image loads from the box, in the sandbox.
    frame.get_by_role("link", name="Clavier").click()
    image = frame.locator("#pic")
    image.wait_for()
    image.evaluate("i => i.complete ? 0 : new Promise(r => i.addEventListener('load', r))")
    assert image.evaluate("i => i.naturalWidth") == 48
    # The hostile page reports what its script could reach.
    page.goto(f"/read/{wiki}/hostile.html")
    out = page.frame_locator("iframe.zim-frame").locator("#out")
    out.filter(has_text="{").wait_for(timeout=15000)
    report = json.loads(out.inner_text())
    assert report["cookie"].startswith("blocked"), report
    assert report["storage"].startswith("blocked"), report
    assert report["parent"].startswith("blocked"), report
    assert "Amina" not in report["api"] and box.ids["amina"] not in report["api"], report
    # Opened directly, outside the kiosk frame, the header's sandbox still holds.
    page.goto(f"/zim/{wiki}/hostile.html")
    page.locator("#out").filter(has_text="{").wait_for(timeout=15000)
    direct = json.loads(page.locator("#out").inner_text())
    assert direct["cookie"].startswith("blocked") and "Amina" not in direct["api"], direct
    # The learner's own session is intact.
    page.goto("/")
    assert page.locator(".signout .who").inner_text() == "Amina"
