"""Four interface languages, Arabic right-to-left, complete catalogues."""

from pathlib import Path

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

TRANSLATIONS = Path(__file__).resolve().parents[2] / "kiosk" / "translations"


@pytest.mark.parametrize("accept, lang, words", [
    ("fr-BE,fr;q=0.9", "fr", "Bienvenue sur Passerelle"),
    ("nl-BE,nl;q=0.9,en;q=0.5", "nl", "Welkom bij Passerelle"),
    ("en-GB", "en", "Welcome to Passerelle"),
    ("ar", "ar", "مرحبًا بك في Passerelle"),
    ("de-DE", "fr", "Bienvenue sur Passerelle"),  # not offered: the box's default language
])
def test_accept_language_decides_on_a_first_visit(client, accept, lang, words):
    html = client.get("/", headers={"Accept-Language": accept}).get_data(as_text=True)
    assert f'<html lang="{lang}" dir="{"rtl" if lang == "ar" else "ltr"}">' in html
    assert words in html


def test_the_learners_choice_is_remembered_over_the_browser(client):
    response = client.get("/language/ar?next=/")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    html = client.get("/", headers={"Accept-Language": "nl"}).get_data(as_text=True)
    assert 'lang="ar" dir="rtl"' in html


def test_unknown_language_is_refused(client):
    assert client.get("/language/xx").status_code == 404


@pytest.mark.parametrize("lang", ["fr", "nl", "ar"])
def test_catalogues_translate_every_string(lang):
    template = read_po((TRANSLATIONS / "messages.pot").open("rb"))
    catalog = read_po((TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").open("rb"))
    untranslated = [m.id for m in template if m.id and not (catalog.get(m.id) and catalog.get(m.id).string)]
    assert not untranslated


@pytest.mark.parametrize("lang", ["fr", "nl", "ar", "en"])
def test_compiled_catalogues_match_their_sources(lang):
    folder = TRANSLATIONS / lang / "LC_MESSAGES"
    def table(catalog):
        # Plural entries have a tuple of ids and of forms; empty forms mean "untranslated".
        found = {}
        for m in catalog:
            key = tuple(m.id) if isinstance(m.id, (list, tuple)) else m.id
            value = tuple(m.string) if isinstance(m.string, (list, tuple)) else m.string
            filled = any(value) if isinstance(value, tuple) else bool(value)
            if key and filled and value != key:  # compiled fallbacks repeat the English
                found[key] = value
        return found

    po = table(read_po((folder / "messages.po").open("rb")))
    mo = table(read_mo((folder / "messages.mo").open("rb")))
    assert po == mo, "run `make translations` to recompile"


def test_templates_have_no_untranslatable_text():
    """Every string in the templates is in the catalogue template (extracted by `make translations`)."""
    from babel.messages.extract import extract_from_dir

    found = {m[2] for m in extract_from_dir(str(TRANSLATIONS.parent), method_map=[("**/templates/**.html", "jinja2")])}
    known = {m.id for m in read_po((TRANSLATIONS / "messages.pot").open("rb")) if m.id}
    assert found <= known, "run `make translations`"
