"""Snippets with ``<mark>`` around matched words, built from the original text.

FTS5's own ``snippet()`` would show the stored (stemmed, folded) tokens, so
snippets are made here: the original text is split into words, each word goes
through the document language's analyzer and is marked when its stem is one
the query looked for. Everything else is HTML-escaped.
"""

from __future__ import annotations

import html
import re
import unicodedata

from .analysis import WORD_RE, fold, terms_of

SCAN_CHARS = 20_000   # a 300-page PDF must not make one result page slow
PIECE_CHARS = 600
WINDOW_WORDS = 28
LEAD_WORDS = 4
_SPACES_RE = re.compile(r"\s+")


class Matcher:
    """Decides which words of a document match one of the query's terms."""

    def __init__(self, forms: set[str], prefixes: set[str]):
        self.forms = frozenset(forms)
        self.prefixes = tuple(prefixes)

    def __bool__(self) -> bool:
        return bool(self.forms or self.prefixes)

    def matches(self, ws: list[str], lang: str) -> list[str | None]:
        """For each word (as found in the text) the query term it matches, or None.

        Goes through the same cached analysis as indexing, so the cost per word
        is a couple of dict lookups.
        """
        lowered = list(map(str.lower, ws))
        terms = terms_of(lowered, lang)
        forms, prefixes = self.forms, self.prefixes
        if prefixes:
            folded = list(map(fold, lowered))
            return [t if t in forms else
                    (t if t.startswith(prefixes) or f.startswith(prefixes) else None)
                    for t, f in zip(terms, folded, strict=True)]
        return [t if t in forms else None for t in terms]


def _nfc(text: str) -> str:
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def highlight(text: str, matcher: Matcher, lang: str, max_chars: int = 240) -> tuple[str, bool]:
    """Return (escaped snippet with <mark>, whether anything was marked)."""
    text = _nfc(text or "")[:SCAN_CHARS]
    if not text.strip():
        return "", False
    # Look at the text a piece at a time: the first matching piece is usually
    # the first one, and a 300-page PDF is never analysed in full here.
    base = 0
    spans: list[tuple[int, int, str | None]] = []
    hits: list[int] = []
    while base < len(text) and matcher:
        end = min(len(text), base + PIECE_CHARS)
        if end < len(text):  # extend to the end of the word
            m = WORD_RE.match(text, end)
            end = m.end() if m else end
        piece_matches = list(WORD_RE.finditer(text, base, end))
        found = matcher.matches([m.group() for m in piece_matches], lang)
        if any(found):
            spans = [(m.start(), m.end(), t) for m, t in zip(piece_matches, found, strict=True)]
            hits = [i for i, t in enumerate(found) if t]
            break
        base = end
    if not hits:
        spans = [(m.start(), m.end(), None) for m in WORD_RE.finditer(text, 0, max_chars + 50)]
        return _cut(text, 0, len(text), max_chars, spans), False
    # The window holding the most distinct query terms wins; the earliest on ties.
    best, best_score = hits[0], 0
    for i in hits:
        seen = {spans[j][2] for j in hits if i <= j < i + WINDOW_WORDS}
        if len(seen) > best_score:
            best, best_score = i, len(seen)
    first = max(0, best - LEAD_WORDS)
    last = min(len(spans) - 1, first + WINDOW_WORDS)
    start = 0 if first == 0 and base == 0 else spans[first][0]
    end = len(text) if last == len(spans) - 1 and end == len(text) else spans[last][1]
    marked = {i for i in hits if first <= i <= last}
    return _cut(text, start, end, max_chars, spans, marked), True


def _cut(text, start, end, max_chars, spans, marked=frozenset()) -> str:
    end = min(end, start + max_chars)
    # Do not cut a word in two at the end.
    for s, e, _ in spans:
        if s < end < e:
            end = s
            break
    out = ["…"] if start > 0 else []
    pos = start
    for i in sorted(marked):
        s, e, _ = spans[i]
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
