"""Searches in worker processes: the same answers as in-process, errors as errors, and no
process left behind when a worker is killed or the pool is closed."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import threading

import pytest
from passerelle.search_index import (
    QuerySyntaxError,
    SearchError,
    SearchIndex,
    SearchPool,
    default_workers,
)
from passerelle.search_index import pool as poolmod


def descendants(pid: int, depth: int = 0) -> set[int]:
    """Live processes below ``pid``, from generation ``depth`` on (the workers of a pool
    are grandchildren: children of multiprocessing's forkserver)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z":  # a zombie is gone, only not yet reaped
                parents[int(entry)] = int(fields[1])
    found, frontier, generation = set(), {pid}, 0
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        generation += 1
        if generation >= depth:
            found |= frontier
    return found


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def pool(_corpus_db):
    """One pool for the module: starting workers is the slow part."""
    with SearchPool(_corpus_db, 2) as p:
        yield p


@pytest.fixture
def reference(_corpus_db):
    idx = SearchIndex(_corpus_db, readonly=True)
    yield idx
    idx.close()


def test_results_through_workers_equal_in_process_results(pool, reference, judged):
    asked = [(q["q"], {}) for q in judged["queries"]] + [
        ("password", {"kinds": ["exercise"]}),
        ("phishing", {"languages": ["nl"]}),
        ("fractions", {"packs": ["fr-calc"]}),
        ("mot de passe ", {"limit": 2, "offset": 2}),  # paging
        ("le", {"limit": 5, "offset": 5}),
        ('"mot de passe"', {}),                        # phrase
        ("algibra", {}), ("pasword", {}),              # typos: fuzzy, did you mean
        ("vidéo mot de passe", {}),                    # a kind word as a filter
        ("pa", {}), ("", {}), ("zzzzqqqq", {}),        # a prefix, nothing, no match
    ]
    modes = set()
    for query, filters in asked:
        got = pool.search(query, **filters)
        assert got == reference.search(query, **filters), (query, filters)
        modes.add(got.mode)
    assert {"all", "fuzzy"} <= modes
    assert pool.search("pasword").did_you_mean == reference.search("pasword").did_you_mean
    assert pool.pids() and os.getpid() not in pool.pids()


def test_threads_share_the_workers(pool, reference):
    queries = ["mot de passe", "phishing", "fractions", "wachtwoorden", "الكسور", "courriel"]
    expected = {q: reference.search(q) for q in queries}
    wrong = []

    def searcher():
        for q in queries * 3:
            if pool.search(q) != expected[q]:
                wrong.append(q)

    threads = [threading.Thread(target=searcher) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
    assert 1 <= len(pool.pids()) <= 2


def test_errors_raised_in_a_worker_arrive_as_the_same_exceptions(pool, tmp_path):
    for exc in (SearchError("busy"), QuerySyntaxError("not text")):
        assert type(pickle.loads(pickle.dumps(exc))) is type(exc)
    with pytest.raises(QuerySyntaxError, match="text") as raised:
        pool.search(None)
    assert "Traceback" in str(raised.value.__cause__)  # the worker's traceback, for the log
    with SearchPool(tmp_path / "no-index.db", 1) as missing, \
            pytest.raises(SearchError, match="does not exist"):
        missing.search("x")
    assert pool.search("phishing").total > 0  # the worker that raised still serves


def test_a_killed_worker_is_replaced(_corpus_db, reference, caplog):
    with SearchPool(_corpus_db, 2) as p:
        p.search("phishing")
        killed = p.pids()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        assert p.search("fractions") == reference.search("fractions")
        assert p.pids() and not set(p.pids()) & set(killed)
        assert p.fallbacks == 0 and p.replaced >= 1
        assert "stopped" in caplog.text


def test_a_worker_dying_during_a_search_is_replaced_and_the_search_asked_again(
        _corpus_db, reference, monkeypatch, caplog):
    with SearchPool(_corpus_db, 1) as p:
        p.search("phishing")
        (pid,) = p.pids()
        os.kill(pid, signal.SIGKILL)
        # As if it died between the check and the answer.
        monkeypatch.setattr(poolmod._Worker, "alive", lambda self: True)
        assert p.search("courriel") == reference.search("courriel")
        assert p.replaced == 1 and p.fallbacks == 0
        assert "asking another" in caplog.text


def test_when_workers_keep_failing_the_search_is_answered_in_process(
        _corpus_db, reference, monkeypatch, caplog):
    caplog.set_level(logging.WARNING)
    real_start = SearchPool._start

    def start_a_dying_worker(self):
        worker = real_start(self)
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.join()
        return worker

    monkeypatch.setattr(SearchPool, "_start", start_a_dying_worker)
    monkeypatch.setattr(poolmod._Worker, "alive", lambda self: True)
    with SearchPool(_corpus_db, 2) as p:
        assert p.search("phishing") == reference.search("phishing")
        assert p.fallbacks == 1 and p.replaced == 2
        assert "searching in the server process" in caplog.text
        assert p.pids() == []


def test_workers_that_cannot_start_leave_searches_in_process(_corpus_db, reference,
                                                              monkeypatch, caplog):
    def cannot(self):
        raise OSError("no more processes")

    monkeypatch.setattr(SearchPool, "_start", cannot)
    with SearchPool(_corpus_db, 2) as p:
        assert p.search("fractions") == reference.search("fractions")
        assert p.search("phishing") == reference.search("phishing")
        assert p.fallbacks == 2
    assert caplog.text.count("cannot be started") == 1  # then it rests, quietly


def test_without_a_forkserver_workers_are_spawned(_corpus_db, reference, monkeypatch, caplog):
    real = SearchPool._start_with

    def no_forkserver(self, method):
        if method == "forkserver":  # e.g. its socket's path would be too long
            raise OSError("AF_UNIX path too long")
        return real(self, method)

    monkeypatch.setattr(SearchPool, "_start_with", no_forkserver)
    with SearchPool(_corpus_db, 1) as p:
        assert p.search("courriel") == reference.search("courriel")
        assert p.pids() and p.fallbacks == 0
        assert "spawning workers instead" in caplog.text


def test_close_leaves_no_process_and_can_be_repeated(_corpus_db):
    before = descendants(os.getpid())
    p = SearchPool(_corpus_db, 2)
    threads = [threading.Thread(target=p.search, args=(q,)) for q in ("phishing", "courriel")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    workers = p.pids()
    assert workers
    p.close()
    p.close()
    assert not any(running(pid) for pid in workers)
    assert descendants(os.getpid()) <= before
    # A closed pool still answers, in this process (a search racing the server's stop).
    assert p.search("phishing").total > 0 and p.fallbacks == 1


def test_default_worker_count():
    assert 1 <= default_workers() <= 4
    with pytest.raises(ValueError):
        SearchPool("x.db", 0)


def test_waiting_callers_are_served_first_come_first_served(_corpus_db):
    # Under load every worker is busy and server threads wait in line. A worker
    # handed back goes to the longest waiting caller: with a plain condition the
    # thread handing it back could take it again at once, and a waiting search
    # could wait several turns (p95 well above p50 with 8 server threads).
    with SearchPool(_corpus_db, 1) as one:
        assert one.search("password").total
        held = one._acquire()
        served, threads = [], []

        def caller(n):
            worker = one._acquire()
            served.append(n)
            one._release(worker)

        for n in range(5):
            t = threading.Thread(target=caller, args=(n,))
            t.start()
            threads.append(t)
            while len(one._waiters) < n + 1:  # in line before the next one comes
                threading.Event().wait(0.001)
        one._release(held)
        for t in threads:
            t.join(10)
        assert served == [0, 1, 2, 3, 4]
        # The line is empty again and the worker idle: the next search takes it.
        assert not one._waiters and one.search("password").total


def test_callers_waiting_when_the_pool_closes_still_get_answers(_corpus_db, reference):
    one = SearchPool(_corpus_db, 1)
    held = one._acquire()
    answers = []
    t = threading.Thread(target=lambda: answers.append(one.search("password")))
    t.start()
    while not one._waiters:
        threading.Event().wait(0.001)
    one.close()  # the waiting search is answered in this process
    t.join(10)
    one._release(held)
    assert answers and answers[0] == reference.search("password")
    assert one.finished
