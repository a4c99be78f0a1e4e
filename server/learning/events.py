"""Learning events as tablets send them: what one event may hold, and how much.

A learner's tablet posts batches of events (``POST /api/v1/progress``). Each is
kept for good in the operation log and travels to every other box, so nothing
is taken as given: every field has a type and a bound, and fields this box
does not know are dropped. An event that passes takes at most a few kilobytes
in the log (:data:`MAX_EVENT_BYTES` bounds what sync accepts from another
box, with room to spare), a batch at most :data:`MAX_EVENTS` of them.

The OpenAPI description (``server/openapi.py``) is built from :func:`schema`,
so the rules a client reads are the rules the box applies; a schemathesis test
sends generated requests of both kinds and checks they agree.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from passerelle.server.errors import InvalidInput

TYPES = ("started", "progress", "answer", "completed", "time")
# Ids made by tablets and pack authors: short, printable, no spaces.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$"
# The pack format's question ids (content/schema/pack-v1.json).
QUESTION_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$"
MAX_EVENTS = 500
MAX_SECONDS = 4 * 3600
MAX_ANSWER_CHARS = 200       # what the practice page itself keeps of a typed answer
MAX_CHOICES = 50             # the pack format's most choices in one question
MAX_POSITION = 10_000_000    # a media time in seconds or a page number; far beyond any resource
MAX_POSITION_CHARS = 100
MAX_NUMBER = 1e15            # a number typed as an answer; keeps its JSON text short
MAX_OCCURRED_AT_CHARS = 40
# Worst case of one event that passes, as the canonical JSON of the log (every character of the
# texts escaped as \uXXXX): about 5 KB. Sync refuses larger event operations from other boxes.
MAX_EVENT_BYTES = 16 * 1024

_ID = re.compile(ID_PATTERN)
_QUESTION = re.compile(QUESTION_PATTERN)
# RFC 3339's date-time, as the description's `format: date-time` says; ranges checked by parsing.
# fullmatch, not match: "$" would also match before a final newline. [0-9], not \d: Python's \d
# matches every script's digits, the description's patterns (ECMA-262) only ASCII ones.
_DATE_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
                        r"([Zz]|[+-][0-9]{2}:[0-9]{2})")


def _is_number(value: Any) -> bool:
    # An int is always finite; asking math.isfinite would turn a huge one into an OverflowError.
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and (isinstance(value, int) or math.isfinite(value)))


def _whole(value: Any, low: int, high: int) -> int | None:
    """``value`` as an int when it is a whole number in range (``3964.0`` counts: JSON does not
    tell 3964 from 3964.0, and JSON Schema's ``integer`` accepts both), else None."""
    if not _is_number(value) or (isinstance(value, float) and not value.is_integer()):
        return None
    value = int(value)
    return value if low <= value <= high else None


def is_date_time(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > MAX_OCCURRED_AT_CHARS or not _DATE_TIME.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:  # 2026-02-30, 25:00, an offset of a day or more...
        return False
    return True


_WRONG = object()


def _answer(value: Any) -> Any:
    """The answer as kept, or _WRONG."""
    if isinstance(value, str):
        return value if len(value) <= MAX_ANSWER_CHARS else _WRONG
    if isinstance(value, list):
        chosen = [_whole(v, 0, MAX_CHOICES - 1) for v in value]
        return chosen if len(chosen) <= MAX_CHOICES and None not in chosen else _WRONG
    return value if _is_number(value) and abs(value) <= MAX_NUMBER else _WRONG


def _position(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_POSITION_CHARS
    return _is_number(value) and 0 <= value <= MAX_POSITION


def _check(event: dict) -> tuple[dict, dict]:
    """(the event as it will be stored, problems by field)."""
    problems: dict[str, str] = {}
    if not isinstance(event.get("event_id"), str) or not _ID.fullmatch(event["event_id"]):
        problems["event_id"] = "a unique id made by the tablet"
    for key in ("pack_id", "node_id"):
        if not isinstance(event.get(key), str) or not _ID.fullmatch(event[key]):
            problems[key] = "an id"
    if event.get("type") not in TYPES:
        problems["type"] = f"one of {', '.join(TYPES)}"
    clean = {k: event[k] for k in ("event_id", "pack_id", "node_id", "type") if k in event}
    if "progress" in event:
        if not _is_number(event["progress"]) or not 0 <= event["progress"] <= 1:
            problems["progress"] = "a number from 0 to 1"
        clean["progress"] = event["progress"]
    if "seconds" in event:
        clean["seconds"] = _whole(event["seconds"], 0, MAX_SECONDS)
        if clean["seconds"] is None:
            problems["seconds"] = f"whole seconds from 0 to {MAX_SECONDS}"
    if "correct" in event:
        if not isinstance(event["correct"], bool):
            problems["correct"] = "true or false"
        clean["correct"] = event["correct"]
    if "position" in event:
        if not _position(event["position"]):
            problems["position"] = (f"a number from 0 to {MAX_POSITION}, or a text of at most "
                                    f"{MAX_POSITION_CHARS} characters")
        clean["position"] = event["position"]
    if "occurred_at" in event:
        if not is_date_time(event["occurred_at"]):
            problems["occurred_at"] = ("a date and time with its offset (RFC 3339), for example "
                                       "2026-11-22T10:30:00Z")
        clean["occurred_at"] = event["occurred_at"]
    if "question_id" in event:
        if not isinstance(event["question_id"], str) or not _QUESTION.fullmatch(event["question_id"]):
            problems["question_id"] = "a question id of the pack"
        clean["question_id"] = event["question_id"]
    if "answer" in event:
        clean["answer"] = _answer(event["answer"])
        if clean["answer"] is _WRONG:
            problems["answer"] = (f"a text of at most {MAX_ANSWER_CHARS} characters, a number, or "
                                  f"a list of at most {MAX_CHOICES} choice numbers")
    return clean, problems


def validate_batch(body: Any) -> list[dict]:
    """The events of a request body, checked and trimmed to what is kept; InvalidInput naming
    every wrong field when any is wrong (then none may be recorded)."""
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise InvalidInput("expected a JSON object with a list of events",
                           details={"events": f"a list of at most {MAX_EVENTS} events"})
    events = body["events"]
    if len(events) > MAX_EVENTS:
        raise InvalidInput("too many events in one request", details={"events": f"at most {MAX_EVENTS}"})
    problems, clean = {}, []
    if "sent_at" in body and not is_date_time(body["sent_at"]):
        problems["sent_at"] = "the tablet's clock when sending (RFC 3339, with its offset)"
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            problems[f"events[{i}]"] = "an object"
            continue
        kept, wrong = _check(event)
        problems.update({f"events[{i}].{key}": why for key, why in wrong.items()})
        clean.append(kept)
    if problems:
        raise InvalidInput("some events are not valid; none was recorded", details=problems)
    return clean


def schema() -> dict:
    """The JSON Schema of one event, for the OpenAPI description."""
    ident = {"type": "string", "pattern": ID_PATTERN, "maxLength": 200}
    return {
        "type": "object", "required": ["event_id", "pack_id", "node_id", "type"],
        "description": "Fields not listed here are ignored and not kept.",
        "properties": {
            "event_id": {**ident, "description": "Unique id made by the tablet."},
            "pack_id": ident, "node_id": ident,
            "type": {"type": "string", "enum": list(TYPES)},
            "progress": {"type": "number", "minimum": 0, "maximum": 1},
            "seconds": {"type": "integer", "minimum": 0, "maximum": MAX_SECONDS,
                        "description": "Time spent since the previous event."},
            "correct": {"type": "boolean"},
            "position": {"description": "Where the learner is: a media time in seconds, a page...",
                         "anyOf": [{"type": "number", "minimum": 0, "maximum": MAX_POSITION},
                                   {"type": "string", "maxLength": MAX_POSITION_CHARS}]},
            "occurred_at": {"type": "string", "format": "date-time",
                            "maxLength": MAX_OCCURRED_AT_CHARS,
                            "description": "When it happened on the tablet (RFC 3339, with its "
                                           "offset; seconds 00 to 59)."},
            "question_id": {"type": "string", "pattern": QUESTION_PATTERN, "maxLength": 100},
            "answer": {"description": "What the learner answered: a text, a number, or the "
                                      "numbers of the choices ticked.",
                       "anyOf": [{"type": "string", "maxLength": MAX_ANSWER_CHARS},
                                 {"type": "number", "minimum": -MAX_NUMBER, "maximum": MAX_NUMBER},
                                 {"type": "array", "maxItems": MAX_CHOICES,
                                  "items": {"type": "integer", "minimum": 0,
                                            "maximum": MAX_CHOICES - 1}}]},
        },
    }


# --- answers in a quiz ----------------------------------------------------------------------

MAX_QUIZ_ATTEMPTS = 100
MAX_QUIZ_ITEMS = 200


def check_quiz_answer(event: dict) -> dict:
    """One answer of an attempt at a quiz, as the box itself makes it when it checks the
    learner's submitted form: an answer event placed by ``quiz`` (the started quiz's uuid),
    ``attempt`` (1, 2...) and ``item`` (the question's place in the quiz). A tablet's batch
    may not hold these fields (:func:`validate_batch` drops them): a learner could otherwise
    post their own right answers. InvalidInput naming what is wrong."""
    clean, problems = _check(event)
    if clean.get("type") != "answer":
        problems["type"] = "answer"
    if not isinstance(event.get("quiz"), str) or not _ID.fullmatch(event["quiz"]):
        problems["quiz"] = "the id of a started quiz"
    attempt = _whole(event.get("attempt"), 1, MAX_QUIZ_ATTEMPTS)
    if attempt is None:
        problems["attempt"] = f"a whole number from 1 to {MAX_QUIZ_ATTEMPTS}"
    item = _whole(event.get("item"), 0, MAX_QUIZ_ITEMS - 1)
    if item is None:
        problems["item"] = f"a whole number from 0 to {MAX_QUIZ_ITEMS - 1}"
    values = event.get("values")
    if values is not None and not (isinstance(values, dict) and len(values) <= 20 and all(
            isinstance(k, str) and len(k) <= 40 and _is_number(v) and abs(v) <= MAX_NUMBER
            for k, v in values.items())):
        problems["values"] = "the numbers drawn for a generated question"
    if problems:
        raise InvalidInput("the answer is not valid", details=problems)
    clean.update({"quiz": event["quiz"], "attempt": attempt, "item": item})
    if values:
        clean["values"] = values
    return clean
