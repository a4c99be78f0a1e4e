"""Interface languages through gettext catalogues (Flask-Babel).

Flask-Babel was chosen over hand-written lookups because it brings Babel's
extraction (``pybabel extract`` over Python and Jinja), plural rules for
Arabic's six plural forms, and locale-aware number and date formatting.

The language of a request is, in order: the signed-in person's own language
(remembered in their account), the one chosen on this tablet (a cookie that
outlives sign-out), the browser's ``Accept-Language``, then the
``default_language`` setting.

Messages of the domain modules (``accounts``, ``lessons``, ``roster``...) are
marked with ``lazy_gettext`` (imported as ``_l``): they are translated when
they are shown, so a kiosk form shows them in the page's language and the
JSON API in the request's, while the error's ``code`` stays the same stable
word. Outside a request (the command line, background work) they read in
English.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app, g, has_request_context, request
from flask.globals import request_ctx
from flask_babel import Babel, get_locale, get_translations, gettext
from flask_babel.speaklater import LazyString
from markupsafe import Markup, escape

LANG_COOKIE = "passerelle_lang"
RTL = {"ar", "fa", "he", "ur"}
NAMES = {"fr": "Français", "nl": "Nederlands", "en": "English", "ar": "العربية"}


def translations_dir() -> Path:
    from passerelle import kiosk

    return Path(kiosk.__file__).parent / "translations"


def offered() -> list[str]:
    return current_app.config["SETTINGS"]["languages"]


class LazyText(LazyString):
    """A message translated when it is shown, and escaped like any text when a page shows it.

    Flask-Babel's own lazy strings declare themselves HTML (``__html__`` returns the
    text as is), so Jinja would insert them unescaped: a message naming what a person
    typed ("unknown profile field <script>...") would become markup.
    """

    def __html__(self) -> str:
        return str(escape(str(self)))


def lazy_text(string: str, **variables) -> LazyText:
    """``lazy_gettext`` for the domain modules' messages (imported as ``_l``)."""
    return LazyText(gettext, string, **variables)


def select_locale() -> str:
    if not has_request_context():
        # An app context without a request (the CLI, a test, a background thread): a lazy
        # message read there is English, the language of the log and of the command line.
        return "en"
    languages = offered()
    user = g.get("user")
    if user and user.get("language") in languages:
        return user["language"]
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in languages:
        return chosen
    best = request.accept_languages.best_match(languages)
    if best:
        return best
    default = current_app.config["SETTINGS"]["default_language"]
    return default if default in languages else languages[0]


def direction() -> str:
    return "rtl" if str(get_locale()).split("_")[0] in RTL else "ltr"


def content_direction(code: str | None) -> str:
    """The direction of content in language ``code``: its own, whatever the interface's
    ("auto", the browser reading the first strong letter, when the language is unknown)."""
    if not code:
        return "auto"
    return "rtl" if code.replace("_", "-").split("-")[0].lower() in RTL else "ltr"


def content_attrs(code: str | None) -> Markup:
    """` lang=".." dir=".."` for an element that shows content text: French inside the
    Arabic interface keeps its full stops and sums in place, and is read by a French voice."""
    if not code:
        return Markup(' dir="auto"')
    return Markup(' lang="%s" dir="%s"') % (code, content_direction(code))


def _catalogue():
    """This request's catalogue, found once (Flask-Babel looks it up again for every string:
    a page's 10-30 strings cost about as much as its database queries). Kept where
    Flask-Babel keeps its own cache of the locale, on the request (``flask_babel.refresh()``
    is not used here; it would have to clear this one too)."""
    holder = request_ctx._get_current_object() if has_request_context() else g._get_current_object()
    # Kept with its locale: `force_locale` (a certificate in the learner's language) changes the
    # locale for a while, and the page around it must go back to the request's catalogue.
    locale = get_locale()
    found = getattr(holder, "passerelle_catalogue", None)
    if found is None or found[0] is not locale:
        found = holder.passerelle_catalogue = (locale, get_translations())
    return found[1]


def ltr(text: str) -> str:
    """``text`` (an address, a code) kept left to right inside a sentence of any language, as
    plain text: between the Unicode marks that isolate it (LRI ... PDI). In an Arabic sentence
    "http://192.168.1.20:8080/" otherwise shows its final slash on the left. For a message
    that is flashed or put in an attribute, where ``<bdi dir="ltr">`` cannot go."""
    return f"\u2066{text}\u2069"


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(translations_dir()))
    Babel(app, locale_selector=select_locale)
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: _catalogue().ugettext(s),
        ngettext=lambda s, p, n: _catalogue().ungettext(s, p, n),
        pgettext=lambda c, s: _catalogue().upgettext(c, s),
        npgettext=lambda c, s, p, n: _catalogue().unpgettext(c, s, p, n),
        newstyle=True)
    app.jinja_env.globals["content_attrs"] = content_attrs
    app.jinja_env.globals["ltr"] = ltr

    @app.context_processor
    def language_context():
        return {
            "lang": str(get_locale()),
            "text_direction": direction(),
            "language_names": {code: NAMES.get(code, code) for code in offered()},
        }
