"""The application factory: the only way to build Passerelle's Flask app."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from logging.handlers import RotatingFileHandler
from typing import Any

from flask import Flask
from passerelle import kiosk
from passerelle.server import db, disk, errors, i18n
from passerelle.server.api import tablet as api
from passerelle.server.errors import ConfigError
from passerelle.server.home import Home
from passerelle.server.learning import progress
from passerelle.server.packs import imports as content_admin
from passerelle.server.packs import web as content_web
from passerelle.server.packs import zim
from passerelle.server.search import service as search
from passerelle.server.settings import Settings, SettingsError, resolve, resolve_home
from passerelle.server.sync import http as sync_http
from passerelle.server.sync import schedule as sync_schedule
from passerelle.server.web import auth, captive, compress, security

# The subsystems, in the order their init_app must run. The order matters where one
# needs what another set up; each line says what comes before it and why.
SUBSYSTEMS = (
    db,              # the connection pool every later hook and view borrows from
    errors,          # error handlers first, so a failure in any later hook reads right
    security,        # size limits before any view reads a body; headers on every answer
    compress,        # after security: compresses the final answer, headers included
    auth,            # who is asking: needs db; every view's @allow reads it
    captive,         # phones' connectivity probes: answered before auth's access check
    i18n,            # the request's language: needs auth (a learner's own language)
    progress,        # the one writer of learning events, used by the API and the pages
    api,             # the tablets' JSON API
    content_web,     # the content library (app.extensions), its files and PDF pages
    content_admin,   # imports from the browser: needs the library
    zim,             # Kiwix ZIM files, read in place where they are
    search,          # the index listens to the library: after content_web
    sync_http,       # device endpoints
    sync_schedule,   # the background sync timer
    kiosk,           # the pages last: they use every service above
)


def create_app(config: Settings | Mapping[str, Any] | None = None) -> Flask:
    """Build the app for one data home.

    ``config`` is either resolved :class:`Settings` (what the CLI passes) or a
    mapping, as tests pass it: ``home`` picks the data home, lower-case keys
    are settings (checked like a command-line flag), upper-case keys go to
    Flask's config as they are (``TESTING``...).
    """
    settings, flask_overrides = _settings_from(config)
    home = Home(settings.home).ensure()
    target = db.target(home, settings)
    if target != str(home.db_path):
        # A hub on PostgreSQL: its records there, its content library in the home's SQLite file.
        from passerelle.server.migrations import all_sets

        db.prepare(home.db_path, settings["db_busy_timeout_ms"], sets=all_sets()[1:])
    info = db.prepare(target, settings["db_busy_timeout_ms"])

    # instance_path is given so Flask never searches the (namespace) package for one.
    app = Flask(__name__, instance_path=str(home.root), static_folder=None, template_folder=None)
    app.config.update(
        SECRET_KEY=home.secret_key(),
        SETTINGS=settings,
        HOME=home,
        DB_PATH=target,  # a SQLite file, or a postgresql:// URL
        REPORTS_DB_PATH=db.reports_target(home, settings),  # a read replica, or DB_PATH
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

    for subsystem in SUBSYSTEMS:
        subsystem.init_app(app)
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
    # Routine lines stop before the disk's last space, kept for learners' progress.
    handler.addFilter(disk.SkipWhenLow(home.root, settings))
    app.logger.addHandler(handler)
    app.logger.setLevel(settings["log_level"].upper())
