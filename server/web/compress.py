"""Gzip for text answers: pages, styles, scripts and JSON travel 3-5x smaller on busy Wi-Fi.

Waitress sends bodies as they are, so the app compresses, in an
``after_request`` hook, only when all of these hold:

- the tablet said ``Accept-Encoding: gzip``;
- a 200 answer of a text type (HTML, CSS, JavaScript, JSON, web manifest, SVG)
  of at least 1 KB, not already encoded;
- not a Range request and not a blob or app file (``/files``, ``/apps``):
  those are served by byte ranges (videos seek), and their types are mostly
  compressed already.

Static files (``/static/<hash>/...``) are files on disk: their compressed
form is kept in a small cache keyed by path and ETag, so each is compressed
once per release. A compressed answer says ``Vary: Accept-Encoding`` and its
ETag becomes weak (same content, different bytes), which still matches the
tablet's ``If-None-Match`` for a 304.
"""

from __future__ import annotations

import gzip
from collections import OrderedDict
from threading import Lock

from flask import Flask, Response, request

TYPES = {"text/html", "text/css", "text/javascript", "application/javascript", "application/json",
         "application/manifest+json", "image/svg+xml", "text/plain", "text/vtt"}
MIN_BYTES = 1024
MAX_BYTES = 4 * 1024 * 1024  # larger bodies are sent as they are
SKIP_ENDPOINTS = {"files.blob", "files.app_index", "files.app_member"}
LEVEL = 6

_cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
_cache_lock = Lock()
CACHE_ENTRIES = 64


def _wants_gzip() -> bool:
    accepted = request.headers.get("Accept-Encoding", "")
    return any(part.split(";")[0].strip().lower() == "gzip" and "q=0" not in part.replace(" ", "")
               for part in accepted.split(","))


def _compress_static(response: Response) -> bytes | None:
    etag = response.get_etag()[0]
    key = (request.path, etag or "")
    with _cache_lock:
        if etag and key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    response.direct_passthrough = False  # let get_data() read the file
    body = gzip.compress(response.get_data(), LEVEL, mtime=0)
    if etag:
        with _cache_lock:
            _cache[key] = body
            while len(_cache) > CACHE_ENTRIES:
                _cache.popitem(last=False)
    return body


def compress(response: Response) -> Response:
    if response.mimetype in TYPES:
        response.vary.add("Accept-Encoding")
    if (response.status_code != 200 or response.mimetype not in TYPES
            or request.endpoint in SKIP_ENDPOINTS or request.method not in ("GET", "POST")
            or "Range" in request.headers or "Content-Range" in response.headers
            or "Content-Encoding" in response.headers or not _wants_gzip()):
        return response
    length = response.content_length
    if length is not None and not MIN_BYTES <= length <= MAX_BYTES:
        return response
    if response.direct_passthrough:  # a file from disk (static)
        if length is None:
            return response
        body = _compress_static(response)
    elif response.is_streamed:
        return response
    else:
        data = response.get_data()
        if not MIN_BYTES <= len(data) <= MAX_BYTES:
            return response
        body = gzip.compress(data, LEVEL, mtime=0)
    response.set_data(body)
    response.headers["Content-Encoding"] = "gzip"
    etag, weak = response.get_etag()
    if etag and not weak:
        response.set_etag(etag, weak=True)
    return response


def init_app(app: Flask) -> None:
    app.after_request(compress)
