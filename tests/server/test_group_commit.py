"""Progress batches from many tablets at once: written together, each acknowledged once committed.

The app is served by Waitress in this process, on 127.0.0.1, so the tests speak real HTTP
to it and can still hold the database's write lock or make one request's events fail.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from passerelle.server import records
from passerelle.server.app import create_app
from passerelle.server.learning.progress import writer as progress_writer
from waitress.server import create_server

from tests.conftest import PINS

LEARNERS = ("amina", "bart", "chloe")


class Served:
    """The app of a box under Waitress (8 threads) in a thread of this process."""

    def __init__(self, box, **settings):
        self.box = box
        self.app = create_app({"home": box.home, "TESTING": True, **settings})
        self.server = create_server(self.app, host="127.0.0.1", port=0, threads=8)
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def tablet(self, who: str) -> Tablet:
        return Tablet(self.url, self.box.ids[who], PINS[who])

    def stored(self) -> list[tuple[str, str]]:
        """(event_id, learner) of every event in the log, read on a connection of its own."""
        conn = sqlite3.connect(self.box.home / "passerelle.db")
        try:
            return conn.execute("SELECT event_id, subject FROM ops WHERE kind = 'event'"
                                " AND event_id LIKE 'gc-%'").fetchall()
        finally:
            conn.close()

    def close(self) -> None:
        def close_all():  # in the server's own loop: with no socket left, its loop ends
            for channel in list(self.server._map.values()):
                channel.close()

        # Requests still running finish first: a worker thread pulls the loop's trigger to send
        # its answer, and that trigger must still be open then (closing the loop first made a
        # slow request on a busy machine write to a closed trigger: "Bad file descriptor").
        self.server.task_dispatcher.shutdown(timeout=60)
        self.server.trigger.pull_trigger(close_all)
        self.thread.join(timeout=10)
        self.app.extensions["passerelle.db_pool"].close()


class Tablet:
    """A learner signed in through the real PIN form, with the page's CSRF token."""

    def __init__(self, url: str, learner_uuid: str, pin: str):
        self.url = url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = self.opener.open(f"{url}/signin/learner/{learner_uuid}", timeout=30).read().decode()
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        self.opener.open(f"{url}/signin/learner/{learner_uuid}", timeout=30, data=urllib.parse.urlencode(
            {"csrf_token": token, "secret": pin}).encode()).read()
        page = self.opener.open(f"{url}/", timeout=30).read().decode()
        self.token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)

    def send(self, events: list[dict]) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{self.url}/api/v1/progress", method="POST", data=json.dumps({"events": events}).encode(),
            headers={"Content-Type": "application/json", "X-CSRFToken": self.token})
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())


def answer(event_id: str, node: str = "basics/welcome") -> dict:
    return {"event_id": event_id, "pack_id": "demo-fr", "node_id": node, "type": "answer",
            "correct": True, "seconds": 3}


@pytest.fixture
def served(box):
    started = []

    def start(**settings) -> Served:
        started.append(Served(box, **settings))
        return started[-1]

    yield start
    for s in started:
        s.close()


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.01)


def hold_write_lock(server: Served) -> sqlite3.Connection:
    conn = sqlite3.connect(server.box.home / "passerelle.db", isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_concurrent_batches_are_stored_exactly_once_and_acknowledged_after_commit(served):
    server = served()
    tablets = [server.tablet(who) for who in LEARNERS for _ in range(4)]  # 12 tablets, 3 learners
    seen_when_acknowledged: list[bool] = []

    def work(i: int) -> list[int]:
        accepted = []
        for k in range(6):
            # Each batch resends the previous batch's last event: a tablet that missed an answer.
            events = [answer(f"gc-{i}-{k}-{n}") for n in range(3)]
            if k:
                events.append(answer(f"gc-{i}-{k - 1}-2"))
            status, body = tablets[i].send(events)
            assert status == 200, body
            stored = {e for e, _ in server.stored()}
            seen_when_acknowledged.append(all(e["event_id"] in stored for e in events))
            accepted.append(body["accepted"])
            assert body["accepted"] + body["duplicates"] == len(events)
        return accepted

    with ThreadPoolExecutor(len(tablets)) as pool:
        accepted = [n for counts in pool.map(work, range(len(tablets))) for n in counts]

    rows = server.stored()
    ids = [e for e, _ in rows]
    assert len(ids) == len(set(ids)) == len(tablets) * 6 * 3  # every event once, resent ones too
    assert sum(accepted) == len(ids)
    assert all(seen_when_acknowledged)  # each answer was readable from elsewhere when acknowledged
    owners = {e: who for e, who in rows}
    for i in range(len(tablets)):  # each event is its own learner's
        assert owners[f"gc-{i}-0-0"] == server.box.ids[LEARNERS[i // 4]]


def test_requests_waiting_on_the_lock_are_written_in_one_transaction_then_answered(served):
    server = served(db_busy_timeout_ms=60000)
    tablets = [server.tablet(LEARNERS[i % 3]) for i in range(8)]
    writer = progress_writer(server.app)
    before = (writer.transactions, writer.requests)
    answered = threading.Event()
    lock = hold_write_lock(server)  # another writer (a sync, an import) is busy
    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(t.send, [answer(f"gc-lock-{i}-{n}") for n in range(2)])
                       for i, t in enumerate(tablets)]
            for f in futures:
                f.add_done_callback(lambda _f: answered.set())
            # One request leads and waits for the lock; the seven others queue behind it.
            wait_until(lambda: len(writer._waiting) == 7, "seven requests queued")
            assert not answered.is_set()  # nothing acknowledged while nothing could be committed
            assert server.stored() == []
            lock.execute("COMMIT")
            results = [f.result() for f in futures]
    finally:
        lock.close()
    assert [status for status, _ in results] == [200] * 8
    assert sorted(body["accepted"] for _, body in results) == [2] * 8
    assert len(server.stored()) == 16
    # The leader's transaction, then one for the seven that waited.
    assert (writer.transactions - before[0], writer.requests - before[1]) == (2, 8)


def test_a_request_whose_events_fail_does_not_lose_the_others(served, monkeypatch):
    server = served(db_busy_timeout_ms=60000)
    fold = records._fold_event

    def failing_fold(db, op):
        if op.payload.get("event_id") == "gc-bad-2":
            raise sqlite3.IntegrityError("a fault while writing this event")
        fold(db, op)

    monkeypatch.setattr(records, "_fold_event", failing_fold)
    tablets = [server.tablet(who) for who in LEARNERS]
    writer = progress_writer(server.app)
    lock = hold_write_lock(server)
    try:
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(tablets[0].send, [answer("gc-lead")])]
            wait_until(lambda: writer._leading and not writer._waiting, "a leader waiting")
            futures += [
                pool.submit(tablets[1].send, [answer("gc-good-1"), answer("gc-good-2")]),
                pool.submit(tablets[2].send, [answer("gc-bad-1"), answer("gc-bad-2")]),
                pool.submit(tablets[0].send, [answer("gc-good-3")]),
            ]
            wait_until(lambda: len(writer._waiting) == 3, "three requests queued together")
            lock.execute("COMMIT")
            results = [f.result() for f in futures]
    finally:
        lock.close()
    statuses = [status for status, _ in results]
    assert statuses == [200, 200, 500, 200]
    assert results[2][1]["error"]["code"] == "internal_error"
    stored = sorted(e for e, _ in server.stored())
    # The failing request is rolled back whole (its good event too); the others are kept.
    assert stored == ["gc-good-1", "gc-good-2", "gc-good-3", "gc-lead"]


def test_invalid_batches_are_refused_before_they_reach_the_others(served):
    server = served()
    good, bad = server.tablet("amina"), server.tablet("bart")
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(good.send, [answer(f"gc-ok-{i}")]) for i in range(5)]
        futures.append(pool.submit(bad.send, [answer("gc-invalid") | {"type": "jump"}]))
        results = [f.result() for f in futures]
    assert [status for status, _ in results] == [200] * 5 + [400]
    assert sorted(e for e, _ in server.stored()) == [f"gc-ok-{i}" for i in range(5)]


def test_when_the_lock_never_comes_nothing_is_recorded_and_the_next_batches_are(served):
    server = served(db_busy_timeout_ms=100)
    tablets = [server.tablet(who) for who in LEARNERS]
    lock = hold_write_lock(server)
    try:
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(lambda i: tablets[i].send([answer(f"gc-busy-{i}")]), range(3)))
    finally:
        lock.close()
    assert [status for status, _ in results] == [500] * 3  # not acknowledged: the tablets resend
    assert server.stored() == []

    def resend(i: int) -> int:
        # As a tablet does: send again until acknowledged. With a 100 ms busy timeout, a busy
        # machine can still make one try fail (another connection checkpointing the WAL).
        for _ in range(20):
            status, _ = tablets[i].send([answer(f"gc-busy-{i}")])
            if status == 200:
                return status
        return status

    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(resend, range(3))) == [200] * 3
    assert sorted(e for e, _ in server.stored()) == ["gc-busy-0", "gc-busy-1", "gc-busy-2"]
