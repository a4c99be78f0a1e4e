"""One writer of learning events: the exercise player's answers, tablets' batches, and when
events happened.

- Answers posted by the exercise player's form are acknowledged (redirected) only once
  committed: a `kill -9` right after loses none of them.
- An answer posted twice (a double tap, a resent form) counts once.
- Answers reach the facilitator's grid.
- An exercise's state is read from the stored row, and equals a replay of the history.
- Tablets' events are dated when they happened, on the box's clock, and events for
  resources this box does not hold are refused one by one.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import signal
import sqlite3
import sys
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from conftest import PACK_ID, Player  # noqa: E402
from passerelle.server import records  # noqa: E402
from passerelle.server.learning import mastery, progress  # noqa: E402
from passerelle.server.reports import impact  # noqa: E402

from tests.conftest import PINS, csrf_token  # noqa: E402

STREAK = "mastery/streak"


def answer_events(home: Path) -> list[dict]:
    db = sqlite3.connect(home / "passerelle.db")
    try:
        rows = db.execute("SELECT payload FROM ops WHERE kind = 'event'").fetchall()
    finally:
        db.close()
    return [p for p in (json.loads(r[0]) for r in rows) if p.get("type") == "answer"]


class Tablet:
    """A learner over real HTTP, posting the exercise player's forms (no JavaScript)."""

    def __init__(self, url: str, learner_uuid: str, pin: str):
        self.url = url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = self.get(f"/signin/learner/{learner_uuid}")
        self.post(f"/signin/learner/{learner_uuid}", {"csrf_token": self.token(page), "secret": pin})

    @staticmethod
    def token(page: str) -> str:
        return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    def get(self, path: str) -> str:
        return self.opener.open(self.url + path, timeout=30).read().decode()

    def post(self, path: str, data: dict) -> str:
        return self.opener.open(self.url + path, data=urllib.parse.urlencode(data).encode(),
                                timeout=30).read().decode()

    def answer_right(self, node: str) -> str:
        path = f"/practice/{PACK_ID}/{node}?more=1"  # on after mastery, as "Keep practising"
        page = self.get(path)
        attempt = re.search(r'name="attempt" value="([^"]*)"', page).group(1)
        feedback = self.post(path, {"csrf_token": self.token(page), "attempt": attempt,
                                    "action": "check", "answer": "1"})
        self.post(path, {"csrf_token": self.token(feedback), "attempt": attempt, "action": "next"})
        return feedback


def test_answers_acknowledged_by_the_player_survive_kill_9(installed, box, server_factory):
    server = server_factory()
    tablet = Tablet(server.url, box.ids["amina"], PINS["amina"])
    for _ in range(4):
        tablet.answer_right(STREAK)
    server.stop(signal.SIGKILL)  # the power cut: no shutdown, no checkpoint
    assert len(answer_events(box.home)) == 4
    again = server_factory()  # the box comes back and keeps counting from there
    Tablet(again.url, box.ids["amina"], PINS["amina"]).answer_right(STREAK)
    assert len(answer_events(box.home)) == 5


def test_an_answer_posted_twice_counts_once_and_reaches_the_grid(installed, as_user, box):
    player = Player(as_user("amina"), STREAK)
    page = player.open()
    player.answer("1", page=page)
    player.answer("1", page=page)  # the same form again: a double tap on a slow tablet
    answers = [e for e in answer_events(box.home) if e["node_id"] == STREAK]
    assert len(answers) == 1
    assert answers[0]["occurred_at"].endswith("Z")

    from passerelle.server.db import get_db
    from passerelle.server.learning import lessons

    with installed.app_context():
        db = get_db()
        lesson = lessons.create_lesson(db, "Practice", [{"pack_id": PACK_ID, "node_id": STREAK}],
                                       box.ids["fatou"])
        lessons.assign(db, lesson, box.ids["class_a"], box.ids["fatou"])
    grid = as_user("fatou").get(f"/api/v1/classes/{box.ids['class_a']}/grid").get_json()
    assert grid["cells"][box.ids["amina"]][f"{PACK_ID}/{STREAK}"] == "in_progress"


def test_mastery_is_read_from_the_stored_state_as_a_replay_would_find_it(installed, as_user, box):
    player = Player(as_user("bart"), STREAK)
    for given in ("0", "1", "1", "0", "1", "1", "1"):
        player.open()
        player.answer(given)
        player.next()
    from passerelle.server.db import get_db

    with installed.app_context():
        stored = progress.exercise_state(get_db(), box.ids["bart"], PACK_ID, STREAK)
    replayed = [e["correct"] for e in answer_events(box.home)
                if e["node_id"] == STREAK and e.get("question_id") == "q"]
    assert stored.answers == replayed[-mastery.MAX_N:]
    assert stored.completed  # three in a row at the end


def test_the_stored_state_merges_in_any_order():
    answers = [(f"{1700000000000 + i:013d}.00000.box", i % 3 != 0, f"q{i % 4}") for i in range(150)]
    forward = ([], [])
    for version, correct, qid in answers:
        records.merge_answers(*forward, version, correct, qid)
    backward = ([], [])
    for version, correct, qid in reversed(answers):
        records.merge_answers(*backward, version, correct, qid)
    assert forward == backward
    assert len(forward[0]) == mastery.MAX_N and forward[0][-1][0] == answers[-1][0]


def send(client, events: list[dict], **body) -> dict:
    response = client.post("/api/v1/progress", json={"events": events, **body},
                           headers={"X-CSRFToken": csrf_token(client)})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_a_tablets_events_are_dated_when_they_happened(installed, as_user, box):
    client = as_user("amina")
    when = "2026-01-05T10:00:00.000Z"
    now = datetime.now(UTC).isoformat()
    send(client, [{"event_id": "t-queued", "pack_id": PACK_ID, "node_id": STREAK, "type": "progress",
                   "progress": 0.5, "seconds": 60, "occurred_at": when}], sent_at=now)
    stored = next(e for e in answer_events(box.home) + _all(box.home) if e["event_id"] == "t-queued")
    assert stored["occurred_at"].startswith("2026-01-05T10:00")
    from passerelle.server.db import get_db

    with installed.app_context():
        db = get_db()
        lines = "".join(impact.xapi_statements(db)).splitlines()
        days = db.execute("SELECT day FROM activity_days WHERE learner_uuid = ? AND seconds = 60",
                          [box.ids["amina"]]).fetchall()
    statement = next(json.loads(line) for line in lines if json.loads(line)["object"]["id"].endswith(STREAK))
    assert statement["timestamp"].startswith("2026-01-05T10:00")
    assert days == [("2026-01-05",)]


def test_a_wrong_tablet_clock_is_corrected_by_the_box(installed, as_user, box):
    client = as_user("amina")
    box_now = datetime.now(UTC)
    tablet_now = box_now - timedelta(days=400)  # a tablet whose clock was never set
    happened = tablet_now - timedelta(hours=1)
    send(client, [{"event_id": "t-skewed", "pack_id": PACK_ID, "node_id": STREAK, "type": "started",
                   "occurred_at": happened.isoformat()}], sent_at=tablet_now.isoformat())
    stored = next(e for e in _all(box.home) if e["event_id"] == "t-skewed")
    placed = datetime.fromisoformat(stored["occurred_at"].replace("Z", "+00:00"))
    assert abs(placed - (box_now - timedelta(hours=1))) < timedelta(minutes=5)
    send(client, [{"event_id": "t-future", "pack_id": PACK_ID, "node_id": STREAK, "type": "started",
                   "occurred_at": (box_now + timedelta(days=30)).isoformat()}])
    future = next(e for e in _all(box.home) if e["event_id"] == "t-future")
    assert datetime.fromisoformat(future["occurred_at"].replace("Z", "+00:00")) <= datetime.now(UTC)


def test_events_for_resources_this_box_does_not_hold_are_refused_one_by_one(installed, as_user, box):
    client = as_user("amina")
    answer = send(client, [
        {"event_id": "t-real", "pack_id": PACK_ID, "node_id": STREAK, "type": "started"},
        {"event_id": "t-ghost", "pack_id": "digital-skills-en", "node_id": "no-such-node",
         "type": "completed"}])
    assert answer["accepted"] == 1
    assert answer["refused"] == [{"event_id": "t-ghost", "reason": "not_installed"}]
    assert {e["event_id"] for e in _all(box.home)} >= {"t-real"}
    assert "t-ghost" not in {e["event_id"] for e in _all(box.home)}


def _all(home: Path) -> list[dict]:
    db = sqlite3.connect(home / "passerelle.db")
    try:
        return [json.loads(r[0]) for r in db.execute("SELECT payload FROM ops WHERE kind = 'event'")]
    finally:
        db.close()


@pytest.mark.parametrize("text, ok", [("2026-01-05T10:00:00Z", True), ("2026-01-05T10:00:00+01:00", True),
                                      ("not a date", False), ("2026-01-05T10:00:00", False), (5, False)])
def test_times_are_read_with_their_offset_only(text, ok):
    assert (progress.parse_time(text) is not None) is ok
