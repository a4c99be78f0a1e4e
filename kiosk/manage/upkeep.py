"""Class and group upkeep: rename a class, put it in the bin and back, copy it for a new term;
rename a group, change who is in it, remove it. Every page works without JavaScript; a
destructive action first shows what it does (``confirm_page``)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from passerelle.kiosk import bp
from passerelle.kiosk.manage.common import STAFF, confirm_page, managed_class
from passerelle.server import records
from passerelle.server.db import get_db
from passerelle.server.errors import InvalidInput
from passerelle.server.learning import lessons, upkeep
from passerelle.server.people import accounts
from passerelle.server.web.auth import allow, current_user, require


@bp.route("/manage/classes/<class_uuid>/edit", methods=["GET", "POST"])
@allow(*STAFF)
def manage_class_edit(class_uuid: str):
    db = get_db()
    group = managed_class(db, class_uuid)
    errors, status = {}, 200
    values = {"name": group["name"], "description": group.get("description") or ""}
    if request.method == "POST":
        values = {"name": request.form.get("name", ""),
                  "description": request.form.get("description", "")}
        try:
            upkeep.rename_class(db, class_uuid, values["name"], values["description"])
        except InvalidInput as exc:
            errors, status = exc.details or {}, 400
        else:
            flash(_("The class is now called %(name)s.", name=values["name"].strip()))
            return redirect(url_for("kiosk.manage_class", class_uuid=class_uuid))
    return render_template("manage/class_edit.html", group=group, values=values,
                           errors=errors), status


@bp.route("/manage/classes/<class_uuid>/delete", methods=["GET", "POST"])
@allow(*STAFF)
def manage_class_delete(class_uuid: str):
    db = get_db()
    group = managed_class(db, class_uuid)
    name = group["name"]
    if request.method == "GET":
        return confirm_page(
            _("Delete the class %(name)s?", name=name),
            [_("%(name)s disappears from the class lists, the sign-in page and the staff home.",
               name=name),
             _("Its learners no longer see the lessons assigned to %(name)s.", name=name)],
            _("Yes, delete %(name)s", name=name),
            url_for("kiosk.manage_class", class_uuid=class_uuid),
            _("Its learners, their progress, the attendance and the reports are kept: the bin "
              "on the Classes page puts %(name)s back in one click.", name=name))
    upkeep.delete_class(db, class_uuid)
    flash(_("The class %(name)s is in the bin.", name=name))
    return redirect(url_for("kiosk.manage_classes") + "#bin")


@bp.post("/manage/classes/<class_uuid>/restore")
@allow(*STAFF)
def manage_class_restore(class_uuid: str):
    db = get_db()
    if records.load(db, "class", class_uuid) is not None:
        managed_class(db, class_uuid)  # back already (two clicks, or another box)
    else:
        require(upkeep.may_restore(db, current_user(), class_uuid))
    group = upkeep.restore_class(db, class_uuid)
    flash(_("%(name)s is back, with its learners and lessons.", name=group["name"]))
    return redirect(url_for("kiosk.manage_class", class_uuid=class_uuid))


@bp.route("/manage/classes/<class_uuid>/copy", methods=["GET", "POST"])
@allow(*STAFF)
def manage_class_copy(class_uuid: str):
    """The same class for a new term: same facilitators, and if wanted the same learners and
    lessons, under a new name."""
    db = get_db()
    group = managed_class(db, class_uuid)
    errors, status = {}, 200
    form = request.form
    if request.method == "POST":
        try:
            new = upkeep.copy_class(db, class_uuid, form.get("name", ""), current_user()["uuid"],
                                    learners=form.get("learners") == "1",
                                    lessons_too=form.get("lessons") == "1")
        except InvalidInput as exc:
            errors, status = exc.details or {}, 400
        else:
            flash(_("%(name)s is ready for the new term.", name=form.get("name", "").strip()))
            return redirect(url_for("kiosk.manage_class", class_uuid=new))
    return render_template("manage/class_copy.html", group=group, errors=errors, form=form,
                           posted=request.method == "POST"), status


# --- Groups ---------------------------------------------------------------------------------

def _managed_group(db, group_uuid: str) -> tuple[dict, dict]:
    found = lessons.get_group(db, group_uuid)
    return found, managed_class(db, found["class_uuid"])


@bp.route("/manage/groups/<group_uuid>", methods=["GET", "POST"])
@allow(*STAFF)
def manage_group(group_uuid: str):
    """A group: its name and who is in it, in one form."""
    db = get_db()
    found, group = _managed_group(db, group_uuid)
    errors, status = {}, 200
    members = lessons.group_members(db, group_uuid)
    name = found["name"]
    if request.method == "POST":
        name = request.form.get("name", "")
        members = set(request.form.getlist("learner"))
        try:
            with records.write_tx(db):  # the name and the members together, or neither
                lessons.rename_group(db, group_uuid, name)
                lessons.set_group_members(db, group_uuid, sorted(members))
        except InvalidInput as exc:
            errors, status = exc.details or {}, 400
        else:
            flash(_("The group %(name)s is saved.", name=name.strip()))
            return redirect(url_for("kiosk.manage_class", class_uuid=group["uuid"]) + "#groups")
    return render_template("manage/group.html", found=found, group=group, name=name,
                           members=members, learners=accounts.members(db, group["uuid"]),
                           errors=errors), status


@bp.route("/manage/groups/<group_uuid>/delete", methods=["GET", "POST"])
@allow(*STAFF)
def manage_group_delete(group_uuid: str):
    db = get_db()
    found, group = _managed_group(db, group_uuid)
    back = url_for("kiosk.manage_class", class_uuid=group["uuid"]) + "#groups"
    if request.method == "GET":
        return confirm_page(
            _("Delete the group %(name)s?", name=found["name"]),
            [_("The lessons assigned to this group are closed.")],
            _("Yes, delete %(name)s", name=found["name"]), back,
            _("Its learners stay in %(class)s, with their progress.", **{"class": group["name"]}))
    lessons.delete_group(db, group_uuid)
    flash(_("The group %(name)s is deleted.", name=found["name"]))
    return redirect(back)
