"""SearchIndex: the SQLite FTS5 index file and the query pipeline."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import sqlite3
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from . import analysis
from .analysis import fold, primary_language, terms_of, words
from .errors import QuerySyntaxError, SearchError
from .query import (
    STEMMED_LANGUAGES,
    TIER_COLUMNS,
    WORD_RE,
    ParsedQuery,
    Term,
    damerau_levenshtein,
    filter_expression,
    filter_token,
    match_expression,
    max_typos,
    parse,
    quote,
    stemming_languages,
    term_expression,
    term_forms,
    variants,
)
from .snippets import Matcher, highlight

#: Bump when the tables change. A file with another version is emptied and
#: recreated: the index is derived data, rebuilt from the content database.
SCHEMA_VERSION = 2
USER_VERSION = SCHEMA_VERSION * 1000 + analysis.ANALYZER_VERSION

KINDS = ("topic", "video", "audio", "document", "article", "html5", "exercise")

# bm25 weights, in the order of the FTS5 columns below.
# title > tags > description > body; ``context`` (topic path and pack title)
# helps a little; ``words`` (unstemmed title/tags/description, only reached by
# the search-as-you-type prefix) a bit less than the title itself.
RANK_WEIGHTS = {"title": 10.0, "tags": 6.0, "description": 3.0, "body": 1.0,
                "context": 1.5, "words": 4.0, "filt": 0.0}

BATCH = 500                 # documents per executemany round
SUGGEST_MIN_WORD = 3
VOCAB_MAX_WORD = 30
FUZZY_CANDIDATES = 3        # corrections OR-ed into the fuzzy query per typo
PREFIX_COMPLETIONS = 8      # known words a search-as-you-type prefix expands to
# A match set larger than this (a very common word) is not ranked in full:
# bm25 over ~40,000 rows costs 100+ ms. Hits are ranked among the documents
# whose title or tags hold a query word (then the rest, for deep pages); the
# total stays exact and the facets count the best FACET_SAMPLE of that tier.
RANK_CAP = 2000
FACET_SAMPLE = 1000
# index() analyses batches at least this large in worker processes.
PARALLEL_MIN_DOCS = 4000
ZLIB_LEVEL = 1


@dataclass
class Document:
    id: str
    pack_id: str
    kind: str
    language: str
    title: str
    description: str = ""
    tags: list[str] = field(default_factory=list)
    body: str = ""
    topic_path: list[str] = field(default_factory=list)
    pack_title: str = ""


@dataclass
class Hit:
    id: str
    pack_id: str
    kind: str
    language: str
    title: str
    snippet: str
    score: float


@dataclass
class SearchResult:
    hits: list[Hit]
    total: int
    facets: dict[str, dict[str, int]]
    did_you_mean: str | None = None
    mode: str = "all"
    query_filters: dict[str, list[str]] = field(default_factory=dict)
    #: True when the match set was too large to count facets over all of it:
    #: they then count the best-ranked documents only (``total`` stays exact).
    approximate: bool = False


def _empty_result(query_filters=None) -> SearchResult:
    return SearchResult(hits=[], total=0, facets={"kind": {}, "language": {}, "pack": {}},
                        query_filters=query_filters or {})


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
-- Original fields, for display, facets and deletes; small rows, so facet
-- counting reads few pages. The body lives in `bodies`.
CREATE TABLE IF NOT EXISTS nodes (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    pack_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    language TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    tags TEXT NOT NULL,
    topic_path TEXT NOT NULL,
    pack_title TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS nodes_pack ON nodes(pack_id);
-- Original body text, zlib-compressed (snippets read 20 hits; deletes
-- re-analyse it).
CREATE TABLE IF NOT EXISTS bodies (
    rowid INTEGER PRIMARY KEY,
    body BLOB NOT NULL
);
-- Analysed (folded + stemmed) text; FTS5 only splits it on spaces.
-- Contentless: the analysed text is not stored a second time (half the FTS
-- size); a delete re-analyses the original from `nodes`, which the analyzer
-- version guarantees gives the very same tokens.
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
    {", ".join(RANK_WEIGHTS)},
    content = '',
    tokenize = 'unicode61 remove_diacritics 0'
);
-- Every word of the corpus (lower case, accents kept) with its document
-- frequency: the dictionary for "did you mean" and the fuzzy fallback.
CREATE TABLE IF NOT EXISTS vocab (
    word TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    df INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vocab_key ON vocab(key, df);
-- Titles, tags and title/tag words offered while typing. h1/h2 are the
-- first one/two folded letters so 1- and 2-letter prefixes walk an index
-- already sorted by frequency instead of sorting thousands of rows.
CREATE TABLE IF NOT EXISTS suggestions (
    key TEXT NOT NULL,
    display TEXT NOT NULL,
    language TEXT NOT NULL,
    df INTEGER NOT NULL,
    h1 TEXT NOT NULL,
    h2 TEXT NOT NULL,
    PRIMARY KEY (key, display, language)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS suggestions_h1 ON suggestions(h1, df DESC);
CREATE INDEX IF NOT EXISTS suggestions_h2 ON suggestions(h2, df DESC);
"""

_NODE_COLUMNS = "id, pack_id, kind, language, title, description, tags, topic_path, pack_title"


def _chunks(items: list, n: int | None = None):
    n = n or BATCH
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _folded_key(text: str) -> str:
    return " ".join(fold(w) for w in words(text))


class _Contributions:
    """What documents add to (or, negated, remove from) vocab and suggestions."""

    def __init__(self):
        self.vocab: Counter[str] = Counter()
        self.suggest: Counter[tuple[str, str, str]] = Counter()

    def add(self, lang: str, title: str, tags: list[str], doc_words: set[str],
            sign: int = 1) -> None:
        lang = primary_language(lang)
        if sign > 0:
            self.vocab.update(doc_words)  # Counter.update runs in C: the hot path
        else:
            self.vocab.subtract(doc_words)
        entries: set[tuple[str, str, str]] = set()
        for phrase in (title, *tags):
            phrase = " ".join(phrase.split())
            key = _folded_key(phrase)
            if key:
                entries.add((key, phrase, lang))
        for w in words(" ".join((title, *tags))):
            f = fold(w)
            if len(w) >= SUGGEST_MIN_WORD and not w.isdigit() and f not in analysis.ALL_STOP_WORDS:
                entries.add((f, w, lang))
        for e in entries:
            self.suggest[e] += sign


def _prepare_doc(language: str, kind: str, pack_id: str, title: str, description: str,
                 tags: list[str], topic_path: list[str], pack_title: str, body: str):
    """(FTS5 column values, set of the document's words) for one document."""
    lang = primary_language(language)
    w_title, w_tags, w_desc = words(title), words(" ; ".join(tags)), words(description)
    w_ctx, w_body = words(" ".join((*topic_path, pack_title))), words(body)
    short = w_title + w_tags + w_desc + w_ctx
    filt = " ".join((filter_token("k", kind.lower()), filter_token("l", lang or "und"),
                     filter_token("p", pack_id)))
    values = (
        " ".join(terms_of(w_title, lang)),
        " ".join(terms_of(w_tags, lang)),
        " ".join(terms_of(w_desc, lang)),
        " ".join(terms_of(w_body, lang)),
        " ".join(terms_of(w_ctx, lang)),
        " ".join(map(fold, short)),
        filt,
    )
    doc_words = set(short)
    doc_words.update(w_body)
    return values, doc_words


def _fields(d: Document) -> tuple:
    """A document's fields, normalised, in ``_prepare_doc`` order (plus the body)."""
    return (d.language or "", d.kind or "", d.pack_id or "", d.title or "",
            d.description or "", [str(t) for t in (d.tags or [])],
            [str(t) for t in (d.topic_path or [])], d.pack_title or "", d.body or "")


def _analyse_chunk(rows: list[tuple]) -> tuple[list[tuple], Counter, Counter]:
    """Analyse documents' fields (``_fields``): ([(FTS values, compressed body)],
    vocab delta, suggestions delta). Pure: runs in the writer or in a worker process."""
    delta = _Contributions()
    out = []
    for f in rows:
        values, doc_words = _prepare_doc(*f)
        delta.add(f[0], f[3], f[5], doc_words)
        out.append((values, zlib.compress(f[8].encode("utf-8"), ZLIB_LEVEL)))
    return out, delta.vocab, delta.suggest


def _body_text(blob) -> str:
    return zlib.decompress(blob).decode("utf-8") if blob else ""


def _analysed(chunks: list[list[tuple]], workers: int):
    """Yield ``_analyse_chunk`` of each chunk, in order; in worker processes when
    ``workers`` > 1 (a bounded window of chunks in flight keeps memory flat).

    Workers are forked (spawn would re-run an unguarded ``__main__``) and only
    analyse; the parent writes everything in its one transaction. A forked
    child never touches the parent's SQLite connections, and it replaces the
    one lock analysis uses, which another thread may have held at fork time."""
    if workers <= 1 or len(chunks) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        for c in chunks:
            yield _analyse_chunk(c)
        return
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                             initializer=analysis.reset_after_fork) as pool:
        pending = []
        it = iter(chunks)
        for c in itertools.islice(it, 2 * workers):
            pending.append(pool.submit(_analyse_chunk, c))
        while pending:
            out = pending.pop(0).result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(_analyse_chunk, nxt))
            yield out


class SearchIndex:
    """A search index in its own SQLite file; safe to share between threads.

    Each thread gets its own connection (SQLite connections must not cross
    threads); WAL lets searches run while a pack is being indexed.
    """

    def __init__(self, path: str | os.PathLike, *, busy_timeout_ms: int = 10_000,
                 parallel: bool = False):
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        # Forked analysis workers are only safe in a single-threaded process (a
        # command-line build): in a threaded server a child could inherit a lock
        # another thread held at fork time. Off unless the caller says so.
        self.parallel = parallel
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._prepare()
        except sqlite3.DatabaseError as exc:
            raise SearchError(f"the search index {self.path} cannot be opened ({exc}); "
                              "delete it and rebuild the index") from exc

    # --- connections ---------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # check_same_thread=False only so close() can close every thread's
            # connection; each connection is still used by one thread only.
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_ms / 1000,
                                   isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            # The index can be rebuilt from the content database, so NORMAL
            # (durable at checkpoints, never corrupt) is enough and much faster.
            conn.execute("PRAGMA synchronous = NORMAL")
            # Memory-mapped reads share the OS page cache between the threads'
            # connections instead of each keeping a large private cache.
            conn.execute("PRAGMA mmap_size = 268435456")
            conn.execute("PRAGMA cache_size = -4000")
            conn.execute("PRAGMA temp_store = MEMORY")
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def close(self) -> None:
        """Close every thread's connection (call when the server stops)."""
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _prepare(self) -> None:
        conn = self._conn()
        conn.execute("PRAGMA journal_mode = WAL")
        # A big rebuild writes a big WAL; shrink it back after checkpoints.
        conn.execute("PRAGMA journal_size_limit = 67108864")
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version not in (0, USER_VERSION):
                    # Older or newer layout/analyzer: start empty; `index check`
                    # then reports every document missing and a rebuild refills it.
                    self._drop_all(conn)
                # executescript() would COMMIT first; run the statements one by one.
                for statement in _SCHEMA.split(";\n"):
                    if statement.strip():
                        conn.execute(statement)
                if version != USER_VERSION:
                    weights = ", ".join(str(w) for w in RANK_WEIGHTS.values())
                    conn.execute("INSERT INTO fts(fts, rank) VALUES('rank', ?)",
                                 [f"bm25({weights})"])
                    conn.execute(f"PRAGMA user_version = {USER_VERSION}")
                    conn.execute("INSERT OR REPLACE INTO meta VALUES('created_at', ?)",
                                 [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @staticmethod
    def _drop_all(conn: sqlite3.Connection) -> None:
        for name in ("fts", "nodes", "bodies", "vocab", "suggestions", "meta"):
            conn.execute(f"DROP TABLE IF EXISTS {name}")

    def _write(self, fn):
        """Run fn(conn) in one IMMEDIATE transaction (the writer lock taken up front,
        so a second writer waits on busy_timeout instead of failing mid-way)."""
        conn = self._conn()
        with self._write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise SearchError(f"the search index is busy or unwritable ({exc})") from exc
            try:
                out = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return out

    # --- writing --------------------------------------------------------------
    def index(self, docs: Iterable[Document]) -> int:
        """Add or replace documents (by ``id``) in one transaction; returns how many."""
        by_id: dict[str, Document] = {}
        for d in docs:
            if not d.id:
                raise SearchError("a document needs a non-empty id")
            by_id[d.id] = d  # the last version of a repeated id wins
        if not by_id:
            return 0
        batch = list(by_id.values())
        workers = (min(os.cpu_count() or 1, 4)
                   if self.parallel and len(batch) >= PARALLEL_MIN_DOCS else 1)

        def run(conn, workers):
            delta = _Contributions()
            next_rowid = (conn.execute("SELECT max(rowid) FROM nodes").fetchone()[0] or 0) + 1
            chunks = list(_chunks(batch))
            fields = [[_fields(d) for d in chunk] for chunk in chunks]
            for chunk, f_chunk, (analysed, vocab, sugg) in zip(
                    chunks, fields, _analysed(fields, workers), strict=True):
                self._remove(conn, [d.id for d in chunk], delta)
                node_rows, body_rows, fts_rows = [], [], []
                for d, f, (values, body) in zip(chunk, f_chunk, analysed, strict=True):
                    lang, kind, pack, title, desc, tags, topic_path, pack_title, _ = f
                    node_rows.append((next_rowid, d.id, pack, kind, lang, title, desc,
                                      json.dumps(tags, ensure_ascii=False),
                                      json.dumps(topic_path, ensure_ascii=False),
                                      pack_title))
                    body_rows.append((next_rowid, body))
                    fts_rows.append((next_rowid, *values))
                    next_rowid += 1
                delta.vocab.update(vocab)
                delta.suggest.update(sugg)
                conn.executemany(
                    f"INSERT INTO nodes(rowid, {_NODE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    node_rows)
                conn.executemany("INSERT INTO bodies(rowid, body) VALUES (?,?)", body_rows)
                conn.executemany(
                    f"INSERT INTO fts(rowid, {', '.join(RANK_WEIGHTS)}) VALUES (?,?,?,?,?,?,?,?)",
                    fts_rows)
            self._apply(conn, delta)
            return len(batch)

        try:
            n = self._write(lambda conn: run(conn, workers))
        except (OSError, BrokenProcessPool):
            if workers <= 1:
                raise
            # No worker processes here (sandbox, no /dev/shm...): analyse in-process.
            n = self._write(lambda conn: run(conn, 1))
        if len(batch) >= PARALLEL_MIN_DOCS:
            # A big build leaves a WAL the size of its transaction; give it back.
            self._checkpoint(truncate=True)
        else:
            self._checkpoint()
        return n

    def _remove(self, conn, ids: list[str], delta: _Contributions) -> int:
        """Delete documents by id, recording what they contributed to vocab/suggestions."""
        removed = 0
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                "SELECT n.rowid, language, kind, pack_id, title, description, tags, topic_path, "
                f"pack_title, b.body FROM nodes n LEFT JOIN bodies b ON b.rowid = n.rowid "
                f"WHERE id IN ({marks})", chunk).fetchall()
            fts_deletes = []
            for rowid, lang, kind, pack, title, desc, tags, topic, pack_title, body in rows:
                tags, topic, body = json.loads(tags), json.loads(topic), _body_text(body)
                values, doc_words = _prepare_doc(lang, kind, pack, title, desc, tags, topic,
                                                 pack_title, body)
                delta.add(lang, title, tags, doc_words, sign=-1)
                fts_deletes.append((rowid, *values))
            conn.executemany(
                f"INSERT INTO fts(fts, rowid, {', '.join(RANK_WEIGHTS)}) "
                "VALUES ('delete', ?,?,?,?,?,?,?,?)", fts_deletes)
            conn.executemany("DELETE FROM nodes WHERE rowid = ?", [(r[0],) for r in rows])
            conn.executemany("DELETE FROM bodies WHERE rowid = ?", [(r[0],) for r in rows])
            removed += len(rows)
        return removed

    @staticmethod
    def _apply(conn, delta: _Contributions) -> None:
        # Words too short or long to be worth correcting, and numbers, are left out.
        vocab = [(w, fold(w), n) for w, n in delta.vocab.items()
                 if n and SUGGEST_MIN_WORD <= len(w) <= VOCAB_MAX_WORD and not w.isdigit()]
        conn.executemany(
            "INSERT INTO vocab(word, key, df) VALUES (?,?,?) "
            "ON CONFLICT(word) DO UPDATE SET df = df + excluded.df", vocab)
        sugg = [(k, disp, lang, n, k[:1], k[:2]) for (k, disp, lang), n in delta.suggest.items() if n]
        conn.executemany(
            "INSERT INTO suggestions(key, display, language, df, h1, h2) VALUES (?,?,?,?,?,?) "
            "ON CONFLICT(key, display, language) DO UPDATE SET df = df + excluded.df", sugg)
        if any(n < 0 for n in delta.vocab.values()):
            conn.execute("DELETE FROM vocab WHERE df <= 0")
        if any(n < 0 for n in delta.suggest.values()):
            conn.execute("DELETE FROM suggestions WHERE df <= 0")

    def delete(self, ids: Iterable[str]) -> int:
        """Remove documents by id (unknown ids are ignored); returns how many were removed."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0

        def run(conn):
            delta = _Contributions()
            n = self._remove(conn, ids, delta)
            self._apply(conn, delta)
            return n

        return self._write(run)

    def delete_pack(self, pack_id: str) -> int:
        """Remove every document of a pack; returns how many were removed."""
        ids = [r[0] for r in self._read("SELECT id FROM nodes WHERE pack_id = ?", [pack_id])]
        return self.delete(ids)

    def clear(self) -> None:
        """Empty the index (before a full rebuild)."""
        def run(conn):
            for table in ("nodes", "bodies", "vocab", "suggestions"):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("INSERT INTO fts(fts) VALUES('delete-all')")
        self._write(run)
        self._checkpoint()

    def optimize(self) -> None:
        """Merge FTS5's segments into one (after a full rebuild; takes a few seconds)."""
        self._write(lambda conn: conn.execute("INSERT INTO fts(fts) VALUES('optimize')"))
        self._checkpoint(truncate=True)

    def _checkpoint(self, truncate: bool = False) -> None:
        # PASSIVE never waits for readers; the WAL is truncated to
        # journal_size_limit once a later checkpoint completes. TRUNCATE (after
        # a full build or optimize) waits for readers, up to busy_timeout, and
        # empties the WAL at once.
        try:
            self._conn().execute(f"PRAGMA wal_checkpoint({'TRUNCATE' if truncate else 'PASSIVE'})")
        except sqlite3.Error:
            pass

    # --- reading ---------------------------------------------------------------
    def _read(self, sql: str, params=()) -> list[tuple]:
        try:
            return self._conn().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise SearchError(f"search index error: {exc}") from exc

    def ids(self, pack_id: str | None = None) -> set[str]:
        if pack_id is None:
            return {r[0] for r in self._read("SELECT id FROM nodes")}
        return {r[0] for r in self._read("SELECT id FROM nodes WHERE pack_id = ?", [pack_id])}

    def count(self) -> int:
        return self._read("SELECT count(*) FROM nodes")[0][0]

    def stats(self) -> dict:
        def grouped(col):
            return dict(self._read(f"SELECT {col}, count(*) FROM nodes GROUP BY 1 ORDER BY 1"))
        size = 0
        for suffix in ("", "-wal"):
            try:
                size += os.path.getsize(str(self.path) + suffix)
            except OSError:
                pass
        return {
            "documents": self.count(),
            "packs": grouped("pack_id"),
            "kinds": grouped("kind"),
            "languages": grouped("language"),
            "vocabulary": self._read("SELECT count(*) FROM vocab")[0][0],
            "suggestions": self._read("SELECT count(*) FROM suggestions")[0][0],
            "file_bytes": size,
            "schema_version": SCHEMA_VERSION,
            "analyzer_version": analysis.ANALYZER_VERSION,
            "path": str(self.path),
        }

    # --- searching -------------------------------------------------------------
    def search(self, query: str, *, kinds=None, languages=None, packs=None,
               limit: int = 20, offset: int = 0) -> SearchResult:
        """Search as a learner expects; see docs/search.md for the pipeline."""
        if not isinstance(query, str):
            raise QuerySyntaxError("the query must be text")
        limit = max(0, min(int(limit), 200))
        offset = max(0, int(offset))
        kinds = list(kinds) if kinds else None
        languages = list(languages) if languages else None
        packs = list(packs) if packs else None
        langs = stemming_languages(languages)
        pq = parse(query, tuple(languages) if languages else None)
        try:
            return self._search(query, pq, kinds, languages, packs, langs, limit, offset)
        except sqlite3.OperationalError as exc:
            # Should not happen (every token is quoted); never leak a raw error.
            raise QuerySyntaxError(f"the query could not be run: {exc}") from exc
        except sqlite3.Error as exc:
            raise SearchError(f"search index error: {exc}") from exc

    def _search(self, query, pq: ParsedQuery, kinds, languages, packs, langs, limit, offset):
        query_filters: dict[str, list[str]] = {}
        terms = pq.terms
        if pq.kinds and not kinds:
            if terms:
                kinds, query_filters = pq.kinds, {"kind": pq.kinds}
            else:
                # Only kind words ("vidéos"): search them as words.
                terms = pq.kind_terms
        if not terms:
            return _empty_result(query_filters)
        for t in (*terms, *pq.kind_terms):
            if t.prefix:
                t.completions = self._completions(t.words[0])

        def attempt(ts, operator, kinds_):
            expr = match_expression(ts, operator, langs)
            return self._run(expr, ts, kinds_, languages, packs, limit, offset)

        result = attempt(terms, "AND", kinds)
        if result.total == 0 and query_filters:
            # "appel vidéo" is about video calls, not only videos: retry with the
            # kind word as an ordinary word and no inferred filter.
            retry_terms = pq.kind_terms + pq.terms
            retry = attempt(retry_terms, "AND", None)
            if retry.total:
                result, terms, query_filters, kinds = retry, retry_terms, {}, None
        if result.total:
            result.mode, result.query_filters = "all", query_filters
            return result

        # Typos: words found nowhere in the index get corrections from the vocabulary.
        did_you_mean = None
        corrected = self._correct(terms)
        if corrected:
            fixed = [Term(t.words, t.phrase, False, corrected[i]) if i in corrected else t
                     for i, t in enumerate(terms)]
            did_you_mean = self._did_you_mean(query, terms, corrected)
            result = attempt(fixed, "AND", kinds)
            if result.total:
                result.mode, result.did_you_mean = "fuzzy", did_you_mean
                result.query_filters = query_filters
                return result
            terms = fixed
        if len(terms) > 1:
            result = attempt(terms, "OR", kinds)
            result.mode = "any"
        else:
            result.mode = "fuzzy" if corrected else "all"
        result.did_you_mean = did_you_mean
        result.query_filters = query_filters
        return result

    def _run(self, expr: str, terms: list[Term], kinds, languages, packs,
             limit: int, offset: int) -> SearchResult:
        conn = self._conn()
        filt = filter_expression(kinds, languages, packs)
        full = f"({expr}) AND {filt}" if filt else expr
        # A read transaction: every statement below sees the same snapshot.
        conn.execute("BEGIN")
        try:
            matched = conn.execute("SELECT count(*) FROM fts WHERE fts MATCH ?",
                                   [expr]).fetchone()[0]
            if not matched:
                return _empty_result()
            if matched <= RANK_CAP:
                result, rows = self._run_exact(conn, expr, full, kinds, languages, packs,
                                               limit, offset)
            else:
                result, rows = self._run_capped(conn, expr, full, filt, terms, kinds,
                                                languages, packs, limit, offset, matched)
            bodies = dict(conn.execute(
                f"SELECT rowid, body FROM bodies WHERE rowid IN ({','.join('?' * len(rows))})",
                [r[0] for r in rows]).fetchall()) if rows else {}
        finally:
            conn.execute("COMMIT")
        matcher = self._matcher(terms)
        for rowid, id_, pack, kind, lang, title, desc, rank in rows:
            plang = primary_language(lang)
            snippet, marked = highlight(_body_text(bodies.get(rowid)), matcher, plang)
            if not marked and desc:
                d_snip, d_marked = highlight(desc, matcher, plang)
                if d_marked or not snippet:
                    snippet = d_snip
            result.hits.append(Hit(id=id_, pack_id=pack, kind=kind, language=lang, title=title,
                                   snippet=snippet, score=round(-rank, 4)))
        return result

    @staticmethod
    def _facets(groups, kinds, languages, packs) -> tuple[dict[str, dict[str, int]], int]:
        """Facets and total from (kind, language, pack, count) groups of the unfiltered
        match set; each facet ignores its own filter but honours the others."""
        kind_set = set(kinds) if kinds else None
        lang_set = {primary_language(x) for x in languages} if languages else None
        pack_set = set(packs) if packs else None
        facets: dict[str, Counter] = {"kind": Counter(), "language": Counter(), "pack": Counter()}
        total = 0
        for kind, lang, pack, n in groups:
            ok_k = kind_set is None or kind in kind_set
            ok_l = lang_set is None or primary_language(lang) in lang_set
            ok_p = pack_set is None or pack in pack_set
            if ok_l and ok_p:
                facets["kind"][kind] += n
            if ok_k and ok_p:
                facets["language"][primary_language(lang)] += n
            if ok_k and ok_l:
                facets["pack"][pack] += n
            if ok_k and ok_l and ok_p:
                total += n
        return {k: dict(v.most_common()) for k, v in facets.items()}, total

    _RANKED_SQL = (
        "SELECT n.rowid, n.id, n.pack_id, n.kind, n.language, n.title, n.description, f.rank "
        "FROM (SELECT rowid, rank FROM fts WHERE fts MATCH ? ORDER BY rank LIMIT ? OFFSET ?) f "
        "JOIN nodes n ON n.rowid = f.rowid ORDER BY f.rank")

    def _run_exact(self, conn, expr, full, kinds, languages, packs, limit, offset):
        # One grouped pass over the unfiltered match set gives the total and
        # all three facets exactly.
        groups = conn.execute(
            "SELECT n.kind, n.language, n.pack_id, count(*) FROM fts "
            "JOIN nodes n ON n.rowid = fts.rowid WHERE fts MATCH ? GROUP BY 1, 2, 3",
            [expr]).fetchall()
        facets, total = self._facets(groups, kinds, languages, packs)
        result = SearchResult(hits=[], total=total, facets=facets)
        if not total or not limit or offset >= total:
            return result, []
        # Rank first, then join only the page's rows.
        return result, conn.execute(self._RANKED_SQL, [full, limit, offset]).fetchall()

    def _run_capped(self, conn, expr, full, filt, terms, kinds, languages, packs, limit,
                    offset, matched):
        """A very large match set: exact total, hits ranked within the title/tag tier
        (then the rest), facets over the tier's best FACET_SAMPLE documents."""
        total = matched if not filt else conn.execute(
            "SELECT count(*) FROM fts WHERE fts MATCH ?", [full]).fetchone()[0]
        tier_clause = f"{TIER_COLUMNS} : ({' OR '.join(quote(v) for v in term_forms(terms))})"
        tier = f"({expr}) AND ({tier_clause})"
        sample = conn.execute(
            "SELECT n.kind, n.language, n.pack_id, count(*) FROM "
            "(SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY rank LIMIT ?) f "
            "JOIN nodes n ON n.rowid = f.rowid GROUP BY 1, 2, 3", [tier, FACET_SAMPLE]).fetchall()
        facets, _ = self._facets(sample, kinds, languages, packs)
        result = SearchResult(hits=[], total=total, facets=facets, approximate=True)
        if not total or not limit or offset >= total:
            return result, []
        full_tier = f"({full}) AND ({tier_clause})"
        rows = conn.execute(self._RANKED_SQL, [full_tier, limit, offset]).fetchall()
        if len(rows) < limit:
            # Past the end of the tier (deep pages, or few title/tag matches):
            # the other documents follow, ranked among themselves.
            in_tier = conn.execute("SELECT count(*) FROM fts WHERE fts MATCH ?",
                                   [full_tier]).fetchone()[0]
            rest_offset = max(0, offset - in_tier)
            rows += conn.execute(self._RANKED_SQL, [f"({full}) NOT ({tier_clause})",
                                                    limit - len(rows), rest_offset]).fetchall()
        return result, rows

    @staticmethod
    def _matcher(terms: list[Term]) -> Matcher:
        forms: set[str] = set()
        prefixes: set[str] = set()
        for t in terms:
            for w in t.words + t.corrections:
                forms.update(variants(w, STEMMED_LANGUAGES))
            if t.prefix and not t.corrections:
                prefixes.add(fold(t.words[0]))
        return Matcher(forms, prefixes)

    # --- typo tolerance --------------------------------------------------------
    def _known(self, term: Term) -> bool:
        expr = term_expression(term)
        return bool(self._conn().execute(
            "SELECT 1 FROM fts WHERE fts MATCH ? LIMIT 1", [expr]).fetchone())

    def _correct(self, terms: list[Term]) -> dict[int, list[str]]:
        """Index of each unknown single-word term -> its best corrections (folded)."""
        out: dict[int, list[str]] = {}
        for i, t in enumerate(terms):
            if t.phrase or self._known(t):
                continue
            cands = self.corrections(t.words[0])
            if cands:
                out[i] = cands
        return out

    def corrections(self, word: str, limit: int = FUZZY_CANDIDATES) -> list[str]:
        """Known words closest to ``word`` (bounded Damerau-Levenshtein), best first.

        Candidates share their first letters (see below) and are within the
        allowed number of typos in length; that keeps the Python distance loop
        to a few hundred short strings.
        """
        key = fold(word.lower())
        k = max_typos(key)
        if not k:
            return []
        # Candidates share the first two letters, or the first and third (a typo in
        # the second letter): two narrow range scans instead of a whole letter.
        # The Arabic article is skipped: most words would share it.
        art = "ال" if key.startswith("ال") and len(key) >= 5 else ""
        rest = key[len(art):]
        heads = {art + rest[:2]} if len(rest) < 3 else {art + rest[:2], art + rest[0] + rest[2]}
        rows = []
        for head in heads:
            rows += self._conn().execute(
                "SELECT key, max(df) FROM vocab WHERE key >= ? AND key < ? "
                "AND length(key) BETWEEN ? AND ? GROUP BY key",
                [head, head + "\U0010ffff", len(key) - k, len(key) + k]).fetchall()
        scored = []
        letters = set(key)
        for cand, df in rows:
            # One edit changes at most two letters of the set of letters: a
            # C-speed test that discards most candidates before the Python loop.
            if len(letters.symmetric_difference(cand)) > 2 * k:
                continue
            d = damerau_levenshtein(key, cand, k)
            if d <= k and cand != key:
                scored.append((d, -df, cand))
        scored.sort()
        if not scored:
            return []
        best = scored[0][0]
        return [c for d, _, c in scored if d == best][:limit]

    def _completions(self, word: str, limit: int = PREFIX_COMPLETIONS) -> list[str]:
        """The most frequent known words (folded) that start with ``word`` and are longer."""
        key = fold(word.lower())
        rows = self._conn().execute(
            "SELECT key FROM vocab WHERE key > ? AND key < ? GROUP BY key "
            "ORDER BY max(df) DESC, key LIMIT ?", [key, key + "\U0010ffff", limit]).fetchall()
        return [r[0] for r in rows]

    def _display(self, key: str) -> str:
        row = self._conn().execute(
            "SELECT word FROM vocab WHERE key = ? ORDER BY df DESC LIMIT 1", [key]).fetchone()
        return row[0] if row else key

    def _did_you_mean(self, query: str, terms: list[Term], corrected: dict[int, list[str]]) -> str:
        replace = {}
        for i, cands in corrected.items():
            replace[terms[i].words[0]] = self._display(cands[0])
        text = query.strip()
        out, pos = [], 0
        for m in WORD_RE.finditer(text):
            w = m.group()
            new = replace.get(w.lower())
            if new is not None:
                out.append(text[pos:m.start()])
                out.append(new)
                pos = m.end()
        out.append(text[pos:])
        return "".join(out)

    # --- suggestions -------------------------------------------------------------
    def suggest(self, prefix: str, *, limit: int = 8, languages=None) -> list[str]:
        """Titles, tags and words starting with ``prefix``, most frequent first."""
        if not isinstance(prefix, str):
            return []
        limit = max(0, min(int(limit), 50))
        trailing_space = prefix[-1:].isspace()
        key = _folded_key(prefix[:100])
        if not key or not limit:
            return []
        if trailing_space:
            key += " "
        lang_sql, lang_params = "", []
        if languages:
            langs = sorted({primary_language(x) for x in languages})
            lang_sql = f" AND language IN ({','.join('?' * len(langs))})"
            lang_params = langs
        fetch = limit * 4
        if len(key) == 1:
            sql = f"SELECT key, display FROM suggestions WHERE h1 = ?{lang_sql} ORDER BY df DESC LIMIT ?"
            params = [key, *lang_params, fetch]
        elif len(key) == 2:
            sql = f"SELECT key, display FROM suggestions WHERE h2 = ?{lang_sql} ORDER BY df DESC LIMIT ?"
            params = [key, *lang_params, fetch]
        else:
            sql = ("SELECT key, display FROM suggestions WHERE key >= ? AND key < ?"
                   f"{lang_sql} ORDER BY df DESC, length(key) LIMIT ?")
            params = [key, key + "\U0010ffff", *lang_params, fetch]
        out: list[str] = []
        seen: set[str] = set()
        for k, display in self._read(sql, params):
            if k in seen:
                continue
            seen.add(k)
            out.append(display)
            if len(out) >= limit:
                break
        return out


__all__ = ["Document", "Hit", "SearchIndex", "SearchResult"]
