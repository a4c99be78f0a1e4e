"""A learner's bookmarks: a star on resource pages, a "My bookmarks" list on the home page.

Bookmarks are syncing records (``records`` entity ``bookmark``). Their uuid is
derived from (learner, pack, node), so the same bookmark made on two boxes is
one record once they sync, and removing it (a tombstone) removes it everywhere.
"""

from __future__ import annotations

from passerelle.server import records
from passerelle.server.packs import catalogue
from passerelle.server.people.accounts import joined_uuid
from passerelle.server.records import now_iso


def bookmark_uuid(learner_uuid: str, pack_id: str, node_id: str) -> str:
    return joined_uuid("bookmark", learner_uuid, pack_id, node_id)


def is_bookmarked(db, learner_uuid: str, pack_id: str, node_id: str) -> bool:
    return records.load(db, "bookmark", bookmark_uuid(learner_uuid, pack_id, node_id)) is not None


def toggle(db, learner_uuid: str, pack_id: str, node_id: str) -> bool:
    """Add the bookmark, or remove it if it is there; True when it is now bookmarked."""
    uuid = bookmark_uuid(learner_uuid, pack_id, node_id)
    if records.load(db, "bookmark", uuid) is not None:
        records.delete(db, "bookmark", uuid)
        return False
    records.put(db, "bookmark", uuid, {"learner_uuid": learner_uuid, "pack_id": pack_id,
                                       "node_id": node_id, "created_at": now_iso()})
    return True


def of_learner(db, learner_uuid: str, limit: int = 24) -> list[dict]:
    """The learner's bookmarks of installed resources, newest first, with title and kind."""
    rows = db.execute(
        "SELECT pack_id, node_id FROM bookmarks WHERE learner_uuid = ? AND deleted = 0"
        " ORDER BY created_at DESC, version DESC LIMIT ?", [learner_uuid, limit]).fetchall()
    known = catalogue.brief(db, rows)  # bookmarks of packs since removed are not listed
    return [{"pack_id": p, "node_id": n, "title": known[(p, n)]["title"],
             "kind": known[(p, n)]["kind"], "language": known[(p, n)]["language"]}
            for p, n in rows if (p, n) in known]
