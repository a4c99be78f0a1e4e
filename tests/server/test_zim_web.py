"""ZIM files on the box: the learners' library, the reading frame, the served entries, search."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from passerelle.content import zim

sys.path.insert(0, str(Path(__file__).parents[1]))

from zimfixtures import DEFAULT_ARTICLES, HOSTILE, make_zim  # noqa: E402

from tests.conftest import csrf_token  # noqa: E402

pytestmark = pytest.mark.skipif(not zim.AVAILABLE, reason=zim.UNAVAILABLE_REASON)

ARTICLES = {**DEFAULT_ARTICLES,
            "Tablette_tactile": ("Tablette tactile", "<p>Une tablette se touche du doigt.</p>"
                                                     '<img src="logo.png" alt="">')}


@pytest.fixture
def wiki(app, tmp_path):
    """A Wikipédia-like ZIM on a "USB disk", added to the box; returns its UUID and path."""
    path = make_zim(tmp_path / "usb" / "wikipedia_fr_test.zim", articles=ARTICLES,
                    redirects={"MDP": "Mot_de_passe"},
                    extra={"logo.png": ("image/png", b"\x89PNG\r\n\x1a\n" + b"0" * 2000),
                           "hostile.html": ("text/html", HOSTILE)})
    result = app.extensions["passerelle.zims"].add(path)
    return result.uuid, path


def test_the_library_shows_each_zim_with_its_metadata(client, wiki):
    uuid, _ = wiki
    page = client.get("/").get_data(as_text=True)
    assert "Wikipédia test" in page and "Quelques articles" in page
    assert f'href="/read/{uuid}/"' in page and 'lang="fr"' in page and "French" in page
    icon = client.get(f"/zim-illustration/{uuid}.png")
    assert icon.status_code == 200 and icon.data.startswith(b"\x89PNG")


def test_tapping_it_opens_its_main_page_in_the_sandboxed_kiosk_frame(as_user, wiki):
    uuid, _ = wiki
    amina = as_user("amina")
    page = amina.get(f"/read/{uuid}/").get_data(as_text=True)
    assert f'src="/zim/{uuid}/Accueil"' in page
    assert 'sandbox="allow-scripts allow-forms allow-pointer-lock"' in page
    assert "Amina" in page and 'href="/"' in page  # the learner's header, a way back


def test_entries_are_served_with_type_etag_cache_and_the_app_sandbox(client, wiki):
    uuid, _ = wiki
    main = client.get(f"/zim/{uuid}/")
    assert main.status_code == 302 and main.headers["Location"].endswith(f"/zim/{uuid}/Accueil")
    redirect = client.get(f"/zim/{uuid}/MDP")
    assert redirect.status_code == 302 and redirect.headers["Location"].endswith("/Mot_de_passe")
    article = client.get(f"/zim/{uuid}/Mot_de_passe")
    assert article.status_code == 200 and article.mimetype == "text/html"
    assert "phrase de passe" in article.get_data(as_text=True)
    assert article.headers["Content-Security-Policy"].startswith("sandbox allow-scripts")
    assert "immutable" in article.headers["Cache-Control"]
    etag = article.headers["ETag"]
    again = client.get(f"/zim/{uuid}/Mot_de_passe", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert client.get(f"/zim/{uuid}/Nope").status_code == 404
    assert client.get(f"/zim/{'0' * 8}-0000-0000-0000-{'0' * 12}/Accueil").status_code == 404


def test_range_requests(client, wiki):
    uuid, _ = wiki
    whole = client.get(f"/zim/{uuid}/logo.png").data
    part = client.get(f"/zim/{uuid}/logo.png", headers={"Range": "bytes=8-19"})
    assert part.status_code == 206 and part.data == whole[8:20]
    assert part.headers["Content-Range"] == f"bytes 8-19/{len(whole)}"
    assert client.get(f"/zim/{uuid}/logo.png", headers={"Range": "bytes=99999-"}).status_code == 416


def test_a_hidden_zim_is_gone_for_learners_but_staff_can_preview(as_user, wiki):
    uuid, _ = wiki
    cora = as_user("cora")
    token = csrf_token(cora)
    response = cora.post(f"/manage/content/zim/{uuid}/visibility",
                         data={"csrf_token": token, "hidden": "1"})
    assert response.status_code == 302
    assert "hidden from learners" in cora.get("/manage/content").get_data(as_text=True)
    amina = as_user("amina")
    assert "Wikipédia test" not in amina.get("/").get_data(as_text=True)
    assert amina.get(f"/zim/{uuid}/Accueil").status_code == 404
    assert amina.get(f"/read/{uuid}/").status_code == 404
    assert amina.get("/api/v1/zims").get_json()["zims"] == []
    assert cora.get(f"/zim/{uuid}/Accueil").status_code == 200
    cora.post(f"/manage/content/zim/{uuid}/visibility", data={"csrf_token": token, "hidden": "0"})
    assert "Wikipédia test" in amina.get("/").get_data(as_text=True)


def test_an_unplugged_disk_shows_unavailable_and_nothing_is_deleted(as_user, wiki, tmp_path):
    uuid, path = wiki
    (tmp_path / "usb").rename(tmp_path / "unplugged")
    amina = as_user("amina")
    assert "Wikipédia test" not in amina.get("/").get_data(as_text=True)
    assert amina.get(f"/zim/{uuid}/Accueil").status_code == 404
    assert "is not connected" in amina.get(f"/read/{uuid}/").get_data(as_text=True)
    assert "unavailable" in as_user("cora").get("/manage/content").get_data(as_text=True)
    (tmp_path / "unplugged").rename(tmp_path / "usb")
    assert amina.get(f"/zim/{uuid}/Accueil").status_code == 200


def test_search_shows_the_lesson_first_and_the_encyclopedia_next(client, wiki):
    uuid, _ = wiki
    page = client.get("/search?q=tablette").get_data(as_text=True)
    results = page[page.index('<ol class="results"'):]
    links = [chunk.split('"')[0] for chunk in results.split('<a href="')[1:]]
    assert links[0].startswith("/learn/demo-fr/")  # the box's own lesson leads
    assert links[1] == f"/read/{uuid}/Tablette_tactile"  # the encyclopedia next
    assert "/learn/demo-fr/basics/welcome" in links[2:]
    assert f"/search?q=tablette&amp;zim={uuid}" in page  # a facet for the source
    only = client.get(f"/search?q=tablette&zim={uuid}").get_data(as_text=True)
    assert "Tablette_tactile" in only and "/learn/demo-fr/" not in only


def test_suggestions_include_the_zims_titles(client, wiki):
    found = client.get("/api/v1/search/suggest?q=Clav").get_json()["suggestions"]
    assert "Clavier" in found


def test_api_lists_and_searches_zims(client, wiki):
    uuid, _ = wiki
    listed = client.get("/api/v1/zims").get_json()
    assert listed["available"] and listed["zims"][0]["uuid"] == uuid
    assert "path" not in listed["zims"][0]  # where the disk is is staff's business
    found = client.get("/api/v1/zims/search?q=mot de passe").get_json()
    [source] = found["sources"]
    assert source["mode"] == "fulltext" and source["hits"][0]["path"] == "Mot_de_passe"


def test_opening_an_article_is_learning_activity(as_user, wiki, app):
    uuid, _ = wiki
    amina = as_user("amina")
    amina.get(f"/read/{uuid}/Clavier")
    amina.get(f"/read/{uuid}/Clavier")  # a second opening is a repeat, not another start
    import sqlite3

    db = sqlite3.connect(app.config["DB_PATH"])
    rows = db.execute("SELECT pack_id, node_id FROM progress").fetchall()
    assert rows == [(f"zim:{uuid}", "Clavier")]
    events = db.execute("SELECT COUNT(*) FROM ops WHERE kind = 'event'").fetchone()[0]
    assert events == 1


def test_cli_import_of_zims_and_damaged_ones(runner, tmp_path):
    path = make_zim(tmp_path / "w.zim")
    result = runner("content", "import", str(path))
    assert result.exit_code == 0 and "added" in result.stdout and "served from" in result.stdout
    bad = tmp_path / "bad.zim"
    bad.write_bytes(path.read_bytes()[:5000])
    result = runner("content", "import", str(bad))
    assert result.exit_code != 0
    assert result.stderr.strip().count("\n") == 0 and "bad size or corrupted" in result.stderr
    listed = runner("content", "list").stdout
    assert "Wikipédia test" in listed and "bad" not in listed
    copied = runner("content", "import", str(path), "--copy")
    assert copied.exit_code == 0
    assert runner("content", "import", str(tmp_path / "nothing.zip"), "--copy").exit_code != 0


def test_another_box_copies_the_file_resumably_and_kiwix_apps_browse_the_catalogue(client, wiki):
    import xml.etree.ElementTree as ET

    uuid, path = wiki
    data = path.read_bytes()
    whole = client.get(f"/zim-file/{uuid}.zim")
    assert whole.status_code == 200 and whole.data == data
    rest = client.get(f"/zim-file/{uuid}.zim", headers={"Range": f"bytes={len(data) - 100}-"})
    assert rest.status_code == 206 and rest.data == data[-100:]
    root = client.get("/catalog/v2/root.xml")
    assert root.status_code == 200 and "kind=navigation" in root.headers["Content-Type"]
    entries = ET.fromstring(client.get("/catalog/v2/entries").data)
    atom = "{http://www.w3.org/2005/Atom}"
    [entry] = entries.findall(f"{atom}entry")
    assert entry.find(f"{atom}id").text == f"urn:uuid:{uuid}"
    assert entry.find(f"{atom}title").text == "Wikipédia test"
    assert entry.find(f"{atom}language").text == "fra"
    links = {link.get("rel"): link.get("href") for link in entry.findall(f"{atom}link")}
    assert links["http://opds-spec.org/acquisition/open-access"] == f"/zim-file/{uuid}.zim"
    assert links[None] == f"/zim/{uuid}/"


# --- the box's own full-text index for ZIMs without one ------------------------------------

@pytest.fixture
def plain(app, tmp_path):
    """A ZIM with a title index but no full-text index (a zimit capture, a small export)."""
    articles = {**ARTICLES, **{f"Page_{i}": (f"Page {i}", f"<p>Texte numéro {i} du recueil "
                                                        f"<script>var x = '<b>';</script></p>")
                               for i in range(40)}}
    path = make_zim(tmp_path / "usb" / "plain.zim", articles=articles, fulltext=False,
                    name="plain_fr", title="Recueil sans index",
                    extra={"logo.png": ("image/png", b"\x89PNG\r\n\x1a\n" + b"0" * 200)})
    uuid = app.extensions["passerelle.zims"].add(path).uuid
    return uuid, len(articles)


def test_a_zim_without_full_text_index_is_indexed_and_searched_with_snippets(client, app, plain):
    uuid, count = plain
    indexer = app.extensions["passerelle.zim_index"]
    indexer.queue(uuid)
    indexer.run(uuid)
    job = indexer.status(uuid)
    assert job.state == "done" and job.indexed == count and job.percent == 100
    found = client.get("/api/v1/zims/search?q=phrase de passe").get_json()
    [source] = found["sources"]
    assert source["mode"] == "index" and source["hits"][0]["path"] == "Mot_de_passe"
    assert "<mark>phrase</mark> de <mark>passe</mark>" in source["hits"][0]["snippet"]
    page = client.get("/search?q=doigt").get_data(as_text=True)
    assert f"/read/{uuid}/Tablette_tactile" in page
    assert 'class="snippet"' in page and "<mark>doigt</mark>" in page


def test_indexing_goes_by_bounded_slices_and_resumes_after_a_crash(app, plain, monkeypatch):
    from passerelle.server.search import zim_index

    uuid, count = plain
    monkeypatch.setattr(zim_index, "BATCH_ENTRIES", 10)
    indexer = app.extensions["passerelle.zim_index"]
    indexer.queue(uuid)
    assert indexer.step(uuid) is True   # one slice, more to do
    first = indexer.status(uuid)
    assert 0 < first.next_entry <= 50 and first.state == "queued" and 0 < first.percent < 100
    # Killed after a slice's documents were committed, before its progress was: the next
    # start indexes that slice again, and nothing is counted twice.
    real_set = zim_index.ZimIndexer._set

    def crash(self, uuid_, **values):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(zim_index.ZimIndexer, "_set", crash)
    with pytest.raises(KeyboardInterrupt):
        indexer.step(uuid)
    monkeypatch.setattr(zim_index.ZimIndexer, "_set", real_set)
    assert indexer.status(uuid).next_entry == first.next_entry
    # A new process (a new app on the same data home) goes on from there.
    from passerelle.server.app import create_app

    again = create_app({"home": app.config["HOME"].root, "TESTING": True})
    later = again.extensions["passerelle.zim_index"]
    later.run(uuid)
    job = later.status(uuid)
    assert job.state == "done" and job.indexed == count


def test_a_zim_index_costs_each_serving_thread_little_memory(app, plain, monkeypatch):
    """Every serving thread searches through its own connection: no mapped window of the
    index file and a small page cache each, and a slice gives its freed pages back."""
    import threading

    from passerelle.server.search import zim_index

    uuid, _ = plain
    trims = []
    monkeypatch.setattr(zim_index, "release_memory", lambda collect=True: trims.append(collect))
    indexer = app.extensions["passerelle.zim_index"]
    indexer.queue(uuid)
    indexer.run(uuid)
    assert trims and not any(trims)   # after each slice, without a full collection
    seen = []

    def search():
        conn = indexer.index(uuid)._conn()
        seen.append((conn.execute("PRAGMA mmap_size").fetchone()[0],
                     conn.execute("PRAGMA cache_size").fetchone()[0]))

    thread = threading.Thread(target=search)
    thread.start()
    thread.join()
    assert seen == [(0, -zim_index.CACHE_KIB)] and zim_index.CACHE_KIB <= 2000
    # libzim's cache of decompressed clusters, bounded for the whole serving process.
    from libzim.reader import get_cluster_cache_max_size
    from passerelle.content import zim as zimlib

    assert get_cluster_cache_max_size() == zimlib.CLUSTER_CACHE_BYTES <= 4 * 1024 * 1024


def test_indexing_is_skippable_and_a_second_process_waits_its_turn(app, plain):
    import fcntl
    import os

    uuid, _ = plain
    indexer = app.extensions["passerelle.zim_index"]
    indexer.skip(uuid)
    assert indexer.queue_new() == [] and indexer.status(uuid).state == "skipped"
    indexer.step(uuid)
    assert indexer.index(uuid) is None
    indexer.queue(uuid)
    indexer.folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(indexer.folder / f"{uuid}.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)    # another process is indexing it
        assert indexer.step(uuid) is False and indexer.status(uuid).next_entry == 0
    finally:
        os.close(fd)
    indexer.step(uuid)
    assert indexer.status(uuid).state == "done"


def test_cli_import_queues_indexing_unless_no_index(runner, tmp_path):
    path = make_zim(tmp_path / "p.zim", fulltext=False)
    result = runner("content", "import", str(path), "--no-index")
    assert result.exit_code == 0 and "not indexed for full-text search" in result.stdout
    result = runner("index", "zim")
    assert "no ZIM waits" in result.stdout
    other = make_zim(tmp_path / "q.zim", fulltext=False, name="other")
    result = runner("content", "import", str(other))
    assert result.exit_code == 0 and "indexed for search in the background" in result.stdout
    result = runner("index", "zim")
    assert result.exit_code == 0 and "done, 4 articles indexed" in result.stdout
    indexes = list((runner.home / "index" / "zim").glob("*.db"))
    assert len(indexes) == 1
    uuid = indexes[0].stem
    assert runner("content", "remove", uuid, "--yes").exit_code == 0
    assert not indexes[0].exists()   # forgetting a ZIM drops its search index
    assert runner("content", "import", "x.zip", "--no-index").exit_code != 0


def test_a_hostile_zim_fails_its_indexing_cleanly_and_stays_served(client, app, plain, monkeypatch):
    from passerelle.content import zim as zimlib

    uuid, _ = plain
    indexer = app.extensions["passerelle.zim_index"]
    indexer.queue(uuid)

    def damaged(self, uuid_, start, count, max_bytes=0):
        raise zimlib.InvalidZim("Plain: cannot be read from the ZIM (bad cluster)")

    monkeypatch.setattr(zimlib.ZimLibrary, "articles", damaged)
    assert indexer.step(uuid) is False
    job = indexer.status(uuid)
    assert job.state == "failed" and "bad cluster" in job.error
    monkeypatch.undo()
    assert client.get(f"/zim/{uuid}/Clavier").status_code == 200
    indexer.queue(uuid)   # a failure is started again from the beginning
    assert indexer.status(uuid).next_entry == 0 and indexer.status(uuid).state == "queued"


def test_xapian_hits_get_snippets_of_their_article(client, wiki):
    found = client.get("/api/v1/zims/search?q=clavier").get_json()
    [source] = found["sources"]
    assert source["mode"] == "fulltext"
    assert "sert à taper" in source["hits"][0]["snippet"]
    assert "<mark>clavier</mark>" in source["hits"][0]["snippet"].lower()


def test_a_xapian_hit_snippet_is_the_article_text_escaped(client, app, tmp_path):
    """The snippet of a hit found by the ZIM's own index is made from its article's text,
    which may hold markup as text: it is shown escaped, with only the words marked."""
    path = make_zim(tmp_path / "usb" / "balises.zim", name="balises_fr", articles={
        "Accueil": ("Accueil", "<p>Bienvenue.</p>"),
        "Balise": ("Balise", "<p>Une balise &lt;script&gt;alert(1)&lt;/script&gt; s'écrit au "
                             "clavier &amp; se lit ensuite.</p><script>document.cookie</script>")})
    uuid = app.extensions["passerelle.zims"].add(path).uuid
    found = client.get(f"/api/v1/zims/search?zim={uuid}&q=balise").get_json()
    [source] = found["sources"]
    [hit] = source["hits"]
    assert source["mode"] == "fulltext" and hit["path"] == "Balise"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in hit["snippet"]
    assert "<script>" not in hit["snippet"] and "document.cookie" not in hit["snippet"]
    assert "<mark>balise</mark>" in hit["snippet"].lower() and "&amp; se lit" in hit["snippet"]
    # The search page shows the hit at once and its script asks for the snippet afterwards.
    page = client.get(f"/search?q=balise&zim={uuid}").get_data(as_text=True)
    asked = f'data-snippet="/api/v1/zims/{uuid}/snippets" data-path="Balise"'
    assert asked in page and "alert(1)" not in page
    later = client.get(f"/api/v1/zims/{uuid}/snippets?q=balise&path=Balise&path=Nowhere").get_json()
    assert later["snippets"] == {"Balise": hit["snippet"], "Nowhere": ""}


def test_snippets_are_only_of_zims_a_learner_may_open(as_user, wiki, app):
    uuid, _ = wiki
    learner = as_user("amina")
    ok = learner.get(f"/api/v1/zims/{uuid}/snippets?q=clavier&path=Clavier")
    assert ok.status_code == 200 and "<mark>" in ok.get_json()["snippets"]["Clavier"].lower()
    app.extensions["passerelle.zims"].set_hidden(uuid, True)
    hidden = learner.get(f"/api/v1/zims/{uuid}/snippets?q=clavier&path=Clavier")
    assert hidden.status_code == 404 and hidden.get_json()["error"]["code"]
    app.extensions["passerelle.zims"].set_hidden(uuid, False)
    many = "&".join(f"path=p{i}" for i in range(50))  # a page shows at most 20 of one ZIM
    assert len(learner.get(f"/api/v1/zims/{uuid}/snippets?q=x&{many}").get_json()["snippets"]) == 20


# --- reading time, for the learner's progress and the reports ---------------------------------

def test_time_spent_reading_an_article_is_counted_in_reports(as_user, wiki, app):
    from datetime import UTC, datetime

    from passerelle.server.db import get_db
    from passerelle.server.reports import impact as reports

    uuid, _ = wiki
    amina = as_user("amina")
    page = amina.get(f"/read/{uuid}/Mot_de_passe").get_data(as_text=True)
    assert f'data-zim-time="/read/{uuid}/time"' in page and "zimtime.js" in page
    token = csrf_token(amina)
    beat = "ab" * 16
    form = {"csrf_token": token, "path": "Mot_de_passe", "seconds": "60", "beat": beat}
    assert amina.post(f"/read/{uuid}/time", data=form).status_code == 204
    assert amina.post(f"/read/{uuid}/time", data=form).status_code == 204  # resent: once
    assert amina.post(f"/read/{uuid}/time", data={**form, "beat": "cd" * 16,
                                                  "seconds": "45"}).status_code == 204
    bad = amina.post(f"/read/{uuid}/time", data={**form, "seconds": "-3", "beat": "zz"})
    assert bad.status_code == 400
    with app.app_context():
        row = get_db().execute("SELECT seconds FROM progress WHERE pack_id = ? AND node_id = ?",
                               [f"zim:{uuid}", "Mot_de_passe"]).fetchone()
        assert row[0] == 105
        today = datetime.now(UTC).date()
        result = reports.impact(get_db(), today, today)
    packs = {p.pack_id: p for p in result.packs}
    assert packs[f"zim:{uuid}"].seconds == 105 and packs[f"zim:{uuid}"].title == "Wikipédia test"
    assert packs[f"zim:{uuid}"].language == "fr" and result.seconds >= 105


def test_staff_and_guests_reading_record_nothing(as_user, wiki, app):
    uuid, _ = wiki
    for who in (None, "fatou"):
        client = as_user(who)
        page = client.get(f"/read/{uuid}/Clavier").get_data(as_text=True)
        assert "data-zim-time" not in page
        form = {"csrf_token": csrf_token(client), "path": "Clavier", "seconds": "60",
                "beat": "ef" * 16}
        assert client.post(f"/read/{uuid}/time", data=form).status_code == 204
    import sqlite3

    assert sqlite3.connect(app.config["DB_PATH"]).execute(
        "SELECT count(*) FROM progress").fetchone()[0] == 0


# --- a ZIM article in a lesson ------------------------------------------------------------

def test_staff_add_an_article_to_a_lesson_and_learners_open_it_from_there(as_user, wiki, app, box):
    from passerelle.server.db import get_db
    from passerelle.server.learning import lessons

    uuid, _ = wiki
    fatou = as_user("fatou")
    page = fatou.get(f"/read/{uuid}/Mot_de_passe").get_data(as_text=True)
    assert 'class="add-to-lesson"' in page and f'action="/read/{uuid}/lesson"' in page
    token = csrf_token(fatou)
    response = fatou.post(f"/read/{uuid}/lesson", data={
        "csrf_token": token, "path": "Mot_de_passe", "lesson": "", "title": "Sécurité"})
    assert response.status_code == 302 and response.headers["Location"].endswith(
        f"/read/{uuid}/Mot_de_passe")
    with app.app_context():
        [lesson] = [x for x in lessons.lessons(get_db()) if x["title"] == "Sécurité"]
        assert lesson["items"] == [{"pack_id": f"zim:{uuid}", "node_id": "Mot_de_passe"}]
    # Then another article into the same lesson, twice: once.
    for _ in range(2):
        fatou.post(f"/read/{uuid}/lesson", data={"csrf_token": token, "path": "Clavier",
                                                 "lesson": lesson["uuid"]})
    with app.app_context():
        items = lessons.get_lesson(get_db(), lesson["uuid"])["items"]
        assert [i["node_id"] for i in items] == ["Mot_de_passe", "Clavier"]
        lessons.assign(get_db(), lesson["uuid"], box.ids["class_a"], box.ids["fatou"])
    # No such article, no such lesson, no title: nothing changes.
    assert fatou.post(f"/read/{uuid}/lesson", data={"csrf_token": token, "path": "Nope",
                                                    "lesson": ""}).status_code == 404
    fatou.post(f"/read/{uuid}/lesson", data={"csrf_token": token, "path": "Clavier", "lesson": "",
                                             "title": ""})
    with app.app_context():
        assert len([x for x in lessons.lessons(get_db()) if x["title"] == "Sécurité"]) == 1
    # The learner's lesson links to the article, with its title from the ZIM.
    amina = as_user("amina")
    home = amina.get("/").get_data(as_text=True)
    link = f"/learn/zim:{uuid}/Mot_de_passe"
    assert link in home and "Mot de passe" in home
    opened = amina.get(link)
    assert opened.status_code == 302 and opened.headers["Location"].endswith(
        f"/read/{uuid}/Mot_de_passe")
    grid = fatou.get(f"/manage/classes/{box.ids['class_a']}/grid").get_data(as_text=True)
    assert "Clavier" in grid
    builder = fatou.get(f"/manage/lessons/{lesson['uuid']}/edit")
    assert builder.status_code == 200 and "Mot de passe" in builder.get_data(as_text=True)
    # Saved again from the builder, the lesson keeps its ZIM articles.
    fatou.post(f"/manage/lessons/{lesson['uuid']}/edit", data={
        "csrf_token": token, "title": "Sécurité", "action": "save",
        "item": [f"zim:{uuid}/Mot_de_passe", f"zim:{uuid}/Clavier"]})
    with app.app_context():
        items = lessons.get_lesson(get_db(), lesson["uuid"])["items"]
        assert [i["node_id"] for i in items] == ["Mot_de_passe", "Clavier"]


def test_learners_have_no_lesson_form_and_cannot_post_it(as_user, wiki):
    uuid, _ = wiki
    amina = as_user("amina")
    assert "add-to-lesson" not in amina.get(f"/read/{uuid}/Clavier").get_data(as_text=True)
    response = amina.post(f"/read/{uuid}/lesson", data={
        "csrf_token": csrf_token(amina), "path": "Clavier", "lesson": "", "title": "X"})
    assert response.status_code == 403


# --- ZIM files on USB drives --------------------------------------------------------------

def test_zims_on_a_usb_drive_are_offered_and_added_from_the_content_page(box, tmp_path,
                                                                          monkeypatch):
    from passerelle.server.app import create_app

    from tests.conftest import english_client, sign_in

    drive = tmp_path / "media" / "usb0"
    good = make_zim(drive / "kiwix" / "plain.zim", fulltext=False, title="Recueil USB")
    bad = drive / "kiwix" / "broken.zim"
    bad.write_bytes(good.read_bytes()[:3000])
    monkeypatch.setenv("PASSERELLE_USB_ROOTS", str(tmp_path / "media"))
    app = create_app({"home": box.home, "TESTING": True})
    client = english_client(app)
    sign_in(client, box, "cora")
    token = csrf_token(client)
    page = client.get("/manage/content").get_data(as_text=True)
    assert "ZIM files on USB drives" in page and "Recueil USB" in page and str(good) in page
    assert "bad size or corrupted" in page   # the damaged one says why, with no button
    # Only what the scan lists is taken; a damaged file changes nothing.
    assert client.post("/manage/content/zim/import", data={"csrf_token": token,
                                                           "path": "/etc/passwd"}).status_code == 404
    client.post("/manage/content/zim/import", data={"csrf_token": token, "path": str(bad)})
    assert app.extensions["passerelle.zims"].list() == []
    done = client.post("/manage/content/zim/import", data={"csrf_token": token, "path": str(good)},
                       follow_redirects=True).get_data(as_text=True)
    assert "Recueil USB is added, served from the USB drive." in done
    [added] = app.extensions["passerelle.zims"].list()
    assert added.path == str(good) and not added.copied
    assert app.extensions["passerelle.zim_index"].status(added.uuid).state == "queued"
    assert "Search: indexing its articles" in done and 'data-poll="10"' in done
    assert f'value="{good}"' not in done   # served now: no longer offered


def test_a_zim_with_damaged_clusters_is_indexed_around_them(client, app, as_user, tmp_path):
    import random

    from zimfixtures import damaged_copy

    rng = random.Random(1)
    articles = {f"P{i}": (f"Page {i}", "<p>" + " ".join(f"w{rng.randrange(10**5)}"
                                                         for _ in range(300)) + "</p>")
                for i in range(30)}
    damaged, unreadable = damaged_copy(make_zim(tmp_path / "big.zim", articles=articles,
                                                fulltext=False), tmp_path)
    uuid = app.extensions["passerelle.zims"].add(damaged, full_check=False).uuid
    indexer = app.extensions["passerelle.zim_index"]
    indexer.queue(uuid)
    indexer.run(uuid)
    job = indexer.status(uuid)
    assert job.state == "done" and job.unreadable == unreadable and job.indexed > 0
    page = as_user("cora").get("/manage/content").get_data(as_text=True)
    assert f"{unreadable} entries could not be read" in page or "entry could not be read" in page
