"""Interface languages through gettext catalogues (Flask-Babel).

Flask-Babel was chosen over hand-written lookups because it brings Babel's
extraction (``pybabel extract`` over Python and Jinja), plural rules for
Arabic's six plural forms, and locale-aware number and date formatting.

The language of a request is, in order: the signed-in person's own language
(remembered in their account), the one chosen on this tablet (a cookie that
outlives sign-out), the browser's ``Accept-Language``, then the
``default_language`` setting.
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, current_app, g, request
from flask_babel import Babel, get_locale

LANG_COOKIE = "passerelle_lang"
RTL = {"ar", "fa", "he", "ur"}
NAMES = {"fr": "Français", "nl": "Nederlands", "en": "English", "ar": "العربية"}


def translations_dir() -> Path:
    from passerelle import kiosk

    return Path(kiosk.__file__).parent / "translations"


def offered() -> list[str]:
    return current_app.config["SETTINGS"]["languages"]


def select_locale() -> str:
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


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(translations_dir()))
    Babel(app, locale_selector=select_locale)

    @app.context_processor
    def language_context():
        return {
            "lang": str(get_locale()),
            "text_direction": direction(),
            "language_names": {code: NAMES.get(code, code) for code in offered()},
        }
