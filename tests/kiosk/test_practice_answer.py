"""The exercise player's script: one JSON request per answer, checked and recorded as the form does."""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "content"))
sys.path.insert(0, str(Path(__file__).parent))

from conftest import PACK_ID, Player  # noqa: E402
from kolibri_channel import (  # noqa: E402
    CHANNEL,
    algebra_channel,
    hexid,
    standard,
)
from passerelle.content import kolibri  # noqa: E402


def answers(app, node: str | None = None) -> list[dict]:
    db = sqlite3.connect(app.config["DB_PATH"])
    rows = db.execute("SELECT payload FROM ops WHERE kind = 'event' ORDER BY version").fetchall()
    db.close()
    found = [json.loads(p) for (p,) in rows]
    return [e for e in found if e.get("type") in ("answer", "completed")
            and (node is None or e["node_id"] == node)]


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


class Script:
    """Drives the exercise page as its script does: the question's fields as JSON, then the
    next question from the reply, with no page loaded."""

    def __init__(self, client, pack: str, node: str, query: str = ""):
        self.client, self.pack, self.node = client, pack, node
        self.html = client.get(f"/practice/{pack}/{node}{query}").get_data(as_text=True)
        self.token = re.search(r'<meta name="csrf-token" content="([^"]+)"', self.html).group(1)
        self.reply = None

    @property
    def check_url(self) -> str:
        return re.search(r'data-check="([^"]+)"', self.html).group(1).replace("&amp;", "&")

    @property
    def attempt(self) -> str:
        return re.search(r'name="attempt" value="([^"]*)"', self.html).group(1)

    @property
    def question_id(self) -> str:
        return re.search(r'data-question="([^"]+)"', self.html).group(1)

    def post(self, fields: dict, *, attempt: str | None = None, headers=None, body=None):
        response = self.client.post(
            self.check_url, json=body if body is not None else {
                "attempt": self.attempt if attempt is None else attempt, "answer": fields},
            headers={"X-CSRFToken": self.token} if headers is None else headers)
        if response.status_code == 200:
            self.reply = response.get_json()
        return response

    def next(self) -> None:
        """"Next question" or "Keep practising": the reply's other body, no request."""
        self.html = self.reply["next"]


def right(html: str) -> str:
    prompt = text(re.search(r'<div class="prompt" id="prompt"[^>]*>(.*?)</div>', html, re.S).group(1))
    qid = re.search(r'data-question="([^"]+)"', html).group(1)
    if qid == "add":
        a, b = map(int, re.findall(r"\d+", prompt))
        return str(a + b)
    if qid == "times":
        return str(int(re.findall(r"\d+", prompt)[0]) * 10)
    return {"choice": "1", "litres": "1.5", "capital": "Brussels"}.get(qid, "1")


@pytest.fixture
def amina(installed, as_user):
    return as_user("amina")


def test_a_right_answer_in_one_request(installed, amina):
    page = Script(amina, PACK_ID, "types/all")
    assert page.question_id == "choice" and page.attempt == "0"
    response = page.post({"answer": ["1"]})
    assert response.status_code == 200
    reply = response.get_json()
    assert reply["correct"] is True and reply["just_mastered"] is False and reply["attempt"] == 0
    assert "Correct!" in text(reply["feedback"]) and 'id="feedback"' in reply["feedback"]
    assert "1 correct so far" in text(reply["feedback"])  # the progress, as the page shows it
    assert "<html" not in reply["feedback"]  # the page's body only
    # The next question, ready: the same body the page shows, for the next attempt.
    page.next()
    assert page.question_id == "habits" and page.attempt == "1"
    recorded = answers(installed)
    assert [(e["question_id"], e["correct"]) for e in recorded] == [("choice", True)]


def test_a_wrong_answer_shows_the_right_one_and_the_explanation(installed, amina):
    page = Script(amina, PACK_ID, "types/all")
    reply = page.post({"answer": ["0"]}).get_json()
    assert reply["correct"] is False
    shown = text(reply["feedback"])
    assert "Not quite." in shown and "The right answer: correct horse battery staple" in shown
    assert "A long passphrase has far more combinations." in shown
    assert [e["correct"] for e in answers(installed)] == [False]


def test_an_answer_sent_again_is_counted_once_and_answered_the_same(installed, amina):
    page = Script(amina, PACK_ID, "types/all")
    first = page.post({"answer": ["1"]}).get_json()
    again = page.post({"answer": ["1"]}).get_json()  # the reply was lost: "Check" again
    assert again == first
    assert len(answers(installed)) == 1
    page.next()
    page.post({"answer": ["0", "2"]})
    assert [e["question_id"] for e in answers(installed)] == ["choice", "habits"]


def test_every_kind_of_question_through_the_script(installed, amina):
    page = Script(amina, PACK_ID, "types/all")
    given = {"choice": {"answer": ["1"]}, "habits": {"answer": ["0", "2"]},
             "litres": {"answer": ["1,6"]}, "capital": {"answer": ["brussel"]}}
    for _ in range(5):
        qid = page.question_id
        fields = given.get(qid) or {"answer": [right(page.html)]}
        reply = page.post(fields).get_json()
        assert reply["correct"] is True, qid
        page.next()
    assert [e["question_id"] for e in answers(installed) if e["type"] == "answer"] == \
        ["choice", "habits", "litres", "capital", "add"]
    # The generated question's numbers were drawn when the script was sent the question.
    assert "values" in answers(installed)[-1]


def test_the_next_generated_question_is_the_one_checked(installed, amina):
    page = Script(amina, PACK_ID, "generated/tiny")
    for _ in range(6):
        reply = page.post({"answer": [right(page.html)]}).get_json()
        assert reply["correct"] is True
        page.next()
    assert len(answers(installed)) == 6


def test_not_an_answer_is_sent_back_and_nothing_recorded(installed, amina):
    page = Script(amina, PACK_ID, "types/all")
    response = page.post({})
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "not_an_answer"
    assert "Choose one answer" in response.get_json()["error"]["message"]
    assert answers(installed) == []
    assert page.post({"answer": ["1"]}).status_code == 200  # the same question, answered


def test_mastery_keep_practising_and_the_way_on(installed, amina):
    page = Script(amina, PACK_ID, "mastery/streak")
    for n in range(3):
        reply = page.post({"answer": ["1"]}).get_json()
        assert reply["just_mastered"] is (n == 2)
        assert ('rel="next"' in reply["feedback"]) is (n == 2)
        if n < 2:
            page.next()
    feedback = text(reply["feedback"])
    assert "Congratulations! You have mastered this exercise." in feedback
    assert feedback.count("mastered this exercise") == 1  # the congratulations say it
    assert "Keep practising" in feedback and "Back to the topic" in feedback
    assert "Next question" not in feedback  # after mastery: the way on, or keep practising
    # The way on: the next item of the topic (looked up only once mastered).
    assert 'href="/learn/practice-test/mastery/do-all" rel="next"' in reply["feedback"]
    done = [e for e in answers(installed) if e["type"] == "completed"]
    assert len(done) == 1
    page.next()  # "Keep practising"
    assert "more=1" in page.check_url and page.question_id == "q"
    assert "You have mastered this exercise." in text(page.html)
    reply = page.post({"answer": ["0"]}).get_json()
    assert reply["correct"] is False and reply["mastered"] is True
    assert "Next question" in text(reply["feedback"])  # keeps practising
    assert len([e for e in answers(installed) if e["type"] == "completed"]) == 1


def test_the_page_and_the_script_follow_one_run(installed, amina):
    """A reload after the script showed the next question, a hint asked by the form: the
    run stays one."""
    page = Script(amina, PACK_ID, "types/all")
    page.post({"answer": ["1"]})
    page.next()  # the script shows "habits" (attempt 1); the box's run still shows feedback
    player = Player(amina, "types/all")
    assert "Correct!" in player.open()  # a reload shows the last feedback...
    player.next()
    assert player.question_id == "habits"  # ...and "Next question" the one the script showed
    # A hint asked on the question the script showed: the form's post moves the run on.
    page = Script(amina, PACK_ID, "types/all")
    page.post({"answer": ["0", "2"]})
    page.next()
    assert page.question_id == "litres"
    player.html = page.html
    response = player.post("hint", "1")
    assert response.status_code == 200 and player.question_id == "litres"
    reply = Script(amina, PACK_ID, "types/all").post({"answer": ["1.5"]}).get_json()
    assert reply["correct"] is True
    assert [e["question_id"] for e in answers(installed)] == ["choice", "habits", "litres"]


def test_an_old_tab_is_told_to_load_the_page(installed, amina):
    page = Script(amina, PACK_ID, "types/all")
    stale = page.attempt
    page.post({"answer": ["1"]})
    page.next()
    page.post({"answer": ["0", "2"]})
    response = page.post({"answer": ["1"]}, attempt=stale)
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "stale"
    assert len(answers(installed)) == 2


def test_an_unknown_exercise_is_404(installed, amina):
    page = Script(amina, PACK_ID, "types/all")
    response = amina.post(f"/api/v1/practice/{PACK_ID}/types/no-such-node/answer",
                          json={"attempt": 0, "answer": {"answer": ["1"]}},
                          headers={"X-CSRFToken": page.token})
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    response = amina.post(f"/api/v1/practice/{PACK_ID}/types/answer",  # a topic, not an exercise
                          json={"attempt": 0, "answer": {"answer": ["1"]}},
                          headers={"X-CSRFToken": page.token})
    assert response.status_code == 404
    assert answers(installed) == []


def test_without_the_csrf_header_nothing_is_recorded(installed, amina):
    page = Script(amina, PACK_ID, "types/all")
    response = page.post({"answer": ["1"]}, headers={})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "csrf_failed"
    response = page.post({"answer": ["1"]}, headers={"X-CSRFToken": "forged"})
    assert response.status_code == 400
    assert answers(installed) == []


def test_guests_and_staff_are_refused(installed, as_user):
    url = f"/api/v1/practice/{PACK_ID}/types/all/answer"
    body = {"attempt": 0, "answer": {"answer": ["1"]}}
    guest = as_user(None)
    page = guest.get(f"/practice/{PACK_ID}/types/all").get_data(as_text=True)
    assert "data-check" not in page  # a guest's page answers through its form
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    response = guest.post(url, json=body, headers={"X-CSRFToken": token})
    assert response.status_code == 401
    fatou = as_user("fatou")
    page = fatou.get(f"/practice/{PACK_ID}/types/all").get_data(as_text=True)
    assert "data-check" not in page
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    assert fatou.post(url, json=body, headers={"X-CSRFToken": token}).status_code == 403
    assert answers(installed) == []


@pytest.mark.parametrize("extra", [
    {"quiz": "0" * 32}, {"item": 0}, {"correct": True}, {"question_id": "choice"}])
def test_fields_the_box_decides_are_refused(installed, amina, extra):
    """A learner cannot post a quiz's fields, nor say the answer was right."""
    page = Script(amina, PACK_ID, "types/all")
    response = page.post({}, body={"attempt": 0, "answer": {"answer": ["0"]}, **extra})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid" and set(error["details"]) == set(extra)
    assert answers(installed) == []


@pytest.mark.parametrize("body", [
    None, [], {"attempt": "x", "answer": {}}, {"attempt": "²", "answer": {}},
    {"attempt": "", "answer": {}}, {"attempt": 0, "answer": ["1"]},
    {"attempt": 0, "answer": {"answer": [1]}}, {"attempt": 0, "answer": {"answer": ["x" * 501]}},
    {"attempt": 0, "answer": {f"f{i}": ["1"] for i in range(61)}}])
def test_malformed_bodies_are_refused(installed, amina, body):
    page = Script(amina, PACK_ID, "types/all")
    response = page.post({}, body=body) if body is not None else amina.post(
        page.check_url, data="not json", headers={"X-CSRFToken": page.token})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid"
    assert answers(installed) == []


# --- Khan Academy (Perseus) questions ---------------------------------------------------

PACK = "kolibri-" + CHANNEL


def test_a_perseus_exercise_to_mastery_through_the_script(app, tmp_path, as_user):
    ex, ids = standard(tmp_path / "KOLIBRI_DATA")
    ex.save()
    kolibri.import_channel(app.extensions["passerelle.library"], ex.root, CHANNEL)
    client = as_user("amina")
    page = Script(client, PACK, hexid("content" + ids["exercise"]))
    given = {"q1": "7", "q2": "1/2", "q3": "1"}
    assert page.post({"w1": [""]}).status_code == 422  # empty: sent back
    for _ in range(3):
        reply = page.post({"w1": [given[page.question_id]]}).get_json()
        assert reply["correct"] is True
        if reply["just_mastered"]:
            break
        page.next()
    assert reply["just_mastered"] and "You have mastered this exercise." in text(reply["feedback"])


def test_perseus_expression_and_radio_through_the_script(app, tmp_path, as_user):
    ex, node = algebra_channel(tmp_path / "KOLIBRI_DATA")
    kolibri.import_channel(app.extensions["passerelle.library"], ex.root, CHANNEL)
    page = Script(as_user("amina"), PACK, hexid("content" + node))
    seen = set()
    for _ in range(2):
        seen.add(page.question_id)
        fields = {"w1": ["5*x"]} if page.question_id == "e1" else {"w1": ["2"]}
        reply = page.post(fields).get_json()
        assert reply["correct"] is True, page.question_id
        page.next()
    assert seen == {"e1", "r1"}
