"""Facilitators' own material: write an article, upload a file, compose a quiz."""

from __future__ import annotations

import uuid

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from passerelle import content as lib
from passerelle.kiosk import bp
from passerelle.server.db import get_db
from passerelle.server.errors import InvalidInput
from passerelle.server.packs import authoring
from passerelle.server.packs.web import library
from passerelle.server.people import accounts
from passerelle.server.web.auth import allow
from passerelle.server.web.security import body_limit

STAFF = accounts.STAFF
MAX_QUESTIONS = 10


def _root():
    db = get_db()
    org = accounts.organisation(db) or {}
    languages = org.get("languages") or [current_app.config["SETTINGS"]["default_language"]]
    return authoring.ensure(current_app.config["HOME"], authoring.pack_id(db),
                            org.get("name", "Passerelle"), languages[0])


def _publish(root, what: str, added: str | None = None) -> str | None:
    """Publish the folder; the problem of the item just ``added`` if it could not be.

    That item is deleted again (its form comes back with the problem, nothing is lost);
    any other item that stops the build is set aside and named, and the rest is published.
    """
    try:
        published = authoring.publish(root, library(), current_app.config["HOME"].tmp / "authoring")
    except lib.LibraryBusy:
        flash(_("An import is running; your material is saved and will appear after the next change."))
    except lib.ContentError as exc:
        current_app.logger.error("local pack could not be built: %s", exc)
        flash(_("The material could not be published: %(problem)s", problem=str(exc)))
    else:
        refused = published.set_aside.pop(added, None) if added else None
        if refused is not None:
            authoring.remove(root, added)
        if published.set_aside:
            titles = {i["stem"]: i["title"] for i in authoring.items(current_app.config["HOME"],
                                                                     authoring.pack_id(get_db()))}
            flash(_("Set aside, not published: %(items)s",
                    items=", ".join(titles.get(s, s) for s in published.set_aside)))
        if refused is not None:
            return refused
        flash(what)
    return None


def _refused(problem: str, field: str):
    """The form again, with what stopped the item just added."""
    return _again(InvalidInput(problem, details={
        field: _("It could not be published: %(problem)s", problem=problem)}))


@bp.get("/manage/material")
@allow(*STAFF)
def manage_material():
    local = authoring.pack_id(get_db())
    return render_template("manage/material.html",
                           items=authoring.items(current_app.config["HOME"], local),
                           pack_id=local, errors={}, form={},
                           questions=range(MAX_QUESTIONS))


@bp.post("/manage/material/article")
@allow(*STAFF)
def manage_material_article():
    root = _root()
    try:
        stem = authoring.add_article(root, request.form.get("title", ""), request.form.get("body", ""))
    except InvalidInput as exc:
        return _again(exc)
    problem = _publish(root, _("The article was added."), stem)
    if problem is not None:
        return _refused(problem, "body")
    return redirect(url_for("kiosk.manage_material"))


@bp.post("/manage/material/file")
@allow(*STAFF)
@body_limit("max_upload_mb")
def manage_material_file():
    root = _root()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _again(InvalidInput(_("Choose a file."), details={"file": _("Choose a file.")}))
    work = current_app.config["HOME"].tmp / "authoring"
    work.mkdir(parents=True, exist_ok=True)
    saved = work / uuid.uuid4().hex
    upload.save(saved)
    try:
        duration = float(request.form.get("duration") or 0)
    except ValueError:
        duration = 0
    try:
        stem = authoring.add_file(root, request.form.get("title", ""), upload.filename, saved, duration)
    except InvalidInput as exc:
        saved.unlink(missing_ok=True)
        return _again(exc)
    problem = _publish(root, _("The file was added."), stem)
    if problem is not None:
        return _refused(problem, "file")
    return redirect(url_for("kiosk.manage_material"))


@bp.post("/manage/material/quiz")
@allow(*STAFF)
def manage_material_quiz():
    root = _root()
    questions = []
    for i in range(MAX_QUESTIONS):
        answer = request.form.get(f"q{i}_answer")
        questions.append({
            "prompt": request.form.get(f"q{i}_prompt", ""),
            "choices": [request.form.get(f"q{i}_choice{j}", "") for j in range(4)],
            "answer": int(answer) if answer and answer.isdigit() else None,
        })
    try:
        stem = authoring.add_quiz(root, request.form.get("title", ""), questions)
    except InvalidInput as exc:
        return _again(exc)
    problem = _publish(root, _("The quiz was added."), stem)
    if problem is not None:
        return _refused(problem, "questions")
    return redirect(url_for("kiosk.manage_material"))


@bp.post("/manage/material/remove")
@allow(*STAFF)
def manage_material_remove():
    """Remove one item, published or set aside, and publish the rest without it."""
    root = _root()
    stem = request.form.get("item", "")
    listed = {i["stem"]: i["title"] for i in authoring.items(current_app.config["HOME"],
                                                             authoring.pack_id(get_db()))}
    if stem not in listed or not authoring.remove(root, stem):
        abort(404)
    _publish(root, _("“%(title)s” was removed.", title=listed[stem]))
    return redirect(url_for("kiosk.manage_material"))


def problems(details: dict | None) -> list[str]:
    """"Field: what is wrong" lines, the field named as the form names it (not "questions[2]")."""
    names = {"title": _("Title"), "body": _("Text"), "file": _("File"), "questions": _("Questions")}
    lines = []
    for key, message in (details or {}).items():
        if key.startswith("questions[") and key.endswith("]") and key[10:-1].isdigit():
            name = _("Question %(n)s", n=int(key[10:-1]) + 1)
        else:
            name = names.get(key, key)
        lines.append(_("%(field)s: %(problem)s", field=name, problem=message))
    return lines


def _again(exc: InvalidInput):
    local = authoring.pack_id(get_db())
    return render_template("manage/material.html",
                           items=authoring.items(current_app.config["HOME"], local),
                           pack_id=local, errors=exc.details or {}, problems=problems(exc.details),
                           form=request.form, questions=range(MAX_QUESTIONS)), 400


@bp.route("/manage/material/quiz-from-exercises", methods=["GET", "POST"])
@allow(*STAFF)
def manage_material_quiz_from():
    """A quiz made of questions chosen from the installed exercises, fixed or shuffled."""
    available = authoring.exercise_questions(get_db())
    errors, status = {}, 200
    if request.method == "POST":
        by_key = {q["key"]: q["question"] for q in available}
        chosen = [by_key[k] for k in request.form.getlist("question") if k in by_key]
        root = _root()
        try:
            stem = authoring.add_quiz_from(root, request.form.get("title", ""), chosen,
                                           request.form.get("shuffle") == "1")
        except InvalidInput as exc:
            errors, status = exc.details or {}, 400
        else:
            problem = _publish(root, _("The quiz was added."), stem)
            if problem is None:
                return redirect(url_for("kiosk.manage_material"))
            errors = {"questions": _("It could not be published: %(problem)s", problem=problem)}
            status = 400
    return render_template("manage/quiz_from.html", available=available, errors=errors,
                           problems=problems(errors), form=request.form), status
