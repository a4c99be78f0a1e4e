"""Class upkeep: rename a class, put it in the bin and back, copy it for a new term.

A class in the bin is a tombstone in the operation log, like a removed person: its
memberships, sessions, attendance, groups and assignments stay as they were, so the
learners' progress, the attendance and the impact report of past months are unchanged, and
putting the class back brings everything back at once. While it is in the bin the class is
on no list, no sign-in page and no learner's home.

A copy for a new term is a new class (new name) with the same facilitators and, if asked,
the same learners and the same lessons (assigned again, open, to the whole class: the old
groups belong to the old term).
"""

from __future__ import annotations

from datetime import UTC, datetime

from passerelle.server import records
from passerelle.server.errors import InvalidInput, NotFound
from passerelle.server.i18n import lazy_text as _l
from passerelle.server.learning import lessons
from passerelle.server.people import accounts


def _name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise InvalidInput(_l("the class is not valid"),
                           details={"name": _l("a name of 1 to 80 characters")})
    return name


def rename_class(db, class_uuid: str, name: str, description: str | None = None) -> dict:
    changes = {"name": _name(name)}
    if description is not None:
        changes["description"] = description.strip()[:500]
    records.put_changes(db, "class", accounts.get_class(db, class_uuid), changes)
    return accounts.get_class(db, class_uuid)


def delete_class(db, class_uuid: str) -> None:
    """Put a class in the bin (see the module docstring: nothing attached to it is lost)."""
    accounts.get_class(db, class_uuid)
    records.delete(db, "class", class_uuid)


def _last_state(db, class_uuid: str) -> dict | None:
    puts = [op for op in records.history(db, "class", class_uuid) if op.kind == "put"]
    return dict(puts[-1].payload) if puts else None


def removed_classes(db, user: dict) -> list[dict]:
    """Classes in the bin, newest removal first, as they last were: every one for a coordinator,
    for a facilitator those they facilitated."""
    sql = "SELECT c.uuid, c.version FROM classes c WHERE c.deleted = 1"
    params: list = []
    if user["role"] != "coordinator":
        sql += (" AND EXISTS (SELECT 1 FROM memberships m WHERE m.class_uuid = c.uuid"
                " AND m.user_uuid = ? AND m.deleted = 0 AND m.role = 'facilitator')")
        params.append(user["uuid"])
    found = []
    for class_uuid, version in db.execute(sql + " ORDER BY c.version DESC", params).fetchall():
        last = _last_state(db, class_uuid)
        if last is not None:
            removed_ms = records.parse_version(version)[0]
            found.append({**last, "uuid": class_uuid,
                          "removed_at": datetime.fromtimestamp(removed_ms / 1000, UTC)})
    return found


def may_restore(db, user: dict, class_uuid: str) -> bool:
    return any(c["uuid"] == class_uuid for c in removed_classes(db, user))


def restore_class(db, class_uuid: str) -> dict:
    """Bring a class back from the bin as it was, with its learners, lessons and history."""
    if records.load(db, "class", class_uuid) is not None:
        return accounts.get_class(db, class_uuid)  # already back (two clicks, or another box)
    last = _last_state(db, class_uuid)
    if last is None:
        raise NotFound(_l("no such class"))
    records.put(db, "class", class_uuid, last)
    return accounts.get_class(db, class_uuid)


def copy_class(db, class_uuid: str, name: str, created_by: str, *, learners: bool = False,
               lessons_too: bool = False) -> str:
    """A new class for a new term: same facilitators; the same learners and the same lessons
    when asked. Returns the new class's uuid."""
    old = accounts.get_class(db, class_uuid)
    name = _name(name)
    with records.write_tx(db):
        new = accounts.create_class(db, name, old.get("description") or "")
        for person in accounts.members(db, class_uuid, "facilitator"):
            accounts.add_member(db, new, person["uuid"])
        if learners:
            for person in accounts.members(db, class_uuid):
                accounts.add_member(db, new, person["uuid"])
        if lessons_too:
            seen = set()
            # Oldest first, so the new class lists them in the same order as the old one.
            for a in reversed(lessons.assignments_of_class(db, class_uuid)):
                if a["lesson_uuid"] not in seen:
                    seen.add(a["lesson_uuid"])
                    lessons.assign(db, a["lesson_uuid"], new, created_by)
    return new
