"""Quizzes that assess: made, started for learners, answered, ended, reported on."""

import csv
import io

import pytest
from passerelle.server import records
from passerelle.server.db import get_db
from passerelle.server.errors import Forbidden, InvalidInput
from passerelle.server.learning import events, lessons, progress, quizzes

Q1, Q2 = "demo-fr/basics/quiz#q1", "demo-fr/basics/quiz#q2"


@pytest.fixture(params=["sqlite", "postgresql"])
def box(request, box_template, tmp_path):
    """Quizzes on a box (SQLite) and on a programme's hub (PostgreSQL)."""
    import shutil

    from tests.conftest import Box, postgresql_box

    if request.param == "postgresql":
        return postgresql_box(request, tmp_path)
    template, ids = box_template
    shutil.copytree(template, tmp_path / "box")
    return Box(tmp_path / "box", ids)


@pytest.fixture
def db(app):
    with app.app_context(), app.test_request_context():
        yield get_db()


def make(db, box, sections=None, shuffle=False):
    sections = sections or [{"title": "Début", "questions": [Q1]},
                            {"title": "Calcul", "questions": [Q2]}]
    return quizzes.create_quiz(db, "Évaluation", sections, shuffle, box.ids["fatou"])


def answer_all(db, run_uuid, learner, attempt, right):
    """Every question of the run answered, right or wrong as ``right`` says (item -> bool)."""
    run = quizzes.get_run(db, run_uuid)
    return quizzes.submit(db, run_uuid, learner, attempt, [
        {"item": i["item"], "answer": "x", "correct": right.get(i["item"], False)}
        for i in quizzes.items(run)])


def test_a_quiz_is_made_of_installed_questions_in_sections(db, box):
    uuid = make(db, box)
    quiz = quizzes.get_quiz(db, uuid)
    assert [s["title"] for s in quiz["sections"]] == ["Début", "Calcul"]
    assert quizzes.section_keys(quiz)[1]["questions"] == [Q2]
    assert {q["key"] for q in quizzes.available(db)} >= {Q1, Q2}
    with pytest.raises(InvalidInput) as refused:
        make(db, box, [{"title": "", "questions": ["demo-fr/basics/quiz#nope"]}])
    assert "nope" in str(refused.value.details["questions"])
    with pytest.raises(InvalidInput):
        make(db, box, [{"title": "", "questions": [Q1, Q1]}])
    with pytest.raises(InvalidInput):
        make(db, box, [{"title": "Vide", "questions": []}])


def test_a_question_is_replaced_by_another_of_its_exercise(db, box):
    assert quizzes.replacement(db, [Q1], Q1) == Q2
    assert quizzes.replacement(db, [Q1, Q2], Q1) is None  # no other question left
    assert quizzes.replacement(db, [], "demo-fr/basics/welcome#q1") is None


def test_a_started_quiz_keeps_its_questions_when_the_quiz_changes(db, box):
    uuid = make(db, box)
    run = quizzes.start(db, uuid, box.ids["class_a"], box.ids["fatou"])
    quizzes.update_quiz(db, uuid, "Autre", [{"title": "", "questions": [Q2]}], False)
    assert len(quizzes.items(quizzes.get_run(db, run))) == 2
    assert quizzes.get_run(db, run)["title"] == "Évaluation"


def test_learners_see_the_quiz_started_for_them_only(db, box):
    uuid = make(db, box)
    group = lessons.create_group(db, box.ids["class_a"], "Débutants")
    lessons.set_group_member(db, group, box.ids["amina"], True)
    run = quizzes.start(db, uuid, box.ids["class_a"], box.ids["fatou"], group_uuid=group)
    assert [r["uuid"] for r in quizzes.open_for(db, box.ids["amina"])] == [run]
    assert quizzes.open_for(db, box.ids["bart"]) == []
    assert quizzes.open_for(db, box.ids["chloe"]) == []
    with pytest.raises(InvalidInput):  # chosen learners must be of the class
        quizzes.start(db, uuid, box.ids["class_a"], box.ids["fatou"], learners=[box.ids["chloe"]])
    chosen = quizzes.start(db, uuid, box.ids["class_a"], box.ids["fatou"], learners=[box.ids["bart"]])
    assert [r["uuid"] for r in quizzes.open_for(db, box.ids["bart"])] == [chosen]
    with pytest.raises(Exception):  # noqa: B017 - not hers: refused whatever the form says
        answer_all(db, chosen, box.ids["amina"], 1, {})


def test_attempts_are_limited_and_a_resubmitted_form_counts_once(db, box):
    run = quizzes.start(db, make(db, box), box.ids["class_a"], box.ids["fatou"], attempts=2)
    amina = box.ids["amina"]
    assert answer_all(db, run, amina, 1, {0: True}) == 2
    assert answer_all(db, run, amina, 1, {0: True, 1: True}) == 0  # the same attempt again
    assert quizzes.attempts_made(db, run, amina) == {1: (1, 2)}
    with pytest.raises(Forbidden):
        answer_all(db, run, amina, 3, {})  # attempts go one after the other
    answer_all(db, run, amina, 2, {0: True, 1: True})
    with pytest.raises(Forbidden):
        answer_all(db, run, amina, 3, {})  # two allowed
    with pytest.raises(InvalidInput):
        quizzes.submit(db, run, box.ids["bart"], 1, [{"item": 0, "answer": "x", "correct": True}])


def test_an_ended_quiz_takes_no_more_answers(db, box):
    run = quizzes.start(db, make(db, box), box.ids["class_a"], box.ids["fatou"])
    quizzes.set_open(db, run, False)
    assert quizzes.open_for(db, box.ids["amina"]) == []
    with pytest.raises(Forbidden):
        answer_all(db, run, box.ids["amina"], 1, {})


def test_quiz_answers_are_learning_events_kept_apart_from_practice(db, box):
    run = quizzes.start(db, make(db, box), box.ids["class_a"], box.ids["fatou"])
    answer_all(db, run, box.ids["amina"], 1, {0: True})
    ops = db.execute("SELECT payload FROM ops WHERE kind = 'event' AND subject = ?",
                     [box.ids["amina"]]).fetchall()
    assert len(ops) == 2 and all('"quiz":"' + run + '"' in p for (p,) in ops)
    # An assessment never moves the exercise's practice, mastery or "most missed".
    assert progress.exercise_state(db, box.ids["amina"], "demo-fr", "basics/quiz").answers == []
    assert db.execute("SELECT count(*) FROM missed_questions").fetchone()[0] == 0


def test_a_tablet_cannot_post_quiz_answers(db, box):
    event = {"event_id": "t-1", "pack_id": "demo-fr", "node_id": "basics/quiz", "type": "answer",
             "correct": True, "quiz": "run", "attempt": 1, "item": 0}
    assert "quiz" not in events.validate_batch({"events": [event]})[0]
    with pytest.raises(InvalidInput) as refused:
        events.check_quiz_answer({**event, "attempt": 0, "item": -1})
    assert set(refused.value.details) == {"attempt", "item"}


def test_the_fold_keeps_the_same_answer_on_every_box(db, box):
    """The same place answered on two boxes apart: the lower version wins, in any order."""
    run = quizzes.start(db, make(db, box), box.ids["class_a"], box.ids["fatou"])
    base = {"pack_id": "demo-fr", "node_id": "basics/quiz", "type": "answer", "question_id": "q1",
            "quiz": run, "attempt": 1, "item": 0}
    early = records.Op("box-b", 1, "0000000000001.00000.box-b", "event", "progress",
                       box.ids["amina"], {**base, "event_id": "e1", "correct": True})
    late = records.Op("box-c", 1, "0000000000002.00000.box-c", "event", "progress",
                      box.ids["amina"], {**base, "event_id": "e2", "correct": False})
    odd = records.Op("box-d", 1, "0000000000003.00000.box-d", "event", "progress",
                     box.ids["amina"], {**base, "event_id": "e3", "attempt": "one"})
    with records.write_tx(db):
        records.apply(db, late)
        records.apply(db, early)
        records.apply(db, odd)  # from a box that placed it otherwise: kept in the log only
    assert quizzes.attempts_made(db, run, box.ids["amina"]) == {1: (1, 1)}


def test_the_report_gives_scores_attempts_and_the_most_missed_question(db, box):
    run = quizzes.start(db, make(db, box), box.ids["class_a"], box.ids["fatou"], attempts=0)
    amina, bart = box.ids["amina"], box.ids["bart"]
    answer_all(db, run, amina, 1, {0: True})
    answer_all(db, run, amina, 2, {0: True, 1: True})
    answer_all(db, run, bart, 1, {0: True})
    found = quizzes.report(db, run)
    scores = {u["display_name"]: (u["score"], u["total"], u["attempts"]) for u in found.learners}
    assert scores == {"Amina": (2, 2, 2), "Bart": (1, 2, 1)}
    assert [(q["number"], q["answers"], q["wrong"]) for q in found.questions] == [(1, 3, 0), (2, 3, 2)]
    assert found.most_missed[0]["number"] == 2
    assert found.most_missed[0]["missed_by"] == ["Bart"]
    assert found.most_missed[0]["text"].startswith("Combien font ")
    rows = list(csv.reader(io.StringIO(quizzes.report_csv(found).lstrip("\ufeff")), delimiter=";"))
    assert rows[0] == ["learner", "attempts", "score", "out_of", "percent", "Q1", "Q2"]
    assert rows[1] == ["Amina", "2", "2", "2", "100", "1", "1"]
    assert rows[2] == ["Bart", "1", "1", "2", "50", "1", "0"]
    assert rows[5][:3] == ["Q1", "Début", "Petit quiz"]


def test_the_order_is_the_learners_own_and_stays_within_sections(db, box):
    sections = [{"title": "A", "questions": [Q1, Q2]}]
    run = quizzes.get_run(db, quizzes.start(db, make(db, box, sections, shuffle=True),
                                            box.ids["class_a"], box.ids["fatou"]))
    orders = {tuple(i["item"] for i in quizzes.order_for(run, f"learner-{n}", 1)) for n in range(20)}
    assert orders == {(0, 1), (1, 0)}
    assert quizzes.order_for(run, "x", 1) == quizzes.order_for(run, "x", 1)
    question = {"type": "generated", "variables": {"a": {"min": 1, "max": 1000}}, "answer": "a",
                "prompt": "{a}"}
    assert quizzes.draw(question, "r", "x", 1, 0) == quizzes.draw(question, "r", "x", 1, 0)


# --- the pages, without JavaScript ------------------------------------------------------------

def _build_and_start(fatou, box, attempts="2"):
    import re

    from tests.conftest import csrf_token

    token = csrf_token(fatou)
    page = fatou.post("/manage/quizzes/new", data={
        "csrf_token": token, "title": "Test", "add": [Q1], "action": "add"}).get_data(as_text=True)
    assert f'value="0|{Q1}"' in page
    page = fatou.post("/manage/quizzes/new", data={
        "csrf_token": token, "title": "Test", "item": [f"0|{Q1}"], "action": "replace:0"}
    ).get_data(as_text=True)
    assert f'value="0|{Q2}"' in page and f'value="0|{Q1}"' not in page  # swapped
    page = fatou.post("/manage/quizzes/new", data={
        "csrf_token": token, "title": "Test", "item": [f"0|{Q2}"], "section_title": ["", "Deux"],
        "add": [Q1], "to": "0", "action": "section"}).get_data(as_text=True)
    assert "Section 2" in page
    response = fatou.post("/manage/quizzes/new", data={
        "csrf_token": token, "title": "Test", "item": [f"0|{Q1}", f"0|{Q2}"], "action": "save"})
    assert response.status_code == 302
    listing = fatou.get("/manage/quizzes").get_data(as_text=True)
    start = re.search(r'href="(/manage/quizzes/[^"]+/start/[^"]+)"', listing).group(1)
    response = fatou.post(start, data={"csrf_token": token, "who": "class", "attempts": attempts})
    assert response.status_code == 302
    return response.headers["Location"]


def test_a_quiz_made_started_answered_and_reported_through_the_pages(as_user, box):
    import re

    from tests.conftest import csrf_token

    fatou = as_user("fatou")
    assert "/manage/quizzes" in fatou.get("/manage").get_data(as_text=True)  # one tap from home
    run = _build_and_start(fatou, box)
    amina = as_user("amina")
    link = re.search(r'href="(/quiz/[^"]+)"', amina.get("/").get_data(as_text=True)).group(1)
    assert "Combien font" in amina.get(link).get_data(as_text=True)
    token = csrf_token(amina)
    asked = amina.post(link, data={"csrf_token": token, "attempt": "1", "a0": "0"})
    assert asked.status_code == 200 and "Submit anyway" in asked.get_data(as_text=True)
    unreadable = amina.post(link, data={"csrf_token": token, "attempt": "1", "a0": "0", "a1": "abc"})
    assert unreadable.status_code == 422 and "Write only a number" in unreadable.get_data(as_text=True)
    done = amina.post(link, data={"csrf_token": token, "attempt": "1", "a0": "0", "blank_ok": "1"})
    assert "1 out of 2" in amina.get(done.headers["Location"]).get_data(as_text=True)
    again = amina.post(link, data={"csrf_token": token, "attempt": "1", "a0": "1", "a1": "3"})
    assert again.status_code == 302  # the same attempt again: nothing recorded
    report = fatou.get(run).get_data(as_text=True)
    assert "1 out of 2" in report and "Combien font" in report and "not submitted" in report
    assert "The right answer:" in report
    sheet = fatou.get(run + "/report.csv")
    assert sheet.headers["Content-Type"].startswith("text/csv")
    assert '"Amina";1;1;2;50;1;0' in sheet.get_data(as_text=True)
    fatou.post(run + "/close", data={"csrf_token": csrf_token(fatou)})
    assert "/quiz/" not in amina.get("/").get_data(as_text=True)
    assert "This quiz has ended" in amina.get(link).get_data(as_text=True)
    # Farid does not facilitate this class: neither the report nor its file.
    farid = as_user("farid")
    assert farid.get(run).status_code == 403 and farid.get(run + "/report.csv").status_code == 403
    assert as_user("chloe").get(link).status_code == 404  # another class's learner


def test_staff_with_many_classes_choose_the_class_in_a_list(app, as_user, box):
    import re

    from passerelle.server.people import accounts

    with app.app_context():
        for name in ("C", "D", "E"):
            accounts.create_class(get_db(), f"Groupe {name}")
        make(get_db(), box)
    cora = as_user("cora")
    page = cora.get("/manage/quizzes").get_data(as_text=True)
    assert "Start it for" not in page and '<select id="class-' in page
    quiz = re.search(r'action="/manage/quizzes/([0-9a-f-]+)/start"', page).group(1)
    response = cora.get(f"/manage/quizzes/{quiz}/start?class_uuid={box.ids['class_b']}")
    assert response.headers["Location"].endswith(f"/manage/quizzes/{quiz}/start/{box.ids['class_b']}")
    assert "Groupe B" in cora.get(response.headers["Location"]).get_data(as_text=True)


def test_deleting_a_quiz_keeps_the_quizzes_already_started(db, box):
    from passerelle.server.errors import NotFound

    uuid = make(db, box)
    run = quizzes.start(db, uuid, box.ids["class_a"], box.ids["fatou"])
    answer_all(db, run, box.ids["amina"], 1, {0: True})
    quizzes.delete_quiz(db, uuid)
    assert uuid not in [q["uuid"] for q in quizzes.quizzes(db)]
    with pytest.raises(NotFound):
        quizzes.get_quiz(db, uuid)
    assert len(quizzes.items(quizzes.get_run(db, run))) == 2
    assert quizzes.report(db, run).learners  # answers and report stay


def test_the_builder_finds_questions_by_words_and_a_quiz_is_deleted_from_its_page(app, as_user, box):
    from tests.conftest import csrf_token

    with app.app_context():
        prompt = next(q["prompt"] for q in quizzes.available(get_db()) if q["key"] == Q1)

    fatou = as_user("fatou")
    token = csrf_token(fatou)
    everything = fatou.post("/manage/quizzes/new", data={"csrf_token": token, "action": "find"})
    assert f'value="{Q1}"' in everything.get_data(as_text=True)
    word = max(prompt.split(), key=len).upper()  # capitals do not matter
    found = fatou.post("/manage/quizzes/new", data={
        "csrf_token": token, "find": word, "item": [f"0|{Q2}"], "action": "find"}).get_data(as_text=True)
    assert f'value="{Q1}"' in found and f'value="0|{Q2}"' in found  # the quiz so far is kept
    assert "hold these words" in found
    nothing = fatou.post("/manage/quizzes/new", data={
        "csrf_token": token, "find": "zzzqqq", "action": "find"}).get_data(as_text=True)
    assert "No question holds these words." in nothing and 'name="add"' not in nothing
    saved = fatou.post("/manage/quizzes/new", data={
        "csrf_token": token, "title": "À jeter", "item": [f"0|{Q1}"], "action": "save"})
    assert saved.status_code == 302
    with app.app_context():
        uuid = next(q["uuid"] for q in quizzes.quizzes(get_db()) if q["title"] == "À jeter")
    confirm = fatou.get(f"/manage/quizzes/{uuid}/delete").get_data(as_text=True)
    assert "keep their questions, answers and reports" in confirm
    assert fatou.post(f"/manage/quizzes/{uuid}/delete", data={"csrf_token": token}).status_code == 302
    assert "The quiz À jeter is deleted." in fatou.get("/manage/quizzes").get_data(as_text=True)
    assert "À jeter" not in fatou.get("/manage/quizzes").get_data(as_text=True)
