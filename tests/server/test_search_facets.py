"""Kolibri labels (learning activity, subject, level) as search facets: stored on import, counted,
filtered on through the API and the search page, in every language, with unknown ids left out."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "content"))

from kolibri_channel import CHANNEL, standard  # noqa: E402
from passerelle.content import kolibri  # noqa: E402
from passerelle.content.kolibri_labels import facets  # noqa: E402

PACK = "kolibri-" + CHANNEL
HOSTILE = '<script>alert("x")</script>'


def label(ex, node_id: str, activities="", categories="", levels=""):
    ex.db.execute("UPDATE content_contentnode SET learning_activities = ?, categories = ?, grade_levels = ?"
                  " WHERE id = ?", [activities, categories, levels, node_id])


@pytest.fixture
def labelled(app, tmp_path):
    """The test channel, three of its resources labelled, imported into the box's library."""
    ex, ids = standard(tmp_path / "KOLIBRI_DATA")
    # Watch, Algebra (under Mathematics), lower primary.
    label(ex, ids["video"], "UD5UGM0z", "d&WXdXWF.qs0Xlaxq.nG96nHDc", "wnarlxKo")
    # Listen and an id no vocabulary has; Daily life.
    label(ex, ids["audio"], "mkA1R3NU,NotAnId99", "PbGoe2MV", "")
    # Read, plus hostile strings where ids belong.
    label(ex, ids["pdf"], f"wA01urpi,{HOSTILE}", f"{HOSTILE},d&WXdXWF.qs0Xlaxq", 'wnarlxKo,"><img src=x>')
    ex.save()
    kolibri.import_channel(app.extensions["passerelle.library"], ex.root, CHANNEL)
    return ids


def test_the_import_keeps_the_labels_on_the_node(app, labelled):
    nodes = {n["id"]: n for n in app.extensions["passerelle.library"].iter_nodes(PACK)}
    video = next(n for n in nodes.values() if n["kolibri"]["node_id"] == labelled["video"])
    assert video["kolibri"]["labels"] == {"learning_activities": ["UD5UGM0z"],
                                          "categories": ["d&WXdXWF.qs0Xlaxq.nG96nHDc"],
                                          "grade_levels": ["wnarlxKo"]}
    assert facets(video["kolibri"]["labels"]) == {"activity": ["watch"], "category": ["mathematics"],
                                                  "level": ["lower-primary"]}


def test_unknown_ids_are_left_out_of_the_facets():
    assert facets({"learning_activities": ["NotAnId99", HOSTILE, "wA01urpi"], "categories": ["x.y"],
                   "grade_levels": "wnarlxKo"}) == {"activity": ["read"]}
    assert facets(None) == {} and facets({"learning_activities": [3, None]}) == {}


def test_api_counts_and_filters_by_label(client, labelled):
    body = client.get("/api/v1/search?q=about").get_json()
    assert body["facets"]["activity"] == {"listen": 1, "read": 1, "watch": 1}
    assert body["facets"]["category"] == {"mathematics": 2, "daily-life": 1}
    assert body["facets"]["level"] == {"lower-primary": 2}
    watch = client.get("/api/v1/search?q=about&activity=watch").get_json()
    assert [h["title"] for h in watch["hits"]] == ["Counting video"] and watch["total"] == 1
    assert watch["facets"]["activity"] == {"listen": 1, "read": 1, "watch": 1}  # still switchable
    both = client.get("/api/v1/search?q=about&category=mathematics&level=lower-primary").get_json()
    assert sorted(h["title"] for h in both["hits"]) == ["A booklet", "Counting video"]
    either = client.get("/api/v1/search?q=about&activity=listen,read").get_json()
    assert sorted(h["title"] for h in either["hits"]) == ["A booklet", "A song"]


def test_unknown_facet_values_are_refused_in_words(client, labelled):
    response = client.get("/api/v1/search", query_string={"q": "about", "activity": HOSTILE})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] and "activity" in error["message"] and HOSTILE not in response.get_data(as_text=True)


def test_the_page_offers_facets_as_links_with_counts(client, labelled):
    page = client.get("/search?q=about").get_data(as_text=True)
    assert "Learning activity" in page and "Category" in page and "Level" in page
    assert "Watch (1)" in page and "Mathematics (2)" in page and "Lower primary (2)" in page
    assert "/search?q=about&amp;activity=watch" in page
    assert "<script>alert" not in page and "NotAnId99" not in page and "<img src=x>" not in page
    chosen = client.get("/search?q=about&activity=watch&kind=video").get_data(as_text=True)
    assert "Counting video" in chosen and "A booklet" not in chosen
    # Each link keeps the other filters; "All" removes only its own.
    assert 'href="/search?q=about&amp;kind=video"' in chosen      # all activities, still videos
    assert 'href="/search?q=about&amp;activity=watch"' in chosen  # everything, still watching
    assert "Read (" not in chosen  # no document among the videos: nothing to offer
    assert 'aria-current="true">Watch (1)' in chosen


@pytest.mark.parametrize("lang, words, rtl", [("fr", ("Type d’activité", "Regarder (1)", "Mathématiques (2)"), False),
                                              ("nl", ("Leeractiviteit", "Kijken (1)", "Wiskunde (2)"), False),
                                              ("ar", ("نوع النشاط", "المشاهدة (1)", "الرياضيات (2)"), True)])
def test_facets_are_translated(app, labelled, lang, words, rtl):
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = lang
    page = client.get("/search?q=about").get_data(as_text=True)
    for word in words:
        assert word in page
    assert ('dir="rtl"' in page) == rtl


def test_no_facets_without_labels(client):
    body = client.get("/api/v1/search?q=doigt").get_json()
    assert body["total"] >= 1 and set(body["facets"]) == {"kind", "language", "pack"}
    assert "Learning activity" not in client.get("/search?q=doigt").get_data(as_text=True)


def test_every_facet_value_has_a_name_to_translate():
    from passerelle.content.kolibri_labels import SLUGS
    from passerelle.kiosk.labels import LABELS

    for name, slugs in SLUGS.items():
        assert name in LABELS["facet"]
        assert set(slugs) == set(LABELS[name]), name
