"""Exports for a Learning Record Store: progress as CSV, every event as an xAPI statement."""

from __future__ import annotations

import csv
import io
import json
import types
import uuid
from datetime import UTC, datetime

import pytest
from passerelle.server import records
from passerelle.server.db import get_db
from passerelle.server.people import accounts
from passerelle.server.reports import impact as reports

from tests.server.test_reports import add_event, report_cli  # noqa: F401 - a fixture

WHEN = datetime(2026, 5, 4, 10, 30, 15, 250000, tzinfo=UTC)


@pytest.fixture
def box(box_of_engine):
    """Every test here runs on SQLite (a box) and on PostgreSQL (a hub)."""
    return box_of_engine


@pytest.fixture
def events(app, box):
    with app.app_context():
        db = get_db()
        ops = [
            add_event(db, box.ids["amina"], {"event_id": "a1", "pack_id": "demo-fr",
                                             "node_id": "basics/quiz", "type": "answer",
                                             "question_id": "q1", "correct": True, "seconds": 90},
                      WHEN),
            add_event(db, box.ids["amina"], {"pack_id": "demo-fr", "node_id": "basics/quiz",
                                             "type": "answer", "question_id": "q2",
                                             "correct": False, "seconds": 30}, WHEN),
            add_event(db, box.ids["amina"], {"pack_id": "demo-fr", "node_id": "basics/welcome",
                                             "type": "completed", "progress": 1, "seconds": 3700},
                      WHEN),
            add_event(db, box.ids["bart"], {"pack_id": "demo-fr", "node_id": "basics/clip",
                                            "type": "progress", "progress": 0.4}, WHEN),
            add_event(db, box.ids["bart"], {"pack_id": "demo-fr", "node_id": "basics/clip",
                                            "type": "started"}, WHEN),
            add_event(db, box.ids["chloe"], {"pack_id": "demo-fr", "node_id": "basics/game",
                                             "type": "time", "seconds": 5}, WHEN),
        ]
        accounts.delete_user(db, box.ids["chloe"])  # her progress never leaves again
        org = accounts.organisation(db)["uuid"]
    return ops, org


def test_progress_csv_has_one_row_per_learner_and_resource(events, as_user, box):
    response = as_user("cora").get("/manage/exports/progress.csv")
    assert response.status_code == 200 and response.is_streamed and response.mimetype == "text/csv"
    assert response.data.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(response.data.decode("utf-8-sig")), delimiter=";"))
    assert list(rows[0].keys()) == list(reports.PROGRESS_COLUMNS)
    found = {(r["display_name"], r["node_id"]): r for r in rows}
    assert set(found) == {("Amina", "basics/quiz"), ("Amina", "basics/welcome"),
                          ("Bart", "basics/clip")}  # Chloé was deleted
    quiz = found[("Amina", "basics/quiz")]
    assert (quiz["answers"], quiz["correct"], quiz["seconds"], quiz["completed"]) == ("2", "1", "120",
                                                                                      "false")
    welcome = found[("Amina", "basics/welcome")]
    assert welcome["completed"] == "true" and welcome["completed_on"] == "2026-05-04"
    assert welcome["title"] == "Bienvenue" and welcome["learner_uuid"] == box.ids["amina"]
    assert found[("Bart", "basics/clip")]["progress"] == "0,4"  # Excel (Belgium) reads a number


def xapi(client, query: str = "") -> list[dict]:
    response = client.get("/manage/exports/xapi.jsonl" + query)
    assert response.status_code == 200 and response.is_streamed
    return [json.loads(line) for line in response.get_data(as_text=True).splitlines()]


def test_one_xapi_statement_per_event_without_names(events, as_user, box):
    ops, org = events
    body = as_user("cora").get("/manage/exports/xapi.jsonl").get_data(as_text=True)
    assert "Amina" not in body and "Bart" not in body and "woman" not in body
    statements = [json.loads(line) for line in body.splitlines()]
    assert len(statements) == 5  # Chloé's event left out with her
    first = statements[0]
    assert first["actor"] == {"objectType": "Agent", "account": {
        "homePage": f"urn:passerelle:{org}", "name": box.ids["amina"]}}
    assert first["verb"]["id"] == "http://adlnet.gov/expapi/verbs/answered"
    assert first["object"] == {"objectType": "Activity", "id": "urn:passerelle:demo-fr/basics/quiz",
                               "definition": {"name": {"fr": "Petit quiz"},
                                              "type": "http://adlnet.gov/expapi/activities/assessment"}}
    assert first["result"] == {"success": True, "duration": "PT1M30S",
                               "extensions": {reports.QUESTION_EXTENSION: "q1"}}
    assert first["timestamp"] == "2026-05-04T10:30:15.250Z"
    assert first["id"] == str(uuid.uuid5(reports._STATEMENT_NAMESPACE, f"{ops[0].origin}:{ops[0].seq}"))
    verbs = [s["verb"]["id"].rsplit("/", 1)[1] for s in statements]
    assert verbs == ["answered", "answered", "completed", "progressed", "attempted"]
    assert statements[1]["result"]["success"] is False
    assert statements[2]["result"] == {"completion": True, "duration": "PT1H1M40S",
                                       "extensions": {reports.PROGRESS_EXTENSION: 100}}
    assert statements[3]["result"] == {"extensions": {reports.PROGRESS_EXTENSION: 40}}
    assert "result" not in statements[4]


def test_a_second_export_gives_the_same_statement_ids(events, as_user):
    cora = as_user("cora")
    assert [s["id"] for s in xapi(cora)] == [s["id"] for s in xapi(cora)]


def test_names_only_when_asked(events, as_user):
    statements = xapi(as_user("cora"), "?names=1")
    assert statements[0]["actor"]["name"] == "Amina"


def test_exports_are_for_coordinators_only(as_user):
    for path in ("/manage/exports/progress.csv", "/manage/exports/xapi.jsonl"):
        assert as_user("fatou").get(path).status_code == 403
        assert as_user("amina").get(path).status_code == 403


def test_exports_are_generators_in_chunks(app, events):
    """Streamed from one cursor in batches: memory does not grow with the number of events."""
    with app.app_context():
        db = get_db()
        chunks = reports.xapi_statements(db, batch=2)
        assert isinstance(chunks, types.GeneratorType)
        assert len(list(chunks)) == 3
        progress = reports.progress_csv(db, batch=1)
        assert isinstance(progress, types.GeneratorType) and len(list(progress)) == 1 + 3


def test_iso_durations():
    assert [reports.iso_duration(s) for s in (0, 5, 60, 3600, 3725)] == [
        "PT0S", "PT5S", "PT1M", "PT1H", "PT1H2M5S"]


def test_the_cli_writes_both_exports(events, report_cli, tmp_path):  # noqa: F811
    target = tmp_path / "progress.csv"
    result = report_cli("report", "progress", "--csv", str(target))
    assert result.exit_code == 0, result.stderr
    assert target.read_bytes().startswith("\ufeff".encode()) and "wrote 3 rows" in result.stderr
    statements = tmp_path / "xapi.jsonl"
    result = report_cli("report", "xapi", str(statements))
    assert result.exit_code == 0, result.stderr
    lines = statements.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 5 and "Amina" not in statements.read_text(encoding="utf-8")
    named = report_cli("report", "xapi", "--with-names")
    assert '"name":"Amina"' in named.stdout
    assert not list(tmp_path.glob("*.part"))


def test_records_keep_the_event_time(app, events):
    ops, _ = events
    assert reports.version_time(ops[0].version) == WHEN.replace(microsecond=250000)
    assert records.parse_version(ops[0].version)[0] == int(WHEN.timestamp() * 1000)


def test_exports_read_through_a_server_side_cursor_on_postgresql(app, events, engine):
    """On a hub's PostgreSQL the rows come through a named cursor, a chunk at a time (a plain
    cursor would receive the whole answer first); a reader that stops ends its snapshot."""
    with app.app_context():
        db = get_db()
        chunks = reports.xapi_statements(db, batch=2)
        assert next(chunks).count("\n") == 2
        if engine == "postgresql":
            names = [r[0] for r in db.execute("SELECT name FROM pg_cursors")]
            assert len(names) == 1 and names[0].startswith("passerelle_stream_")
        chunks.close()
        assert not db.conn.in_transaction
        if engine == "postgresql":
            assert db.execute("SELECT count(*) FROM pg_cursors").fetchone()[0] == 0
        assert len(list(reports.progress_csv(db, batch=1))) == 1 + 3
