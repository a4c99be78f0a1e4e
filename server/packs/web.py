"""Serving installed content to tablets: blobs, html5 apps, and the catalogue queries.

- ``/files/<sha256>``: a blob of an installed pack, with its MIME type, a
  strong ETag (the hash itself), a one-year immutable cache (the name *is*
  the content), HEAD and HTTP Range (tablets seek in videos). Only blobs
  that an installed pack references are served.
- ``/apps/<sha256>/<path>``: one file from inside an html5 app's zip, also
  with Range. Every answer carries ``Content-Security-Policy: sandbox
  allow-scripts ...`` so the app runs in an opaque origin even when opened
  directly: it cannot read the learner's cookies, call the API with the
  learner's session, or load anything from outside the box.
- ``/pdf/<sha256>/<page>/<width>.webp``: one page of a PDF, rendered on the
  box and cached (``server/packs/pdfpages.py``), for the kiosk's document viewer.
"""

from __future__ import annotations

import json
import mimetypes
import re

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    make_response,
    render_template,
    request,
    send_file,
)
from flask_babel import gettext
from passerelle import content as lib
from passerelle.server.db import get_db
from passerelle.server.packs import pdfpages
from passerelle.server.packs.library import open_library
from passerelle.server.web.auth import ANYONE, allow

bp = Blueprint("files", __name__)
ONE_YEAR = 365 * 24 * 3600
SHA256 = re.compile(r"^[0-9a-f]{64}$")

# What an html5 app may do inside its sandbox: run scripts and forms, nothing from outside.
APP_CSP = "; ".join([
    "sandbox allow-scripts allow-forms allow-pointer-lock",
    "default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob:",
    "connect-src 'self'",
    "frame-ancestors 'self'",
    "base-uri 'self'",
    "form-action 'none'",
])


def library(app: Flask | None = None) -> lib.Library:
    return (app or current_app).extensions["passerelle.library"]


def _referenced(sha256: str) -> str | None:
    """The MIME type of a blob an installed pack references, else None."""
    row = get_db().execute("SELECT mime FROM content_node_files WHERE sha256 = ? LIMIT 1",
                           [sha256]).fetchone()
    return row[0] if row else None


@bp.route("/files/<sha256>", methods=["GET"])
@bp.route("/files/<sha256>/<path:name>", methods=["GET"])
@allow(ANYONE)
def blob(sha256: str, name: str | None = None):
    if not SHA256.match(sha256):
        abort(404)
    mime = _referenced(sha256)
    path = library().blob_path(sha256)
    if mime is None or not path.is_file():
        abort(404)
    response = send_file(path, mimetype=mime, conditional=True, etag=sha256, max_age=ONE_YEAR,
                         download_name=name)
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    if mime in ("text/html", "image/svg+xml", "application/xhtml+xml"):
        # Markup a pack carries is shown as data, never run with the box's origin.
        response.headers["Content-Security-Policy"] = APP_CSP
    return response


@bp.get("/pdf/<sha256>/<int:page>/<int:width>.webp")
@allow(ANYONE)
def pdf_page(sha256: str, page: int, width: int):
    """Page ``page`` of an installed PDF as an image ``width`` pixels wide (one of a few steps)."""
    if not SHA256.match(sha256) or _referenced(sha256) != "application/pdf":
        abort(404)
    source = library().blob_path(sha256)
    if not source.is_file():
        abort(404)
    try:
        image = pdfpages.renderer(current_app).image(sha256, source, page, width)
    except pdfpages.PageNotFound:
        abort(404)
    except pdfpages.DocumentError as exc:
        current_app.logger.warning("PDF %s page %s not rendered: %s", sha256, page, exc)
        body = render_template("error.html", status=422, message=gettext(
            "This document cannot be shown as pages: it may be damaged."
            " Download it to open it on the tablet."))
        return make_response(body, 422)
    response = send_file(image, mimetype="image/webp", conditional=True,
                         etag=f"{sha256}-{page}-{width}", max_age=ONE_YEAR)
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    return response


def pdf_page_count(sha256: str) -> int:
    """Pages of an installed PDF; pdfpages.DocumentError when it cannot be read."""
    source = library().blob_path(sha256)
    if not source.is_file():
        raise pdfpages.DocumentError("the file is missing")
    return pdfpages.renderer(current_app).page_count(sha256, source)


@bp.get("/apps/<sha256>/")
@allow(ANYONE)
def app_index(sha256: str):
    return app_member(sha256, "index.html")


@bp.get("/apps/<sha256>/<path:member>")
@allow(ANYONE)
def app_member(sha256: str, member: str):
    if not SHA256.match(sha256) or _referenced(sha256) is None:
        abort(404)
    try:
        stream = library().open_member(sha256, member)
    except lib.PackNotFound:
        abort(404)
    size = stream.size
    mime = mimetypes.guess_type(member)[0] or "application/octet-stream"
    etag = f"{sha256}:{member}"
    response = Response(mimetype=mime)
    response.set_etag(etag)
    response.headers["Content-Security-Policy"] = APP_CSP
    # The app's own files may be fetched by its opaque origin, never with credentials.
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    response.headers["Accept-Ranges"] = "bytes"
    if request.if_none_match.contains(etag):
        stream.close()
        response.status_code = 304
        return response
    start, stop = 0, size
    byte_range = request.range.range_for_length(size) if request.range else None
    if request.range and byte_range is None:
        stream.close()
        response.status_code = 416
        response.headers["Content-Range"] = f"bytes */{size}"
        return response
    if byte_range:
        start, stop = byte_range
        response.status_code = 206
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    response.content_length = stop - start
    response.response = _read_range(stream, start, stop)
    return response


def _read_range(stream, start: int, stop: int, chunk: int = 256 * 1024):
    """Bytes [start, stop) of a stream that can only be read forwards (a zip member)."""
    try:
        skipped = 0
        while skipped < start:
            data = stream.read(min(chunk, start - skipped))
            if not data:
                return
            skipped += len(data)
        left = stop - start
        while left > 0:
            data = stream.read(min(chunk, left))
            if not data:
                return
            left -= len(data)
            yield data
    finally:
        stream.close()


# --- Catalogue queries for the kiosk ------------------------------------------------------

def packs(db) -> list[dict]:
    rows = db.execute("SELECT p.id, p.title, p.language, p.node_count,"
                      " (SELECT n.data FROM content_nodes n WHERE n.pack_id = p.id AND n.parent_id IS NULL)"
                      " FROM content_packs p ORDER BY p.title COLLATE NOCASE").fetchall()
    result = []
    for pack_id, title, language, count, root in rows:
        root = json.loads(root) if root else {}
        result.append({"id": pack_id, "title": title, "language": language, "node_count": count,
                       "description": root.get("description", ""), "root": root.get("id"),
                       "thumbnail": file_of(root, "thumbnail")})
    return result


def node(db, pack_id: str, node_id: str) -> dict | None:
    row = db.execute("SELECT n.data, p.language FROM content_nodes n"
                     " JOIN content_packs p ON p.id = n.pack_id"
                     " WHERE n.pack_id = ? AND n.node_id = ?", [pack_id, node_id]).fetchone()
    if row is None:
        return None
    data = json.loads(row[0])
    data["pack_id"] = pack_id
    data.setdefault("language", row[1])  # a node without its own language speaks the pack's
    return data


def resources(db) -> list[dict]:
    """Every installed resource (not topics), in pack order, for the lesson builder."""
    rows = db.execute("SELECT n.pack_id, n.node_id, n.title, n.kind, p.title FROM content_nodes n"
                      " JOIN content_packs p ON p.id = n.pack_id WHERE n.kind != 'topic'"
                      " ORDER BY p.title COLLATE NOCASE, n.position").fetchall()
    keys = ("pack_id", "node_id", "title", "kind", "pack_title")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def same_as(db, pack_id: str, found: dict) -> str | None:
    """The node this one is a second placement of (a Kolibri resource under two topics), if installed:
    pages send learners there, so that both placements share one progress."""
    primary = found.get("same_as")
    if isinstance(primary, str) and primary != found.get("id") and node(db, pack_id, primary) is not None:
        return primary
    return None


def children(db, pack_id: str, node_id: str) -> list[dict]:
    rows = db.execute("SELECT data FROM content_nodes WHERE pack_id = ? AND parent_id = ?"
                      " ORDER BY sort_order, position", [pack_id, node_id]).fetchall()
    return [json.loads(r[0]) for r in rows]


def ancestors(db, pack_id: str, found: dict) -> list[dict]:
    trail, parent = [], found.get("parent")
    while parent:
        above = node(db, pack_id, parent)
        if above is None:
            break
        trail.append(above)
        parent = above.get("parent")
    return list(reversed(trail))


def file_of(data: dict, role: str, lang: str | None = None) -> dict | None:
    files = [f for f in data.get("files", []) if f.get("role") == role]
    if lang:
        files = [f for f in files if f.get("lang") == lang] or files
    return files[0] if files else None


def files_of(data: dict, role: str) -> list[dict]:
    return [f for f in data.get("files", []) if f.get("role") == role]


def main_file(data: dict) -> dict | None:
    return file_of(data, "main")


def init_app(app: Flask) -> None:
    app.extensions["passerelle.library"] = open_library(app.config["HOME"], app.config["SETTINGS"])
    pdfpages.init_app(app)
    app.register_blueprint(bp)
