"""Search at the edge: what goes into the index, when, and how learners reach it.

- The content library tells the :class:`IndexingListener` when a pack was
  installed, updated or removed; the listener rebuilds that pack's documents.
  The index is its own SQLite file (``HOME/index/search.db``), so indexing a
  large pack never holds the main database's write lock while learners'
  progress is written. If indexing fails (power cut between the catalogue
  commit and the index commit), ``passerelle index check`` reports the drift
  and ``passerelle index rebuild`` repairs it; every start checks the counts.
- A document is one node: title, description and tags, plus the text a
  learner may remember — the article, the subtitles and transcript, the
  exercise's prompts and hints, a PDF's text, an EPUB's chapters, an html5 app's HTML text — and
  the titles of the topics above it.
- Suggestions as you type, and results, are cached per query, filters and
  languages (bounded LRU, 60 s, cleared when the index changes) so a class
  typing the same words at once costs one query per distinct request, and
  page requests are never starved.
- Searches run in worker processes (:class:`passerelle.search_index.SearchPool`,
  setting ``search_workers``): a search is mostly Python, and in the serving
  process every search would share one core through the GIL with every other
  page. Suggestions (0.1 ms) stay in the serving process, where a round trip
  to a worker would cost more than they do; writes stay here too, and workers
  see them through WAL (the cache above is cleared on every change).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
import weakref
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from decimal import Decimal

from flask import (
    Blueprint,
    Flask,
    current_app,
    jsonify,
    render_template,
    request,
    url_for,
)
from passerelle import content as lib
from passerelle import search_index as si
from passerelle.content import kolibri_labels
from passerelle.server import disk
from passerelle.server.errors import InvalidInput
from passerelle.server.web.auth import ANYONE, allow

MAX_BODY = 200_000  # characters of text per document: enough to find it, bounded in size
INDEX_BATCH = 1000  # documents per transaction when a pack is indexed
KINDS = ("topic", "video", "audio", "document", "article", "html5", "exercise")
# Label facets a learner filters by (Kolibri's labels, read from the node as imported).
LABEL_FACETS = tuple(kolibri_labels.FACETS)


def _text_of_blob(library: lib.Library, sha: str, limit: int = MAX_BODY) -> str:
    with library.open_blob(sha) as f:
        return f.read(limit * 4).decode("utf-8", errors="replace")[:limit]


def _exercise_text(node: dict) -> str:
    parts = []
    for q in (node.get("exercise") or {}).get("questions", []):
        parts.append(str(q.get("prompt", "")))
        parts.extend(str(h) for h in q.get("hints", []))
        if q.get("type") in ("single_choice", "multiple_choice"):
            parts.extend(str(c) for c in q.get("choices", []))
    # Prompts, hints and choices are Markdown, like articles.
    return si.extract_markdown_text("\n\n".join(parts))


def _html5_text(library: lib.Library, sha: str, pages: list[str] | None = None) -> str:
    """The text of an html5 app's pages (its first 20), or of an EPUB's chapters (``pages``,
    its spine). The zip is read where it is stored, and each page only up to what is kept."""
    try:
        with library.open_blob(sha) as blob, zipfile.ZipFile(blob) as zf:
            if pages is None:
                pages = [n for n in zf.namelist() if n.lower().endswith((".html", ".htm"))][:20]
            parts, size = [], 0
            for name in pages:
                with zf.open(name) as member:
                    html = member.read(MAX_BODY * 4).decode("utf-8", errors="replace")
                parts.append(si.extract_html_text(html))
                size += len(parts[-1])
                if size >= MAX_BODY:
                    break
            return "\n".join(parts)[:MAX_BODY]
    except (zipfile.BadZipFile, OSError, KeyError, lib.ContentError):
        return ""


def node_text(library: lib.Library, node: dict) -> str:
    """The searchable body of one node (never raises on damaged content)."""
    parts = []
    for f in node.get("files", []):
        role, mime, sha = f.get("role"), f.get("mime", ""), f.get("sha256")
        try:
            if role == "main" and node["kind"] == "article":
                parts.append(si.extract_markdown_text(_text_of_blob(library, sha)))
            elif role == "subtitles" or (role == "transcript" and mime.startswith("text/")):
                parts.append(si.extract_vtt_text(_text_of_blob(library, sha)))
            elif role == "main" and node["kind"] == "document" and node.get("epub"):
                parts.append(_html5_text(library, sha, list(node["epub"].get("spine") or [])))
            elif role == "main" and node["kind"] == "document":
                with library.open_blob(sha) as f_:
                    parts.append(si.extract_pdf_text(f_, max_chars=MAX_BODY))
            elif role == "main" and node["kind"] == "html5":
                parts.append(_html5_text(library, sha))
        except lib.ContentError:
            continue
    if node["kind"] == "exercise":
        parts.append(_exercise_text(node))
    return "\n".join(p for p in parts if p)[:MAX_BODY]


def documents(library: lib.Library, pack_id: str, deferred: tuple[str, ...] = ()
              ) -> Iterator[si.Document]:
    """A pack's documents; those of the ``deferred`` kinds without their body (see ``pack_text``)."""
    info = library.get(pack_id)
    titles: dict[str, tuple[str, str | None]] = {}
    guides: set[str] = set()  # teaching guides, and everything under one
    for node in library.iter_nodes(pack_id):  # parents come first
        titles[node["id"]] = (node.get("title", ""), node.get("parent"))
        if node.get("for_facilitators") is True or node.get("parent") in guides:
            guides.add(node["id"])
        path, parent = [], node.get("parent")
        while parent and parent in titles and len(path) < 32:
            path.append(titles[parent][0])
            parent = titles[parent][1]
        yield si.Document(
            id=f"{pack_id}/{node['id']}", pack_id=pack_id, kind=node["kind"],
            language=node.get("language") or info.language, title=node.get("title", ""),
            description=node.get("description", ""), tags=list(node.get("tags", [])),
            body="" if node["kind"] in deferred else node_text(library, node),
            topic_path=list(reversed(path)), pack_title=info.title,
            staff_only=node["id"] in guides,
            labels=kolibri_labels.facets((node.get("kolibri") or {}).get("labels")))


class SearchService:
    """The index plus the cache of suggestions and results, shared by the server's threads.

    With ``workers`` > 0, searches go to that many worker processes (started on
    the first search); ``close()`` stops them.
    """

    def __init__(self, index: si.SearchIndex, library: lib.Library, cache_size: int = 2048,
                 cache_seconds: float = 60.0, workers: int = 0,
                 logger: logging.Logger | None = None):
        self.index = index
        self.library = library
        self.pool = (si.SearchPool(index.path, workers, busy_timeout_ms=index.busy_timeout_ms,
                                   fallback=index, logger=logger)
                     if workers > 0 else None)
        # What answers searches: the pool, or the index in this process.
        self.searcher = self.pool or index
        if self.pool is not None:
            # An app dropped without close() (tests build many) leaves no processes behind.
            weakref.finalize(self, self.pool.close)
        self._cache: OrderedDict = OrderedDict()
        self._cache_size = cache_size
        # Entries also expire: a pack imported by the CLI (another process) shows within a minute.
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        # The background indexing of documents' text (set by ``attach``); None: all at once.
        self.text = None

    def reindex_pack(self, pack_id: str) -> int:
        """A pack's documents, written a batch at a time: a channel of 20,000 nodes with
        their PDFs' text, held at once, would take hundreds of MB on a box with 1 GB.
        Each batch is one transaction; a crash half-way is what ``index check`` finds.
        The text inside a big pack's documents follows in the background (``pack_text``)."""
        self.index.delete_pack(pack_id)
        count = self._index_pack(pack_id)
        self.clear_cache()
        return count

    def _index_pack(self, pack_id: str) -> int:
        from passerelle.server.search import pack_text

        defer = self.text is not None and not self.text.small(pack_id)
        count = 0
        batch: list[si.Document] = []
        for doc in documents(self.library, pack_id, pack_text.DEFERRED_KINDS if defer else ()):
            batch.append(doc)
            if len(batch) >= INDEX_BATCH:
                count += self.index.index(batch)
                batch = []
        count += self.index.index(batch)
        if defer:
            self.text.queue(pack_id, self.library.get(pack_id).version)
        elif self.text is not None:
            self.text.forget(pack_id)
        return count

    def remove_pack(self, pack_id: str) -> None:
        self.index.delete_pack(pack_id)
        if self.text is not None:
            self.text.forget(pack_id)
        self.clear_cache()

    def rebuild(self) -> int:
        self.index.clear()
        total = sum(self._index_pack(p.id) for p in self.library.list())
        self.index.optimize()
        self.clear_cache()
        return total

    def drift(self) -> dict:
        """Nodes missing from the index, and index entries no pack has any more."""
        expected = set()
        for pack in self.library.list():
            expected |= {f"{pack.id}/{n['id']}" for n in self.library.iter_nodes(pack.id)}
        indexed = self.index.ids()
        return {"missing": sorted(expected - indexed), "stale": sorted(indexed - expected),
                "expected": len(expected), "indexed": len(indexed)}

    def suggest(self, prefix: str, languages: list[str] | None, limit: int = 8) -> list[str]:
        key = ("suggest", prefix.casefold().strip(), tuple(languages or ()), limit)
        return self._cached(key, lambda: self.index.suggest(prefix, limit=limit, languages=languages))

    def search(self, query: str, *, kinds=None, languages=None, packs=None, limit: int = 20,
               offset: int = 0, staff: bool = False, labels: dict[str, list[str]] | None = None):
        """A search, cached like suggestions: a class told to look up the same words sends
        the same query from 30 tablets within seconds, and it is answered once. Results
        are never changed after they are made, so threads can share them. Teaching guides
        are found only by ``staff`` searches."""
        key = ("search", " ".join(query.casefold().split()), tuple(kinds or ()),
               tuple(languages or ()), tuple(packs or ()), limit, offset, staff,
               tuple(sorted((k, tuple(v)) for k, v in (labels or {}).items())))
        return self._cached(key, lambda: self.searcher.search(
            query, kinds=kinds, languages=languages, packs=packs, limit=limit, offset=offset,
            staff=staff, labels=labels or None))

    def _cached(self, key: tuple, compute):
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(key)
            if cached and now - cached[0] < self._cache_seconds:
                self._cache.move_to_end(key)
                return cached[1]
        found = compute()   # outside the lock: a slow query never holds up the others
        with self._lock:
            self._cache[key] = (now, found)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return found

    def warm(self) -> None:
        """Start a search worker and read the index once, so the first learner's search
        is as quick as the next ones (it took 1.5 s: a worker to start, the index's
        pages and the stemmers to load). Run in the background when the server starts."""
        try:
            self.searcher.search("passerelle", limit=1)
            self.index.suggest("pa", limit=1)
        except si.SearchError:  # an unusable index is reported by the searches themselves
            pass

    def warm_in_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.warm, name="search-warm-up", daemon=True)
        thread.start()
        return thread

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    def close(self) -> None:
        """Stop the search workers (the server is stopping); searches still answer, here."""
        if self.pool is not None:
            self.pool.close()


class IndexingListener:
    """Called by the content library after each successful install, update or removal."""

    def __init__(self, service: SearchService, logger=None,
                 may_index: Callable[[], bool] = lambda: True):
        self.service = service
        self.logger = logger or logging.getLogger("passerelle.search")
        # False when the disk is low: the index is optional, learners' progress is not.
        self.may_index = may_index

    def pack_installed(self, pack_id: str, version: int) -> None:
        if not self.may_index():
            # The start-up drift check (or `passerelle index rebuild`) indexes it later.
            self.logger.warning("search: %s v%s not indexed: the disk is below its reserve",
                                pack_id, version)
            return
        count = self.service.reindex_pack(pack_id)
        self.logger.info("search: indexed %s documents of %s v%s", count, pack_id, version)

    def pack_removed(self, pack_id: str) -> None:
        self.service.remove_pack(pack_id)


def text_waiting(library: lib.Library, pack_id: str) -> str:
    """What to tell whoever imported a pack whose documents' text is indexed in the
    background ("" when it was indexed at once)."""
    for listener in library.listeners:
        text = getattr(getattr(listener, "service", None), "text", None)
        job = text.status(pack_id) if text is not None else None
        if job is not None and job.state == "queued":
            return ("the text inside its documents is being indexed for search in the background "
                    "while the box serves; titles and descriptions are found already "
                    "(or index it now: `passerelle index text`)")
    return ""


def service(app: Flask | None = None) -> SearchService:
    return (app or current_app).extensions["passerelle.search"]


# --- HTTP ------------------------------------------------------------------------------

bp = Blueprint("search", __name__)


def _list_arg(name: str, allowed: tuple | None = None, maximum: int = 10) -> list[str] | None:
    values = [v for raw in request.args.getlist(name) for v in raw.split(",")]
    if allowed is not None and any(v not in allowed for v in values):  # "" included
        raise InvalidInput(f"{name}: one of {', '.join(allowed)}", details={name: "unknown value"})
    return [v for v in values if v][:maximum] or None


# A number as JSON writes it: what a client's "integer" may look like once in a query string.
_NUMBER = re.compile(r"-?[0-9]{1,20}(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?")


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high``; ``40.0`` counts (an integer in JSON Schema, and
    what some clients write for one)."""
    raw = request.args.get(name, str(default))
    value = Decimal(raw) if _NUMBER.fullmatch(raw) else None
    if value is None or value != value.to_integral_value() or not low <= value <= high:
        raise InvalidInput(f"{name}: a whole number from {low} to {high}",
                           details={name: f"{low} to {high}"})
    return int(value)


def _is_staff() -> bool:
    from passerelle.server.people.accounts import STAFF
    from passerelle.server.web.auth import current_user

    user = current_user()
    return bool(user) and user["role"] in STAFF


def label_args() -> dict[str, list[str]]:
    """The label filters of a search request (``activity=watch&level=lower-primary``)."""
    return {name: found for name in LABEL_FACETS
            if (found := _list_arg(name, kolibri_labels.SLUGS[name]))}


def run_search():
    query = request.args.get("q", "")
    if len(query) > 200:
        raise InvalidInput("the query is too long (200 characters at most)", details={"q": "too long"})
    try:
        return query, service().search(
            query, kinds=_list_arg("kind", KINDS), languages=_list_arg("language"),
            packs=_list_arg("pack"), limit=_int_arg("limit", 20, 1, 100),
            offset=_int_arg("offset", 0, 0, 10_000), staff=_is_staff(), labels=label_args())
    except si.QuerySyntaxError as exc:
        raise InvalidInput(str(exc), details={"q": str(exc)}) from None


@bp.get("/api/v1/search")
@allow(ANYONE)
def api_search():
    query, result = run_search()
    return jsonify({
        "query": query, "total": result.total, "mode": result.mode,
        "did_you_mean": result.did_you_mean, "query_filters": result.query_filters,
        "facets": result.facets,
        # True when a very common word matched so much that total and facets are estimates.
        "approximate": getattr(result, "approximate", False),
        "hits": [{"id": h.id, "pack_id": h.pack_id, "node_id": h.id[len(h.pack_id) + 1:],
                  "kind": h.kind, "language": h.language, "title": h.title,
                  "snippet": h.snippet, "score": h.score} for h in result.hits],
    })


@bp.get("/api/v1/search/suggest")
@allow(ANYONE)
def api_suggest():
    if "q" not in request.args:
        raise InvalidInput("q: the beginning of a word", details={"q": "required"})
    # Every parameter is checked, even when there is nothing to suggest.
    prefix, languages, limit = request.args["q"][:50], _list_arg("language"), _int_arg("limit", 8, 1, 20)
    if not prefix.strip():
        return jsonify({"suggestions": []})
    found = service().suggest(prefix, languages, limit)
    if len(found) < limit:
        from passerelle.server.packs.zim import (
            suggest_titles,  # the ZIMs' title indexes, after the lessons' words
        )
        found = list(dict.fromkeys(found + suggest_titles(prefix, limit - len(found))))
    response = jsonify({"suggestions": found})
    response.headers["Cache-Control"] = "private, max-age=60"
    return response


@bp.get("/search")
@allow(ANYONE)
def page():
    from passerelle.server.db import get_db
    from passerelle.server.packs import zim as zim_web
    from passerelle.server.packs.catalogue import packs

    only_zim = request.args.get("zim") or None
    kinds = _list_arg("kind", KINDS) or []
    labels = label_args()
    query, result = run_search() if request.args.get("q") and not only_zim else (
        request.args.get("q", ""), None)
    # Kiwix ZIMs (Wikipedia...) answer from their own indexes, merged among the lessons;
    # their articles have no kind nor labels to filter by.
    # Without the snippets of hits found by a ZIM's Xapian index (reading each hit's article
    # was most of the page's time): the page's script asks for them once it is shown.
    sources = zim_web.search_all(query, only=only_zim, count=20 if only_zim else zim_web.PER_ZIM,
                                 snippets=False) if query and not kinds and not labels else []
    if result is not None and result.did_you_mean and any(s.hits for s in sources):
        # The encyclopedias found the words as typed ("Ray Charles"): the lessons' correction
        # ("Ray charge") was of words they simply do not hold, and its hits answer another
        # question. Results are shared between requests: a changed copy, never the original.
        result = None if result.mode == "fuzzy" else dataclasses.replace(result, did_you_mean=None)
    titles = {p["id"]: p["title"] for p in packs(get_db())}
    chosen = {"kind": kinds, **labels}

    def filter_url(facet: str, value: str | None) -> str:
        """This search with one filter set to ``value`` (None: removed), the others kept:
        links, so that filtering works without JavaScript."""
        args = {name: values for name, values in chosen.items() if values and name != facet}
        if value is not None:
            args[facet] = value
        return url_for("search.page", q=query, **args)

    return render_template("search.html", query=query, result=result, pack_titles=titles,
                           kinds=kinds, labels=labels, label_facets=LABEL_FACETS,
                           filter_url=filter_url, zim_sources=sources, only_zim=only_zim,
                           merged=zim_web.merge(result.hits if result else [], sources))


def attach(library: lib.Library, home, parallel: bool = False, workers: int = 0,
           logger: logging.Logger | None = None, settings=None) -> SearchService:
    """The search service of a data home, listening to its content library.

    The CLI and the server both build the library through this, so a pack
    imported either way is indexed the same way. ``parallel`` (analysis in
    worker processes) is for the single-threaded command line only;
    ``workers`` (searches in worker processes) is for the server. With ``settings``,
    indexing waits while the disk is below ``disk_reserve_mb``.
    """
    from passerelle.server.search.pack_text import PackTextIndexer

    search = SearchService(si.SearchIndex(home.index / "search.db", parallel=parallel), library,
                           workers=workers, logger=logger)
    may_index = ((lambda: disk.optional_writes_allowed(home.root, settings))
                 if settings is not None else (lambda: True))
    search.text = PackTextIndexer(search, home.index / "text", may_write=may_index,
                                  logger=logger)
    library.listeners.append(IndexingListener(search, may_index=may_index))
    return search


def search_workers(value: int | str) -> int:
    """The ``search_workers`` setting as a number of processes ("auto": one per core, up to 4)."""
    return si.default_workers() if value == "auto" else int(value)


def init_app(app: Flask) -> None:
    library = app.extensions["passerelle.library"]
    search = attach(library, app.config["HOME"],
                    workers=search_workers(app.config["SETTINGS"]["search_workers"]),
                    logger=app.logger, settings=app.config["SETTINGS"])
    app.extensions["passerelle.search"] = search
    app.register_blueprint(bp)
    # Catch the drift a crash may leave between the catalogue and the index.
    try:
        packs = {p.id: p.node_count for p in library.list()}
        indexed = search.index.count()
        if indexed != sum(packs.values()):
            if not disk.optional_writes_allowed(app.config["HOME"].root, app.config["SETTINGS"]):
                app.logger.warning("search index has %s documents for %s nodes; not rebuilt: "
                                   "the disk is below its reserve", indexed, sum(packs.values()))
                return
            app.logger.warning("search index has %s documents for %s nodes: rebuilding",
                               indexed, sum(packs.values()))
            search.rebuild()
    except si.SearchError as exc:
        app.logger.error("search index unusable (%s): rebuilding", exc)
        search.rebuild()

