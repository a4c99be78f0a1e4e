"""Facilitators' and coordinators' pages: people, classes, sessions and attendance."""

from __future__ import annotations

from datetime import date

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from passerelle.kiosk import bp
from passerelle.server import disk, records
from passerelle.server.db import get_db
from passerelle.server.errors import InvalidInput, PasserelleError
from passerelle.server.packs import catalogue
from passerelle.server.people import accounts
from passerelle.server.web.auth import (
    allow,
    current_user,
    require,
    session_lifetime_seconds,
)
from passerelle.server.web.security import body_limit

STAFF = accounts.STAFF


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
        fields["consent"] = {"given_at": records.now_iso(), "recorded_by": current_user()["uuid"]}
    return fields


def _people_context(db):
    org = accounts.organisation(db) or {}
    return {
        "mode": org.get("signin_mode", "pin"),
        "profile_fields": org.get("profile_fields") or {},
        "avatars": accounts.AVATARS, "pictures": accounts.PICTURES,
        "choices": accounts.PROFILE_CHOICES,
    }


@bp.get("/manage")
@allow(*STAFF)
def manage_home():
    db = get_db()
    try:
        space = disk.space(current_app.config["HOME"].root, current_app.config["SETTINGS"])
    except OSError:
        space = None
    return render_template("manage/home.html", classes=accounts.classes_of(db, current_user()),
                           org=accounts.organisation(db), space=space)


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
                           removed=accounts.removed_users(db),
                           signed_in=accounts.signed_in_people(db, session_lifetime_seconds()),
                           form=request.form, roles=accounts.ROLES, **_people_context(db)), status


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
    context = _people_context(db)
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
            if user["role"] == "coordinator":
                _add_facilitators(db, class_uuid, request.form.getlist("facilitator"))
            return redirect(url_for("kiosk.manage_class", class_uuid=class_uuid))
    return render_template("manage/classes.html", classes=accounts.classes_of(db, current_user()),
                           facilitators=accounts.list_users(db, "facilitator"),
                           errors=errors, form=request.form), status


def _add_facilitators(db, class_uuid: str, wanted: list[str]) -> list[str]:
    """Put the chosen facilitators on a class; returns the names of those added."""
    staff = {p["uuid"]: p for p in accounts.list_users(db, "facilitator")}
    added = []
    for user_uuid in wanted:
        if user_uuid in staff:  # only facilitators: a learner is never made staff of a class
            accounts.add_member(db, class_uuid, user_uuid)
            added.append(staff[user_uuid]["display_name"])
    return added


@bp.post("/manage/classes/<class_uuid>/facilitators")
@allow("coordinator")
def manage_class_facilitators(class_uuid: str):
    """Assign facilitators (coaches) to a class: their classes are then on their home page."""
    db = get_db()
    _managed_class(db, class_uuid)
    added = _add_facilitators(db, class_uuid, request.form.getlist("facilitator"))
    if added:
        flash(_("Now facilitating this class: %(names)s.", names=", ".join(added)))
    else:
        flash(_("Tick at least one facilitator."))
    return redirect(url_for("kiosk.manage_class", class_uuid=class_uuid) + "#facilitators")


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
            accounts.enrol(db, current_user(), class_uuid, learner)
        except InvalidInput as exc:
            errors, status = exc.details or {}, 400
        else:
            flash(_("%(name)s was added.", name=request.form.get("display_name")))
            return redirect(url_for("kiosk.manage_class", class_uuid=class_uuid))
    learners = accounts.members(db, class_uuid)
    # Only those this person may add: a facilitator never sees other classes' learners here.
    others = accounts.enrollable_learners(db, current_user(), class_uuid)
    facilitators = accounts.members(db, class_uuid, "facilitator")
    on_class = {f["uuid"] for f in facilitators}
    from passerelle.server.learning import lessons

    return render_template("manage/class.html", group=group, learners=learners, others=others,
                           facilitators=facilitators,
                           other_facilitators=[f for f in accounts.list_users(db, "facilitator")
                                               if f["uuid"] not in on_class],
                           sessions=accounts.sessions_of_class(db, class_uuid),
                           assignments=lessons.assignments_of_class(db, class_uuid),
                           lessons=lessons.lessons(db), groups=lessons.groups_of(db, class_uuid),
                           today=date.today().isoformat(), errors=errors, form=request.form, **_people_context(db)), status


def _addable_learners(db, in_class: set[str]) -> list[dict]:
    """Learners this person may add: a coordinator anyone; a facilitator those in no class yet
    (moving a learner out of another facilitator's class is the coordinator's call)."""
    others = [p for p in accounts.list_users(db, "learner") if p["uuid"] not in in_class]
    if current_user()["role"] != "coordinator":
        placed = accounts.learners_in_a_class(db)
        others = [p for p in others if p["uuid"] not in placed]
    return others


@bp.post("/manage/classes/<class_uuid>/members")
@allow(*STAFF)
def manage_class_add(class_uuid: str):
    """Many learners at once: one form, one checkbox each."""
    db = get_db()
    _managed_class(db, class_uuid)
    added = []
    for user_uuid in request.form.getlist("user_uuid"):
        person = accounts.get_user(db, user_uuid)
        try:  # the one path, with its rule: whom this person may put into a class
            accounts.enrol(db, current_user(), class_uuid, person["uuid"])
        except PasserelleError as exc:  # a rule of the service (another class's learner...)
            flash(f"{person['display_name']}: {exc.message}")
        else:
            added.append(person["display_name"])
    if added:
        flash(_("Added to the class: %(names)s.", names=", ".join(added)))
    elif not request.form.getlist("user_uuid"):
        flash(_("Tick at least one learner."))
    return redirect(url_for("kiosk.manage_class", class_uuid=class_uuid) + "#learners-title")


def confirm_page(title: str, losses: list[str], button: str, back: str, keeps: str = ""):
    """A page of its own that says what an action will lose, before it is done (no JavaScript:
    the link shows this page, only its form's POST acts)."""
    return render_template("manage/confirm.html", title=title, losses=losses, keeps=keeps,
                           button=button, back=back)


@bp.route("/manage/classes/<class_uuid>/members/<user_uuid>/remove", methods=["GET", "POST"])
@allow(*STAFF)
def manage_class_remove(class_uuid: str, user_uuid: str):
    db = get_db()
    group = _managed_class(db, class_uuid)
    person = accounts.get_user(db, user_uuid)
    # Taking a facilitator off a class is the coordinator's call.
    require(person["role"] == "learner" or current_user()["role"] == "coordinator")
    back = url_for("kiosk.manage_class", class_uuid=class_uuid)
    if request.method == "GET":
        if person["role"] == "learner":
            losses = [_("%(name)s will no longer see the lessons assigned to %(class)s.",
                        name=person["display_name"], **{"class": group["name"]}),
                      _("%(name)s will no longer be on this class's sign-in page and grid.",
                        name=person["display_name"])]
        else:
            losses = [_("%(name)s will no longer manage %(class)s.",
                        name=person["display_name"], **{"class": group["name"]})]
        return confirm_page(_("Take %(name)s out of %(class)s?", name=person["display_name"],
                              **{"class": group["name"]}), losses,
                            _("Yes, take %(name)s out", name=person["display_name"]), back,
                            _("Their account, progress and attendance are kept; you can add them "
                              "back at any time."))
    try:
        accounts.remove_member(db, class_uuid, user_uuid)
    except PasserelleError:
        pass  # already out: the person sees the class as it is
    flash(_("%(name)s is no longer in %(class)s.", name=person["display_name"],
            **{"class": group["name"]}))
    return redirect(back)


@bp.post("/manage/classes/<class_uuid>/sessions")
@allow(*STAFF)
def manage_session_open(class_uuid: str):
    db = get_db()
    _managed_class(db, class_uuid)
    form = request.form
    try:
        session_uuid = accounts.open_session(
            db, class_uuid, current_user()["uuid"], date=form.get("date", ""),
            place=form.get("place", ""), partner=form.get("partner", ""), topic=form.get("topic", ""))
    except InvalidInput:
        flash(_("Choose the day of the session: nothing was created."))
        return redirect(url_for("kiosk.manage_class", class_uuid=class_uuid) + "#sessions-title")
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
    home = current_app.config["HOME"]
    packs = library().list()
    installed = {p.id for p in packs}
    drives, channels = content_admin.scan_drives(settings["usb_roots"])
    return render_template("manage/content.html", packs=packs,
                           binned=content_admin.binned_packs(home, installed),
                           bundled_missing=len(content_admin.bundled_folders()) > 0 and any(
                               f.name not in installed for f in content_admin.bundled_folders()),
                           drives=drives, kolibri=channels,
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


def _channel_on_drive(path: str, channel_id: str):
    """The Kolibri channel still on a mounted drive, else None (the coordinator is told why)."""
    from passerelle.server.packs import imports as content_admin

    channel = content_admin.kolibri_channel(current_app.config["SETTINGS"]["usb_roots"], path, channel_id)
    if channel is None:
        flash(_("That channel is no longer on the drive. Is the USB stick still plugged in?"))
    return channel


@bp.get("/manage/content/kolibri")
@allow("coordinator")
def manage_kolibri_topics():
    """A Kolibri channel on a drive: its topics, each with its size, to tick before importing."""
    from passerelle import content as lib
    from passerelle.server.packs import imports as content_admin

    path, channel_id = request.args.get("path", ""), request.args.get("channel", "")
    channel = _channel_on_drive(path, channel_id)
    if channel is None:
        return redirect(url_for("kiosk.manage_content"))
    try:
        topics = content_admin.kolibri_topics(path, channel_id)
    except lib.ContentError as exc:
        flash(exc.message)
        return redirect(url_for("kiosk.manage_content"))
    from flask_babel import get_locale
    from passerelle.kiosk import size_units

    return render_template("manage/kolibri.html", path=path, channel=channel, topics=topics,
                           size_units=size_units(), lang=str(get_locale()).replace("_", "-"))


@bp.post("/manage/content/kolibri")
@allow("coordinator")
def manage_kolibri_import():
    from passerelle.server.packs import imports as content_admin

    path, channel_id = request.form.get("path", ""), request.form.get("channel", "")
    channel = _channel_on_drive(path, channel_id)
    if channel is None:
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


@bp.route("/manage/content/<pack_id>/remove", methods=["GET", "POST"])
@allow("coordinator")
def manage_content_remove(pack_id: str):
    from passerelle import content as lib
    from passerelle.server.packs import imports as content_admin
    from passerelle.server.packs.web import library

    try:
        info = library().get(pack_id)
    except lib.PackNotFound:
        abort(404)
    if request.method == "GET":
        return confirm_page(
            _("Remove %(name)s?", name=info.title),
            [_("Learners will no longer find %(name)s in the library, in search or in their "
               "lessons.", name=info.title),
             _("Lessons that use it show its resources as missing until it is back.")],
            _("Yes, remove %(name)s", name=info.title), url_for("kiosk.manage_content"),
            _("Learners' progress is kept, and the pack waits in the bin on the Content page: "
              "putting it back takes one click."))
    try:
        content_admin.remove_to_bin(library(), current_app.config["HOME"], pack_id)
    except lib.LibraryBusy:
        flash(_("An import is running; remove the pack when it has finished."))
    except lib.PackNotFound:
        abort(404)
    else:
        flash(_("%(name)s was removed. It is in the bin below.", name=info.title))
    return redirect(url_for("kiosk.manage_content") + "#bin")


@bp.post("/manage/content/bin/<pack_id>/restore")
@allow("coordinator")
def manage_content_restore(pack_id: str):
    from passerelle import content as lib
    from passerelle.server.packs import imports as content_admin

    try:
        content_admin.restore_from_bin(current_app.config["HOME"], content_admin.runner(), pack_id)
    except lib.PackNotFound:
        flash(_("That pack is no longer in the bin."))
    else:
        flash(_("The pack is being imported. You can follow it below."))
    return redirect(url_for("kiosk.manage_content"))


@bp.route("/manage/content/bin/empty", methods=["GET", "POST"])
@allow("coordinator")
def manage_content_empty_bin():
    from passerelle.server.packs import imports as content_admin

    home = current_app.config["HOME"]
    if request.method == "GET":
        names = [p["title"] for p in content_admin.binned_packs(home)]
        return confirm_page(_("Empty the bin?"), [
            _("These packs will be deleted for good: %(names)s.", names=", ".join(names) or "—")],
            _("Yes, empty the bin"), url_for("kiosk.manage_content"),
            _("Learners' progress is kept; a pack can always be imported again from a file."))
    content_admin.empty_bin(home)
    flash(_("The bin is empty."))
    return redirect(url_for("kiosk.manage_content"))


@bp.post("/manage/content/bundled")
@allow("coordinator")
def manage_content_bundled():
    """Put back the library that ships with Passerelle (after a removal, or on a bare box)."""
    from passerelle.server.packs import imports as content_admin
    from passerelle.server.packs.web import library

    installed = {p.id for p in library().list()}
    jobs = content_admin.reinstall_bundled(current_app.config["HOME"], content_admin.runner(),
                                           installed)
    if jobs:
        flash(_("The pack is being imported. You can follow it below."))
    else:
        flash(_("Every pack of the bundled library is already installed."))
    return redirect(url_for("kiosk.manage_content"))


@bp.get("/manage/content/<pack_id>")
@allow("coordinator")
def manage_content_pack(pack_id: str):
    """What is inside a pack: its topics and resources, as learners will see them."""
    from passerelle import content as lib
    from passerelle.server.packs.web import library

    try:
        info = library().get(pack_id)
    except lib.PackNotFound:
        abort(404)
    found = catalogue.tree(get_db(), pack_id)
    return render_template("manage/pack.html", pack=info, tree=found[0] if found else None)


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

def _flatten(nodes: list[dict], into: dict) -> dict:
    for n in nodes:
        if n.get("kind") == "topic" or "node_id" not in n:
            _flatten(n["children"], into)
        else:
            into[f"{n['pack_id']}/{n['node_id']}"] = n
    return into


def _lesson_builder(db, lesson: dict | None):
    """The lesson builder, without JavaScript: the chosen resources travel in the form, in
    order, and each button (add, up, down, remove, save) sends the whole form back."""
    from passerelle.server.learning import lessons

    form = request.form
    tree = catalogue.tree(db)
    known = _flatten(tree, {})
    errors, status = {}, 200
    if request.method == "POST":
        # Unknown items go to the service as they came, which names what is not installed.
        items = list(dict.fromkeys(form.getlist("item")))
        added = [a for a in form.getlist("add") if a in known and a not in items]
        action = form.get("action", "save")
        verb, _colon, where = action.partition(":")
        index = int(where) if where.isdigit() else -1
        if verb == "up" and 0 < index < len(items):
            items[index - 1], items[index] = items[index], items[index - 1]
        elif verb == "down" and 0 <= index < len(items) - 1:
            items[index + 1], items[index] = items[index], items[index + 1]
        elif verb == "remove" and 0 <= index < len(items):
            items.pop(index)
        else:
            items += added
        if verb == "save":
            chosen = [{"pack_id": i.partition("/")[0], "node_id": i.partition("/")[2]}
                      for i in items]
            try:
                if lesson is None:
                    lesson_uuid = lessons.create_lesson(
                        db, form.get("title", ""), chosen, current_user()["uuid"],
                        form.get("description", ""))
                else:
                    lesson_uuid = lesson["uuid"]
                    lessons.update_lesson(db, lesson_uuid, form.get("title", ""), chosen,
                                          form.get("description", ""))
            except InvalidInput as exc:
                errors, status = exc.details or {}, 400
            else:
                flash(_("The lesson %(title)s is saved.", title=form.get("title", "").strip()))
                return redirect(url_for("kiosk.manage_lessons", saved=lesson_uuid) + "#saved")
        values = {"title": form.get("title", ""), "description": form.get("description", "")}
    else:
        items = [f"{i['pack_id']}/{i['node_id']}" for i in (lesson or {}).get("items", [])
                 if f"{i['pack_id']}/{i['node_id']}" in known]
        values = {"title": (lesson or {}).get("title", ""),
                  "description": (lesson or {}).get("description", "")}
    chosen = [{"key": i, **known[i]} for i in items if i in known]
    return render_template("manage/lesson_builder.html", lesson=lesson, tree=tree, chosen=chosen,
                           values=values, errors=errors), status


@bp.route("/manage/lessons", methods=["GET", "POST"])
@allow(*STAFF)
def manage_lessons():
    from passerelle.server.learning import lessons

    db = get_db()
    if request.method == "POST":
        return _lesson_builder(db, None)
    saved = request.args.get("saved")
    saved_lesson = next((x for x in lessons.lessons(db) if x["uuid"] == saved), None)
    return render_template("manage/lessons.html", lessons=lessons.lessons(db),
                           saved=saved_lesson, classes=accounts.classes_of(db, current_user()))


@bp.route("/manage/lessons/new", methods=["GET", "POST"])
@allow(*STAFF)
def manage_lesson_new():
    return _lesson_builder(get_db(), None)


@bp.route("/manage/lessons/<lesson_uuid>/edit", methods=["GET", "POST"])
@allow(*STAFF)
def manage_lesson_edit(lesson_uuid: str):
    from passerelle.server.learning import lessons

    db = get_db()
    return _lesson_builder(db, lessons.get_lesson(db, lesson_uuid))


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
