"""Rosters: people from a spreadsheet (CSV) into the box, all or nothing, and back out.

A facilitator's list usually comes from Excel or LibreOffice, in French or
Dutch locales that write ``;`` between columns and may add a byte-order mark:
both are accepted. Every row is checked before anything is written; when any
row is wrong, nothing is imported and every problem is reported with its row
number, so the file can be fixed in one go.

A row names someone already on the box by their ``uuid`` (the export's first column) or, failing
that, their username: that person is updated instead of added. In an update an empty cell keeps
what the person has (an export edited in a spreadsheet and imported again changes only what was
changed), a class adds them to it, and a PIN or password given replaces theirs.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from passerelle.server import records
from passerelle.server.errors import InvalidInput
from passerelle.server.i18n import lazy_text as _l
from passerelle.server.people import accounts, sites
from passerelle.server.reports import spreadsheet

COLUMNS = ("display_name", "username", "role", "pin", "password", "class", "language", "avatar",
           "age_band", "gender", "languages_spoken", "newcomer", "employment", "uuid")
# Written by the export for people to read, ignored on import.
IGNORED = ("created_at",)
PROFILE = ("age_band", "gender", "languages_spoken", "newcomer", "employment")
# An export of the whole box must come back in one file: 5,000 people check in under a second.
MAX_ROWS = 20000


@dataclass
class Row:
    number: int           # the line in the file, counting the header as 1
    fields: dict
    class_name: str
    errors: dict = field(default_factory=dict)
    existing: dict | None = None  # the person this row updates; None: a new person
    changed: bool = True          # for an update: whether anything would change

    @property
    def classes(self) -> list[str]:
        """The row's classes (an export joins several with ``|``)."""
        return [c.strip() for c in self.class_name.split("|") if c.strip()]

    @property
    def action(self) -> str:
        if self.existing is None:
            return "add"
        return "update" if self.changed else "same"


@dataclass
class Roster:
    rows: list[Row]

    @property
    def ok(self) -> bool:
        return bool(self.rows) and not any(r.errors for r in self.rows)

    def count(self, action: str) -> int:
        return sum(r.action == action for r in self.rows)

    def problems(self) -> list[str]:
        return [str(_l("row %(row)s: %(column)s: %(problem)s", row=r.number, column=name,
                       problem=message))
                for r in self.rows for name, message in r.errors.items()]


def read(text: str) -> list[tuple[int, dict]]:
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise InvalidInput(_l("the file is empty"),
                           details={"file": _l("a CSV file with a header row")})
    first = text.splitlines()[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip().lower() for h in reader.fieldnames or []]
    unknown = [h for h in header if h and h not in COLUMNS and h not in IGNORED]
    if "display_name" not in header or unknown:
        columns = ", ".join(COLUMNS)
        problem = (_l("columns: %(columns)s (display_name is required); unknown: %(unknown)s",
                      columns=columns, unknown=", ".join(unknown)) if unknown
                   else _l("columns: %(columns)s (display_name is required)", columns=columns))
        raise InvalidInput(_l("the header row is not right"), details={"header": problem})
    reader.fieldnames = header
    rows = []
    for i, raw in enumerate(reader, start=2):
        if i - 1 > MAX_ROWS:
            raise InvalidInput(_l("at most %(max)s people per file", max=MAX_ROWS))
        # A cell this box exported with a ' before a formula character reads back as it was.
        values = {k: spreadsheet.unescape((v or "").strip()) for k, v in raw.items() if k}
        if any(values.values()):
            rows.append((i, values))
    return rows


def check(db, text: str, default_class: str | None = None) -> Roster:
    """Validate every row (without hashing) and report all problems."""
    org = accounts.organisation(db) or {}
    mode = org.get("signin_mode", "pin")
    seen_usernames: dict[str, int] = {}
    seen_people: dict[str, int] = {}
    by_username = {accounts.fold(u["username"]): u for u in records.query(
        db, "user", "t.username IS NOT NULL")}
    class_members = _memberships(db)
    roster = Roster([])
    for number, values in read(text):
        existing, clash = None, None
        if values.get("uuid"):
            existing = records.load(db, "user", values["uuid"])
        if existing is None and values.get("username"):
            existing = by_username.get(accounts.fold(values["username"]))
            if existing is not None and values.get("role") and values["role"] != existing["role"]:
                # Most likely a new person given a name already in use, not a change of role.
                existing, clash = None, _l("this username is already taken, by someone with "
                                           "another role")
        fields = {
            "role": values.get("role") or "learner", "display_name": values.get("display_name", ""),
            "username": values.get("username") or None,
            "language": values.get("language") or None, "avatar": values.get("avatar") or None,
            "profile": {k: ([x.strip() for x in values[k].split("|") if x.strip()]
                            if k == "languages_spoken" else values[k])
                        for k in PROFILE if values.get(k)},
        }
        role = fields["role"]
        if existing is not None:
            # An empty cell keeps what the person has.
            for key in ("role", "display_name", "username", "language", "avatar"):
                if not values.get(key):
                    fields[key] = existing.get(key)
            fields["profile"] = {**(existing.get("profile") or {}), **fields["profile"]}
            role = fields["role"]
            if values.get("password"):
                fields["password"] = values["password"]
            if values.get("pin"):
                fields["pin"] = values["pin"]
        else:
            if values.get("password") or role in accounts.STAFF or mode == "password":
                fields["password"] = values.get("password") or None
            if values.get("pin") or (role == "learner" and mode == "pin"):
                fields["pin"] = values.get("pin") or None
        row = Row(number, fields, values.get("class") or default_class or "", existing=existing)
        try:
            accounts.validate_user(db, hash_secrets=False, existing=existing, **fields)
        except InvalidInput as exc:
            # Keys name the file's columns ("gender", not the record's "profile.gender").
            row.errors.update({k.removeprefix("profile."): str(v)
                               for k, v in (exc.details or {}).items()})
        if clash is not None:
            row.errors["username"] = str(clash)
        if existing is not None:
            if existing["uuid"] in seen_people:
                row.errors["uuid"] = str(_l("the same person as on row %(row)s",
                                            row=seen_people[existing["uuid"]]))
            seen_people.setdefault(existing["uuid"], number)
            mine = class_members.get(existing["uuid"], set())
            row.changed = bool(
                "pin" in fields or "password" in fields
                or any(fields[k] != existing.get(k) for k in ("role", "display_name", "username",
                                                             "language", "avatar"))
                or fields["profile"] != (existing.get("profile") or {})
                or any(c.casefold() not in mine for c in row.classes))
        if fields["username"]:
            key = accounts.fold(fields["username"])
            if key in seen_usernames:
                row.errors["username"] = str(_l("also on row %(row)s", row=seen_usernames[key]))
            seen_usernames.setdefault(key, number)
        roster.rows.append(row)
    return roster


def _memberships(db) -> dict[str, set[str]]:
    """Each person's classes, by folded name (what a row's class column is compared with)."""
    names = {c["uuid"]: c["name"].casefold() for c in records.query(db, "class")}
    found: dict[str, set[str]] = {}
    for m in records.query(db, "membership"):
        if m["class_uuid"] in names:
            found.setdefault(m["user_uuid"], set()).add(names[m["class_uuid"]])
    return found


def import_roster(db, text: str, default_class: str | None = None) -> dict:
    """Add the new people and update the others, and their classes, in one transaction;
    nothing at all on any error."""
    roster = check(db, text, default_class)
    if not roster.ok:
        raise InvalidInput(_l("nothing was imported: fix these rows and try again"),
                           details={"rows": roster.problems() or [str(_l("the file has no people"))]})
    # Hash first, outside the write lock: hashing is slow on purpose.
    prepared = [(accounts.validate_user(db, existing=row.existing, **row.fields), row)
                for row in roster.rows if row.action != "same"]
    classes = {c["name"].casefold(): c["uuid"] for c in records.query(db, "class")}
    _give_avatars(db, [(f, r.classes[0] if r.classes else "") for f, r in prepared
                       if r.existing is None], classes)
    created = updated = 0
    with records.write_tx(db):
        for fields, row in prepared:
            if row.existing is None:
                fields["created_at"] = records.now_iso()
                fields["site"] = sites.home_site_for(db, fields.get("role"))
                uid = accounts.new_uuid()
                created += 1
            else:
                uid = row.existing["uuid"]
                updated += 1
            records.put(db, "user", uid, fields)
            if row.existing is not None and accounts.credential_stamp(fields) != \
                    accounts.credential_stamp(row.existing):
                accounts.end_signins(db, uid)  # a new secret or role: signed out everywhere
            for class_name in row.classes:
                key = class_name.casefold()
                if key not in classes:
                    classes[key] = accounts.create_class(db, class_name)
                accounts.add_member(db, classes[key], uid)
    return {"created": created, "updated": updated, "unchanged": roster.count("same")}


def _give_avatars(db, prepared: list[tuple[dict, str]], classes: dict[str, str]) -> None:
    """Learners without an avatar get one, different from their classmates' as long as
    there are enough: many learners find their name on the sign-in page by its picture."""
    used: dict[str, list[str]] = {}
    for fields, class_name in prepared:
        if fields.get("role", "learner") != "learner" or fields.get("avatar"):
            continue
        key = class_name.casefold()
        if key not in used:
            used[key] = ([m["avatar"] for m in accounts.members(db, classes[key]) if m.get("avatar")]
                         if key in classes else [])
            used[key] += [f["avatar"] for f, c in prepared if c.casefold() == key and f.get("avatar")]
        taken = used[key]
        free = [a for a in accounts.AVATARS if a not in taken]
        fields["avatar"] = free[0] if free else accounts.AVATARS[len(taken) % len(accounts.AVATARS)]
        taken.append(fields["avatar"])


def export(db, user_uuids: list[str] | None = None) -> str:
    """Everyone (or these people, in this order), without secrets, as CSV: the columns an
    import reads, so the file comes back as updates of the same people."""
    memberships: dict[str, list[str]] = {}
    names = {c["uuid"]: c["name"] for c in records.query(db, "class")}
    for m in records.query(db, "membership"):
        if m["class_uuid"] in names:
            memberships.setdefault(m["user_uuid"], []).append(names[m["class_uuid"]])
    out = io.StringIO()
    writer = spreadsheet.writer(out)
    writer.writerow(["uuid", "display_name", "username", "role", "class", "language", "avatar",
                     *PROFILE, "created_at"])
    if user_uuids is None:
        people = accounts.list_users(db)
    else:
        everyone = {u["uuid"]: u for u in records.query(db, "user")}  # one query, not one each
        people = [everyone[uid] for uid in user_uuids if uid in everyone]
    for user in people:
        profile = user.get("profile") or {}
        writer.writerow([
            user["uuid"], user["display_name"], user["username"] or "", user["role"],
            "|".join(sorted(memberships.get(user["uuid"], []))), user["language"] or "",
            user["avatar"] or "",
            *["|".join(profile[k]) if isinstance(profile.get(k), list) else profile.get(k, "")
              for k in PROFILE],
            user["created_at"] or ""])
    return out.getvalue()
