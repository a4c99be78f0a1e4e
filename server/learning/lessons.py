"""Lessons, groups and assignments, and what a facilitator watches: the class grid.

A *lesson* is an ordered list of resources from any installed pack. It is
*assigned* to a class, to a group inside it, or to chosen learners, and can be
opened and closed. Everything here is a record in the operation log, so it
syncs like the rest.

The class grid is learners × the resources of the class's open assignments,
each cell read from the ``progress`` summary in one query: not started, in
progress, completed, or *needs help* (an exercise with at least three answers,
fewer than half right, not yet mastered). "Most missed questions" adds up the
wrong answers per learner and question that the fold counts (``missed_questions``). A
grid costs the same few queries whatever its size: the resources' titles come
from the catalogue in one read, and nothing replays the learners' history. The
same grid is drawn for a group (its learners, the lessons that reach them) and
for one assigned lesson (the learners it reaches, its resources).

A lesson is shared by the staff of the box: a copy (:func:`copy_lesson`) is a
lesson of its own; deleting one removes its assignments and never touches
progress, which belongs to the resources.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from passerelle.server import records
from passerelle.server.db import new_uuid
from passerelle.server.errors import InvalidInput
from passerelle.server.i18n import lazy_text as _l
from passerelle.server.packs import catalogue
from passerelle.server.people import accounts

MAX_ITEMS = 100
NEEDS_HELP_MIN_ANSWERS = 3


# --- Groups --------------------------------------------------------------------------

def create_group(db, class_uuid: str, name: str) -> str:
    accounts.get_class(db, class_uuid)
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise InvalidInput(_l("the group is not valid"),
                           details={"name": _l("a name of 1 to 80 characters")})
    uuid = new_uuid()
    records.put(db, "group", uuid, {"class_uuid": class_uuid, "name": name})
    return uuid


def groups_of(db, class_uuid: str) -> list[dict]:
    groups = records.query(db, "group", "t.class_uuid = ?", [class_uuid], "t.name COLLATE NOCASE")
    for group in groups:
        group["members"] = group_members(db, group["uuid"])
    return groups


def get_group(db, group_uuid: str) -> dict:
    return records.require(db, "group", group_uuid, _l("no such group"))


def group_members(db, group_uuid: str) -> set[str]:
    """The uuids of the learners in a group."""
    return {m["learner_uuid"] for m in
            records.query(db, "group_member", "t.group_uuid = ?", [group_uuid])}


def _group_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise InvalidInput(_l("the group is not valid"),
                           details={"name": _l("a name of 1 to 80 characters")})
    return name


def rename_group(db, group_uuid: str, name: str) -> None:
    group = get_group(db, group_uuid)
    records.put(db, "group", group_uuid, {"class_uuid": group["class_uuid"],
                                          "name": _group_name(name)})


def set_group_members(db, group_uuid: str, learners: list[str]) -> None:
    """The group is exactly these learners of its class (the others are taken out)."""
    group = get_group(db, group_uuid)
    now = group_members(db, group_uuid)
    wanted = set(learners)
    in_class = {m["uuid"] for m in accounts.members(db, group["class_uuid"])}
    if not wanted <= in_class:
        raise InvalidInput(_l("this learner is not in the group's class"),
                           details={"learner": sorted(wanted - in_class)[0]})
    with records.write_tx(db):
        for learner in wanted ^ now:
            set_group_member(db, group_uuid, learner, learner in wanted)


def delete_group(db, group_uuid: str) -> None:
    """Remove a group: its lessons are closed (a lesson for nobody), the learners' progress
    stays theirs, and the class and its other lessons are untouched."""
    group = get_group(db, group_uuid)
    with records.write_tx(db):
        for a in assignments_of_class(db, group["class_uuid"], only_open=True):
            if (a["target"] or {}).get("group_uuid") == group_uuid:
                set_open(db, a["uuid"], False)
        records.delete(db, "group", group_uuid)


def set_group_member(db, group_uuid: str, learner_uuid: str, member: bool) -> None:
    group = records.require(db, "group", group_uuid, _l("no such group"))
    if learner_uuid not in {m["uuid"] for m in accounts.members(db, group["class_uuid"])}:
        raise InvalidInput(_l("this learner is not in the group's class"),
                           details={"learner": learner_uuid})
    uuid = accounts.joined_uuid("group_member", group_uuid, learner_uuid)
    if member:
        records.put(db, "group_member", uuid, {"group_uuid": group_uuid, "learner_uuid": learner_uuid})
    elif records.load(db, "group_member", uuid) is not None:
        records.delete(db, "group_member", uuid)


# --- Lessons -------------------------------------------------------------------------

def _check_items(db, items) -> list[dict]:
    if not isinstance(items, list) or not items or len(items) > MAX_ITEMS:
        raise InvalidInput(_l("the lesson is not valid"),
                           details={"items": _l("choose 1 to %(max)s resources", max=MAX_ITEMS)})
    clean, missing = [], []
    keys = [(str(i.get("pack_id", "")), str(i.get("node_id", ""))) for i in items
            if isinstance(i, dict)]
    known = catalogue.brief(db, keys)
    for pack_id, node_id in keys:
        facts = known.get((pack_id, node_id))
        if facts is None or facts["kind"] == "topic":
            missing.append(f"{pack_id}/{node_id}")
        elif {"pack_id": pack_id, "node_id": node_id} not in clean:
            clean.append({"pack_id": pack_id, "node_id": node_id})
    if missing:
        raise InvalidInput(_l("the lesson is not valid"),
                           details={"items": _l("not installed resources: %(list)s",
                                                list=", ".join(missing[:5]))})
    return clean


def create_lesson(db, title: str, items: list[dict], created_by: str, description: str = "") -> str:
    title = (title or "").strip()
    if not title or len(title) > 120:
        raise InvalidInput(_l("the lesson is not valid"),
                           details={"title": _l("a title of 1 to 120 characters")})
    uuid = new_uuid()
    records.put(db, "lesson", uuid, {"title": title, "description": (description or "").strip()[:500],
                                     "items": _check_items(db, items), "created_by": created_by,
                                     "created_at": records.now_iso()})
    return uuid


def update_lesson(db, lesson_uuid: str, title: str, items: list[dict], description: str = ""
                  ) -> None:
    """Change a saved lesson: its assignments follow, since they name the lesson, not a copy."""
    lesson = get_lesson(db, lesson_uuid)
    title = (title or "").strip()
    if not title or len(title) > 120:
        raise InvalidInput(_l("the lesson is not valid"),
                           details={"title": _l("a title of 1 to 120 characters")})
    records.put(db, "lesson", lesson_uuid, {
        "title": title, "description": (description or "").strip()[:500],
        "items": _check_items(db, items), "created_by": lesson.get("created_by"),
        "created_at": lesson.get("created_at")})


def copy_lesson(db, lesson_uuid: str, created_by: str, title: str | None = None) -> str:
    """A lesson of its own with the same resources: changing one never changes the other."""
    lesson = get_lesson(db, lesson_uuid)
    title = (title or "").strip() or str(_l("%(title)s (copy)", title=lesson["title"]))[:120]
    return create_lesson(db, title, lesson["items"], created_by, lesson.get("description") or "")


def delete_lesson(db, lesson_uuid: str) -> None:
    """Remove a lesson and its assignments; what learners did with its resources stays theirs
    (progress belongs to the resource, not to the lesson)."""
    get_lesson(db, lesson_uuid)
    with records.write_tx(db):
        for a in records.query(db, "assignment", "t.lesson_uuid = ?", [lesson_uuid]):
            records.delete(db, "assignment", a["uuid"])
        records.delete(db, "lesson", lesson_uuid)


def lesson_items(db, lesson: dict) -> list[dict]:
    """The lesson's installed resources, in order, each with its title, kind and language (as
    a learner sees them, before they have opened any)."""
    known = catalogue.brief(db, [(i["pack_id"], i["node_id"]) for i in lesson["items"]])
    return [{**i, "title": facts["title"], "kind": facts["kind"], "language": facts["language"],
             "status": "not_started"}
            for i in lesson["items"] if (facts := known.get((i["pack_id"], i["node_id"])))]
def add_to_lesson(db, lesson_uuid: str | None, pack_id: str, node_id: str, created_by: str,
                  new_title: str = "") -> str:
    """Add one resource (a ZIM article, ``zim:<uuid>`` and its path, as any other) at the end
    of a saved lesson, or of a new lesson titled ``new_title`` when ``lesson_uuid`` is None;
    the lesson's uuid. Already in the lesson: nothing changes."""
    item = {"pack_id": pack_id, "node_id": node_id}
    if not lesson_uuid:
        return create_lesson(db, new_title, [item], created_by)
    lesson = get_lesson(db, lesson_uuid)
    items = [{"pack_id": i["pack_id"], "node_id": i["node_id"]} for i in lesson["items"]]
    if item in items:
        return lesson_uuid
    if len(items) >= MAX_ITEMS:
        raise InvalidInput(_l("the lesson is not valid"),
                           details={"items": _l("choose 1 to %(max)s resources", max=MAX_ITEMS)})
    new = _check_items(db, [item])   # this one must exist; the others were checked when saved
    records.put(db, "lesson", lesson_uuid, {
        "title": lesson["title"], "description": lesson.get("description") or "",
        "items": items + new, "created_by": lesson.get("created_by"),
        "created_at": lesson.get("created_at")})
    return lesson_uuid


def get_lesson(db, lesson_uuid: str) -> dict:
    return records.require(db, "lesson", lesson_uuid, _l("no such lesson"))


def lessons(db) -> list[dict]:
    return records.query(db, "lesson", order="t.title COLLATE NOCASE")


# --- Assignments ---------------------------------------------------------------------------

def assign(db, lesson_uuid: str, class_uuid: str, created_by: str, *,
           group_uuid: str | None = None, learners: list[str] | None = None) -> str:
    get_lesson(db, lesson_uuid)
    accounts.get_class(db, class_uuid)
    if group_uuid:
        group = records.load(db, "group", group_uuid)
        if group is None or group["class_uuid"] != class_uuid:
            raise InvalidInput(_l("the assignment is not valid"),
                               details={"group": _l("a group of this class")})
        target = {"type": "group", "group_uuid": group_uuid}
    elif learners:
        in_class = {m["uuid"] for m in accounts.members(db, class_uuid)}
        if not set(learners) <= in_class:
            raise InvalidInput(_l("the assignment is not valid"),
                               details={"learners": _l("learners of this class")})
        target = {"type": "learners", "learners": sorted(set(learners))}
    else:
        target = {"type": "class"}
    uuid = new_uuid()
    records.put(db, "assignment", uuid, {"lesson_uuid": lesson_uuid, "class_uuid": class_uuid,
                                         "target": target, "open": 1, "created_by": created_by,
                                         "created_at": records.now_iso()})
    return uuid


def get_assignment(db, assignment_uuid: str) -> dict:
    return records.require(db, "assignment", assignment_uuid, _l("no such assignment"))


def set_open(db, assignment_uuid: str, is_open: bool) -> None:
    records.put_changes(db, "assignment", get_assignment(db, assignment_uuid),
                        {"open": 1 if is_open else 0})


def assignments_of_class(db, class_uuid: str, only_open: bool = False) -> list[dict]:
    where = "t.class_uuid = ?" + (" AND t.open = 1" if only_open else "")
    found = records.query(db, "assignment", where, [class_uuid], "t.created_at DESC")
    titles = {lesson["uuid"]: lesson for lesson in lessons(db)}
    for a in found:
        a["lesson"] = titles.get(a["lesson_uuid"])
    return [a for a in found if a["lesson"]]


def _targets(db, assignment: dict, learner_uuid: str) -> bool:
    target = assignment["target"] or {"type": "class"}
    if target["type"] == "learners":
        return learner_uuid in target.get("learners", [])
    if target["type"] == "group":
        uuid = accounts.joined_uuid("group_member", target["group_uuid"], learner_uuid)
        return records.load(db, "group_member", uuid) is not None
    return True


def assigned_to(db, learner_uuid: str) -> list[dict]:
    """Open lessons for this learner, newest first, each with its items' titles and status."""
    # A class in the bin keeps its memberships (its history), but assigns nothing.
    classes = [m["class_uuid"] for m in
               records.query(db, "membership", "t.user_uuid = ?", [learner_uuid],
                             join="JOIN classes c ON c.uuid = t.class_uuid AND c.deleted = 0")]
    result = []
    for class_uuid in classes:
        for a in assignments_of_class(db, class_uuid, only_open=True):
            if _targets(db, a, learner_uuid):
                a["items"] = _items_with_status(db, a["lesson"]["items"], learner_uuid)
                result.append(a)
    return result


def _items_with_status(db, items: list[dict], learner_uuid: str) -> list[dict]:
    statuses = _statuses(db, [learner_uuid], items)
    known = catalogue.brief(db, [(i["pack_id"], i["node_id"]) for i in items])
    # A teaching guide put in a lesson is the facilitator's, not shown to learners.
    guides = catalogue.staff_only_keys(db, known)
    out = []
    for item in items:
        facts = known.get((item["pack_id"], item["node_id"]))
        if facts and (item["pack_id"], item["node_id"]) not in guides:
            out.append({**item, "title": facts["title"], "kind": facts["kind"],
                        "language": facts["language"],
                        "status": statuses.get((learner_uuid, item["pack_id"], item["node_id"]),
                                               "not_started")})
    return out


# --- The class grid ------------------------------------------------------------------------

@dataclass
class Grid:
    learners: list[dict]
    columns: list[dict]                 # {pack_id, node_id, title, kind}
    cells: dict = field(default_factory=dict)   # (learner, pack, node) -> status
    missed: list[dict] = field(default_factory=list)

    def rows(self) -> list[tuple[dict, list[str]]]:
        """Each learner with the status of every column, in column order (the page's rows)."""
        return [(u, [self.cells.get((u["uuid"], c["pack_id"], c["node_id"]), "not_started")
                     for c in self.columns]) for u in self.learners]

    def as_dict(self) -> dict:
        names = [f"{c['pack_id']}/{c['node_id']}" for c in self.columns]
        return {
            "learners": [{"uuid": u["uuid"], "display_name": u["display_name"]} for u in self.learners],
            "columns": self.columns,
            "cells": {u["uuid"]: dict(zip(names, statuses, strict=True)) for u, statuses in self.rows()},
            "most_missed": self.missed,
        }


def _statuses(db, learners: list[str], items: list[dict]) -> dict:
    if not learners or not items:
        return {}
    marks = ",".join("?" * len(learners))
    rows = db.execute(
        f"SELECT learner_uuid, pack_id, node_id, completed_version IS NOT NULL, answers, correct"
        f" FROM progress WHERE learner_uuid IN ({marks})", learners).fetchall()
    wanted = {(i["pack_id"], i["node_id"]) for i in items}
    statuses = {}
    for learner, pack_id, node_id, done, answers, correct in rows:
        if (pack_id, node_id) not in wanted:
            continue
        if done:
            status = "completed"
        elif answers >= NEEDS_HELP_MIN_ANSWERS and correct * 2 < answers:
            status = "needs_help"
        else:
            status = "in_progress"
        statuses[(learner, pack_id, node_id)] = status
    return statuses


def class_grid(db, class_uuid: str) -> Grid:
    return _grid(db, accounts.members(db, class_uuid),
                 assignments_of_class(db, class_uuid, only_open=True))


def group_grid(db, group_uuid: str) -> Grid:
    """The grid of a group: its learners, and the open lessons of their class that reach them
    (the whole class's, the group's own)."""
    group = get_group(db, group_uuid)
    members = group_members(db, group_uuid)
    learners = [u for u in accounts.members(db, group["class_uuid"]) if u["uuid"] in members]
    found = [a for a in assignments_of_class(db, group["class_uuid"], only_open=True)
             if (a["target"] or {}).get("type", "class") == "class"
             or (a["target"] or {}).get("group_uuid") == group_uuid]
    return _grid(db, learners, found)


def lesson_grid(db, assignment_uuid: str) -> Grid:
    """The grid of one assigned lesson, open or closed: the learners it reaches, its resources."""
    assignment = get_assignment(db, assignment_uuid)
    assignment["lesson"] = get_lesson(db, assignment["lesson_uuid"])
    learners = [u for u in accounts.members(db, assignment["class_uuid"])
                if _targets(db, assignment, u["uuid"])]
    return _grid(db, learners, [assignment])


def _grid(db, learners: list[dict], assignments: list[dict]) -> Grid:
    keys = list(dict.fromkeys((item["pack_id"], item["node_id"])
                              for a in assignments for item in a["lesson"]["items"]))
    known = catalogue.brief(db, keys)  # one query for every column, however many
    columns = [{"pack_id": pack_id, "node_id": node_id, "title": known[(pack_id, node_id)]["title"],
                "kind": known[(pack_id, node_id)]["kind"]}
               for pack_id, node_id in keys if (pack_id, node_id) in known]
    grid = Grid(learners, columns, _statuses(db, [u["uuid"] for u in learners], columns))
    grid.missed = most_missed(db, [u["uuid"] for u in learners])
    return grid


def most_missed(db, learners: list[str], limit: int = 5) -> list[dict]:
    """The questions these learners got wrong most often."""
    if not learners:
        return []
    marks = ",".join("?" * len(learners))
    rows = db.execute(
        f"SELECT pack_id, node_id, question_id, sum(wrong) AS total FROM missed_questions"
        f" WHERE learner_uuid IN ({marks}) GROUP BY pack_id, node_id, question_id"
        f" ORDER BY total DESC, pack_id, node_id, question_id LIMIT ?", [*learners, limit]).fetchall()
    found = catalogue.nodes(db, [(pack, node) for pack, node, _q, _n in rows])
    # The numbers each generated question last showed, for all of them in one read.
    seen = {(pack, node, question): values for pack, node, question, values in db.execute(
        f"SELECT pack_id, node_id, question_id, seen_values"
        f" FROM missed_questions WHERE learner_uuid IN ({marks}) AND seen_values IS NOT NULL"
        f" ORDER BY seen_version", learners).fetchall()}
    result = []
    for pack, node, question, wrong in rows:
        question = question or None  # "": the answers named no question
        data = found.get((pack, node))
        prompt = ""
        for q in ((data or {}).get("exercise") or {}).get("questions", []):
            if q.get("id") == question:
                prompt = _as_seen(q, seen.get((pack, node, question or "")))[:200]
        result.append({"pack_id": pack, "node_id": node, "question_id": question, "wrong": wrong,
                       "exercise": data.get("title", node) if data else node, "prompt": prompt})
    return result


def _as_seen(question: dict, values: str | None) -> str:
    """A question's text as a learner saw it: a generated one ("{a} + {b}") with the numbers of
    the latest wrong answer (kept by the fold in ``missed_questions``); the placeholders as "…"
    when no numbers were recorded."""
    from passerelle.content.exercise import render_generated

    prompt = str(question.get("prompt", ""))
    if not question.get("variables"):
        return prompt
    if values:
        try:
            return str(render_generated(question, json.loads(values)).get("prompt", prompt))
        except Exception:  # noqa: BLE001 - numbers from another version of the pack: no text
            pass
    return re.sub(r"\{[A-Za-z_]\w*\}", "…", prompt)


def learner_summary(db, learner_uuid: str) -> dict:
    """History, time spent, mastery and attendance of one learner."""
    rows = db.execute(
        "SELECT pack_id, node_id, progress, completed_version IS NOT NULL, seconds, answers,"
        " correct, last_version FROM progress WHERE learner_uuid = ?"
        " ORDER BY last_version DESC LIMIT 200", [learner_uuid]).fetchall()
    keys = ("pack_id", "node_id", "progress", "completed", "seconds", "answers", "correct",
            "last_version")
    history = [dict(zip(keys, r, strict=True)) for r in rows]
    known = catalogue.brief(db, [(h["pack_id"], h["node_id"]) for h in history])
    for h in history:  # a resource no longer installed keeps its history, without a title
        facts = known.get((h["pack_id"], h["node_id"]), {})
        h["title"], h["kind"] = facts.get("title"), facts.get("kind")
    attended = db.execute("SELECT count(*) FROM attendance WHERE learner_uuid = ? AND present = 1"
                          " AND deleted = 0", [learner_uuid]).fetchone()[0]
    return {
        "history": history,
        "seconds": sum(h["seconds"] for h in history),
        "completed": sum(1 for h in history if h["completed"]),
        "mastered": sum(1 for h in history if h["completed"] and h["kind"] == "exercise"),
        "attended": attended,
    }


# Quizzes (``quizzes``) are started for the same recipients as lessons, and their report shows
# a missed question as the learners saw it, as the grid does.
targets = _targets
as_seen = _as_seen
