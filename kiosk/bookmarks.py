"""The bookmark star on resource pages (the service is ``passerelle.server.learning.bookmarks``)."""

from __future__ import annotations

from flask import abort, redirect, url_for
from passerelle.kiosk import bp
from passerelle.server.db import get_db
from passerelle.server.learning import bookmarks
from passerelle.server.packs import catalogue
from passerelle.server.web.auth import allow, current_user


# A distinct prefix: /learn/<pack_id>/<path:node_id> would swallow ".../bookmark" as a node id.
@bp.post("/bookmarks/<pack_id>/<path:node_id>")
@allow("learner")
def bookmark(pack_id: str, node_id: str):
    """Bookmark a resource, or remove its bookmark (a plain form: works without JavaScript)."""
    db = get_db()
    found = catalogue.node(db, pack_id, node_id)
    if found is None or catalogue.staff_only(db, pack_id, found):  # guides are not for learners
        abort(404)
    bookmarks.toggle(db, current_user()["uuid"], pack_id, node_id)
    return redirect(url_for("kiosk.learn", pack_id=pack_id, node_id=node_id))
