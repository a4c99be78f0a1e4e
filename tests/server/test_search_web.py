"""Search through the box: indexed on import, found through the API, the page and the CLI."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.search_index.test_pool import descendants, running


def test_imported_packs_are_searchable_at_once(client):
    body = client.get("/api/v1/search?q=doigt").get_json()
    assert body["total"] >= 1
    hit = body["hits"][0]
    assert hit["pack_id"] == "demo-fr" and hit["node_id"] == "basics/welcome"
    assert "<mark>" in hit["snippet"]


def test_kind_filters_and_facets(client):
    body = client.get("/api/v1/search?q=touchez").get_json()
    assert set(body["facets"]["kind"]) >= {"article", "video"}
    only = client.get("/api/v1/search?q=touchez&kind=video").get_json()
    assert {h["kind"] for h in only["hits"]} == {"video"}


def test_typos_are_forgiven(client):
    body = client.get("/api/v1/search?q=doigtt").get_json()
    assert body["total"] >= 1 and body["hits"][0]["title"] == "Bienvenue"


def test_suggestions(client):
    assert "bienvenue" in [s.lower() for s in client.get("/api/v1/search/suggest?q=bie").get_json()["suggestions"]]
    assert client.get("/api/v1/search/suggest?q=").get_json() == {"suggestions": []}


def test_removing_a_pack_removes_it_from_search(client, app):
    assert client.get("/api/v1/search?q=doigt").get_json()["total"] >= 1   # now in the cache
    app.extensions["passerelle.library"].remove("demo-fr")
    assert client.get("/api/v1/search?q=doigt").get_json()["total"] == 0


def test_a_class_searching_the_same_words_costs_one_query(client, app, monkeypatch):
    from passerelle.server.search import service as search

    searcher = search.service(app).searcher  # the worker processes, or the index
    calls = []
    real = searcher.search
    monkeypatch.setattr(searcher, "search", lambda *a, **kw: calls.append(a) or real(*a, **kw))
    answers = [client.get("/api/v1/search?q=Touchez%20 l'écran").get_json() for _ in range(30)]
    assert len(calls) == 1 and all(a == answers[0] for a in answers)
    client.get("/api/v1/search?q=touchez l'écran&kind=video")       # other filters: asked again
    assert len(calls) == 2


def test_search_page_links_results_to_resources(client):
    html = client.get("/search?q=bienvenue", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert 'href="/learn/demo-fr/basics/welcome"' in html
    assert 'role="search"' in html


@pytest.mark.parametrize("args, field", [("q=" + "x" * 201, "q"), ("q=a&kind=spaceship", "kind"),
                                         ("q=a&limit=0", "limit")])
def test_bad_search_parameters_are_explained(client, args, field):
    response = client.get("/api/v1/search?" + args)
    assert response.status_code == 400
    assert field in response.get_json()["error"]["details"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.text(max_size=60))
def test_no_query_breaks_the_engine(client, query):
    response = client.get("/api/v1/search", query_string={"q": query})
    assert response.status_code == 200, response.get_data(as_text=True)


def test_cli_search_and_index_drift(runner, box):
    from passerelle import search_index as si

    result = runner("search", "bienvenue")
    assert result.exit_code == 0 and "demo-fr/basics/welcome" in result.stdout
    assert runner("index", "check").exit_code == 0
    # A crash between the catalogue commit and the index commit leaves drift:
    index = si.SearchIndex(box.home / "index" / "search.db")
    index.delete(["demo-fr/basics/welcome"])
    index.close()
    result = runner("index", "check")
    assert result.exit_code != 0 and "missing: demo-fr/basics/welcome" in result.stdout
    assert "passerelle index rebuild" in result.stderr
    assert runner("index", "rebuild").exit_code == 0
    assert runner("index", "check").exit_code == 0


# --- Searches in worker processes (setting search_workers) ------------------------------

def test_searches_run_in_worker_processes_by_default(client, app):
    import os

    from passerelle import search_index as si
    from passerelle.server.search import service as search

    pool = search.service(app).pool
    assert pool is not None and pool.size == si.default_workers()
    assert pool.pids() == []  # started by the first search, not before
    assert client.get("/api/v1/search?q=doigt").get_json()["total"] >= 1
    assert pool.pids() and os.getpid() not in pool.pids()
    # Suggestions stay in the serving process: a round trip would cost more than they do.
    assert client.get("/api/v1/search/suggest?q=bie").get_json()["suggestions"]


def test_search_workers_0_searches_in_the_serving_process(box):
    from passerelle.server.app import create_app
    from passerelle.server.search import service as search

    app = create_app({"home": box.home, "TESTING": True, "search_workers": 0})
    service = search.service(app)
    assert service.pool is None and service.searcher is service.index
    assert app.test_client().get("/api/v1/search?q=doigt").get_json()["total"] >= 1


@pytest.mark.parametrize("value, problem", [("two", "a whole number or auto"),
                                            ("-1", "below the minimum")])
def test_search_workers_setting_is_checked(box, monkeypatch, value, problem):
    from passerelle.server.app import create_app
    from passerelle.server.errors import ConfigError

    monkeypatch.setenv("PASSERELLE_SEARCH_WORKERS", value)
    with pytest.raises(ConfigError, match=problem):
        create_app({"home": box.home, "TESTING": True})
    monkeypatch.setenv("PASSERELLE_SEARCH_WORKERS", "AUTO")
    assert create_app({"home": box.home, "TESTING": True}).config["SETTINGS"]["search_workers"] \
        == "auto"


def test_a_query_error_raised_in_a_worker_is_answered_in_the_one_error_shape(client, app,
                                                                               monkeypatch):
    from passerelle.server.search import service as search

    pool = search.service(app).pool
    real = pool.search
    # No learner's text makes the library refuse a query; a non-text one does, in the worker.
    monkeypatch.setattr(pool, "search", lambda query, **kw: real(None, **kw))
    response = client.get("/api/v1/search?q=doigt")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid" and "text" in error["message"] and "q" in error["details"]
    assert pool.pids()  # the query came back from a worker


def test_a_served_box_searches_in_workers_and_a_killed_one_is_replaced(live_server):
    import json
    import os
    import signal
    import time

    server = live_server.proc.pid

    def search(q):
        with live_server.get("/api/v1/search?q=" + q) as r:
            return json.loads(r.read())

    # The server starts a worker in the background at start, so that the first
    # learner's search does not wait for one (workers are forked by multiprocessing's
    # forkserver, a child of the server).
    deadline = time.monotonic() + 60
    while not descendants(server, depth=2) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert search("doigt")["total"] >= 1
    workers = descendants(server, depth=2)
    assert workers
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    assert search("bienvenue")["hits"][0]["node_id"] == "basics/welcome"  # not cached: asked
    replaced = descendants(server, depth=2)
    assert replaced and not replaced & workers
    everything = descendants(server)
    code, _, err = live_server.stop()
    assert code == 0 and "Traceback" not in err
    # Helpers that see the server gone end by themselves a moment later: wait for that
    # (bounded), then none may be left.
    deadline = time.monotonic() + 30
    while any(running(pid) for pid in everything) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(running(pid) for pid in everything)  # no process outlives the server


def test_the_search_is_warmed_at_start(app):
    from passerelle.server.search import service as search

    found = search.service(app)
    found.warm_in_background().join()
    assert found.pool.pids(), "a worker is ready before the first learner searches"


# --- The text inside a big pack's documents, indexed in the background ---------------------

def _service_of(box):
    """The search service of the box's data home, as a new process (a CLI, a restarted
    server) builds it."""
    from passerelle import content as lib
    from passerelle.server import db as dbmod
    from passerelle.server.home import Home
    from passerelle.server.search.service import attach

    h = Home(box.home)
    library = lib.Library(lambda: dbmod.connect(h.db_path), h.storage, h.tmp)
    return attach(library, h)


def _found(service, query: str, node: str) -> bool:
    hits = service.index.search(query, staff=True, limit=50).hits
    return any(h.id == f"demo-fr/basics/{node}" for h in hits)


class Killed(BaseException):
    """kill -9 in the middle of a slice: nothing after it runs."""


def test_a_big_packs_document_text_is_indexed_after_the_import_and_resumes_after_a_kill(
        box, monkeypatch):
    from passerelle.server.search import pack_text
    from passerelle.server.search import service as search

    monkeypatch.setattr(pack_text, "INLINE_NODES", 0)  # the demo pack counts as big here
    service = _service_of(box)
    service.reindex_pack("demo-fr")   # what an import does once its catalogue is committed
    # Usable at once: every node is found by its title; the text inside documents is not yet.
    assert _found(service, "guide", "guide") and _found(service, "quiz", "quiz")
    assert not _found(service, "fin", "guide")            # the PDF's second page
    assert not _found(service, "doigts", "quiz")          # an exercise's prompt
    job = service.text.status("demo-fr")
    assert job.state == "queued" and job.next_entry == 0 and service.text.pending() == ["demo-fr"]

    monkeypatch.setattr(pack_text, "BATCH_NODES", 1)
    assert service.text.step("demo-fr") is True           # one node's text, committed
    first = service.text.status("demo-fr")
    assert first.indexed == 1 and 0 < first.next_entry

    def killed(*_args):
        raise Killed
    monkeypatch.setattr(search, "node_text", killed)
    with pytest.raises(Killed):
        service.text.step("demo-fr")
    assert service.text.status("demo-fr").next_entry == first.next_entry   # nothing half-done kept
    monkeypatch.undo()

    # A new process takes it up from where the last committed slice ended.
    again = _service_of(box)
    seen = []
    monkeypatch.setattr(pack_text, "INLINE_NODES", 0)
    assert pack_text.run_all(again.text, lambda pack, job: seen.append(job.next_entry)) == []
    assert seen and min(seen) > first.next_entry
    done = again.text.status("demo-fr")
    assert done.state == "done" and done.indexed == 3 and done.percent == 100  # PDF, html5, exercise
    assert _found(again, "fin", "guide") and _found(again, "doigts", "quiz")
    assert _found(again, "touchez", "game")               # the html5 app's page
    assert again.index.count() == len(list(again.library.iter_nodes("demo-fr")))


def test_a_small_pack_gets_its_text_within_the_import(box):
    service = _service_of(box)
    service.reindex_pack("demo-fr")
    assert _found(service, "fin", "guide") and _found(service, "doigts", "quiz")
    assert service.text.status("demo-fr") is None and service.text.pending() == []


def test_the_cli_and_the_content_page_show_the_text_indexing(box, runner, monkeypatch, as_user):
    from passerelle.server.search import pack_text

    monkeypatch.setattr(pack_text, "INLINE_NODES", 0)
    result = runner("content", "import", "--bundled", "--force")
    assert result.exit_code == 0, result.stderr
    assert "passerelle index text" in result.stdout
    page = as_user("cora").get("/manage/content").get_data(as_text=True)
    assert "indexing the text inside its documents" in page and 'data-poll="10"' in page
    result = runner("index", "text")
    assert result.exit_code == 0 and "indexed" in result.stdout, result.stderr
    page = as_user("cora").get("/manage/content").get_data(as_text=True)
    assert "indexing the text inside its documents" not in page
    assert runner("search", "doigts").exit_code == 0
