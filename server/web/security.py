"""Security headers on every response.

The Content-Security-Policy allows only the box itself: a learner's page can
never load a script, font, image or frame from anywhere else, so nothing
leaks to the outside and nothing outside can be injected. A view that needs
a different policy (the sandboxed html5 apps) sets its own header first and
this hook leaves it alone.

Redirects named by the request (``?next=``) go through :func:`safe_next`: only
a path on this box, read the way a browser reads it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import Flask, Response, abort, current_app, request
from passerelle.server.errors import InsufficientStorage
from passerelle.server.i18n import lazy_text as _l
from werkzeug.exceptions import HTTPException

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "media-src 'self' blob:",
    "font-src 'self'",
    "connect-src 'self'",
    "frame-src 'self'",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'self'",
])

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "SAMEORIGIN",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


# Browsers drop tabs and newlines anywhere in a URL, and leading and trailing C0 controls
# and spaces (WHATWG URL standard); they also read a backslash as a slash.
_DROPPED = re.compile(r"[\t\n\r]")
_EDGES = "".join(map(chr, range(0x21)))
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def safe_next(target: str | None, default: str = "/") -> str:
    r"""Where to go after a sign-in or a language choice: a path on this box, else ``default``.

    The target is first read as a browser would read it, so that what is checked is what
    the browser follows: ``/\t/host``, ``/\host`` and `` //host`` are all ``//host`` to a
    browser, another host. Only a path starting with exactly one ``/`` is kept.
    """
    if not target:
        return default
    cleaned = _DROPPED.sub("", target).strip(_EDGES).replace("\\", "/")
    if not cleaned.startswith("/") or cleaned.startswith("//") or _CONTROLS.search(cleaned):
        return default
    parts = urlsplit(cleaned)
    if parts.scheme or parts.netloc:
        return default
    return cleaned


def add_headers(response: Response) -> Response:
    # One pass over the headers a view set, instead of a search per header
    # (Headers.setdefault): these run on every answer.
    present = {name.lower() for name in response.headers.keys()}
    for name, value in HEADERS.items():
        if name.lower() not in present:
            response.headers.add(name, value)
    if response.mimetype == "application/json":
        # API answers carry learners' data: never keep them in a shared cache.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


MiB = 1024 * 1024
# Set by the Waitress gate (server/web/bodygate.py) on a request whose body it refused to
# read: the HTTP status to answer, 413 (too large for this request) or 507 (no room on disk).
BODY_REFUSED = "passerelle.body_refused"


def body_allowance(app: Flask, method: str, path: str, cookie: str | None) -> tuple[int, bool]:
    """The largest body a request may send, from its request line and cookie alone.

    Returns (limit in bytes, whether it is an upload route's larger limit). Every
    route takes ``max_request_mb``; a route marked with :func:`body_limit` takes
    its own, larger setting only for a signed-in staff member whose role the
    route allows (a coordinator for content packs). Waitress' gate asks this as
    soon as the headers are parsed, before any byte of the body is read, in its
    event loop: the route is found in Flask's URL map, and only for an upload
    route is the session looked up (``auth.session_user``: one indexed read, no
    write). The view checks the person again, as for any request, before it
    reads the body.
    """
    return _allowance(app, _view_for(app, method, path), cookie)


def _allowance(app: Flask, view, cookie: str | None) -> tuple[int, bool]:
    from passerelle.server.people import accounts
    from passerelle.server.web import auth

    settings = app.config["SETTINGS"]
    default = settings["max_request_mb"] * MiB
    setting = getattr(view, "body_limit_setting", None)
    if not setting:
        return default, False
    roles = getattr(view, "allowed", frozenset()) & set(accounts.STAFF)
    who = auth.session_user(app, cookie) if roles else None
    if who is None or who["role"] not in roles:
        return default, False
    return max(default, settings[setting] * MiB), True


def _view_for(app: Flask, method: str, path: str):
    adapter = app.url_map.bind("passerelle", url_scheme="http")
    try:
        endpoint, _args = adapter.match("/" + path.lstrip("/"), method)
    except HTTPException:  # not found, another method, a redirect: no larger limit
        return None
    return app.view_functions.get(endpoint)


def refuse_large_bodies() -> None:
    """Refuse an oversized body from its Content-Length, before any view reads it.

    Under Waitress the gate has already refused it unread and says so in the
    environ; this answers in the app's own shape (JSON for the API, a page
    otherwise). Without the gate (the test client, another server), the same
    limits apply here: Flask's MAX_CONTENT_LENGTH only acts when a view reads
    the body.
    """
    refused = request.environ.get(BODY_REFUSED)
    if refused == 507:
        raise InsufficientStorage(_l("There is not enough free space on the box for what you sent."
                                     " Please tell the person in charge of the space."))
    if refused:
        abort(413)
    length = request.content_length
    if not length:  # no body (Waitress gives a chunked body its length once read)
        return
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    limit, _upload = _allowance(current_app, view, request.headers.get("Cookie"))
    request.max_content_length = limit
    if length > limit:
        abort(413)


def body_limit(setting: str):
    """Give a view the request-size limit of another setting (e.g. pack uploads), for the
    staff its access rule allows (see :func:`body_allowance`)."""

    def decorate(view):
        view.body_limit_setting = setting
        return view

    return decorate


def init_app(app: Flask) -> None:
    app.before_request(refuse_large_bodies)
    app.after_request(add_headers)
