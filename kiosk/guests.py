"""Drop-in use: the pages a visitor who did not sign in looks at, counted anonymously.

After a learners' page is shown to someone not signed in, one view is recorded by
``server/learning/guests.py`` with the visitor's random id of the day, kept in the browser's
session. Staff and learners are never counted here (their own activity is recorded as
theirs), nor are refusals, redirects or the files a page loads.
"""

from __future__ import annotations

import sqlite3

from flask import current_app, request, session
from passerelle.kiosk import bp
from passerelle.server import records
from passerelle.server.db import get_db
from passerelle.server.learning import guests
from passerelle.server.web.auth import current_user

# The pages of "just look around": the library, a topic or resource, an exercise, a ZIM
# article, a search.
COUNTED = {"kiosk.home", "kiosk.learn", "kiosk.practice", "kiosk.zim_home", "kiosk.zim_read",
           "search.page"}
SESSION_KEY = "guest"


@bp.after_app_request
def count_guest_view(response):
    if (request.method != "GET" or response.status_code != 200
            or request.endpoint not in COUNTED or current_user() is not None
            or response.mimetype != "text/html"):
        return response
    args = request.view_args or {}
    pack_id = args.get("pack_id") or (f"zim:{args['uuid']}" if args.get("uuid") else "")
    node_id = args.get("node_id") or args.get("path") or ""
    try:
        session[SESSION_KEY] = guests.view(get_db(), session.get(SESSION_KEY), pack_id, node_id)
    except (sqlite3.Error, OSError, records.WriteFailed) as exc:
        # A count is not worth a page: a full disk or a busy database only loses this view.
        current_app.logger.warning("drop-in view not counted: %s", exc)
    return response
