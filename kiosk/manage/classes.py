"""Facilitators' and coordinators' pages: people, classes, sessions and attendance."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from passerelle.kiosk import bp
from passerelle.server.db import get_db
from passerelle.server.errors import InvalidInput
from passerelle.server.packs import web as cw
from passerelle.server.people import accounts
from passerelle.server.web.auth import allow, current_user, require
from passerelle.server.web.security import body_limit

STAFF = ("facilitator", "coordinator")


def _person_from_form(form, mode: str) -> dict:
    """The fields of a new person, as the organisation's sign-in mode needs them."""
    role = form.get("role", "learner")
    fields = {
        "role": role,
        "display_name": form.get("display_name", ""),
        "username": form.get("username") or None,
        "avatar": form.get("avatar") or None,
        "language": form.get("language") or None,
        "profile": {k[len("profile_"):]: (form.getlist(k) if k == "profile_languages_spoken"
                                          else form.get(k))
                    for k in form if k.startswith("profile_")},
    }
    if fields["profile"].get("languages_spoken") is not None:
        fields["profile"]["languages_spoken"] = [
            v.strip() for v in ",".join(fields["profile"]["languages_spoken"]).split(",") if v.strip()]
    if role in STAFF or mode == "password":
        fields["password"] = form.get("password", "")
    elif mode == "pin":
        fields["pin"] = form.get("pin", "")
    elif mode == "picture":
        fields["picture"] = [form.get(f"picture_{i}", "") for i in range(3)]
    if form.get("consent"):
        fields["consent"] = {"given_at": accounts.now_iso(), "recorded_by": current_user()["uuid"]}
    return fields


def _people_context(db):
    org = accounts.organisation(db) or {}
    return {
        "mode": org.get("signin_mode", "pin"),
        "profile_fields": org.get("profile_fields") or {},
        "avatars": accounts.AVATARS, "pictures": accounts.PICTURES,
        "choices": {"age_band": accounts.AGE_BANDS, "gender": accounts.GENDERS,
                    "employment": accounts.EMPLOYMENT, "newcomer": ("yes", "no")},
    }


@bp.get("/manage")
@allow(*STAFF)
def manage_home():
    db = get_db()
    return render_template("manage/home.html", classes=accounts.classes_of(db, current_user()),
                           org=accounts.organisation(db))


@bp.route("/manage/people", methods=["GET", "POST"])
@allow("coordinator")
def manage_people():
    db = get_db()
    errors, status = {}, 200
    if request.method == "POST":
        try:
            accounts.create_user(db, **_person_from_form(request.form, _people_context(db)["mode"]))
        except InvalidInput as exc:
            errors, status = exc.details or {}, 400
        else:
            flash(_("%(name)s was added.", name=request.form.get("display_name")))
            return redirect(url_for("kiosk.manage_people"))
    return render_template("manage/people.html", people=accounts.list_users(db), errors=errors,
                           form=request.form, roles=accounts.ROLES, **_people_context(db)), status


@bp.post("/manage/people/<user_uuid>/delete")
@allow("coordinator")
def manage_person_delete(user_uuid: str):
    db = get_db()
    person = accounts.get_user(db, user_uuid)
    try:
        accounts.delete_user(db, user_uuid)
    except accounts.Conflict:
        flash(_("The last coordinator cannot be removed; name another one first."))
    else:
        flash(_("%(name)s was removed.", name=person["display_name"]))
    return redirect(url_for("kiosk.manage_people"))


@bp.route("/manage/classes", methods=["GET", "POST"])
@allow(*STAFF)
def manage_classes():
    db = get_db()
    errors, status = {}, 200
    if request.method == "POST":
        user = current_user()
        try:
            class_uuid = accounts.create_class(
                db, request.form.get("name", ""), request.form.get("description", ""),
                facilitator_uuid=user["uuid"] if user["role"] == "facilitator" else None)
        except InvalidInput as exc:
            errors, status = exc.details or {}, 400
        else:
            return redirect(url_for("kiosk.manage_class", class_uuid=class_uuid))
    return render_template("manage/classes.html", classes=accounts.classes_of(db, current_user()),
                           errors=errors, form=request.form), status


def _managed_class(db, class_uuid: str) -> dict:
    group = accounts.get_class(db, class_uuid)
    require(accounts.can_manage_class(db, current_user(), class_uuid))
    return group


@bp.route("/manage/classes/<class_uuid>", methods=["GET", "POST"])
@allow(*STAFF)
def manage_class(class_uuid: str):
    db = get_db()
    group = _managed_class(db, class_uuid)
    errors, status = {}, 200
    if request.method == "POST":  # a new learner, straight into this class
        form = request.form.copy()
        form["role"] = "learner"
        try:
            learner = accounts.create_user(db, **_person_from_form(form, _people_context(db)["mode"]))
            accounts.add_member(db, class_uuid, learner)
        except InvalidInput as exc:
            errors, status = exc.details or {}, 400
        else:
            flash(_("%(name)s was added.", name=request.form.get("display_name")))
            return redirect(url_for("kiosk.manage_class", class_uuid=class_uuid))
    learners = accounts.members(db, class_uuid)
    in_class = {learner["uuid"] for learner in learners}
    others = [p for p in accounts.list_users(db, "learner") if p["uuid"] not in in_class]
    from passerelle.server.learning import lessons

    return render_template("manage/class.html", group=group, learners=learners, others=others,
                           facilitators=accounts.members(db, class_uuid, "facilitator"),
                           sessions=accounts.sessions_of_class(db, class_uuid),
                           assignments=lessons.assignments_of_class(db, class_uuid),
                           lessons=lessons.lessons(db), groups=lessons.groups_of(db, class_uuid),
                           errors=errors, form=request.form, **_people_context(db)), status


@bp.post("/manage/classes/<class_uuid>/members")
@allow(*STAFF)
def manage_class_add(class_uuid: str):
    db = get_db()
    _managed_class(db, class_uuid)
    person = accounts.get_user(db, request.form.get("user_uuid", ""))
    require(person["role"] == "learner" or current_user()["role"] == "coordinator")
    accounts.add_member(db, class_uuid, person["uuid"])
    return redirect(url_for("kiosk.manage_class", class_uuid=class_uuid))


@bp.post("/manage/classes/<class_uuid>/members/<user_uuid>/remove")
@allow(*STAFF)
def manage_class_remove(class_uuid: str, user_uuid: str):
    db = get_db()
    _managed_class(db, class_uuid)
    accounts.remove_member(db, class_uuid, user_uuid)
    return redirect(url_for("kiosk.manage_class", class_uuid=class_uuid))


@bp.post("/manage/classes/<class_uuid>/sessions")
@allow(*STAFF)
def manage_session_open(class_uuid: str):
    db = get_db()
    _managed_class(db, class_uuid)
    form = request.form
    try:
        session_uuid = accounts.open_session(
            db, class_uuid, current_user()["uuid"], date=form.get("date") or None,
            place=form.get("place", ""), partner=form.get("partner", ""), topic=form.get("topic", ""))
    except InvalidInput:
        flash(_("Please give the date as year-month-day, for example 2026-11-22."))
        return redirect(url_for("kiosk.manage_class", class_uuid=class_uuid))
    return redirect(url_for("kiosk.manage_session", session_uuid=session_uuid))


@bp.get("/manage/sessions/<session_uuid>")
@allow(*STAFF)
def manage_session(session_uuid: str):
    db = get_db()
    meeting = accounts.get_session(db, session_uuid)
    group = _managed_class(db, meeting["class_uuid"])
    return render_template("manage/session.html", meeting=meeting, group=group,
                           learners=accounts.members(db, group["uuid"]),
                           present=accounts.attendance(db, session_uuid))


@bp.post("/manage/sessions/<session_uuid>/attendance/<learner_uuid>")
@allow(*STAFF)
def manage_attendance(session_uuid: str, learner_uuid: str):
    db = get_db()
    meeting = accounts.get_session(db, session_uuid)
    _managed_class(db, meeting["class_uuid"])
    accounts.mark_attendance(db, session_uuid, learner_uuid, request.form.get("present") == "1")
    return redirect(url_for("kiosk.manage_session", session_uuid=session_uuid) + f"#p-{learner_uuid}")


# --- Content: installed packs, uploads, USB drives, imports in the background ---------------

@bp.get("/manage/content")
@allow("coordinator")
def manage_content():
    from passerelle.server.packs import imports as content_admin
    from passerelle.server.packs.web import library

    settings = current_app.config["SETTINGS"]
    jobs = content_admin.runner()
    drives, channels = content_admin.scan_drives(settings["usb_roots"])
    return render_template("manage/content.html", packs=library().list(), drives=drives, kolibri=channels,
                           jobs=[j.as_dict() for j in jobs.recent()], busy=jobs.busy(),
                           max_upload_mb=settings["max_upload_mb"])


@bp.post("/manage/content/upload")
@allow("coordinator")
@body_limit("max_upload_mb")
def manage_content_upload():
    import uuid

    from passerelle.server.packs import imports as content_admin

    upload = request.files.get("pack")
    if upload is None or not upload.filename:
        flash(_("Choose a pack file (.zip) first."))
        return redirect(url_for("kiosk.manage_content"))
    folder = current_app.config["HOME"].tmp / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    # Never the name the browser sent: a random one, in the box's own folder.
    target = folder / f"{uuid.uuid4().hex}.zip"
    upload.save(target)
    content_admin.runner().submit(str(target), upload.filename[:100], remove_after=True)
    flash(_("The pack is being imported. You can follow it below."))
    return redirect(url_for("kiosk.manage_content"))


@bp.post("/manage/content/import")
@allow("coordinator")
def manage_content_import():
    from passerelle.server.packs import imports as content_admin

    wanted = request.form.get("path", "")
    # Only a pack that this page found on a drive: a path is never taken on trust.
    drives = content_admin.find_packs(current_app.config["SETTINGS"]["usb_roots"])
    found = next((d for d in drives if d["path"] == wanted), None)
    if found is None:
        flash(_("That pack is no longer on the drive. Is the USB stick still plugged in?"))
    else:
        content_admin.runner().submit(found["path"], f"{found['title']} (v{found['version']})")
        flash(_("The pack is being imported. You can follow it below."))
    return redirect(url_for("kiosk.manage_content"))


@bp.get("/manage/content/kolibri")
@allow("coordinator")
def manage_kolibri_topics():
    """A Kolibri channel on a drive: its topics, each with its size, to tick before importing."""
    from passerelle import content as lib
    from passerelle.server.packs import imports as content_admin

    path, channel_id = request.args.get("path", ""), request.args.get("channel", "")
    channel = content_admin.kolibri_channel(current_app.config["SETTINGS"]["usb_roots"], path, channel_id)
    if channel is None:
        flash(_("That channel is no longer on the drive. Is the USB stick still plugged in?"))
        return redirect(url_for("kiosk.manage_content"))
    try:
        topics = content_admin.kolibri_topics(path, channel_id)
    except lib.ContentError as exc:
        flash(exc.message)
        return redirect(url_for("kiosk.manage_content"))
    return render_template("manage/kolibri.html", path=path, channel=channel, topics=topics)


@bp.post("/manage/content/kolibri")
@allow("coordinator")
def manage_kolibri_import():
    from passerelle.server.packs import imports as content_admin

    path, channel_id = request.form.get("path", ""), request.form.get("channel", "")
    channel = content_admin.kolibri_channel(current_app.config["SETTINGS"]["usb_roots"], path, channel_id)
    if channel is None:
        flash(_("That channel is no longer on the drive. Is the USB stick still plugged in?"))
        return redirect(url_for("kiosk.manage_content"))
    topics = None
    if request.form.get("whole") != "1":
        topics = sorted({t for t in request.form.getlist("topic") if len(t) == 32 and t.isalnum()})
        if not topics:
            flash(_("Choose at least one topic."))
            return redirect(url_for("kiosk.manage_kolibri_topics", path=path, channel=channel_id))
    content_admin.runner().submit(path, f"{channel['name']} (v{channel['version']})", channel=channel_id,
                                  topics=topics)
    flash(_("The channel is being imported. You can follow it below."))
    return redirect(url_for("kiosk.manage_content"))


@bp.post("/manage/content/<pack_id>/remove")
@allow("coordinator")
def manage_content_remove(pack_id: str):
    from passerelle import content as lib
    from passerelle.server.packs.web import library

    try:
        library().remove(pack_id)
    except lib.LibraryBusy:
        flash(_("An import is running; remove the pack when it has finished."))
    except lib.PackNotFound:
        abort(404)
    else:
        flash(_("The pack %(id)s was removed.", id=pack_id))
    return redirect(url_for("kiosk.manage_content"))


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


# --- Lessons, assignments, groups; the class grid; one learner -------------------------------

@bp.route("/manage/lessons", methods=["GET", "POST"])
@allow(*STAFF)
def manage_lessons():
    from passerelle.server.learning import lessons

    db = get_db()
    errors, status = {}, 200
    if request.method == "POST":
        items = []
        for value in request.form.getlist("item"):
            pack_id, _slash, node_id = value.partition("/")
            items.append({"pack_id": pack_id, "node_id": node_id})
        try:
            lessons.create_lesson(db, request.form.get("title", ""), items, current_user()["uuid"],
                                  request.form.get("description", ""))
        except InvalidInput as exc:
            errors, status = exc.details or {}, 400
        else:
            flash(_("The lesson was created. Assign it from a class page."))
            return redirect(url_for("kiosk.manage_lessons"))
    return render_template("manage/lessons.html", lessons=lessons.lessons(db), errors=errors,
                           form=request.form, resources=cw.resources(db)), status


@bp.post("/manage/classes/<class_uuid>/assignments")
@allow(*STAFF)
def manage_assign(class_uuid: str):
    from passerelle.server.learning import lessons

    db = get_db()
    _managed_class(db, class_uuid)
    try:
        lessons.assign(db, request.form.get("lesson_uuid", ""), class_uuid, current_user()["uuid"],
                       group_uuid=request.form.get("group_uuid") or None)
    except InvalidInput:
        flash(_("Choose a lesson (and, if you like, a group of this class)."))
    return redirect(url_for("kiosk.manage_class", class_uuid=class_uuid) + "#assignments")


@bp.post("/manage/assignments/<assignment_uuid>/<any(open, close):action>")
@allow(*STAFF)
def manage_assignment_open(assignment_uuid: str, action: str):
    from passerelle.server.learning import lessons

    db = get_db()
    assignment = lessons.get_assignment(db, assignment_uuid)
    _managed_class(db, assignment["class_uuid"])
    lessons.set_open(db, assignment_uuid, action == "open")
    return redirect(url_for("kiosk.manage_class", class_uuid=assignment["class_uuid"]) + "#assignments")


@bp.post("/manage/classes/<class_uuid>/groups")
@allow(*STAFF)
def manage_group_create(class_uuid: str):
    from passerelle.server.learning import lessons

    db = get_db()
    _managed_class(db, class_uuid)
    try:
        group = lessons.create_group(db, class_uuid, request.form.get("name", ""))
        for learner in request.form.getlist("learner"):
            lessons.set_group_member(db, group, learner, True)
    except InvalidInput:
        flash(_("Give the group a name."))
    return redirect(url_for("kiosk.manage_class", class_uuid=class_uuid) + "#groups")


@bp.get("/manage/classes/<class_uuid>/grid")
@allow(*STAFF)
def manage_grid(class_uuid: str):
    from passerelle.server.learning import lessons

    db = get_db()
    group = _managed_class(db, class_uuid)
    return render_template("manage/grid.html", group=group, grid=lessons.class_grid(db, class_uuid))


@bp.get("/manage/learners/<user_uuid>")
@allow(*STAFF)
def manage_learner(user_uuid: str):
    from passerelle.server.learning import lessons

    db = get_db()
    person = accounts.get_user(db, user_uuid)
    require(person["role"] == "learner" and accounts.may_see_learner(db, current_user(), user_uuid))
    return render_template("manage/learner.html", person=person,
                           summary=lessons.learner_summary(db, user_uuid))


@bp.get("/manage/content/<pack_id>/export.zip")
@allow("coordinator")
def manage_content_export(pack_id: str):
    """Any installed pack as a zip, to carry to another box on a USB stick."""
    import uuid

    from flask import send_file
    from passerelle import content as lib
    from passerelle.server.packs.web import library

    work = current_app.config["HOME"].tmp / "exports"
    work.mkdir(parents=True, exist_ok=True)
    target = work / f"{uuid.uuid4().hex}.zip"
    try:
        library().export(pack_id, target, format="zip")
    except lib.PackNotFound:
        abort(404)
    response = send_file(target, mimetype="application/zip", as_attachment=True,
                         download_name=f"{pack_id}.zip")
    response.call_on_close(lambda: target.unlink(missing_ok=True))
    return response
