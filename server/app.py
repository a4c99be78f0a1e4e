"""The application factory: the only way to build Passerelle's Flask app."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from logging.handlers import RotatingFileHandler
from typing import Any

from flask import Flask

from . import api, auth, content_admin, content_web, db, errors, i18n, search, security
from .errors import ConfigError
from .home import Home
from .settings import Settings, SettingsError, resolve, resolve_home


def create_app(config: Settings | Mapping[str, Any] | None = None) -> Flask:
    """Build the app for one data home.

    ``config`` is either resolved :class:`Settings` (what the CLI passes) or a
    mapping, as tests pass it: ``home`` picks the data home, lower-case keys
    are settings (checked like a command-line flag), upper-case keys go to
    Flask's config as they are (``TESTING``...).
    """
    settings, flask_overrides = _settings_from(config)
    home = Home(settings.home).ensure()
    info = db.prepare(home.db_path, settings["db_busy_timeout_ms"])

    from passerelle import kiosk  # the learner UI lives in its own package

    # instance_path is given so Flask never searches the (namespace) package for one.
    app = Flask(__name__, instance_path=str(home.root), static_folder=None, template_folder=None)
    app.config.update(
        SECRET_KEY=home.secret_key(),
        SETTINGS=settings,
        HOME=home,
        DB_PATH=str(home.db_path),
        DB_BUSY_TIMEOUT_MS=settings["db_busy_timeout_ms"],
        DEVICE_ID=info["device_id"],
        MAX_CONTENT_LENGTH=settings["max_request_mb"] * 1024 * 1024,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings["session_lifetime_minutes"]),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="passerelle_session",
        # Expiry is checked on the server's clock (auth._load_user), and the session
        # changes at least every 30 s of use (seen_at), which re-sends the cookie then:
        # re-signing and re-sending it on every answer was about 5% of a page's time.
        SESSION_REFRESH_EACH_REQUEST=False,
    )
    app.config.update(flask_overrides)
    app.json.sort_keys = False  # keep documented field order in API answers
    _configure_logging(app, home, settings)

    db.init_app(app)
    errors.init_app(app)
    security.init_app(app)
    from . import compress  # gzip for text answers (server/compress.py)
    compress.init_app(app)
    auth.init_app(app)
    i18n.init_app(app)
    api.init_app(app)
    content_web.init_app(app)
    content_admin.init_app(app)
    search.init_app(app)
    # Sync between boxes: device endpoints, and the background timer.
    from . import sync_http, sync_schedule
    sync_http.init_app(app)
    sync_schedule.init_app(app)
    kiosk.init_app(app)
    # The welcome page that devices joining the box's Wi-Fi open by themselves.
    from . import captive
    captive.init_app(app)
    return app


def _settings_from(config: Settings | Mapping[str, Any] | None) -> tuple[Settings, dict]:
    if isinstance(config, Settings):
        return config, {}
    config = dict(config or {})
    home_path, home_source = resolve_home(config.pop("home", None))
    flask_overrides = {k: config.pop(k) for k in list(config) if k.isupper()}
    try:
        settings = resolve(home_path, home_source, flags=config, flags_source="create_app config")
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None
    return settings, flask_overrides


def _configure_logging(app: Flask, home: Home, settings: Settings) -> None:
    """Application log in HOME/logs, rotated so a box never fills its SD card."""
    if app.testing:
        return
    handler = RotatingFileHandler(home.logs / "passerelle.log", maxBytes=5 * 2**20,
                                  backupCount=5, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(settings["log_level"].upper())
    app.logger.addHandler(handler)
    app.logger.setLevel(settings["log_level"].upper())
