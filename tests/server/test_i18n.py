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


# --- Messages of the domain modules (accounts, lessons, roster...): translated where shown ------

TAKEN = "this username is already taken"


def a_catalogue(folder: Path, lang: str, messages: dict[str, str]) -> Path:
    """A compiled catalogue with these translations, in the layout Flask-Babel reads."""
    from babel.messages.catalog import Catalog
    from babel.messages.mofile import write_mo

    catalog = Catalog(locale=lang)
    for msgid, msgstr in messages.items():
        catalog.add(msgid, msgstr)
    target = folder / lang / "LC_MESSAGES"
    target.mkdir(parents=True)
    with (target / "messages.mo").open("wb") as f:
        write_mo(f, catalog)
    return folder


def add_fatou_again(client):
    """The people form, as a coordinator fills it in, with a username that is taken."""
    from tests.conftest import csrf_token

    return client.post("/manage/people", data={
        "csrf_token": csrf_token(client), "role": "facilitator", "display_name": "Fatou bis",
        "username": "FÂTOU", "password": "a long enough password"})


def test_domain_messages_are_shown_in_the_pages_language(box, tmp_path):
    """The mechanism, with a catalogue of its own (independent of the project's translations):
    a form in French shows the message in French, the JSON API answers in the request's language
    with the same stable code, and outside a request the message is English."""
    from passerelle.server.app import create_app
    from passerelle.server.db import get_db
    from passerelle.server.people import accounts

    from tests.conftest import sign_in

    folder = a_catalogue(tmp_path / "catalogue", "fr", {
        TAKEN: "ce nom d’utilisateur est déjà pris", "no such class": "cette classe n’existe pas",
        "Woman": "Femme"})
    app = create_app({"home": box.home, "TESTING": True,
                      "BABEL_TRANSLATION_DIRECTORIES": f"{TRANSLATIONS};{folder}"})
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "fr"
    sign_in(client, box, "cora")

    page = add_fatou_again(client)
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    assert "ce nom d’utilisateur est déjà pris" in html and TAKEN not in html
    # Profile answers too: stored as "woman", shown as a translated label.
    assert '<option value="woman">Femme</option>' in html

    answer = client.get("/api/v1/classes/no-such-class")
    assert answer.status_code == 404
    assert answer.get_json()["error"] == {"code": "not_found", "message": "cette classe n’existe pas"}
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    assert client.get("/api/v1/classes/no-such-class").get_json()["error"]["message"] == "no such class"

    with app.app_context():  # no request: the command line's English
        with pytest.raises(accounts.InvalidInput) as info:
            accounts.create_user(get_db(), role="facilitator", display_name="F", username="fatou",
                                 password="long enough password")
        assert str(info.value.details["username"]) == TAKEN


def test_a_french_form_error_is_in_french(as_user):
    """With the project's French catalogue (fails until `make translations` and the translators
    have been through the new strings, like test_catalogues_translate_every_string)."""
    from babel.support import Translations
    from markupsafe import escape

    french = Translations.load(str(TRANSLATIONS), ["fr"]).gettext(TAKEN)
    assert french != TAKEN, f"{TAKEN!r} has no French translation yet: run `make translations`"
    cora = as_user("cora")
    cora.get("/language/fr")
    html = add_fatou_again(cora).get_data(as_text=True)
    assert str(escape(french)) in html and TAKEN not in html
