"""Analyzers: folding, elisions, per-language stemming, Arabic normalisation, stop words."""

from hypothesis import given, settings
from hypothesis import strategies as st
from passerelle.search_index import analysis
from passerelle.search_index.analysis import (
    analyze,
    fold,
    normalize,
    stem,
    stem_arabic,
    variants,
    words,
)
from passerelle.search_index.query import damerau_levenshtein, parse, within_typos


def test_case_and_accent_folding():
    assert fold("élève") == "eleve"
    assert analyze("ÉLÈVE", "fr") == analyze("eleve", "fr")
    assert fold("œuvre") == "oeuvre"
    assert fold("straße") == "strasse"


def test_french_elisions_are_removed():
    for text in ("l'ordinateur", "L’ordinateur", "d'ordinateur", "qu'ordinateur",
                 "j'ordinateur", "n'ordinateur", "s'ordinateur", "c'ordinateur",
                 "m'ordinateur", "t'ordinateur", "jusqu'ordinateur"):
        assert analyze(text, "fr") == analyze("ordinateur", "fr"), text


def test_elision_does_not_eat_inside_words():
    assert "aujourd" in words("aujourd'hui")


def test_french_stemming_plural_and_accents():
    assert analyze("sécurités", "fr") == analyze("securite", "fr")
    assert analyze("ordinateurs", "fr") == analyze("ordinateur", "fr")


def test_english_stemming():
    assert analyze("passwords", "en") == analyze("password", "en")
    assert analyze("calls", "en") == analyze("calling", "en")


def test_dutch_stemming_is_consistent_for_plurals():
    assert analyze("wachtwoorden", "nl") == analyze("wachtwoord", "nl")
    assert analyze("breuken", "nl") == analyze("breuk", "nl")


def test_arabic_normalisation():
    # alef forms, ta marbuta, alef maqsura, harakat and tatweel
    assert fold("أمان") == fold("إمان") == fold("آمان") == fold("امان")
    assert fold("كلمة") == "كلمه"
    assert fold("على") == "علي"
    assert fold("كَلِمَة") == fold("كلمة")
    assert fold("كلـــمة") == fold("كلمة")


def test_arabic_light_stemming():
    assert stem_arabic(fold("الكسور")) == stem_arabic(fold("كسور"))
    assert stem(fold("كلمات"), "ar") == stem(fold("كلمة"), "ar")
    assert stem(fold("والبريد"), "ar") == stem(fold("بريد"), "ar")
    # Arabic words are stemmed as Arabic whatever the document's language.
    assert stem(fold("الكسور"), "fr") == stem(fold("الكسور"), "ar")


def test_arabic_indic_digits_fold_to_ascii():
    assert analyze("٢٧", "ar") == ["27"]


def test_query_variants_cover_every_language():
    v = variants("wachtwoorden")
    assert analyze("wachtwoord", "nl")[0] in v
    assert analyze("sécurité", "fr")[0] in variants("securite")


def test_normalize_keeps_accents_for_display():
    assert normalize("L'Élève") == " élève"


def test_stop_words_dropped_unless_alone():
    assert [t.words for t in parse("le mot de passe ").terms] == [["mot"], ["passe"]]
    assert [t.words for t in parse("the who ").terms] == [["the"], ["who"]]
    assert [t.words for t in parse("le").terms] == [["le"]]


def test_parse_phrases_and_prefix():
    pq = parse('"mot de passe" sécu')
    assert pq.terms[0].phrase and pq.terms[0].words == ["mot", "de", "passe"]
    assert pq.terms[1].prefix
    assert not parse("sécu ").terms[0].prefix


def test_kind_words_are_spotted_in_four_languages():
    for q, kind in (("vidéo mot de passe", "video"), ("filmpje wachtwoord", "video"),
                    ("فيديو كلمة", "video"), ("exercice fractions", "exercise"),
                    ("oefening breuken", "exercise"), ("quiz passwords", "exercise"),
                    ("artikel breuken", "article"), ("pdf cv", "document")):
        pq = parse(q)
        assert pq.kinds == [kind], q
        assert pq.terms, q


def test_damerau_levenshtein_bounded():
    assert damerau_levenshtein("algibra", "algebra", 2) == 1
    assert damerau_levenshtein("pasword", "password", 2) == 1
    assert damerau_levenshtein("teh", "the", 2) == 1  # transposition
    assert damerau_levenshtein("abcdef", "uvwxyz", 2) == 3  # gave up early


def _osa_table(a: str, b: str) -> int:
    """Reference: the textbook optimal-string-alignment table."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="abcdeéال", max_size=12), st.text(alphabet="abcdeéال", max_size=12),
       st.integers(min_value=0, max_value=4))
def test_damerau_levenshtein_matches_the_table(a, b, bound):
    # The bit-parallel distance gives what the table gives, capped at bound + 1.
    assert damerau_levenshtein(a, b, bound) == min(_osa_table(a, b), bound + 1)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abcdeéال", max_size=10),
       st.lists(st.text(alphabet="abcdeéال", max_size=10), max_size=30),
       st.integers(min_value=0, max_value=3))
def test_within_typos_keeps_exactly_the_near_candidates(word, candidates, bound):
    # One call for a whole candidate list: the same words, at the same distances.
    expected = {c: _osa_table(word, c) for c in candidates if _osa_table(word, c) <= bound}
    assert within_typos(word, candidates, bound) == expected


def test_analysis_caches_stay_bounded_through_a_large_vocabulary():
    # A large encyclopedia brings a new word in nearly every title.
    fresh = [f"mot{i}ique" for i in range(analysis.CACHE_WORDS + 50)]
    for start in range(0, len(fresh), 1000):
        analysis.terms_of(fresh[start:start + 1000], "fr")
    assert len(analysis._term_caches["fr"]) <= analysis.CACHE_WORDS + 1000
    assert len(analysis._fold_cache) <= analysis.CACHE_WORDS + 1
    assert len(analysis._stem_cache["fr"]) <= analysis.CACHE_WORDS + 1
    assert analysis.terms_of(["ordinateurs"], "fr") == analyze("ordinateurs", "fr")
