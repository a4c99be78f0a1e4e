"""A learner plays a Khan Academy (Perseus) exercise imported from a Kolibri channel; unavailable kinds say so."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "content"))

from kolibri_channel import (  # noqa: E402
    CHANNEL,
    PNG,
    algebra_channel,
    hexid,
    slideshow,
    standard,
)
from passerelle.content import kolibri  # noqa: E402

PACK = "kolibri-" + CHANNEL


@pytest.fixture
def channel_app(app, tmp_path):
    ex, ids = standard(tmp_path / "KOLIBRI_DATA")
    ex.save()
    kolibri.import_channel(app.extensions["passerelle.library"], ex.root, CHANNEL)
    return app, ids


def form(page: str, **fields) -> dict:
    data = {"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', page).group(1),
            "attempt": re.search(r'name="attempt" value="([^"]*)"', page).group(1)}
    shown = re.search(r'name="hints_shown" value="([^"]*)"', page)
    if shown:
        data["hints_shown"] = shown.group(1)
    return {**data, **fields}


def answer_for(page: str) -> dict:
    qid = re.search(r'data-question="([^"]+)"', page).group(1)
    return {"q1": {"w1": "7"}, "q2": {"w1": "1/2"}, "q3": {"w1": "1"}}[qid]


def test_a_learner_plays_a_perseus_exercise_to_mastery(channel_app, as_user):
    app, ids = channel_app
    client = as_user("amina")
    url = f"/practice/{PACK}/{hexid('content' + ids['exercise'])}"
    page = client.get(url).get_data(as_text=True)
    assert "<math" in page and 'name="w1"' in page and "/files/" in page  # math, field, image
    # A hint, then another, one at a time; the typed answer is kept.
    page = client.post(url, data=form(page, action="hint", w1="6")).get_data(as_text=True)
    assert "Count on from" in page and "3 + 4 = 7" not in page.replace("<", " ") and 'value="6"' in page
    # Unsimplified or empty: sent back, nothing recorded.
    wrong_kind = client.post(url, data=form(page, action="check", w1=""))
    assert wrong_kind.status_code == 422
    # Two right answers in a row: mastered (num_correct_in_a_row_2).
    for _ in range(2):
        page = client.get(url).get_data(as_text=True)
        page = client.post(url, data=form(page, action="check", **answer_for(page)),
                           follow_redirects=True).get_data(as_text=True)
        assert "Correct!" in page
        if "mastered this exercise" in page:
            break
        client.post(url, data=form(page, action="next"))
    assert "You have mastered this exercise." in page


def test_a_wrong_answer_shows_the_right_one(channel_app, as_user):
    app, ids = channel_app
    client = as_user(None)
    url = f"/practice/{PACK}/{hexid('content' + ids['exercise'])}"
    page = client.get(url).get_data(as_text=True)
    page = client.post(url, data=form(page, action="check", w1="999" if "w1" in page else "0"),
                       follow_redirects=True).get_data(as_text=True)
    assert "Not quite." in page and "The right answer:" in page


def test_an_unavailable_resource_says_so(channel_app, client):
    app, ids = channel_app
    page = client.get(f"/learn/{PACK}/{hexid('content' + ids['h5p'])}")
    assert page.status_code == 200
    assert "This resource is not available on this box." in page.get_data(as_text=True)


def test_a_slideshow_shows_its_slides_with_their_captions(app, tmp_path, as_user):
    import hashlib

    ex, _ids = standard(tmp_path / "KOLIBRI_DATA")
    md5 = [hashlib.md5(d).hexdigest() for d in (PNG, PNG + b"2")]
    node = slideshow(ex, hexid("slides"), [
        {"checksum": md5[1], "caption": "Then rinse <b>well</b>", "descriptive_text": "Hands under water",
         "sort_order": 2},
        {"checksum": md5[0], "caption": "First, soap.", "sort_order": 1}], {"a": PNG, "b": PNG + b"2"})
    ex.save()
    kolibri.import_channel(app.extensions["passerelle.library"], ex.root, CHANNEL)
    page = as_user("amina").get(f"/learn/{PACK}/{hexid('content' + node)}").get_data(as_text=True)
    images = re.findall(r'<img [^>]*src="(/files/[^"]+)"[^>]*alt="([^"]*)"|<img [^>]*alt="([^"]*)"[^>]*src="(/files/[^"]+)"', page)
    assert len(images) == 2
    assert page.index("First, soap.") < page.index("Hands under water") < page.index("Then rinse")
    assert "Then rinse &lt;b&gt;well&lt;/b&gt;" in page and "<b>well" not in page  # shown as text


def test_an_epub_is_read_chapter_by_chapter_in_the_sandbox(channel_app, as_user):
    app, ids = channel_app
    client = as_user("amina")
    url = f"/learn/{PACK}/{hexid('content' + ids['epub'])}"
    page = client.get(url).get_data(as_text=True)
    assert "Chapter 1 of 2" in page and 'sandbox=""' in page
    src = re.search(r'<iframe class="app book"[^>]* src="([^"]+)"', page).group(1)
    assert src.endswith("/OEBPS/text/ch0.xhtml")
    chapter = client.get(src)
    assert chapter.status_code == 200 and b"Once upon a time" in chapter.data
    assert "sandbox" in chapter.headers["Content-Security-Policy"]
    last = client.get(url + "?chapter=2").get_data(as_text=True)
    assert "Chapter 2 of 2" in last and "ch1.xhtml" in last
    topic = client.get(f"/learn/{PACK}/{ids['other']}").get_data(as_text=True)
    book = re.search(rf'<a class="([^"]*)" href="[^"]*{hexid("content" + ids["epub"])}"', topic).group(1)
    assert "completed" in book.split()  # the last chapter was shown: the book is read


def test_one_resource_under_two_topics_shares_its_progress(channel_app, as_user):
    app, ids = channel_app
    client = as_user("amina")
    song = hexid("content" + ids["audio"])
    again = client.get(f"/learn/{PACK}/{song}-{ids['again'][:8]}")
    assert again.status_code == 302 and again.location.endswith(f"/learn/{PACK}/{song}")
    client.get(f"/learn/{PACK}/{song}")
    page = client.get(f"/learn/{PACK}/{song}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    client.post(f"/learn/{PACK}/{song}/done", data={"csrf_token": token})
    topic = client.get(f"/learn/{PACK}/{ids['other']}").get_data(as_text=True)
    tiles = dict((href.rsplit("/", 1)[1], cls) for cls, href in
                 re.findall(r'<a class="(tile node[^"]*)" href="([^"]+)"', topic))
    assert "completed" in tiles[song].split() and "completed" in tiles[f"{song}-{ids['again'][:8]}"].split()


def test_an_expression_is_checked_and_shuffled_choices_stay_put_on_reload(app, tmp_path, as_user):
    ex, node = algebra_channel(tmp_path / "KOLIBRI_DATA")
    kolibri.import_channel(app.extensions["passerelle.library"], ex.root, CHANNEL)
    client = as_user("amina")
    url = f"/practice/{PACK}/{hexid('content' + node)}"
    seen = set()
    for _ in range(2):
        page = client.get(url).get_data(as_text=True)
        qid = re.search(r'data-question="([^"]+)"', page).group(1)
        seen.add(qid)
        if qid == "e1":
            assert 'class="perseus-expression"' in page
            sent_back = client.post(url, data=form(page, action="check", w1="5x+"))
            assert sent_back.status_code == 422  # not an expression: nothing recorded
            page = client.post(url, data=form(page, action="check", w1="5*x"),
                               follow_redirects=True).get_data(as_text=True)
            assert "Correct!" in page
        else:
            order = re.findall(r'name="w1" value="([0-9])"', page)
            assert sorted(order) == [str(i) for i in range(8)]
            assert re.findall(r'name="w1" value="([0-9])"', client.get(url).get_data(as_text=True)) == order
            page = client.post(url, data=form(page, action="check", w1="2"),
                               follow_redirects=True).get_data(as_text=True)
            assert "Correct!" in page
        client.post(url, data=form(page, action="next"))
    assert seen == {"e1", "r1"}
