"""A learner's bookmarks: a star on resource pages, a "My bookmarks" list on the home page.

Bookmarks are syncing records (``records`` entity ``bookmark``). Their uuid is
derived from (learner, pack, node), so the same bookmark made on two boxes is
one record once they sync, and removing it (a tombstone) removes it everywhere.
"""

from __future__ import annotations

from passerelle.server import records
from passerelle.server.learning.progress import CONTENT_LANGUAGE
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
        "SELECT b.pack_id, b.node_id, n.title, n.kind, " + CONTENT_LANGUAGE + " FROM bookmarks b"
        " JOIN content_nodes n ON n.pack_id = b.pack_id AND n.node_id = b.node_id"
        " WHERE b.learner_uuid = ? AND b.deleted = 0 ORDER BY b.created_at DESC, b.version DESC"
        " LIMIT ?", [learner_uuid, limit]).fetchall()
    return [dict(zip(("pack_id", "node_id", "title", "kind", "language"), r, strict=True))
            for r in rows]
