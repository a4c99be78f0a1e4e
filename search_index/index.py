"""SearchIndex: the SQLite FTS5 index file and the query pipeline."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import analysis
from .analysis import fold, primary_language, terms_of, words
from .errors import QuerySyntaxError, SearchError
from .query import (
    STEMMED_LANGUAGES,
    WORD_RE,
    ParsedQuery,
    Term,
    damerau_levenshtein,
    filter_expression,
    filter_token,
    match_expression,
    max_typos,
    parse,
    stemming_languages,
    term_expression,
    variants,
)
from .snippets import Matcher, highlight

#: Bump when the tables change. A file with another version is emptied and
#: recreated: the index is derived data, rebuilt from the content database.
SCHEMA_VERSION = 1
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


def _empty_result(query_filters=None) -> SearchResult:
    return SearchResult(hits=[], total=0, facets={"kind": {}, "language": {}, "pack": {}},
                        query_filters=query_filters or {})


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
-- Original text, for snippets and display; the short columns come first so
-- that facet counting reads as little of each row as possible.
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
    pack_title TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS nodes_pack ON nodes(pack_id);
-- Analysed (folded + stemmed) text; FTS5 only splits it on spaces.
-- Contentless: the analysed text is not stored a second time (half the FTS
-- size); a delete re-analyses the original from `nodes`, which the analyzer
-- version guarantees gives the very same tokens.
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
    {", ".join(RANK_WEIGHTS)},
    content = '',
    tokenize = 'unicode61 remove_diacritics 0',
    prefix = '2 3'
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

_NODE_COLUMNS = ("id, pack_id, kind, language, title, description, tags, topic_path, "
                 "pack_title, body")


def _chunks(items: list, n: int = BATCH):
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


class SearchIndex:
    """A search index in its own SQLite file; safe to share between threads.

    Each thread gets its own connection (SQLite connections must not cross
    threads); WAL lets searches run while a pack is being indexed.
    """

    def __init__(self, path: str | os.PathLike, *, busy_timeout_ms: int = 10_000):
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
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
        for name in ("fts", "nodes", "vocab", "suggestions", "meta"):
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

        def run(conn):
            delta = _Contributions()
            next_rowid = (conn.execute("SELECT max(rowid) FROM nodes").fetchone()[0] or 0) + 1
            for chunk in _chunks(batch):
                self._remove(conn, [d.id for d in chunk], delta)
                node_rows, fts_rows = [], []
                for d in chunk:
                    f = (d.language or "", d.kind or "", d.pack_id or "", d.title or "",
                         d.description or "", [str(t) for t in (d.tags or [])],
                         [str(t) for t in (d.topic_path or [])], d.pack_title or "",
                         d.body or "")
                    lang, kind, pack, title, desc, tags, topic_path, pack_title, body = f
                    values, doc_words = _prepare_doc(*f)
                    node_rows.append((next_rowid, d.id, pack, kind, lang, title, desc,
                                      json.dumps(tags, ensure_ascii=False),
                                      json.dumps(topic_path, ensure_ascii=False),
                                      pack_title, body))
                    fts_rows.append((next_rowid, *values))
                    delta.add(lang, title, tags, doc_words)
                    next_rowid += 1
                conn.executemany(
                    f"INSERT INTO nodes(rowid, {_NODE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    node_rows)
                conn.executemany(
                    f"INSERT INTO fts(rowid, {', '.join(RANK_WEIGHTS)}) VALUES (?,?,?,?,?,?,?,?)",
                    fts_rows)
            self._apply(conn, delta)
            return len(batch)

        n = self._write(run)
        self._checkpoint()
        return n

    def _remove(self, conn, ids: list[str], delta: _Contributions) -> int:
        """Delete documents by id, recording what they contributed to vocab/suggestions."""
        removed = 0
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                "SELECT rowid, language, kind, pack_id, title, description, tags, topic_path, "
                f"pack_title, body FROM nodes WHERE id IN ({marks})", chunk).fetchall()
            fts_deletes = []
            for rowid, lang, kind, pack, title, desc, tags, topic, pack_title, body in rows:
                tags, topic = json.loads(tags), json.loads(topic)
                values, doc_words = _prepare_doc(lang, kind, pack, title, desc, tags, topic,
                                                 pack_title, body)
                delta.add(lang, title, tags, doc_words, sign=-1)
                fts_deletes.append((rowid, *values))
            conn.executemany(
                f"INSERT INTO fts(fts, rowid, {', '.join(RANK_WEIGHTS)}) "
                "VALUES ('delete', ?,?,?,?,?,?,?,?)", fts_deletes)
            conn.executemany("DELETE FROM nodes WHERE rowid = ?", [(r[0],) for r in rows])
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
            for table in ("nodes", "vocab", "suggestions"):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("INSERT INTO fts(fts) VALUES('delete-all')")
        self._write(run)
        self._checkpoint()

    def optimize(self) -> None:
        """Merge FTS5's segments into one (after a full rebuild; takes a few seconds)."""
        self._write(lambda conn: conn.execute("INSERT INTO fts(fts) VALUES('optimize')"))
        self._checkpoint()

    def _checkpoint(self) -> None:
        # PASSIVE never waits for readers; the WAL is truncated to
        # journal_size_limit once a later checkpoint completes.
        try:
            self._conn().execute("PRAGMA wal_checkpoint(PASSIVE)")
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
        # One grouped pass over the unfiltered match set gives the total and
        # all three facets; each facet ignores its own filter (so the learner
        # sees what switching it would give) but honours the others.
        groups = conn.execute(
            "SELECT n.kind, n.language, n.pack_id, count(*) FROM fts "
            "JOIN nodes n ON n.rowid = fts.rowid WHERE fts MATCH ? GROUP BY 1, 2, 3",
            [expr]).fetchall()
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
        result = SearchResult(hits=[], total=total,
                              facets={k: dict(v.most_common()) for k, v in facets.items()})
        if not total or not limit or offset >= total:
            return result
        filt = filter_expression(kinds, languages, packs)
        full = f"({expr}) AND {filt}" if filt else expr
        rows = conn.execute(
            "SELECT n.id, n.pack_id, n.kind, n.language, n.title, n.description, n.body, "
            "fts.rank FROM fts JOIN nodes n ON n.rowid = fts.rowid "
            "WHERE fts MATCH ? ORDER BY fts.rank LIMIT ? OFFSET ?",
            [full, limit, offset]).fetchall()
        matcher = self._matcher(terms)
        for id_, pack, kind, lang, title, desc, body, rank in rows:
            plang = primary_language(lang)
            snippet, marked = highlight(body, matcher, plang)
            if not marked and desc:
                d_snip, d_marked = highlight(desc, matcher, plang)
                if d_marked or not snippet:
                    snippet = d_snip
            result.hits.append(Hit(id=id_, pack_id=pack, kind=kind, language=lang, title=title,
                                   snippet=snippet, score=round(-rank, 4)))
        return result

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
