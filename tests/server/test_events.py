"""Learning events from tablets: every field typed and bounded, so no learner can store megabytes."""

from __future__ import annotations

import json

import pytest
from passerelle.server.learning import events
from passerelle.server.sync import canonical_json

from tests.conftest import csrf_token


def event(**fields) -> dict:
    return {"event_id": "e-1", "pack_id": "demo-fr", "node_id": "basics/quiz", "type": "answer",
            **fields}


@pytest.fixture
def post(as_user):
    amina = as_user("amina")
    token = csrf_token(amina)

    def send(*batch, body=None):
        return amina.post("/api/v1/progress", json=body if body is not None else {"events": list(batch)},
                          headers={"X-CSRFToken": token})

    return send


def kept(box_app) -> list[dict]:
    with box_app.app_context():
        from passerelle.server.db import get_db

        rows = get_db().execute("SELECT payload FROM ops WHERE kind = 'event'").fetchall()
    return [json.loads(r[0]) for r in rows]


MEGABYTE = "x" * (1024 * 1024)


@pytest.mark.parametrize("fields, wrong", [
    ({"answer": MEGABYTE}, "answer"),                         # the 14 MiB request, in short
    ({"answer": {"nested": [MEGABYTE]}}, "answer"),           # any type was stored as given
    ({"answer": list(range(51))}, "answer"),
    ({"answer": [0, 1, 99]}, "answer"),
    ({"answer": float("inf")}, "answer"),
    ({"answer": 10 ** 400}, "answer"),
    ({"question_id": MEGABYTE}, "question_id"),
    ({"question_id": 12}, "question_id"),
    ({"question_id": "q 1"}, "question_id"),
    ({"occurred_at": MEGABYTE}, "occurred_at"),
    ({"occurred_at": "yesterday"}, "occurred_at"),
    ({"occurred_at": 1767225600}, "occurred_at"),
    ({"occurred_at": "2026-02-30T10:00:00Z"}, "occurred_at"),
    ({"occurred_at": "2026-11-22T10:00:00"}, "occurred_at"),  # no offset: which day is it?
    ({"occurred_at": "2026-11-22T10:30:00.123456789012345+01:00"}, "occurred_at"),  # 41 characters
    ({"occurred_at": "2026-11-22T10:00:00Z\n"}, "occurred_at"),
    ({"occurred_at": "٢٠٢٦-11-22T10:00:00Z"}, "occurred_at"),  # digits of another script
    ({"position": MEGABYTE}, "position"),
    ({"position": 10 ** 400}, "position"),
    ({"position": None}, "position"),
    ({"seconds": 12.5}, "seconds"),
    ({"seconds": True}, "seconds"),
    ({"progress": float("nan")}, "progress"),
    ({"event_id": "e-1\n"}, "event_id"),
    ({"node_id": "n" * 201}, "node_id"),
])
def test_an_event_out_of_bounds_is_refused_and_nothing_is_kept(post, box_app, fields, wrong):
    before = kept(box_app)
    response = post(event(**fields))
    assert response.status_code == 400, response.get_json()
    assert list(response.get_json()["error"]["details"]) == [f"events[0].{wrong}"]
    assert kept(box_app) == before


def test_a_batch_is_bounded(post, box_app):
    many = [event(event_id=f"e-{i}", type="progress") for i in range(events.MAX_EVENTS + 1)]
    assert post(*many).status_code == 400
    assert post(*many[:events.MAX_EVENTS]).get_json() == {"accepted": events.MAX_EVENTS,
                                                         "duplicates": 0, "refused": []}


def test_a_full_event_is_kept_with_only_the_fields_the_box_knows(post, box_app):
    full = event(question_id="q1", answer=[0, 2.0], correct=False, progress=0.5, seconds=3964.0,
                 position="page-3", occurred_at="2026-11-22T10:30:00.123+01:00",
                 extra="y" * 10_000, nested={"a": MEGABYTE})
    assert post(full).get_json() == {"accepted": 1, "duplicates": 0, "refused": []}
    (stored,) = [e for e in kept(box_app) if e["event_id"] == "e-1"]
    # 3964.0 is a whole number (JSON does not tell it from 3964): kept as one.
    assert stored == {"event_id": "e-1", "pack_id": "demo-fr", "node_id": "basics/quiz",
                      "type": "answer", "question_id": "q1", "answer": [0, 2], "correct": False,
                      "progress": 0.5, "seconds": 3964, "position": "page-3",
                      # the same instant, placed on the box's clock (UTC)
                      "occurred_at": "2026-11-22T09:30:00.123Z"}
    assert isinstance(stored["seconds"], int)


def test_the_largest_event_that_passes_is_far_below_what_sync_accepts():
    astral = "\U0001f600"  # one character, twelve bytes once escaped in the log
    largest = event(event_id="e" * 200, pack_id="p" * 200, node_id="n" * 200,
                    question_id="q" * 100, answer=astral * events.MAX_ANSWER_CHARS,
                    position=astral * events.MAX_POSITION_CHARS, progress=0.123456789012345,
                    seconds=events.MAX_SECONDS, correct=True,
                    occurred_at="2026-11-22T10:30:00.12345678901234+01:00")
    (clean,) = events.validate_batch({"events": [largest]})
    assert len(canonical_json(clean)) < events.MAX_EVENT_BYTES / 2
    answers = event(answer=list(range(events.MAX_CHOICES)))
    (clean,) = events.validate_batch({"events": [answers]})
    assert len(canonical_json(clean)) < events.MAX_EVENT_BYTES / 2


def test_the_description_says_the_same_bounds(client):
    described = client.get("/api/openapi.json").get_json()["components"]["schemas"]
    props = described["Event"]["properties"]
    assert props["event_id"]["pattern"] == events.ID_PATTERN
    assert props["question_id"]["pattern"] == events.QUESTION_PATTERN
    assert props["occurred_at"] == {**props["occurred_at"], "type": "string", "format": "date-time",
                                    "maxLength": events.MAX_OCCURRED_AT_CHARS}
    assert described["EventBatch"]["properties"]["events"]["maxItems"] == events.MAX_EVENTS


@pytest.mark.parametrize("who, path", [("amina", "/api/v1/progress"), (None, "/api/v1/sync/pair")])
def test_a_body_nested_too_deeply_is_a_bad_request(as_user, who, path):
    client = as_user(who)
    response = client.post(path, data="[" * 100_000, content_type="application/json",
                           headers={"X-CSRFToken": csrf_token(client)})
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
