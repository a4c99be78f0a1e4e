"""Snippets with ``<mark>`` around matched words, built from the original text.

FTS5's own ``snippet()`` would show the stored (stemmed, folded) tokens, and
is not available on a contentless table anyway, so snippets are made here: the
original text is split into words, each *distinct* word goes through the
document language's analyzer once per query and is marked when its stem is
one the query looked for. Everything else is HTML-escaped.

Cost (issue 6): snippets were ~60% of a warm query when every word of every
piece went through Python. Now a piece of text costs a few C-level calls
(lower, findall, set intersection); only words not seen before in this query
are analysed in Python, and only the chosen window is split into spans.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections import Counter
from itertools import compress, filterfalse, repeat

from .analysis import WORD_RE, fold_all, fold_text, terms_of

SCAN_CHARS = 20_000   # a 300-page PDF must not make one result page slow
PIECE_CHARS = 800     # text analysed at a time, until a piece matches
MAX_HITS = 64         # matched words of a piece considered for the window
WINDOW_CHARS = 200    # the window whose distinct query terms are counted (~28 words)
LEAD_WORDS = 4        # words of context before the first mark...
LEAD_CHARS = 60       # ...looked for this far back
_SPACES_RE = re.compile(r"\s+")


class Matcher:
    """Decides which words of a document match one of the query's terms.

    Decisions are remembered per language for the life of the matcher (one
    query): the 20 hits of a page share most of their words.
    """

    def __init__(self, forms: set[str], prefixes: set[str]):
        self.forms = frozenset(forms)
        self.prefixes = tuple(prefixes)
        self._needles = (*self.forms, *self.prefixes)
        self._seen: dict[str, set[str]] = {}          # lang -> words already decided
        self._hits: dict[str, dict[str, str]] = {}    # lang -> matching word -> term

    def __bool__(self) -> bool:
        return bool(self.forms or self.prefixes)

    def may_match(self, low: str) -> bool:
        """False when no word of the lower-cased text can match: stems begin
        like their folded word (Snowball only rewrites endings; the Arabic
        light stemmer strips a prefix), so a stem or prefix the query looks
        for must occur in the folded text. A C-level test that spares the
        word-by-word analysis of most bodies that do not match."""
        folded = fold_text(low)
        return folded is None or any(map(folded.__contains__, self._needles))

    def hits(self, distinct: set[str], lang: str) -> dict[str, str]:
        """The words of ``distinct`` (lower case, as in the text) that match, with
        the query term each one matches."""
        seen = self._seen.get(lang)
        if seen is None:
            seen, self._hits[lang] = self._seen.setdefault(lang, set()), {}
        found = self._hits[lang]
        new = list(distinct - seen)
        if new:
            seen.update(new)
            # The same cached analysis as indexing, and C-level tests: most
            # words of a page match nothing and cost no Python bytecode.
            terms = terms_of(new, lang)
            hit = set(compress(new, map(self.forms.__contains__, terms)))
            if self.prefixes:
                prefixes = repeat(self.prefixes)
                hit.update(compress(new, map(str.startswith, terms, prefixes)))
                # A word in ASCII is its own folded form; only the others are folded.
                hit.update(compress(new, map(str.startswith, new, prefixes)))
                other = list(filterfalse(str.isascii, new))
                if other:
                    hit.update(compress(other, map(str.startswith, fold_all(other), prefixes)))
            if hit:
                found.update((w, t) for w, t in zip(new, terms, strict=True) if w in hit)
        if not found:
            return {}
        return {w: found[w] for w in distinct.intersection(found)}


def _nfc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def _lower_same_length(text: str) -> str:
    """Lower case, keeping every character's offset (spans found in the lowered
    text are used on the original). A few characters grow when lowered
    ("İ" -> "i̇"); they are kept as they are."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def highlight(text: str, matcher: Matcher, lang: str, max_chars: int = 240) -> tuple[str, bool]:
    """Return (escaped snippet with <mark>, whether anything was marked)."""
    text = _nfc(text or "")[:SCAN_CHARS]
    if not text.strip():
        return "", False
    low = _lower_same_length(text)
    if not matcher or not matcher.may_match(low):
        return _cut(text, 0, max_chars), False
    # Look at the text a piece at a time: the first piece usually matches, and
    # a 300-page PDF is never analysed in full here.
    base = end = 0
    found: dict[str, str] = {}
    while base < len(text) and matcher:
        end = min(len(text), base + PIECE_CHARS)
        if end < len(text):  # extend to the end of the word
            m = WORD_RE.match(low, end)
            end = m.end() if m else end
        found = matcher.hits(set(WORD_RE.findall(low, base, end)), lang)
        if found:
            break
        base = end
    if not found:
        return _cut(text, 0, max_chars), False
    hits = _occurrences(low, found, base, end)
    # The window holding the most distinct query terms wins; the earliest on
    # ties (a sliding window over the hits, in characters).
    best, best_score = 0, 0
    terms: Counter[str] = Counter()
    j = 0
    for i, (s, _, term) in enumerate(hits):
        while j < len(hits) and hits[j][0] < s + WINDOW_CHARS:
            terms[hits[j][2]] += 1
            j += 1
        if len(terms) > best_score:
            best, best_score = i, len(terms)
        terms[term] -= 1
        if not terms[term]:
            del terms[term]
    # A few words of context before the first mark.
    first = hits[best][0]
    low_end = max(0, first - LEAD_CHARS)
    starts = [m.start() for m in WORD_RE.finditer(low, low_end, first)]
    if low_end and starts and starts[0] == low_end and low[low_end - 1].isalnum():
        starts.pop(0)  # a word cut in two by the look-back
    if not low_end and len(starts) <= LEAD_WORDS:
        start = 0
    else:
        start = starts[-LEAD_WORDS] if len(starts) >= LEAD_WORDS else (starts[0] if starts else first)
    return _cut(text, start, max_chars, hits), True


def _occurrences(low: str, found: dict[str, str], base: int, end: int) -> list[tuple]:
    """(start, end, term) of each whole-word occurrence of the matched words in
    low[base:end], in order (str.find runs in C; the first MAX_HITS only)."""
    out = []
    for w, term in found.items():
        n = len(w)
        i = low.find(w, base, end)
        while i >= 0:
            k = i + n
            if (i == 0 or not low[i - 1].isalnum()) and (k >= len(low) or not low[k].isalnum()):
                out.append((i, k, term))
            i = low.find(w, i + 1, end)
    out.sort()
    return out[:MAX_HITS]


def _cut(text: str, start: int, max_chars: int, marks=()) -> str:
    """text[start:start + max_chars] without a word cut in two at the end,
    HTML-escaped, with the marks inside it wrapped in <mark>."""
    end = min(len(text), start + max_chars)
    if end < len(text) and text[end].isalnum():
        cut = end
        while cut > start and text[cut - 1].isalnum():
            cut -= 1
        if cut > start:  # unless one word fills the whole snippet
            end = cut
    out = ["…"] if start > 0 else []
    pos = start
    for s, e, _ in marks:
        if s < pos or e > end:
            continue
        out.append(html.escape(text[pos:s]))
        out.append("<mark>" + html.escape(text[s:e]) + "</mark>")
        pos = e
    out.append(html.escape(text[pos:end]))
    if end < len(text):
        out.append("…")
    # Line breaks of the source mean nothing in a one-line snippet.
    return _SPACES_RE.sub(" ", "".join(out)).strip()
