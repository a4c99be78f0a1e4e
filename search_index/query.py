"""Learner input -> FTS5 MATCH expressions, without ever passing raw input to FTS5.

The learner's text is reduced to words and quoted phrases; every token that
reaches FTS5 is made of letters and digits only and is double-quoted, so FTS5
operators typed by a learner (AND, NEAR, *, ^, :, -, parentheses, quotes) are
plain words or separators, never syntax.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from rapidfuzz.distance import OSA
from rapidfuzz.process import extract

from .analysis import (
    STEMMED_LANGUAGES,
    WORD_RE,
    fold,
    is_arabic,
    normalize,
    primary_language,
    stem,
    stem_arabic,
    stop_words_for,
    variants,
)

#: Tokens of the ``words`` column (unstemmed, only reached by the word being
#: typed) and of the ``filt`` column (kind, language, pack, sample) begin with
#: MARK. The tokenizer keeps "_" inside tokens, and a learner's word never
#: contains one (WORD_RE), so an unmarked query token can only match the
#: stemmed columns and a marked one only its own column: no FTS5 column
#: filter is needed, and a column filter made every phrase and AND query read
#: and check positions (1.5-4x the time of the same query without it).
MARK = "_"
#: Filter tokens begin with two: a ``words`` token is MARK + a word, and a word
#: never holds "_", so the two kinds of marked tokens never meet either.
FILTER_MARK = MARK * 2

MAX_QUERY_CHARS = 300
MAX_TERMS = 12  # a pasted paragraph must not become a huge expression
MIN_PREFIX = 2

_QUOTES_RE = re.compile('["“”«»„]')

# Words that name a kind of content, in folded form. A learner typing
# "vidéo mot de passe" wants videos about passwords.
_KIND_WORDS_RAW = {
    "video": """video videos film films filmpje filmpjes clip clips
                فيديو فيديوهات الفيديو مقطع""",
    "audio": """audio audios podcast podcasts geluid enregistrement enregistrements
                صوت صوتي تسجيل""",
    "document": """pdf pdfs document documents doc docs fiche fiches
                   وثيقة وثائق مستند ملف""",
    "article": """article articles artikel artikelen lesson lecon lecons les lessen
                  texte tekst مقال مقالة مقالات درس""",
    "exercise": """exercise exercises exercice exercices oefening oefeningen quiz quizz
                   quizzes toets toetsen test tests تمرين تمارين اختبار""",
    "html5": """game games jeu jeux spel spelletje spelletjes activite activites
                لعبة العاب""",
}
KIND_WORDS: dict[str, str] = {}
for _kind, _words in _KIND_WORDS_RAW.items():
    for _w in _words.split():
        _f = fold(_w)
        KIND_WORDS[_f] = _kind
        if is_arabic(_f):
            KIND_WORDS[stem_arabic(_f)] = _kind


def kind_of_word(word: str) -> str | None:
    f = fold(word)
    kind = KIND_WORDS.get(f)
    if kind is None and is_arabic(f):
        kind = KIND_WORDS.get(stem_arabic(f))
    return kind


def tier_token(form: str) -> str:
    """Token put in the ``filt`` column for each analysed word of a document's
    title and tags: whether a document holds a word there is then a plain
    doclist lookup, with no column filter (see ``SearchIndex._ranked``)."""
    return FILTER_MARK + "t" + form


def filter_token(prefix: str, value: str) -> str:
    """Token put in the ``filt`` column for a kind/language/pack value.

    Simple lower-case ASCII values are kept readable; anything else (pack ids
    with dashes, dots...) is hashed so it is always a single FTS5 token.
    """
    if value.isascii() and value.isalnum() and value.islower():
        return FILTER_MARK + prefix + value
    return FILTER_MARK + prefix + "h" + hashlib.sha1(value.encode("utf-8")).hexdigest()[:16]


def quote(token: str) -> str:
    # Tokens only contain letters and digits (WORD_RE), but quoting twice is
    # cheap insurance: a double quote inside a FTS5 string is written "".
    return '"' + token.replace('"', '""') + '"'


@dataclass
class Term:
    """One word or quoted phrase of the query, lower-cased with accents kept."""

    words: list[str]
    phrase: bool = False
    prefix: bool = False
    # Filled by the fuzzy step: replacement folded words for a typo.
    corrections: list[str] = field(default_factory=list)
    # Filled for a prefix term: the most frequent known words (folded) that
    # start with it. FTS5 keeps no prefix index (it cost ~40% of the inserts);
    # the vocabulary expands the word being typed instead.
    completions: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        joined = " ".join(self.words)
        return f'"{joined}"' if self.phrase else joined


@dataclass
class ParsedQuery:
    terms: list[Term]
    kind_terms: list[Term]
    kinds: list[str]


def parse(query: str, languages: tuple[str, ...] | None = None) -> ParsedQuery:
    """Split a learner's query into words and phrases; spot kind words."""
    query = (query or "")[:MAX_QUERY_CHARS]
    text = normalize(query)
    # Text between a pair of quote marks is a phrase; a lone quote is ignored.
    parts = _QUOTES_RE.split(text)
    if len(parts) % 2 == 0:  # unbalanced: the last quote opens nothing
        parts[-2] = parts[-2] + " " + parts[-1]
        parts.pop()
    terms: list[Term] = []
    for i, part in enumerate(parts):
        ws = WORD_RE.findall(part)
        if not ws:
            continue
        if i % 2 == 1 and len(ws) > 1:
            terms.append(Term(ws, phrase=True))
        else:
            terms.extend(Term([w]) for w in ws)
    terms = terms[:MAX_TERMS]
    # Search-as-you-type: the last word is a prefix unless the learner already
    # typed a space or closing quote after it.
    if (terms and not terms[-1].phrase and query and not query[-1].isspace()
            and not _QUOTES_RE.match(query[-1]) and len(fold(terms[-1].words[0])) >= MIN_PREFIX):
        terms[-1].prefix = True

    kind_terms = [t for t in terms if not t.phrase and kind_of_word(t.words[0])]
    kinds = sorted({kind_of_word(t.words[0]) for t in kind_terms})
    text_terms = [t for t in terms if t not in kind_terms]

    # Stop words are dropped unless nothing else is left ("the who", "le").
    stops = stop_words_for(languages)
    content = [t for t in text_terms if t.phrase or fold(t.words[0]) not in stops]
    if content:
        text_terms = content
    return ParsedQuery(terms=text_terms, kind_terms=kind_terms, kinds=kinds)


def term_expression(term: Term, languages: tuple[str, ...] = STEMMED_LANGUAGES) -> str:
    """FTS5 expression for one term: its variants in every language, OR-ed."""
    if term.phrase:
        return f"({' OR '.join(quote(p) for p in phrase_forms(term, languages))})"
    forms: list[str] = []
    for w in term.words + term.corrections:
        for v in variants(w, languages):
            if v not in forms:
                forms.append(v)
    if term.prefix and not term.corrections:
        # The word as typed and its completions, in the stemmed columns and
        # (marked) in the unstemmed ``words`` column alike.
        extra = [fold(term.words[0])]
        for c in term.completions:
            for v in variants(c, languages):
                if v not in extra:
                    extra.append(v)
        forms += [v for v in extra if v not in forms]
        forms += [MARK + v for v in extra]
    else:
        # The word itself, unstemmed, in title, tags and description: a
        # title holding the very word typed ranks above one holding another
        # word of the same stem.
        forms += [MARK + fold(w) for w in term.words + term.corrections]
    return f"({' OR '.join(quote(v) for v in forms)})"


def phrase_forms(term: Term, languages: tuple[str, ...] = STEMMED_LANGUAGES) -> list[str]:
    """A phrase as the index holds it: its folded words, and stemmed in each language."""
    out: list[str] = []
    for lang in ("", *languages):
        p = " ".join(stem(fold(w), lang) if lang else fold(w) for w in term.words)
        if p not in out:
            out.append(p)
    return out


def term_forms(terms: list[Term], languages: tuple[str, ...] = STEMMED_LANGUAGES) -> list[str]:
    """Every index form of every word of ``terms`` (phrases: their words' forms)."""
    out: list[str] = []
    for t in terms:
        for w in t.words + t.corrections + t.completions:
            for v in variants(w, languages):
                if v not in out:
                    out.append(v)
    return out


def match_expression(terms: list[Term], operator: str = "AND",
                     languages: tuple[str, ...] = STEMMED_LANGUAGES) -> str:
    return f" {operator} ".join(f"({term_expression(t, languages)})" for t in terms)


def filter_expression(kinds=None, languages=None, packs=None) -> str:
    """Clauses over the ``filt`` column's (marked) tokens, AND-ed; empty string
    when nothing is filtered."""
    clauses = []
    for prefix, values in (("k", kinds), ("l", languages), ("p", packs)):
        if not values:
            continue
        if prefix == "l":
            values = {primary_language(v) for v in values}
        toks = sorted({quote(filter_token(prefix, v)) for v in values if v})
        if toks:
            clauses.append(f"({' OR '.join(toks)})")
    return " AND ".join(clauses)


def label_token(facet: str, value: str) -> str:
    """Token put in the ``filt`` column for a document's label (``facet``, ``value``)."""
    return filter_token("f", f"{facet}\x1f{value}")


def label_expression(labels: dict[str, list[str]] | None) -> str:
    """Documents with one of the values of every facet given, AND-ed; "" for none."""
    clauses = []
    for facet, values in sorted((labels or {}).items()):
        toks = sorted({quote(label_token(facet, v)) for v in values if v})
        if toks:
            clauses.append(f"({' OR '.join(toks)})")
    return " AND ".join(clauses)


# --- Edit distance --------------------------------------------------------------

def damerau_levenshtein(a: str, b: str, max_dist: int) -> int:
    """Optimal-string-alignment distance (an edit, or a swap of two neighbours),
    or max_dist + 1 when it is larger than max_dist.

    RapidFuzz computes it in C++ (bit-parallel, Hyyrö 2003) in about a
    microsecond: the hand-written bit-parallel loop it replaces cost 26 us per
    pair in Python, and a typo is compared with hundreds of known words
    (20% of all search time in the benchmark's mixed queries)."""
    return OSA.distance(a, b, score_cutoff=max_dist)


def within_typos(word: str, candidates: list[str], max_dist: int) -> dict[str, int]:
    """The candidates within ``max_dist`` of ``word`` (``damerau_levenshtein``),
    with their distance. One call into RapidFuzz for the whole list: a typo's
    candidates are a few thousand words, and a Python loop over them cost
    three times as much as the distances themselves."""
    return {c: int(d) for c, d, _ in extract(word, candidates, scorer=OSA.distance,
                                             score_cutoff=max_dist, limit=None)}


def max_typos(word: str) -> int:
    n = len(word)
    if n <= 3:
        return 0
    if n <= 5:
        return 1
    return 2
