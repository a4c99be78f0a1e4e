"""Quizzes that assess: made from installed questions, started for learners, reported on.

Design
------
- A *quiz* is a staff record (it syncs like lessons): a title, sections of questions taken
  from installed exercises (each named ``pack/node#question``), and whether each learner gets
  the questions of a section in an order of their own.
- *Starting* a quiz for a class, a group of it or chosen learners makes a *run*, a record
  holding a copy of the quiz's questions, the number of attempts allowed and whether it is
  open. Editing the quiz later never changes what was asked; ending the run closes it.
- A learner's submitted attempt is a set of answer events written by the one learning-event
  writer (``progress.quiz_attempt``), all in one transaction; the fold keeps them apart from
  practice, in ``quiz_answers`` (one row per learner, attempt and question), so an assessment
  never moves an exercise's mastery and a report reads a few hundred small rows.
- Each question keeps its place in the run (``item``) whatever order a learner saw it in:
  the order and a generated question's numbers are drawn from the run, the learner and the
  attempt, so the page a learner submits is the page they were shown.
- A learner's score is that of their best attempt (the latest of equal ones): "5 out of 8".
"""

from __future__ import annotations

import io
import json
import random
import re
from dataclasses import dataclass, field

from passerelle.content import ExpressionError, draw_variables, render_generated
from passerelle.server import dialect, records
from passerelle.server.db import new_uuid
from passerelle.server.errors import Forbidden, InvalidInput, NotFound
from passerelle.server.i18n import lazy_text as _l
from passerelle.server.learning import events, lessons, progress
from passerelle.server.packs import authoring, catalogue
from passerelle.server.people import accounts
from passerelle.server.reports import impact

MAX_QUESTIONS = 50
MAX_SECTIONS = 10
MAX_ATTEMPTS = 10   # "as many times as the facilitator allows": 1 to 10, or no limit (0)
MOST_MISSED = 5
_WIDGET = re.compile(r"\[\[\u2603 w[0-9]+\]\]")
_QUESTION_ID = re.compile(events.QUESTION_PATTERN)


# --- Questions ---------------------------------------------------------------------------

def key_of(pack_id: str, node_id: str, question_id: str) -> str:
    return f"{pack_id}/{node_id}#{question_id}"


def parse_key(key: str) -> dict | None:
    """``pack/node#question`` as ``{pack_id, node_id, question_id}``; None when malformed."""
    where, hash_, question = str(key).rpartition("#")
    pack_id, slash, node_id = where.partition("/")
    if not (hash_ and slash and pack_id and node_id and question):
        return None
    return {"pack_id": pack_id, "node_id": node_id, "question_id": question}


def available(db) -> list[dict]:
    """Every question of the installed exercises, as the quiz builder lists them."""
    # Only questions whose id an answer event can carry (the pack format's ids all can).
    found = [q for q in authoring.exercise_questions(db, copying=False)
             if _QUESTION_ID.fullmatch(str(q["question"].get("id")))]
    for q in found:
        q["prompt"] = _WIDGET.sub("…", q["prompt"])
    return found


def replacement(db, chosen: list[str], key: str) -> str | None:
    """Another question of the same exercise, not yet in the quiz, to put in place of ``key``
    (the next one after it, round the exercise); None when the exercise has no other."""
    item = parse_key(key)
    if item is None:
        return None
    found = catalogue.node(db, item["pack_id"], item["node_id"]) or {}
    ids = [str(q.get("id")) for q in (found.get("exercise") or {}).get("questions", [])
           if q.get("id")]
    if item["question_id"] not in ids:
        return None
    start = ids.index(item["question_id"])
    for question_id in ids[start + 1:] + ids[:start]:
        other = key_of(item["pack_id"], item["node_id"], question_id)
        if other not in chosen:
            return other
    return None


def _invalid(field_: str, message) -> InvalidInput:
    return InvalidInput(_l("the quiz is not valid"), details={field_: message})


def _check(db, title: str, sections) -> tuple[str, list[dict]]:
    title = (title or "").strip()
    if not title or len(title) > 120:
        raise _invalid("title", _l("a title of 1 to 120 characters"))
    if not isinstance(sections, list) or not 1 <= len(sections) <= MAX_SECTIONS:
        raise _invalid("sections", _l("1 to %(max)s sections", max=MAX_SECTIONS))
    clean, keys = [], []
    for section in sections:
        items = [parse_key(k) for k in section.get("questions", [])]
        if None in items:
            raise _invalid("questions", _l("not installed questions: %(list)s", list="?"))
        name = str(section.get("title") or "").strip()[:120]
        clean.append({"title": name, "questions": items})
        keys += [key_of(**i) for i in items]
    clean = [s for s in clean if s["questions"]]  # an empty section is left out
    if not 1 <= len(keys) <= MAX_QUESTIONS:
        raise _invalid("questions", _l("choose 1 to %(max)s questions", max=MAX_QUESTIONS))
    if len(set(keys)) != len(keys):
        raise _invalid("questions", _l("each question once"))
    found = catalogue.nodes(db, {(i["pack_id"], i["node_id"]) for s in clean
                                 for i in s["questions"]})
    missing = [k for k in keys if _question(found, parse_key(k)) is None]
    if missing:
        raise _invalid("questions", _l("not installed questions: %(list)s",
                                       list=", ".join(missing[:5])))
    return title, clean


def _question(found: dict, item: dict) -> dict | None:
    data = found.get((item["pack_id"], item["node_id"]))
    if data is None or data.get("kind") != "exercise" or not _QUESTION_ID.fullmatch(
            item["question_id"]):
        return None
    return next((q for q in (data.get("exercise") or {}).get("questions", [])
                 if str(q.get("id")) == item["question_id"]), None)


# --- Quizzes -----------------------------------------------------------------------------

def create_quiz(db, title: str, sections: list[dict], shuffle: bool, created_by: str) -> str:
    """``sections``: ``[{title, questions: [key, ...]}]``."""
    title, clean = _check(db, title, sections)
    uuid = new_uuid()
    records.put(db, "quiz", uuid, {"title": title, "sections": clean, "shuffle": 1 if shuffle else 0,
                                   "created_by": created_by, "created_at": records.now_iso()})
    return uuid


def update_quiz(db, quiz_uuid: str, title: str, sections: list[dict], shuffle: bool) -> None:
    """Change a quiz; the runs already started keep the questions they were started with."""
    quiz = get_quiz(db, quiz_uuid)
    title, clean = _check(db, title, sections)
    records.put(db, "quiz", quiz_uuid, {"title": title, "sections": clean,
                                        "shuffle": 1 if shuffle else 0,
                                        "created_by": quiz.get("created_by"),
                                        "created_at": quiz.get("created_at")})


def delete_quiz(db, quiz_uuid: str) -> None:
    """Remove a quiz from the list. The runs already started hold their own copy of its
    questions, so their learners, answers and reports stay as they are."""
    get_quiz(db, quiz_uuid)
    records.delete(db, "quiz", quiz_uuid)


def matching(questions: list[dict], words: str) -> list[dict]:
    """The questions whose exercise or prompt holds every word (capitals and accents aside)."""
    if not words.strip():
        return questions
    return [q for q in questions if accounts.holds_words(words, q["exercise"], q["prompt"])]


def get_quiz(db, quiz_uuid: str) -> dict:
    return records.require(db, "quiz", quiz_uuid, _l("no such quiz"))


def quizzes(db) -> list[dict]:
    found = records.query(db, "quiz", order="t.title COLLATE NOCASE")
    for quiz in found:
        quiz["count"] = sum(len(s["questions"]) for s in quiz["sections"] or [])
    return found


def section_keys(quiz: dict) -> list[dict]:
    """The quiz's sections with their questions as keys (what the builder's form holds)."""
    return [{"title": s.get("title", ""), "questions": [key_of(**i) for i in s["questions"]]}
            for s in quiz.get("sections") or []]


# --- Runs: a quiz started for learners ---------------------------------------------------------

def start(db, quiz_uuid: str, class_uuid: str, created_by: str, *, group_uuid: str | None = None,
          learners: list[str] | None = None, attempts: int = 1) -> str:
    quiz = get_quiz(db, quiz_uuid)
    accounts.get_class(db, class_uuid)
    if not isinstance(attempts, int) or not 0 <= attempts <= MAX_ATTEMPTS:
        raise _invalid("attempts", _l("1 to %(max)s attempts, or no limit", max=MAX_ATTEMPTS))
    if group_uuid:
        group = records.load(db, "group", group_uuid)
        if group is None or group["class_uuid"] != class_uuid:
            raise _invalid("group", _l("a group of this class"))
        target = {"type": "group", "group_uuid": group_uuid}
    elif learners is not None:
        in_class = {m["uuid"] for m in accounts.members(db, class_uuid)}
        if not learners or not set(learners) <= in_class:
            raise _invalid("learners", _l("learners of this class"))
        target = {"type": "learners", "learners": sorted(set(learners))}
    else:
        target = {"type": "class"}
    uuid = new_uuid()
    records.put(db, "quiz_run", uuid, {
        "quiz_uuid": quiz_uuid, "title": quiz["title"], "sections": quiz["sections"],
        "shuffle": quiz["shuffle"], "attempts": attempts, "class_uuid": class_uuid,
        "target": target, "open": 1, "created_by": created_by, "created_at": records.now_iso()})
    return uuid


def get_run(db, run_uuid: str) -> dict:
    return records.require(db, "quiz_run", run_uuid, _l("no such quiz"))


def set_open(db, run_uuid: str, is_open: bool) -> None:
    """End a run (learners can no longer submit) or open it again."""
    records.put_changes(db, "quiz_run", get_run(db, run_uuid), {"open": 1 if is_open else 0})


def runs_of(db, class_uuids: list[str]) -> list[dict]:
    """The runs of these classes, open ones first, newest first."""
    if not class_uuids:
        return []
    marks = ",".join("?" * len(class_uuids))
    return records.query(db, "quiz_run", f"t.class_uuid IN ({marks})", class_uuids,
                         "t.open DESC, t.created_at DESC, t.uuid")


def items(run: dict) -> list[dict]:
    """The run's questions in the quiz's order, each with its place (``item``) and section."""
    out = []
    for number, section in enumerate(run.get("sections") or []):
        for i in section["questions"]:
            out.append({**i, "item": len(out), "section": number,
                        "section_title": section.get("title", "")})
    return out


def is_for(db, run: dict, learner_uuid: str) -> bool:
    """Whether the run was started for this learner (a member of its class it targets)."""
    member = records.query(db, "membership", "t.class_uuid = ? AND t.user_uuid = ?",
                           [run["class_uuid"], learner_uuid])
    return bool(member) and lessons.targets(db, run, learner_uuid)


def attempts_made(db, run_uuid: str, learner_uuid: str) -> dict[int, tuple[int, int]]:
    """Each submitted attempt of one learner: attempt -> (right answers, questions)."""
    rows = db.execute("SELECT attempt, sum(correct), count(*) FROM quiz_answers"
                      " WHERE run_uuid = ? AND learner_uuid = ? GROUP BY attempt ORDER BY attempt",
                      [run_uuid, learner_uuid]).fetchall()
    return {a: (right, total) for a, right, total in rows}


def submitted(db, run_uuids: list[str]) -> dict[str, int]:
    """run -> how many learners submitted at least one attempt, in one read."""
    if not run_uuids:
        return {}
    marks = ",".join("?" * len(run_uuids))
    return dict(db.execute(f"SELECT run_uuid, count(DISTINCT learner_uuid) FROM quiz_answers"
                           f" WHERE run_uuid IN ({marks}) GROUP BY run_uuid", run_uuids).fetchall())


def attempts_left(run: dict, made: int) -> int | None:
    """How many more attempts the learner may submit; None for no limit."""
    if not run["attempts"]:
        return None
    return max(0, run["attempts"] - made)


def open_for(db, learner_uuid: str) -> list[dict]:
    """The open runs started for this learner, newest first, each with what they did."""
    classes = [m["class_uuid"] for m in
               records.query(db, "membership", "t.user_uuid = ?", [learner_uuid])]
    if not classes:
        return []
    marks = ",".join("?" * len(classes))
    found = records.query(db, "quiz_run", f"t.open = 1 AND t.class_uuid IN ({marks})", classes,
                          "t.created_at DESC, t.uuid")
    out = []
    for run in found:
        if lessons.targets(db, run, learner_uuid):
            made = attempts_made(db, run["uuid"], learner_uuid)
            run["made"] = len(made)
            run["best"] = max(made.values(), default=None)
            run["left"] = attempts_left(run, len(made))
            run["count"] = len(items(run))
            out.append(run)
    return out


def order_for(run: dict, learner_uuid: str, attempt: int) -> list[dict]:
    """The run's questions in the order this learner sees them in this attempt."""
    listed = items(run)
    if not run.get("shuffle"):
        return listed
    rng = random.Random(f"{run['uuid']}:{learner_uuid}:{attempt}")
    out = []
    for number in range(len(run.get("sections") or [])):
        section = [i for i in listed if i["section"] == number]
        rng.shuffle(section)  # within its section: a section stays where the quiz put it
        out += section
    return out


def draw(question: dict, run_uuid: str, learner_uuid: str, attempt: int, item: int) -> dict | None:
    """The numbers of a generated question for this learner and attempt (the same each time
    the page is shown and when it is checked)."""
    if question.get("type") != "generated":
        return None
    rng = random.Random(f"{run_uuid}:{learner_uuid}:{attempt}:{item}")
    values = draw_variables(question, rng=rng)
    for _try in range(10):
        try:
            render_generated(question, values)
            break
        except ExpressionError:  # a division by zero for this draw: draw again
            values = draw_variables(question, rng=rng)
    return values


def questions_of(db, run: dict) -> dict[int, dict]:
    """item -> ``{question, exercise, language}`` for the questions still installed."""
    listed = items(run)
    found = catalogue.nodes(db, {(i["pack_id"], i["node_id"]) for i in listed})
    out = {}
    for i in listed:
        question = _question(found, i)
        if question is not None:
            data = found[(i["pack_id"], i["node_id"])]
            out[i["item"]] = {"question": question, "exercise": data.get("title", i["node_id"]),
                              "language": data.get("language")}
    return out


def submit(db, run_uuid: str, learner_uuid: str, attempt: int, answers: list[dict]) -> int:
    """Record one attempt: ``answers`` as checked by the quiz page, one per question of the run
    (``{item, answer, correct, values?}``). Refused when the run is ended, not for this learner,
    or no attempt is left; a second submission of the same attempt records nothing (0)."""
    run = get_run(db, run_uuid)
    if not run["open"]:
        raise Forbidden(_l("this quiz has ended"))
    if not is_for(db, run, learner_uuid):
        raise NotFound(_l("no such quiz"))
    made = attempts_made(db, run_uuid, learner_uuid)
    if attempt in made:
        return 0
    if attempt != len(made) + 1 or attempts_left(run, len(made)) == 0:
        raise Forbidden(_l("no attempt is left"))
    by_item = {i["item"]: i for i in items(run)}
    given = {a["item"]: a for a in answers}
    if set(given) != set(by_item):
        raise _invalid("answers", _l("one answer for each question"))
    return progress.quiz_attempt(db, learner_uuid, run_uuid, attempt, [
        {**by_item[n], **given[n]} for n in sorted(by_item)])


# --- The report ------------------------------------------------------------------------------

@dataclass
class Report:
    run: dict
    questions: list[dict]          # per item: exercise, question, answers, right, wrong...
    learners: list[dict]           # per learner: attempts, score, total, marks {item: 0|1}
    most_missed: list[dict] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.questions)

    @property
    def submitted(self) -> int:
        return sum(1 for u in self.learners if u["attempts"])


def recipients(db, run: dict) -> list[dict]:
    """The learners the run was started for (members of its class it targets)."""
    return [u for u in accounts.members(db, run["class_uuid"])
            if lessons.targets(db, run, u["uuid"])]


def seen(values: str | None) -> dict | None:
    """The numbers a generated question showed, as the report keeps them."""
    return json.loads(values) if values else None


def text_of(question: dict, values: str | None = None) -> str:
    """A question's text in one line of plain text (a file's cell): a generated one with the
    numbers a learner saw, a Khan Academy one with "…" where its answer fields are."""
    return " ".join(_WIDGET.sub("…", lessons.as_seen(question, values)).split())


def report(db, run_uuid: str) -> Report:
    """Scores, answers per question and the most missed questions of one run. The same four
    reads whatever the class: SQLite adds up the answers (per attempt, per question, and the
    marks of each learner's best attempt), so Python handles a few rows per learner and per
    question, never one per answer."""
    run = get_run(db, run_uuid)
    listed = items(run)
    shown = questions_of(db, run)
    per_item = {i["item"]: {"answers": 0, "right": 0, "seen": None} for i in listed}
    # The values of one wrong answer (the highest text, so every box shows the same numbers).
    for item, answers, right, seen in db.execute(
            "SELECT item, count(*), sum(correct), max(CASE WHEN correct = 0 THEN seen_values END)"
            " FROM quiz_answers WHERE run_uuid = ? GROUP BY item", [run_uuid]):
        if item in per_item:
            per_item[item].update(answers=answers, right=right, seen=seen)
    by_learner: dict[str, dict] = {}
    marks_of = dialect.of(db).group_concat("a.item || ':' || a.correct")
    for learner, attempts, best, score, marks in db.execute(
            f"""WITH scores AS (
                   SELECT learner_uuid, attempt, sum(correct) AS score FROM quiz_answers
                   WHERE run_uuid = ? GROUP BY learner_uuid, attempt),
               ranked AS (
                   SELECT learner_uuid, attempt, score, count(*) OVER (PARTITION BY learner_uuid)
                          AS attempts, row_number() OVER (PARTITION BY learner_uuid
                          ORDER BY score DESC, attempt DESC) AS rank FROM scores)
               SELECT r.learner_uuid, r.attempts, r.attempt, r.score,
                      (SELECT {marks_of} FROM quiz_answers a
                       WHERE a.run_uuid = ? AND a.learner_uuid = r.learner_uuid
                       AND a.attempt = r.attempt)
               FROM ranked r WHERE r.rank = 1""", [run_uuid, run_uuid]):
        pairs = (pair.partition(":") for pair in (marks or "").split(",") if pair)
        by_learner[learner] = {"attempts": attempts, "best": best, "score": score,
                               "marks": {int(i): int(c) for i, _c, c in pairs}}
    people = {u["uuid"]: u for u in recipients(db, run)}
    missing = [uuid for uuid in by_learner if uuid not in people]  # left the class since
    for uuid in missing:
        found = records.load(db, "user", uuid)
        people[uuid] = found or {"uuid": uuid, "display_name": "?"}
    nothing = {"attempts": 0, "best": None, "score": 0, "marks": {}}
    learners = [{"uuid": uuid, "display_name": person["display_name"], "total": len(listed),
                 **by_learner.get(uuid, nothing)} for uuid, person in people.items()]
    learners.sort(key=lambda u: u["display_name"].casefold())
    for u in learners:
        for item, mark in u["marks"].items():
            if not mark and item in per_item:
                per_item[item].setdefault("missed_by", []).append(u["display_name"])
    questions = []
    for i in listed:
        stats = per_item[i["item"]]
        facts = shown.get(i["item"])
        question = facts["question"] if facts else None
        questions.append({
            **i, "number": i["item"] + 1, "answers": stats["answers"], "right": stats["right"],
            "wrong": stats["answers"] - stats["right"], "missed_by": stats.get("missed_by", []),
            "question": question, "values": stats["seen"],
            "exercise": facts["exercise"] if facts else i["node_id"],
            "language": facts["language"] if facts else None,
            "text": text_of(question, stats["seen"]) if question else ""})
    missed = sorted((q for q in questions if q["wrong"]),
                    key=lambda q: (-q["wrong"], q["item"]))[:MOST_MISSED]
    return Report(run, questions, learners, missed)


def report_csv(found: Report, dialect: impact.CsvDialect = impact.SPREADSHEET) -> str:
    """The report as a spreadsheet: one row per learner (attempts, score, out of, then 1 or 0
    per question of the scored attempt), then one row per question."""
    out = io.StringIO()
    writer = dialect.writer(out)
    numbers = [f"Q{q['number']}" for q in found.questions]
    writer.writerow(["learner", "attempts", "score", "out_of", "percent", *numbers])
    for u in found.learners:
        percent = round(100 * u["score"] / u["total"]) if u["attempts"] and u["total"] else ""
        writer.writerow([u["display_name"], u["attempts"], u["score"] if u["attempts"] else "",
                         u["total"], percent,
                         *(u["marks"].get(q["item"], "") for q in found.questions)])
    writer.writerow([])
    writer.writerow(["question", "section", "exercise", "text", "answers", "right", "wrong"])
    for q in found.questions:
        writer.writerow([f"Q{q['number']}", q["section_title"], q["exercise"], q["text"],
                         q["answers"], q["right"], q["wrong"]])
    return impact.BOM + out.getvalue()
