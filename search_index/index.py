"""SearchIndex: the SQLite FTS5 index file and the query pipeline."""

from __future__ import annotations

import itertools
import json
import math
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
from itertools import compress, repeat
from pathlib import Path

from . import analysis
from .analysis import fold, primary_language, terms_of, words
from .errors import QuerySyntaxError, SearchError
from .query import (
    FILTER_MARK,
    MARK,
    STEMMED_LANGUAGES,
    WORD_RE,
    ParsedQuery,
    Term,
    filter_expression,
    filter_token,
    label_expression,
    label_token,
    match_expression,
    max_typos,
    parse,
    phrase_forms,
    quote,
    term_expression,
    term_forms,
    tier_token,
    variants,
    within_typos,
)
from .snippets import SCAN_CHARS, Matcher, highlight

#: Bump when the tables change. A file with another version is emptied and
#: recreated: the index is derived data, rebuilt from the content database.
#: Also bumped when what the bodies hold changes (6: articles as plain text, not Markdown;
#: 7: documents for staff only; 8: labels, as facets).
SCHEMA_VERSION = 8
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
RESPELL_CANDIDATES = 8      # corrections tried against the whole query as a phrase
FUZZY_CANDIDATES = 3        # corrections OR-ed into the fuzzy query per typo
PREFIX_COMPLETIONS = 8      # known words a search-as-you-type prefix expands to
# A match set larger than this (a very common word) is not ranked in full:
# bm25 costs FTS5 3-6 us per row here, 100+ ms over ~40,000 rows. See
# ``SearchIndex._ranked``: title/tag matches first, large parts ranked over
# uniform samples of about RANK_SAMPLE documents. Beyond EXACT_CAP matches,
# totals and facets are estimated from a 1/16 sample (``SearchIndex._run``).
RANK_CAP = 800
RANK_SAMPLE = 250
TIER_CAP = 300              # title/tag matches ranked whole, above: sampled
PROBE = 4                   # sample buckets of the first, counting probe (1/16)
EXACT_CAP = 4000            # estimated matches counted exactly, above: estimated
# The probe's estimate (16 x its count) decides what comes next. Above
# OVER_CAP x EXACT_CAP, a pass counting up to EXACT_CAP would most likely
# overflow: the estimate stands. Up to SMALL_ESTIMATE (3 standard deviations
# below RANK_CAP for a set of RANK_CAP), one pass lists every match with its
# bm25 rank: it gives the facets and the page at once.
OVER_CAP = 1.25
SMALL_ESTIMATE = 480
# A phrase's pass reads positions, 4x the cost of a word's: its matches are
# listed (and counted exactly) up to this many, above it estimated like a
# common word's.
PHRASE_EXACT_CAP = 1000
SAMPLE_BUCKETS = 64         # sample tokens s0..s63 in the filt column
PROBE_TOKEN = FILTER_MARK + "r"  # in the filt column of the documents of buckets 0..PROBE-1
# rowid = group << GROUP_SHIFT | sequence number: the group (kind, language,
# pack) of a match is known from its rowid alone, so facets never join `nodes`.
GROUP_SHIFT = 32
# Body text read for a snippet (compressed bodies are only inflated this far).
SCAN_BYTES = 4 * SCAN_CHARS
# index() analyses batches at least this large in worker processes, and
# merges their FTS5 segments once at the end instead of as it goes.
PARALLEL_MIN_DOCS = 4000
AUTOMERGE = 4               # FTS5's default, restored after a large batch
HASH_SIZE = 8 * 1024 * 1024  # FTS5 pending-terms memory of the writer (default 1 MB)
ZLIB_LEVEL = 1
# In the ``filt`` column of documents for staff only (teaching guides): searches for
# learners and guests leave them out with ``NOT`` (see ``SearchIndex.search``).
STAFF_TOKEN = filter_token("a", "staff")


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
    #: For staff only (a teaching guide): found only by searches that include them, and
    #: never offered as a suggestion while typing.
    staff_only: bool = False
    #: Labels a learner filters by, by facet (``{"activity": ["watch"], "level": [...]}``):
    #: counted as facets beside kind, language and pack, and filtered on like them.
    labels: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Hit:
    id: str
    pack_id: str
    kind: str
    language: str
    title: str
    snippet: str
    score: float
    staff_only: bool = False


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


def snippet(text: str, query: str, language: str = "", max_chars: int = 240) -> str:
    """A snippet of ``text`` around the words of ``query``, as search hits have: escaped,
    with ``<mark>``. For text found by another engine (a ZIM's own Xapian index)."""
    pq = parse(query)
    matcher = SearchIndex._matcher(pq.terms or pq.kind_terms)
    return highlight(text[:SCAN_CHARS], matcher, primary_language(language), max_chars)[0]


def _empty_result(query_filters=None) -> SearchResult:
    return SearchResult(hits=[], total=0, facets={"kind": {}, "language": {}, "pack": {}},
                        query_filters=query_filters or {})


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
-- (kind, language, pack) groups. A document's rowid is its group's code
-- shifted left by {GROUP_SHIFT} bits plus the group's next sequence number,
-- so facets are counted from FTS5's rowids alone, and the rowids of a group
-- follow each other (small deltas in FTS5's doclists). Codes are never
-- reused (AUTOINCREMENT).
CREATE TABLE IF NOT EXISTS groups (
    code INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    language TEXT NOT NULL,
    pack_id TEXT NOT NULL,
    next_seq INTEGER NOT NULL DEFAULT 1,
    UNIQUE (kind, language, pack_id)
);
-- Original fields, for display and deletes. The body lives in `bodies`.
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
    staff_only INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS nodes_pack ON nodes(pack_id);
-- The labels of each labelled document, as one JSON list of [facet, value]
-- pairs in a canonical order: the label facets of a search group its matches
-- by these (documents of a channel share a few label sets), and a delete reads
-- them back (their filter tokens). One row per document, found by its rowid:
-- a row per label cost 10x more to count.
CREATE TABLE IF NOT EXISTS labels (
    rowid INTEGER PRIMARY KEY,
    labels TEXT NOT NULL
);
-- Analysed title, tags and description ("title terms|tag terms|..."): what
-- ranks a phrase's matches, or a sample of a very large match set, without
-- analysing text again. A table of its own: thousands of these short rows
-- are read per query, and packed densely they touch 5x fewer pages than
-- the same column in `nodes`.
CREATE TABLE IF NOT EXISTS ranking (
    rowid INTEGER PRIMARY KEY,
    terms TEXT NOT NULL
);
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
    -- "_" is kept inside tokens: it begins the tokens of `words` and `filt`
    -- only (query.MARK), so queries need no column filter.
    tokenize = "unicode61 remove_diacritics 0 tokenchars '_'"
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

_NODE_COLUMNS = ("id, pack_id, kind, language, title, description, tags, topic_path, pack_title,"
                 " staff_only")


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
            sign: int = 1, staff_only: bool = False) -> None:
        lang = primary_language(lang)
        if sign > 0:
            self.vocab.update(doc_words)  # Counter.update runs in C: the hot path
        else:
            self.vocab.subtract(doc_words)
        if staff_only:  # a guide's title is not offered to learners typing
            return
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


def sample_tokens(doc_id: str) -> tuple[str, ...]:
    """The ``filt`` token that puts a document in one of SAMPLE_BUCKETS uniform
    samples (see ``SearchIndex._ranked``), stable for a given id; and, for the
    documents of the first PROBE buckets, the probe token: the counting probe
    over them reads one doclist, not an OR of PROBE of them."""
    bucket = zlib.crc32(doc_id.encode("utf-8")) % SAMPLE_BUCKETS
    token = f"{FILTER_MARK}s{bucket}"
    return (token, PROBE_TOKEN) if bucket < PROBE else (token,)


def _prepare_doc(language: str, kind: str, pack_id: str, title: str, description: str,
                 tags: list[str], topic_path: list[str], pack_title: str, body: str,
                 doc_id: str, staff_only: bool = False, labels: tuple = ()):
    """(FTS5 column values, set of the document's words) for one document."""
    lang = primary_language(language)
    w_title, w_tags, w_desc = words(title), words(" ; ".join(tags)), words(description)
    w_ctx, w_body = words(" ".join((*topic_path, pack_title))), words(body)
    short = w_title + w_tags + w_desc + w_ctx
    t_title, t_tags = terms_of(w_title, lang), terms_of(w_tags, lang)
    filt = " ".join((filter_token("k", kind.lower()), filter_token("l", lang or "und"),
                     filter_token("p", pack_id), *sample_tokens(doc_id),
                     *((STAFF_TOKEN,) if staff_only else ()),
                     *(label_token(facet, value) for facet, value in labels),
                     *map(tier_token, dict.fromkeys((*t_title, *t_tags)))))
    values = (
        " ".join(t_title),
        " ".join(t_tags),
        " ".join(terms_of(w_desc, lang)),
        " ".join(terms_of(w_body, lang)),
        " ".join(terms_of(w_ctx, lang)),
        " ".join(MARK + f for f in map(fold, short)),
        filt,
    )
    doc_words = set(short)
    doc_words.update(w_body)
    return values, doc_words


def _fields(d: Document) -> tuple:
    """A document's fields, normalised, in ``_prepare_doc`` order."""
    return (d.language or "", d.kind or "", d.pack_id or "", d.title or "",
            d.description or "", [str(t) for t in (d.tags or [])],
            [str(t) for t in (d.topic_path or [])], d.pack_title or "", d.body or "", d.id,
            bool(d.staff_only),
            tuple(sorted({(str(k), str(v)) for k, vs in (d.labels or {}).items() for v in vs if v})))


def _analyse_chunk(rows: list[tuple]) -> tuple[list[tuple], Counter, Counter]:
    """Analyse documents' fields (``_fields``): ([(FTS values, compressed body)],
    vocab delta, suggestions delta). Pure: runs in the writer or in a worker process."""
    delta = _Contributions()
    out = []
    for f in rows:
        values, doc_words = _prepare_doc(*f)
        delta.add(f[0], f[3], f[5], doc_words, staff_only=f[10])
        # No body (a deferred document's comes later): nothing to compress; read back as "".
        out.append((values, zlib.compress(f[8].encode("utf-8"), ZLIB_LEVEL) if f[8] else b""))
    return out, delta.vocab, delta.suggest


def _body_text(blob, max_bytes: int = 0) -> str:
    """A stored body; with ``max_bytes``, only its beginning (a snippet never
    looks further, and a 300-page PDF need not be inflated for it)."""
    if not blob:
        return ""
    if not max_bytes:
        return zlib.decompress(blob).decode("utf-8")
    # A character cut in two at the end is dropped.
    return zlib.decompressobj().decompress(blob, max_bytes).decode("utf-8", errors="ignore")


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


def _sample_clause(low: int, high: int) -> str:
    """FTS5 clause for the documents of sample buckets low..high-1."""
    high = min(high, SAMPLE_BUCKETS)
    return f"({' OR '.join(quote(f'{FILTER_MARK}s{i}') for i in range(low, high))})"


def _round_figure(n: int) -> int:
    """An estimated count to two significant figures (20,480 -> 20,000)."""
    if n < 100:
        return n
    unit = 10 ** (len(str(n)) - 2)
    return round(n / unit) * unit


# BM25 constants of the sample ranking (FTS5's bm25 uses the same).
_K1, _B = 1.2, 0.75
_SAMPLE_WEIGHTS = (RANK_WEIGHTS["title"], RANK_WEIGHTS["tags"], RANK_WEIGHTS["description"])


def _sample_scores(rows: list[tuple], matcher: Matcher) -> list[tuple[int, float]]:
    """Rank a sample of a very large match set: BM25 over the analysed title,
    tags and description (``ranking.terms``) with FTS5's column weights, document
    frequencies taken within the sample (it is uniform). Returns (rowid, rank),
    best (lowest) first.

    Body words are left out: the short fields are what tells the best matches
    of a word found in half the library, and they cost a few set operations."""
    forms, prefixes = matcher.forms, matcher.prefixes
    needles = (*forms, *prefixes)
    docs = []
    df: dict[str, int] = {}
    # Plain dicts, not Counters: this loop runs for hundreds of rows per query
    # and Counter's Python-level methods cost as much as the rest of it.
    for rowid, terms in rows:
        length = terms.count(" ") + terms.count("|") + 1
        # Most documents of a very common word hold it in their body only: a
        # substring test in C rules them out before any splitting.
        if not any(map(terms.__contains__, needles)):
            docs.append((rowid, None, length))
            continue
        tf: dict[str, float] = {}
        for part, weight in zip(terms.split("|"), _SAMPLE_WEIGHTS, strict=True):
            if not any(map(part.__contains__, needles)):
                continue
            toks = part.split()
            hit = forms.intersection(toks)
            if prefixes:
                hit = hit.union(compress(toks, map(str.startswith, toks, repeat(prefixes))))
            for t in hit:
                tf[t] = tf.get(t, 0.0) + weight * toks.count(t)
        for t in tf:
            df[t] = df.get(t, 0) + 1
        docs.append((rowid, tf, length))
    if not docs:
        return []
    n = len(docs)
    avg = sum(d[2] for d in docs) / n or 1.0
    idf = {t: math.log(1 + (n - k + 0.5) / (k + 0.5)) for t, k in df.items()}
    ranked = []
    for rowid, tf, length in docs:
        if not tf:
            ranked.append((0.0, rowid))
            continue
        norm = _K1 * (1 - _B + _B * length / avg)
        score = sum(idf[t] * f * (_K1 + 1) / (f + norm) for t, f in tf.items())
        ranked.append((-round(score, 6), rowid))
    ranked.sort()
    return [(rowid, rank) for rank, rowid in ranked]


def _phrase_scores(rows: list[tuple], needles: list[str]) -> list[tuple[int, float]]:
    """Rank documents holding a phrase in their title, tags or description
    (``ranking.terms``): each occurrence of a needle (a phrase's analysed
    form, or another query word) counts with its field's weight, saturating
    like BM25's term frequency, shorter fields first. Whole needles only: the
    words of "mot de passe" one by one ("de"...) say nothing. Returns (rowid,
    rank), best (lowest) first."""
    padded = [f" {n} " for n in needles]
    ranked = []
    for rowid, terms in rows:
        score = 0.0
        for part, weight in zip(terms.split("|"), _SAMPLE_WEIGHTS, strict=True):
            p = f" {part} "
            hits = sum(map(p.count, padded))
            if hits:
                length = part.count(" ") + 1
                norm = _K1 * (1 - _B + _B * length / 8)  # ~8 tokens: a typical short field
                score += weight * hits * (_K1 + 1) / (hits + norm)
        ranked.append((-round(score, 6), rowid))
    ranked.sort()
    return [(rowid, rank) for rank, rowid in ranked]


class _GroupTable:
    """Group codes (the high bits of every rowid) and the (kind, primary
    language, pack) each stands for, numbered, so that facets are sums into
    lists. A query sees hundreds of groups (a kind x language x pack each);
    summing them into Counters cost a millisecond a query."""

    def __init__(self, rows: list[tuple[int, str, str, str]]):
        names = [(code, kind, primary_language(lang), pack) for code, kind, lang, pack in rows]
        self.kinds = sorted({r[1] for r in names})
        self.langs = sorted({r[2] for r in names})
        self.packs = sorted({r[3] for r in names})
        at_k, at_l, at_p = ({v: i for i, v in enumerate(vs)}
                            for vs in (self.kinds, self.langs, self.packs))
        self.index = {code: (at_k[k], at_l[lang], at_p[p]) for code, k, lang, p in names}

    def facets(self, groups, kinds, languages, packs, scale: int
               ) -> tuple[dict[str, dict[str, int]], int, list[int], int]:
        """See ``SearchIndex._facets``, plus how many groups the table does
        not know (they are left out: a group another process is adding)."""
        kc, lc, pc = [0] * len(self.kinds), [0] * len(self.langs), [0] * len(self.packs)
        get = self.index.get
        known = [(at, n, code) for code, n in groups if (at := get(code)) is not None]
        codes = []
        total = 0
        if not (kinds or languages or packs):
            for (k, lang, p), n, code in known:
                kc[k] += n
                lc[lang] += n
                pc[p] += n
                total += n
                codes.append(code)
        else:
            def allowed(values, chosen):
                return [chosen is None or v in chosen for v in values]
            ok_k = allowed(self.kinds, set(kinds) if kinds else None)
            ok_l = allowed(self.langs, {primary_language(x) for x in languages} if languages
                           else None)
            ok_p = allowed(self.packs, set(packs) if packs else None)
            for (k, lang, p), n, code in known:
                fk, fl, fp = ok_k[k], ok_l[lang], ok_p[p]
                if fl and fp:
                    kc[k] += n
                if fk and fp:
                    lc[lang] += n
                if fk and fl:
                    pc[p] += n
                    if fp:
                        total += n
                        codes.append(code)

        def facet(counts, names):
            # Most matches first; ties in name order, so a facet never reshuffles.
            ranked = sorted((-n, i) for i, n in enumerate(counts) if n)
            return {names[i]: -n * scale for n, i in ranked}

        return ({"kind": facet(kc, self.kinds), "language": facet(lc, self.langs),
                 "pack": facet(pc, self.packs)}, total * scale, codes, len(groups) - len(known))


class SearchIndex:
    """A search index in its own SQLite file; safe to share between threads.

    Each thread gets its own connection (SQLite connections must not cross
    threads); WAL lets searches run while a pack is being indexed.
    """

    def __init__(self, path: str | os.PathLike, *, busy_timeout_ms: int = 10_000,
                 parallel: bool = False, readonly: bool = False, mmap_bytes: int = 256 * 1024**2,
                 cache_kib: int = 4000):
        self.path = Path(path)
        # Memory-mapped reads are quicker, but the mapped pages count in the process's
        # resident size: an index built beside a served box may want a smaller window.
        # Both the window and the page cache are per connection, so per serving thread:
        # an index searched by 8 threads costs 8 times each in resident memory.
        self.mmap_bytes = int(mmap_bytes)
        self.cache_kib = int(cache_kib)
        # A reader (a search worker process) never creates or migrates the
        # file: that would take the write lock, which a large import may hold
        # for a while. The writer of the data home prepares it first.
        self.readonly = readonly
        self.busy_timeout_ms = busy_timeout_ms
        # Forked analysis workers are only safe in a single-threaded process (a
        # command-line build): in a threaded server a child could inherit a lock
        # another thread held at fork time. Off unless the caller says so.
        self.parallel = parallel
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._write_lock = threading.Lock()
        # What the group codes of rowids stand for, for facets (_GroupTable).
        self._groups: _GroupTable | None = None
        self._groups_lock = threading.Lock()
        if readonly:
            if not self.path.exists():
                raise SearchError(f"the search index {self.path} does not exist yet")
            return
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
            conn.execute(f"PRAGMA mmap_size = {self.mmap_bytes}")
            conn.execute(f"PRAGMA cache_size = {-self.cache_kib}")
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
                    # Fewer, larger level-0 segments: 40% less insert work in a
                    # bulk build, for 8 MB of memory in the writer only.
                    conn.execute(f"INSERT INTO fts(fts, rank) VALUES('hashsize', {HASH_SIZE})")
                    conn.execute(f"PRAGMA user_version = {USER_VERSION}")
                    conn.execute("INSERT OR REPLACE INTO meta VALUES('created_at', ?)",
                                 [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @staticmethod
    def _drop_all(conn: sqlite3.Connection) -> None:
        for name in ("fts", "nodes", "ranking", "bodies", "vocab", "suggestions", "groups",
                     "labels", "meta"):
            conn.execute(f"DROP TABLE IF EXISTS {name}")

    def _write(self, fn):
        """Run fn(conn) in one IMMEDIATE transaction (the writer lock taken up front,
        so a second writer waits on busy_timeout instead of failing mid-way)."""
        if self.readonly:
            raise SearchError("this search index was opened read-only")
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

        big = len(batch) >= PARALLEL_MIN_DOCS

        def run(conn, workers):
            delta = _Contributions()
            if big:
                # A large batch: no incremental merging of FTS5 segments while
                # it is written, one 'optimize' at the end (a third less work
                # for FTS5 than merging as it goes).
                conn.execute("INSERT INTO fts(fts, rank) VALUES('automerge', 0)")
            codes = {tuple(r[1:4]): r[0] for r in conn.execute(
                "SELECT code, kind, language, pack_id FROM groups")}
            seqs = dict(conn.execute("SELECT code, next_seq FROM groups"))
            start_seqs = dict(seqs)
            empty = conn.execute("SELECT 1 FROM nodes LIMIT 1").fetchone() is None
            all_fields = [_fields(d) for d in batch]
            for key in sorted({f[1::-1] + f[2:3] for f in all_fields}.difference(codes)):
                code = codes[key] = conn.execute(
                    "INSERT INTO groups(kind, language, pack_id) VALUES (?,?,?)", key).lastrowid
                seqs[code] = 1
            # Documents in group order: rowids then rise through the whole
            # batch, and FTS5 only flushes its pending terms when its memory
            # is full (a lower rowid than the last one forces a flush).
            all_fields.sort(key=lambda f: codes[f[1::-1] + f[2:3]])
            fields = list(_chunks(all_fields))
            for f_chunk, (analysed, vocab, sugg) in zip(
                    fields, _analysed(fields, workers), strict=True):
                if not empty:
                    self._remove(conn, [f[9] for f in f_chunk], delta)
                node_rows, rank_rows, body_rows, fts_rows, label_rows = [], [], [], [], []
                for f, (values, body) in zip(f_chunk, analysed, strict=True):
                    (lang, kind, pack, title, desc, tags, topic_path, pack_title, _, id_, staff,
                     labels) = f
                    code = codes[kind, lang, pack]
                    seq = seqs[code]
                    if seq >= 1 << GROUP_SHIFT:  # billions of upserts: rebuild to renumber
                        raise SearchError("the search index is full; run `passerelle index rebuild`")
                    rowid = code << GROUP_SHIFT | seq
                    seqs[code] = seq + 1
                    node_rows.append((rowid, id_, pack, kind, lang, title, desc,
                                      json.dumps(tags, ensure_ascii=False),
                                      json.dumps(topic_path, ensure_ascii=False),
                                      pack_title, int(staff)))
                    rank_rows.append((rowid, "|".join(values[:3])))
                    body_rows.append((rowid, body))
                    fts_rows.append((rowid, *values))
                    if labels:
                        label_rows.append((rowid, json.dumps(labels, ensure_ascii=False)))
                delta.vocab.update(vocab)
                delta.suggest.update(sugg)
                conn.executemany(
                    f"INSERT INTO nodes(rowid, {_NODE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    node_rows)
                conn.executemany("INSERT INTO ranking(rowid, terms) VALUES (?,?)", rank_rows)
                conn.executemany("INSERT INTO bodies(rowid, body) VALUES (?,?)", body_rows)
                conn.executemany("INSERT INTO labels(rowid, labels) VALUES (?,?)", label_rows)
                conn.executemany(
                    f"INSERT INTO fts(rowid, {', '.join(RANK_WEIGHTS)}) VALUES (?,?,?,?,?,?,?,?)",
                    fts_rows)
            conn.executemany("UPDATE groups SET next_seq = ? WHERE code = ?",
                             [(n, c) for c, n in seqs.items() if start_seqs.get(c) != n])
            self._apply(conn, delta)
            if big:
                conn.execute(f"INSERT INTO fts(fts, rank) VALUES('automerge', {AUTOMERGE})")
                conn.execute("INSERT INTO fts(fts) VALUES('optimize')")
            return len(batch)

        try:
            n = self._write(lambda conn: run(conn, workers))
        except (OSError, BrokenProcessPool):
            if workers <= 1:
                raise
            # No worker processes here (sandbox, no /dev/shm...): analyse in-process.
            n = self._write(lambda conn: run(conn, 1))
        if big:
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
                f"pack_title, b.body, id, staff_only FROM nodes n LEFT JOIN bodies b ON b.rowid = n.rowid "
                f"WHERE id IN ({marks})", chunk).fetchall()
            labels: dict[int, tuple] = {}
            if rows:
                for rowid, found in conn.execute(
                        "SELECT rowid, labels FROM labels WHERE rowid IN "
                        f"({','.join('?' * len(rows))})", [r[0] for r in rows]):
                    labels[rowid] = tuple(tuple(pair) for pair in json.loads(found))
            fts_deletes = []
            for rowid, lang, kind, pack, title, desc, tags, topic, pack_title, body, id_, staff in rows:
                tags, topic, body = json.loads(tags), json.loads(topic), _body_text(body)
                values, doc_words = _prepare_doc(lang, kind, pack, title, desc, tags, topic,
                                                 pack_title, body, id_, bool(staff),
                                                 tuple(labels.get(rowid, ())))
                delta.add(lang, title, tags, doc_words, sign=-1, staff_only=bool(staff))
                fts_deletes.append((rowid, *values))
            conn.executemany(
                f"INSERT INTO fts(fts, rowid, {', '.join(RANK_WEIGHTS)}) "
                "VALUES ('delete', ?,?,?,?,?,?,?,?)", fts_deletes)
            conn.executemany("DELETE FROM nodes WHERE rowid = ?", [(r[0],) for r in rows])
            conn.executemany("DELETE FROM bodies WHERE rowid = ?", [(r[0],) for r in rows])
            conn.executemany("DELETE FROM ranking WHERE rowid = ?", [(r[0],) for r in rows])
            conn.executemany("DELETE FROM labels WHERE rowid = ?", [(r[0],) for r in rows])
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
            # `groups` stays: its codes must never come back with another meaning.
            for table in ("nodes", "ranking", "bodies", "vocab", "suggestions", "labels"):
                conn.execute(f"DELETE FROM {table}")
            conn.execute("UPDATE groups SET next_seq = 1")
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

    def stored(self, ids: Iterable[str]) -> dict[str, Document]:
        """The indexed documents with these ids, without their body: what a caller
        needs to index them again with a body found later (their topic path included)."""
        found: dict[str, Document] = {}
        for part in _chunks(list(ids), 500):
            rows = self._read(f"SELECT {_NODE_COLUMNS}, l.labels FROM nodes"
                              " LEFT JOIN labels l ON l.rowid = nodes.rowid WHERE id IN"
                              f" ({', '.join('?' * len(part))})", part)
            for (id_, pack, kind, lang, title, desc, tags, topic_path, pack_title, staff,
                 labels) in rows:
                facets: dict[str, list[str]] = {}
                for facet, value in json.loads(labels) if labels else ():
                    facets.setdefault(facet, []).append(value)
                found[id_] = Document(id=id_, pack_id=pack, kind=kind, language=lang, title=title,
                                      description=desc, tags=json.loads(tags),
                                      topic_path=json.loads(topic_path), pack_title=pack_title,
                                      staff_only=bool(staff), labels=facets)
        return found

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
               limit: int = 20, offset: int = 0, staff: bool = False,
               labels: dict[str, list[str]] | None = None) -> SearchResult:
        """Search as a learner expects; see docs/search.md for the pipeline. Documents for
        staff only are found only with ``staff`` (a facilitator's or coordinator's search).
        ``labels`` keeps documents carrying one of the values of each facet given
        (``{"activity": ["watch", "read"]}``); label facets are counted when results carry labels."""
        if not isinstance(query, str):
            raise QuerySyntaxError("the query must be text")
        limit = max(0, min(int(limit), 200))
        offset = max(0, int(offset))
        kinds = list(kinds) if kinds else None
        languages = list(languages) if languages else None
        packs = list(packs) if packs else None
        # Query words are looked up under every language's stems even when the
        # results are filtered by language: the language facet must count the
        # other languages' matches too, so that a learner can switch to them.
        langs = STEMMED_LANGUAGES
        pq = parse(query, tuple(languages) if languages else None)
        labels = {str(k): [str(v) for v in vs if v] for k, vs in (labels or {}).items() if vs}
        try:
            return self._search(query, pq, kinds, languages, packs, langs, limit, offset, staff,
                                {k: vs for k, vs in labels.items() if vs})
        except sqlite3.OperationalError as exc:
            # Should not happen (every token is quoted); never leak a raw error.
            raise QuerySyntaxError(f"the query could not be run: {exc}") from exc
        except sqlite3.Error as exc:
            raise SearchError(f"search index error: {exc}") from exc

    def _search(self, query, pq: ParsedQuery, kinds, languages, packs, langs, limit, offset,
                staff: bool = False, labels: dict[str, list[str]] | None = None):
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
                # The last word may be unfinished ("ordinat"). A word the index
                # knows ("mot", "pass") is searched as typed: expanding it to
                # every longer word ("motif", "passport") only adds noise and
                # costs a large OR in every pass. Suggestions still offer the
                # longer words while typing.
                if self._is_word(t.words[0]):
                    t.prefix = False
                else:
                    t.completions = self._completions(t.words[0])

        def attempt(ts, operator, kinds_):
            expr = match_expression(ts, operator, langs)
            if not staff:  # every count, facet and page below is then without the guides
                expr = f"({expr}) NOT {quote(STAFF_TOKEN)}"
            chosen = label_expression(labels)
            # Label filters narrow the match set itself (a document has many labels: its
            # rowid cannot tell them); each label facet is then counted without its own.
            result = self._run(f"({expr}) AND {chosen}" if chosen else expr, ts, kinds_,
                               languages, packs, limit, offset)
            if result.total or labels:
                result.facets.update(self._label_facets(expr, labels, kinds_, languages, packs,
                                                        result.approximate))
            return result

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
            # A misspelt word may still match through its stem ("pase" -> "pas"), which
            # hides the intended document. When a correction makes the whole query a
            # phrase the library holds ("mot de passe"), its results are the better ones.
            better = self._respelt(query, terms)
            if better is not None:
                fixed_terms, did_you_mean, whole = better
                fixed = attempt(fixed_terms, "AND", kinds) if whole else None
                if fixed is not None and fixed.total:
                    fixed.mode, fixed.did_you_mean = "fuzzy", did_you_mean
                    fixed.query_filters = query_filters
                    return fixed
                result.did_you_mean = did_you_mean
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
            # Counts never touch a table but FTS5's own: the high bits of a
            # rowid name the document's (kind, language, pack) group. Up to
            # EXACT_CAP matches, one pass over the unfiltered match set gives
            # the total and all three facets exactly. Above (a pass over 20,000
            # matches of a phrase costs 30+ ms here), a probe over 1/16 of the
            # library (the probe token __r, on the documents of the sample buckets
            # __s0..__s3; FTS5 skips to them) gives
            # them, scaled: estimates.
            # A phrase costs FTS5 a pass over the positions of its words (10+
            # ms for two common words at 50,000 nodes), and bm25 one more pass
            # per phrase form for its IDF: up to PHRASE_EXACT_CAP, a phrase's
            # matches are listed once here and ranked from that list
            # (``_phrase_ranked``), with no second pass.
            known = None
            listed = None   # every match with its rank, when there are few
            cap = EXACT_CAP
            if any(t.phrase for t in terms):
                cap = PHRASE_EXACT_CAP
                known = [r[0] for r in conn.execute(
                    "SELECT rowid FROM fts WHERE fts MATCH ? LIMIT ?", [expr, cap + 1])]
                approximate = len(known) > cap
                groups = [] if approximate else list(Counter(r >> GROUP_SHIFT
                                                             for r in known).items())
            else:
                # The probe first: it is cheap for a rare word (FTS5 skips through
                # the short doclist), and for a very common one it is the count,
                # sparing a pass over its first 4,000 matches.
                probe = conn.execute(self._GROUP_SQL,
                                     [f'({expr}) AND "{PROBE_TOKEN}"']).fetchall()
                estimate = sum(g[1] for g in probe) * (SAMPLE_BUCKETS // PROBE)
                if estimate <= SMALL_ESTIMATE:
                    # Few matches, most likely: listed once with their rank (bm25
                    # over each row is what ranking them costs anyway), instead of
                    # a counting pass and then a sorted ranking pass.
                    listed = conn.execute(self._LIST_RANKED_SQL, [expr, RANK_CAP + 1]).fetchall()
                    if len(listed) > RANK_CAP:
                        listed = None
                if listed is not None:
                    groups = list(Counter(r[0] >> GROUP_SHIFT for r in listed).items())
                    approximate = False
                elif estimate > OVER_CAP * cap:
                    groups, approximate = probe, True
                else:
                    groups = conn.execute(
                        f"SELECT rowid >> {GROUP_SHIFT}, count(*) FROM (SELECT rowid FROM fts "
                        "WHERE fts MATCH ? LIMIT ?) GROUP BY 1", [expr, cap + 1]).fetchall()
                    approximate = sum(g[1] for g in groups) > cap
                    if approximate:
                        groups = probe
            scale = 1
            if approximate:
                scale = SAMPLE_BUCKETS // PROBE
                if known is not None:
                    groups = conn.execute(self._GROUP_SQL,
                                          [f'({expr}) AND "{PROBE_TOKEN}"']).fetchall()
                    if not groups:  # none in the probe (unlikely): what was listed
                        groups, scale = list(Counter(r >> GROUP_SHIFT for r in known).items()), 1
                    known = None
            if not groups:
                return _empty_result()
            facets, total, codes = self._facets(conn, groups, kinds, languages, packs, scale)
            matched = sum(g[1] for g in groups) * scale
            if approximate:
                if total <= cap:  # few left after filtering: count them exactly
                    total = conn.execute("SELECT count(*) FROM fts WHERE fts MATCH ?",
                                         [full]).fetchone()[0]
                else:  # an estimate says so by its round figure
                    total = _round_figure(total)
            result = SearchResult(hits=[], total=total, facets=facets, approximate=approximate)
            if not total or not limit or offset >= total:
                return result
            matcher = self._matcher(terms)
            if known is not None:
                ranked = self._phrase_ranked(conn, terms, known, set(codes) if filt else None,
                                             matcher, limit, offset)
            elif listed is not None:
                if filt:
                    keep = set(codes)
                    listed = [r for r in listed if r[0] >> GROUP_SHIFT in keep]
                listed.sort(key=lambda r: (r[1], r[0]))
                ranked = listed[offset:offset + limit]
            else:
                ranked = self._ranked(conn, expr, full, terms, matcher, matched, total,
                                      codes if filt else None, limit, offset)
            marks = ",".join("?" * len(ranked))
            found = {r[0]: r for r in conn.execute(
                "SELECT n.rowid, n.id, n.pack_id, n.kind, n.language, n.title, n.description, "
                f"b.body, n.staff_only FROM nodes n LEFT JOIN bodies b ON b.rowid = n.rowid "
                f"WHERE n.rowid IN ({marks})", [r[0] for r in ranked])}
        finally:
            conn.execute("COMMIT")
        for rowid, rank in ranked:
            row = found.get(rowid)
            if row is None:  # cannot happen within one snapshot; never fail a page for it
                continue
            _, id_, pack, kind, lang, title, desc, body, staff_only = row
            plang = primary_language(lang)
            snippet, marked = highlight(_body_text(body, SCAN_BYTES), matcher, plang)
            if not marked and desc:
                d_snip, d_marked = highlight(desc, matcher, plang)
                if d_marked or not snippet:
                    snippet = d_snip
            result.hits.append(Hit(id=id_, pack_id=pack, kind=kind, language=lang, title=title,
                                   snippet=snippet, score=round(-rank, 4),
                                   staff_only=bool(staff_only)))
        return result

    # Label facets are counted exactly over up to this many matches (a labels row read per
    # match: about 5 ms per 1,000 on a Pi-class core); above, over the 1/16 sample of the
    # probe token, scaled and rounded like the other estimates.
    LABEL_EXACT_CAP = 1500

    def _label_facets(self, expr: str, labels: dict[str, list[str]] | None, kinds, languages,
                      packs, approximate: bool) -> dict[str, dict[str, int]]:
        """Counts of each label facet over the match set (``expr``, with the kind, language
        and pack filters and the other facets' label filters): empty when no document of
        the index has labels, so that libraries without them pay one lookup. Over a large
        match set, counted on the sample the estimated totals come from."""
        conn = self._conn()
        if conn.execute("SELECT 1 FROM labels LIMIT 1").fetchone() is None:
            return {}
        labels = labels or {}
        filt = filter_expression(kinds, languages, packs)
        cap = self.LABEL_EXACT_CAP

        def count(skip: str | None) -> dict[str, dict[str, int]]:
            chosen = label_expression({k: v for k, v in labels.items() if k != skip})
            match = " AND ".join(f"({part})" for part in (expr, chosen, filt) if part)
            scale = 1
            if approximate or conn.execute(
                    "SELECT count(*) FROM (SELECT rowid FROM fts WHERE fts MATCH ? LIMIT ?)",
                    [match, cap + 1]).fetchone()[0] > cap:
                match, scale = f"({match}) AND {quote(PROBE_TOKEN)}", SAMPLE_BUCKETS // PROBE
            counts: Counter = Counter()
            for found, n in conn.execute(
                    "SELECT l.labels, count(*) FROM (SELECT rowid FROM fts WHERE fts MATCH ?"
                    " LIMIT ?) m JOIN labels l ON l.rowid = m.rowid GROUP BY 1", [match, cap * 4]):
                for facet, value in json.loads(found):
                    counts[facet, value] += n
            out: dict[str, dict[str, int]] = {}
            # Most matches first; ties in name order, so a facet never reshuffles.
            for (facet, value), n in sorted(counts.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1])):
                out.setdefault(facet, {})[value] = n if scale == 1 else _round_figure(n * scale)
            return out

        out = {facet: values for facet, values in count(None).items() if facet not in labels}
        for facet in labels:  # each facet ignores its own filter, so a learner can switch
            values = count(facet).get(facet)
            if values:
                out[facet] = values
        # A facet never takes the name of a built-in one.
        return {k: v for k, v in out.items() if k not in ("kind", "language", "pack")}

    def _group_table(self, conn, refresh: bool = False) -> _GroupTable:
        """What each group code stands for. Codes are never reused, so the table
        is kept and only read again when an unknown code shows up."""
        table = self._groups
        if refresh or table is None:
            with self._groups_lock:
                table = _GroupTable(conn.execute(
                    "SELECT code, kind, language, pack_id FROM groups").fetchall())
                self._groups = table
        return table

    def _facets(self, conn, groups, kinds, languages, packs, scale: int = 1
                ) -> tuple[dict[str, dict[str, int]], int, list[int]]:
        """Facets, total and the codes of the groups that pass the filters, from
        (group code, count) of the unfiltered match set; each facet ignores its
        own filter but honours the others."""
        facets, total, codes, unknown = self._group_table(conn).facets(
            groups, kinds, languages, packs, scale)
        if unknown:  # groups added since the table was read: read it again
            facets, total, codes, unknown = self._group_table(conn, refresh=True).facets(
                groups, kinds, languages, packs, scale)
        return facets, total, codes

    _RANK_SQL = "SELECT rowid, rank FROM fts WHERE fts MATCH ? ORDER BY rank LIMIT ? OFFSET ?"
    _LIST_RANKED_SQL = "SELECT rowid, rank FROM fts WHERE fts MATCH ? LIMIT ?"
    _GROUP_SQL = f"SELECT rowid >> {GROUP_SHIFT}, count(*) FROM fts WHERE fts MATCH ? GROUP BY 1"
    _SAMPLE_SQL = ("SELECT n.rowid, n.terms FROM fts JOIN ranking n ON n.rowid = fts.rowid "
                   "WHERE fts MATCH ?")

    def _ranked(self, conn, expr, full, terms, matcher, matched, total, codes, limit,
                offset) -> list[tuple]:
        """(rowid, rank) of one page of hits; lower ranks first.

        bm25 costs FTS5 a few microseconds per matching row, plus, for its
        IDF, a pass over the whole doclist of every phrase of the expression
        (filter tokens included: ``"__lfr"`` is a fifth of the library).

        - Up to RANK_CAP matches before filtering: bm25 over all of them, the
          filters applied in SQL to the group code in the rowid.
        - Up to RANK_CAP after filtering: bm25 over the filtered expression.
        - More (a very common word): the documents with a query word in their
          title or tags come first (the "tier"), then the others; a part larger
          than TIER_CAP is cut by the sample token every document carries
          (``s0``..``s63``, from a hash of its id, which FTS5 skips to through
          its doclist index) into uniform samples of about RANK_SAMPLE
          matches. Each part is ranked here on its title, tags and description
          (``_sample_scores``). Every match stays reachable by paging, in a
          stable order, and no part costs a pass over the whole match set.
        """
        if matched <= RANK_CAP:
            if codes is None:
                return conn.execute(self._RANK_SQL, [expr, limit, offset]).fetchall()
            return conn.execute(
                f"SELECT rowid, rank FROM fts WHERE fts MATCH ? AND rowid >> {GROUP_SHIFT} "
                f"IN ({','.join(map(str, codes))}) ORDER BY rank LIMIT ? OFFSET ?",
                [expr, limit, offset]).fetchall()
        if total <= RANK_CAP:
            return conn.execute(self._RANK_SQL, [full, limit, offset]).fetchall()
        # The tier tokens (``tier_token``) of the query's forms: the same documents as
        # the column filter {title tags} : (forms), which cost FTS5 a look at the
        # positions of every match of a common word (5-17 ms a sample here).
        tier_clause = f"({' OR '.join(quote(tier_token(v)) for v in term_forms(terms))})"
        tier, rest = f"({full}) AND ({tier_clause})", f"({full}) NOT ({tier_clause})"
        step = max(1, min(SAMPLE_BUCKETS, -(-SAMPLE_BUCKETS * RANK_SAMPLE // total)))

        def sampled(part, first=None):
            for low in range(0, SAMPLE_BUCKETS, step):
                if first is not None and low == 0:
                    yield first
                    continue
                yield conn.execute(self._SAMPLE_SQL,
                                   [f"({part}) AND {_sample_clause(low, low + step)}"]).fetchall()

        def parts():
            if total <= 4 * TIER_CAP:  # a small tier, most likely: ranked whole
                whole = conn.execute(self._SAMPLE_SQL + " LIMIT ?", [tier, TIER_CAP + 1]
                                     ).fetchall()
                if len(whole) <= TIER_CAP:
                    yield whole
                    yield from sampled(rest)
                    return
            # The tier's first sample tells its size: small, it is ranked whole.
            first = conn.execute(self._SAMPLE_SQL,
                                 [f"({tier}) AND {_sample_clause(0, step)}"]).fetchall()
            if len(first) * SAMPLE_BUCKETS / step <= TIER_CAP:
                yield conn.execute(self._SAMPLE_SQL, [tier]).fetchall()
            else:
                yield from sampled(tier, first)
            yield from sampled(rest)

        out: list[tuple] = []
        skip = offset
        for rows in parts():
            if skip >= len(rows):
                skip -= len(rows)
                continue
            out += _sample_scores(rows, matcher)[skip:skip + limit - len(out)]
            skip = 0
            if len(out) >= limit:
                break
        return out

    def _phrase_ranked(self, conn, terms, known: list[int], codes: set[int] | None,
                       matcher: Matcher, limit: int, offset: int) -> list[tuple]:
        """(rowid, rank) of one page of a query with a phrase, from its known
        matches (``known``, every one of them) without evaluating the phrase
        again over the whole library.

        The matches holding a phrase in their title, tags or description come
        first, ranked on those fields (``_phrase_scores``). They are found in
        those fields' analysed text (``ranking.terms``, the very tokens of the
        FTS5 columns): a phrase form with a space on each side. FTS5 would
        find them with a column filter on the phrase, which reads the
        positions of every document holding its words (5 ms for two common
        words). The others (the phrase is in their body) follow in a fixed,
        well-mixed order. bm25 over all of them would cost a second phrase
        pass plus one per phrase form for its IDF (20-40 ms for two common
        words at 50,000 nodes)."""
        if codes is not None:
            known = [r for r in known if r >> GROUP_SHIFT in codes]
        if offset >= len(known):
            return []
        padded = [f" {f} " for t in terms if t.phrase for f in phrase_forms(t)]
        tier = []
        for chunk in _chunks(known):
            for row in conn.execute("SELECT rowid, terms FROM ranking WHERE rowid IN "
                                    f"({','.join(map(str, chunk))})"):
                # "|" parts the fields: " | " keeps a phrase from running across two.
                text = f" {row[1].replace('|', ' | ')} "
                if any(map(text.__contains__, padded)):
                    tier.append(row)
        needles = [f for t in terms for f in (phrase_forms(t) if t.phrase else term_forms([t]))]
        ranked = _phrase_scores(tier, needles)
        if len(ranked) < offset + limit:
            in_tier = {r[0] for r in ranked}
            # Knuth's multiplicative hash: a stable order that mixes packs,
            # kinds and languages (rowids follow their group).
            rest = sorted((r for r in known if r not in in_tier),
                          key=lambda r: (r * 2654435761) & 0xFFFFFFFF)
            ranked += [(r, 0.0) for r in rest]
        return ranked[offset:offset + limit]

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
        if len(heads) > 1:
            # First and third letters that spell the article itself would
            # fetch a good part of the Arabic vocabulary.
            heads.discard("ال")
        conn = self._conn()
        # Keys only, joined into one string by SQLite (a key is one word: no
        # space), no GROUP BY: turning a few thousand rows into Python objects
        # was most of the cost (2.8 ms for a 2,300-word head, 1 ms as one
        # string), and grouping them in SQL nearly doubled it.
        keys = []
        for head in heads:
            joined = conn.execute(
                "SELECT group_concat(key, ' ') FROM vocab WHERE key >= ? AND key < ? "
                "AND length(key) BETWEEN ? AND ?",
                [head, head + "\U0010ffff", len(key) - k, len(key) + k]).fetchone()[0]
            if joined:
                keys += joined.split(" ")
        near = within_typos(key, keys, k)
        near.pop(key, None)
        if not near:
            return []
        best = min(near.values())
        cands = [c for c, d in near.items() if d == best]
        # The most frequent first (the first is what "did you mean" shows), then by key.
        df = {}
        for chunk in _chunks(cands):
            marks = ",".join("?" * len(chunk))
            df.update(conn.execute(f"SELECT key, max(df) FROM vocab WHERE key IN ({marks}) "
                                   "GROUP BY key", chunk).fetchall())
        cands.sort(key=lambda c: (-df.get(c, 0), c))
        return cands[:limit]

    def _respelt(self, query: str, terms: list[Term]):
        """(Corrected terms, the corrected query, whether it matches as a whole phrase) for a
        query that matched although some of its words are in no document; None otherwise.

        Of a word's equally close corrections, the one that makes the whole query a phrase
        of the library wins over the most frequent one: "mot de pase" is "mot de passe",
        not "mot de pas"."""
        corrected: dict[int, list[str]] = {}
        for i, t in enumerate(terms):
            if t.phrase or (t.prefix and t.completions) or self._is_word(t.words[0]):
                continue
            cands = self.corrections(t.words[0], limit=RESPELL_CANDIDATES)
            if cands:
                corrected[i] = cands
        if not corrected:
            return None
        typed = WORD_RE.findall(query.lower())
        whole = False
        if len(typed) > 1 and not self._phrase_matches(typed):
            for i, cands in corrected.items():
                for c in cands:
                    tried = {**corrected, i: [c]}
                    if self._phrase_matches(WORD_RE.findall(
                            self._did_you_mean(query, terms, tried).lower())):
                        corrected[i], whole = [c], True
                        break
        fixed = [Term([corrected[i][0]], t.phrase, False) if i in corrected else t
                 for i, t in enumerate(terms)]
        return fixed, self._did_you_mean(query, terms, corrected), whole

    def _phrase_matches(self, words: list[str]) -> bool:
        expr = term_expression(Term(words, phrase=True))
        return bool(self._conn().execute(
            "SELECT 1 FROM fts WHERE fts MATCH ? LIMIT 1", [expr]).fetchone())

    def _is_word(self, word: str) -> bool:
        """Whether ``word`` (folded) is a word of the index's vocabulary."""
        return self._conn().execute("SELECT 1 FROM vocab WHERE key = ? LIMIT 1",
                                    [fold(word.lower())]).fetchone() is not None

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
        words_typed = prefix.split()
        if len(out) < limit and len(words_typed) > 1 and not trailing_space:
            # No title starts with all the words ("mot de pa"): complete the last
            # word, after the ones already typed, so suggestions do not vanish.
            # The suggestions of a prefix are cached by the service, so the phrase
            # checks below run once per prefix.
            head = " ".join(words_typed[:-1])
            for display in self.suggest(words_typed[-1], limit=limit * 2, languages=languages):
                candidate = f"{head} {display}"
                if " " in display or _folded_key(candidate) in seen:
                    continue
                # Only what some document says, words in this order: no "mot de passwords".
                if not self._phrase_matches(WORD_RE.findall(candidate.lower())):
                    continue
                seen.add(_folded_key(candidate))
                out.append(candidate)
                if len(out) >= limit:
                    break
        return out


__all__ = ["Document", "Hit", "SearchIndex", "SearchResult"]
