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
- An answer and the completion it earns are submitted together. Mastery is
  decided from the stored state read just before: two tablets answering the same
  exercise for the same learner at the same instant may see each other's answer
  one answer late, never twice; the completion has one id per learner and
  exercise, so it is recorded once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from flask import Flask, current_app
from passerelle.server import records
from passerelle.server.learning import mastery


def init_app(app: Flask) -> None:
    app.extensions["passerelle.progress_writer"] = records.GroupCommit()


def writer(app: Flask | None = None) -> records.GroupCommit:
    return (app or current_app).extensions["passerelle.progress_writer"]


def record(db, learner_uuid: str, events: list[dict]) -> int:
    """Write validated events of one learner, durably; how many were new (not resent)."""
    return writer().submit(db, learner_uuid, events)


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


# --- reads for the pages -------------------------------------------------------------------

def statuses(db, learner_uuid: str, pack_id: str) -> dict[str, str]:
    """node id -> 'completed' | 'in-progress' for one learner in one pack."""
    rows = db.execute("SELECT node_id, completed_version IS NOT NULL FROM progress"
                      " WHERE learner_uuid = ? AND pack_id = ?", [learner_uuid, pack_id]).fetchall()
    return {node: "completed" if done else "in-progress" for node, done in rows}


def in_progress(db, learner_uuid: str, limit: int = 4) -> list[dict]:
    """Resources the learner started and did not finish, most recent first (to resume)."""
    rows = db.execute(
        "SELECT p.pack_id, p.node_id, n.title, n.kind, p.progress FROM progress p"
        " JOIN content_nodes n ON n.pack_id = p.pack_id AND n.node_id = p.node_id"
        " WHERE p.learner_uuid = ? AND p.completed_version IS NULL AND n.kind != 'topic'"
        " ORDER BY p.last_version DESC LIMIT ?", [learner_uuid, limit]).fetchall()
    return [dict(zip(("pack_id", "node_id", "title", "kind", "progress"), r, strict=True))
            for r in rows]


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
