"""Class and group upkeep: rename, the bin and back with the history kept, a copy for a new
term; groups renamed, their members changed, removed."""

import re

from passerelle.server import records
from passerelle.server.db import get_db
from passerelle.server.learning import lessons, upkeep
from passerelle.server.people import accounts

from tests.conftest import csrf_token


def a_lesson_for(app, box, class_uuid, **target) -> tuple[str, str]:
    with app.app_context():
        db = get_db()
        lesson = lessons.create_lesson(db, "Premiers pas", [
            {"pack_id": "demo-fr", "node_id": "basics/welcome"}], box.ids["fatou"])
        return lesson, lessons.assign(db, lesson, class_uuid, box.ids["fatou"], **target)


def test_a_class_is_renamed_by_its_facilitator_only(as_user, box):
    fatou = as_user("fatou")
    token = csrf_token(fatou)
    response = fatou.post(f"/manage/classes/{box.ids['class_a']}/edit",
                          data={"csrf_token": token, "name": "  Groupe A — automne ",
                                "description": "Le mardi"})
    assert response.status_code == 302
    page = fatou.get(f"/manage/classes/{box.ids['class_a']}").get_data(as_text=True)
    assert "Groupe A — automne" in page and "Le mardi" in page
    blank = fatou.post(f"/manage/classes/{box.ids['class_a']}/edit",
                       data={"csrf_token": token, "name": " "})
    assert blank.status_code == 400 and "a name of 1 to 80 characters" in blank.get_data(as_text=True)
    other = as_user("farid")
    assert other.post(f"/manage/classes/{box.ids['class_a']}/edit",
                      data={"csrf_token": csrf_token(other), "name": "Mine"}).status_code == 403


def test_a_deleted_class_goes_to_the_bin_and_comes_back_with_its_history(app, box, as_user):
    _lesson, _assignment = a_lesson_for(app, box, box.ids["class_a"])
    amina = as_user("amina")
    amina.post("/learn/demo-fr/basics/welcome/done", data={"csrf_token": csrf_token(amina)})
    assert len(amina.get("/api/v1/me/lessons").get_json()["lessons"]) == 1
    with app.app_context():
        db = get_db()
        accounts.mark_attendance(db, box.ids["session_a"], box.ids["amina"], True)
    fatou = as_user("fatou")
    token = csrf_token(fatou)
    confirm = fatou.get(f"/manage/classes/{box.ids['class_a']}/delete").get_data(as_text=True)
    assert "Delete the class Groupe A?" in confirm and "bin" in confirm
    done = fatou.post(f"/manage/classes/{box.ids['class_a']}/delete", data={"csrf_token": token},
                      follow_redirects=True).get_data(as_text=True)
    assert "The class Groupe A is in the bin." in done  # shown once, on the Classes page

    # Gone from the lists, the sign-in page and the learners' homes...
    assert "Groupe A" not in fatou.get("/manage").get_data(as_text=True)
    assert "Groupe A" not in as_user(None).get("/signin").get_data(as_text=True)
    assert amina.get("/api/v1/me/lessons").get_json()["lessons"] == []
    classes = fatou.get("/manage/classes").get_data(as_text=True)
    assert "Bin: classes deleted" in classes and "Put Groupe A back" in classes
    # ...but not from Farid's bin: it was not his class.
    assert "Put Groupe A back" not in as_user("farid").get("/manage/classes").get_data(as_text=True)
    # The history stays: progress, attendance, the learner's page.
    with app.app_context():
        db = get_db()
        assert lessons.learner_summary(db, box.ids["amina"])["completed"] == 1
        assert accounts.attendance(db, box.ids["session_a"]) == {box.ids["amina"]: True}
    assert "Resources completed: 1" in as_user("cora").get(
        f"/manage/learners/{box.ids['amina']}").get_data(as_text=True)

    farid = as_user("farid")
    assert farid.post(f"/manage/classes/{box.ids['class_a']}/restore",
                      data={"csrf_token": csrf_token(farid)}).status_code == 403
    assert fatou.post(f"/manage/classes/{box.ids['class_a']}/restore",
                      data={"csrf_token": token}).status_code == 302
    page = fatou.get(f"/manage/classes/{box.ids['class_a']}").get_data(as_text=True)
    assert "Amina" in page and "Premiers pas" in page
    assert len(amina.get("/api/v1/me/lessons").get_json()["lessons"]) == 1
    assert "Bin: classes deleted" not in fatou.get("/manage/classes").get_data(as_text=True)


def test_a_class_is_copied_for_a_new_term(app, box, as_user):
    lesson, _ = a_lesson_for(app, box, box.ids["class_a"])
    fatou = as_user("fatou")
    token = csrf_token(fatou)
    response = fatou.post(f"/manage/classes/{box.ids['class_a']}/copy",
                          data={"csrf_token": token, "name": "Groupe A 2027", "learners": "1",
                                "lessons": "1"})
    assert response.status_code == 302
    new = response.headers["Location"].rsplit("/", 1)[1]
    with app.app_context():
        db = get_db()
        assert accounts.get_class(db, new)["name"] == "Groupe A 2027"
        assert [u["display_name"] for u in accounts.members(db, new)] == ["Amina", "Bart"]
        assert [u["display_name"] for u in accounts.members(db, new, "facilitator")] == ["Fatou"]
        assert [a["lesson_uuid"] for a in lessons.assignments_of_class(db, new)] == [lesson]
        # The old class is as it was.
        assert [u["display_name"] for u in accounts.members(db, box.ids["class_a"])] == \
            ["Amina", "Bart"]
        bare = upkeep.copy_class(db, box.ids["class_a"], "Groupe A vide", box.ids["fatou"])
        assert accounts.members(db, bare) == [] and lessons.assignments_of_class(db, bare) == []
        assert [u["display_name"] for u in accounts.members(db, bare, "facilitator")] == ["Fatou"]
    assert "Groupe A 2027" in fatou.get("/manage").get_data(as_text=True)
    assert fatou.post(f"/manage/classes/{box.ids['class_a']}/copy",
                      data={"csrf_token": token, "name": ""}).status_code == 400


def test_a_group_is_renamed_changed_and_removed(app, box, as_user):
    fatou = as_user("fatou")
    token = csrf_token(fatou)
    fatou.post(f"/manage/classes/{box.ids['class_a']}/groups",
               data={"csrf_token": token, "name": "Débutants", "learner": [box.ids["amina"]]})
    page = fatou.get(f"/manage/classes/{box.ids['class_a']}").get_data(as_text=True)
    group = re.search(r'href="/manage/groups/([0-9a-f-]+)"', page).group(1)
    _lesson, assignment = a_lesson_for(app, box, box.ids["class_a"], group_uuid=group)
    assert len(as_user("amina").get("/api/v1/me/lessons").get_json()["lessons"]) == 1

    edit = fatou.get(f"/manage/groups/{group}").get_data(as_text=True)
    assert 'value="Débutants"' in edit
    response = fatou.post(f"/manage/groups/{group}", data={
        "csrf_token": token, "name": "Lecture", "learner": [box.ids["bart"]]})
    assert response.status_code == 302
    with app.app_context():
        found = next(g for g in lessons.groups_of(get_db(), box.ids["class_a"]))
        assert found["name"] == "Lecture" and found["members"] == {box.ids["bart"]}
    assert as_user("amina").get("/api/v1/me/lessons").get_json()["lessons"] == []
    assert len(as_user("bart").get("/api/v1/me/lessons").get_json()["lessons"]) == 1
    # A learner of another class cannot be put in the group.
    wrong = fatou.post(f"/manage/groups/{group}", data={
        "csrf_token": token, "name": "Lecture", "learner": [box.ids["chloe"]]})
    assert wrong.status_code == 400
    farid = as_user("farid")
    assert farid.get(f"/manage/groups/{group}").status_code == 403

    assert "Delete the group Lecture?" in fatou.get(
        f"/manage/groups/{group}/delete").get_data(as_text=True)
    assert fatou.post(f"/manage/groups/{group}/delete", data={"csrf_token": token}).status_code == 302
    with app.app_context():
        db = get_db()
        assert lessons.groups_of(db, box.ids["class_a"]) == []
        assert lessons.get_assignment(db, assignment)["open"] == 0
    assert as_user("bart").get("/api/v1/me/lessons").get_json()["lessons"] == []


def test_the_bin_keeps_every_version_in_the_operation_log(app, box):
    with app.app_context():
        db = get_db()
        upkeep.rename_class(db, box.ids["class_b"], "Groupe B bis")
        upkeep.delete_class(db, box.ids["class_b"])
        assert [c["name"] for c in upkeep.removed_classes(db, accounts.get_user(
            db, box.ids["cora"]))] == ["Groupe B bis"]
        kinds = [op.kind for op in records.history(db, "class", box.ids["class_b"])]
        assert kinds == ["put", "put", "delete"]
        assert upkeep.restore_class(db, box.ids["class_b"])["name"] == "Groupe B bis"
        assert upkeep.restore_class(db, box.ids["class_b"])["name"] == "Groupe B bis"  # twice: fine


def test_a_deleted_class_still_counts_in_its_facilitators_impact_report(app, box, as_user):
    from datetime import UTC, datetime

    with app.app_context():
        db = get_db()
        accounts.mark_attendance(db, box.ids["session_a"], box.ids["amina"], True)
    today = datetime.now(UTC).date().isoformat()
    fatou = as_user("fatou")

    def reached() -> str:
        page = fatou.get(f"/manage/reports?start={today}&end={today}").get_data(as_text=True)
        return re.search(r'data-cell="summary\|all\|sessions">([^<]*)<', page).group(1)

    assert reached() == "1"
    with app.app_context():
        upkeep.delete_class(get_db(), box.ids["class_a"])
    assert reached() == "1"  # the session it held is still Fatou's to report
