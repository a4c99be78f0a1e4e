"""Indexing, upserts, deletes and the index file itself."""

import sqlite3

import pytest
from passerelle.search_index import Document, SearchError, SearchIndex
from passerelle.search_index import index as index_module


def ids(result):
    return [h.id for h in result.hits]


def test_index_and_find(index, make_doc):
    assert index.index([make_doc("p/1", "Strong passwords", "Use a long passphrase."),
                        make_doc("p/2", "Sending email", "Press compose.")]) == 2
    assert ids(index.search("passphrase")) == ["p/1"]
    assert index.count() == 2
    assert index.ids() == {"p/1", "p/2"}


def test_upsert_replaces_by_id(index, make_doc):
    index.index([make_doc("p/1", "Old title about algebra")])
    index.index([make_doc("p/1", "New title about fractions")])
    assert index.count() == 1
    assert index.search("algebra").total == 0
    assert ids(index.search("fractions")) == ["p/1"]
    # The vocabulary follows: the old word is no longer a correction candidate.
    assert index.search("algebre").did_you_mean is None


def test_repeated_id_in_one_batch_keeps_the_last(index, make_doc):
    index.index([make_doc("p/1", "first"), make_doc("p/1", "second")])
    assert index.count() == 1
    assert ids(index.search("second")) == ["p/1"]


def test_delete_and_delete_pack(index, make_doc):
    index.index([make_doc("a/1", "fractions one", pack="a"), make_doc("a/2", "fractions two", pack="a"),
                 make_doc("b/1", "fractions three", pack="b")])
    assert index.delete(["a/1", "missing"]) == 1
    assert set(ids(index.search("fractions"))) == {"a/2", "b/1"}
    assert index.delete_pack("a") == 1
    assert ids(index.search("fractions")) == ["b/1"]
    assert index.ids(pack_id="b") == {"b/1"}
    assert index.suggest("fr") == ["fractions", "fractions three"]


def test_clear(index, make_doc):
    index.index([make_doc("p/1", "fractions")])
    index.clear()
    assert index.count() == 0
    assert index.search("fractions").total == 0
    assert index.suggest("f") == []
    index.index([make_doc("p/2", "fractions")])
    assert ids(index.search("fractions")) == ["p/2"]


def test_stats(index, make_doc):
    index.index([make_doc("p/1", "fractions", kind="video", lang="fr"),
                 make_doc("q/1", "addition", pack="q")])
    s = index.stats()
    assert s["documents"] == 2
    assert s["packs"] == {"p": 1, "q": 1}
    assert s["kinds"] == {"article": 1, "video": 1}
    assert s["languages"] == {"en": 1, "fr": 1}
    assert s["file_bytes"] > 0


def test_index_file_is_wal_and_persistent(tmp_path, make_doc):
    path = tmp_path / "search.db"
    with SearchIndex(path) as idx:
        idx.index([make_doc("p/1", "fractions")])
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    with SearchIndex(path) as idx:
        assert ids(idx.search("fractions")) == ["p/1"]


def test_other_schema_version_is_recreated_empty(tmp_path, make_doc, monkeypatch):
    path = tmp_path / "search.db"
    with SearchIndex(path) as idx:
        idx.index([make_doc("p/1", "fractions")])
    monkeypatch.setattr(index_module, "USER_VERSION", index_module.USER_VERSION + 1)
    with SearchIndex(path) as idx:
        assert idx.count() == 0  # a rebuild refills it
        idx.index([make_doc("p/1", "fractions")])
        assert idx.count() == 1


def test_damaged_file_raises_search_error(tmp_path):
    path = tmp_path / "search.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SearchError):
        SearchIndex(path)


def test_empty_id_is_refused(index):
    with pytest.raises(SearchError):
        index.index([Document(id="", pack_id="p", kind="article", language="en", title="x")])


def test_failed_batch_leaves_index_unchanged(index, make_doc):
    index.index([make_doc("p/1", "fractions")])
    with pytest.raises(SearchError):
        index.index([make_doc("p/2", "addition"), Document("", "p", "article", "en", "x")])
    assert index.ids() == {"p/1"}


def test_parallel_analysis_gives_the_same_index(tmp_path, corpus, monkeypatch):
    # Large batches are analysed in worker processes; the result must not differ.
    with SearchIndex(tmp_path / "serial.db") as serial:
        serial.index(corpus)
        expected = [(q, [h.id for h in serial.search(q).hits], serial.suggest(q[:2]))
                    for q in ("password", "mot de passe", "wachtw", "الكسور", "fractions")]
        expected_stats = {k: v for k, v in serial.stats().items() if k not in ("path", "file_bytes")}
    monkeypatch.setattr(index_module, "PARALLEL_MIN_DOCS", 2)
    monkeypatch.setattr(index_module, "BATCH", 7)
    with SearchIndex(tmp_path / "parallel.db", parallel=True) as par:
        par.index(corpus)
        got = [(q, [h.id for h in par.search(q).hits], par.suggest(q[:2]))
               for q, _, _ in expected]
        assert got == expected
        assert {k: v for k, v in par.stats().items() if k not in ("path", "file_bytes")} == expected_stats
        # Deletes re-analyse the stored (compressed) bodies: nothing is left behind.
        par.delete(par.ids())
        assert par.count() == 0 and par.stats()["vocabulary"] == 0
        assert par.search("password").total == 0


def test_large_match_sets_are_capped(index, make_doc, monkeypatch):
    monkeypatch.setattr(index_module, "RANK_CAP", 5)
    docs = [make_doc(f"p/{i}", f"lesson {i}", "common words " * (i % 3 + 1)) for i in range(12)]
    docs.append(make_doc("p/t", "common title", "nothing else"))
    index.index(docs)
    for query in ("common ", "commo"):  # a whole word, and a word being typed
        r = index.search(query)
        assert r.total == 13 and not r.approximate  # counted exactly
        assert ids(r)[0] == "p/t"  # the title match is ranked first
        assert sorted(ids(r)) == sorted(d.id for d in docs)  # then every other match
        assert ids(index.search(query, limit=3, offset=1)) == ids(r)[1:4]
    small = index.search("nothing ")
    assert small.total == sum(small.facets["kind"].values()) == 1


def test_large_match_sets_rank_title_and_tag_words_first_by_stem(index, make_doc, monkeypatch):
    monkeypatch.setattr(index_module, "RANK_CAP", 5)
    docs = [make_doc(f"p/{i}", f"lesson {i}", "strong passwords " * (i % 3 + 1)) for i in range(12)]
    docs += [make_doc("p/title", "Choosing passwords", "tips"),
             make_doc("p/tag", "Staying safe", "tips", tags=["password"])]
    index.index(docs)
    r = index.search("password ")
    assert r.total == 14
    # Another form of the word in a title or a tag: ahead of every body match.
    assert set(ids(r)[:2]) == {"p/title", "p/tag"}


def test_very_large_match_sets_are_estimated(index, make_doc, monkeypatch):
    monkeypatch.setattr(index_module, "RANK_CAP", 20)
    monkeypatch.setattr(index_module, "EXACT_CAP", 100)
    docs = [make_doc(f"p/{i}", f"lesson {i}", "common words", kind=("video", "article")[i % 2])
            for i in range(800)]
    docs.append(make_doc("p/t", "common title", "nothing else"))
    index.index(docs)
    r = index.search("common ", limit=10)
    # Counted over a 1/16 sample: an estimate, said so, in round figures.
    assert r.approximate
    assert 400 <= r.total <= 1600 and r.total % 10 == 0
    assert set(r.facets["kind"]) == {"video", "article"}
    assert ids(r)[0] == "p/t"
    # Filtered down to a few, the total is counted again, exactly.
    few = index.search("common ", packs=["p"], kinds=["exercise"])
    assert few.total == 0
    # Pages do not overlap.
    pages = [ids(index.search("common ", limit=10, offset=o)) for o in (0, 10, 20)]
    assert len({i for page in pages for i in page}) == 30


def test_rowids_carry_groups_through_upserts_and_deletes(index, make_doc):
    index.index([make_doc(f"a/{i}", f"fractions {i}", pack="a", kind="video") for i in range(5)])
    index.index([make_doc("a/1", "fractions again", pack="a", kind="article"),
                 make_doc("b/1", "fractions", pack="b", lang="fr")])
    r = index.search("fractions ")
    assert r.total == 6
    assert r.facets["kind"] == {"video": 4, "article": 2}
    assert r.facets["pack"] == {"a": 5, "b": 1}
    assert r.facets["language"] == {"en": 5, "fr": 1}
    index.delete(["a/2"])
    index.clear()
    index.index([make_doc("c/1", "fractions", pack="c")])
    assert index.search("fractions ").facets["pack"] == {"c": 1}


def test_small_match_sets_page_in_score_order_with_filters(index, make_doc):
    # A few matches are listed once with their rank (no counting pass, no
    # sorted ranking pass): pages must still be in score order, whole, and
    # filtered like the total.
    docs = [make_doc(f"p/{i}", f"lesson {i}" + (" fractions" if i % 3 == 0 else ""),
                     "fractions " * (1 + i % 4), kind=("video", "article")[i % 2],
                     pack=("a", "b")[i % 5 == 0]) for i in range(40)]
    index.index(docs)
    for filters in ({}, {"kinds": ["video"]}, {"kinds": ["article"], "packs": ["a"]}):
        first = index.search("fractions", limit=100, **filters)
        assert not first.approximate
        assert first.total == len(first.hits) == sum(first.facets["language"].values())
        scores = [h.score for h in first.hits]
        assert scores == sorted(scores, reverse=True)
        # Title matches (i % 3 == 0) come first.
        titled = [h.id for h in first.hits if int(h.id.split("/")[1]) % 3 == 0]
        assert [h.id for h in first.hits[:len(titled)]] == titled
        paged = [h.id for o in range(0, first.total, 7)
                 for h in index.search("fractions", limit=7, offset=o, **filters).hits]
        assert paged == [h.id for h in first.hits]


def test_facets_ignore_their_own_filter_and_follow_new_groups(index, make_doc):
    index.index([make_doc("a/1", "fractions", pack="a", kind="video"),
                 make_doc("a/2", "fractions", pack="a", kind="article"),
                 make_doc("b/1", "fractions", pack="b", kind="video", lang="fr"),
                 make_doc("b/2", "fractions", pack="b", kind="exercise", lang="fr")])
    r = index.search("fractions", kinds=["video"], packs=["b"])
    assert r.total == 1
    # Each facet counts with the other filters only, most matches first, ties by name.
    assert r.facets["kind"] == {"exercise": 1, "video": 1}
    assert list(r.facets["kind"]) == ["exercise", "video"]
    assert r.facets["pack"] == {"a": 1, "b": 1}
    assert r.facets["language"] == {"fr": 1}
    # A reader that has already seen the groups (a search worker) learns a
    # group another connection adds later.
    reader = SearchIndex(index.path, readonly=True)
    try:
        assert reader.search("fractions").facets["pack"] == {"a": 2, "b": 2}
        index.index([make_doc("c/1", "fractions", pack="c", kind="audio", lang="nl")])
        r = reader.search("fractions")
        assert r.total == 5
        assert r.facets["pack"] == {"a": 2, "b": 2, "c": 1}
        assert r.facets["language"] == {"en": 2, "fr": 2, "nl": 1}
    finally:
        reader.close()


def test_phrase_matches_rank_title_first_and_page_through_all(index, make_doc):
    docs = [make_doc(f"p/{i}", f"lesson {i}", f"click here to save the file {i}",
                     kind=("video", "article")[i % 2]) for i in range(30)]
    docs += [make_doc("p/t", "Save the file", "a lesson"),
             make_doc("p/d", "Another lesson", "nothing", description="how to save the file"),
             make_doc("p/x", "file save", "the words, but not the phrase: file then save"),
             # The phrase's words one by one, many times: not what ranks.
             make_doc("p/w", "The file, the file", "x", description="the file, the file, the "
                      "save, the file: save the file")]
    index.index(docs)
    r = index.search('"save the file"', limit=5)
    assert r.total == 33 and not r.approximate
    assert r.facets["kind"] == {"video": 15, "article": 18}
    # The phrase in the title ranks first, in the description next.
    assert ids(r)[:3] == ["p/t", "p/d", "p/w"]
    # Every match is reachable by paging, once, and none without the phrase.
    pages = [ids(index.search('"save the file"', limit=5, offset=o)) for o in range(0, 40, 5)]
    found = [i for page in pages for i in page]
    assert len(found) == len(set(found)) == 33 and "p/x" not in found
    # Filters apply to the phrase's matches.
    videos = index.search('"save the file"', kinds=["video"], limit=50)
    assert videos.total == 15 and len(videos.hits) == 15
    assert all(h.kind == "video" for h in videos.hits)


def test_filter_and_sample_tokens_are_not_words(index, make_doc):
    index.index([make_doc(f"p/{i}", f"lesson {i}", "fractions", kind="video", lang="fr")
                 for i in range(70)])
    # The index's own tokens (kind, language, pack, sample, probe, title word) are out
    # of reach of a learner's words, typed or being typed.
    for query in ("kvideo ", "lfr ", "s1 ", "s12 ", "pp ", "kvid", "lf", "tlesson ", "tless", "r ",
                  "__tlesson"):
        assert index.search(query).total == 0, query
    assert index.search("fractions ", kinds=["video"], languages=["fr"]).total == 70


def test_a_known_last_word_is_not_expanded(index, make_doc):
    index.index([make_doc("p/1", "Le mot juste", lang="fr"),
                 make_doc("p/2", "Un motif de tissu", lang="fr")])
    # "mot" is a word of the index: searched as typed, not as mot*.
    assert ids(index.search("mot")) == ["p/1"]
    # "moti" is not: it is being typed, and completes to "motif".
    assert ids(index.search("moti"))[0] == "p/2"


def test_phrases_with_many_matches_are_estimated(index, make_doc, monkeypatch):
    monkeypatch.setattr(index_module, "PHRASE_EXACT_CAP", 50)
    index.index([make_doc(f"p/{i}", f"lesson {i}", "save the file now",
                          kind=("video", "article")[i % 2]) for i in range(400)]
                + [make_doc("p/t", "Save the file", "a lesson")])
    r = index.search('"save the file"', limit=10)
    # Listed up to the cap, then estimated from a sample, and said so.
    assert r.approximate and 100 <= r.total <= 1000
    assert set(r.facets["kind"]) == {"video", "article"}
    assert ids(r)[0] == "p/t"
    pages = [ids(index.search('"save the file"', limit=10, offset=o)) for o in (0, 10, 20)]
    assert len({i for page in pages for i in page}) == 30
