"""Content reaches tablets: pages per kind, blobs with Range and caching, sandboxed apps."""

import re
import sqlite3

import pytest


@pytest.fixture
def demo(app):
    db = sqlite3.connect(app.config["DB_PATH"])
    files = {(node, role): (sha, mime) for node, role, sha, mime in db.execute(
        "SELECT node_id, role, sha256, mime FROM content_node_files WHERE pack_id = 'demo-fr'")}
    return files


def test_home_lists_installed_packs(client):
    html = client.get("/", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "Démo Passerelle" in html
    assert 'href="/learn/demo-fr"' in html


def test_topic_page_with_breadcrumbs_and_kinds(client):
    response = client.get("/learn/demo-fr", headers={"Accept-Language": "fr"})
    assert response.status_code == 302
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Les bases" in html
    html = client.get("/learn/demo-fr/basics", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert 'aria-label="You are here"' in html
    for title in ("Bienvenue", "Un petit clip", "Le jeu des bulles", "Petit quiz"):
        assert title in html


def test_article_is_rendered_safely_with_its_image(client, demo):
    html = client.get("/learn/demo-fr/basics/welcome").get_data(as_text=True)
    assert "<strong>doucement</strong>" in html
    sha = demo[("basics/welcome", "image")][0]
    assert f'src="/files/{sha}"' in html
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert 'href="https://example.org/"' not in html  # no dead links off the box


def test_video_page_has_subtitles(client, demo):
    html = client.get("/learn/demo-fr/basics/clip").get_data(as_text=True)
    video = demo[("basics/clip", "main")][0]
    vtt = demo[("basics/clip", "subtitles")][0]
    assert f'<video class="player" controls preload="metadata" src="/files/{video}"' in html
    assert f'src="/files/{vtt}" srclang="fr"' in html


def test_blobs_have_mime_etag_long_cache_head_and_range(client, demo):
    sha, mime = demo[("basics/clip", "main")]
    full = client.get(f"/files/{sha}")
    assert full.status_code == 200 and full.mimetype == "video/webm"
    assert full.headers["ETag"] == f'"{sha}"'
    assert full.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert full.headers["Accept-Ranges"] == "bytes"
    body = full.data
    part = client.get(f"/files/{sha}", headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(body)}"
    assert part.data == body[1000:2000]
    head = client.head(f"/files/{sha}")
    assert head.status_code == 200 and head.data == b"" and int(head.headers["Content-Length"]) == len(body)
    assert client.get(f"/files/{sha}", headers={"If-None-Match": f'"{sha}"'}).status_code == 304


def test_unknown_or_unreferenced_blobs_are_not_served(client):
    assert client.get("/files/" + "0" * 64).status_code == 404
    assert client.get("/files/not-a-hash").status_code == 404


def test_html5_apps_are_served_from_their_zip_in_a_sandbox(client, demo):
    sha = demo[("basics/game", "main")][0]
    html = client.get("/learn/demo-fr/basics/game").get_data(as_text=True)
    assert re.search(rf'<iframe class="app" title="Le jeu des bulles" sandbox="allow-scripts allow-forms allow-pointer-lock"\s+src="/apps/{sha}/"', html)
    assert client.get(f"/apps/{sha}/").data == client.get(f"/apps/{sha}/index.html").data
    page = client.get(f"/apps/{sha}/index.html")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert page.headers["Content-Security-Policy"].startswith("sandbox allow-scripts")
    assert "allow-same-origin" not in page.headers["Content-Security-Policy"]
    script = client.get(f"/apps/{sha}/app.js")
    assert script.mimetype in ("text/javascript", "application/javascript")
    part = client.get(f"/apps/{sha}/app.js", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.data == script.data[:10]
    assert client.get(f"/apps/{sha}/../../etc/passwd").status_code == 404
    assert client.get(f"/apps/{sha}/missing.js").status_code == 404


def test_opening_a_resource_starts_it_once_and_done_completes_it(as_user, app):
    from tests.conftest import csrf_token

    amina = as_user("amina")
    amina.get("/learn/demo-fr/basics/welcome")
    amina.get("/learn/demo-fr/basics/welcome")
    progress = amina.get("/api/v1/progress").get_json()["progress"]
    assert [(p["node_id"], p["completed"]) for p in progress] == [("basics/welcome", False)]
    page = amina.get("/learn/demo-fr/basics").get_data(as_text=True)
    assert "Started" in page or "Commencé" in page or "started" in page.lower()
    response = amina.post("/learn/demo-fr/basics/welcome/done", data={"csrf_token": csrf_token(amina)})
    assert response.status_code == 302
    progress = amina.get("/api/v1/progress").get_json()["progress"]
    assert progress[0]["completed"] is True
    home = amina.get("/").get_data(as_text=True)
    assert "Continue where you left off" not in home or "Bienvenue" not in home.split("Continue")[1][:300]


def test_guests_browse_without_recording(client, app):
    client.get("/learn/demo-fr/basics/welcome")
    db = sqlite3.connect(app.config["DB_PATH"])
    assert db.execute("SELECT count(*) FROM progress").fetchone()[0] == 0


@pytest.mark.parametrize("value", ["bytes=5-1", "bytes=999999999-", "bytes=abc", "items=0-1",
                                   "bytes=0-1,5-2"])
def test_files_and_apps_refuse_a_bad_range_alike(client, demo, value):
    blob = demo[("basics/clip", "main")][0]
    app_sha = demo[("basics/game", "main")][0]
    answers = {}
    for url in (f"/files/{blob}", f"/apps/{app_sha}/index.html"):
        size = len(client.get(url).data)
        response = client.get(url, headers={"Range": value})
        assert response.status_code == 416, (url, value)
        assert response.headers["Content-Range"] == f"bytes */{size}"
        answers[url] = response.status_code
    assert len(set(answers.values())) == 1


def test_apps_honour_conditions_and_ranges_like_files(client, demo):
    app_sha = demo[("basics/game", "main")][0]
    url = f"/apps/{app_sha}/index.html"
    full = client.get(url)
    etag = full.headers["ETag"]
    assert full.headers["Accept-Ranges"] == "bytes"
    assert int(full.headers["Content-Length"]) == len(full.data)
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    tail = client.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.data == full.data[-10:]
    assert tail.headers["Content-Range"] == f"bytes {len(full.data) - 10}-{len(full.data) - 1}/{len(full.data)}"
    # A range for another version of the file is ignored: the whole file comes back.
    stale = client.get(url, headers={"Range": "bytes=0-3", "If-Range": '"another"'})
    assert stale.status_code == 200 and stale.data == full.data
    head = client.head(url)
    assert head.status_code == 200 and head.data == b"" and int(head.headers["Content-Length"]) == len(full.data)


def test_the_catalogue_reads_many_nodes_in_one_call(app):
    from passerelle.server.db import get_db
    from passerelle.server.packs import catalogue as web

    wanted = [("demo-fr", f"not-there-{i}") for i in range(450)]  # more than one query's worth
    wanted += [("demo-fr", "basics/quiz"), ("demo-fr", "basics/welcome"), ("demo-fr", "basics/quiz")]
    with app.app_context():
        db = get_db()
        titles = {key: (f["title"], f["kind"]) for key, f in web.brief(db, wanted).items()}
        assert titles == {("demo-fr", "basics/quiz"): ("Petit quiz", "exercise"),
                          ("demo-fr", "basics/welcome"): ("Bienvenue", "article")}
        found = web.nodes(db, wanted)
        assert set(found) == {("demo-fr", "basics/quiz"), ("demo-fr", "basics/welcome")}
        assert found[("demo-fr", "basics/quiz")] == web.node(db, "demo-fr", "basics/quiz")
        assert web.brief(db, []) == {} and web.nodes(db, []) == {}
