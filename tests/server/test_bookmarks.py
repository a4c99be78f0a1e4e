"""Bookmarks: a learner stars a resource and finds it on the home page; syncing records."""

import re

from passerelle.server import records
from passerelle.server.db import get_db
from passerelle.server.learning.bookmarks import bookmark_uuid

from tests.conftest import csrf_token

ARTICLE = "/learn/demo-fr/basics/welcome"
TOGGLE = "/bookmarks/demo-fr/basics/welcome"


def bookmarks_section(html: str) -> str:
    found = re.search(r'<section aria-labelledby="bookmarks-title".*?</section>', html, re.S)
    return found.group(0) if found else ""


def test_a_learner_adds_and_removes_a_bookmark(as_user, app, box):
    amina = as_user("amina")
    page = amina.get(ARTICLE).get_data(as_text=True)
    assert f'action="{TOGGLE}"' in page and 'aria-pressed="false"' in page
    assert "Bienvenue" not in bookmarks_section(amina.get("/").get_data(as_text=True))

    response = amina.post(TOGGLE, data={"csrf_token": csrf_token(amina)})
    assert response.status_code == 302 and response.headers["Location"].endswith(ARTICLE)
    assert 'aria-pressed="true"' in amina.get(ARTICLE).get_data(as_text=True)
    section = bookmarks_section(amina.get("/").get_data(as_text=True))
    assert "My bookmarks" in section and f'href="{ARTICLE}"' in section

    with app.app_context():
        uuid = bookmark_uuid(box.ids["amina"], "demo-fr", "basics/welcome")
        record = records.load(get_db(), "bookmark", uuid)
        assert record["learner_uuid"] == box.ids["amina"] and record["node_id"] == "basics/welcome"

    amina.post(TOGGLE, data={"csrf_token": csrf_token(amina)})  # again: removed
    assert 'aria-pressed="false"' in amina.get(ARTICLE).get_data(as_text=True)
    assert f'href="{ARTICLE}"' not in bookmarks_section(amina.get("/").get_data(as_text=True))
    with app.app_context():
        db = get_db()
        assert records.load(db, "bookmark", uuid) is None
        assert [op.kind for op in records.history(db, "bookmark", uuid)] == ["put", "delete"]


def test_the_same_bookmark_on_two_boxes_is_one_record(box):
    # The uuid depends only on who and what, so two boxes making it converge once synced.
    one = bookmark_uuid(box.ids["amina"], "demo-fr", "basics/welcome")
    assert one == bookmark_uuid(box.ids["amina"], "demo-fr", "basics/welcome")
    assert one != bookmark_uuid(box.ids["bart"], "demo-fr", "basics/welcome")
    assert one != bookmark_uuid(box.ids["amina"], "demo-fr", "basics/clip")


def test_learners_see_only_their_own_bookmarks(as_user):
    amina, bart = as_user("amina"), as_user("bart")
    amina.post(TOGGLE, data={"csrf_token": csrf_token(amina)})
    bart.post("/bookmarks/demo-fr/basics/clip", data={"csrf_token": csrf_token(bart)})
    mine = bookmarks_section(amina.get("/").get_data(as_text=True))
    theirs = bookmarks_section(bart.get("/").get_data(as_text=True))
    assert f'href="{ARTICLE}"' in mine and "basics/clip" not in mine
    assert "basics/clip" in theirs and f'href="{ARTICLE}"' not in theirs


def test_guests_and_staff_have_no_bookmarks(as_user):
    for who in (None, "fatou"):
        client = as_user(who)
        assert "/bookmarks/" not in client.get(ARTICLE).get_data(as_text=True)
        assert "bookmarks-title" not in client.get("/").get_data(as_text=True)
    guest = as_user(None)
    response = guest.post(TOGGLE, data={"csrf_token": csrf_token(guest)})
    assert response.status_code == 302 and "/signin" in response.headers["Location"]
    fatou = as_user("fatou")
    assert fatou.post(TOGGLE, data={"csrf_token": csrf_token(fatou)}).status_code == 403


def test_bookmarking_needs_a_real_resource_and_a_csrf_token(as_user):
    amina = as_user("amina")
    token = csrf_token(amina)
    assert amina.post("/bookmarks/demo-fr/no/such/node", data={"csrf_token": token}).status_code == 404
    assert amina.post(TOGGLE).status_code == 400


def test_the_learn_route_still_serves_nested_node_ids(as_user):
    # /bookmarks/... is a separate prefix: the path converter of /learn/... is untouched.
    assert as_user("amina").get(ARTICLE).status_code == 200
    assert as_user("amina").get(ARTICLE + "/bookmark").status_code == 404  # no such node
