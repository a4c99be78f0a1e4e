"""Coordinators' people pages: the list, one person (edit, PIN or password reset, sign out
everywhere), removal to the bin and back, and the roster import."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from passerelle.kiosk import bp
from passerelle.kiosk.manage.common import (
    STAFF,
    confirm_page,
    people_context,
    person_from_form,
)
from passerelle.server.db import get_db
from passerelle.server.errors import InvalidInput
from passerelle.server.people import accounts
from passerelle.server.web.auth import (
    allow,
    current_user,
    require,
    session_lifetime_seconds,
)


@bp.route("/manage/people", methods=["GET", "POST"])
@allow("coordinator")
def manage_people():
    db = get_db()
    errors, status = {}, 200
    if request.method == "POST":
        try:
            accounts.create_user(db, **person_from_form(request.form, people_context(db)["mode"]))
        except InvalidInput as exc:
            errors, status = exc.details or {}, 400
        else:
            flash(_("%(name)s was added.", name=request.form.get("display_name")))
            return redirect(url_for("kiosk.manage_people"))
    return render_template("manage/people.html", people=accounts.list_users(db), errors=errors,
                           removed=accounts.removed_users(db),
                           signed_in=accounts.signed_in_people(db, session_lifetime_seconds()),
                           form=request.form, roles=accounts.ROLES, **people_context(db)), status


def _editable_person(db, user_uuid: str) -> dict:
    """A coordinator edits anyone; a facilitator the learners of their own classes."""
    person = accounts.get_user(db, user_uuid)
    me = current_user()
    require(me["role"] == "coordinator" or (
        person["role"] == "learner" and accounts.may_see_learner(db, me, user_uuid)))
    return person


def _profile_from_form(form) -> dict:
    profile = {k[len("profile_"):]: form.get(k) for k in form if k.startswith("profile_")}
    if profile.get("languages_spoken") is not None:
        profile["languages_spoken"] = [v.strip() for v in profile["languages_spoken"].split(",")
                                       if v.strip()]
    return profile


@bp.route("/manage/people/<user_uuid>", methods=["GET", "POST"])
@allow(*STAFF)
def manage_person(user_uuid: str):
    """Edit a person, or give them a new PIN, password or pictures: never delete to fix."""
    db = get_db()
    person = _editable_person(db, user_uuid)
    context = people_context(db)
    errors, status, form = {}, 200, request.form
    if request.method == "POST":
        if form.get("what") == "secret":
            changes = {}
            if person["role"] in STAFF or context["mode"] == "password":
                changes["password"] = form.get("password", "")
            elif context["mode"] == "picture":
                changes["picture"] = [form.get(f"picture_{i}", "") for i in range(3)]
            else:
                changes["pin"] = form.get("pin", "")
            done = _("%(name)s has a new secret; they are signed out everywhere.",
                     name=person["display_name"])
        else:
            changes = {"display_name": form.get("display_name", ""),
                       "username": form.get("username") or None,
                       "language": form.get("language") or None,
                       "avatar": form.get("avatar") or None,
                       "profile": _profile_from_form(form)}
            done = _("The changes to %(name)s are saved.", name=form.get("display_name", ""))
        try:
            accounts.update_user(db, user_uuid, **changes)
        except InvalidInput as exc:
            errors, status = exc.details or {}, 400
        else:
            flash(done)
            return redirect(url_for("kiosk.manage_person", user_uuid=user_uuid))
    values = {"display_name": person["display_name"], "username": person.get("username") or "",
              "language": person.get("language") or "", "avatar": person.get("avatar") or "",
              **{f"profile_{k}": (", ".join(v) if isinstance(v, list) else v)
                 for k, v in (person.get("profile") or {}).items()}}
    if request.method == "POST" and form.get("what") != "secret":
        values.update(form.to_dict())
    return render_template("manage/person.html", person=person, errors=errors, values=values,
                           secret_form=form.get("what") == "secret", **context), status


@bp.route("/manage/people/<user_uuid>/delete", methods=["GET", "POST"])
@allow("coordinator")
def manage_person_delete(user_uuid: str):
    db = get_db()
    person = accounts.get_user(db, user_uuid)
    if request.method == "GET":
        name = person["display_name"]
        return confirm_page(
            _("Remove %(name)s?", name=name),
            [_("%(name)s can no longer sign in and disappears from classes, lists and reports.",
               name=name)],
            _("Yes, remove %(name)s", name=name), url_for("kiosk.manage_people"),
            _("Their progress and attendance are kept: the bin on the People page puts "
              "%(name)s back in one click.", name=name))
    try:
        accounts.delete_user(db, user_uuid)
    except accounts.Conflict:
        flash(_("The last coordinator cannot be removed; name another one first."))
    else:
        flash(_("%(name)s was removed. They are in the bin below.", name=person["display_name"]))
    return redirect(url_for("kiosk.manage_people") + "#bin")


@bp.post("/manage/people/<user_uuid>/restore")
@allow("coordinator")
def manage_person_restore(user_uuid: str):
    db = get_db()
    try:
        person = accounts.restore_user(db, user_uuid)
    except (accounts.Conflict, accounts.NotFound) as exc:
        flash(str(exc.message))
    else:
        flash(_("%(name)s is back, with their progress.", name=person["display_name"]))
    return redirect(url_for("kiosk.manage_people"))


@bp.post("/manage/people/<user_uuid>/signout")
@allow("coordinator")
def manage_person_signout(user_uuid: str):
    """End every session of a person: a tablet lost, a computer left signed in, a cookie stolen."""
    db = get_db()
    person = accounts.get_user(db, user_uuid)
    accounts.end_signins(db, user_uuid)
    flash(_("%(name)s is signed out everywhere.", name=person["display_name"]))
    return redirect(url_for("kiosk.manage_people"))




# --- Roster import: preview with per-row errors, then all or nothing ---------------------------

@bp.route("/manage/people/import", methods=["GET", "POST"])
@allow("coordinator")
def manage_roster():
    from passerelle.server.people import roster

    db = get_db()
    text, checked, error = "", None, None
    if request.method == "POST":
        upload = request.files.get("roster")
        if upload and upload.filename:
            raw = upload.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                error = _("This file is not UTF-8 text. In your spreadsheet, save it as \"CSV UTF-8\".")
        else:
            text = request.form.get("text", "")
        if text and error is None:
            try:
                if request.form.get("confirm") == "1":
                    result = roster.import_roster(db, text, request.form.get("class") or None)
                    flash(_("%(count)s people were imported.", count=result["created"]))
                    return redirect(url_for("kiosk.manage_people"))
                checked = roster.check(db, text, request.form.get("class") or None)
            except InvalidInput as exc:
                error = str(exc.message)
                details = exc.details or {}
                if "rows" not in details:  # what is wrong with the file itself, in words
                    error += " — " + "; ".join(str(v) for v in details.values())
                else:
                    checked = roster.check(db, text, request.form.get("class") or None)
    return render_template("manage/roster.html", text=text, checked=checked, error=error,
                           columns=roster.COLUMNS,
                           class_name=request.form.get("class", "")), 400 if error else 200
