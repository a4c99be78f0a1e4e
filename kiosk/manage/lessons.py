"""Lessons (the builder without JavaScript), assignments to classes and groups."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from passerelle.kiosk import bp
from passerelle.kiosk.manage.common import (
    STAFF,
    confirm_page,
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

def flatten(nodes: list[dict], into: dict) -> dict:
    for n in nodes:
        if n.get("kind") == "topic" or "node_id" not in n:
            flatten(n["children"], into)
        else:
            into[f"{n['pack_id']}/{n['node_id']}"] = n
    return into


PICKER_LIMIT = 100  # resources a search of the picker lists (more: narrow it down)


def _topics(nodes: list[dict], depth: int = 0, into: list | None = None) -> list[dict]:
    """The topics of a pack, depth first, each with the keys of every resource under it."""
    into = [] if into is None else into
    for n in nodes:
        if n.get("kind") == "topic":
            entry = {"key": f"{n['pack_id']}/{n['node_id']}", "title": n["title"], "depth": depth,
                     "leaves": set(flatten(n["children"], {}))}
            into.append(entry)
            _topics(n["children"], depth + 1, into)
    return into


def resource_picker(tree: list[dict], known: dict, form) -> dict:
    """The resource picker's search and filters (words, kind, language, pack, topic): what was
    asked, the choices each filter offers, and the resources found (None: no filter, so the
    whole library is shown as a tree)."""
    from passerelle import search_index as si
    from passerelle.server.search import service as search

    asked = {k: (form.get(k) or "").strip()[:200] for k in ("q", "kind", "language", "pack", "topic")}
    if form.get("action") == "clear":
        asked = dict.fromkeys(asked, "")
    packs = [{"pack_id": p["pack_id"], "title": p["title"]} for p in tree]
    if asked["pack"] not in {p["pack_id"] for p in packs}:
        asked["pack"] = ""
    # Topics of the chosen pack (of the only one, when one is installed): a whole library's
    # topics would make a list no one can read.
    chosen_pack = asked["pack"] or (packs[0]["pack_id"] if len(packs) == 1 else "")
    topics = next((_topics(p["children"]) for p in tree if p["pack_id"] == chosen_pack), [])
    topic = next((t for t in topics if t["key"] == asked["topic"]), None)
    if topic is None:
        asked["topic"] = ""
    picker = {"asked": asked, "packs": packs, "topics": topics, "results": None, "error": None,
              "kinds": sorted({n["kind"] for n in known.values()}),
              "languages": sorted({n["language"] for n in known.values() if n.get("language")})}
    if not any(asked.values()):
        return picker
    found = list(known.items())
    if asked["q"]:
        try:
            hits = search.service().search(
                asked["q"], kinds=[asked["kind"]] if asked["kind"] else None,
                languages=[asked["language"]] if asked["language"] else None,
                packs=[asked["pack"]] if asked["pack"] else None, limit=PICKER_LIMIT)
        except si.SearchError:
            hits = None
            picker["error"] = _("These words cannot be searched: try other words.")
        ranked = [h.id for h in hits.hits] if hits else []
        found = [(key, known[key]) for key in ranked if key in known]
    found = [(key, n) for key, n in found
             if (not asked["kind"] or n["kind"] == asked["kind"])
             and (not asked["language"] or n.get("language") == asked["language"])
             and (not asked["pack"] or n["pack_id"] == asked["pack"])
             and (topic is None or key in topic["leaves"])]
    picker["results"] = [{"key": key, **n} for key, n in found[:PICKER_LIMIT]]
    picker["more"] = len(found) > PICKER_LIMIT
    return picker


def _lesson_builder(db, lesson: dict | None):
    """The lesson builder, without JavaScript: the chosen resources travel in the form, in
    order, and each button (add, up, down, remove, save) sends the whole form back."""
    from passerelle.server.learning import lessons

    form = request.form
    tree = catalogue.tree(db)
    known = flatten(tree, {})
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
                           values=values, errors=errors, picker=resource_picker(tree, known, form)), status


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
                       group_uuid=request.form.get("group_uuid") or None,
                       learners=request.form.getlist("learner") or None)
    except InvalidInput:
        flash(_("Choose a lesson (and, if you like, a group or learners of this class)."))
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


# --- A saved lesson: preview, copy to another class or group, delete -------------------------

@bp.get("/manage/lessons/<lesson_uuid>/preview")
@allow(*STAFF)
def manage_lesson_preview(lesson_uuid: str):
    """The lesson as a learner finds it on their home page, nothing started yet."""
    from passerelle.server.learning import lessons

    db = get_db()
    lesson = lessons.get_lesson(db, lesson_uuid)
    return render_template("manage/lesson_preview.html", lesson=lesson,
                           items=lessons.lesson_items(db, lesson))


def _destinations(db) -> list[tuple[str, str]]:
    """Where this person may put a copy of a lesson: each of their classes, and each group of
    them, as (value, words)."""
    from passerelle.server.learning import lessons

    found = []
    for group in accounts.classes_of(db, current_user()):
        found.append((f"class:{group['uuid']}", _("%(class)s (the whole class)",
                                                   **{"class": group["name"]})))
        for g in lessons.groups_of(db, group["uuid"]):
            found.append((f"group:{group['uuid']}:{g['uuid']}",
                          _("%(class)s, group %(group)s", group=g["name"], **{"class": group["name"]})))
    return found


@bp.route("/manage/lessons/<lesson_uuid>/copy", methods=["GET", "POST"])
@allow(*STAFF)
def manage_lesson_copy(lesson_uuid: str):
    """A copy of a lesson, of its own (changing it never changes the first), assigned at once
    to another class or group."""
    from passerelle.server.learning import lessons

    db = get_db()
    lesson = lessons.get_lesson(db, lesson_uuid)
    destinations = _destinations(db)
    errors, status = {}, 200
    if request.method == "POST":
        where = request.form.get("to", "")
        if where not in {value for value, _words in destinations}:
            errors["to"] = _("Choose a class or a group.")
            status = 400
        else:
            kind, _colon, rest = where.partition(":")
            class_uuid, _colon, group_uuid = rest.partition(":")
            managed_class(db, class_uuid)
            try:
                copy = lessons.copy_lesson(db, lesson_uuid, current_user()["uuid"],
                                           request.form.get("title"))
                lessons.assign(db, copy, class_uuid, current_user()["uuid"],
                               group_uuid=group_uuid or None)
            except InvalidInput as exc:
                errors, status = exc.details or {}, 400
            else:
                flash(_("A copy of %(title)s is assigned.", title=lesson["title"]))
                return redirect(url_for("kiosk.manage_class", class_uuid=class_uuid)
                                + "#assignments")
    return render_template("manage/lesson_copy.html", lesson=lesson, destinations=destinations,
                           errors=errors, form=request.form), status


@bp.route("/manage/lessons/<lesson_uuid>/delete", methods=["GET", "POST"])
@allow(*STAFF)
def manage_lesson_delete(lesson_uuid: str):
    from passerelle.server.learning import lessons

    db = get_db()
    lesson = lessons.get_lesson(db, lesson_uuid)
    if request.method == "GET":
        title = lesson["title"]
        return confirm_page(
            _("Delete the lesson %(title)s?", title=title),
            [_("%(title)s disappears from the lessons list and from every class it is assigned to.",
               title=title)],
            _("Yes, delete %(title)s", title=title), url_for("kiosk.manage_lessons"),
            _("What learners did with its resources is kept: their progress belongs to the "
              "resources, not to the lesson."))
    lessons.delete_lesson(db, lesson_uuid)
    flash(_("The lesson %(title)s is deleted.", title=lesson["title"]))
    return redirect(url_for("kiosk.manage_lessons"))
