"""Coach reports as CSV (Excel-friendly, through the one CSV writer) and as printable pages: the
class grid, a group, a lesson, a learner; a class's activity log for a date range."""

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from passerelle.server import records
from passerelle.server.db import get_db
from passerelle.server.learning import lessons
from passerelle.server.reports import coach


def rows(response) -> list[list[str]]:
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    body = response.data.decode("utf-8")
    assert body.startswith("\ufeff"), "a BOM, so Excel reads the accents"
    return list(csv.reader(io.StringIO(body[1:]), delimiter=";"))


@pytest.fixture
def worked(app, box):
    """A lesson of three resources for Groupe A, and one for a group of Amina alone; Amina
    finished the first, Bart got the quiz wrong three times. Bart's name is a formula."""
    with app.app_context():
        db = get_db()
        from passerelle.server.people import accounts

        accounts.update_user(db, box.ids["bart"], display_name="=HYPERLINK(1)")
        lesson = lessons.create_lesson(db, "Premiers pas", [
            {"pack_id": "demo-fr", "node_id": n} for n in
            ("basics/welcome", "basics/quiz", "basics/clip")], box.ids["fatou"])
        assignment = lessons.assign(db, lesson, box.ids["class_a"], box.ids["fatou"])
        group = lessons.create_group(db, box.ids["class_a"], "Débutants")
        lessons.set_group_member(db, group, box.ids["amina"], True)
        solo = lessons.create_lesson(db, "Vidéo", [{"pack_id": "demo-fr", "node_id": "basics/clip"}],
                                     box.ids["fatou"])
        lessons.assign(db, solo, box.ids["class_a"], box.ids["fatou"], group_uuid=group)
        records.event(db, box.ids["amina"], {
            "event_id": "a1", "pack_id": "demo-fr", "node_id": "basics/welcome",
            "type": "completed", "progress": 1.0, "seconds": 90,
            "occurred_at": "2026-11-20T09:15:00.000Z"})
        for i in range(3):
            records.event(db, box.ids["bart"], {
                "event_id": f"b{i}", "pack_id": "demo-fr", "node_id": "basics/quiz",
                "type": "answer", "correct": False, "question_id": "q1"})
    return {"assignment": assignment, "group": group}


def table(found: list[list[str]]) -> dict[str, dict[str, str]]:
    """A grid file as {learner: {resource: cell}} (the order of lessons assigned in the same
    second is not the point)."""
    return {r[0]: dict(zip(found[0][1:], r[1:], strict=True)) for r in found[1:]}


def test_the_class_grid_downloads_as_a_spreadsheet(as_user, box, worked):
    found = rows(as_user("fatou").get(f"/manage/classes/{box.ids['class_a']}/grid.csv"))
    assert found[0][0] == "Learner"
    assert sorted(found[0][1:]) == ["Bienvenue", "Petit quiz", "Un petit clip"]
    cells = table(found)
    assert cells["Amina"] == {"Bienvenue": "Completed", "Petit quiz": "Not started",
                              "Un petit clip": "Not started"}
    assert cells["'=HYPERLINK(1)"]["Petit quiz"] == "Needs help"  # a name stays text
    assert cells["Learners who completed it"] == {"Bienvenue": "1", "Petit quiz": "0",
                                                  "Un petit clip": "0"}
    assert as_user("farid").get(f"/manage/classes/{box.ids['class_a']}/grid.csv").status_code == 403


def test_the_csv_speaks_the_pages_language(box, worked, as_user):
    fatou = as_user("fatou")
    fatou.environ_base["HTTP_ACCEPT_LANGUAGE"] = "fr"
    found = rows(fatou.get(f"/manage/classes/{box.ids['class_a']}/grid.csv"))
    assert found[0][0] == "Apprenant"
    assert table(found)["Amina"]["Bienvenue"] == "Terminé"


def test_a_group_and_a_lesson_have_their_own_grid(as_user, box, worked):
    fatou = as_user("fatou")
    group = rows(fatou.get(f"/manage/groups/{worked['group']}/grid.csv"))
    assert [r[0] for r in group[1:-1]] == ["Amina"]  # the group's learners only
    assert sorted(group[0][1:]) == ["Bienvenue", "Petit quiz", "Un petit clip"]
    lesson = rows(fatou.get(f"/manage/assignments/{worked['assignment']}/report.csv"))
    assert [r[0] for r in lesson[1:-1]] == ["'=HYPERLINK(1)", "Amina"]  # by name
    assert lesson[0] == ["Learner", "Bienvenue", "Petit quiz", "Un petit clip"]  # its order
    page = fatou.get(f"/manage/assignments/{worked['assignment']}/report").get_data(as_text=True)
    assert "Progress of the lesson Premiers pas" in page and "report.css" in page
    assert f"/manage/assignments/{worked['assignment']}/report.csv" in page
    page = fatou.get(f"/manage/groups/{worked['group']}/grid").get_data(as_text=True)
    assert "Progress of the group Débutants" in page and "Bart" not in page
    farid = as_user("farid")
    assert farid.get(f"/manage/groups/{worked['group']}/grid").status_code == 403
    assert farid.get(f"/manage/assignments/{worked['assignment']}/report.csv").status_code == 403


def test_a_learners_report_prints_and_downloads(as_user, box, worked):
    fatou = as_user("fatou")
    page = fatou.get(f"/manage/learners/{box.ids['amina']}").get_data(as_text=True)
    assert "report.css" in page and "data-print" in page and "Printed on" in page
    found = rows(fatou.get(f"/manage/learners/{box.ids['amina']}/report.csv"))
    assert found[0][:3] == ["Resource", "pack_id", "node_id"]
    assert found[1][:5] == ["Bienvenue", "demo-fr", "basics/welcome", "100", "true"]
    assert found[1][-1] == "1,5"  # minutes, with the decimal comma Excel expects in Belgium
    assert as_user("farid").get(f"/manage/learners/{box.ids['amina']}/report.csv").status_code == 403


def test_the_activity_log_is_one_row_per_event_in_the_range(app, as_user, box, worked):
    fatou = as_user("fatou")
    today = datetime.now(UTC).date()
    url = f"/manage/classes/{box.ids['class_a']}/activity.csv"
    found = rows(fatou.get(f"{url}?start=2026-11-20&end={today.isoformat()}"))
    assert found[0] == list(coach.ACTIVITY_COLUMNS)
    events = [dict(zip(found[0], r, strict=True)) for r in found[1:]]
    assert [e["event"] for e in events] == ["completed", "answered", "answered", "answered"]
    first = events[0]
    # When it happened on the tablet, not when the box recorded it.
    assert first["occurred_at"] == "2026-11-20T09:15:00Z" and first["learner"] == "Amina"
    assert first["title"] == "Bienvenue" and first["seconds"] == "90" and first["progress"] == "1"
    assert events[1]["correct"] == "false" and events[1]["question_id"] == "q1"
    assert events[1]["learner"] == "'=HYPERLINK(1)"
    # A range that ends before today leaves out today's answers; one before anything is empty.
    only = rows(fatou.get(f"{url}?start=2026-11-20&end=2026-11-20"))
    assert [r[0] for r in only[1:]] == ["2026-11-20T09:15:00Z"]
    assert rows(fatou.get(f"{url}?start=2020-01-01&end=2020-01-31"))[1:] == []
    assert fatou.get(f"{url}?start=2026-12-01&end=2026-11-01").status_code == 400
    assert as_user("farid").get(url).status_code == 403
    page = fatou.get(f"/manage/classes/{box.ids['class_a']}/activity?start=2026-11-20"
                     f"&end={today.isoformat()}").get_data(as_text=True)
    assert "4 events from" in page and "activity.csv?start=2026-11-20" in page


def test_the_activity_log_leaves_out_other_classes(app, box, worked):
    with app.app_context():
        db = get_db()
        records.event(db, box.ids["chloe"], {"event_id": "c1", "pack_id": "demo-fr",
                                             "node_id": "basics/clip", "type": "started"})
        today = datetime.now(UTC).date()
        found = coach.activity_rows(db, {box.ids["amina"]: "Amina"},
                                    today - timedelta(days=30), today)
    assert {e["learner_uuid"] for e in found} == {box.ids["amina"]}
    assert coach.activity_rows(db, {}, date(2026, 1, 1), today) == []


def test_the_class_page_reaches_every_report(as_user, box, worked):
    page = as_user("fatou").get(f"/manage/classes/{box.ids['class_a']}").get_data(as_text=True)
    for link in (f"/manage/classes/{box.ids['class_a']}/grid",
                 f"/manage/classes/{box.ids['class_a']}/grid.csv",
                 f"/manage/classes/{box.ids['class_a']}/activity",
                 f"/manage/groups/{worked['group']}/grid",
                 f"/manage/assignments/{worked['assignment']}/report"):
        assert f'href="{link}"' in page, link
    grid = as_user("fatou").get(f"/manage/classes/{box.ids['class_a']}/grid").get_data(as_text=True)
    assert re.search(r'href="/manage/classes/[0-9a-f-]+/grid.csv"', grid)
