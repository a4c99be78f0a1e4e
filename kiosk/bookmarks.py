"""A learner's bookmarks: a star on resource pages, a "My bookmarks" list on the home page.

Bookmarks are syncing records (``records`` entity ``bookmark``). Their uuid is
derived from (learner, pack, node), so the same bookmark made on two boxes is
one record once they sync, and removing it (a tombstone) removes it everywhere.
"""

from __future__ import annotations

from flask import abort, redirect, url_for
from passerelle.kiosk import bp
from passerelle.server import records
from passerelle.server.db import get_db
from passerelle.server.packs import web as cw
from passerelle.server.people.accounts import joined_uuid, now_iso
from passerelle.server.web.auth import allow, current_user


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
        "SELECT b.pack_id, b.node_id, n.title, n.kind FROM bookmarks b"
        " JOIN content_nodes n ON n.pack_id = b.pack_id AND n.node_id = b.node_id"
        " WHERE b.learner_uuid = ? AND b.deleted = 0 ORDER BY b.created_at DESC, b.version DESC"
        " LIMIT ?", [learner_uuid, limit]).fetchall()
    return [dict(zip(("pack_id", "node_id", "title", "kind"), r, strict=True)) for r in rows]


# A distinct prefix: /learn/<pack_id>/<path:node_id> would swallow ".../bookmark" as a node id.
@bp.post("/bookmarks/<pack_id>/<path:node_id>")
@allow("learner")
def bookmark(pack_id: str, node_id: str):
    """Bookmark a resource, or remove its bookmark (a plain form: works without JavaScript)."""
    db = get_db()
    if cw.node(db, pack_id, node_id) is None:
        abort(404)
    toggle(db, current_user()["uuid"], pack_id, node_id)
    return redirect(url_for("kiosk.learn", pack_id=pack_id, node_id=node_id))
