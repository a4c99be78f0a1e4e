"""A full or nearly full disk: said in words, learners' answers kept, optional writes first to stop.

With the data home's disk full, progress posts used to answer 500 ("something went
wrong"), health still said ok, and an exercise answer posted as a form was lost
behind an error page. The database's own SQLITE_FULL is produced here without
filling the machine's disk: ``PRAGMA max_page_count`` stops the file from growing,
which is how SQLite meets a full disk (the same error, through the same code).
The real thing, a tiny filesystem filled to the last byte, is in
``test_a_full_disk_for_real`` (needs root; mounted in a private mount namespace
that disappears with the server).
"""

from __future__ import annotations

import errno
import html as htmllib
import json
import logging
import re
import sqlite3

import pytest
from passerelle.server import db as dbmod
from passerelle.server import disk, records
from passerelle.server.app import create_app
from passerelle.server.packs import pdfpages
from passerelle.server.search import service as search

from tests.conftest import HttpPerson, english_client, sign_in

MiB = 1024 * 1024
QUIZ = "/practice/demo-fr/basics/quiz"  # q1: single choice, the right answer is 0


class FullDatabase:
    """SQLite's SQLITE_FULL on demand: while ``full``, the database may not grow by a page."""

    def __init__(self, app, monkeypatch):
        self.full = False
        real = dbmod.connect

        def connect(*args, **kwargs):
            db = real(*args, **kwargs)
            if self.full:
                pages = db.execute("PRAGMA page_count").fetchone()[0]
                db.execute(f"PRAGMA max_page_count = {pages}")
            return db

        monkeypatch.setattr(dbmod, "connect", connect)
        # Pooled connections were opened without the limit: from now on each request opens one.
        dbmod.pool(app).close()

    def fill(self) -> None:
        self.full = True

    def make_room(self) -> None:
        self.full = False


@pytest.fixture
def full_db(app, monkeypatch):
    return FullDatabase(app, monkeypatch)


def sqlite_full() -> sqlite3.OperationalError:
    """The error SQLite itself raises when its file cannot grow (SQLITE_FULL)."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("PRAGMA max_page_count = 2")
        conn.execute("CREATE TABLE t (x)")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 100)
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        conn.close()
    raise AssertionError("SQLite did not report a full database")


class FullEvents:
    """While ``full``, recording a learner's event fails with SQLITE_FULL.

    A page limit only fails writes that need a new page, and a single event often
    fits in the room a page has left: so small writes get SQLite's error here.
    """

    def __init__(self, monkeypatch):
        self.full = False
        real = records.event

        def event(*args, **kwargs):
            if self.full:
                raise sqlite_full()
            return real(*args, **kwargs)

        monkeypatch.setattr(records, "event", event)

    def fill(self) -> None:
        self.full = True

    def make_room(self) -> None:
        self.full = False


@pytest.fixture
def full_events(monkeypatch):
    return FullEvents(monkeypatch)


def events(app, **where) -> list[dict]:
    db = sqlite3.connect(app.config["DB_PATH"])
    found = [json.loads(p) for (p,) in db.execute("SELECT payload FROM ops WHERE kind = 'event'")]
    db.close()
    return [e for e in found if all(e.get(k) == v for k, v in where.items())]


def batch(prefix: str, count: int = 200) -> dict:
    return {"events": [{"event_id": f"{prefix}-{i}", "pack_id": "demo-fr",
                        "node_id": "basics/welcome", "type": "progress", "progress": 0.5,
                        "position": "x" * 100} for i in range(count)]}


def post_progress(client, body: dict):
    from tests.conftest import csrf_token

    return client.post("/api/v1/progress", json=body, headers={"X-CSRFToken": csrf_token(client)})


# --- Telling a full disk from a bug ---------------------------------------------------------

def test_a_full_disk_is_recognised_whatever_raised_it():
    assert disk.is_full(OSError(errno.ENOSPC, "No space left on device"))
    assert disk.is_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not disk.is_full(OSError(errno.EACCES, "Permission denied"))
    full = sqlite_full()
    assert disk.is_full(full)  # SQLITE_FULL: "database or disk is full"
    try:
        raise RuntimeError("the events were not recorded") from full
    except RuntimeError as wrapped:
        assert disk.is_full(wrapped)  # found through the chain (the group commit wraps it)
    assert not disk.is_full(sqlite3.OperationalError("database is locked"))
    assert not disk.is_full(ValueError("x"))


def test_progress_posts_answer_507_and_nothing_is_lost(app, as_user, full_db):
    amina = as_user("amina")
    assert post_progress(amina, batch("before")).status_code == 200
    full_db.fill()
    refused = post_progress(amina, batch("during"))
    assert refused.status_code == 507
    error = refused.get_json()["error"]
    assert error["code"] == "insufficient_storage"
    assert "storage is full" in error["message"] and "lost" in error["message"]
    assert len(events(app, type="progress")) == 200  # the earlier batch, whole; none of the later
    full_db.make_room()
    again = post_progress(amina, batch("during"))  # the tablet kept its queue and sends it again
    assert again.status_code == 200 and again.get_json()["accepted"] == 200
    assert len(events(app, type="progress")) == 400


def test_a_kiosk_page_says_the_box_is_full(app, as_user, full_events):
    amina = as_user("amina")
    full_events.fill()
    from tests.conftest import csrf_token

    page = amina.post("/learn/demo-fr/basics/welcome/done", data={"csrf_token": csrf_token(amina)})
    assert page.status_code == 507
    assert "The box is full" in page.get_data(as_text=True)


# --- An exercise answer posted as a form is kept ------------------------------------------

def form_of(page: str) -> dict:
    question = re.search(r'<form method="post" action="[^"]*#question".*?</form>', page, re.S).group(0)
    return {"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', question).group(1),
            "attempt": re.search(r'name="attempt" value="([^"]*)"', question).group(1),
            "hints_shown": re.search(r'name="hints_shown" value="([^"]*)"', question).group(1)}


def pending_of(page: str) -> list[dict]:
    found = re.search(r"data-pending='([^']*)'", page)
    return json.loads(htmllib.unescape(found.group(1))) if found else []


def test_an_exercise_answer_is_kept_when_the_box_is_full(app, as_user, full_events):
    amina = as_user("amina")
    opened = amina.get(QUIZ)
    assert opened.status_code == 200
    form = form_of(opened.get_data(as_text=True))
    full_events.fill()
    answered = amina.post(QUIZ, data={**form, "action": "check", "answer": "0"})
    page = answered.get_data(as_text=True)
    assert answered.status_code == 507
    assert "your answer could not be saved yet" in page
    # Still on the page: the question, with the learner's choice ticked ...
    assert re.search(r'id="choice-0"\s+name="answer"\s+value="0"[^>]*checked', page)
    assert form_of(page)["attempt"] == form["attempt"]  # pressing "Check" again is the same try
    # ... and handed to the tablet's queue (progress.js), with the id the box would have used.
    [kept] = pending_of(page)
    assert kept["type"] == "answer" and kept["correct"] is True and kept["answer"] == 0
    assert kept["event_id"].startswith("answer-")
    assert 'src="/static/' in page and "progress.js" in page
    assert events(app, type="answer") == []
    full_events.make_room()
    # The queue sends it when the box has room again ...
    sent = post_progress(amina, {"events": [kept]})
    assert sent.status_code == 200 and sent.get_json()["accepted"] == 1
    # ... and pressing "Check" again on the kept page counts it once.
    again = amina.post(QUIZ, data={**form_of(page), "action": "check", "answer": "0"})
    assert again.status_code == 302
    assert len(events(app, type="answer", event_id=kept["event_id"])) == 1
    assert len(events(app, type="answer")) == 1


def test_pages_still_open_when_the_box_is_full(app, as_user, full_events):
    amina = as_user("amina")
    full_events.fill()
    article = amina.get("/learn/demo-fr/basics/welcome")
    assert article.status_code == 200  # reading goes on; the start is recorded next time
    exercise = amina.get(QUIZ)
    assert exercise.status_code == 200
    [started] = pending_of(exercise.get_data(as_text=True))  # the tablet keeps this one
    assert started["type"] == "started"
    assert events(app, type="started") == []


# --- Warning before it is full: health and the staff home ----------------------------------

def test_health_reports_free_space(client):
    body = client.get("/api/v1/health").get_json()
    space = body["disk"]
    assert space["status"] in ("ok", "low")
    assert 0 < space["free_mb"] <= space["total_mb"]
    assert space["warning_mb"] == 1024 and space["reserve_mb"] == 256


@pytest.mark.parametrize(("settings", "expected", "code", "status"), [
    ({"disk_warning_mb": 1048576}, "low", 200, "ok"),
    ({"disk_warning_mb": 1048576, "disk_reserve_mb": 1048576}, "critical", 503, "degraded"),
])
def test_health_warns_below_the_floors(box, settings, expected, code, status):
    app = create_app({"home": box.home, "TESTING": True, **settings})
    response = app.test_client().get("/api/v1/health")
    assert response.status_code == code
    assert response.get_json()["status"] == status
    assert response.get_json()["disk"]["status"] == expected


@pytest.mark.parametrize(("settings", "words"), [
    ({}, None),
    ({"disk_warning_mb": 1048576}, "The box is running out of space."),
    ({"disk_warning_mb": 1048576, "disk_reserve_mb": 1048576}, "The box is almost full."),
])
def test_the_staff_home_shows_free_space_and_warns(box, settings, words):
    app = create_app({"home": box.home, "TESTING": True, **settings})
    client = english_client(app)
    sign_in(client, box, "cora")
    page = client.get("/manage").get_data(as_text=True)
    # In the page language's units and digits ("12.3 GB free of 31 GB.", "3,2 Go libres").
    assert "Space on the box" in page and re.search(r"[\d.]+\s[kMGT]?B free of [\d.]+\s[kMGT]?B\.", page)
    if words is None:
        assert "running out of space" not in page and "almost full" not in page
    else:
        assert words in page and 'role="alert"' in page
    # A facilitator, who cannot free space, sees it only when it runs out, and whom to tell.
    facilitator = english_client(app)
    sign_in(facilitator, box, "fatou")
    page = facilitator.get("/manage").get_data(as_text=True)
    assert ("Space on the box" in page) == (words is not None)
    assert ("Tell your coordinator" in page) == (words is not None)


# --- Optional writes stop first ---------------------------------------------------------------

@pytest.fixture
def low_app(box):
    """A box whose disk is below its reserve (a reserve larger than any disk)."""
    return create_app({"home": box.home, "TESTING": True, "disk_reserve_mb": 1048576})


def test_log_lines_stop_below_the_reserve_but_errors_do_not(box, tmp_path):
    settings = {"disk_reserve_mb": 1048576}
    keep = disk.SkipWhenLow(tmp_path, settings)
    routine = logging.LogRecord("passerelle.access", logging.INFO, "", 0, "GET /", None, None)
    failure = logging.LogRecord("passerelle", logging.ERROR, "", 0, "disk full", None, None)
    assert not keep.filter(routine)
    assert keep.filter(failure)
    assert disk.SkipWhenLow(tmp_path, {"disk_reserve_mb": 0}).filter(routine)


def test_the_access_log_stops_below_the_reserve(server_factory, box):
    server = server_factory(env={"PASSERELLE_DISK_RESERVE_MB": "1048576"})
    server.get("/?probe=1").read()
    server.stop()
    log = box.home / "logs" / "access.log"
    assert not log.exists() or "probe=1" not in log.read_text()
    assert "server stopped" not in (box.home / "logs" / "passerelle.log").read_text()
    # And with room to spare, it is written.
    server = server_factory()
    server.get("/?probe=2").read()
    server.stop()
    assert "probe=2" in log.read_text()


def test_pdf_pages_are_served_but_not_cached_below_the_reserve(low_app):
    db = sqlite3.connect(low_app.config["DB_PATH"])
    guide = db.execute("SELECT sha256 FROM content_node_files"
                       " WHERE node_id = 'basics/guide' AND role = 'main'").fetchone()[0]
    response = low_app.test_client().get(f"/pdf/{guide}/1/800.webp")
    assert response.status_code == 200 and response.data[8:12] == b"WEBP"
    assert pdfpages.renderer(low_app).renders == 1
    cache = low_app.config["HOME"].root / "cache" / "pdf"
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_search_indexing_waits_below_the_reserve(app, low_app):
    listener = next(one for one in low_app.extensions["passerelle.library"].listeners
                    if isinstance(one, search.IndexingListener))
    assert not listener.may_index()  # wired to the disk's reserve
    service = search.service(app)
    service.index.delete_pack("demo-fr")
    search.IndexingListener(service, may_index=lambda: False).pack_installed("demo-fr", 1)
    assert service.index.count() == 0  # waits (the start-up drift check indexes it later)
    search.IndexingListener(service).pack_installed("demo-fr", 1)
    assert service.index.count() > 0


# --- The real thing: a tiny filesystem, filled to its last byte ------------------------------

def test_a_full_disk_for_real(small_disk, box):
    box_disk = small_disk(8, {"PASSERELLE_DISK_RESERVE_MB": "1", "PASSERELLE_DISK_WARNING_MB": "2"})
    server = box_disk.server
    amina = HttpPerson(server.url).sign_in(box, "amina")
    status, _headers, page = amina.send("GET", QUIZ)
    assert status == 200
    form = form_of(page.decode())
    json_headers = {"Content-Type": "application/json"}
    status, _headers, _body = amina.send("POST", "/api/v1/progress", headers=json_headers,
                                         data=json.dumps(batch("before", 20)).encode())
    assert status == 200

    box_disk.fill()
    status, _headers, body = amina.send("GET", "/api/v1/health")
    health = json.loads(body)
    assert status == 503 and health["status"] == "degraded"
    assert health["disk"]["status"] == "critical" and health["disk"]["free_mb"] == 0
    # Progress posts: 507 once the database's spare room (its WAL) is used up, never a 500.
    answers = []
    for i in range(100):
        status, _headers, body = amina.send("POST", "/api/v1/progress", headers=json_headers,
                                            data=json.dumps(batch(f"full-{i}")).encode())
        answers.append(status)
        if status != 200:
            break
    assert answers[-1] == 507, answers
    assert json.loads(body)["error"]["code"] == "insufficient_storage"
    refused = batch(f"full-{len(answers) - 1}")
    # The learner's exercise answer, posted as a form, is kept.
    status, _headers, page = amina.send("POST", QUIZ, {**form, "action": "check", "answer": "0"})
    assert status == 507
    [kept] = pending_of(page.decode())
    assert kept["type"] == "answer"
    # Reading still works.
    status, _headers, _page = amina.send("GET", "/learn/demo-fr/basics/welcome")
    assert status == 200

    box_disk.make_room()
    for body in (refused, {"events": [kept]}):  # what the tablets kept, sent again
        status, _headers, answer = amina.send("POST", "/api/v1/progress", headers=json_headers,
                                              data=json.dumps(body).encode())
        assert status == 200, answer
        assert json.loads(answer)["accepted"] == len(body["events"])
    status, _headers, _body = amina.send("GET", "/api/v1/health")
    assert status == 200
    assert box_disk.query("PRAGMA integrity_check") == [["ok"]]
    recorded = {json.loads(p)["event_id"]
                for (p,) in box_disk.query("SELECT payload FROM ops WHERE kind = 'event'")}
    acknowledged = {f"full-{i}-{j}" for i, status in enumerate(answers) if status == 200
                    for j in range(200)}
    assert acknowledged <= recorded  # every event the box said yes to is there
    assert {e["event_id"] for e in refused["events"]} <= recorded and kept["event_id"] in recorded
