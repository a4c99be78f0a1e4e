"""A ZIM with its own (Xapian) full-text index: the search page shows the hits at once and
its script fills in their snippets, in French and in Arabic (right to left)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from passerelle.content import zim

sys.path.insert(0, str(Path(__file__).parents[1]))

from zimfixtures import DEFAULT_ARTICLES, make_zim  # noqa: E402

from tests.browser.conftest import ARTIFACTS  # noqa: E402

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not zim.AVAILABLE, reason=zim.UNAVAILABLE_REASON)]


@pytest.fixture
def wiki(box, tmp_path):
    from passerelle.server.db import connect

    articles = {**DEFAULT_ARTICLES,
                "Tablette": ("Tablette tactile", "<p>Une tablette se touche du doigt, sans "
                                                 "clavier ni souris &lt;b&gt;.</p>")}
    path = make_zim(tmp_path / "usb" / "wiki.zim", articles=articles, title="Wikipédia test")
    library = zim.ZimLibrary(lambda: connect(box.home / "passerelle.db"), box.home / "storage")
    uuid = library.add(path).uuid
    assert library.get(uuid).has_fulltext
    return uuid


@pytest.mark.parametrize("locale,size", [("fr-BE", {"width": 360, "height": 740}),      # a phone
                                         ("ar", {"width": 800, "height": 1280}),        # a tablet
                                         ("fr-BE", {"width": 1366, "height": 768})])    # a desktop
def test_xapian_hits_show_their_snippets_once_the_page_is_shown(wiki, live_server, page_factory,
                                                                locale, size):
    page = page_factory(live_server.url, locale=locale, viewport=size)
    page.goto("/search?q=doigt")
    hit = page.locator("li.zim-hit").filter(has_text="Tablette tactile")
    mark = hit.locator(".snippet mark").first
    mark.wait_for()  # filled in by the page's script
    assert mark.inner_text().lower() == "doigt"
    snippet = hit.locator(".snippet").inner_text()
    assert "<b>" in snippet and hit.locator(".snippet b").count() == 0  # text, not markup
    assert page.locator("p[data-snippet][hidden]").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"zim-xapian-snippets-{locale[:2]}-{size['width']}.png"),
                    full_page=True)
