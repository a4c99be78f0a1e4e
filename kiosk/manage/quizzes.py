"""Quizzes that assess: the builder (no JavaScript), starting one for learners, ending it, and
its report (printable on A4, and as a spreadsheet).

The builder works like the lesson builder: the chosen questions travel in the form, each
with its section (``item`` = ``<section>|<pack>/<node>#<question>``), and every button
(add, up, down, replace, remove, new section, save) sends the whole form back.
"""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from passerelle.kiosk import bp
from passerelle.kiosk.manage.common import STAFF, confirm_page, managed_class
from passerelle.kiosk.quiz import shown
from passerelle.server.db import get_db
from passerelle.server.errors import InvalidInput
from passerelle.server.learning import lessons, quizzes
from passerelle.server.people import accounts
from passerelle.server.web.auth import allow, current_user

ATTEMPT_CHOICES = (1, 2, 3, 5, 10, 0)  # 0: no limit


@bp.get("/manage/quizzes")
@allow(*STAFF)
def manage_quizzes():
    db = get_db()
    classes = accounts.classes_of(db, current_user())
    names = {c["uuid"]: c["name"] for c in classes}
    runs = quizzes.runs_of(db, list(names))
    counts = quizzes.submitted(db, [r["uuid"] for r in runs])
    for run in runs:
        run["class_name"] = names.get(run["class_uuid"], "")
        run["submitted"] = counts.get(run["uuid"], 0)
    return render_template("manage/quizzes.html", quizzes=quizzes.quizzes(db), runs=runs,
                           classes=classes)


def _sections_from_form(form) -> tuple[list[dict], list[tuple[int, str]]]:
    titles = form.getlist("section_title") or [""]
    sections = [{"title": t} for t in titles]
    chosen: list[tuple[int, str]] = []
    for raw in form.getlist("item"):
        number, _bar, key = raw.partition("|")
        if number.isdigit() and int(number) < len(sections) and key not in {k for _n, k in chosen}:
            chosen.append((int(number), key))
    return sections, chosen


def _move(chosen: list[tuple[int, str]], index: int, step: int, sections: int) -> None:
    """Up or down one place; past the first or last of its section, into the next section."""
    number, key = chosen[index]
    other = index + step
    if 0 <= other < len(chosen) and chosen[other][0] == number:
        chosen[index], chosen[other] = chosen[other], chosen[index]
    elif 0 <= number + step < sections:
        chosen[index] = (number + step, key)


def _builder(db, quiz: dict | None):
    form = request.form
    available = quizzes.available(db)
    known = {q["key"]: q for q in available}
    errors, status = {}, 200
    find = form.get("find", "").strip()[:100]
    if request.method == "POST":
        sections, chosen = _sections_from_form(form)
        verb, _colon, where = form.get("action", "save").partition(":")
        index = int(where) if where.isdigit() and int(where) < len(chosen) else -1
        if verb in ("up", "down") and index >= 0:
            _move(chosen, index, -1 if verb == "up" else 1, len(sections))
        elif verb == "remove" and index >= 0:
            chosen.pop(index)
        elif verb == "replace" and index >= 0:
            other = quizzes.replacement(db, [k for _n, k in chosen], chosen[index][1])
            if other is None:
                errors["questions"] = _("This exercise has no other question to put in its place.")
            else:
                chosen[index] = (chosen[index][0], other)
        elif verb == "section" and len(sections) < quizzes.MAX_SECTIONS:
            sections.append({"title": ""})
        elif verb in ("add", "save"):
            target = form.get("to", type=int)
            target = target if target is not None and 0 <= target < len(sections) else len(sections) - 1
            keys = {k for _n, k in chosen}
            chosen += [(target, k) for k in dict.fromkeys(form.getlist("add"))
                       if k in known and k not in keys]
        chosen.sort(key=lambda c: c[0])  # stable: each section keeps its order
        for number, section in enumerate(sections):
            section["questions"] = [k for n, k in chosen if n == number]
        values = {"title": form.get("title", ""), "shuffle": form.get("shuffle") == "1"}
        if verb == "save":
            try:
                if quiz is None:
                    quizzes.create_quiz(db, values["title"], sections, values["shuffle"],
                                        current_user()["uuid"])
                else:
                    quizzes.update_quiz(db, quiz["uuid"], values["title"], sections,
                                        values["shuffle"])
            except InvalidInput as exc:
                errors, status = exc.details or {}, 400
            else:
                flash(_("The quiz %(title)s is saved.", title=values["title"].strip()))
                return redirect(url_for("kiosk.manage_quizzes"))
    else:
        sections = quizzes.section_keys(quiz) if quiz else [{"title": "", "questions": []}]
        values = {"title": (quiz or {}).get("title", ""), "shuffle": bool((quiz or {}).get("shuffle"))}
    position = 0
    for section in sections:
        listed = []
        for key in section["questions"]:
            listed.append({"key": key, "index": position, "known": key in known,
                           **known.get(key, {"exercise": key, "prompt": ""})})
            position += 1
        section["listed"] = listed
    # A box with whole Khan Academy channels holds thousands of questions: a few words narrow
    # the list (the "find" button sends the whole form back, like every other button).
    shown_questions = quizzes.matching(available, find)
    return render_template("manage/quiz_builder.html", quiz=quiz, values=values, sections=sections,
                           available=shown_questions, find=find, total=len(available),
                           errors=errors, count=position), status


@bp.route("/manage/quizzes/new", methods=["GET", "POST"])
@allow(*STAFF)
def manage_quiz_new():
    return _builder(get_db(), None)


@bp.route("/manage/quizzes/<quiz_uuid>/edit", methods=["GET", "POST"])
@allow(*STAFF)
def manage_quiz_edit(quiz_uuid: str):
    db = get_db()
    return _builder(db, quizzes.get_quiz(db, quiz_uuid))


@bp.route("/manage/quizzes/<quiz_uuid>/delete", methods=["GET", "POST"])
@allow(*STAFF)
def manage_quiz_delete(quiz_uuid: str):
    db = get_db()
    quiz = quizzes.get_quiz(db, quiz_uuid)
    if request.method == "GET":
        title = quiz["title"]
        return confirm_page(
            _("Delete the quiz %(title)s?", title=title),
            [_("%(title)s disappears from your quizzes: nobody can start it again.", title=title)],
            _("Yes, delete %(title)s", title=title), url_for("kiosk.manage_quizzes"),
            _("The quizzes already started keep their questions, answers and reports."))
    quizzes.delete_quiz(db, quiz_uuid)
    flash(_("The quiz %(title)s is deleted.", title=quiz["title"]))
    return redirect(url_for("kiosk.manage_quizzes"))


@bp.get("/manage/quizzes/<quiz_uuid>/start")
@allow(*STAFF)
def manage_quiz_start_for(quiz_uuid: str):
    """The class chosen in a list (for staff with many classes): on to that class's form."""
    class_uuid = request.args.get("class_uuid", "")
    if not class_uuid:
        return redirect(url_for("kiosk.manage_quizzes"))
    return redirect(url_for("kiosk.manage_quiz_start", quiz_uuid=quiz_uuid, class_uuid=class_uuid))


@bp.route("/manage/quizzes/<quiz_uuid>/start/<class_uuid>", methods=["GET", "POST"])
@allow(*STAFF)
def manage_quiz_start(quiz_uuid: str, class_uuid: str):
    db = get_db()
    quiz = quizzes.get_quiz(db, quiz_uuid)
    group = managed_class(db, class_uuid)
    learners = accounts.members(db, class_uuid)
    groups = lessons.groups_of(db, class_uuid)
    error, status = None, 200
    if request.method == "POST":
        who = request.form.get("who", "class")
        attempts = request.form.get("attempts", type=int)
        try:
            run = quizzes.start(
                db, quiz_uuid, class_uuid, current_user()["uuid"],
                group_uuid=(request.form.get("group_uuid") or None) if who == "group" else None,
                learners=request.form.getlist("learner") if who == "learners" else None,
                attempts=attempts if attempts in ATTEMPT_CHOICES else 1)
        except InvalidInput as exc:
            details = exc.details or {}
            error = (_("Choose a group of this class.") if "group" in details else
                     _("Tick at least one learner.") if "learners" in details else str(exc))
            status = 400
        else:
            flash(_("The quiz %(title)s is open for %(class)s.", title=quiz["title"],
                    **{"class": group["name"]}))
            return redirect(url_for("kiosk.manage_quiz_run", run_uuid=run))
    return render_template("manage/quiz_start.html", quiz=quiz, group=group, learners=learners,
                           groups=groups, error=error, choices=ATTEMPT_CHOICES,
                           form=request.form), status


def _run(db, run_uuid: str) -> dict:
    run = quizzes.get_run(db, run_uuid)
    run["class"] = managed_class(db, run["class_uuid"])
    return run


@bp.get("/manage/quiz-runs/<run_uuid>")
@allow(*STAFF)
def manage_quiz_run(run_uuid: str):
    db = get_db()
    run = _run(db, run_uuid)
    found = quizzes.report(db, run_uuid)
    for q in found.most_missed:
        values = quizzes.seen(q["values"])
        q["shown"] = shown(q["question"], values, prefix=f"m{q['item']}-", disabled=True)
    target = run["target"] or {"type": "class"}
    group_name = None
    if target["type"] == "group":
        group_name = next((g["name"] for g in lessons.groups_of(db, run["class_uuid"])
                           if g["uuid"] == target["group_uuid"]), "?")
    return render_template("manage/report_quiz.html", run=run, report=found, target=target,
                           group_name=group_name)


@bp.get("/manage/quiz-runs/<run_uuid>/report.csv")
@allow(*STAFF)
def manage_quiz_run_csv(run_uuid: str):
    db = get_db()
    run = _run(db, run_uuid)
    name = "quiz-" + "".join(c if c.isascii() and c.isalnum() else "-" for c in run["title"])[:40] + ".csv"
    return Response(quizzes.report_csv(quizzes.report(db, run_uuid)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


@bp.post("/manage/quiz-runs/<run_uuid>/<any(open, close):action>")
@allow(*STAFF)
def manage_quiz_run_open(run_uuid: str, action: str):
    db = get_db()
    run = _run(db, run_uuid)
    quizzes.set_open(db, run_uuid, action == "open")
    flash(_("The quiz %(title)s is open again.", title=run["title"]) if action == "open"
          else _("The quiz %(title)s has ended: learners can no longer submit.", title=run["title"]))
    return redirect(url_for("kiosk.manage_quiz_run", run_uuid=run_uuid))
