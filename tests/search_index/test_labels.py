"""Labels as facets: counted beside kind, language and pack, filtered on, deleted with their document."""


def ids(result):
    return sorted(h.id for h in result.hits)


def corpus(index, make_doc):
    index.index([
        make_doc("p/1", "fractions video", labels={"activity": ["watch"], "level": ["lower-primary"]}),
        make_doc("p/2", "fractions reading", labels={"activity": ["read"], "level": ["lower-primary"]}),
        make_doc("p/3", "fractions practice", labels={"activity": ["practice", "watch"],
                                                        "level": ["upper-primary"]}),
        make_doc("p/4", "fractions without labels"),
    ])


def test_label_facets_count_the_match_set(index, make_doc):
    corpus(index, make_doc)
    r = index.search("fractions")
    assert r.total == 4
    assert r.facets["activity"] == {"watch": 2, "practice": 1, "read": 1}
    assert r.facets["level"] == {"lower-primary": 2, "upper-primary": 1}
    assert r.facets["kind"] == {"article": 4}


def test_filter_by_label_and_facets_ignore_their_own_filter(index, make_doc):
    corpus(index, make_doc)
    r = index.search("fractions", labels={"activity": ["watch"]})
    assert ids(r) == ["p/1", "p/3"] and r.total == 2
    # The activity facet still offers the others; the level facet follows the filter.
    assert r.facets["activity"] == {"watch": 2, "practice": 1, "read": 1}
    assert r.facets["level"] == {"lower-primary": 1, "upper-primary": 1}
    both = index.search("fractions", labels={"activity": ["watch"], "level": ["upper-primary"]})
    assert ids(both) == ["p/3"]
    assert both.facets["level"] == {"lower-primary": 1, "upper-primary": 1}
    either = index.search("fractions", labels={"activity": ["read", "practice"]})
    assert ids(either) == ["p/2", "p/3"]


def test_a_filter_that_matches_nothing_still_offers_the_facet(index, make_doc):
    corpus(index, make_doc)
    r = index.search("fractions", labels={"activity": ["create"]})
    assert r.total == 0 and r.hits == []
    assert r.facets["activity"]["watch"] == 2


def test_no_label_facets_without_labels(index, make_doc):
    index.index([make_doc("p/1", "fractions")])
    assert set(index.search("fractions").facets) == {"kind", "language", "pack"}


def test_labels_leave_with_their_document(index, make_doc):
    corpus(index, make_doc)
    index.index([make_doc("p/1", "fractions video", labels={"activity": ["listen"]})])
    r = index.search("fractions")
    assert r.facets["activity"] == {"listen": 1, "practice": 1, "read": 1, "watch": 1}
    assert index.search("fractions", labels={"activity": ["listen"]}).total == 1
    index.delete_pack("p")
    assert index.count() == 0
    index.index([make_doc("q/1", "fractions again", pack="q")])
    assert index.search("fractions", labels={"activity": ["watch"]}).total == 0
    assert "activity" not in index.search("fractions").facets


def test_hostile_label_values_are_data(index, make_doc):
    odd = '"x" OR y) NOT (z*'
    index.index([make_doc("p/1", "fractions", labels={"activity": [odd]})])
    r = index.search("fractions", labels={"activity": [odd]})
    assert ids(r) == ["p/1"] and r.facets["activity"] == {odd: 1}


def test_large_match_sets_are_counted_on_the_sample(index, make_doc, monkeypatch):
    from passerelle.search_index import SearchIndex

    monkeypatch.setattr(SearchIndex, "LABEL_EXACT_CAP", 20)
    index.index([make_doc(f"p/{i}", f"fractions {i}", labels={"activity": ["watch" if i % 2 else "read"]})
                 for i in range(400)])
    r = index.search("fractions")
    assert set(r.facets["activity"]) == {"watch", "read"}
    # Estimates from the 1/16 sample (the same documents every time), scaled: about 400 in all.
    assert 200 <= sum(r.facets["activity"].values()) <= 800, r.facets["activity"]
    monkeypatch.setattr(SearchIndex, "LABEL_EXACT_CAP", 1500)
    assert index.search("fractions").facets["activity"] == {"read": 200, "watch": 200}


def test_a_document_indexed_again_with_its_body_keeps_its_labels(index, make_doc):
    # A big pack's document text is indexed after its import, from what the index stored.
    import dataclasses

    corpus(index, make_doc)
    stored = index.stored(["p/1", "p/4"])
    assert stored["p/1"].labels == {"activity": ["watch"], "level": ["lower-primary"]}
    assert stored["p/4"].labels == {}
    index.index([dataclasses.replace(stored["p/1"], body="numerators and denominators")])
    r = index.search("numerators", labels={"activity": ["watch"]})
    assert ids(r) == ["p/1"] and r.facets["level"] == {"lower-primary": 1}
