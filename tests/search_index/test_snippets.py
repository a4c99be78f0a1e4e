"""Snippets: the fast path (keys + bytes.find) marks exactly the words the
word-by-word analysis marks, and what a learner sees in a result list."""

import html
import unicodedata
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from passerelle.search_index import snippets
from passerelle.search_index.analysis import (
    STEMMED_LANGUAGES,
    fold,
    terms_of,
    variants,
    words,
)
from passerelle.search_index.snippets import Matcher, highlight


class WordByWord(Matcher):
    """The same decisions, made by analysing every distinct word of a piece."""

    def needles(self, lang):
        return None


def matcher(query: str, prefix: int = 0, cls=Matcher) -> Matcher:
    """A query's matcher as SearchIndex builds it; ``prefix`` letters of the
    last word are being typed."""
    ws = words(query)
    forms = set()
    for w in ws[:-1] if prefix else ws:
        forms.update(variants(w, STEMMED_LANGUAGES))
    prefixes = {fold(ws[-1])[:prefix]} if prefix and ws else set()
    return cls(forms, prefixes)


# --- what a learner sees ------------------------------------------------------------

def test_other_forms_of_the_word_are_marked(index, make_doc):
    # "happy" and "happiness" share the stem "happi", which "happy" does not
    # hold as such: the word is found all the same.
    index.index([make_doc("p/1", "Mood", "Today I am happy. Tomorrow, who knows?")])
    assert "<mark>happy</mark>" in index.search("happiness ").hits[0].snippet
    snippet, _ = highlight("Les chevaux et le cheval.", matcher("cheval"), "fr")
    assert snippet == "Les <mark>chevaux</mark> et le <mark>cheval</mark>."


def test_capitals_accents_ligatures_and_apostrophes(index, make_doc):
    index.index([
        make_doc("p/1", "Classe", "LES ÉLÈVES DE LA CLASSE lisent.", lang="fr"),
        make_doc("p/2", "Cœur", "Le cœur de l’ordinateur est le processeur.", lang="fr"),
    ])
    assert "<mark>ÉLÈVES</mark>" in index.search("eleves ").hits[0].snippet
    snippet = index.search("coeur ").hits[0].snippet
    assert "<mark>cœur</mark>" in snippet and "l’ordinateur" in snippet


def test_arabic_words_with_article_and_conjunction(index, make_doc):
    index.index([make_doc("p/1", "كلمة", "اختر كلمة المرور والمرور آمن.", lang="ar")])
    snippet = index.search("مرور ").hits[0].snippet
    assert "<mark>المرور</mark>" in snippet and "<mark>والمرور</mark>" in snippet


def test_word_being_typed(index, make_doc):
    index.index([make_doc("p/1", "Sécurité", "La sécurité des comptes en ligne.", lang="fr")])
    assert "<mark>sécurité</mark>" in index.search("secu").hits[0].snippet


def test_match_far_into_a_long_text():
    text = "Mot de passe. " * 700 + "Le hameçonnage arrive par courriel."
    snippet, marked = highlight(text, matcher("hameconnage"), "fr")
    assert marked and "<mark>hameçonnage</mark>" in snippet and snippet.startswith("…")


def test_scripts_without_keys_go_word_by_word():
    m = matcher("привет")
    assert m.needles("ru") is None
    snippet, marked = highlight("Он сказал: Привет, мир!", m, "ru")
    assert marked and "<mark>Привет</mark>" in snippet


def test_text_in_a_script_without_keys():
    # Cyrillic letters have no keys: a Latin word written in full-width letters
    # among them is found all the same, and a text without it is ruled out.
    text = "Пароль и логин. " * 200 + "Ваш ｐａｓｓｗｏｒｄ здесь."
    snippet, marked = highlight(text, matcher("password"), "ru")
    assert marked and "<mark>ｐａｓｓｗｏｒｄ</mark>" in snippet
    assert not highlight(text[:3000], matcher("password"), "ru")[1]


def test_a_stemmer_without_known_rewrites_goes_word_by_word():
    with mock.patch.dict(snippets.STEM_REWRITES, clear=True):
        m = matcher("wachtwoorden")
        assert m.needles("nl") is None
        assert highlight("Kies een sterk wachtwoord.", m, "nl")[0].count("<mark>") == 1


# --- the fast path marks what the word-by-word path marks -----------------------------

WORDS = {
    "fr": ["élève", "ÉLÈVES", "sécurité", "Sécurité", "cœur", "Œuvre", "chevaux", "cheval",
           "explicatif", "expliquer", "récemment", "récent", "sciemment", "l'ordinateur",
           "l’école", "qu'il", "mot", "mots", "passe", "hameçonnage", "naïf", "Noël", "ÇA",
           "garçon", "électricité", "électrique", "communication"],
    "nl": ["wachtwoord", "wachtwoorden", "wijsheden", "wijsheid", "ĳs", "IJsland", "België",
           "reëel", "maan", "manen", "veiligheid", "mogelijkheden"],
    "en": ["happy", "happiness", "study", "studies", "dying", "die", "lying", "tie", "tying",
           "password", "Passwords", "ability", "possible", "possibility", "İstanbul", "ℍello",
           "straße", "ﬁle", "ﬁnance", "½", "x²", "µm", "e\u0301cole", "x\u0301y"],
    "ar": ["المرور", "والمرور", "مرور", "كلمة", "كلمات", "الكسور", "كسور", "بالكسور", "فالكسر",
           "للطلاب", "كـلمة", "كَلِمَة", "٣", "١٢", "أمان", "الأمان", "إدخال", "مدرسة", "ﻻ", "ﷲ",
           "وال", "abcك", "والabc"],
    "": ["Σοφία", "ΟΔΟΣ", "λόγος", "ΛΌΓΟΣ'Α", "привет", "Привет", "日本語", "_under_score",
         "abc_def", "Ǆemal", "ǿ", "ø", "Ⅻ",
         # plain words that match the odd ones above
         "istanbul", "hello", "file", "strasse", "oeuvre", "coeur", "ecole", "ijs", "abc", "xii"],
}
POOL = [w for ws in WORDS.values() for w in ws]
SEPARATORS = [" ", " ", " ", ", ", ". ", "\n", "\xa0", " « ", " » ", "’", "'", " ? ", " → ",
              "_", "-", " <b>", " & ", '"', "\u202f", "\t\t", "…", "؟ ", "، "]
LANGS = ["fr", "en", "nl", "ar", "", "de"]

word = st.one_of(st.sampled_from(POOL),
                 st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                          min_size=1, max_size=6))
texts = st.lists(st.tuples(word, st.sampled_from(SEPARATORS)), min_size=1, max_size=40).map(
    lambda parts: "".join(w + s for w, s in parts))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.lists(st.one_of(st.sampled_from(POOL), word), min_size=1, max_size=3),
       st.integers(0, 6), st.sampled_from([800, 25]), st.sampled_from([64, 2]), st.sampled_from([32, 0]))
def test_fast_path_marks_what_word_by_word_marks(text, query_words, prefix, piece, max_hits, runs):
    query = " ".join(query_words)
    with mock.patch.object(snippets, "PIECE_CHARS", piece), \
            mock.patch.object(snippets, "MAX_HITS", max_hits), \
            mock.patch.object(snippets, "_FEW_WILDCARDS", runs):
        for lang in LANGS:
            fast, slow = matcher(query, prefix), matcher(query, prefix, WordByWord)
            if not fast:
                continue
            prepared = snippets._prepare(text)
            needles = fast.needles(lang)
            if needles is not None:
                assert snippets._scan_keys(prepared, fast, lang, needles) == \
                    snippets._scan_words(snippets._lower_same_length(prepared), slow, lang)
            assert highlight(text, fast, lang) == highlight(text, slow, lang)


SUFFIXES = {
    "fr": ["", "e", "es", "s", "ement", "ements", "ation", "ations", "ateur", "atrice", "ication",
           "icatif", "icative", "icite", "ite", "ites", "abilite", "iste", "isme", "able", "ible",
           "euse", "euses", "eux", "aux", "eaux", "logie", "usion", "ution", "ence", "ences",
           "amment", "emment", "ment", "issement", "ir", "issant", "ions", "er", "ier", "iere",
           "yer", "aye", "enne", "onne", "ette", "elle", "eille", "ique", "iques", "if", "ive",
           "ivement", "atif", "uit", "qua"],
    "en": ["", "s", "es", "ies", "ied", "ing", "ingly", "ed", "edly", "eed", "y", "ly", "ness",
           "ful", "fulness", "less", "lessly", "ational", "tional", "enci", "ency", "ance", "ancy",
           "able", "ably", "ability", "ibility", "ible", "izer", "ization", "ize", "izing",
           "ation", "ator", "alism", "ality", "ally", "ously", "ousness", "iveness", "ivity",
           "bility", "logy", "alize", "icate", "icity", "ical", "ative", "ement", "ment", "ent",
           "ism", "ate", "iti", "ous", "ive", "ion", "sion", "tion", "ying", "yed", "ie"],
    "nl": ["", "en", "ene", "e", "s", "se", "heden", "heid", "end", "ende", "ing", "ig", "lijk",
           "baar", "bar", "tje", "je", "aan", "oon", "ijk", "ingen", "elijk", "isch"],
}


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(sorted(SUFFIXES)), st.text("abcdefghijklmnopqrstuvwxyzaeiouy", min_size=1,
                                                    max_size=8), st.data())
def test_stems_begin_like_their_words(lang, stem_, data):
    """The assumption behind the needles (STEM_REWRITES): every word whose stem
    a query holds, or whose stem starts with the word being typed, is proposed."""
    w = stem_ + data.draw(st.sampled_from(SUFFIXES[lang]))
    t = terms_of([w], lang)[0]
    k = data.draw(st.integers(1, max(1, len(t))))
    for m in (Matcher({t}, set()), Matcher(set(), {t[:k]})):
        assert snippets._scan_keys(w, m, lang, m.needles(lang)) == [(0, len(w), t)], (w, t)


@pytest.mark.parametrize(("lang", "word"), [
    ("fr", "sciemment"), ("fr", "applicatif"), ("fr", "récemment"), ("fr", "indicateurs"),
    ("fr", "chevaux"), ("fr", "heureusement"), ("en", "dying"), ("en", "lying"), ("en", "vying"),
    ("en", "happy"), ("en", "possibility"), ("nl", "wijsheden"), ("nl", "goedheden"),
    ("nl", "maan"), ("nl", "boom"),
])
def test_rewritten_stems_are_still_found(lang, word):
    t = terms_of([word], lang)[0]
    assert not fold(word).startswith(t)  # the stemmer rewrote its end
    snippet, marked = highlight(f"Un {word} là.", Matcher({t}, set()), lang)
    assert f"<mark>{word}</mark>" in snippet


# --- the parts ----------------------------------------------------------------------

@given(st.text(st.characters(codec="utf-8", categories=("L", "N", "Mn", "Mc")), max_size=12))
def test_folding_works_character_by_character(w):
    assert fold(w) == "".join(map(fold, w))


@settings(max_examples=300)
@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40))
def test_keys_are_one_byte_a_character(text):
    keys = snippets._keys(text)
    assert len(keys) == len(text)
    for i, ch in enumerate(text):
        # The key of its lower case whatever the codec, unless the codec does
        # not know it (a wildcard).
        assert keys[i] in (snippets._key(ch), snippets._ANY)
        assert snippets._key(ch) == snippets._key(snippets._lower_char(ch))


@settings(max_examples=300)
@given(st.text(st.sampled_from("ae\u0301\u0300\u0327\u0308cÅ\u212bİ éß’ﬁ\u1100\u1161가"), max_size=60),
       st.integers(1, 30))
def test_prepare_normalises_only_the_beginning(text, limit):
    assert snippets._prepare(text, limit) == unicodedata.normalize("NFC", text)[:limit]


@settings(max_examples=300, deadline=None)
@given(texts, st.sampled_from(POOL + ["b", "amp", "script"]), st.sampled_from(LANGS))
def test_snippets_stay_escaped(text, query, lang):
    snippet, marked = highlight(text, matcher(query), lang)
    plain = snippet.replace("<mark>", "").replace("</mark>", "")
    assert snippet.count("<mark>") == snippet.count("</mark>") == (snippet.count("<") // 2)
    assert not any(c in plain for c in "<>\"'")
    assert html.escape(html.unescape(plain)) == plain
    assert marked == ("<mark>" in snippet)
    shown = " ".join(html.unescape(plain).strip("…").split())
    assert shown in " ".join(snippets._prepare(text).split())
