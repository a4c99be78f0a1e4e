"""Mastery of an exercise: pure functions over a learner's answers, no Flask, no database.

An exercise declares how it is mastered (``docs/pack-format.md``):

- ``m_of_n``: at least ``m`` correct among the last ``n`` answers;
- ``streak``: ``n`` correct answers in a row;
- ``do_all``: every question of the exercise answered correctly at least once.

Design
------
- **Mastery is reached once and kept.** :func:`assess` replays the answers in
  order and remembers the first answer after which the rule held
  (``reached_at``). A learner who masters an exercise and then keeps practising
  and slips is still shown as having mastered it: losing a badge for practising
  more would teach people not to practise. The view records the ``completed``
  event when the answer it just recorded is the one that reached mastery, so the
  event is written exactly once.
- **Progress is what a learner can read**: ``correct`` out of ``needed`` (e.g.
  "3 correct out of the last 5, 4 needed", or a streak of 2 out of 3), the last
  few answers as dots (``recent``), and a fraction 0..1 (``fraction``) for the
  progress events; it reaches 1 exactly when the rule holds.
- **Deterministic and forgiving of bad packs**: an unknown model or odd numbers
  (``m > n``, zero, strings) are clamped to something sensible instead of failing
  in front of a learner; the pack checker is where authors hear about them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MODELS = ("m_of_n", "do_all", "streak")
DEFAULT_N = 5
MAX_N = 100  # a dot per answer in the window: more would not fit on a tablet


@dataclass(frozen=True)
class Rule:
    """A mastery model with its numbers checked: ``m`` ≤ ``n``, both at least 1."""

    model: str
    m: int
    n: int


@dataclass(frozen=True)
class Mastery:
    """Where a learner stands on one exercise."""

    rule: Rule
    mastered: bool            # the rule held after some answer (and stays true)
    reached_at: int | None    # index of the answer that first made the rule hold
    correct: int              # m_of_n: correct in the window; streak: current streak;
                              # do_all: questions answered correctly at least once
    needed: int               # m, n, or the number of questions
    window: int               # how many answers (or questions, for do_all) the rule looks at
    recent: tuple[bool, ...]  # m_of_n/streak: the last answers (oldest first); do_all: per question
    fraction: float           # 0..1, 1 exactly when the rule holds now

    @property
    def answered(self) -> int:
        """How many answers are in the window (m_of_n), for "3 correct out of the last 4"."""
        return len(self.recent)


def _whole(value, default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number


def rule_of(spec: dict | None, question_count: int = 0) -> Rule:
    """The exercise's ``mastery`` object as a :class:`Rule`; no rule means ``do_all``."""
    spec = spec if isinstance(spec, dict) else {}
    model = spec.get("model")
    if model not in MODELS:
        model = "do_all"
    if model == "do_all":
        count = max(1, question_count)
        return Rule("do_all", count, count)
    n = min(MAX_N, max(1, _whole(spec.get("n"), DEFAULT_N)))
    if model == "streak":
        return Rule("streak", n, n)
    m = min(n, max(1, _whole(spec.get("m"), n)))
    return Rule("m_of_n", m, n)


def _first_reached(rule: Rule, answers: Sequence[bool]) -> int | None:
    """Index of the first answer after which the rule held (one pass: histories grow long)."""
    in_window = streak = 0
    for i, answer in enumerate(answers):
        if rule.model == "m_of_n":
            in_window += answer
            if i >= rule.n:
                in_window -= answers[i - rule.n]  # the answer that just left the window
            if in_window >= rule.m:
                return i
        else:
            streak = streak + 1 if answer else 0
            if streak >= rule.n:
                return i
    return None


def _trailing_streak(answers: Sequence[bool]) -> int:
    count = 0
    for answer in reversed(answers):
        if not answer:
            break
        count += 1
    return count


def assess(spec: dict | None, answers: Sequence[bool], *,
           question_ids: Sequence[str | None] = (), all_questions: Sequence[str] = ()) -> Mastery:
    """Replay ``answers`` (oldest first) against the exercise's mastery ``spec``.

    ``question_ids[i]`` is the question that ``answers[i]`` answered, and
    ``all_questions`` the exercise's questions: ``do_all`` needs both (ids no
    longer in the exercise, after a pack update, do not count).
    """
    answers = [bool(a) for a in answers]
    rule = rule_of(spec, len(all_questions))
    if rule.model == "do_all":
        return _assess_do_all(rule, answers, question_ids, all_questions)
    reached_at = _first_reached(rule, answers)
    window = tuple(answers[-rule.n:])
    if rule.model == "m_of_n":
        correct = sum(window)
        fraction = min(1.0, correct / rule.m)
    else:
        correct = min(rule.n, _trailing_streak(answers))
        fraction = correct / rule.n
    return Mastery(rule, reached_at is not None, reached_at, correct, rule.m, rule.n, window,
                   fraction)


def _assess_do_all(rule: Rule, answers: list[bool], question_ids: Sequence[str | None],
                   all_questions: Sequence[str]) -> Mastery:
    wanted = list(dict.fromkeys(all_questions))  # keeps the exercise's order, drops repeats
    if len(question_ids) != len(answers):
        raise ValueError("do_all needs the question id of every answer")
    done: set[str] = set()
    reached_at = None
    for i, (qid, correct) in enumerate(zip(question_ids, answers, strict=True)):
        if correct and qid in wanted:
            done.add(qid)
            if reached_at is None and len(done) == len(wanted):
                reached_at = i
    total = len(wanted)
    fraction = len(done) / total if total else 0.0
    return Mastery(rule, reached_at is not None, reached_at, len(done), total, total,
                   tuple(q in done for q in wanted), fraction)


def reached_now(mastery: Mastery, answer_count: int) -> bool:
    """Whether the last of ``answer_count`` answers is the one that reached mastery."""
    return mastery.reached_at is not None and mastery.reached_at == answer_count - 1


__all__ = ["MODELS", "Mastery", "Rule", "assess", "reached_now", "rule_of"]
