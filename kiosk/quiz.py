"""A quiz a facilitator started, as a learner takes it: every question on one page, one submit.

Design
------
- **One form, no JavaScript.** The questions of the attempt are on one page, in sections, in
  the order drawn for this learner and attempt (``quizzes.order_for``); the learner submits once.
  A question left blank is asked about before submitting ("Submit anyway" keeps the answers
  given); an answer that cannot be read (letters in a number) comes back with the form.
- **Checked on the box**, by the exercise player's own reading and checking
  (``practice.read_answer``, ``check_answer``, Khan Academy's grading), then written by the
  one learning-event writer in one transaction (``quizzes.submit``). The form carries the
  attempt's number: submitting it twice records it once.
- **No right answers shown** to the learner: an assessment says the score, and what to do next.
"""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask_babel import gettext as _
from markupsafe import Markup
from passerelle.content import check_answer, render_generated
from passerelle.content.perseus import grade as perseus_grade
from passerelle.kiosk import bp
from passerelle.kiosk import perseus_view as pv
from passerelle.kiosk.markdown import render_markdown
from passerelle.kiosk.practice import NotAnAnswer, correct_answer, read_answer
from passerelle.server.db import get_db
from passerelle.server.errors import NotFound
from passerelle.server.learning import progress, quizzes
from passerelle.server.web.auth import allow, current_user


def _labels() -> dict:
    return {"choose_one": _("Choose one answer:"), "choose_all": _("Choose every right answer:"),
            "answer": _("Your answer")}


def shown(question: dict, values: dict | None, *, prefix: str = "", draft=None,
          disabled: bool = False) -> dict:
    """What a page shows of a question: its prompt (Khan Academy's with its fields in place,
    named with ``prefix``), its choices and, for staff, the right answer."""
    filled = render_generated(question, values) if values is not None else question
    if question["type"] == "perseus":
        prompt = pv.question_html(question, draft if isinstance(draft, dict) else None,
                                  disabled=disabled, labels=_labels(), prefix=prefix)
    else:
        prompt = render_markdown(filled.get("prompt", ""))
    try:
        right = correct_answer(question, filled)
    except (KeyError, IndexError, TypeError, ValueError):  # a question this box cannot grade
        right = []
    return {"prompt": Markup(prompt), "choices": question.get("choices") or [], "right": right,
            "type": question["type"], "numeric": question["type"] in ("numeric", "generated")}


def _blank(question: dict, form, name: str) -> bool:
    if question["type"] == "perseus":
        return not any(v.strip() for k in form if k.startswith(name + "-") for v in form.getlist(k))
    return not any(v.strip() for v in form.getlist(name))


def _draft(question: dict, form, name: str):
    if question["type"] == "perseus":
        return pv.read_form(question, form, name + "-")
    if question["type"] in ("single_choice", "multiple_choice"):
        return [int(v) for v in form.getlist(name) if v.isdigit()]
    return form.get(name, "")[:200]


def _page(db, run: dict, learner: dict, attempt: int, *, form=None, errors=None, blanks=(),
          status: int = 200):
    found = quizzes.questions_of(db, run)
    order = quizzes.order_for(run, learner["uuid"], attempt)
    sections, current = [], None
    for number, item in enumerate(order, start=1):
        facts = found.get(item["item"])
        if facts is None:
            continue  # its pack was removed: left out here, counted as not answered
        if current is None or current["number"] != item["section"]:
            current = {"number": item["section"], "title": item["section_title"], "questions": []}
            sections.append(current)
        question = facts["question"]
        name = f"a{item['item']}"
        values = quizzes.draw(question, run["uuid"], learner["uuid"], attempt, item["item"])
        draft = _draft(question, form, name) if form is not None else None
        current["questions"].append({
            "number": number, "name": name, "language": facts["language"], "draft": draft,
            "error": (errors or {}).get(item["item"]), "blank": item["item"] in blanks,
            **shown(question, values, prefix=name + "-", draft=draft)})
    return render_template("quiz.html", run=run, attempt=attempt, sections=sections,
                           count=sum(len(s["questions"]) for s in sections), errors=errors or {},
                           blanks=list(blanks), made=None), status


def _results(db, run: dict, learner: dict, just: int | None = None):
    made = quizzes.attempts_made(db, run["uuid"], learner["uuid"])
    left = quizzes.attempts_left(run, len(made))
    return render_template("quiz.html", run=run, made=made, left=left, just=just,
                           best=max(made.values(), default=None),
                           may_try=run["open"] and left != 0)


@bp.route("/quiz/<run_uuid>", methods=["GET", "POST"])
@allow("learner")
def quiz(run_uuid: str):
    db = get_db()
    learner = current_user()
    run = quizzes.get_run(db, run_uuid)
    if not quizzes.is_for(db, run, learner["uuid"]):
        raise NotFound(_("no such quiz"))
    made = quizzes.attempts_made(db, run_uuid, learner["uuid"])
    next_attempt = len(made) + 1
    left = quizzes.attempts_left(run, len(made))
    if request.method == "GET":
        wants = request.args.get("attempt") == "new"
        if run["open"] and left != 0 and (wants or not made):
            return _page(db, run, learner, next_attempt)
        just = request.args.get("done", type=int)
        return _results(db, run, learner, just if just in made else None)
    attempt = request.form.get("attempt", type=int)
    if attempt in made or not run["open"] or left == 0 or attempt != next_attempt:
        return redirect(url_for("kiosk.quiz", run_uuid=run_uuid))  # already in, or ended
    found = quizzes.questions_of(db, run)
    answers, errors, blanks = [], {}, []
    for item in quizzes.items(run):
        facts = found.get(item["item"])
        name = f"a{item['item']}"
        if facts is None:
            answers.append({"item": item["item"], "answer": "", "correct": False})
            continue
        question = facts["question"]
        values = quizzes.draw(question, run_uuid, learner["uuid"], attempt, item["item"])
        if _blank(question, request.form, name):
            blanks.append(item["item"])
            answers.append({"item": item["item"], "answer": "", "correct": False, "values": values})
            continue
        try:
            given = read_answer(question, request.form, name)
        except NotAnAnswer:
            errors[item["item"]] = (_("Write only a number, for example 12 or 3,5.")
                                    if question["type"] in ("numeric", "generated")
                                    else _("Answer every part of this question."))
            continue
        if question["type"] == "perseus":
            correct = perseus_grade(question, given)[0] == "correct"
            given = pv.answer_texts(question, given)[:8]
        else:
            correct = check_answer(question, given, values)
        recorded = given if isinstance(given, (int, list)) else str(given)[:200]
        if isinstance(recorded, list) and not all(isinstance(g, int) for g in recorded):
            recorded = ", ".join(str(g) for g in recorded)[:200]
        answers.append({"item": item["item"], "answer": recorded, "correct": correct,
                        "values": values})
    if errors or (blanks and not request.form.get("blank_ok")):
        return _page(db, run, learner, attempt, form=request.form, errors=errors, blanks=blanks,
                     status=422 if errors else 200)
    try:
        quizzes.submit(db, run_uuid, learner["uuid"], attempt, answers)
    except progress.EventsNotStored:
        # Not handed to the tablet's queue (that sends practice events): the form stays.
        return _page(db, run, learner, attempt, form=request.form, status=507, errors={
            -1: _("The box is full, so your answers could not be saved yet. Press “Submit” "
                  "again later.")})
    return redirect(url_for("kiosk.quiz", run_uuid=run_uuid, done=attempt))
