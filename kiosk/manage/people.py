"""Coordinators' people pages: the list, one person (edit, PIN or password reset, sign out
everywhere), removal to the bin and back, and the roster import."""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, url_for
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
from passerelle.server.people import accounts, directory
from passerelle.server.web.auth import (
    allow,
    current_user,
    require,
    session_lifetime_seconds,
)
from passerelle.server.web.security import safe_next


def _filters(args) -> dict:
    """The list's search, role and class, as the page's links and forms carry them."""
    role = args.get("role", "")
    return {"q": args.get("q", "").strip()[:80], "role": role if role in accounts.ROLES else "",
            "class": args.get("class", "")[:40]}


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
    filters = _filters(request.args)
    page = directory.find(db, text=filters["q"], role=filters["role"] or None,
                          class_uuid=filters["class"] or None,
                          after=request.args.get("after"), before=request.args.get("before"))
    here = request.full_path if request.args else request.path
    keep = {k: v for k, v in filters.items() if v}  # what the page's links carry on
    return render_template("manage/people.html", page=page, filters=filters, here=here, keep=keep,
                           people=page.people, errors=errors,
                           classes=accounts.all_classes(db), no_class=directory.NO_CLASS,
                           removed=accounts.removed_users(db, limit=20),
                           signed_in=accounts.signed_in_people(db, session_lifetime_seconds()),
                           form=request.form, roles=accounts.ROLES, **people_context(db)), status


@bp.get("/manage/people/export.csv")
@allow("coordinator")
def manage_people_export():
    """The list as it is filtered on the page, as a file the import reads back."""
    from passerelle.server.people import roster

    db = get_db()
    filters = _filters(request.args)
    uuids = directory.matching_uuids(db, text=filters["q"], role=filters["role"] or None,
                                     class_uuid=filters["class"] or None)
    response = Response(roster.export(db, uuids), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="people.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/manage/people/chosen")
@allow("coordinator")
def manage_people_chosen():
    """One action for every person ticked on the list: add or move to a class, remove to the
    bin, or new PINs (or pictures). Removing and new codes ask first, on a page of their own."""
    db = get_db()
    form = request.form
    back = safe_next(form.get("back"), url_for("kiosk.manage_people"))
    action, chosen = form.get("action", ""), form.getlist("people")
    try:
        people = directory.selected(db, chosen)
    except InvalidInput as exc:
        flash(_("Tick at least one person first.") if not chosen else str(exc.message))
        return redirect(back)
    names = ", ".join(p["display_name"] for p in people)
    hidden = [("action", action), ("back", back), ("confirm", "1"),
              *(("people", p["uuid"]) for p in people)]
    if action in ("add", "move"):
        class_uuid = form.get("class_uuid", "")
        try:
            group = accounts.get_class(db, class_uuid)
        except accounts.NotFound:
            flash(_("Choose the class to put them in."))
            return redirect(back)
        directory.add_to_class(db, class_uuid, chosen, move=action == "move")
        message = (_("%(count)s people moved to %(class)s: %(names)s", count=len(people),
                     **{"class": group["name"]}, names=names) if action == "move" else
                   _("%(count)s people added to %(class)s: %(names)s", count=len(people),
                     **{"class": group["name"]}, names=names))
        flash(message)
        return redirect(back)
    if action == "remove":
        me = current_user()["uuid"]
        if form.get("confirm") != "1":
            return confirm_page(
                _("Remove %(count)s people?", count=len(people)),
                [_("They can no longer sign in and disappear from classes, lists and reports: "
                   "%(names)s.", names=names)]
                + ([_("You are among them: you will not be removed.")]
                   if any(p["uuid"] == me for p in people) else []),
                _("Yes, remove these %(count)s people", count=len(people)), back,
                _("Their progress and attendance are kept: the bin on the People page puts "
                  "each of them back in one click."), hidden=hidden)
        try:
            gone = directory.remove(db, chosen, by=me)
        except accounts.Conflict:
            flash(_("The last coordinator cannot be removed; name another one first."))
        else:
            flash(_("%(count)s people were removed. They are in the bin.", count=len(gone)))
        return redirect(back)
    if action == "reset":
        mode = people_context(db)["mode"]
        if form.get("confirm") != "1":
            learners = [p for p in people if p["role"] == "learner"]
            losses = [_("%(count)s learners get a new code, shown once on the next page to "
                        "print or copy: %(names)s.", count=len(learners),
                        names=", ".join(p["display_name"] for p in learners)),
                      _("Their current codes stop working and they are signed out everywhere.")]
            if mode not in ("pin", "picture"):
                losses = [_("Learners here sign in without a PIN or pictures: there is no code "
                            "to reset.")]
            elif len(learners) < len(people):
                losses.append(_("Facilitators and coordinators are left as they are: they "
                                "change their password on their own page."))
            return confirm_page(_("New codes for %(count)s people?", count=len(people)), losses,
                                _("Yes, give them new codes"), back, hidden=hidden)
        done, skipped = directory.reset_secrets(db, chosen)
        response = Response(render_template("manage/new_codes.html", done=done,
                                            skipped=skipped, mode=mode, back=back))
        # Shown once: never kept by the browser or a proxy.
        response.headers["Cache-Control"] = "no-store"
        return response
    flash(_("Choose what to do with the people ticked."))
    return redirect(back)


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
                    if result["updated"]:
                        flash(_("%(created)s people were added and %(updated)s updated.",
                                created=result["created"], updated=result["updated"]))
                    else:
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
