"""The staff home, classes, their facilitators and learners, sessions and attendance, the
class grid and one learner's page."""

from __future__ import annotations

from datetime import date

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from passerelle.kiosk import bp
from passerelle.kiosk.manage.common import (
    STAFF,
    confirm_page,
    managed_class,
    people_context,
    person_from_form,
)
from passerelle.server import disk
from passerelle.server.db import get_db
from passerelle.server.errors import InvalidInput, PasserelleError
from passerelle.server.people import accounts
from passerelle.server.web.auth import (
    allow,
    current_user,
    require,
)

ADDABLE_SHOWN = 60


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
    from passerelle.server.learning import upkeep

    return render_template("manage/classes.html", classes=accounts.classes_of(db, current_user()),
                           removed=upkeep.removed_classes(db, current_user()),
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
    managed_class(db, class_uuid)
    added = _add_facilitators(db, class_uuid, request.form.getlist("facilitator"))
    if added:
        flash(_("Now facilitating this class: %(names)s.", names=", ".join(added)))
    else:
        flash(_("Tick at least one facilitator."))
    return redirect(url_for("kiosk.manage_class", class_uuid=class_uuid) + "#facilitators")


@bp.route("/manage/classes/<class_uuid>", methods=["GET", "POST"])
@allow(*STAFF)
def manage_class(class_uuid: str):
    db = get_db()
    group = managed_class(db, class_uuid)
    errors, status = {}, 200
    if request.method == "POST":  # a new learner, straight into this class
        form = request.form.copy()
        form["role"] = "learner"
        try:
            learner = accounts.create_user(db, **person_from_form(form, people_context(db)["mode"]))
            accounts.enrol(db, current_user(), class_uuid, learner)
        except InvalidInput as exc:
            errors, status = exc.details or {}, 400
        else:
            flash(_("%(name)s was added.", name=request.form.get("display_name")))
            return redirect(url_for("kiosk.manage_class", class_uuid=class_uuid))
    learners = accounts.members(db, class_uuid)
    # Only those this person may add: a facilitator never sees other classes' learners here.
    others = accounts.enrollable_learners(db, current_user(), class_uuid)
    # A coordinator may add anyone of thousands: a few letters narrow the list, which shows
    # at most a page of names.
    find = request.args.get("find", "").strip()[:80]
    if find:
        others = [o for o in others if accounts.holds_words(find, o["display_name"], o.get("username") or "")]
    others_total = len(others)
    others = others[:ADDABLE_SHOWN]
    facilitators = accounts.members(db, class_uuid, "facilitator")
    on_class = {f["uuid"] for f in facilitators}
    from passerelle.server.learning import lessons

    return render_template("manage/class.html", group=group, learners=learners, others=others,
                           others_total=others_total, find=find,
                           facilitators=facilitators,
                           other_facilitators=[f for f in accounts.list_users(db, "facilitator")
                                               if f["uuid"] not in on_class],
                           sessions=accounts.sessions_of_class(db, class_uuid),
                           assignments=lessons.assignments_of_class(db, class_uuid),
                           lessons=lessons.lessons(db), groups=lessons.groups_of(db, class_uuid),
                           today=date.today().isoformat(), errors=errors, form=request.form, **people_context(db)), status


@bp.post("/manage/classes/<class_uuid>/members")
@allow(*STAFF)
def manage_class_add(class_uuid: str):
    """Many learners at once: one form, one checkbox each."""
    db = get_db()
    managed_class(db, class_uuid)
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


@bp.route("/manage/classes/<class_uuid>/members/<user_uuid>/remove", methods=["GET", "POST"])
@allow(*STAFF)
def manage_class_remove(class_uuid: str, user_uuid: str):
    db = get_db()
    group = managed_class(db, class_uuid)
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
    managed_class(db, class_uuid)
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
    group = managed_class(db, meeting["class_uuid"])
    return render_template("manage/session.html", meeting=meeting, group=group,
                           learners=accounts.members(db, group["uuid"]),
                           present=accounts.attendance(db, session_uuid))


@bp.post("/manage/sessions/<session_uuid>/attendance/<learner_uuid>")
@allow(*STAFF)
def manage_attendance(session_uuid: str, learner_uuid: str):
    db = get_db()
    meeting = accounts.get_session(db, session_uuid)
    managed_class(db, meeting["class_uuid"])
    accounts.mark_attendance(db, session_uuid, learner_uuid, request.form.get("present") == "1")
    return redirect(url_for("kiosk.manage_session", session_uuid=session_uuid) + f"#p-{learner_uuid}")


# The class grid and one learner's page are coach reports: kiosk/manage/coach.py.
