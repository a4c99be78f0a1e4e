"""Errors: the domain exceptions of the server, and the one JSON error shape.

Every API error, whatever raised it, leaves through :func:`api_error` as::

    {"error": {"code": "not_found", "message": "…", "details": {…}}}

with the matching HTTP status. ``PasserelleError`` subclasses carry their own
``code``, HTTP ``status`` and CLI ``exit_code`` so that one exception reads
right at both edges: the API and the command line.

Messages and ``details`` values may be lazy translations (``lazy_gettext``,
see ``server/i18n.py``): ``str()`` reads them in the request's language on
the API and the kiosk, in English on the command line. ``code`` never
changes with the language: clients decide on it, people read the message.
"""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Any

from flask import Flask, Response, jsonify, make_response, render_template, request
from flask.json.provider import DefaultJSONProvider
from passerelle import content
from passerelle.server.i18n import lazy_text as _l
from werkzeug.exceptions import HTTPException


class ExitStatus(IntEnum):
    """Named exit codes of the ``passerelle`` command (documented in ``passerelle --help``)."""

    SUCCESS = 0
    ERROR = 1
    USAGE = 2
    CONFIG = 3
    DATABASE = 4
    NOT_FOUND = 5
    CONFLICT = 6
    INVALID_INPUT = 7
    INTERRUPTED = 130


class PasserelleError(Exception):
    code = "error"
    status = 500
    exit_code = ExitStatus.ERROR

    def __init__(self, message: str, *, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(PasserelleError):
    code = "config_error"
    exit_code = ExitStatus.CONFIG


class DatabaseProblem(PasserelleError):
    code = "database_error"
    status = 503
    exit_code = ExitStatus.DATABASE


class NotFound(PasserelleError):
    code = "not_found"
    status = 404
    exit_code = ExitStatus.NOT_FOUND


class InvalidInput(PasserelleError):
    code = "invalid"
    status = 400
    exit_code = ExitStatus.INVALID_INPUT


class Forbidden(PasserelleError):
    """Signed in, but this person may not do this to this record."""

    code = "forbidden"
    status = 403
    exit_code = ExitStatus.ERROR


class Conflict(PasserelleError):
    """The request clashes with the box's state (a version conflict, a busy library...)."""

    code = "conflict"
    status = 409
    exit_code = ExitStatus.CONFLICT


class InsufficientStorage(PasserelleError):
    code = "insufficient_storage"
    status = 507
    exit_code = ExitStatus.ERROR


# HTTP statuses mapped to stable, documented error codes.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    500: "internal_error",
    507: "insufficient_storage",
    503: "unavailable",
}


def translate(exc: BaseException) -> PasserelleError | None:
    """A library's exception as the server's error, else None: the one translation.

    The command line (one stderr line, a named exit code), the API (the JSON error
    shape) and the kiosk (a friendly page) all go through it, so a library error
    reads the same at every edge.
    """
    if isinstance(exc, PasserelleError):
        return exc
    if isinstance(exc, content.InvalidPack):  # includes UnsafePack
        return InvalidInput(exc.message, details={"problems": [p.as_dict() for p in exc.problems]})
    if isinstance(exc, (content.BlobMismatch, content.SignatureError)):
        return InvalidInput(exc.message)
    if isinstance(exc, content.PackNotFound):
        return NotFound(exc.message)
    if isinstance(exc, (content.VersionConflict, content.LibraryBusy)):
        return Conflict(exc.message)
    if isinstance(exc, content.NotEnoughSpace):
        return InsufficientStorage(exc.message, details={"needed": exc.needed, "free": exc.free})
    if isinstance(exc, content.ExpressionError):
        return InvalidInput(str(exc))
    if isinstance(exc, content.InvalidZim):
        return InvalidInput(exc.message)
    if isinstance(exc, content.ContentError):  # ZimUnsupported included: its one line says why
        return PasserelleError(exc.message)
    return None


def api_error(status: int, message: str, code: str | None = None,
              details: dict[str, Any] | None = None) -> Response:
    """The only function that builds an API error response."""
    body: dict[str, Any] = {"code": code or _HTTP_CODES.get(status, "error"),
                            "message": str(message)}
    if details:
        # Messages may be lazy translations: render them in the request's language.
        body["details"] = json.loads(json.dumps(details, default=str))
    response = jsonify({"error": body})
    response.status_code = status
    return response


def wants_json() -> bool:
    return request.path.startswith("/api/")


def _http_message(exc: HTTPException) -> str:
    # Werkzeug's descriptions are written for HTML pages ("<p>…"); keep the words.
    return (exc.description or exc.name or "").replace("<p>", "").replace("</p>", "").strip()


class _JSONProvider(DefaultJSONProvider):
    """Flask's JSON, where a body nested too deeply to decode is a bad request like any other
    undecodable body (``get_json`` turns ValueError into 400, or None when silent), not a 500."""

    def loads(self, s, **kwargs):
        try:
            return super().loads(s, **kwargs)
        except RecursionError:
            raise ValueError("the JSON is nested too deeply") from None


def init_app(app: Flask) -> None:
    provider = _JSONProvider(app)
    provider.sort_keys = app.json.sort_keys
    app.json = provider

    @app.errorhandler(HTTPException)
    def handle_http(exc: HTTPException):
        status = exc.code or 500
        if wants_json():
            response = api_error(status, _http_message(exc))
        else:
            response = html_error(status)
        if status == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        if status == 416 and getattr(exc, "length", None) is not None:
            # RFC 9110: an unsatisfiable range is answered with the current length.
            response.headers["Content-Range"] = f"{exc.units} */{exc.length}"
        return response

    @app.errorhandler(PasserelleError)
    def handle_domain(exc: PasserelleError):
        if wants_json():
            return api_error(exc.status, exc.message, exc.code, exc.details)
        return html_error(exc.status, exc.message if exc.status == 507 else None)

    @app.errorhandler(content.ContentError)
    def handle_library(exc: content.ContentError):
        return handle_domain(translate(exc))

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception):
        from passerelle.server import disk

        if disk.is_full(exc):
            # Not a bug: the box ran out of space. Said so, in words a person can act on.
            app.logger.error("disk full on %s %s: %s", request.method, request.path, exc)
            if wants_json():
                return api_error(507, DISK_FULL, "insufficient_storage")
            return html_error(507)
        # The traceback goes to the log, never to the learner or the API client.
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        if wants_json():
            return api_error(500, _l("Something went wrong on the box; the error was logged."))
        return html_error(500)


DISK_FULL = _l("The box's storage is full, so this could not be saved. Nothing you saved before"
               " is lost. Please tell the person in charge of the space.")


def html_error(status: int, message: str | None = None) -> Response:
    """A friendly page in the learner's language (the kiosk's base template)."""
    try:
        body = render_template("error.html", status=status, message=message)
    except Exception:  # noqa: BLE001 - never let the error page itself fail
        body = f"<!doctype html><title>{status}</title><h1>{status}</h1>"
    return make_response(body, status)
