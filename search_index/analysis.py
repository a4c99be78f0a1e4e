"""Text analysis: folding, elisions, Arabic normalisation, stemming, stop words.

Everything is done in Python so that documents and queries go through exactly
the same functions; SQLite's FTS5 then only splits the produced, space-joined
tokens (its own ``porter`` tokenizer only knows English).

Order matters and is the same everywhere: NFC -> strip elisions -> lower case ->
split into words -> fold (accents, ligatures, Arabic letter variants) -> stem.
Folding happens *before* stemming so that "securite" typed without accents and
"sécurité" in a lesson give the same stem.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata

import snowballstemmer

#: Bump when any output of this module changes: the index must then be rebuilt.
ANALYZER_VERSION = 1

#: Languages with a stemmer. Others are folded but not stemmed.
STEMMED_LANGUAGES = ("fr", "nl", "en", "ar")

# A word is a run of letters/digits. The underscore is excluded because FTS5's
# unicode61 tokenizer treats it as a separator and both sides must agree.
WORD_RE = re.compile(r"[^\W_]+")

# French (and Catalan/Italian-like) elisions: "l'ordinateur" -> "ordinateur".
# Both the ASCII and the typographic apostrophe occur in real lessons.
ELISION_RE = re.compile(
    r"(?<![^\W_])(?:qu|jusqu|lorsqu|puisqu|quoiqu|[ldjnmtsc])['’ʼ]",
    re.IGNORECASE,
)

# Arabic: harakat (short vowels, shadda, sukun...), superscript alef, tatweel.
_AR_DIACRITICS_RE = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_AR_TRANSLATE = str.maketrans({
    "أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا",   # alef forms
    "ؤ": "و", "ئ": "ي",                         # hamza on carriers
    "ى": "ي",                                   # alef maqsura
    "ة": "ه",                                   # ta marbuta
    "ک": "ك", "ی": "ي",                         # Persian/Urdu look-alikes
})
# Digits written with Arabic-Indic or Persian glyphs are searched as 0-9.
_DIGITS = str.maketrans({
    **{chr(0x0660 + i): str(i) for i in range(10)},
    **{chr(0x06F0 + i): str(i) for i in range(10)},
})
_LIGATURES = str.maketrans({"œ": "oe", "æ": "ae", "ĳ": "ij", "ß": "ss", "ø": "o", "đ": "d", "ł": "l"})
_ARABIC_RE = re.compile("[\u0600-\u06ff\u0750-\u077f]")


def primary_language(tag: str | None) -> str:
    """'fr-BE' -> 'fr'; empty or missing -> ''."""
    if not tag:
        return ""
    return tag.replace("_", "-").split("-", 1)[0].lower()


def is_arabic(word: str) -> bool:
    return _ARABIC_RE.search(word) is not None


def _fold_uncached(word: str) -> str:
    word = word.translate(_LIGATURES).translate(_DIGITS)
    if is_arabic(word):
        word = _AR_DIACRITICS_RE.sub("", word).translate(_AR_TRANSLATE)
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


# Words each analysis cache keeps before it starts again. Indexing a large ZIM meets a
# new word in nearly every title (numbers, names), and 100,000 cached words take ~20 MB
# per cache (fold, stem, terms). A corpus's common words come back within a few
# documents, so a small bound costs little re-analysis.
CACHE_WORDS = 50_000

_fold_cache: dict[str, str] = {}


def fold(word: str) -> str:
    """Lower-cased word -> accent-free, Arabic-normalised form (cached)."""
    folded = _fold_cache.get(word)
    if folded is None:
        if len(_fold_cache) > CACHE_WORDS:
            _fold_cache.clear()
        folded = _fold_cache[word] = _fold_uncached(word)
    return folded


@functools.cache
def _combining_re() -> re.Pattern:
    """Every combining mark of the Basic Multilingual Plane (built on first use)."""
    marks = "".join(re.escape(chr(c)) for c in range(0x300, 0x10000) if unicodedata.combining(chr(c)))
    return re.compile(f"[{marks}]+")


# Text fold_text() leaves to the word-by-word path: Arabic letter variants and
# ligatures are rewritten by str.translate, which is slow on a whole text.
_TRANSLATED_RE = re.compile("[\u0600-\u06ff\u0750-\u077fœæĳßøđł]")


def fold_text(text: str) -> str | None:
    """``fold`` applied to a whole lower-cased text at once (in C), for substring
    tests; None for text with Arabic letters or ligatures (fold them word by word)."""
    if text.isascii():
        return text
    if _TRANSLATED_RE.search(text):
        return None
    return _combining_re().sub("", unicodedata.normalize("NFKD", text))


def fold_all(ws: list[str]) -> list[str]:
    """``fold`` of each word; a dict lookup per word (in C) when cached."""
    out = list(map(_fold_cache.get, ws))
    if None in out:
        out = list(map(fold, ws))
    return out


# --- Arabic light stemmer (in the spirit of Larkey's "light10") -------------
# Prefixes and suffixes are already in folded form (ة -> ه, ى -> ي).
_AR_PREFIXES = ("وال", "بال", "كال", "فال", "لل", "ال")
_AR_SUFFIXES = ("ها", "ان", "ات", "ون", "ين", "يه", "ه", "ي")


def stem_arabic(word: str) -> str:
    """Strip the conjunction و, one article form and one common suffix (light10-like).

    ب، ك، ف، ل are only stripped together with the article (بال، كال...):
    alone they begin too many ordinary words (كسور, فهم, بنك).
    """
    if len(word) >= 4 and word[0] == "و":
        word = word[1:]
    for p in _AR_PREFIXES:
        if word.startswith(p) and len(word) - len(p) >= 2:
            word = word[len(p):]
            break
    for s in _AR_SUFFIXES:
        if word.endswith(s) and len(word) - len(s) >= 3:
            word = word[: -len(s)]
            break
    return word


_SNOWBALL = {"fr": "french", "en": "english", "nl": "dutch_porter"}
# Snowball stemmer objects are not thread-safe (they keep state); one per thread
# would be wasteful, so stemming goes through the caches below and a lock-free
# dict (the GIL keeps dict operations atomic). The stemmers themselves are only
# called under _stem_lock.
_stem_lock = threading.Lock()
_stemmers = {lang: snowballstemmer.stemmer(name) for lang, name in _SNOWBALL.items()}
_stem_cache: dict[str, dict[str, str]] = {lang: {} for lang in (*_SNOWBALL, "ar", "")}


def stem(folded: str, lang: str) -> str:
    """Stem an already folded word for ``lang`` (primary subtag). Cached per language.

    Arabic-script words are always stemmed with the Arabic stemmer, whatever the
    document's language, so an Arabic word in a French lesson is still found.
    """
    if is_arabic(folded):
        lang = "ar"
    elif lang not in _SNOWBALL:
        return folded
    cache = _stem_cache[lang]
    out = cache.get(folded)
    if out is None:
        if lang == "ar":
            out = stem_arabic(folded)
        else:
            with _stem_lock:
                out = _stemmers[lang].stemWord(folded)
        if len(cache) > CACHE_WORDS:
            cache.clear()
        cache[folded] = out
    return out


def reset_after_fork() -> None:
    """In a forked worker: fresh stemmer lock and stemmers (another thread of the
    parent may have held them when it forked)."""
    global _stem_lock
    _stem_lock = threading.Lock()
    for lang, name in _SNOWBALL.items():
        _stemmers[lang] = snowballstemmer.stemmer(name)


def normalize(text: str) -> str:
    """NFC, elisions removed, lower case: the text words are taken from."""
    if not text:
        return ""
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    if "'" in text or "’" in text or "ʼ" in text:
        text = ELISION_RE.sub(" ", text)
    return text.lower()


def words(text: str) -> list[str]:
    """Lower-cased words with accents kept (used for display forms and snippets)."""
    return WORD_RE.findall(normalize(text))


_term_caches: dict[str, dict[str, str]] = {}


def terms_of(ws: list[str], lang: str) -> list[str]:
    """Index terms of already split words (``words()``) for a document in ``lang``.

    One dict lookup per word on the hot path: a lower-cased word maps straight
    to its folded stem for the language (a corpus reuses few distinct words).
    """
    cache = _term_caches.get(lang)
    if cache is None:
        cache = _term_caches.setdefault(lang, {})
    out = list(map(cache.get, ws))
    if None in out:
        if len(cache) > CACHE_WORDS:
            cache.clear()
        for i, t in enumerate(out):
            if t is None:
                w = ws[i]
                t = cache[w] = stem(fold(w), lang)
                out[i] = t
    return out


def analyze(text: str, lang: str) -> list[str]:
    """Index terms of ``text`` for a document in ``lang`` (primary subtag)."""
    return terms_of(words(text), lang)


def analyze_joined(text: str, lang: str) -> str:
    return " ".join(analyze(text, lang))


def variants(word: str, languages: tuple[str, ...] = STEMMED_LANGUAGES) -> list[str]:
    """Every form a query word may take in the index: its stem in each language.

    The learner rarely says which language they type in, so a query word is
    looked for under each language's stem (and unstemmed, for languages without
    a stemmer). Cross-language collisions are rare and mostly harmless.
    """
    f = fold(word)
    out = [f]
    for lang in languages:
        s = stem(f, lang)
        if s not in out:
            out.append(s)
    return out


# --- Stop words ---------------------------------------------------------------
# Short lists of function words, in folded form. They are indexed (so a query
# made only of stop words, like "the who" or "le", still finds something) but
# dropped from queries that also contain real words.
STOP_WORDS: dict[str, frozenset[str]] = {
    "fr": frozenset(["a", "au", "aux", "avec", "ce", "ces", "c", "dans", "de", "des", "du", "elle", "en", "et", "eux", "il", "ils", "je", "j", "la", "le", "les", "leur", "lui", "ma", "mais", "me", "meme", "mes", "moi", "mon", "ne", "nos", "notre", "nous", "on", "ou", "par", "pas", "pour", "qu", "que", "qui", "sa", "se", "ses", "son", "sur", "ta", "te", "tes", "toi", "ton", "tu", "un", "une", "vos", "votre", "vous", "y", "est", "sont", "etre", "ete", "cette", "cet", "d", "l", "n", "s", "t", "m", "qu", "ou", "comme", "plus"]),
    "en": frozenset(["a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "from", "has", "have", "he", "her", "his", "i", "if", "in", "into", "is", "it", "its", "of", "on", "or", "she", "so", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "to", "was", "we", "were", "what", "when", "which", "who", "will", "with", "you", "your", "do", "does", "how"]),
    "nl": frozenset(["de", "het", "een", "en", "van", "ik", "te", "dat", "die", "in", "is", "niet", "op", "aan", "met", "als", "voor", "er", "maar", "om", "hem", "dan", "zij", "was", "ze", "zo", "hij", "bij", "of", "ook", "tot", "je", "mij", "uit", "der", "wat", "wordt", "door", "naar", "u", "hoe", "deze", "dit", "zijn", "we", "wij", "jij"]),
    "ar": frozenset(fold(w) for w in ["في", "من", "على", "الى", "إلى", "عن", "مع", "هذا", "هذه", "ذلك", "التي", "الذي", "ما", "لا", "أن", "إن", "او", "أو", "ثم", "كل", "هو", "هي", "و", "ب", "ل", "ك", "ف", "قد", "كان"]),
}
ALL_STOP_WORDS = frozenset().union(*STOP_WORDS.values())


def stop_words_for(languages: tuple[str, ...] | None) -> frozenset[str]:
    if not languages:
        return ALL_STOP_WORDS
    out: set[str] = set()
    for lang in languages:
        out |= STOP_WORDS.get(primary_language(lang), frozenset())
    return frozenset(out)
