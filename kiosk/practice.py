"""The exercise player: one question at a time, immediate feedback, hints, mastery.

Design
------
- **Plain form posts first.** Every step works without JavaScript: answering
  posts the form, "Show a hint" is a second submit button of the same form (so
  a half-typed answer is kept), "Next question" is a small form of its own.
  ``numpad.js`` only adds an on-screen number pad.
- **With JavaScript, one request per answer.** For a signed-in learner,
  ``practice.js`` posts the question's fields to :func:`practice_answer`, which
  checks and records them with the form's own :func:`_check` and answers with the
  page's body (``practice_body.html``) twice: showing the feedback, and showing
  the next question, whose drawn numbers the run keeps (``x``) so the question
  answered is the one shown. The box's run moves on when the next answer (or a
  hint) is posted for it (:func:`_catch_up`), so a reload in between shows the
  last feedback, as without script.
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
import json
import random
import secrets

from flask import (
    abort,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
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
from passerelle.server.errors import InvalidInput, api_error
from passerelle.server.i18n import content_attrs, direction
from passerelle.server.learning import mastery as mastery_rules
from passerelle.server.learning import progress
from passerelle.server.packs import catalogue
from passerelle.server.web.auth import ANYONE, allow, current_user
from werkzeug.datastructures import MultiDict
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
    ahead = run.pop("x", None)
    # The page's script already showed this question: the same numbers, drawn then.
    if isinstance(ahead, dict) and ahead.get("n") == run["n"] and "v" in ahead:
        run["g"][str(ahead["i"])] = {"n": run["n"], "v": ahead["v"]}


def _prepare_next(run: dict, exercise: dict) -> dict:
    """The run as it will be on the next question, which the page's script shows without
    asking the box again; its drawn numbers are kept in the run (``x``) for when the learner
    answers it. Called again for a resent answer, it gives the same question."""
    ahead = json.loads(json.dumps(run))  # a deep copy; the run is plain JSON (the cookie's)
    _advance(ahead, exercise)
    index = _current_index(ahead, exercise)
    values = _values(ahead, exercise["questions"][index], index)
    run["x"] = {"n": ahead["n"]} if values is None else {"n": ahead["n"], "i": index, "v": values}
    return ahead


def _catch_up(run: dict, exercise: dict, attempt) -> bool:
    """A post for the question after the one whose feedback the run shows, once the page's
    script has shown that question (``x``): the learner moved on without asking the box, so
    the run moves on now. True when it did."""
    if run.get("f") and "x" in run and attempt == str(run["n"] + 1):
        _advance(run, exercise)
        return True
    return False


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


def _draft(question: dict, form) -> dict:
    """What the learner had entered when asking for a hint, to show it again."""
    if question["type"] == "perseus":
        return {"widgets": pv.read_form(question, form)}
    if question["type"] == "multiple_choice":
        return {"chosen": [int(v) for v in form.getlist("answer") if v.isdigit()]}
    if question["type"] == "single_choice":
        raw = form.get("answer", "")
        return {"chosen": [int(raw)] if raw.isdigit() else []}
    return {"text": form.get("answer", "")[:MAX_ANSWER_CHARS]}


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


NOT_SHOWN: dict = {}  # ``where`` for a body that does not show the place in the lesson


def _context(found: dict, run: dict, pack_id: str, node_id: str, *, error: str | None = None,
             draft: dict | None = None, keep: bool = False, standing=None,
             where: dict | None = None) -> dict:
    """What the page (``practice.html``) and its body (``practice_body.html``) show of ``run``.

    ``keep``: the learner chose to keep practising after mastery. ``standing`` and ``where``
    (the mastery and the place in the lesson) are passed when already read; ``where`` is
    :data:`NOT_SHOWN` when the body will not show it (before mastery)."""
    db = get_db()
    exercise = found["exercise"]
    index = _current_index(run, exercise)
    question = exercise["questions"][index]
    values = _values(run, question, index)
    shown = render_generated(question, values) if values is not None else question
    state, mastered = standing or _standing(db, exercise, run, pack_id, node_id)
    feedback = None
    if run.get("f"):
        correct, given, just = run["f"]
        feedback = {"correct": bool(correct), "just_mastered": bool(just),
                    "given": _given_text(question, given),
                    "right": correct_answer(question, shown),
                    "explanation": render_markdown(shown["explanation"]) if shown.get("explanation") else None}
    content = content_attrs(found.get("language"))
    given_hints = shown.get("hints") or []  # only those shown are rendered
    if question["type"] == "perseus":
        hints = [pv.markdown_math(h) for h in given_hints[: run["s"]]]
        content = pv.text_attrs(question, found.get("language"))
        labels = {"choose_one": _("Choose one answer:"), "choose_all": _("Choose every right answer:"),
                  "answer": _("Your answer"),
                  "attrs": Markup(' lang="%s" dir="%s"') % (str(get_locale()), direction())}
        # The run's random id and the attempt: a reload shows the same order, the next attempt another.
        prompt = pv.question_html(question, (draft or {}).get("widgets"), disabled=feedback is not None,
                                  labels=labels, seed=f"{run['k']}:{run['n']}")
    else:
        hints = [render_markdown(h) for h in given_hints[: run["s"]]]
        prompt = render_markdown(shown.get("prompt", ""))
    if where is None:
        where = place(db, pack_id, found, request.args.get("lesson") or None)
    elif where is NOT_SHOWN:
        where = None
    recording = _learner() is not None
    topic_url = _topic_url(found, pack_id)
    return {
        "node": found, "pack_id": pack_id, "node_id": node_id, "question": question,
        "content": content,  # the question's lang and dir (a Perseus one's, from its letters)
        "prompt": prompt, "choices": question.get("choices") or [],
        "numeric_answer": question["type"] in ("numeric", "generated"),
        "hints": hints, "more_hints": run["s"] < len(given_hints), "attempt": run["n"],
        "position": run["i"] + 1, "count": run["q"], "feedback": feedback, "error": error,
        "draft": draft or {}, "mastery": state, "mastered": mastered,
        "dots": _dots(state), "recording": recording,
        "topic_url": topic_url,
        "place": where,
        "back_url": where["back"] if where else topic_url,
        "back_text": (_("Back to the lesson") if where and where.get("back_is_lesson")
                      else _("Back to the topic")),
        # After mastery the page offers the way on rather than more questions, unless
        # the learner chose to keep practising.
        "keep_practising": keep,
        "action": _here(pack_id, node_id, more=True if keep else None),
        "more_action": _here(pack_id, node_id, more=True),
        # With JavaScript, "Check" asks this address instead (one request, no page load).
        "check_url": _here(pack_id, node_id, more=True if keep else None,
                           endpoint="kiosk.practice_answer") if recording else None,
    }


def _render(found: dict, run: dict, pack_id: str, node_id: str, *, error: str | None = None,
            draft: dict | None = None, status: int = 200):
    context = _context(found, run, pack_id, node_id, error=error, draft=draft,
                       keep=bool(request.args.get("more")))
    _save_run(pack_id, node_id, run)
    return render_template("practice.html", **context), status


def _here(pack_id: str, node_id: str, more: bool | None = None,
          endpoint: str = "kiosk.practice") -> str:
    """This exercise's address, keeping the lesson the learner came from."""
    keep = request.args.get("more") if more is None else ("1" if more else None)
    # Built once per request: an answer's reply shows the page's body twice.
    made = g.setdefault("practice_urls", {})
    key = (endpoint, pack_id, node_id, keep)
    if key not in made:
        made[key] = url_for(endpoint, pack_id=pack_id, node_id=node_id,
                            lesson=request.args.get("lesson") or None, more=keep or None)
    return made[key]


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


def _check(found: dict, run: dict, pack_id: str, node_id: str, form) -> None:
    """Check the answer in ``form`` to the run's current question and record it: the run then
    holds the feedback (``f``). The one way an answer is checked, for the page's form and for
    its script alike. NotAnAnswer when there is none to check; ``progress.EventsNotStored``
    when the disk is full (nothing recorded, the run unchanged)."""
    exercise = found["exercise"]
    index = _current_index(run, exercise)
    question = exercise["questions"][index]
    given = read_answer(question, form)
    values = _values(run, question, index)
    correct = check_answer(question, given, values)
    just_mastered = _record(get_db(), run, exercise, pack_id, node_id, question, index, given,
                            correct, values)
    # The feedback repeats what the learner typed, as typed (not the number read from it).
    if question["type"] == "perseus":
        shown_given = [t[:SHOWN_ANSWER_CHARS] for t in pv.answer_texts(question, given)][:8]
    else:
        shown_given = (given if isinstance(given, (int, list))
                       else form.get("answer", "").strip()[:SHOWN_ANSWER_CHARS])
    run["f"] = [1 if correct else 0, shown_given, 1 if just_mastered else 0]


def _disk_full() -> str:
    return _("The box is full, so your answer could not be saved yet. This tablet keeps it and"
             " sends it when the box has room again; you can also press “Check” again later.")


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
    if _catch_up(run, exercise, request.form.get("attempt")):
        _save_run(pack_id, node_id, run)
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
        return _render(found, run, pack_id, node_id, draft=_draft(question, request.form))
    try:
        _check(found, run, pack_id, node_id, request.form)
    except NotAnAnswer as exc:
        return _render(found, run, pack_id, node_id, error=str(exc),
                       draft=_draft(question, request.form), status=422)
    except progress.EventsNotStored as exc:
        # Not lost: still in the form, and queued by the tablet (see kiosk/pending.py).
        pending.keep(exc.events)
        return _render(found, run, pack_id, node_id, draft=_draft(question, request.form),
                       status=507, error=_disk_full())
    _save_run(pack_id, node_id, run)
    return redirect(here + "#feedback")


# --- answering with the page's script: one request -------------------------------------

MAX_FIELDS = 60       # a Khan Academy question has a few fields; a radio's values count each
MAX_VALUES = 50


def _answer_body(body) -> tuple[str, MultiDict]:
    """The attempt and the question's fields from the script's JSON body, as the form would
    post them. Anything else is refused: the box decides what an answer event holds (never a
    quiz's fields, nor whether the answer was right)."""
    if not isinstance(body, dict):
        raise InvalidInput("expected {\"attempt\": n, \"answer\": {field: [values]}}")
    problems = {k: "not accepted here" for k in body if k not in ("attempt", "answer")}
    attempt = body.get("attempt")
    if isinstance(attempt, str) and attempt.isascii() and attempt.isdigit():  # not "²"
        attempt = int(attempt)
    elif isinstance(attempt, float) and attempt.is_integer():  # JSON's 3.0 is the number 3
        attempt = int(attempt)
    if not isinstance(attempt, int) or isinstance(attempt, bool) or not 0 <= attempt < 10**9:
        problems["attempt"] = "the attempt number the page shows"
    fields = body.get("answer")
    pairs = []
    if not isinstance(fields, dict) or len(fields) > MAX_FIELDS:
        problems["answer"] = f"an object of at most {MAX_FIELDS} fields, each a list of texts"
    else:
        for name, values in fields.items():
            values = [values] if isinstance(values, str) else values
            if (len(name) > 100 or not isinstance(values, list) or len(values) > MAX_VALUES
                    or not all(isinstance(v, str) and len(v) <= MAX_ANSWER_CHARS for v in values)):
                problems["answer"] = "each field a list of at most 50 short texts"
                break
            pairs.extend((name, v) for v in values)
    if problems:
        raise InvalidInput("the answer is not valid", details=problems)
    return str(attempt), MultiDict(pairs)


@bp.post("/api/v1/practice/<pack_id>/<path:node_id>/answer")
@allow("learner")
def practice_answer(pack_id: str, node_id: str):
    """Check and record an answer as the question's form does (``_check``), in one request:
    the page shows the feedback and, when the learner asks, the next question from what
    this answers, with no page to load. A resent answer (the reply was lost) gets the same
    reply and is recorded once; a post for a question the run has left answers 409, and the
    script then loads the page."""
    attempt, form = _answer_body(request.get_json(silent=True))
    found = _exercise_of(pack_id, node_id)
    db = get_db()
    same = catalogue.same_as(db, pack_id, found)
    if same:  # as the page does: one mastery, under the exercise's first place
        node_id, found = same, _exercise_of(pack_id, same)
    exercise = found["exercise"]
    run = _load_run(pack_id, node_id, len(exercise["questions"]))
    _catch_up(run, exercise, attempt)
    if attempt != str(run["n"]):
        _save_run(pack_id, node_id, run)
        return api_error(409, "this question was already answered; load the page again", "stale")
    if not run.get("f"):
        try:
            _check(found, run, pack_id, node_id, form)
        except NotAnAnswer as exc:
            return api_error(422, str(exc), "not_an_answer")
        except progress.EventsNotStored:
            # The script then posts the form, whose page hands the events to the tablet's queue.
            return api_error(507, _disk_full(), "disk_full")
    keep = bool(request.args.get("more"))
    standing = _standing(db, exercise, run, pack_id, node_id)
    # The body shows the place in the lesson (the way on) only once mastered: not looked
    # up for the other answers.
    where = place(db, pack_id, found, request.args.get("lesson") or None) if standing[1] else NOT_SHOWN
    shown = _context(found, run, pack_id, node_id, keep=keep, standing=standing, where=where)
    # After mastery the only way on to a question is "Keep practising".
    ahead = _prepare_next(run, exercise)
    following = _context(found, ahead, pack_id, node_id, keep=keep or standing[1],
                         standing=standing, where=where)
    _save_run(pack_id, node_id, run)
    correct, _given, just = run["f"]
    return jsonify({"correct": bool(correct), "just_mastered": bool(just),
                    "mastered": bool(standing[1]), "attempt": run["n"],
                    "feedback": render_template("practice_body.html", **shown),
                    "next": render_template("practice_body.html", **following)})
