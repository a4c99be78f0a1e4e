"""Pages every visitor sees: the home page and the language choice."""

from __future__ import annotations

from flask import abort, current_app, redirect, request
from passerelle.kiosk import ONE_YEAR, bp
from passerelle.server.db import get_db
from passerelle.server.i18n import LANG_COOKIE
from passerelle.server.people import accounts
from passerelle.server.web.auth import ANYONE, allow, current_user
from passerelle.server.web.security import safe_next


@bp.get("/language/<code>")
@allow(ANYONE)
def choose_language(code: str):
    """Remember the language in the signed-in person's account, or on this tablet (a cookie,
    forgotten at sign-out) for whoever is not signed in yet."""
    if code not in current_app.config["SETTINGS"]["languages"]:
        abort(404)
    user = current_user()
    if user and user.get("language") != code:
        db = get_db()
        accounts.update_user(db, user["uuid"], language=code)
        user["language"] = code
    response = redirect(safe_next(request.args.get("next")))
    if not user:
        response.set_cookie(LANG_COOKIE, code, max_age=ONE_YEAR, samesite="Lax", httponly=True)
    return response

