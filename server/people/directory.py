"""Everyone on the box, thousands at a time: find, page, and act on several people at once.

The people page must stay quick with thousands of people on a small box, so:

- one page is read in name order with *keyset* paging (the last name and uuid of a page
  start the next one), which reads only that page from the ``users_name`` index instead of
  sorting or skipping the whole table as ``OFFSET`` would;
- a search compares names and usernames *folded* (case and accents ignored, as
  :func:`accounts.fold` compares usernames), through that same function registered on the
  connection, so "helene" finds "Hélène" and Arabic names are found as typed;
- the counts (per role, for the current search and class) are one grouped query.

Actions on several people are the same rules as for one (``accounts``), in one transaction:
all of them are done, or none.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass, field

from passerelle.server import dialect, records
from passerelle.server.errors import Conflict, InvalidInput
from passerelle.server.i18n import lazy_text as _l
from passerelle.server.people import accounts

PAGE_SIZE = 50
# The most people one action takes at once: new secrets are hashed one by one (slow on purpose).
MAX_SELECTED = 200
NO_CLASS = "none"  # the class filter's value for learners in no class yet


@dataclass
class Page:
    people: list[dict]
    total: int                     # people matching the search, class and role
    by_role: dict[str, int]        # the same search and class, per role
    next_after: str | None = None  # the uuid the next page starts after
    previous_before: str | None = None
    classes: dict[str, list[str]] = field(default_factory=dict)  # person -> class names


@functools.lru_cache(maxsize=1 << 15)
def _folded(text: str) -> str:
    # A search folds every name of the box: remembered, a name is folded once per process
    # instead of once per search (folding is most of a search's time).
    return accounts.fold(text)


def _fold_function(db) -> None:
    # Registered once per connection (sqlite-utils keeps count); deterministic, so SQLite may
    # call it as few times as it likes. PostgreSQL folds in its own SQL (dialect).
    if dialect.of(db) is dialect.SQLITE:
        db.register_function(_folded, name="passerelle_fold", deterministic=True)


def _filters(db, text: str, class_uuid: str | None) -> tuple[str, list]:
    where, params = ["t.deleted = 0"], []
    text = accounts.fold(text or "")
    if text:
        contains = dialect.of(db).contains_folded
        where.append(f"({contains('t.display_name')} OR (t.username IS NOT NULL"
                     f" AND {contains('t.username')}))")
        params += [text, text]
    if class_uuid == NO_CLASS:
        where.append("t.role = 'learner' AND NOT EXISTS (SELECT 1 FROM memberships m"
                     " WHERE m.user_uuid = t.uuid AND m.deleted = 0)")
    elif class_uuid:
        where.append("EXISTS (SELECT 1 FROM memberships m WHERE m.user_uuid = t.uuid"
                     " AND m.class_uuid = ? AND m.deleted = 0)")
        params.append(class_uuid)
    return " AND ".join(where), params


def find(db, *, text: str = "", role: str | None = None, class_uuid: str | None = None,
         after: str | None = None, before: str | None = None, limit: int = PAGE_SIZE) -> Page:
    """One page of people matching a search (name or username), a class and a role, by name.

    ``after``/``before`` are the uuid of the last/first person of the page seen before.
    """
    _fold_function(db)
    where, params = _filters(db, text, class_uuid)
    by_role = dict.fromkeys(accounts.ROLES, 0)
    for row_role, count in db.execute(f"SELECT t.role, count(*) FROM users t WHERE {where}"
                                      " GROUP BY t.role", params):
        by_role[row_role] = count
    if role in accounts.ROLES:
        where += " AND t.role = ?"
        params = [*params, role]
        total = by_role[role]
    else:
        total = sum(by_role.values())
    cursor_uuid = after or before
    backwards = bool(before) and not after
    if cursor_uuid:
        row = db.execute("SELECT display_name FROM users WHERE uuid = ?", [cursor_uuid]).fetchone()
        if row is not None:
            # The name given is compared as the column is ordered: on PostgreSQL lower() of
            # both sides (the columns' collation is "C"), on SQLite NOCASE.
            nocase = dialect.of(db).nocase
            where += (f" AND ({nocase('t.display_name')}, t.uuid) "
                      + ("<" if backwards else ">") + f" ({nocase('?')}, ?)")
            params = [*params, row[0], cursor_uuid]
    order = "DESC" if backwards else "ASC"
    cursor = db.execute(
        "SELECT t.uuid, t.display_name, t.username, t.role, t.avatar, t.language FROM users t"
        f" WHERE {where} ORDER BY t.display_name COLLATE NOCASE {order}, t.uuid {order} LIMIT ?",
        [*params, limit + 1])
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    page = Page(rows, total, by_role)
    if rows:
        # Going forward, a next page when there was one more row, a previous one when this page
        # started after another; going back, the other way round.
        if (more and not backwards) or backwards:
            page.next_after = rows[-1]["uuid"]
        if (cursor_uuid and not backwards) or (backwards and more):
            page.previous_before = rows[0]["uuid"]
    page.classes = classes_of_people(db, [r["uuid"] for r in rows])
    return page


def classes_of_people(db, user_uuids: list[str]) -> dict[str, list[str]]:
    """The names of each person's classes, for a page of people (one query)."""
    found: dict[str, list[str]] = {}
    if not user_uuids:
        return found
    marks = ",".join("?" * len(user_uuids))
    for user_uuid, name in db.execute(
            "SELECT m.user_uuid, c.name FROM memberships m JOIN classes c ON c.uuid = m.class_uuid"
            f" WHERE m.deleted = 0 AND c.deleted = 0 AND m.user_uuid IN ({marks})"
            " ORDER BY c.name COLLATE NOCASE", user_uuids):
        found.setdefault(user_uuid, []).append(name)
    return found


def matching_uuids(db, *, text: str = "", role: str | None = None,
                   class_uuid: str | None = None) -> list[str]:
    """Everyone matching a search, by name: what an export of the current list holds."""
    _fold_function(db)
    where, params = _filters(db, text, class_uuid)
    if role in accounts.ROLES:
        where += " AND t.role = ?"
        params.append(role)
    return [r[0] for r in db.execute(
        f"SELECT t.uuid FROM users t WHERE {where} ORDER BY t.display_name COLLATE NOCASE, t.uuid",
        params)]


def selected(db, user_uuids: list[str]) -> list[dict]:
    """The live people among a selection, by name; at most :data:`MAX_SELECTED`."""
    wanted = list(dict.fromkeys(u for u in user_uuids if u))
    if not wanted:
        raise InvalidInput(_l("choose at least one person"), details={"people": _l("none chosen")})
    if len(wanted) > MAX_SELECTED:
        raise InvalidInput(_l("at most %(max)s people at once", max=MAX_SELECTED),
                           details={"people": _l("too many")})
    people = []
    for i in range(0, len(wanted), 500):
        chunk = wanted[i:i + 500]
        people += records.query(db, "user", f"t.uuid IN ({','.join('?' * len(chunk))})", chunk,
                                "t.display_name COLLATE NOCASE")
    return people


def add_to_class(db, class_uuid: str, user_uuids: list[str], *, move: bool = False) -> int:
    """Put people into a class; ``move`` takes them out of their other classes first (a new
    term, a group split). Returns how many people are in the class now who were not before."""
    accounts.get_class(db, class_uuid)
    people = selected(db, user_uuids)
    added = 0
    with records.write_tx(db):
        for person in people:
            if move:
                for (other,) in db.execute(
                        "SELECT class_uuid FROM memberships WHERE user_uuid = ? AND deleted = 0"
                        " AND class_uuid != ?", [person["uuid"], class_uuid]).fetchall():
                    accounts.remove_member(db, other, person["uuid"])
            membership = accounts.joined_uuid("membership", class_uuid, person["uuid"])
            if records.load(db, "membership", membership) is None:
                accounts.add_member(db, class_uuid, person["uuid"])
                added += 1
    return added


def remove(db, user_uuids: list[str], *, by: str) -> list[dict]:
    """Put people in the bin (their progress kept), all or none; never the one asking, never
    every coordinator."""
    people = [p for p in selected(db, user_uuids) if p["uuid"] != by]
    with records.write_tx(db):
        coordinators = db.execute("SELECT count(*) FROM users WHERE role = 'coordinator'"
                                  " AND deleted = 0").fetchone()[0]
        if coordinators and coordinators == sum(p["role"] == "coordinator" for p in people):
            raise Conflict(_l("this is the last coordinator; name another one first"))
        for person in people:
            records.delete(db, "user", person["uuid"])
            accounts.end_signins(db, person["uuid"])
    return people


def new_secret(mode: str) -> str | list[str]:
    """A fresh PIN (4 digits) or picture password (three pictures), from the system's CSPRNG."""
    if mode == "picture":
        return [secrets.choice(accounts.PICTURES) for _ in range(3)]
    return f"{secrets.randbelow(10000):04d}"


def reset_secrets(db, user_uuids: list[str]) -> tuple[list[dict], list[dict]]:
    """New PINs or pictures (the organisation's mode) for the learners chosen, each signed out
    everywhere; returns ([{person, secret}], [people skipped: staff, or no code to reset]).

    The secrets are returned once, to be shown and printed; only their hashes are kept.
    """
    mode = (accounts.organisation(db) or {}).get("signin_mode", "pin")
    people = selected(db, user_uuids)
    done, skipped = [], []
    prepared = []
    for person in people:
        if person["role"] != "learner" or mode not in ("pin", "picture"):
            skipped.append(person)
            continue
        secret = new_secret(mode)
        column = "pin_hash" if mode == "pin" else "picture_hash"
        text = secret if isinstance(secret, str) else "-".join(secret)
        prepared.append((person, secret, column, accounts.LEARNER_HASHER.hash(text)))
    with records.write_tx(db):  # hashed above, outside the write lock: hashing is slow
        for person, secret, column, hashed in prepared:
            records.put_changes(db, "user", person, {column: hashed})
            accounts.end_signins(db, person["uuid"])
            done.append({"person": person, "secret": secret})
    return done, skipped
