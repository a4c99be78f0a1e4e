"""Printed pages, as Chromium prints them (page.pdf() uses the print stylesheet): a certificate
on one A4 landscape page, the impact report and the list of certificates on A4 portrait,
without the header, the navigation or any button, in English and in Arabic (right to left)."""

from __future__ import annotations

import io

import pytest
from babel.support import Translations
from passerelle.server import records
from passerelle.server.db import get_db
from pypdf import PdfReader

from tests.conftest import PASSWORDS
from tests.server.test_i18n import TRANSLATIONS

pytestmark = pytest.mark.browser

A4 = (595, 842)  # points, portrait
MODULE = ("basics/welcome", "basics/clip", "basics/game", "basics/quiz", "basics/guide")


@pytest.fixture
def printable(app, box, server_factory):
    """Amina has completed the module "Les bases"; the box serves over loopback."""
    with app.app_context():
        db = get_db()
        for node in MODULE:
            records.event(db, box.ids["amina"], {"event_id": f"done:{node}", "pack_id": "demo-fr",
                                                 "node_id": node, "type": "completed",
                                                 "progress": 1.0, "seconds": 60})
    return server_factory()


def signed_in_staff(page_factory, server, locale: str):
    page = page_factory(server.url, locale=locale)
    page.goto("/signin/staff")
    page.locator("input[name=username]").fill("fatou")
    page.locator("input[name=password]").fill(PASSWORDS["fatou"])
    page.locator("form.form button[type=submit]").click()
    page.wait_for_url("**/manage")
    return page


def printed(page) -> PdfReader:
    """The PDF Chromium makes of the page, with the page size its stylesheet asks for."""
    return PdfReader(io.BytesIO(page.pdf(prefer_css_page_size=True, print_background=True)))


def size(reader: PdfReader, index: int = 0) -> tuple[int, int]:
    box = reader.pages[index].mediabox
    return round(float(box.width)), round(float(box.height))


def text_of(reader: PdfReader) -> str:
    return " ".join(p.extract_text() for p in reader.pages)


def hidden_when_printed(page, selector: str) -> bool:
    """Every element matching ``selector`` is hidden under print media (and there is one)."""
    return page.evaluate("""s => {
        const found = [...document.querySelectorAll(s)];
        return found.length > 0 && found.every(e => getComputedStyle(e).display === 'none'
                                                  || e.closest('[hidden]') !== null
                                                  || e.offsetParent === null);
    }""", selector)


@pytest.mark.parametrize("lang", ["en", "ar"])
def test_a_certificate_prints_on_one_landscape_page(printable, page_factory, box, lang):
    page = signed_in_staff(page_factory, printable, "en-GB")
    page.goto(f"/manage/certificates/{box.ids['amina']}/demo-fr/basics?lang={lang}")
    title = Translations.load(str(TRANSLATIONS), [lang]).gettext("Certificate of completion")
    assert page.locator("main.certificate h1").inner_text() == title
    assert page.locator("main.certificate").get_attribute("lang") == lang
    assert page.locator("main.certificate").evaluate("e => getComputedStyle(e).direction") == \
        ("rtl" if lang == "ar" else "ltr")
    page.wait_for_function("() => !document.querySelector('[data-print]').hidden")  # print.js ran

    page.emulate_media(media="print")
    assert hidden_when_printed(page, ".certificate-actions")
    assert hidden_when_printed(page, "[data-print]")
    for words in ("Espace Numérique Test", "Amina", "Les bases"):
        assert page.locator("main.certificate").get_by_text(words).first.is_visible()
    reader = printed(page)
    assert len(reader.pages) == 1, "a certificate is one sheet of paper"
    assert size(reader) == (A4[1], A4[0]), "A4 landscape"
    text = text_of(reader)
    for words in ("Amina", "Les bases", "2026" if lang == "en" else "Amina"):
        assert words in text
    assert "Ctrl+P" not in text and "Back to" not in text


@pytest.mark.parametrize("locale, lang", [("en-GB", "en"), ("ar", "ar")])
def test_the_impact_report_and_the_certificate_list_print_without_navigation(
        printable, page_factory, box, locale, lang):
    page = signed_in_staff(page_factory, printable, locale)
    page.goto("/manage/reports")
    assert page.locator("html").get_attribute("lang") == lang
    page.emulate_media(media="print")
    for selector in ("header.top", "form", ".no-print", "[data-print]"):
        assert hidden_when_printed(page, selector), selector
    assert page.locator("h1").get_by_text("Espace Numérique Test").is_visible()
    reader = printed(page)
    assert size(reader) == A4
    text = text_of(reader)
    assert "Espace Numérique Test" in text
    assert "Nederlands" not in text, "the language menu is not printed"

    page.goto(f"/manage/reports/certificates/{box.ids['class_a']}")
    assert hidden_when_printed(page, "header.top")
    assert hidden_when_printed(page, "td.no-print a")  # the links to each certificate
    reader = printed(page)
    assert size(reader) == A4 and len(reader.pages) == 1
    text = text_of(reader)
    assert "Amina" in text and "Les bases" in text
