"""The learner and facilitator web interface: server-rendered pages first.

Design
------
- Jinja templates rendered by the server; small hand-written JavaScript only
  as progressive enhancement, written for old Android WebViews; no build step.
- Nothing is ever loaded from outside the box (the CSP in ``server.security``
  enforces it): no CDN, no web font, no analytics.
- Static files are served under a content fingerprint
  (``/static/<hash>/<path>``) with a one-year immutable cache, so tablets on a
  crowded Wi-Fi fetch each asset once per release.
- Every user-visible string goes through gettext (``_()``); catalogues live in
  ``translations/`` (French, Dutch, English, Arabic, right-to-left).
"""

from __future__ import annotations

import hashlib
import mimetypes
from functools import lru_cache
from pathlib import Path

from flask import (
    Blueprint,
    Flask,
    has_request_context,
    request,
    send_from_directory,
    url_for,
)
from passerelle.kiosk.qr import qr_svg
from passerelle.server.web.auth import ANYONE, allow

HERE = Path(__file__).parent
STATIC = HERE / "static"
ONE_YEAR = 365 * 24 * 3600
# The web app manifest's registered type (some systems' mime.types lack it).
mimetypes.add_type("application/manifest+json", ".webmanifest")

bp = Blueprint("kiosk", __name__, template_folder="templates")


@lru_cache(maxsize=256)
def fingerprint(filename: str) -> str:
    """First 10 hex digits of the file's SHA-256: changes exactly when the file does."""
    return hashlib.sha256((STATIC / filename).read_bytes()).hexdigest()[:10]


def static_url(filename: str) -> str:
    # A page links 4-6 static files; building each URL through the URL map cost more
    # than the rest of the page's header. The URL only depends on the file and on
    # the prefix the app is served under.
    return _static_url(request.script_root if has_request_context() else "", filename)


@lru_cache(maxsize=512)
def _static_url(_script_root: str, filename: str) -> str:
    return url_for("kiosk.static_file", digest=fingerprint(filename), filename=filename)


@bp.get("/static/<digest>/<path:filename>")
@allow(ANYONE)
def static_file(digest: str, filename: str):
    response = send_from_directory(STATIC, filename, max_age=ONE_YEAR)
    if digest == fingerprint(filename):
        response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    else:
        # An old page asking for an old fingerprint gets today's file, uncached.
        response.headers["Cache-Control"] = "no-cache"
    return response


def init_app(app: Flask) -> None:
    # The view modules register their routes on `bp` when imported: the learners' pages,
    # then the staff pages (kiosk/manage/).
    from passerelle.kiosk import (  # noqa: F401
        bookmarks,
        guests,
        learn,
        me,
        pages,
        pending,
        practice,
        quiz,
        signin,
        zim_pages,
    )
    from passerelle.kiosk.manage import (  # noqa: F401
        backups,
        classes,
        coach,
        content,
        label,
        lessons,
        material,
        people,
        quizzes,
        reports,
        settings,
        sites,
        sync,
        upkeep,
    )

    app.register_blueprint(bp)
    app.jinja_env.globals["static_url"] = static_url
    app.jinja_env.globals["format_date"] = format_date
    app.jinja_env.globals["format_datetime"] = format_datetime
    app.jinja_env.globals["format_size"] = format_size
    app.jinja_env.globals["qr_svg"] = qr_svg


def format_size(size: int | None) -> str:
    """A file size in the page language's words and digits (Babel): "4,2 Mo", never "0.0 MB"."""
    from babel.units import format_unit
    from flask_babel import get_locale

    size = max(0, int(size or 0))
    for unit, scale in (("gigabyte", 1e9), ("megabyte", 1e6), ("kilobyte", 1e3)):
        if size >= scale:
            value = size / scale
            return format_unit(round(value, 1) if value < 100 else round(value), f"digital-{unit}",
                               length="short", locale=get_locale())
    return format_unit(size, "digital-byte", length="short", locale=get_locale())


def size_units() -> dict[str, str]:
    """What :func:`format_size` writes for each unit, with ``{n}`` for the number: the page's
    script fills in a size it adds up (the topic picker) in the same words and digits."""
    from babel.numbers import format_decimal
    from babel.units import format_unit
    from flask_babel import get_locale

    out = {}
    for unit in ("gigabyte", "megabyte", "kilobyte", "byte"):
        text = format_unit(7.5, f"digital-{unit}", length="short", locale=get_locale())
        out[unit] = text.replace(format_decimal(7.5, locale=get_locale()), "{n}")
    return out


def _as_datetime(value):
    """A stored ISO text ("2026-11-22", "2026-11-22T13:00:00Z") as a date or a datetime."""
    from datetime import date, datetime

    if not isinstance(value, str):
        return value
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")) if "T" in value \
            else date.fromisoformat(value)
    except ValueError:
        return None


def format_date(value, format: str = "medium") -> str:
    """A date in the page language's own format (Babel's CLDR data), never ISO or US order."""
    import flask_babel

    when = _as_datetime(value)
    return "" if when is None else flask_babel.format_date(when, format)


def format_datetime(value, format: str = "medium") -> str:
    import flask_babel

    when = _as_datetime(value)
    return "" if when is None else flask_babel.format_datetime(when, format)
