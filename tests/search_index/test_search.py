"""What a learner notices when searching the judged corpus and small indexes."""

import html
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from passerelle.search_index import SearchIndex


def ids(result):
    return [h.id for h in result.hits]


# --- language-aware matching ------------------------------------------------------

def test_accents_optional(corpus_index):
    assert "fr-num/navigateur" in ids(corpus_index.search("eleves"))
    assert "fr-num/hameconnage" in ids(corpus_index.search("hameconnage"))


def test_elision_in_query(corpus_index):
    assert ids(corpus_index.search("l'ordinateur"))[0] == "fr-num/mdp-surs"


def test_language_need_not_be_given(corpus_index):
    assert ids(corpus_index.search("wachtwoorden"))[0].startswith("nl-digi/")
    assert ids(corpus_index.search("passwords"))[0].startswith("en-digital/")
    assert ids(corpus_index.search("الكسور"))[0] == "ar-hisab/kusur"


def test_stop_words_only_query_still_finds(corpus_index):
    assert corpus_index.search("le").total > 0
    assert corpus_index.search("the who").total > 0


def test_languages_filter_and_facets(corpus_index):
    r = corpus_index.search("phishing", languages=["nl"])
    assert ids(r) == ["nl-digi/phishing"]
    assert r.total == 1
    # Facets for a dimension ignore its own filter: switching is possible.
    assert r.facets["language"]["en"] == 2 and r.facets["language"]["nl"] == 1
    assert r.facets["kind"] == {"article": 1}


def test_kind_and_pack_filters(corpus_index):
    r = corpus_index.search("password", kinds=["exercise"])
    assert ids(r) == ["en-digital/password-quiz"]
    r = corpus_index.search("fractions", packs=["fr-calc"])
    assert ids(r) == ["fr-calc/fractions"]
    assert r.facets["pack"]["en-math"] == 1


def test_facets_count_whole_match_set(corpus_index):
    r = corpus_index.search("mot de passe ", limit=1)
    assert len(r.hits) == 1
    assert r.total == sum(r.facets["kind"].values()) == sum(r.facets["pack"].values())
    assert r.facets["kind"]["video"] == 1


def test_pagination(corpus_index):
    everything = ids(corpus_index.search("passe ", limit=50))
    page2 = ids(corpus_index.search("passe ", limit=2, offset=2))
    assert page2 == everything[2:4]


# --- kind words ---------------------------------------------------------------------

@pytest.mark.parametrize("query, expected", [
    ("vidéo mot de passe", "fr-num/mdp-video"),
    ("video phishing", "en-digital/phishing-video"),
    ("vidéos passe", "fr-num/mdp-video"),
    ("filmpje wachtwoord", "nl-digi/wachtwoord-filmpje"),
    ("فيديو كلمة المرور", "ar-raqmi/murur-video"),
    ("exercice addition", "fr-calc/addition"),
    ("oefening veilig", "nl-digi/oefening-veilig"),
    ("quiz password", "en-digital/password-quiz"),
    ("pdf cv", None),
])
def test_kind_words_filter(corpus_index, query, expected):
    r = corpus_index.search(query)
    assert r.query_filters.get("kind"), query
    kind = r.query_filters["kind"][0]
    assert all(h.kind == kind for h in r.hits)
    if expected:
        assert expected in ids(r)[:3]
    else:
        assert r.hits


def test_kind_word_falls_back_to_text_when_filter_finds_nothing(corpus_index):
    # There is no *video* about a "video call"; the articles about it are found.
    r = corpus_index.search("appel vidéo famille")
    assert "fr-num/appel-video" in ids(r)
    assert r.query_filters == {}


def test_explicit_kinds_win_over_kind_words(corpus_index):
    r = corpus_index.search("video phishing", kinds=["article"])
    assert r.query_filters == {}
    assert all(h.kind == "article" for h in r.hits)


# --- query pipeline ---------------------------------------------------------------

def test_all_words_by_default(corpus_index):
    r = corpus_index.search("phishing video ")
    assert r.mode == "all"


def test_and_falls_back_to_or(corpus_index):
    r = corpus_index.search("fractions banana ")
    assert r.mode == "any"
    assert "en-math/fractions-intro" in ids(r)


def test_phrase(corpus_index):
    r = corpus_index.search('"phrase de passe"')
    assert set(ids(r)) == {"fr-num/mdp-surs"}
    assert corpus_index.search('"passe de phrase"').total == 0


def test_prefix_search_as_you_type(corpus_index):
    assert "fr-num/hameconnage" in ids(corpus_index.search("hameç"))
    assert ids(corpus_index.search("algeb"))[0] == "en-math/algebra"
    assert "nl-digi/wachtwoorden" in ids(corpus_index.search("sterke wachtw"))


@pytest.mark.parametrize("typo, word, expected", [
    ("algibra", "algebra", "en-math/algebra"),
    ("pasword", "password", "en-digital/strong-passwords"),
    ("securiter", "sécurité", "fr-num/quiz-securite"),
])
def test_typos(corpus_index, typo, word, expected):
    r = corpus_index.search(typo + " ")
    assert expected in ids(r)[:5]
    if r.mode == "fuzzy":
        assert r.did_you_mean == word


def test_did_you_mean_keeps_the_rest_of_the_query(corpus_index):
    r = corpus_index.search("strong pasword ")
    assert r.mode == "fuzzy"
    assert r.did_you_mean == "strong password"
    assert ids(r)[0] == "en-digital/strong-passwords"


def test_nothing_found(corpus_index):
    r = corpus_index.search("zzzzqqqq")
    assert r.total == 0 and r.hits == [] and r.did_you_mean is None


# --- snippets ---------------------------------------------------------------------

def test_snippet_marks_matches_in_original_text(corpus_index):
    hit = corpus_index.search("hameconnage ").hits[0]
    assert "<mark>hameçonnage</mark>" in hit.snippet.lower()


def test_snippet_html_is_escaped(index, make_doc):
    index.index([make_doc("p/1", "Tags", "Use <script>alert(1)</script> & the <b>bold</b> tag.")])
    snippet = index.search("bold ").hits[0].snippet
    assert "<script>" not in snippet and "<b>" not in snippet
    assert "&lt;/script&gt;" in snippet and "&amp;" in snippet
    assert "<mark>bold</mark>" in snippet
    # Removing the marks leaves text that unescapes to the original words.
    assert "</script> & the <b>bold</b>" in html.unescape(snippet.replace("<mark>", "").replace("</mark>", ""))


def test_snippet_of_long_body_shows_the_match(index, make_doc):
    body = "filler words here. " * 200 + "The fraction is three quarters."
    index.index([make_doc("p/1", "Long", body)])
    snippet = index.search("quarters ").hits[0].snippet
    assert "<mark>quarters</mark>" in snippet
    assert snippet.startswith("…") and len(snippet) < 400


# --- hostile input ------------------------------------------------------------------

@pytest.mark.parametrize("query", [
    '"', '""', '"unclosed phrase', "*", "^", ":", "-", "(", ")", "()", "a*b", "NEAR(a b)",
    "AND", "OR", "NOT", "password AND", "OR password", "NOT NOT", "title:password",
    "{title}: x", "'", "’", "l'", "-password", "+password", "\\", "\x00", "%", "_",
    "password" * 100, "a " * 500, "🙂", "\u200b", "٠", "NEAR/3", "col : * ^",
])
def test_weird_queries_never_raise(corpus_index, query):
    r = corpus_index.search(query)
    assert r.total >= 0
    corpus_index.suggest(query)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=60))
def test_random_text_never_raises(corpus_index, query):
    r = corpus_index.search(query, limit=5)
    assert r.mode in ("all", "any", "fuzzy")
    assert len(r.hits) <= 5
    corpus_index.suggest(query)


# --- suggestions ------------------------------------------------------------------

def test_suggest_restores_accents_and_ranks_by_frequency(corpus_index):
    out = corpus_index.suggest("secu")
    assert "sécurité" in out
    assert "securite" not in out
    assert corpus_index.suggest("sé")[0] == "sécurité"


def test_suggest_one_and_two_letters(corpus_index):
    assert corpus_index.suggest("w", limit=3)
    assert all(s.lower().startswith("wa") for s in corpus_index.suggest("wa"))
    assert len(corpus_index.suggest("p", limit=4)) == 4


def test_suggest_titles_and_languages(corpus_index):
    assert "Strong passwords" in corpus_index.suggest("strong")
    assert corpus_index.suggest("ph", languages=["nl"]) == ["phishing", "Phishing herkennen"]
    assert corpus_index.suggest("ك")
    assert corpus_index.suggest("") == [] and corpus_index.suggest("   ") == []


# --- concurrency ------------------------------------------------------------------

def test_readers_while_a_writer_indexes(tmp_path, corpus, make_doc):
    idx = SearchIndex(tmp_path / "search.db")
    idx.index(corpus)
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader():
        try:
            while not stop.is_set():
                r = idx.search("password ")
                # Readers see a consistent snapshot: the corpus, plus whole batches.
                assert r.total >= 3 and r.total == sum(r.facets["kind"].values())
                assert idx.suggest("pa")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for batch in range(8):
            idx.index([make_doc(f"w/{batch}-{i}", f"password batch {batch}", "text " * 200,
                                pack="w") for i in range(50)])
        idx.delete_pack("w")
    finally:
        stop.set()
        for t in threads:
            t.join()
    idx.close()
    assert not errors, errors[0]


# --- a misspelt word that its stem still matches ------------------------------------

@pytest.fixture
def passwords_index(index, make_doc):
    index.index([
        make_doc("a", "Un mot de passe solide", "Un mot de passe long protège votre e-mail.",
                 lang="fr"),
        make_doc("b", "Pas à pas", "Avancer pas à pas, un mot après l'autre. Pas de panique.",
                 lang="fr"),
        make_doc("c", "Les pas de danse", "Un pas, deux pas, trois pas : le mot juste.",
                 lang="fr"),
    ])
    return index


def test_a_correction_that_makes_the_whole_query_a_phrase_wins(passwords_index):
    r = passwords_index.search("mot de pase")
    assert r.did_you_mean == "mot de passe"
    assert r.hits[0].title == "Un mot de passe solide"


def test_suggestions_go_on_for_queries_of_several_words(passwords_index):
    assert "mot de passe" in passwords_index.suggest("mot de pa")
    # Only phrases some document holds, in this order.
    assert all("mot de" in s.lower() for s in passwords_index.suggest("mot de pa"))
    assert "Un mot de passe solide" in passwords_index.suggest("un mot de p")
