"""The exercise player: one question at a time, immediate feedback, hints, mastery.

Design
------
- **Plain form posts first.** Every step works without JavaScript: answering
  posts the form, "Show a hint" is a second submit button of the same form (so
  a half-typed answer is kept), "Next question" is a small form of its own.
  ``numpad.js`` only adds an on-screen number pad.
- **Post, then redirect.** Checking an answer records it and redirects to the
  page that shows the feedback, so reloading that page or pressing "back" never
  records an answer twice. Each question shown carries an ``attempt`` number; a
  form posted for an attempt that was already answered (a double tap on a slow
  tablet, an old tab) changes nothing.
- **The run lives in the session cookie, small.** Per exercise (at most
  :data:`MAX_RUNS` of them, oldest dropped) the session keeps a random run id
  (which also seeds the question order when ``randomize``), the round and the
  position in it, the attempt number, how many hints are shown, the last drawn
  values of each generated question, and the feedback to show: indexes and
  numbers, never the question text. Guests also keep their recent answers there,
  since nothing of theirs is written to the database.
- **Signed-in learners' answers are events** written by the one learning-event
  writer (:mod:`passerelle.server.learning.progress`, type ``answer``), whose
  ``event_id`` is derived from the learner, the exercise, the run and the
  attempt: two concurrent posts of the same attempt are recorded once. Mastery
  is read from the exercise's stored state (kept by the fold, so answers made on
  another tablet or synced from another box count); the ``completed`` event has
  one id per learner and exercise, and goes with the answer that reached
  mastery. Staff can try exercises like guests: not recorded.
- **Generated questions** draw new values with ``draw_variables(avoid=...)``
  whenever the question comes up, so the same numbers never come twice in a
  row; the answer is computed by the library's evaluator, never ``eval``.
"""

from __future__ import annotations

import hashlib
import random
import secrets

from flask import abort, redirect, render_template, request, session, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from markupsafe import Markup
from passerelle.content import (
    ExpressionError,
    check_answer,
    draw_variables,
    render_generated,
)
from passerelle.content.perseus import grade as perseus_grade
from passerelle.content.perseus import right_answers as perseus_right_answers
from passerelle.kiosk import bp, pending
from passerelle.kiosk import perseus_view as pv
from passerelle.kiosk.learn import place, require_visible
from passerelle.kiosk.markdown import render_markdown
from passerelle.server.db import get_db
from passerelle.server.i18n import content_attrs, direction
from passerelle.server.learning import mastery as mastery_rules
from passerelle.server.learning import progress
from passerelle.server.packs import catalogue
from passerelle.server.web.auth import ANYONE, allow, current_user
from werkzeug.routing import BuildError

SESSION_KEY = "practice"
MAX_RUNS = 4            # exercises remembered per session: bounds the cookie
MAX_ANSWER_CHARS = 500  # longer typed answers are cut before checking or recording
SHOWN_ANSWER_CHARS = 40  # what the feedback repeats of a typed answer (kept in the cookie)
GUEST_HISTORY = mastery_rules.MAX_N
DRAW_TRIES = 10
# Arabic-Indic digits are read by float(); their decimal and thousands marks are not.
_NUMBER_MARKS = str.maketrans({"\u066b": ".", "\u066c": None, "\u060c": ",", "\u2212": "-"})


# --- the run kept in the session -------------------------------------------------------

def _run_key(pack_id: str, node_id: str) -> str:
    return hashlib.sha256(f"{pack_id}\n{node_id}".encode()).hexdigest()[:12]


def _new_run(count: int) -> dict:
    return {"k": secrets.token_hex(6), "q": count, "r": 0, "i": 0, "n": 0, "s": 0, "g": {}}


def _load_run(pack_id: str, node_id: str, count: int) -> dict:
    runs = session.get(SESSION_KEY)
    run = runs.get(_run_key(pack_id, node_id)) if isinstance(runs, dict) else None
    # A run made for another version of the exercise (the pack was updated) starts over.
    if not isinstance(run, dict) or run.get("q") != count or not isinstance(run.get("k"), str):
        run = _new_run(count)
    return run


def _save_run(pack_id: str, node_id: str, run: dict) -> None:
    runs = session.get(SESSION_KEY)
    runs = dict(runs) if isinstance(runs, dict) else {}
    key = _run_key(pack_id, node_id)
    runs.pop(key, None)
    runs[key] = run  # last used goes last; the oldest runs are dropped first
    while len(runs) > MAX_RUNS:
        runs.pop(next(iter(runs)))
    session[SESSION_KEY] = runs


def _order(run: dict, exercise: dict, round_: int | None = None) -> list[int]:
    count = run["q"]
    order = list(range(count))
    if exercise.get("randomize"):
        random.Random(f"{run['k']}:{run['r'] if round_ is None else round_}").shuffle(order)
    return order


def _current_index(run: dict, exercise: dict) -> int:
    return _order(run, exercise)[run["i"] % run["q"]]


def _advance(run: dict, exercise: dict) -> None:
    """Move to the next question; a new round reshuffles, never repeating the last question first."""
    shown = _current_index(run, exercise)
    run["i"] += 1
    if run["i"] >= run["q"]:
        run["i"] = 0
        run["r"] += 1
        if exercise.get("randomize") and run["q"] > 1:
            for _try in range(20):
                if _order(run, exercise)[0] != shown:
                    break
                run["r"] += 1
    run["n"] += 1
    run["s"] = 0
    run.pop("f", None)


def _values(run: dict, question: dict, index: int) -> dict | None:
    """The drawn values of the current generated question, drawing them when it comes up."""
    if question.get("type") != "generated":
        return None
    drawn = run["g"].get(str(index))
    if isinstance(drawn, dict) and drawn.get("n") == run["n"]:
        return drawn["v"]
    previous = drawn.get("v") if isinstance(drawn, dict) else None
    values = draw_variables(question, avoid=previous)
    for _try in range(DRAW_TRIES):
        try:
            render_generated(question, values)
            break
        except ExpressionError:  # e.g. a division by zero for this draw: draw again
            values = draw_variables(question, avoid=previous)
    run["g"][str(index)] = {"n": run["n"], "v": values}
    return values


# --- reading answers from the form ------------------------------------------------------

class NotAnAnswer(ValueError):
    """The form holds no usable answer; the message tells the learner what to do."""


def _read_answer(question: dict):
    """The learner's answer from the form, in the form ``check_answer`` takes."""
    return read_answer(question, request.form)


def read_answer(question: dict, form, name: str = "answer"):
    """A learner's answer to ``question`` from a posted ``form`` (its field ``name``; a
    Khan Academy question's fields start with it), in the form ``check_answer`` takes;
    NotAnAnswer saying what to do when there is none."""
    kind = question["type"]
    if kind == "perseus":
        return _read_perseus(question, form, "" if name == "answer" else name + "-")
    count = len(question.get("choices") or [])
    if kind == "single_choice":
        raw = form.get(name, "")
        if not raw.isdigit() or int(raw) >= count:
            raise NotAnAnswer(_("Choose one answer, then press “Check”."))
        return int(raw)
    if kind == "multiple_choice":
        chosen = sorted({int(v) for v in form.getlist(name)
                         if v.isdigit() and int(v) < count})
        if not chosen:
            raise NotAnAnswer(_("Choose at least one answer, then press “Check”."))
        return chosen
    text = form.get(name, "")[:MAX_ANSWER_CHARS].strip()
    if not text:
        raise NotAnAnswer(_("Write your answer, then press “Check”."))
    if kind in ("numeric", "generated"):
        text = text.translate(_NUMBER_MARKS)
        if not _is_number(text):
            raise NotAnAnswer(_("Write only a number, for example 12 or 3,5."))
    return text


def _read_perseus(question: dict, form, prefix: str = "") -> dict:
    """A Khan Academy question's entries; what Khan Academy would not grade is sent back, unrecorded."""
    given = pv.read_form(question, form, prefix)
    state, reason = perseus_grade(question, given)
    if state == "invalid":
        if reason == "simplify":
            raise NotAnAnswer(_("Your answer is almost right, but it must be simplified."))
        if reason == "not a number":
            raise NotAnAnswer(_("Write only a number, for example 12 or 3,5."))
        if reason == "not an expression":
            raise NotAnAnswer(_("Write an expression this box can read, for example 2x+3 or (x+1)/2."))
        raise NotAnAnswer(_("Answer every part of the question, then press “Check”."))
    return given


def _is_number(text: str) -> bool:
    # Same reading as the library's checker: spaces ignored, one comma as the decimal mark.
    return check_answer({"type": "numeric", "answer": 0, "tolerance": float("inf")}, text)


def _draft(question: dict) -> dict:
    """What the learner had entered when asking for a hint, to show it again."""
    if question["type"] == "perseus":
        return {"widgets": pv.read_form(question, request.form)}
    if question["type"] == "multiple_choice":
        return {"chosen": [int(v) for v in request.form.getlist("answer") if v.isdigit()]}
    if question["type"] == "single_choice":
        raw = request.form.get("answer", "")
        return {"chosen": [int(raw)] if raw.isdigit() else []}
    return {"text": request.form.get("answer", "")[:MAX_ANSWER_CHARS]}


# --- mastery ---------------------------------------------------------------------------

def _learner() -> dict | None:
    user = current_user()
    return user if user and user["role"] == "learner" else None


def _standing(db, exercise: dict, run: dict, pack_id: str, node_id: str):
    """(Mastery, mastered) for whoever is practising: recorded answers, or the guest's session."""
    questions = exercise["questions"]
    ids = [q.get("id") for q in questions]
    who = _learner()
    if who is not None:
        stored = progress.exercise_state(db, who["uuid"], pack_id, node_id)
        state = progress.assess(exercise.get("mastery"), stored, ids)
        return state, state.mastered or stored.completed
    history = [c == "1" for c in run.get("t", "")]
    done = [ids[i] for i in run.get("d", []) if isinstance(i, int) and i < len(ids)]
    if mastery_rules.rule_of(exercise.get("mastery"), len(ids)).model == "do_all":
        state = mastery_rules.assess(exercise.get("mastery"), [True] * len(done),
                                     question_ids=done, all_questions=ids)
    else:
        state = mastery_rules.assess(exercise.get("mastery"), history)
    return state, state.mastered or bool(run.get("m"))


def _record(db, run: dict, exercise: dict, pack_id: str, node_id: str, question: dict,
            index: int, given, correct: bool, values: dict | None = None) -> bool:
    """Record one answer; True when this answer made the exercise mastered."""
    who = _learner()
    if who is None:
        history = (run.get("t", "") + ("1" if correct else "0"))[-GUEST_HISTORY:]
        run["t"] = history
        if correct and index not in run.setdefault("d", []):
            run["d"].append(index)
        state, _was = _standing(db, exercise, run, pack_id, node_id)
        just = state.mastered and not run.get("m")
        if state.mastered:
            run["m"] = 1
        return just
    recorded = given if isinstance(given, (int, list)) else str(given)[:200]
    return progress.answer(db, who["uuid"], exercise, pack_id, node_id,
                           attempt=f"{run['k']}:{run['n']}", question_id=question.get("id"),
                           given=recorded, correct=correct, values=values)


# --- showing a question ----------------------------------------------------------------

def _format_number(value) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else f"{value:.10g}"


def correct_answer(question: dict, shown: dict) -> list[str]:
    """The right answer(s), as text to show after a wrong answer."""
    kind = question["type"]
    choices = question.get("choices") or []
    if kind == "perseus":
        return [pv.plain_text(a) for a in perseus_right_answers(question)]
    if kind == "single_choice":
        return [choices[int(question["answer"])]]
    if kind == "multiple_choice":
        return [choices[int(i)] for i in question["answers"]]
    if kind == "text":
        return [question["answers"][0]]
    if kind == "generated":
        return [_format_number(shown["computed_answer"])]
    return [_format_number(question["answer"])]


def _given_text(question: dict, given) -> list[str]:
    if question["type"] == "perseus":  # kept as text when it was checked (see ``practice``)
        return [str(g) for g in given] if isinstance(given, list) else []
    choices = question.get("choices") or []
    if isinstance(given, int):
        given = [given]
    if isinstance(given, list):
        return [choices[i] for i in given if isinstance(i, int) and 0 <= i < len(choices)]
    return [str(given)]


def _topic_url(found: dict, pack_id: str) -> str:
    parent = found.get("parent")
    try:
        if parent:
            return url_for("kiosk.learn", pack_id=pack_id, node_id=parent)
    except BuildError:  # the browsing pages are not there: home is always there
        pass
    return url_for("kiosk.home")


def _render(found: dict, run: dict, pack_id: str, node_id: str, *, error: str | None = None,
            draft: dict | None = None, status: int = 200):
    db = get_db()
    exercise = found["exercise"]
    index = _current_index(run, exercise)
    question = exercise["questions"][index]
    values = _values(run, question, index)
    shown = render_generated(question, values) if values is not None else question
    state, mastered = _standing(db, exercise, run, pack_id, node_id)
    feedback = None
    if run.get("f"):
        correct, given, just = run["f"]
        feedback = {"correct": bool(correct), "just_mastered": bool(just),
                    "given": _given_text(question, given),
                    "right": correct_answer(question, shown),
                    "explanation": render_markdown(shown["explanation"]) if shown.get("explanation") else None}
    content = content_attrs(found.get("language"))
    if question["type"] == "perseus":
        hints = [pv.markdown_math(h) for h in (shown.get("hints") or [])]
        content = pv.text_attrs(question, found.get("language"))
        labels = {"choose_one": _("Choose one answer:"), "choose_all": _("Choose every right answer:"),
                  "answer": _("Your answer"),
                  "attrs": Markup(' lang="%s" dir="%s"') % (str(get_locale()), direction())}
        # The run's random id and the attempt: a reload shows the same order, the next attempt another.
        prompt = pv.question_html(question, (draft or {}).get("widgets"), disabled=feedback is not None,
                                  labels=labels, seed=f"{run['k']}:{run['n']}")
    else:
        hints = [render_markdown(h) for h in (shown.get("hints") or [])]
        prompt = render_markdown(shown.get("prompt", ""))
    _save_run(pack_id, node_id, run)
    context = {
        "node": found, "pack_id": pack_id, "node_id": node_id, "question": question,
        "content": content,  # the question's lang and dir (a Perseus one's, from its letters)
        "prompt": prompt, "choices": question.get("choices") or [],
        "numeric_answer": question["type"] in ("numeric", "generated"),
        "hints": hints[: run["s"]], "more_hints": run["s"] < len(hints), "attempt": run["n"],
        "position": run["i"] + 1, "count": run["q"], "feedback": feedback, "error": error,
        "draft": draft or {}, "mastery": state, "mastered": mastered,
        "dots": _dots(state), "recording": _learner() is not None,
        "topic_url": _topic_url(found, pack_id),
        "place": place(db, pack_id, found, request.args.get("lesson") or None),
        # After mastery the page offers the way on rather than more questions, unless
        # the learner chose to keep practising.
        "keep_practising": bool(request.args.get("more")),
        "action": _here(pack_id, node_id),
        "more_action": _here(pack_id, node_id, more=True),
    }
    return render_template("practice.html", **context), status


def _here(pack_id: str, node_id: str, more: bool | None = None) -> str:
    """This exercise's address, keeping the lesson the learner came from."""
    keep = request.args.get("more") if more is None else ("1" if more else None)
    return url_for("kiosk.practice", pack_id=pack_id, node_id=node_id,
                   lesson=request.args.get("lesson") or None, more=keep or None)


def _dots(state: mastery_rules.Mastery) -> list[str]:
    """One mark per place in the window: 'right', 'wrong' or 'empty' (not answered yet)."""
    rule = state.rule
    if rule.model == "m_of_n":
        marks = ["right" if a else "wrong" for a in state.recent]
        return marks + ["empty"] * (rule.n - len(marks))
    if rule.model == "streak":
        return ["right"] * state.correct + ["empty"] * (rule.n - state.correct)
    return ["right" if done else "empty" for done in state.recent]


def _exercise_of(pack_id: str, node_id: str) -> dict:
    found = catalogue.node(get_db(), pack_id, node_id)
    if found is None or found.get("kind") != "exercise":
        abort(404)
    found["guide"] = require_visible(get_db(), pack_id, found)
    exercise = found.get("exercise") or {}
    if not exercise.get("questions"):
        abort(404)
    return found


@bp.route("/practice/<pack_id>/<path:node_id>", methods=["GET", "POST"])
@allow(ANYONE)
def practice(pack_id: str, node_id: str):
    found = _exercise_of(pack_id, node_id)
    exercise = found["exercise"]
    db = get_db()
    same = catalogue.same_as(db, pack_id, found)
    if same:  # the same exercise under another topic: one mastery
        return redirect(url_for("kiosk.practice", pack_id=pack_id, node_id=same))
    run = _load_run(pack_id, node_id, len(exercise["questions"]))
    here = _here(pack_id, node_id)
    if request.method == "GET":
        who = _learner()
        if who is not None:  # opening the exercise starts it, once per learner and exercise
            with pending.kept_if_full():
                progress.start(db, who["uuid"], pack_id, node_id)
        return _render(found, run, pack_id, node_id)

    action = request.form.get("action", "check")
    stale = request.form.get("attempt") != str(run["n"])
    if action == "next":
        if not stale and run.get("f"):
            _advance(run, exercise)
            _save_run(pack_id, node_id, run)
        return redirect(here + "#question")
    index = _current_index(run, exercise)
    question = exercise["questions"][index]
    if stale or run.get("f"):
        # Already answered (a double tap, a reload, an old tab): show where the run is.
        return redirect(here + ("#feedback" if run.get("f") else "#question"))
    if action == "hint":
        total = len(question.get("hints") or [])
        shown = request.form.get("hints_shown", "")
        # The form says how many hints it showed: posting it twice reveals one hint, not two.
        asked = int(shown) + 1 if shown.isdigit() else run["s"] + 1
        run["s"] = min(total, max(run["s"], asked))
        return _render(found, run, pack_id, node_id, draft=_draft(question))
    try:
        given = _read_answer(question)
    except NotAnAnswer as exc:
        return _render(found, run, pack_id, node_id, error=str(exc), draft=_draft(question),
                       status=422)
    values = _values(run, question, index)
    correct = check_answer(question, given, values)
    try:
        just_mastered = _record(db, run, exercise, pack_id, node_id, question, index, given,
                                correct, values)
    except progress.EventsNotStored as exc:
        # Not lost: still in the form, and queued by the tablet (see kiosk/pending.py).
        pending.keep(exc.events)
        return _render(found, run, pack_id, node_id, draft=_draft(question), status=507,
                       error=_("The box is full, so your answer could not be saved yet. This"
                               " tablet keeps it and sends it when the box has room again; you"
                               " can also press “Check” again later."))
    # The feedback repeats what the learner typed, as typed (not the number read from it).
    if question["type"] == "perseus":
        shown_given = [t[:SHOWN_ANSWER_CHARS] for t in pv.answer_texts(question, given)][:8]
    else:
        shown_given = (given if isinstance(given, (int, list))
                       else request.form.get("answer", "").strip()[:SHOWN_ANSWER_CHARS])
    run["f"] = [1 if correct else 0, shown_given, 1 if just_mastered else 0]
    _save_run(pack_id, node_id, run)
    return redirect(here + "#feedback")
