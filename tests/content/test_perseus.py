"""Khan Academy Perseus questions: conversion, and answers checked as Khan Academy checks them."""

from __future__ import annotations

import io

import pytest
from kolibri_channel import PNG, QUESTIONS, item, perseus_zip
from passerelle.content import UnsafePack, check_answer, perseus


def number(value, **answer) -> dict:
    return {"type": "numeric-input", "coefficient": False, "answers": [
        {"value": value, "status": "correct", "max_error": 0.0, "simplify": "required", "strict": False,
         "forms": [], **answer}]}


def q(widget) -> dict:
    return {"id": "x", "type": "perseus", "prompt": "[[\u2603 w1]]", "widgets": {"w1": widget}}


@pytest.mark.parametrize("typed, expected", [
    ("7", 7), (" 1 000 ", 1000), ("1,000,000", 1_000_000), ("3,5", 3.5), ("3.5", 3.5), (".5", 0.5),
    ("-2", -2), ("\u22122", -2), ("1/2", 0.5), ("3 1/2", 3.5), ("\\frac{3}{4}", 0.75), ("50%", 0.5),
])
def test_numbers_are_read_in_every_form_khan_academy_accepts(typed, expected):
    assert perseus.read_number(typed).value == pytest.approx(expected)


@pytest.mark.parametrize("typed", ["", "abc", "1/0", "2 5/3", "1..2", "3,5,1"])
def test_what_is_not_a_number_is_not_read(typed):
    assert perseus.read_number(typed) is None


def test_pi_and_percent_forms():
    assert perseus.read_number("2pi").value == pytest.approx(6.283185307)
    assert perseus.read_number("\u03c0/2").form == "pi"
    assert perseus.grade_number(number(0.25), "25%")[0] == "correct"


def test_simplification_rules():
    assert perseus.grade(q(number(0.5)), {"w1": "2/4"}) == ("invalid", "simplify")  # required: try again
    assert perseus.grade(q(number(0.5, simplify="enforced")), {"w1": "2/4"})[0] == "wrong"
    assert perseus.grade(q(number(0.5, simplify="optional")), {"w1": "2/4"})[0] == "correct"
    assert perseus.grade(q(number(0.5)), {"w1": "1/2"})[0] == "correct"


def test_tolerance_strict_forms_and_wrong_answers():
    assert perseus.grade(q(number(3.14, max_error=0.01)), {"w1": "3,141"})[0] == "correct"
    assert perseus.grade(q(number(3.14)), {"w1": "3.2"})[0] == "wrong"
    assert perseus.grade(q(number(0.5, strict=True, forms=["proper"])), {"w1": "0.5"})[0] == "wrong"
    two = number(2)
    two["answers"].append({"value": 3, "status": "wrong", "max_error": 0, "simplify": "optional",
                           "strict": False, "forms": []})
    assert perseus.grade(q(two), {"w1": "3"})[0] == "wrong"
    assert perseus.grade(q(number(2)), {"w1": ""}) == ("invalid", "empty")


def test_radio_dropdown_and_several_widgets():
    radio = {"type": "radio", "choices": ["a", "b", "c"], "correct": [0, 2], "multiple": True, "graded": True}
    assert perseus.grade(q(radio), {"w1": ["2", "0"]})[0] == "correct"
    assert perseus.grade(q(radio), {"w1": ["0"]})[0] == "wrong"
    drop = {"type": "dropdown", "choices": ["<", ">"], "correct": 1, "placeholder": "", "graded": True}
    both = {"id": "x", "type": "perseus", "prompt": "", "widgets": {"w1": drop, "w2": number(4)}}
    assert check_answer(both, {"w1": "1", "w2": "4"}) is True
    assert check_answer(both, {"w1": "0", "w2": "4"}) is False


def test_a_perseus_file_converts_skipping_unsupported_widgets():
    ex = perseus.read_exercise(io.BytesIO(perseus_zip(QUESTIONS, images={"dot.png": PNG})))
    assert (ex.total, ex.playable, dict(ex.skipped)) == (4, 3, {"orderer": 1})
    first = ex.questions[0]
    assert first["widgets"]["w1"]["type"] == "input-number" and "[[\u2603 w1]]" in first["prompt"]
    assert first["hints"] == ["Count on from $3$.", "$3 + 4 = 7$"]
    assert "LOCALPATH" not in first["prompt"] and "sha256:" in first["prompt"]
    assert ex.mastery == {"model": "m_of_n", "m": 2, "n": 3}


def test_a_question_whose_image_is_missing_is_skipped():
    ex = perseus.read_exercise(io.BytesIO(perseus_zip({"q1": QUESTIONS["q1"]})))
    assert ex.playable == 0 and ex.skipped == {"missing image": 1}


def test_mastery_models_map_to_ours():
    assert perseus.mastery_of({"type": "num_correct_in_a_row_10"}) == {"model": "streak", "n": 10}
    assert perseus.mastery_of('{"type": "do_all"}') == {"model": "do_all"}
    assert perseus.mastery_of({"mastery_model": "m_of_n", "m": 4, "n": 6}) == {"model": "m_of_n", "m": 4, "n": 6}
    assert perseus.mastery_of({"type": "skill_check"}) == {"model": "m_of_n", "m": 3, "n": 5}


def test_a_zip_bomb_is_refused():
    buf = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("exercise.json", "{}")
        zf.writestr("x.json", b" " * (32 * 1024 * 1024))
    with pytest.raises(UnsafePack, match="zip bomb"):
        perseus.read_exercise(io.BytesIO(buf.getvalue()))


def test_math_becomes_safe_mathml():
    from passerelle.kiosk import perseus_view

    html = str(perseus_view.markdown_math(r"Add $\blue{3} + \dfrac{1}{2}$ and \$5"))
    assert "<math" in html and 'mathcolor="#1865f2"' in html and "$5" in html
    evil = str(perseus_view.tex_to_mathml(r"\text{<script>alert(1)</script>} \href{javascript:x}{y}"))
    assert "<script" not in evil and "javascript" not in evil
    assert "tex" in str(perseus_view.tex_to_mathml(r"\begin{bogus")) or "<math" in str(
        perseus_view.tex_to_mathml(r"\begin{bogus"))


def test_widgets_render_as_form_fields_where_the_question_places_them():
    from passerelle.kiosk import perseus_view

    ex = perseus.read_exercise(io.BytesIO(perseus_zip(QUESTIONS, images={"dot.png": PNG})))
    html = str(perseus_view.question_html(ex.questions[0], {"w1": "12"}))
    assert 'name="w1"' in html and 'value="12"' in html and "/files/" in html
    radio = str(perseus_view.question_html(ex.questions[2], {}))
    assert radio.count('type="radio"') == 2 and "<fieldset" in radio
    assert item("x", {})["question"]["content"] == "x"


def expression(*answers) -> dict:
    return {"type": "expression", "functions": [], "answers": [
        {"value": "2x+3", "status": "correct", "form": False, "simplify": False, **a} for a in answers]}


@pytest.mark.parametrize("typed, verdict", [
    ("2x+3", "correct"), ("3+2x", "correct"), ("2*x+3", "correct"), ("2(x+1.5)", "correct"),
    ("x+x+3", "correct"), ("\\frac{4x+6}{2}", "correct"), ("3 + 2 \\cdot x", "correct"), ("2x+4", "wrong"),
    ("x^2", "wrong"), ("2y+3", "wrong"), ("2x+", "invalid"), ("", "invalid"), ("2x+3=y", "invalid"),
    ("__import__('os')", "invalid"), ("(" * 300, "invalid"),
])
def test_an_expression_is_checked_for_equivalence_without_eval(typed, verdict):
    assert perseus.grade(q(expression({})), {"w1": typed})[0] == verdict


def test_expression_form_simplification_and_wrong_answers():
    factored = expression({"value": "(x+1)(x-1)", "form": True})
    assert perseus.grade(q(factored), {"w1": "(x-1)(x+1)"})[0] == "correct"
    assert perseus.grade(q(factored), {"w1": "x^2-1"})[0] == "wrong"
    assert perseus.grade_expression(factored, "x^2-1") == ("wrong", "form")
    simple = expression({"simplify": True})
    assert perseus.grade_expression(simple, "x+x+3") == ("wrong", "simplify")
    assert perseus.grade_expression(simple, "2x+1+2") == ("wrong", "simplify")
    assert perseus.grade(q(simple), {"w1": "3+2x"})[0] == "correct"
    trap = expression({"value": "2x-3", "status": "wrong"}, {})
    assert perseus.grade(q(trap), {"w1": "2x-3"})[0] == "wrong"
    assert perseus.grade(q(expression({"value": "\\sqrt{x}"})), {"w1": "x^(1/2)"})[0] == "correct"
    assert perseus.right_answers(q(trap)) == ["2x+3"]


def test_an_expression_widget_converts_and_unreadable_answers_are_dropped():
    ok = perseus.convert_item("e1", item("Simplify $2x + 3x$. [[\u2603 expression 1]]", {"expression 1": {
        "type": "expression", "options": {"answerForms": [
            {"value": "5x", "form": False, "simplify": True, "considered": "correct"},
            {"value": "\\weird{x}", "considered": "correct"}], "functions": ["f", "g", "h"]}}}))[0]
    widget = ok["widgets"]["w1"]
    assert widget["type"] == "expression" and [a["value"] for a in widget["answers"]] == ["5x"]
    assert perseus.grade(ok, {"w1": "5x"})[0] == "correct"
    unreadable = perseus.convert_item("e2", item("[[\u2603 expression 1]]", {"expression 1": {
        "type": "expression", "options": {"answerForms": [{"value": "\\weird{x}", "considered": "correct"}]}}}))
    assert unreadable == (None, "expression (unusual options)")


def test_radio_choices_are_shuffled_per_seed_when_the_question_asks():
    converted = perseus.convert_item("r1", item("Pick [[\u2603 radio 1]]", {"radio 1": {"type": "radio", "options": {
        "randomize": True, "choices": [{"content": c, "correct": c == "c"} for c in "abcdef"]
        + [{"content": "None of the above", "isNoneOfTheAbove": True}]}}}))[0]
    widget = converted["widgets"]["w1"]
    orders = {tuple(perseus.choice_order(widget, f"run:{n}")) for n in range(20)}
    assert len(orders) > 1                                             # shuffled
    assert all(o[-1] == 6 and sorted(o) == list(range(7)) for o in orders)  # "none of the above" stays last
    assert perseus.choice_order(widget, "run:3") == perseus.choice_order(widget, "run:3")  # a reload: same
    plain = {**widget, "shuffle": False}
    assert perseus.choice_order(plain, "run:3") == list(range(7))


def test_shuffled_choices_keep_their_own_values_in_the_page():
    from passerelle.kiosk import perseus_view as pv

    widget = {"type": "radio", "choices": list("abcdef"), "correct": [2], "multiple": False, "graded": True,
              "shuffle": True, "pinned": []}
    html = str(pv.question_html(q(widget), None, seed="k:1"))
    order = [int(v) for v in __import__("re").findall(r'value="([0-9])"', html)]
    assert sorted(order) == list(range(6)) and order == perseus.choice_order(widget, "k:1:w1")
    assert html == str(pv.question_html(q(widget), None, seed="k:1"))
    assert 'class="perseus-expression"' in str(pv.question_html(q(expression({})), None))
