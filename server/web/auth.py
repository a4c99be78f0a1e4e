"""Who is asking, and may they: sessions, access rules, CSRF, first-start setup.

- **Deny by default.** Every view declares who may call it with
  :func:`allow`; a view without a declaration answers 403 and logs an error,
  so a route added in a hurry fails closed. A test walks the URL map and the
  permission matrix.
- **Sessions live on the server**: the cookie holds only a random token
  whose SHA-256 names a row of ``signins`` (see ``accounts``). Signing out,
  a new password, PIN or pictures, a new role and removing the person end
  it, for every copy of the cookie too. Sessions expire on the server's
  clock: after ``session_lifetime_minutes`` from sign-in, and for learners
  after ``idle_signout_minutes`` without a request (shared tablets).
- **CSRF**: Flask-WTF's ``CSRFProtect`` checks a token on every form and
  every JSON write (``X-CSRFToken`` header); it is a well-kept
  implementation of the synchroniser-token pattern, tied to the session.
- **First start**: until an organisation and a coordinator exist, every page
  leads to the setup page. No default account or password exists, ever.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import wraps

from flask import Flask, abort, current_app, g, redirect, request, session, url_for
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from passerelle.server import db as dbmod
from passerelle.server.db import get_db
from passerelle.server.errors import api_error, wants_json
from passerelle.server.people import accounts
from werkzeug.wrappers import Request

ANYONE = "anyone"
SIGNED_IN = "signed-in"
# Another box, not a person: each request signed by a paired device key (server/sync/http.py).
DEVICE = "device"
LEVELS = {ANYONE, SIGNED_IN, DEVICE, *accounts.ROLES}
# Endpoints reachable before the box is set up.
SETUP_OPEN = {"kiosk.setup", "kiosk.static_file", "kiosk.choose_language", "api.health",
              "api.openapi", "kiosk.setup_join", "kiosk.setup_joining", "kiosk.setup_join_retry"}

csrf = CSRFProtect()


def allow(*who: str) -> Callable:
    """Declare who may call a view: ANYONE, SIGNED_IN, or roles ('learner', 'facilitator'...)."""
    unknown = set(who) - LEVELS
    if unknown or not who:
        raise ValueError(f"unknown access levels {unknown}")

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            return view(*args, **kwargs)

        wrapper.allowed = frozenset(who)
        return wrapper

    return decorate


def current_user() -> dict | None:
    return g.get("user")


def session_lifetime_seconds() -> float:
    return current_app.config["SETTINGS"]["session_lifetime_minutes"] * 60


def sign_in(user: dict) -> None:
    """Start a fresh session: a new token, and the one this browser held before is ended."""
    language = session.get("language")
    previous = session.get("sid")
    token = accounts.start_signin(get_db(), user, session_lifetime_seconds(),
                                  replaces=previous if isinstance(previous, str) else None)
    session.clear()
    session.permanent = True
    session.update(sid=token, seen_at=int(time.time()))
    if user.get("language"):
        session["language"] = user["language"]
    elif language:
        session["language"] = language
    g.user = user


def has_session_cookie() -> bool:
    """Whether the request carries a signed-in browser's cookie (valid or not): for a clearer
    refusal where only other boxes are expected, never for access."""
    return isinstance(session.get("sid"), str)


def session_user(app: Flask, cookie: str | None) -> dict | None:
    """The signed-in person a ``Cookie`` header names, judged outside any request.

    For decisions taken before the app runs (how large a body Waitress may read,
    ``security.body_allowance``): the cookie is opened by the app's own session
    interface (its signature checked with the box's key), then its session is
    looked up as for a request, with a pooled connection and reading only, so a
    signed-out, expired or revoked session counts for nothing. A learner's idle
    time is not judged here: no learner is given a larger body.
    """
    if not cookie:
        return None
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_NAME": "passerelle",
               "SERVER_PORT": "80", "wsgi.url_scheme": "http", "HTTP_COOKIE": cookie}
    opened = app.session_interface.open_session(app, Request(environ))
    token = opened.get("sid") if opened is not None else None
    if not isinstance(token, str):
        return None
    lifetime = app.config["SETTINGS"]["session_lifetime_minutes"] * 60
    pool = dbmod.pool(app)
    db = pool.acquire()
    try:
        return accounts.session_holder(db, token, lifetime)
    finally:
        pool.release(db)


def sign_out() -> None:
    if has_session_cookie():
        accounts.end_signin(get_db(), session["sid"])
    session.clear()
    g.user = None


def _load_user() -> None:
    g.user = None
    if not has_session_cookie():
        return
    token = session["sid"]
    db = get_db()
    now = time.time()
    user = accounts.signed_in_user(db, token, session_lifetime_seconds(), now)
    idle_limit = current_app.config["SETTINGS"]["idle_signout_minutes"] * 60
    idle = now - session.get("seen_at", 0) > idle_limit
    if user is not None and user["role"] == "learner" and idle:
        accounts.end_signin(db, token)  # a shared tablet left alone: the next person starts afresh
        user = None
    if user is None:
        session.clear()
        return
    if now - session.get("seen_at", 0) > 30:  # don't rewrite the cookie on every request
        session["seen_at"] = int(now)
    g.user = user


def _needs_setup() -> bool:
    if current_app.config.get("SET_UP"):
        return False
    needed = accounts.needs_setup(get_db())
    if not needed:
        current_app.config["SET_UP"] = True  # it never goes back: cache the answer
    return needed


def enforce() -> object | None:
    """Runs before every view: setup gate, session, then the view's declared access."""
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    if view is None:
        return None  # 404 or 405: the routing error answers
    allowed = getattr(view, "allowed", None)
    if allowed is None:
        current_app.logger.error("view %s declares no access rule; refused", request.endpoint)
        abort(403)
    if request.endpoint not in SETUP_OPEN and _needs_setup():
        if wants_json():
            return api_error(503, "this box is not set up yet", "setup_required")
        return redirect(url_for("kiosk.setup"))
    if DEVICE in allowed:
        # A session cookie counts for nothing here; with no device check registered, refused.
        check = current_app.extensions.get("passerelle.device_auth")
        return check() if check else abort(401)
    _load_user()
    if ANYONE in allowed:
        return None
    user = current_user()
    if user is None:
        if wants_json():
            abort(401)
        return redirect(url_for("kiosk.signin", next=request.full_path.rstrip("?")))
    if SIGNED_IN in allowed or user["role"] in allowed:
        return None
    abort(403)


class _CompactJSON:
    """The session cookie's serializer: plain compact JSON.

    Flask's default (``TaggedJSONSerializer``) walks every value in Python to tag tuples,
    bytes, dates and markup; the session holds none of them (a token, a time, a language,
    the CSRF token, the exercise runs, flashed messages as lists), and that walk was most
    of the cost of the cookie on an answer's POST: about ten times a plain ``json.dumps``.
    A value JSON cannot hold fails loudly here instead of being tagged.
    """

    _tagged = TaggedJSONSerializer()

    def dumps(self, value) -> str:
        return json.dumps(value, separators=(",", ":"))

    def loads(self, text):
        # A cookie written by the tagged serializer (before an upgrade) has tagged values
        # such as {" t": [...]} for a tuple: it is read the way it was written. In JSON text
        # an object whose key starts with a space shows as `{" `; inside a string the quote
        # would be escaped, so no typed answer can look like it.
        if '{" ' in text:
            return self._tagged.loads(text)
        return json.loads(text)


class CompactSessionInterface(SecureCookieSessionInterface):
    serializer = _CompactJSON()


def init_app(app: Flask) -> None:
    app.session_interface = CompactSessionInterface()
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # the session's own expiry bounds it
    app.config.setdefault("WTF_CSRF_SSL_STRICT", False)  # boxes serve plain HTTP on the LAN
    csrf.init_app(app)
    app.before_request(enforce)

    @app.errorhandler(CSRFError)
    def csrf_failed(exc: CSRFError):
        # The token is checked before the session: a request that no session could make
        # (signed out, expired, no cookie) hears "sign in first", as it would without CSRF.
        view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
        allowed = getattr(view, "allowed", frozenset())
        if allowed and not allowed & {ANYONE, DEVICE}:
            _load_user()
            if current_user() is None:
                if wants_json():
                    return api_error(401, "sign in first", "unauthorized")
                return redirect(url_for("kiosk.signin"))
        if wants_json():
            return api_error(400, "the form expired or did not come from this box; reload the page",
                             "csrf_failed")
        from passerelle.server.errors import html_error

        return html_error(400)

    @app.context_processor
    def user_context():
        return {"user": current_user()}


def require(condition: bool) -> None:
    """Object-level check inside a view (a facilitator's own class, a learner's own data)."""
    if not condition:
        abort(403)

