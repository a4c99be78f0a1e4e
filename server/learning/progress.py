"""Learning events: the one way they are written, and the reads the pages need.

Design
------
- **One writer.** Every learning event a learner makes on this box — a tablet's
  batch (``POST /api/v1/progress``), an exercise answer, opening or finishing a
  resource — is written by :func:`record`, through the app's
  :class:`~passerelle.server.records.GroupCommit`: the events of requests that
  arrive together share one transaction and one fsync, and a request is
  answered only once its events are committed. Events that arrive by sync are
  not written here: they are kept whatever this box holds (``sync``).
- **One event-id scheme.** Tablets make their own random ids; the server makes
  :func:`event_id` ``<kind>-<40 hex digits>`` from what identifies the event, so
  an event made twice (a double tap, a page opened again) is recorded once, and
  every id matches the API's id pattern.
- **An exercise's state is stored**, not replayed: the fold keeps the newest
  answers and the questions ever answered correctly with the learner's summary
  row (``records.merge_answers``), as Kolibri keeps a mastery log. Answering
  reads one row, however long the learner's history.
- **When it happened.** A tablet queues events while the Wi-Fi is down and sends
  them later, so each event carries ``occurred_at`` from the tablet's clock, and the
  batch carries ``sent_at``, the tablet's clock when sending. The difference between
  the box's clock and ``sent_at`` corrects a tablet whose clock is wrong; the result
  is bounded by the box's clock (never in the future, at most a year back). Reports
  and xAPI date an event by it (:func:`from_tablet`).
- **Only what this box holds.** A tablet's events for resources not installed here
  are refused one by one and named in the answer (the tablet drops them: sending
  them again cannot help); the others are recorded. Events arriving by sync are
  kept whatever this box holds.
- **A full disk loses nothing acknowledged**: :func:`record` raises
  :class:`EventsNotStored` with the events, the API answers 507 and the
  tablet keeps them; the pages hand them to the tablet's queue.
- An answer and the completion it earns are submitted together. Mastery is
  decided from the stored state read just before: two tablets answering the same
  exercise for the same learner at the same instant may see each other's answer
  one answer late, never twice; the completion has one id per learner and
  exercise, so it is recorded once.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import Flask, current_app
from passerelle.server import disk, records
from passerelle.server.errors import DISK_FULL, InsufficientStorage
from passerelle.server.learning import events as checks
from passerelle.server.learning import mastery
from passerelle.server.packs import catalogue


def init_app(app: Flask) -> None:
    app.extensions["passerelle.progress_writer"] = records.GroupCommit()


def writer(app: Flask | None = None) -> records.GroupCommit:
    return (app or current_app).extensions["passerelle.progress_writer"]


class EventsNotStored(InsufficientStorage):
    """The data home's disk is full: these events were not written (none of them).

    The API answers 507 and the tablet keeps its queue; a page keeps the events for
    the tablet to queue (``kiosk/pending.py``). Their ids are kept, so whichever way
    they come back they count once.
    """

    def __init__(self, events: list[dict]):
        super().__init__(DISK_FULL)
        self.events = events


def record(db, learner_uuid: str, events: list[dict]) -> int:
    """Write validated events of one learner, durably; how many were new (not resent).

    Events made on the box itself (not by a tablet) happen now.
    """
    stamp = iso(datetime.now(UTC))
    events = [e if "occurred_at" in e else {**e, "occurred_at": stamp} for e in events]
    try:
        return writer().submit(db, learner_uuid, events)
    except (sqlite3.Error, records.WriteFailed, OSError) as exc:
        if not disk.is_full(exc):
            raise
        raise EventsNotStored(events) from exc


MAX_EVENT_AGE = timedelta(days=366)


def parse_time(text) -> datetime | None:
    """An ISO 8601 date-time with its offset (``Z`` included), else None."""
    if not isinstance(text, str) or not 10 <= len(text) <= 40:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def from_tablet(db, events: list[dict], *, sent_at=None, now: datetime | None = None
                ) -> tuple[list[dict], list[dict]]:
    """A tablet's validated events placed in time and checked against this box's catalogue:
    (events to record, refused ones as ``{event_id, reason}``)."""
    now = now or datetime.now(UTC)
    sent = parse_time(sent_at)
    shift = now - sent if sent is not None else timedelta(0)
    known = catalogue.brief(db, [(e["pack_id"], e["node_id"]) for e in events])
    kept, refused = [], []
    for event in events:
        if (event["pack_id"], event["node_id"]) not in known:
            refused.append({"event_id": event["event_id"], "reason": "not_installed"})
            continue
        occurred = parse_time(event.get("occurred_at"))
        occurred = now if occurred is None else min(now, max(now - MAX_EVENT_AGE, occurred + shift))
        kept.append({**event, "occurred_at": iso(occurred)})
    return kept, refused


def event_id(kind: str, *parts: str) -> str:
    """The id of an event the server makes: the same parts give the same id."""
    return f"{kind}-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:40]


def recorded(db, event_id_: str) -> bool:
    return db.execute("SELECT 1 FROM ops WHERE event_id = ?", [event_id_]).fetchone() is not None


def start(db, learner_uuid: str, pack_id: str, node_id: str) -> None:
    """Opening a resource starts it, once per learner and resource."""
    started = event_id("started", learner_uuid, pack_id, node_id)
    # Looked up first: most visits are not the first, and need no write at all.
    if not recorded(db, started):
        record(db, learner_uuid, [{"event_id": started, "pack_id": pack_id, "node_id": node_id,
                                   "type": "started"}])


def complete(db, learner_uuid: str, pack_id: str, node_id: str) -> bool:
    """The learner finished the resource (its last page, "I have finished"); once."""
    done = event_id("completed", learner_uuid, pack_id, node_id)
    return record(db, learner_uuid, [{"event_id": done, "pack_id": pack_id, "node_id": node_id,
                                      "type": "completed", "progress": 1.0}]) > 0


# --- exercises -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ExerciseState:
    """What the stored state says of one learner's exercise."""

    answers: list[bool]          # the newest answers, oldest first
    question_ids: list           # the question of each of them
    solved: list[str]            # questions ever answered correctly
    completed: bool


def exercise_state(db, learner_uuid: str, pack_id: str, node_id: str) -> ExerciseState:
    row = db.execute("SELECT recent, solved, completed_version IS NOT NULL FROM progress"
                     " WHERE learner_uuid = ? AND pack_id = ? AND node_id = ?",
                     [learner_uuid, pack_id, node_id]).fetchone()
    if row is None:
        return ExerciseState([], [], [], False)
    recent = json.loads(row[0] or "[]")
    return ExerciseState([bool(c) for _v, c, _q in recent], [q for _v, _c, q in recent],
                         json.loads(row[1] or "[]"), bool(row[2]))


def assess(rules, state: ExerciseState, all_questions: list) -> mastery.Mastery:
    """Where the learner stands, by the exercise's mastery rule."""
    if mastery.rule_of(rules, len(all_questions)).model == "do_all":
        return mastery.assess(rules, [True] * len(state.solved), question_ids=state.solved,
                              all_questions=all_questions)
    return mastery.assess(rules, state.answers, question_ids=state.question_ids,
                          all_questions=all_questions)


def answer(db, learner_uuid: str, exercise: dict, pack_id: str, node_id: str, *, attempt: str,
           question_id, given, correct: bool, values: dict | None = None) -> bool:
    """Record one answer (once per ``attempt``); True when it made the exercise mastered.

    ``values`` are the numbers drawn for a generated question ("{a} + {b}"), so that staff
    later read the question as the learner saw it."""
    ids = [q.get("id") for q in exercise["questions"]]
    before = exercise_state(db, learner_uuid, pack_id, node_id)
    after = ExerciseState([*before.answers, correct], [*before.question_ids, question_id],
                          sorted({*before.solved, *([str(question_id)] if correct and question_id
                                                      is not None else [])}),
                          before.completed)
    state = assess(exercise.get("mastery"), after, ids)
    events = [{"event_id": event_id("answer", learner_uuid, pack_id, node_id, attempt),
               "pack_id": pack_id, "node_id": node_id, "type": "answer",
               "question_id": question_id, "answer": given, "correct": correct,
               # The answer carries the progress towards mastery: the summary keeps the best.
               "progress": round(state.fraction, 4)}]
    if values:
        events[0]["values"] = values
    finishing = state.mastered and not before.completed
    if finishing:
        events.append({"event_id": event_id("completed", learner_uuid, pack_id, node_id),
                       "pack_id": pack_id, "node_id": node_id, "type": "completed",
                       "progress": 1.0})
    accepted = record(db, learner_uuid, events)
    return finishing and accepted == len(events)


def quiz_attempt(db, learner_uuid: str, run_uuid: str, attempt: int, answers: list[dict]) -> int:
    """Record every answer of one submitted attempt at a quiz together, in one transaction:
    an attempt is kept whole or not at all. ``answers``: ``{item, pack_id, node_id,
    question_id, answer, correct, values?}``. Each event's id comes from the learner, the quiz,
    the attempt and the question's place, so the same form submitted twice counts once; how
    many answers were new."""
    made = []
    for a in answers:
        event = {"event_id": event_id("quiz", learner_uuid, run_uuid, str(attempt), str(a["item"])),
                 "pack_id": a["pack_id"], "node_id": a["node_id"], "type": "answer",
                 "question_id": a["question_id"], "answer": a["answer"],
                 "correct": bool(a["correct"]), "quiz": run_uuid, "attempt": attempt,
                 "item": a["item"]}
        if a.get("values"):
            event["values"] = a["values"]
        made.append(checks.check_quiz_answer(event))
    return record(db, learner_uuid, made)


# --- reads for the pages -------------------------------------------------------------------

def statuses(db, learner_uuid: str, pack_id: str) -> dict[str, str]:
    """node id -> 'completed' | 'in-progress' for one learner in one pack."""
    rows = db.execute("SELECT node_id, completed_version IS NOT NULL FROM progress"
                      " WHERE learner_uuid = ? AND pack_id = ?", [learner_uuid, pack_id]).fetchall()
    return {node: "completed" if done else "in-progress" for node, done in rows}


def in_progress(db, learner_uuid: str, limit: int = 4) -> list[dict]:
    """Resources the learner started and did not finish, most recent first (to resume)."""
    rows = db.execute(
        "SELECT pack_id, node_id, progress FROM progress WHERE learner_uuid = ?"
        " AND completed_version IS NULL ORDER BY last_version DESC LIMIT ?",
        [learner_uuid, limit * 4]).fetchall()  # topics and removed packs are left out below
    known = catalogue.brief(db, [(p, n) for p, n, _ in rows])
    found = [{"pack_id": p, "node_id": n, "title": known[(p, n)]["title"],
              "kind": known[(p, n)]["kind"], "progress": value,
              "language": known[(p, n)]["language"]}
             for p, n, value in rows if (p, n) in known and known[(p, n)]["kind"] != "topic"]
    return found[:limit]


def position(db, learner_uuid: str, pack_id: str, node_id: str) -> float:
    """Where the learner was in a video or audio (seconds), to resume there."""
    row = db.execute("SELECT position FROM progress WHERE learner_uuid = ? AND pack_id = ?"
                     " AND node_id = ?", [learner_uuid, pack_id, node_id]).fetchone()
    try:
        return float(row[0]) if row and row[0] is not None else 0.0
    except ValueError:
        return 0.0


def of_learner(db, learner_uuid: str, pack_id: str | None = None, limit: int = 1000) -> list[dict]:
    """The learner's own summaries, per resource, most recent first (the API's read)."""
    where, params = "learner_uuid = ?", [learner_uuid]
    if pack_id:
        where += " AND pack_id = ?"
        params.append(pack_id)
    cursor = db.execute(
        "SELECT pack_id, node_id, progress, completed_version IS NOT NULL, seconds, answers, correct,"
        f" position FROM progress WHERE {where} ORDER BY last_version DESC LIMIT ?", [*params, limit])
    keys = ("pack_id", "node_id", "progress", "completed", "seconds", "answers", "correct", "position")
    rows = [dict(zip(keys, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        row["completed"] = bool(row["completed"])
    return rows


def completed(db, learner_uuid: str, limit: int = 500) -> list[dict]:
    """The resources a learner completed, newest first, with when (for their own page)."""
    rows = db.execute(
        "SELECT pack_id, node_id, completed_version FROM progress WHERE learner_uuid = ?"
        " AND completed_version IS NOT NULL ORDER BY completed_version DESC LIMIT ?",
        [learner_uuid, limit]).fetchall()
    known = catalogue.brief(db, [(p, n) for p, n, _ in rows])
    return [{"pack_id": p, "node_id": n, "title": known[(p, n)]["title"],
             "kind": known[(p, n)]["kind"], "language": known[(p, n)]["language"],
             "completed_version": version}
            for p, n, version in rows if (p, n) in known and known[(p, n)]["kind"] != "topic"]
