"""Sites: where a box stands, and the home site of learners and classes.

A site is a synced record (``sites``), known to every box of the organisation.
A learner's or a class's ``site`` field says which site's box holds it; staff,
the organisation, lessons and sites themselves are organisation-wide. A box
knows its own site from its hub (``meta.site``, set by sync); what it creates
gets that site. The hub has no site of its own and holds everything.

Moving a learner is one put of their record with the new site: the hub then
sends the learner's records and progress to the new site's box (see
docs/sync.md, "Sites").
"""

from __future__ import annotations

import sqlite_utils
from passerelle.server import records
from passerelle.server.db import new_uuid
from passerelle.server.errors import InvalidInput, NotFound
from passerelle.server.i18n import lazy_text as _l

# Entities whose records carry a home site (the rest are organisation-wide).
HOMED = ("user", "class")


def list_sites(db: sqlite_utils.Database) -> list[dict]:
    return records.query(db, "site", order="t.name")


def get_site(db: sqlite_utils.Database, site_uuid: str) -> dict:
    return records.require(db, "site", site_uuid, _l("no such site"))


def find_site(db: sqlite_utils.Database, name_or_uuid: str) -> dict:
    """A site by its uuid or its exact name (what the command line takes)."""
    found = records.load(db, "site", name_or_uuid)
    if found is not None:
        return found
    for site in list_sites(db):
        if site["name"].casefold() == name_or_uuid.strip().casefold():
            return site
    raise NotFound(_l("no such site"))


def create_site(db: sqlite_utils.Database, name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise InvalidInput(_l("the site is not valid"), details={"name": _l("a name of 1 to 80 characters")})
    if any(s["name"].casefold() == name.casefold() for s in list_sites(db)):
        raise InvalidInput(_l("there is already a site of that name"))
    site_uuid = new_uuid()
    records.put(db, "site", site_uuid, {"name": name})
    return site_uuid


def this_site(db: sqlite_utils.Database) -> str | None:
    """The site this box belongs to (None on the hub, and on a box not assigned yet)."""
    row = db.execute("SELECT value FROM meta WHERE key = 'site'").fetchone()
    return row[0] if row and row[0] else None


def set_this_site(db: sqlite_utils.Database, site_uuid: str | None) -> None:
    """What the hub says this box's site is (sync calls this at every exchange)."""
    if site_uuid == this_site(db):
        return
    with records.write_tx(db):
        db.execute("INSERT INTO meta (key, value) VALUES ('site', ?)"
                   " ON CONFLICT (key) DO UPDATE SET value = excluded.value", [site_uuid or ""])


def home_site_for(db: sqlite_utils.Database, role: str | None) -> str | None:
    """The site a new record gets on this box: learners (and classes) the box's own; staff none."""
    return this_site(db) if role in (None, "learner") else None


def move(db: sqlite_utils.Database, entity: str, uuid: str, site_uuid: str | None) -> dict:
    """Give a learner or a class another home site (None: organisation-wide).

    One put of the whole record with the new site, so it travels and wins like any edit.
    """
    if entity not in HOMED:
        raise InvalidInput(_l("only learners and classes have a home site"))
    if site_uuid is not None:
        get_site(db, site_uuid)
    current = records.require(db, entity, uuid, _l("no such record"))
    if entity == "user" and current.get("role") != "learner":
        raise InvalidInput(_l("staff belong to the whole organisation; only learners have a home site"))
    if current.get("site") == site_uuid:
        return current
    records.put_changes(db, entity, current, {"site": site_uuid})
    return records.load(db, entity, uuid)


def site_names(db: sqlite_utils.Database) -> dict[str, str]:
    return {s["uuid"]: s["name"] for s in list_sites(db)}


def counts(db: sqlite_utils.Database) -> dict[str | None, int]:
    """Learners per home site (None: no site), for the coordinator's page."""
    return {site: n for site, n in db.execute(
        "SELECT site, count(*) FROM users WHERE deleted = 0 AND role = 'learner' GROUP BY site")}
