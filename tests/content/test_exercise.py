"""The safe expression evaluator, generated questions and answer checking."""

from __future__ import annotations

import random

import pytest
from passerelle.content import (
    ExpressionError,
    check_answer,
    draw_variables,
    evaluate,
    render_generated,
)


@pytest.mark.parametrize("expr,values,expected", [
    ("a + b", {"a": 2, "b": 3}, 5), ("a * (b - 1)", {"a": 4, "b": 3}, 8), ("7 // 2", {}, 3),
    ("7 % 3", {}, 1), ("2 ** 10", {}, 1024), ("-a", {"a": 5}, -5), ("abs(-3) + max(1, 4, 2)", {}, 7),
    ("round(7 / 2)", {}, 4), ("min(a, b)", {"a": 9, "b": 2}, 2), ("1 / 4", {}, 0.25),
])
def test_evaluate(expr, values, expected):
    assert evaluate(expr, values) == expected


@pytest.mark.parametrize("expr", [
    "__import__('os').system('id')", "a.__class__", "().__class__.__bases__", "open('/etc/passwd')",
    "[1, 2]", "a if a else b", "lambda: 1", "a < b", "'text'", "x[0]", "9 ** 9 ** 9", "10 ** 100",
    "2 ** 65", "1 / 0", "eval('1')", "max(a=1)", "(10 ** 18) * (10 ** 18)", "True + 1",
    "a" * 600,
])
def test_evaluate_refuses(expr):
    with pytest.raises(ExpressionError):
        evaluate(expr, {"a": 1, "b": 2, "x": 3})


def test_unknown_variable():
    with pytest.raises(ExpressionError, match="unknown variable"):
        evaluate("a + c", {"a": 1})


QUESTION = {"id": "add", "type": "generated", "variables": {"a": {"min": 1, "max": 3}, "b": {"min": 5, "max": 5}},
            "prompt": "How much is {a} + {b}?", "answer": "a + b", "explanation": "{a} + {b} = {answer}",
            "hints": ["Start from {b}."]}


def test_draw_never_repeats_and_renders():
    rng = random.Random(1)
    previous = None
    for _ in range(50):
        values = draw_variables(QUESTION, rng, avoid=previous)
        assert values != previous and 1 <= values["a"] <= 3 and values["b"] == 5
        previous = values
    tiny = {**QUESTION, "variables": {"a": {"min": 1, "max": 2}}, "answer": "a"}
    assert draw_variables(tiny, random.Random(0), avoid={"a": 1}) == {"a": 2}
    shown = render_generated(QUESTION, {"a": 2, "b": 5})
    assert shown["prompt"] == "How much is 2 + 5?" and shown["explanation"] == "2 + 5 = 7"
    assert shown["hints"] == ["Start from 5."] and shown["computed_answer"] == 7
    assert check_answer(QUESTION, "7", {"a": 2, "b": 5}) and not check_answer(QUESTION, 8, {"a": 2, "b": 5})


def test_check_answer_every_type():
    single = {"type": "single_choice", "choices": ["a", "b"], "answer": 1}
    assert check_answer(single, 1) and check_answer(single, "1") and not check_answer(single, 0)
    assert not check_answer(single, True) and not check_answer(single, "x")
    multi = {"type": "multiple_choice", "choices": ["a", "b", "c"], "answers": [0, 2]}
    assert check_answer(multi, [2, 0]) and not check_answer(multi, [0]) and not check_answer(multi, "02")
    numeric = {"type": "numeric", "answer": 3.5, "tolerance": 0.1}
    assert check_answer(numeric, 3.45) and check_answer(numeric, "3,5") and not check_answer(numeric, 3.7)
    assert check_answer({"type": "numeric", "answer": 0.3}, 0.1 + 0.2)
    assert not check_answer(numeric, "nan") and not check_answer(numeric, None)
    text = {"type": "text", "answers": ["Bruxelles", "Brussel"]}
    assert check_answer(text, "  bruxellés ") and check_answer(text, "BRUSSEL") and not check_answer(text, "")
    assert check_answer({"type": "text", "answers": ["New  York"]}, "new york")
    with pytest.raises(ValueError):
        check_answer(QUESTION, 7)
