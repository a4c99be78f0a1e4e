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


def refuse_large_bodies() -> None:
    """Refuse an oversized body from its Content-Length, before any view reads it.

    Flask's MAX_CONTENT_LENGTH only acts when a view reads the body; this answers
    413 on every route, and Waitress' max_request_body_size bounds chunked bodies.
    """
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    setting = getattr(view, "body_limit_setting", None)
    if setting:  # an upload route with its own, larger limit
        limit = current_app.config["SETTINGS"][setting] * 1024 * 1024
        request.max_content_length = limit
    if limit and request.content_length and request.content_length > limit:
        abort(413)


def body_limit(setting: str):
    """Give a view the request-size limit of another setting (e.g. pack uploads)."""

    def decorate(view):
        view.body_limit_setting = setting
        return view

    return decorate


def init_app(app: Flask) -> None:
    app.before_request(refuse_large_bodies)
    app.after_request(add_headers)
