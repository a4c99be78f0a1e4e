"""Searching on a tablet: suggestions as you type, filter chips, a result that opens."""

import pytest

pytestmark = pytest.mark.browser


def test_suggestions_filters_and_opening_a_result(live_server, page_factory):
    page = page_factory(live_server.url, locale="fr-BE")
    suggest_calls = []
    page.on("request", lambda r: suggest_calls.append(r.url) if "/search/suggest" in r.url else None)
    page.goto("/search")
    box = page.get_by_role("searchbox")
    box.press_sequentially("bienv", delay=40)  # typed like a person: debounced, not one call per key
    page.locator("#suggestions a").first.wait_for()
    assert len(suggest_calls) <= 2
    page.locator("#suggestions a", has_text="Bienvenue").first.click()
    page.wait_for_url("**/search?q=*")
    assert page.locator("ol.results li").count() >= 1
    page.get_by_role("link", name="Bienvenue", exact=True).click()
    page.wait_for_url("**/learn/demo-fr/basics/welcome")
    assert page.locator("h1").inner_text() == "Bienvenue"


def test_kind_chips_filter_results(live_server, page_factory):
    page = page_factory(live_server.url, locale="fr-BE")
    page.goto("/search?q=touchez")
    chips = page.locator("nav.chips a")
    assert chips.count() >= 3  # everything + at least two kinds
    page.locator("nav.chips a", has_text="Vidéos").click()
    assert "kind=video" in page.url
    kinds = page.locator("ol.results .kind").all_inner_texts()
    assert kinds and all(k.startswith("Vidéos") for k in kinds)
