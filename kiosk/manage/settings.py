"""The organisation's settings after setup, on one page (coordinators only): its name, the
languages, how learners sign in, the profile questions, and what learners may change on their
own page. These are the organisation's record, which syncs to every box of the organisation;
the box's own settings (ports, paths, limits) are elsewhere (``server/settings.py``)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from passerelle.kiosk import bp
from passerelle.server.db import get_db
from passerelle.server.errors import InvalidInput
from passerelle.server.people import accounts
from passerelle.server.web.auth import allow


def _values(org: dict, form) -> dict:
    """What the form shows: the organisation as it is, or as the coordinator just filled it."""
    if form:
        return {"org_name": form.get("org_name", ""), "languages": form.getlist("languages"),
                "signin_mode": form.get("signin_mode", ""),
                "profile_fields": {f: form.get(f"purpose_{f}", "").strip()
                                   for f in form.getlist("profile_fields")},
                "learners_edit_profile": form.get("learners_edit_profile") == "1",
                "learners_change_secret": form.get("learners_change_secret") == "1"}
    return {"org_name": org.get("name") or "", "languages": org.get("languages") or [],
            "signin_mode": org.get("signin_mode") or "pin",
            "profile_fields": org.get("profile_fields") or {},
            "learners_edit_profile": bool(org.get("learners_edit_profile")),
            "learners_change_secret": bool(org.get("learners_change_secret"))}


@bp.route("/manage/settings", methods=["GET", "POST"])
@allow("coordinator")
def manage_settings():
    db = get_db()
    org = accounts.organisation(db) or {}
    values = _values(org, request.form if request.method == "POST" else None)
    errors, effects, status = {}, None, 200
    if request.method == "POST":
        new_mode = values["signin_mode"]
        changing = new_mode != org.get("signin_mode") and new_mode in accounts.SIGNIN_MODES
        if changing and request.form.get("confirm_mode") != new_mode:
            # Say what the new sign-in mode means for the learners there are, before saving.
            effects = accounts.signin_mode_change(db, new_mode)
        else:
            try:
                accounts.update_settings(
                    db, name=values["org_name"], languages=values["languages"],
                    signin_mode=new_mode, profile_fields=values["profile_fields"],
                    learners_edit_profile=values["learners_edit_profile"],
                    learners_change_secret=values["learners_change_secret"])
            except InvalidInput as exc:
                errors, status = exc.details or {}, 400
            else:
                flash(_("The settings are saved."))
                return redirect(url_for("kiosk.manage_settings"))
    return render_template("manage/settings.html", values=values, errors=errors, effects=effects,
                           current_mode=org.get("signin_mode", "pin"),
                           fields=accounts.PROFILE_FIELDS), status
