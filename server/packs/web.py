"""Serving installed content to tablets: blobs, html5 apps, and the catalogue queries.

- ``/files/<sha256>``: a blob of an installed pack, with a strong ETag (the
  hash itself), a one-year immutable cache (the name *is* the content), HEAD
  and HTTP Range (tablets seek in videos). Only blobs that an installed pack
  references are served, and never as something that runs with the box's
  origin: media as media, SVG and text in a script-less sandbox, anything
  else as a download (``passerelle.content.media``).
- ``/apps/<sha256>/<path>``: one file from inside an html5 app's zip, also
  with Range. Every answer carries ``Content-Security-Policy: sandbox
  allow-scripts ...`` so the app runs in an opaque origin even when opened
  directly: it cannot read the learner's cookies, call the API with the
  learner's session, or load anything from outside the box.
- ``/pdf/<sha256>/<page>/<width>.webp``: one page of a PDF, rendered on the
  box and cached (``server/packs/pdfpages.py``), for the kiosk's document viewer.
"""

from __future__ import annotations

import io
import mimetypes
import re
from functools import lru_cache
from xml.etree import ElementTree

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
from passerelle.content import media
from passerelle.server.db import get_db
from passerelle.server.packs import pdfpages
from passerelle.server.packs.library import open_library
from passerelle.server.web.auth import ANYONE, allow
from PIL import Image, UnidentifiedImageError
from werkzeug.exceptions import RequestedRangeNotSatisfiable
from werkzeug.wsgi import FileWrapper

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


# A pack's blob opened on its own (an SVG, a text, anything served as a download): an opaque
# origin that runs no script, submits no form and loads nothing but the box's images.
BLOB_CSP = "; ".join([
    "sandbox",
    "default-src 'none'",
    "img-src 'self' data:",
    "media-src 'self'",
    "style-src 'unsafe-inline'",
    "frame-ancestors 'self'",
    "base-uri 'none'",
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
    # The answer comes from the allow-list, never from the pack's own words: the catalog
    # of a box installed before types were checked may still hold any string.
    how = media.delivery(mime)
    response = send_file(path, mimetype=how.content_type, conditional=True, etag=sha256,
                         max_age=ONE_YEAR, as_attachment=how.attachment,
                         download_name=name or (sha256 if how.attachment else None))
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    if how.sandbox:
        response.headers["Content-Security-Policy"] = BLOB_CSP
    return response


@bp.get("/pdf/<sha256>/<int:page>/<int:width>.webp")
@allow(ANYONE)
def pdf_page(sha256: str, page: int, width: int):
    """Page ``page`` of an installed PDF as an image ``width`` pixels wide (one of a few steps)."""
    if not SHA256.match(sha256) or media.normalise(_referenced(sha256)) != media.PDF:
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
    # A zip member can only be read forwards: Werkzeug's range wrapper skips to the start.
    response = Response(FileWrapper(stream, 256 * 1024), mimetype=mime, direct_passthrough=True)
    response.content_length = size
    response.set_etag(f"{sha256}:{member}")
    response.headers["Content-Security-Policy"] = APP_CSP
    # The app's own files may be fetched by its opaque origin, never with credentials.
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    try:
        # The same conditional and Range rules as /files (send_file): 304, 206, and 416
        # with "Content-Range: bytes */size" for a range that is malformed or unsatisfiable.
        response.make_conditional(request, accept_ranges=True, complete_length=size)
    except RequestedRangeNotSatisfiable:
        stream.close()
        raise
    return response


# An image's blob never changes (its name is its hash): its size is read once.
@lru_cache(maxsize=4096)
def image_size(sha256: str) -> tuple[int, int] | None:
    """(width, height) of an image blob, for the page to keep its place while the image
    loads; None when it cannot be told. Pillow reads only the header of a raster image;
    an SVG gives its width and height, or its viewBox."""
    try:
        with library().open_blob(sha256) as f:
            head = f.read(2 * 1024 * 1024)
    except (lib.ContentError, OSError):
        return None
    if b"<svg" in head[:4096]:
        return _svg_size(head)
    try:
        with Image.open(io.BytesIO(head)) as picture:
            return picture.size
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _svg_size(data: bytes) -> tuple[int, int] | None:
    try:
        for _event, element in ElementTree.iterparse(io.BytesIO(data), events=("start",)):
            attrs = element.attrib
            break
        else:
            return None
    except ElementTree.ParseError:
        return None
    width, height = _svg_length(attrs.get("width")), _svg_length(attrs.get("height"))
    box = (attrs.get("viewBox") or "").replace(",", " ").split()
    if (not width or not height) and len(box) == 4:
        try:
            width, height = float(box[2]), float(box[3])
        except ValueError:
            return None
    return (round(width), round(height)) if width and height else None


def _svg_length(value: str | None) -> float | None:
    found = re.fullmatch(r"\s*([0-9.]+)\s*(px)?\s*", value or "")
    try:
        return float(found.group(1)) if found else None
    except ValueError:
        return None


def init_app(app: Flask) -> None:
    app.extensions["passerelle.library"] = open_library(app.config["HOME"], app.config["SETTINGS"])
    pdfpages.init_app(app)
    app.register_blueprint(bp)
