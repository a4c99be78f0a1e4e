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
