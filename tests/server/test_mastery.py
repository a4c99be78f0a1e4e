"""Mastery rules: reached exactly when the rule first holds, kept afterwards, progress readable."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from passerelle.server.learning.mastery import assess, reached_now, rule_of

M2N3 = {"model": "m_of_n", "m": 2, "n": 3}
STREAK3 = {"model": "streak", "n": 3}
DO_ALL = {"model": "do_all"}
T, F = True, False


@pytest.mark.parametrize("answers, reached_at", [
    ([], None),
    ([T], None),
    ([T, T], 1),
    ([T, F, T], 2),
    ([F, T, F, T], 3),
    ([T, F, F, T], None),        # the first T left the window of the last 3
    ([T, F, F, T, F, T], 5),
])
def test_m_of_n_counts_the_last_n_answers(answers, reached_at):
    state = assess(M2N3, answers)
    assert state.reached_at == reached_at
    assert state.mastered == (reached_at is not None)


def test_m_of_n_progress_is_readable():
    state = assess(M2N3, [F, F, T, F])
    assert (state.correct, state.needed, state.window) == (1, 2, 3)
    assert state.recent == (F, T, F) and state.answered == 3
    assert state.fraction == 0.5


def test_mastery_is_kept_after_later_slips():
    state = assess(M2N3, [T, T, F, F, F])
    assert state.mastered and state.reached_at == 1
    assert state.correct == 0 and state.fraction == 0  # the current window is shown honestly


@pytest.mark.parametrize("answers, reached_at", [
    ([T, T], None),
    ([T, T, T], 2),
    ([T, T, F, T, T], None),
    ([T, T, F, T, T, T], 5),
    ([F, F, F, T, T, T, T], 5),
])
def test_streak_needs_n_in_a_row(answers, reached_at):
    assert assess(STREAK3, answers).reached_at == reached_at


def test_streak_progress_is_the_current_streak():
    state = assess(STREAK3, [T, T, F, T])
    assert (state.correct, state.needed) == (1, 3)
    assert state.fraction == pytest.approx(1 / 3)


def test_do_all_needs_each_question_right_once():
    ids = ["a", "b", "c"]
    answers, qids = [T, F, T, T, T], ["a", "b", "a", "c", "b"]
    for i in range(len(answers)):
        state = assess(DO_ALL, answers[: i + 1], question_ids=qids[: i + 1], all_questions=ids)
        assert state.mastered == (i == 4)
    assert state.reached_at == 4 and state.recent == (T, T, T) and state.fraction == 1


def test_do_all_ignores_questions_no_longer_in_the_exercise():
    state = assess(DO_ALL, [T, T], question_ids=["gone", "a"], all_questions=["a", "b"])
    assert not state.mastered and state.correct == 1 and state.recent == (T, F)


def test_do_all_needs_question_ids():
    with pytest.raises(ValueError):
        assess(DO_ALL, [T], all_questions=["a"])


@pytest.mark.parametrize("spec, expected", [
    (None, ("do_all", 2, 2)),
    ({"model": "nonsense"}, ("do_all", 2, 2)),
    ({"model": "m_of_n", "m": 9, "n": 3}, ("m_of_n", 3, 3)),   # m > n clamped
    ({"model": "m_of_n", "m": 0, "n": 0}, ("m_of_n", 1, 1)),
    ({"model": "m_of_n", "n": "x"}, ("m_of_n", 5, 5)),
    ({"model": "streak", "n": 10_000}, ("streak", 100, 100)),
])
def test_odd_rules_are_clamped_not_fatal(spec, expected):
    rule = rule_of(spec, question_count=2)
    assert (rule.model, rule.m, rule.n) == expected


def test_reached_now_is_true_for_one_answer_only():
    answers = [T, T, T, T]
    hits = [n for n in range(1, 5) if reached_now(assess(M2N3, answers[:n]), n)]
    assert hits == [2]


answer_lists = st.lists(st.booleans(), max_size=60)
specs = st.one_of(
    st.builds(lambda m, n: {"model": "m_of_n", "m": min(m, n), "n": n},
              st.integers(1, 8), st.integers(1, 8)),
    st.builds(lambda n: {"model": "streak", "n": n}, st.integers(1, 8)))


def _naive_holds(spec, prefix):
    if spec["model"] == "m_of_n":
        return sum(prefix[-spec["n"]:]) >= spec["m"]
    return len(prefix) >= spec["n"] and all(prefix[-spec["n"]:])


@given(specs, answer_lists)
def test_reached_at_is_the_first_prefix_where_the_rule_holds(spec, answers):
    state = assess(spec, answers)
    expected = next((i for i in range(len(answers)) if _naive_holds(spec, answers[: i + 1])), None)
    assert state.reached_at == expected
    assert 0 <= state.fraction <= 1
    assert (state.fraction == 1) == _naive_holds(spec, answers)


@given(specs, answer_lists, answer_lists)
def test_mastery_once_reached_is_kept(spec, first, more):
    if assess(spec, first).mastered:
        assert assess(spec, first + more).mastered
        assert assess(spec, first + more).reached_at == assess(spec, first).reached_at


@given(specs, answer_lists)
def test_deterministic(spec, answers):
    assert assess(spec, answers) == assess(spec, list(answers))
