"""Serving Kiwix ZIM files to tablets, and their part of learners' search.

- ``/zim/<uuid>/<path>``: one entry of a ZIM, read in place by libzim. The
  UUID is the ZIM release's own, so a URL never changes meaning: every answer
  is cached for a year (immutable) with an ETag, and Range works (videos in
  TED or zimit captures seek). A redirect entry answers 302 to its target, so
  the article's relative links resolve against the path that holds it.
- A ZIM's HTML is third-party and often carries scripts. Every answer carries
  the html5 apps' ``APP_CSP`` (``sandbox``: an opaque origin, so no cookies,
  no storage, no API call with the learner's session, nothing from outside
  the box), also when the URL is opened directly rather than in the kiosk's
  sandboxed frame.
- Hidden ZIMs are not served to learners or guests; staff may still preview
  them. A ZIM whose disk is unplugged answers 404 until it returns.
- Search: :func:`search_all` asks each visible ZIM's own index (Xapian full
  text), else the box's FTS5 index of its articles (``server/search/zim_index.py``),
  else its title index, and the kiosk merges the hits among the lessons'. Each
  hit carries a snippet of the article's text, escaped, like a lesson's.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    request,
    url_for,
)
from passerelle import search_index as si
from passerelle.content import zim as zimlib
from passerelle.content.library import release_memory
from passerelle.server import disk
from passerelle.server.db import connect, target
from passerelle.server.errors import InvalidInput, NotFound
from passerelle.server.packs.web import APP_CSP, ONE_YEAR
from passerelle.server.people import accounts
from passerelle.server.web.auth import ANYONE, allow, current_user

bp = Blueprint("zim", __name__)
CHUNK = 256 * 1024
STAFF = accounts.STAFF
PER_ZIM = 5            # hits asked from each ZIM for the merged search page


def zims(app: Flask | None = None) -> zimlib.ZimLibrary:
    return (app or current_app).extensions["passerelle.zims"]


def indexer(app: Flask | None = None):
    """The box's full-text indexing of ZIMs without an index of their own."""
    return (app or current_app).extensions["passerelle.zim_index"]


def library_for(home, busy_timeout_ms: int) -> zimlib.ZimLibrary:
    """The ZIM catalogue of a data home (the server and the CLI build it the same way)."""
    return zimlib.ZimLibrary(lambda: connect(home.db_path, busy_timeout_ms), home.storage)


def indexer_for(home, settings, library: zimlib.ZimLibrary | None = None, **options):
    """The ZIM indexer of a data home (server and CLI alike); it waits while the disk is
    below its reserve, as the lessons' index does. ``options`` go to ``ZimIndexer``."""
    from passerelle.server.search.zim_index import ZimIndexer

    library = library or library_for(home, settings["db_busy_timeout_ms"])
    # The ZIM catalogue is the content library's, always in the home's SQLite file; the jobs
    # are the server's, with the other records (on a hub, possibly PostgreSQL).
    records_at = target(home, settings)
    return ZimIndexer(library, lambda: connect(records_at, settings["db_busy_timeout_ms"]),
                      home.index / "zim",
                      may_write=lambda: disk.optional_writes_allowed(home.root, settings),
                      **options)


def _is_staff() -> bool:
    user = current_user()
    return bool(user and user["role"] in STAFF)


def visible(uuid: str) -> zimlib.ZimInfo:
    """A ZIM this person may read (hidden ones only for staff), else 404."""
    try:
        info = zims().get(uuid)
    except zimlib.ZimNotFound:
        abort(404)
    if info.hidden and not _is_staff():
        abort(404)
    return info


def _immutable(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = APP_CSP
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    # Fetched by the article's opaque origin (its images, styles): public bytes, no credentials.
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


@bp.get("/zim/<uuid>/")
@allow(ANYONE)
def main_page(uuid: str):
    info = visible(uuid)
    if not info.main_path:
        abort(404)
    return _immutable(redirect(url_for("zim.entry", uuid=uuid, path=info.main_path)))


@bp.get("/zim/<uuid>/<path:path>")
@allow(ANYONE)
def entry(uuid: str, path: str):
    visible(uuid)
    etag = hashlib.sha1(f"{uuid}\0{path}\0{_HELPER_TAG}".encode(), usedforsecurity=False).hexdigest()
    if request.if_none_match.contains(etag):
        response = _immutable(Response(status=304))
        response.set_etag(etag)
        return response
    try:
        found = zims().read(uuid, path)
    except zimlib.ZimNotFound:
        abort(404)
    except zimlib.ZimUnsupported:
        abort(404)
    except zimlib.InvalidZim as exc:
        current_app.logger.warning("ZIM %s: %s", uuid, exc)
        abort(404)
    if isinstance(found, str):
        return _immutable(redirect(url_for("zim.entry", uuid=uuid, path=found)))
    _give_back_memory()   # clusters decompressed for earlier articles
    response = _immutable(Response(mimetype=found.mimetype or "application/octet-stream"))
    response.set_etag(etag)
    response.headers["Accept-Ranges"] = "bytes"
    content = found.content
    if (found.mimetype or "").startswith("text/html") and not request.range:
        content = bytes(content) + _READER_HELPER
    size = len(content)
    start, stop = 0, size
    if request.range:
        byte_range = request.range.range_for_length(size)
        if byte_range is None:
            response.status_code = 416
            response.headers["Content-Range"] = f"bytes */{size}"
            return response
        start, stop = byte_range
        response.status_code = 206
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    response.content_length = stop - start
    if stop - start <= CHUNK:
        response.set_data(bytes(content[start:stop]))
        response.content_length = stop - start
    else:
        response.response = _chunks(content, start, stop)
    return response


# Added at the end of an article's HTML. Its script tells the kiosk's reading page which article
# the frame shows (kiosk/static/zimreader.js makes the address follow, so a reload keeps it);
# its style lets encyclopedia pages made for a desktop fit a phone. Inline: the article's origin
# is opaque (sandbox), and the box's own static files are same-origin only; its policy allows it.
# ES5, for old Android WebViews.
READER_HELPER = """
<style>
html, body { max-width: 100%; }
body { overflow-wrap: break-word; }
img, video { max-width: 100%; height: auto; }
table { display: block; max-width: 100%; overflow-x: auto; }
pre { white-space: pre-wrap; }
</style>
<script>
(function () {
  if (window.parent === window || !window.parent.postMessage) { return; }
  try {
    window.parent.postMessage({ passerelleZim: location.pathname, hash: location.hash,
                                title: document.title }, "*");
  } catch (e) { /* the page around is gone: nothing to tell */ }
})();
</script>
"""
_READER_HELPER = READER_HELPER.encode()
_HELPER_TAG = hashlib.sha1(_READER_HELPER, usedforsecurity=False).hexdigest()[:8]


def _chunks(content: memoryview, start: int, stop: int):
    for offset in range(start, stop, CHUNK):
        yield bytes(content[offset:min(offset + CHUNK, stop)])


@bp.get("/zim-illustration/<uuid>.png")
@allow(ANYONE)
def illustration(uuid: str):
    visible(uuid)
    data = zims().illustration(uuid)
    if data is None:
        abort(404)
    response = Response(data, mimetype="image/png")
    response.set_etag(uuid)
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    return response.make_conditional(request)


# --- search ----------------------------------------------------------------------------------

@dataclass
class SourceResults:
    uuid: str
    title: str
    lang: str
    total: int
    mode: str
    hits: list[zimlib.ZimHit]


def readable(include_hidden: bool = False) -> list[zimlib.ZimInfo]:
    """The ZIMs a learner may open now: not hidden, disk connected, libzim present."""
    if not zimlib.AVAILABLE:
        return []
    return [z for z in zims().list(include_hidden=include_hidden) if z.available]


def search_all(query: str, *, only: str | None = None, start: int = 0,
               count: int = PER_ZIM, snippets: bool = True) -> list[SourceResults]:
    """Each readable ZIM's own search for ``query`` (one ZIM with ``only``); never raises
    for a ZIM that cannot answer (an unplugged disk between listing and searching).

    ``snippets=False``: hits found by a ZIM's Xapian index come without their snippet (the
    search page asks for them afterwards: :func:`snippets_of`)."""
    found = []
    if not query.strip():
        return found
    for info in readable():
        if only and info.uuid != only:
            continue
        try:
            results = _search_one(info, query, start, count, snippets)
        except (zimlib.ZimNotFound, zimlib.InvalidZim, si.SearchError, RuntimeError) as exc:
            current_app.logger.warning("search in ZIM %s failed: %s", info.uuid, exc)
            continue
        if results.total or results.hits:
            found.append(SourceResults(info.uuid, info.title, info.lang, results.total,
                                       results.mode, results.hits))
    return found


def _search_one(info: zimlib.ZimInfo, query: str, start: int, count: int,
                snippets: bool = True) -> zimlib.ZimResults:
    """The ZIM's Xapian index; else the box's FTS5 index of it (snippets included);
    else its title index. Hits found by libzim get a snippet of their article here, unless
    ``snippets`` is false."""
    if not info.has_fulltext:
        try:
            ours = indexer().search(info.uuid, query, start, count)
        except si.QuerySyntaxError:
            ours = None
        if ours is not None and (ours[0] or not info.has_title_index):
            return zimlib.ZimResults(info.uuid, ours[0], "index", ours[1])
    results = zims().search(info.uuid, query, start=start, count=count)
    if snippets:
        for hit in results.hits:
            hit.snippet = _snippet(info, hit.path, query)
        _give_back_memory()
    return results


def _snippet(info: zimlib.ZimInfo, path: str, query: str) -> str:
    # A Xapian hit's snippet is made from its article, which libzim decompresses (its whole
    # cluster up to the entry): ~5 ms of CPU a hit, ten times the search itself.
    text = si.extract_html_text(zims().article_html(info.uuid, path))
    return si.snippet(text, query, info.lang) if text else ""


MAX_SNIPPETS = 20  # the most hits a search page shows of one ZIM


def snippets_of(uuid: str, query: str, paths: list[str]) -> dict[str, str]:
    """The snippets of a readable ZIM's articles for ``query`` (what the search page fills in
    after showing its hits); an article that cannot be read has none."""
    info = next((z for z in readable() if z.uuid == uuid), None)
    if info is None:
        raise NotFound("no such encyclopedia on this box")
    found = {}
    for path in dict.fromkeys(paths[:MAX_SNIPPETS]):
        try:
            found[path] = _snippet(info, path, query)
        except RuntimeError:  # libzim's error for a damaged cluster: no snippet for that one
            found[path] = ""
    _give_back_memory()
    return found


_TRIM_EVERY = 5.0   # seconds
_trimmed_at = [0.0]


def _give_back_memory() -> None:
    # Xapian and libzim's decompression allocate and free tens of MB in C (a search, a burst
    # of articles); glibc keeps the freed pages in each serving thread's arena, so a box that
    # served a busy hour would stay that much larger. Handing them back costs a few ms: at most once
    # every few seconds, whichever thread searches.
    now = time.monotonic()
    if now - _trimmed_at[0] >= _TRIM_EVERY:
        _trimmed_at[0] = now
        release_memory(collect=False)


def merge(lesson_hits: list, sources: list[SourceResults]) -> list[tuple[str, object]]:
    """Lessons and ZIM articles in one list: the box's own lessons lead, then one article per
    ZIM in turn. Scores of different engines cannot be compared, so the order is by rank
    within each source: "mot de passe" shows the lesson first and the encyclopedia next."""
    queues = [[("lesson", h) for h in lesson_hits]] + [
        [("zim", (s, h)) for h in s.hits] for s in sources]
    merged = []
    while any(queues):
        for queue in queues:
            if queue:
                merged.append(queue.pop(0))
    return merged


def _query() -> str:
    query = request.args.get("q", "")
    if len(query) > 200:
        raise InvalidInput("the query is too long (200 characters at most)", details={"q": "too long"})
    return query


@bp.get("/api/v1/zims")
@allow(ANYONE)
def api_list():
    staff = _is_staff()
    found = zims().list(include_hidden=staff) if zimlib.AVAILABLE else []
    keys = ("uuid", "name", "title", "description", "language", "lang", "article_count",
            "size", "has_fulltext", "has_title_index", "available", "main_path")
    listed = []
    for z in found:
        d = z.as_dict()
        item = {k: d[k] for k in keys}
        item["url"] = url_for("zim.main_page", uuid=z.uuid)
        if staff:
            item.update(hidden=z.hidden, path=z.path, copied=z.copied)
        listed.append(item)
    return jsonify({"available": zimlib.AVAILABLE, "reason": zimlib.UNAVAILABLE_REASON or None,
                    "zims": listed})


@bp.get("/api/v1/zims/search")
@allow(ANYONE)
def api_search():
    query = _query()
    only = request.args.get("zim") or None
    sources = search_all(query, only=only, count=10 if only else PER_ZIM)
    return jsonify({"query": query, "sources": [
        {"uuid": s.uuid, "title": s.title, "language": s.lang, "total": s.total, "mode": s.mode,
         "hits": [{"path": h.path, "title": h.title, "snippet": h.snippet,
                   "url": url_for("kiosk.zim_read", uuid=s.uuid, path=h.path)} for h in s.hits]}
        for s in sources]})


@bp.get("/api/v1/zims/<uuid>/snippets")
@allow(ANYONE)
def api_snippets(uuid: str):
    """Snippets of some of a ZIM's articles for a search (``q``, ``path`` repeated)."""
    query = _query()
    return jsonify({"query": query, "snippets": snippets_of(uuid, query,
                                                            request.args.getlist("path"))})


def suggest_titles(prefix: str, limit: int = 8) -> list[str]:
    """Article titles starting like ``prefix``, from each readable ZIM's title index."""
    titles: list[str] = []
    if prefix.strip():
        for info in readable():
            try:
                titles += [h.title for h in zims().suggest(info.uuid, prefix, limit)]
            except (zimlib.ZimNotFound, zimlib.InvalidZim, RuntimeError):
                continue
    return list(dict.fromkeys(titles))[:limit]


# --- ZIM files on USB drives ------------------------------------------------------------------

def find_on_drives(roots, max_depth: int = 4) -> list[dict]:
    """ZIM files on mounted drives (``x.zim``, or the first part ``x.zimaa`` of a split one),
    each described from its header: path, uuid, title, language, size, articles; or the one
    line libzim gives for a damaged one (``problem``). Kolibri's storage folders and hidden
    folders are not walked."""
    found = []
    for root in roots:
        if not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            if len(Path(dirpath).relative_to(root).parts) >= max_depth:
                dirnames[:] = []
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "content"]
            for name in sorted(filenames):
                low = name.lower()
                if name.startswith(".") or not (low.endswith(".zim") or low.endswith(".zimaa")):
                    continue
                path = Path(dirpath) / name
                try:
                    facts = zimlib.inspect(path, full_check=False)
                except zimlib.ContentError as exc:
                    found.append({"path": str(path), "problem": exc.message})
                    continue
                found.append({"path": str(path), "uuid": facts["uuid"], "title": facts["title"],
                              "language": zimlib.kiosk_language(facts["language"]),
                              "size": facts["size"], "article_count": facts["article_count"],
                              "has_fulltext": facts["has_fulltext"]})
    return found


# --- sharing: the file itself, and a Kiwix-compatible OPDS catalogue --------------------------

@bp.get("/zim-file/<uuid>.zim")
@allow(ANYONE)
def download(uuid: str):
    """The whole ZIM, for another box or a Kiwix app: Range makes a dropped copy resumable.
    A split ZIM is sent only as its parts would be joined, which this route does not do."""
    from flask import send_file

    info = visible(uuid)
    if not info.available or info.parts != 1:
        abort(404)
    response = send_file(info.path, mimetype="application/x-zim", conditional=True,
                         etag=f"{uuid}-{info.checksum}", download_name=f"{info.name}.zim")
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    return response


OPDS = "application/atom+xml;profile=opds-catalog"


def _feed(title: str, self_href: str, kind: str):
    from xml.etree import ElementTree as ET

    feed = ET.Element("feed", {"xmlns": "http://www.w3.org/2005/Atom",
                               "xmlns:dc": "http://purl.org/dc/terms/",
                               "xmlns:opds": "https://specs.opds.io/opds-1.2"})
    ET.SubElement(feed, "id").text = f"urn:passerelle:{current_app.config['DEVICE_ID']}:{kind}"
    ET.SubElement(feed, "link", rel="self", href=self_href, type=f"{OPDS};kind={kind}")
    ET.SubElement(feed, "link", rel="start", href=url_for("zim.opds_root"),
                  type=f"{OPDS};kind=navigation")
    ET.SubElement(feed, "title").text = title
    return feed


def _xml(feed, kind: str) -> Response:
    from xml.etree import ElementTree as ET

    body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(feed, encoding="utf-8")
    response = Response(body)
    response.headers["Content-Type"] = f"{OPDS};kind={kind}; charset=utf-8"
    return response


@bp.get("/catalog/v2/root.xml")
@allow(ANYONE)
def opds_root():
    """The catalogue's start, as kiwix-serve's: Kiwix apps browse the box like a kiwix-serve."""
    from xml.etree import ElementTree as ET

    feed = _feed("Passerelle", url_for("zim.opds_root"), "navigation")
    ET.SubElement(feed, "updated").text = _updated()
    entry = ET.SubElement(feed, "entry")
    ET.SubElement(entry, "title").text = "All entries"
    ET.SubElement(entry, "id").text = f"urn:passerelle:{current_app.config['DEVICE_ID']}:entries"
    ET.SubElement(entry, "updated").text = _updated()
    ET.SubElement(entry, "link", rel="subsection", href=url_for("zim.opds_entries"),
                  type=f"{OPDS};kind=acquisition")
    return _xml(feed, "navigation")


def _updated() -> str:
    dates = [z.updated_at for z in readable()]
    return max(dates) if dates else "1970-01-01T00:00:00+00:00"


@bp.get("/catalog/v2/entries")
@allow(ANYONE)
def opds_entries():
    from xml.etree import ElementTree as ET

    feed = _feed("All entries", url_for("zim.opds_entries"), "acquisition")
    ET.SubElement(feed, "updated").text = _updated()
    for z in readable():
        entry = ET.SubElement(feed, "entry")
        for tag, text in (("id", f"urn:uuid:{z.uuid}"), ("title", z.title), ("updated", z.updated_at),
                          ("summary", z.description), ("language", z.language), ("name", z.name),
                          ("tags", z.tags), ("articleCount", str(z.article_count)),
                          ("mediaCount", str(z.media_count))):
            ET.SubElement(entry, tag).text = text
        ET.SubElement(ET.SubElement(entry, "author"), "name").text = z.creator
        ET.SubElement(ET.SubElement(entry, "publisher"), "name").text = z.publisher
        ET.SubElement(entry, "dc:issued").text = z.date
        ET.SubElement(entry, "link", type="text/html", href=url_for("zim.main_page", uuid=z.uuid))
        if z.has_illustration:
            ET.SubElement(entry, "link", rel="http://opds-spec.org/image/thumbnail",
                          href=url_for("zim.illustration", uuid=z.uuid),
                          type="image/png;width=48;height=48;scale=1")
        if z.parts == 1:
            ET.SubElement(entry, "link", rel="http://opds-spec.org/acquisition/open-access",
                          type="application/x-zim", href=url_for("zim.download", uuid=z.uuid),
                          length=str(z.size))
    return _xml(feed, "acquisition")


def init_app(app: Flask) -> None:
    home = app.config["HOME"]
    app.extensions["passerelle.zims"] = library = library_for(home, app.config["DB_BUSY_TIMEOUT_MS"])
    app.extensions["passerelle.zim_index"] = indexer_for(home, app.config["SETTINGS"], library)
    app.register_blueprint(bp)
    zimlib.limit_cluster_cache()
    if not zimlib.AVAILABLE:
        app.logger.warning("%s", zimlib.UNAVAILABLE_REASON)
