"""The exercise player, as a learner meets it: one question, feedback, hints, mastery, records."""

from __future__ import annotations

import html as htmllib
import json
import re
import sqlite3
import sys
from pathlib import Path

import pytest

# --import-mode=importlib does not put test folders on sys.path; the helpers must be importable.
sys.path.insert(0, str(Path(__file__).parent))

from conftest import PACK_ID, Player  # noqa: E402
from passerelle.server.learning.events import ID_PATTERN  # noqa: E402


def events(app, who: str | None = None) -> list[dict]:
    """Progress events in the box, oldest first (of one learner's uuid when given)."""
    db = sqlite3.connect(app.config["DB_PATH"])
    sql = "SELECT subject, payload FROM ops WHERE kind = 'event'"
    rows = db.execute(sql + (" AND subject = ?" if who else "") + " ORDER BY version",
                      [who] if who else []).fetchall()
    db.close()
    return [{"subject": s, **json.loads(p)} for s, p in rows if json.loads(p).get("pack_id") == PACK_ID]


def of_type(found: list[dict], kind: str) -> list[dict]:
    return [e for e in found if e["type"] == kind]


def text(page: str) -> str:
    """The visible text of a page, whitespace folded."""
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def progress_sentence(page: str) -> str:
    return text(re.search(r'<p class="progress-sentence">(.*?)</p>', page, re.S).group(1))


def right(player: Player) -> str:
    """The right answer to the question on the page (the pack's exercises are known)."""
    if 'data-question="' not in player.html:
        player.open()
    qid = player.question_id
    prompt = text(player.prompt)
    if qid == "add":
        a, b = map(int, re.findall(r"\d+", prompt))
        return str(a + b)
    if qid == "times":
        return str(int(re.findall(r"\d+", prompt)[0]) * 10)
    return {"choice": "1", "litres": "1.5", "capital": "Brussels"}.get(qid, "1")


@pytest.fixture
def amina(installed, as_user):
    return as_user("amina")


# --- one question at a time, feedback ------------------------------------------------------

def test_one_question_at_a_time_in_order(amina):
    player = Player(amina, "types/all")
    page = player.open()
    assert page.count('data-question="') == 1 and player.question_id == "choice"
    # No "Question 1 of 5" that starts again while more right answers are needed: the
    # progress shown is towards mastery.
    assert "Question 1 of" not in text(page)
    assert "to master this exercise" in progress_sentence(page)
    assert "<strong>strongest</strong>" in page  # the prompt is Markdown
    assert "habits" not in page and "capital of Belgium" not in page
    player.url += "?more=1"  # on after mastery: every question, in order
    seen = []
    for _ in range(5):
        seen.append(player.question_id)
        player.answer(right(player))
        player.next()
    assert seen == ["choice", "habits", "litres", "capital", "add"]
    assert player.question_id == "choice"  # then it starts again


def test_right_answer_says_correct_and_shows_progress(amina):
    player = Player(amina, "types/all")
    player.open()
    assert progress_sentence(player.html) == "Get 4 right out of 5 to master this exercise."
    response = player.answer("1")
    assert response.status_code == 200
    page = player.html
    assert 'class="feedback is-right"' in page and "Correct!" in page
    assert "Your answer: correct horse battery staple" in text(page)
    assert "The right answer" not in page
    assert page.count("dot-right") == 1 and page.count("dot-empty") == 4
    assert progress_sentence(page) == "1 correct so far — 4 needed out of 5"
    assert "Next question" in page


def test_wrong_answer_shows_the_explanation_and_the_right_answer(amina):
    player = Player(amina, "types/all")
    player.answer("0")
    page = player.html
    assert 'class="feedback is-wrong"' in page and 'role="alert"' in page and "Not quite." in page
    visible = text(page)
    assert "Your answer: P@ss1" in visible
    assert "The right answer: correct horse battery staple" in visible
    assert "A long passphrase has far more combinations." in visible
    assert page.count("dot-wrong") == 1


def test_multiple_choice_needs_exactly_the_right_set(amina):
    player = Player(amina, "types/all")
    player.answer("1")
    player.next()
    assert player.question_id == "habits"
    player.post("check", ["0"])
    assert "Not quite." in player.html
    assert "The right answer: Lock your tablet, Update apps" in text(player.html)
    player.next()
    player.next()  # a stale "next" (already moved on) changes nothing
    assert player.question_id == "litres"


def test_hints_are_revealed_one_by_one_and_keep_the_typed_answer(amina):
    player = Player(amina, "types/all")
    page = player.open()
    assert "Length matters" not in page and "Show a hint" in page
    first = player.post("hint", "2")
    assert first.status_code == 200
    assert "Length matters more than symbols." in player.html and "Count the letters." not in player.html
    assert re.search(r'value="2"\s+required\s+checked', player.html)  # the choice made is kept
    before_second = player.html
    player.post("hint", page=before_second)
    assert "Count the letters." in player.html and "Show another hint" not in player.html
    # The same form posted again (a double tap) does not skip ahead or break anything.
    player.post("hint", page=before_second)
    assert player.html.count("<li>") >= 2 and "Count the letters." in player.html
    # The next question starts without hints.
    player.answer("1")
    player.next()
    assert "Length matters" not in player.html


def test_text_answers_ignore_case_accents_and_spaces(amina):
    player = Player(amina, "types/all")
    for _ in range(3):
        player.answer(right(player))
        player.next()
    assert player.question_id == "capital"
    player.post("hint", "  BRUXELLÉS ")  # no hints for this question: no button, nothing breaks
    player.answer("  BRUXELLÉS ")
    assert "Correct!" in player.html


@pytest.mark.parametrize("given, correct", [
    ("1.5", True), ("1,7", True), (" 1.25 ", True), ("1.8", False), ("-1.5", False)])
def test_numeric_answers_within_the_tolerance(amina, given, correct):
    player = Player(amina, "types/all")
    for _ in range(2):
        player.answer(right(player))
        player.next()
    assert player.question_id == "litres"
    assert 'inputmode="decimal"' in player.html and "data-numpad" in player.html
    player.answer(given)
    assert ("Correct!" in player.html) is correct
    if not correct:
        assert "The right answer: 1.5" in text(player.html)


def test_not_a_number_is_an_announced_error_not_a_wrong_answer(installed, amina, box):
    player = Player(amina, "types/all")
    for _ in range(2):
        player.answer(right(player))
        player.next()
    response = player.answer("a bottle")
    assert response.status_code == 422
    assert re.search(r'role="alert">Write only a number', player.html)
    assert 'aria-invalid="true"' in player.html and 'value="a bottle"' in player.html
    assert len(of_type(events(installed, box.ids["amina"]), "answer")) == 2
    response = player.post("check")  # nothing chosen or typed
    assert response.status_code == 422 and 'role="alert"' in player.html


def test_an_empty_choice_is_an_error(amina):
    player = Player(amina, "types/all")
    player.open()
    response = player.post("check")
    assert response.status_code == 422
    assert "Choose one answer, then press" in player.html and player.question_id == "choice"


# --- generated questions ---------------------------------------------------------------

def test_generated_question_is_checked_against_the_drawn_values(amina):
    player = Player(amina, "types/all")
    for _ in range(4):
        player.answer(right(player))
        player.next()
    assert player.question_id == "add"
    a, b = map(int, re.findall(r"\d+", text(player.prompt)))
    player.answer(str(a + b + 1))
    assert "Not quite." in player.html
    assert f"The right answer: {a + b}" in text(player.html)
    assert f"{a} + {b} = {a + b}" in text(player.html)  # {answer} in the explanation


def test_generated_values_never_come_twice_in_a_row(amina):
    player = Player(amina, "generated/tiny")
    player.open()
    prompts = []
    for _ in range(40):  # two possible draws: a repeat would show up quickly
        prompts.append(text(player.prompt))
        player.answer(right(player))
        assert "Correct!" in player.html
        player.next()
    assert all(x != y for x, y in zip(prompts, prompts[1:], strict=False))
    assert set(prompts) == {"How much is 1 times ten?", "How much is 2 times ten?"}


def test_reloading_keeps_the_same_draw(amina):
    player = Player(amina, "generated/tiny")
    player.open()
    first = player.prompt
    player.open()
    assert player.prompt == first


def test_generated_answers_with_decimals_use_the_tolerance(amina):
    player = Player(amina, "generated/divide")
    player.open()
    a = int(re.findall(r"\d+", text(player.prompt))[0])
    player.answer(f"{a / 2:.2f}".replace(".", ","))
    assert "Correct!" in player.html


# --- mastery and records ---------------------------------------------------------------

def answer_pattern(installed, box, player: Player, pattern: str) -> list[bool]:
    """Answer 'T'/'F' in turn; the mastered flag after each answer."""
    flags = []
    for mark in pattern:
        player.answer("1" if mark == "T" else "0")
        flags.append("Congratulations" in player.html)
        player.next()
    return flags


@pytest.mark.parametrize("node, pattern, celebrated_at", [
    ("mastery/m-of-n", "TFFTFT", 5),
    ("mastery/m-of-n", "TT", 1),
    ("mastery/streak", "TTFTTT", 5),
    ("mastery/streak", "TTFTTF", None),
])
def test_mastery_reached_exactly_when_it_should(installed, box, amina, node, pattern,
                                                celebrated_at):
    player = Player(amina, node)
    flags = answer_pattern(installed, box, player, pattern)
    assert [i for i, f in enumerate(flags) if f] == ([] if celebrated_at is None else [celebrated_at])
    found = events(installed, box.ids["amina"])
    assert len(of_type(found, "answer")) == len(pattern)
    assert len(of_type(found, "completed")) == (0 if celebrated_at is None else 1)
    assert len(of_type(found, "started")) == 1


def test_completed_once_even_when_practising_on(installed, box, amina):
    player = Player(amina, "mastery/m-of-n")
    answer_pattern(installed, box, player, "TT")
    page = player.open()
    # Mastered: the way back to the topic, no more questions unless asked for.
    assert "You have mastered this exercise." in page and "Back to the topic" in page
    assert page.count("mastered this exercise") == 1  # said once, not by a badge as well
    assert 'data-question="' not in page and "Keep practising" in page
    player.url += "?more=1"
    answer_pattern(installed, box, player, "FFFTTTT")  # slips, then masters "again"
    page = player.open()
    assert "You have mastered this exercise." in page  # kept after the slips
    found = events(installed, box.ids["amina"])
    assert len(of_type(found, "completed")) == 1 and len(of_type(found, "answer")) == 9
    db = sqlite3.connect(installed.config["DB_PATH"])
    row = db.execute("SELECT completed_version IS NOT NULL, answers, correct, progress FROM progress"
                     " WHERE learner_uuid = ? AND node_id = 'mastery/m-of-n'",
                     [box.ids["amina"]]).fetchone()
    assert row == (1, 9, 6, 1.0)


def test_do_all_needs_every_question(installed, box, amina):
    player = Player(amina, "mastery/do-all")
    done = []
    for mark in "TFTT":  # one, two (wrong), three, then one again
        player.answer("1" if mark == "T" else "0")
        done.append("Congratulations" in player.html)
        player.next()
    assert done == [False, False, False, False]
    assert progress_sentence(player.html) == "2 of 3 questions answered correctly"
    assert player.question_id == "two"
    player.answer("1")
    assert "Congratulations" in player.html
    assert len(of_type(events(installed, box.ids["amina"]), "completed")) == 1


def test_answer_events_carry_what_the_api_expects(installed, box, amina):
    player = Player(amina, "types/all")
    player.answer("0")
    player.next()
    player.answer(["0", "2"])
    answers = of_type(events(installed, box.ids["amina"]), "answer")
    assert [(e["question_id"], e["correct"], e["answer"]) for e in answers] == [
        ("choice", False, 1 - 1), ("habits", True, [0, 2])]
    assert answers[1]["progress"] == pytest.approx(0.25)
    assert all(re.fullmatch(ID_PATTERN, e["event_id"]) for e in events(installed))
    assert len({e["event_id"] for e in events(installed)}) == len(events(installed))


def test_a_double_tap_records_one_answer(installed, box, amina):
    player = Player(amina, "mastery/m-of-n")
    page = player.open()
    player.answer("1", page=page)
    player.answer("1", page=page)  # the same form again: already answered
    assert len(of_type(events(installed, box.ids["amina"]), "answer")) == 1
    assert "Correct!" in player.html


def test_another_learners_answers_do_not_count(installed, box, as_user):
    bart = Player(as_user("bart"), "mastery/m-of-n")
    answer_pattern(installed, box, bart, "TT")
    amina = Player(as_user("amina"), "mastery/m-of-n")
    page = amina.open()
    assert "mastered" not in progress_sentence(page) and "dot-right" not in page
    amina.answer("1")
    assert "Congratulations" not in amina.html
    amina.next()
    amina.answer("1")
    assert "Congratulations" in amina.html
    completed = of_type(events(installed), "completed")
    assert sorted(e["subject"] for e in completed) == sorted([box.ids["bart"], box.ids["amina"]])


def test_a_guest_practises_but_nothing_is_recorded(installed, as_user):
    before = sqlite3.connect(installed.config["DB_PATH"]).execute(
        "SELECT count(*) FROM ops WHERE kind = 'event' AND entity = 'progress'").fetchone()[0]
    guest = Player(as_user(None), "mastery/m-of-n")
    page = guest.open()
    assert "your answers are not saved" in page
    guest.answer("0")
    assert "Not quite." in guest.html
    guest.next()
    guest.answer("1")
    guest.next()
    guest.answer("1")
    assert "Congratulations" in guest.html  # mastery from the session
    guest.next()
    assert "You have mastered this exercise." in guest.html
    after = sqlite3.connect(installed.config["DB_PATH"]).execute(
        "SELECT count(*) FROM ops WHERE kind = 'event' AND entity = 'progress'").fetchone()[0]
    assert after == before


def test_staff_may_try_exercises_without_records(installed, as_user):
    fatou = Player(as_user("fatou"), "mastery/m-of-n")
    assert "the answers of staff are not recorded" in fatou.open()
    fatou.answer("1")
    assert "Correct!" in fatou.html
    assert events(installed) == []


# --- safety, size, no JavaScript ---------------------------------------------------------

def test_a_hostile_answer_is_escaped_never_run(installed, box, amina):
    player = Player(amina, "types/all")
    for _ in range(3):
        player.answer(right(player))
        player.next()
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>' + "A" * 100_000
    response = player.answer(hostile)
    assert response.status_code == 200 and "Not quite." in player.html
    assert "<script>alert" not in player.html and "<img src=x" not in player.html
    assert "&lt;script&gt;" in player.html
    recorded = of_type(events(installed, box.ids["amina"]), "answer")[-1]["answer"]
    assert len(recorded) <= 200
    assert len(response.request.headers.get("Cookie", "")) < 1500


def test_the_session_stays_small_across_many_exercises(installed, amina):
    nodes = ["types/all", "mastery/m-of-n", "mastery/streak", "mastery/do-all",
             "mastery/shuffled", "generated/tiny", "generated/divide"]
    for node in nodes:
        player = Player(amina, node)
        player.answer("مرحبا" * 20 if node == "types/all" else "1")
        cookie = amina.get_cookie("passerelle_session")
        assert cookie is not None and len(cookie.value) < 1200, (node, len(cookie.value))


def test_randomized_rounds_show_each_question_once(amina):
    player = Player(amina, "mastery/shuffled")
    player.url += "?more=1"  # practising on after mastery
    player.open()
    order = []
    for _ in range(12):
        order.append(player.question_id)
        player.answer("1")
        player.next()
    for start in (0, 4, 8):
        assert sorted(order[start:start + 4]) == ["q1", "q2", "q3", "q4"]
    assert all(x != y for x, y in zip(order, order[1:], strict=False))


def test_the_page_works_with_plain_forms(amina):
    page = Player(amina, "types/all").open()
    assert re.search(r'<form method="post" action="/practice/[^"]+"', page)
    assert "<script>" not in page and not re.search(r"\son[a-z]+=", page)  # no inline code
    assert re.search(r'<script src="/static/[0-9a-f]{10}/numpad\.js" defer></script>', page)
    assert re.search(r'<link rel="stylesheet" href="/static/[0-9a-f]{10}/practice\.css">', page)
    for control in re.findall(r'<input type="radio" id="([^"]+)"', page):
        assert f'<label class="choice" for="{control}">' in page


def test_a_post_without_the_csrf_token_is_refused(amina, installed, box):
    response = amina.post(f"/practice/{PACK_ID}/mastery/m-of-n",
                          data={"action": "check", "answer": "1", "attempt": "0"})
    assert response.status_code == 400
    assert events(installed, box.ids["amina"]) == []


@pytest.mark.parametrize("path", [f"/practice/{PACK_ID}/nope", f"/practice/{PACK_ID}/mastery",
                                  "/practice/no-such-pack/x"])
def test_only_exercises_are_practised(amina, path):
    assert amina.get(path).status_code == 404


def test_back_to_the_topic(amina):
    page = Player(amina, "mastery/m-of-n").open()
    assert f'href="/learn/{PACK_ID}/mastery"' in page


def test_arabic_digits_and_decimal_mark_are_numbers(amina):
    player = Player(amina, "generated/divide")
    player.open()
    a = int(re.findall(r"\d+", text(player.prompt))[0])
    arabic = str.maketrans("0123456789.", "٠١٢٣٤٥٦٧٨٩٫")
    typed = f"{a / 2:g}".translate(arabic)
    player.answer(typed)
    assert "Correct!" in player.html and f"Your answer: {typed}" in text(player.html)


def test_after_mastery_the_way_on_instead_of_more_questions(amina):
    player = Player(amina, "mastery/m-of-n")
    player.answer("1")
    player.next()
    page = player.answer("1").get_data(as_text=True)
    assert "Congratulations" in page
    # The feedback offers the way back (or on), and practising more only as a choice.
    assert "Back to the topic" in page and "Keep practising" in page
    assert 'value="next" class="button big"' not in page
    page = player.next().get_data(as_text=True)
    assert 'data-question="' not in page and "You have mastered this exercise." in page
    assert 'data-question="' in amina.get(player.url + "?more=1").get_data(as_text=True)
