"""A ZIM without a full-text index, indexed by the box: searched with snippets, and one of its
articles added to a lesson by a facilitator, in French and in Arabic (right to left)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from passerelle.content import zim

sys.path.insert(0, str(Path(__file__).parents[1]))

from zimfixtures import DEFAULT_ARTICLES, make_zim  # noqa: E402

from tests.browser.conftest import ARTIFACTS  # noqa: E402
from tests.conftest import PASSWORDS  # noqa: E402

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not zim.AVAILABLE, reason=zim.UNAVAILABLE_REASON)]


@pytest.fixture
def indexed(box, tmp_path):
    """The ZIM added and its articles indexed before the server starts (what the serving
    box's background thread does, here to the end at once)."""
    from passerelle.server.db import connect
    from passerelle.server.search.zim_index import ZimIndexer

    articles = {**DEFAULT_ARTICLES,
                "Tablette": ("Tablette tactile", "<p>Une tablette se touche du doigt, sans "
                                                 "clavier ni souris.</p>")}
    path = make_zim(tmp_path / "usb" / "recueil.zim", articles=articles, fulltext=False,
                    title="Recueil de la bibliothèque")
    library = zim.ZimLibrary(lambda: connect(box.home / "passerelle.db"), box.home / "storage")
    uuid = library.add(path).uuid
    indexer = ZimIndexer(library, lambda: connect(box.home / "passerelle.db"),
                         box.home / "index" / "zim")
    indexer.queue(uuid)
    indexer.run(uuid)
    indexer.close()
    return uuid


@pytest.mark.parametrize("locale", ["fr-BE", "ar"])
def test_searching_a_zim_and_adding_an_article_to_a_lesson(indexed, live_server, page_factory,
                                                          locale):
    # `indexed` first: the ZIM is indexed before the server starts (pytest sets fixtures up in
    # this order). Started the other way, the server's own background indexer could take the
    # ZIM's lock first and index it in slow slices while the page is searched.
    page = page_factory(live_server.url, locale=locale, viewport={"width": 800, "height": 1100})
    page.goto("/signin/staff")
    page.locator("input[name=username]").fill("fatou")
    page.locator("input[name=password]").fill(PASSWORDS["fatou"])
    page.locator("form button[type=submit]").click()
    page.wait_for_url("**/manage")
    lang = locale[:2]
    # The search page finds the article by a word of its text, with a snippet.
    page.goto("/search?q=doigt")
    hit = page.locator("li.zim-hit").first
    assert "Tablette tactile" in hit.locator("a").inner_text()
    assert hit.locator(".snippet mark").first.inner_text().lower() == "doigt"
    assert page.locator("html").get_attribute("dir") == ("rtl" if lang == "ar" else "ltr")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"zim-search-{lang}.png"), full_page=True)
    # The article, and the form that adds it to a new lesson.
    hit.locator("a").click()
    page.wait_for_url(f"**/read/{indexed}/Tablette")
    form = page.locator("form.add-to-lesson")
    form.locator("select[name=lesson]").select_option("")
    form.locator("input[name=title]").fill(f"Tablettes {lang}")
    form.locator("button[type=submit]").click()
    page.wait_for_url(f"**/read/{indexed}/Tablette")
    page.locator(".flash, [role=status]").first.wait_for()
    assert f"Tablettes {lang}" in page.locator("main").inner_text()
    page.screenshot(path=str(ARTIFACTS / f"zim-lesson-{lang}.png"), full_page=True)
    # The lesson is in the builder, with the article's title from the ZIM.
    page.goto("/manage/lessons")
    page.get_by_text(f"Tablettes {lang}").first.wait_for()
