"""Snippets with ``<mark>`` around matched words, built from the original text.

FTS5's own ``snippet()`` would show the stored (stemmed, folded) tokens, and
is not available on a contentless table anyway, so snippets are made here: a
word of the original text is marked when the document language's analyzer
gives it a stem the query looked for (or, for the word being typed, when its
folded form or its stem starts with it). Everything else is HTML-escaped.

Cost: a result page highlights ~22 texts, so highlight() must cost a
few C-level calls, not a Python step per word. A piece of text is turned into
*keys*, one byte per character by a codec and ``bytes.translate`` ("é" -> "e",
Arabic letter variants -> one byte per folded letter, what folds to several
characters or none -> a wildcard); ``bytes.find`` of the query terms' first
letters in the keys proposes the few words that can match, and only those are
analysed, by the same cached functions as indexing. Scripts keys cannot express
are analysed word by word.
"""

from __future__ import annotations

import codecs
import html
import re
import unicodedata
from itertools import compress, filterfalse, repeat

from .analysis import _SNOWBALL, WORD_RE, fold, fold_all, fold_text, is_arabic, terms_of

SCAN_CHARS = 20_000   # a 300-page PDF must not make one result page slow
PIECE_CHARS = 800     # text analysed at a time, until a piece matches
MAX_HITS = 64         # matched words of a piece considered for the window
WINDOW_CHARS = 200    # the window whose distinct query terms are counted (~28 words)
LEAD_WORDS = 4        # words of context before the first mark...
LEAD_CHARS = 60       # ...looked for this far back

# A stem begins like its word's folded form but for its last letter, which the
# stemmer may have rewritten ("happy" -> "happi", "chevaux" -> "cheval"), or its
# last two after these endings ("explicatif" -> "expliqu", "récemment" ->
# "recent", "dying" -> "die", "wijsheden" -> "wijsheid"); the first letter is
# never rewritten. Read off the Snowball rules (their replacement strings) and
# checked on the 837,000 words of Debian's French, English and Dutch word lists:
# no stem breaks it. A Snowball language missing here is analysed word by word.
STEM_REWRITES = {"fr": ("qu", "nt"), "en": ("ie",), "nl": ("id",)}

# --- keys ---------------------------------------------------------------------
# Each character of the text becomes one byte, the key of its lower case: a
# letter or digit whose folded form is one ASCII letter or digit -> that; one
# whose folded form is one Arabic letter -> a byte >= 0x80 per folded letter;
# any other word character (ligatures, "ß", tatweel, "İ", scripts without keys)
# and any character the codec does not know -> _ANY, a wildcard (the word
# holding it is analysed); other characters -> _SEP. Folding works character
# by character, so a word's keys are its folded form, wildcards aside.
_SEP, _ANY = 0x20, 0x7F
_ANY_KEY = bytes([_ANY])
_ANY_RUN_RE = re.compile(re.escape(_ANY_KEY) + b"+")
_FEW_WILDCARDS = 32   # in a piece, worth looking at one by one
_LATIN_KEYS = b"0123456789abcdefghijklmnopqrstuvwxyz"

# Latin-1 text (English, Dutch, most French) goes through the latin-1 codec.
# Other text goes through a charmap codec of ASCII and the characters below
# (French and Arabic letters and punctuation); the rest become "?" -> _ANY.
_CHARMAP_CHARS = (
    "".join(chr(c) for c in range(0xDF, 0x100) if chr(c).isalnum())  # ß à..ÿ
    + "ÀÂÇÉÈÊÎÔ" + "ª²³µ¹º\xa0«»°·\xad"
    + "‘’“”…–—•€\u202f\u2009\u200c\u200d"
    + "".join(chr(c) for c in range(0x621, 0x63B))   # ء..غ
    + "".join(chr(c) for c in range(0x641, 0x653))   # ف..ي, harakat
    + "\u0670،؛؟٪" + "".join(chr(c) for c in range(0x660, 0x66A)) + "کی"
)
_ARABIC_KEYS = {f: 0x80 + i for i, f in enumerate(sorted(
    {f for f in map(fold, _CHARMAP_CHARS) if len(f) == 1 and is_arabic(f)}))}


def _lower_char(ch: str) -> str:
    low = ch.lower()
    return low if len(low) == 1 else ch  # as _lower_same_length does


def _key(ch: str) -> int:
    ch = _lower_char(ch)
    if not ch.isalnum():
        return _SEP
    f = fold(ch).lower()
    if len(f) == 1:
        if "0" <= f <= "9" or "a" <= f <= "z":
            return ord(f)
        return _ARABIC_KEYS.get(f, _ANY)
    return _ANY


_LATIN1_KEYS = bytes(_key(chr(b)) for b in range(256))
_CHARMAP_TABLE = "".join(map(chr, range(128))) + _CHARMAP_CHARS.ljust(128, "\ue000")
_CHARMAP = codecs.charmap_build(_CHARMAP_TABLE)
_CHARMAP_KEYS = bytes(_ANY if ch == "?" else _key(ch) for ch in _CHARMAP_TABLE)


def _keys(text: str) -> bytes:
    """One key byte per character of ``text``."""
    try:
        return text.encode("latin-1").translate(_LATIN1_KEYS)
    except UnicodeEncodeError:
        return codecs.charmap_encode(text, "replace", _CHARMAP)[0].translate(_CHARMAP_KEYS)


_UNSEEN = object()


class Matcher:
    """Decides which words of a document match one of the query's terms.

    Decisions are remembered per language for the life of the matcher (one
    query): the 20 hits of a page share most of their words.
    """

    def __init__(self, forms: set[str], prefixes: set[str]):
        self.forms = frozenset(forms)
        self.prefixes = tuple(prefixes)
        self._terms: dict[str, dict[str, str | None]] = {}   # lang -> word -> term or None
        self._needles: dict[str, tuple[bytes, ...] | None] = {}   # lang -> needles
        self._texts: dict[str, tuple[str, ...]] = {}   # lang -> needles as text
        # The word-by-word path's caches (see hits()).
        self._seen: dict[str, set[str]] = {}          # lang -> words already decided
        self._hits: dict[str, dict[str, str]] = {}    # lang -> matching word -> term

    def __bool__(self) -> bool:
        return bool(self.forms or self.prefixes)

    def term(self, word: str, lang: str) -> str | None:
        """The query term a word of the text matches, or None. The word is
        lower-cased here (it holds no "Σ", whose lower case needs the text)."""
        cache = self._terms.get(lang)
        if cache is None:
            cache = self._terms.setdefault(lang, {})
        t = cache.get(word, _UNSEEN)
        if t is _UNSEEN:
            low = _lower_same_length(word)
            t = terms_of([low], lang)[0]
            p = self.prefixes
            if not (t in self.forms or (p and (t.startswith(p) or low.startswith(p)
                                               or fold(low).startswith(p)))):
                t = None
            cache[word] = t
        return t

    def needles(self, lang: str) -> tuple[bytes, ...] | None:
        """Keys a word of a ``lang`` document that may match holds where it
        begins (or after the letters the Arabic stemmer strips), or None when
        keys cannot express a term (a script without keys, a stemmer missing
        from STEM_REWRITES): that document is then analysed word by word."""
        try:
            return self._needles[lang]
        except KeyError:
            pass
        out = None
        endings = STEM_REWRITES.get(lang, ()) if lang in _SNOWBALL else None
        if lang not in _SNOWBALL or endings:
            needles, texts = [], set()
            for s, is_stem in (*zip(self.forms, repeat(True)), *zip(self.prefixes, repeat(False))):
                # The letters a stemmer may have rewritten need not be in the word
                # (the Arabic stemmer strips a prefix and a suffix, rewriting
                # nothing). A typed prefix may end anywhere in a stem: two.
                tail = 0 if endings is None else 2 if not is_stem or s.endswith(endings) else 1
                texts.add(s[:max(1, len(s) - tail)].lower())
                k = _keys(s[:max(1, len(s) - tail)])
                for i, b in enumerate(k):
                    if b == _SEP or b == _ANY:
                        k = k[:i]
                        break
                needles.append(k)
            if all(needles):
                out = ()
                for n in sorted(set(needles), key=len):   # "passw" covers "password"
                    if not any(map(n.startswith, out)):
                        out += (n,)
            self._texts[lang] = tuple(texts)
        self._needles[lang] = out
        return out

    def may_hold(self, text: str, lang: str) -> bool:
        """False when no word of ``text`` can match: its folded form holds none
        of the needles (as text), in any case. Call needles(lang) first."""
        folded = fold_text(_lower_same_length(text))
        if folded is None:  # Arabic or ligatures: word by word
            return True
        return any(map(folded.lower().__contains__, self._texts[lang]))

    def hits(self, distinct: set[str], lang: str) -> dict[str, str]:
        """The words of ``distinct`` (lower case, as in the text) that match, with
        the query term each one matches (the word-by-word path)."""
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


def _prepare(text: str, limit: int = SCAN_CHARS) -> str:
    """The first ``limit`` characters of NFC(text), normalising little more than
    those: the body of a 300-page PDF is long. Latin-1 text is in NFC, and a
    text cut before a Latin-1 character normalises as its two parts (none
    combines with what comes before it)."""
    if text.isascii():
        return text[:limit]
    head = text[:limit]
    if len(text) <= limit or text[limit] <= "\xff":
        try:
            head.encode("latin-1")
            return head
        except UnicodeEncodeError:
            pass
    n = limit
    while True:
        m = _LATIN1_RE.search(text, n)
        cut = m.start() if m else len(text)
        out = unicodedata.normalize("NFC", text[:cut])
        if len(out) >= limit or cut == len(text):
            return out[:limit]
        n = 2 * n   # decomposed text shrinks when composed


_LATIN1_RE = re.compile(r"[\x00-\xff]")


def _lower_same_length(text: str) -> str:
    """Lower case, keeping every character's offset (spans found in the lowered
    text are used on the original). A few characters grow when lowered
    ("İ" -> "i̇"); they are kept as they are. Lowering keeps letters and
    digits what they are, so words are the same in both."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(map(_lower_char, text))


def _piece_end(text: str, base: int) -> int:
    """Where the piece of text analysed from ``base`` ends: PIECE_CHARS on, at
    the end of a word. The first piece usually matches, and a 300-page PDF is
    never analysed in full."""
    end = base + PIECE_CHARS
    if end >= len(text):
        return len(text)
    m = WORD_RE.match(text, end)
    return m.end() if m else end


def _pieces(text: str):
    """(start, end) of each piece of the text, in order."""
    base = 0
    while base < len(text):
        end = _piece_end(text, base)
        yield base, end
        base = end


def _scan_keys(text: str, matcher: Matcher, lang: str, needles: tuple[bytes, ...]) -> list[tuple]:
    """(start, end, term) of the matching words of the first piece holding one
    (the first MAX_HITS), like _scan_words. bytes.find in the keys proposes the
    words where a needle begins (not after an ASCII letter or digit: at the
    word's start, or after letters the Arabic stemmer strips) and the words
    holding a wildcard; Matcher.term decides. The first piece is looked at,
    then the rest at once: a text matching nowhere costs a few calls."""
    # Lower case depends on context for one letter only, a final sigma: such a
    # text is lowered whole; words are otherwise lowered by Matcher.term.
    src = _lower_same_length(text) if "Σ" in text else text
    term = matcher.term
    word_end, word_at = WORD_RE.match, WORD_RE.finditer
    first = _piece_end(text, 0)
    for base, stop in ((0, first), (first, len(text))):
        if base == stop:
            break
        keys = _keys(src[base:stop])
        find = keys.find
        starts = []
        for n in needles:
            i = find(n)
            while i >= 0:
                if not i or keys[i - 1] not in _LATIN_KEYS:
                    starts.append(base + i)
                i = find(n, i + 1)
        # The words in runs of wildcards. Text in a script without keys is all
        # wildcards: one C-level test tells when none of its words can match.
        wild = keys.count(_ANY_KEY)
        if wild and (wild <= _FEW_WILDCARDS or matcher.may_hold(src[base:stop], lang)):
            for r in _ANY_RUN_RE.finditer(keys):
                starts += [m.start() for m in word_at(src, base + r.start(), base + r.end())]
        starts.sort()
        hits: list[tuple] = []
        e = 0
        for p in starts:
            if p >= stop:  # the end of the piece of the first match
                break
            if p < e or not src[p].isalnum():  # the same word; a wildcard that is no letter
                continue
            s = p
            while s > base and src[s - 1].isalnum():  # the needle began inside the word
                s -= 1
            e = word_end(src, p).end()
            t = term(src[s:e], lang)
            if t is not None:
                if not hits:
                    while (stop := _piece_end(text, base)) <= s:
                        base = stop
                hits.append((s, e, t))
                if len(hits) == MAX_HITS:
                    break
        if hits:
            return hits
    return []


def _scan_words(low: str, matcher: Matcher, lang: str) -> list[tuple]:
    """What _scan_keys finds, analysing every distinct word of each piece."""
    for base, end in _pieces(low):
        found = matcher.hits(set(WORD_RE.findall(low, base, end)), lang)
        if found:
            return _occurrences(low, found, base, end)
    return []


def highlight(text: str, matcher: Matcher, lang: str, max_chars: int = 240) -> tuple[str, bool]:
    """Return (escaped snippet with <mark>, whether anything was marked)."""
    text = _prepare(text or "")
    if not text.strip():
        return "", False
    if not matcher:
        return _cut(text, 0, max_chars), False
    needles = matcher.needles(lang)
    if needles is None:
        hits = _scan_words(_lower_same_length(text), matcher, lang)
    else:
        hits = _scan_keys(text, matcher, lang, needles)
    if not hits:
        return _cut(text, 0, max_chars), False
    # The window holding the most distinct query terms wins; the earliest on
    # ties (a sliding window over the hits, in characters).
    best, best_score = 0, 0
    terms: dict[str, int] = {}
    j, n = 0, len(hits)
    for i, (s, _, term) in enumerate(hits):
        while j < n and hits[j][0] < s + WINDOW_CHARS:
            t = hits[j][2]
            terms[t] = terms.get(t, 0) + 1
            j += 1
        if len(terms) > best_score:
            best, best_score = i, len(terms)
        if terms[term] == 1:
            del terms[term]
        else:
            terms[term] -= 1
    # A few words of context before the first mark.
    first = hits[best][0]
    low_end = max(0, first - LEAD_CHARS)
    starts = [m.start() for m in WORD_RE.finditer(text, low_end, first)]
    if low_end and starts and starts[0] == low_end and text[low_end - 1].isalnum():
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
    # html.escape() is five str.replace calls a piece; most snippets need none.
    # Marked words are letters and digits only.
    escape = html.escape if any(map(text[start:end].__contains__, "&<>\"'")) else str
    out = ["…"] if start > 0 else []
    pos = start
    for s, e, _ in marks:
        if e > end:
            break
        if s < pos:
            continue
        out += escape(text[pos:s]), "<mark>", text[s:e], "</mark>"
        pos = e
    out.append(escape(text[pos:end]))
    if end < len(text):
        out.append("…")
    # Line breaks of the source mean nothing in a one-line snippet (split()
    # and the old r"\s+" agree on what a space is: str.isspace).
    return " ".join("".join(out).split())
