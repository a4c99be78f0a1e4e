"""A learner's first visit, in a real browser."""

import pytest

pytestmark = pytest.mark.browser


def test_first_visit_in_french(live_server, page_factory):
    page = page_factory(live_server.url, locale="fr-BE")
    page.goto("/")
    assert page.locator("h1").inner_text() == "Bienvenue sur Passerelle"
    assert page.locator("html").get_attribute("lang") == "fr"
    # The stylesheet arrived from the box and applies (the header has the brand colour).
    colour = page.locator("header.top").evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(11, 93, 102)"


def test_switching_to_arabic_lays_the_page_out_right_to_left(live_server, page_factory):
    page = page_factory(live_server.url, locale="nl-BE", viewport={"width": 800, "height": 600})
    page.goto("/")
    assert page.locator("h1").inner_text() == "Welkom bij Passerelle"
    page.get_by_role("link", name="العربية").click()
    page.wait_for_url("**/")
    assert page.locator("html").get_attribute("dir") == "rtl"
    assert page.locator("h1").inner_text() == "مرحبًا بك في Passerelle"
    assert page.locator("body").evaluate("e => getComputedStyle(e).direction") == "rtl"
    brand = page.locator(".brand").bounding_box()
    assert brand["x"] > 400, "in right-to-left the brand sits on the right"
    page.reload()
    assert page.locator("html").get_attribute("dir") == "rtl", "the choice is remembered"


def test_a_missing_page_is_friendly_and_keyboard_reachable(live_server, page_factory):
    page = page_factory(live_server.url, locale="fr-BE")
    response = page.goto("/cette-page-n-existe-pas")
    assert response.status == 404
    assert page.get_by_role("heading", level=1).inner_text() == "Cette page n'est pas ici"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Aller au contenu"
