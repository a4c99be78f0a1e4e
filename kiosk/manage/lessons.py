"""Lessons (the builder without JavaScript), assignments to classes and groups."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from passerelle.kiosk import bp
from passerelle.kiosk.manage.common import (
    STAFF,
    managed_class,
)
from passerelle.server.db import get_db
from passerelle.server.errors import InvalidInput
from passerelle.server.packs import catalogue
from passerelle.server.people import accounts
from passerelle.server.web.auth import (
    allow,
    current_user,
)

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
    from passerelle.kiosk import zim_pages
    from passerelle.server.learning import lessons

    form = request.form
    tree = catalogue.tree(db)
    known = _flatten(tree, {})
    known.update(zim_pages.lesson_articles(db, lesson, form.getlist("item")))  # ZIM articles
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
    managed_class(db, class_uuid)
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
    managed_class(db, assignment["class_uuid"])
    lessons.set_open(db, assignment_uuid, action == "open")
    return redirect(url_for("kiosk.manage_class", class_uuid=assignment["class_uuid"]) + "#assignments")


@bp.post("/manage/classes/<class_uuid>/groups")
@allow(*STAFF)
def manage_group_create(class_uuid: str):
    from passerelle.server.learning import lessons

    db = get_db()
    managed_class(db, class_uuid)
    try:
        group = lessons.create_group(db, class_uuid, request.form.get("name", ""))
        for learner in request.form.getlist("learner"):
            lessons.set_group_member(db, group, learner, True)
    except InvalidInput:
        flash(_("Give the group a name."))
    return redirect(url_for("kiosk.manage_class", class_uuid=class_uuid) + "#groups")
