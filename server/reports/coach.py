"""The facilitator's reports as CSV files: a grid (a class, a group, a lesson), a learner, and
the activity log of a class for a date range.

Every file goes through the one CSV writer (``reports/spreadsheet.py``, formulas
neutralised) in the spreadsheet dialect of the impact report (``;`` and a decimal comma,
with a BOM, so Excel set to French or Dutch opens it in columns with the accents right).
The words in the cells (statuses, kinds of event) are the page's: the caller passes them in,
so a facilitator reading French gets French cells; the ids stay in columns of their own
where a script would want them.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from datetime import date, datetime

import sqlite_utils
from passerelle.server.packs import catalogue
from passerelle.server.reports.impact import (
    BOM,
    SPREADSHEET,
    CsvDialect,
    version_bounds,
    version_time,
)

# How many events one activity log holds at most: a term of a big class is far below it, and
# a file that size still opens in a spreadsheet (about a million rows).
MAX_EVENTS = 500_000


def _file(rows: Iterable[Iterable], dialect: CsvDialect) -> str:
    out = io.StringIO()
    dialect.writer(out).writerows(rows)
    return BOM + out.getvalue()


def grid_csv(grid, headings: tuple[str, str], status_label: Callable[[str], str],
             dialect: CsvDialect = SPREADSHEET) -> str:
    """One row per learner, one column per resource, each cell the status in words; then the
    number of learners who completed each resource. ``headings``: (learner, completed)."""
    learner, completed = headings
    rows: list[list] = [[learner, *(c["title"] for c in grid.columns)]]
    counts = [0] * len(grid.columns)
    for person, statuses in grid.rows():
        rows.append([person["display_name"], *(status_label(s) for s in statuses)])
        for i, status in enumerate(statuses):
            counts[i] += status == "completed"
    rows.append([completed, *counts])
    return _file(rows, dialect)


def learner_csv(summary: dict, headings: tuple[str, ...], dialect: CsvDialect = SPREADSHEET
                ) -> str:
    """A learner's history, one row per resource: title, pack, node, progress (%), completed,
    answers, correct, minutes. ``headings`` are the column names, in that order."""
    rows: list[list] = [list(headings)]
    for h in summary["history"]:
        rows.append([h["title"] or h["node_id"], h["pack_id"], h["node_id"],
                     round(h["progress"] * 100), bool(h["completed"]), h["answers"], h["correct"],
                     dialect.number(f"{h['seconds'] / 60:.1f}")])
    return _file(rows, dialect)


ACTIVITY_COLUMNS = ("occurred_at", "recorded_at", "learner_uuid", "learner", "pack_id", "node_id",
                    "title", "event", "progress", "seconds", "correct", "question_id")


def _occurred(payload: dict, version: str) -> datetime:
    text = payload.get("occurred_at")
    if isinstance(text, str):
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
    return version_time(version)


def activity_rows(db: sqlite_utils.Database, learners: dict[str, str], start: date, end: date
                  ) -> list[dict]:
    """The learning events of these learners (uuid -> name) that happened from ``start`` to
    ``end`` included, in the order they happened (``occurred_at``, the tablet's time placed on
    the box's clock; the time recorded when an event does not say).

    An event is recorded after it happened (a tablet offline sends it later), never before:
    so only events recorded from ``start`` on are read, through the index of operations by
    learner and version.
    """
    if not learners:
        return []
    low, _high = version_bounds(start, end)
    marks = ",".join("?" * len(learners))
    cursor = db.execute(
        f"SELECT version, subject, payload FROM ops WHERE entity = 'progress' AND kind = 'event'"
        f" AND subject IN ({marks}) AND version >= ? LIMIT ?", [*learners, low, MAX_EVENTS])
    found = []
    for version, subject, payload in cursor:
        p = json.loads(payload)
        occurred = _occurred(p, version)
        if start <= occurred.date() <= end:
            found.append({**p, "occurred_at": occurred, "recorded_at": version_time(version),
                          "learner_uuid": subject, "learner": learners[subject]})
    found.sort(key=lambda e: (e["occurred_at"], e["recorded_at"]))
    titles = catalogue.brief(db, list({(e.get("pack_id"), e.get("node_id")) for e in found}))
    for e in found:
        e["title"] = (titles.get((e.get("pack_id"), e.get("node_id"))) or {}).get("title", "")
    return found


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def activity_csv(db: sqlite_utils.Database, learners: dict[str, str], start: date, end: date,
                 event_label: Callable[[str], str], dialect: CsvDialect = SPREADSHEET) -> str:
    """:func:`activity_rows` as a CSV file, one row per event (``ACTIVITY_COLUMNS``)."""
    rows: list[list] = [list(ACTIVITY_COLUMNS)]
    for e in activity_rows(db, learners, start, end):
        progress = e.get("progress")
        correct = e.get("correct")
        rows.append([_stamp(e["occurred_at"]), _stamp(e["recorded_at"]), e["learner_uuid"],
                     e["learner"], e.get("pack_id", ""), e.get("node_id", ""), e["title"],
                     event_label(str(e.get("type", ""))),
                     dialect.number(f"{progress:g}") if isinstance(progress, (int, float)) else "",
                     int(e.get("seconds") or 0),
                     "" if correct is None else bool(correct), e.get("question_id") or ""])
    return _file(rows, dialect)
