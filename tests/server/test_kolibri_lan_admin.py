"""The coordinator's content page: the update of an installed Kolibri channel shows what changes before it
is confirmed (from a drive or a Kolibri server), and channels are listed and imported from a Kolibri
server on the LAN (a fake Kolibri on 127.0.0.1) as background jobs, with addresses checked and
unreachable or foreign servers explained in words."""

import http.server
import re
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "content"))

import test_kolibri_remote  # noqa: E402
from kolibri_channel import CHANNEL, hexid, standard  # noqa: E402
from passerelle.content import kolibri  # noqa: E402
from passerelle.server.app import create_app  # noqa: E402
from passerelle.server.packs import imports  # noqa: E402
from test_kolibri_remote import FakeKolibri  # noqa: E402

from tests.conftest import csrf_token, english_client, free_port, sign_in  # noqa: E402
from tests.server.test_content_admin import wait_for_jobs  # noqa: E402

PACK = "kolibri-" + CHANNEL
# The fake Kolibri server of the LAN import's tests, on 127.0.0.1.
fake_kolibri = test_kolibri_remote.fake_kolibri


def newer_version(root: Path) -> dict:
    """Version 4 of the test channel: one title changed, one resource added, one removed."""
    ex, ids = standard(root)
    ex.db.execute("UPDATE content_channelmetadata SET version = 4")
    ex.db.execute("UPDATE content_contentnode SET title = 'Counting video, new cut' WHERE id = ?", [ids["video"]])
    ex.db.execute("DELETE FROM content_file WHERE contentnode_id = ?", [ids["pdf"]])
    ex.db.execute("DELETE FROM content_contentnode WHERE id = ?", [ids["pdf"]])
    ids["new"] = ex.node(hexid("new"), ids["other"], "audio", "A new <b>song</b>", order=9)
    ex.file(ids["new"], "audio", b"ID3 new song", "mp3")
    ex.save()
    return ids


@pytest.fixture
def coordinator(box, tmp_path, monkeypatch):
    monkeypatch.setenv("PASSERELLE_USB_ROOTS", str(tmp_path / "media"))
    app = create_app({"home": box.home, "TESTING": True})
    client = english_client(app)
    sign_in(client, box, "cora")
    yield app, client
    app.extensions["passerelle.db_pool"].close()


def fetched(client, posted, deadline: float = 120) -> str:
    """The page a fetch of a channel's database ends on: the POST sends the browser (303) to a
    page that refreshes itself while the database comes; it is asked again, as the browser
    would, until it no longer asks to be refreshed."""
    assert posted.status_code == 303, posted.status_code
    location = posted.headers["Location"]
    assert "/manage/content/lan/fetch/" in location
    end = time.monotonic() + deadline
    while True:
        page = client.get(location)
        body = page.get_data(as_text=True)
        if page.status_code != 200 or 'http-equiv="refresh"' not in body or time.monotonic() > end:
            return body
        time.sleep(0.1)


def installed_version(app) -> int:
    return app.extensions["passerelle.library"].get(PACK).version


def test_addresses_are_checked():
    assert imports.lan_address("kolibri-box:8080") == "http://kolibri-box:8080/"
    assert imports.lan_address(" https://192.168.1.20:8080/kolibri ") == "https://192.168.1.20:8080/kolibri/"
    assert imports.lan_address("http://[fe80::1]:8080/") == "http://[fe80::1]:8080/"
    for bad in ("", "ftp://box/", "file:///etc/passwd", "javascript:alert(1)", "http://user:pw@box/",
                "http://box/?x=1", "http://box:99999/", "http://bo x/", "http://<script>/", "x" * 300):
        assert imports.lan_address(bad) is None, bad


def test_an_update_on_a_drive_shows_what_changes_before_it_is_confirmed(coordinator, tmp_path):
    app, client = coordinator
    first, ids = standard(tmp_path / "old")
    first.save()
    kolibri.import_channel(app.extensions["passerelle.library"], first.root, CHANNEL, [ids["topic"], ids["other"]])
    drive = tmp_path / "media" / "usb0" / "KOLIBRI_DATA"
    ids = newer_version(drive)
    page = client.get("/manage/content").get_data(as_text=True)
    assert "Installed: version 3" in page and "See what the update changes" in page
    preview = client.get("/manage/content/kolibri/update", query_string={"path": str(drive), "channel": CHANNEL})
    body = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert "From version 3 to version 4." in body
    assert "Added (1)" in body and "A new &lt;b&gt;song&lt;/b&gt;" in body and "<b>song" not in body
    assert "Removed (1)" in body and "A booklet" in body
    # (The fixture's zips are written anew with the time in them: they count as changed too.)
    changed = int(re.search(r"Changed \((\d+)\)", body).group(1))
    assert changed >= 1 and "Counting video, new cut" in body
    assert "Learners' progress is kept on the resources that remain:" in body
    assert "Only the topics imported before are updated: 2." in body
    assert 'name="update" value="1"' in body and 'name="csrf_token"' in body
    assert installed_version(app) == 3  # nothing changed by looking
    # The CLI's dry run says the same.
    cli = imports.kolibri_update_preview(app.extensions["passerelle.library"], str(drive), CHANNEL)
    assert cli["counts"] == {"added": 1, "changed": changed, "removed": 1}
    client.post("/manage/content/kolibri", data={"csrf_token": csrf_token(client), "path": str(drive),
                                                 "channel": CHANNEL, "update": "1"})
    (job,) = wait_for_jobs(app, timeout=120)
    assert job.state == "done", job.message
    assert installed_version(app) == 4
    manifest = app.extensions["passerelle.library"].manifest(PACK)
    assert manifest["kolibri"]["topics"] == sorted([ids["topic"], ids["other"]])


def test_a_kolibri_server_on_the_lan_is_listed_and_imported(coordinator, fake_kolibri):
    app, client = coordinator
    url, ex, ids = fake_kolibri
    token = csrf_token(client)
    page = client.get("/manage/content").get_data(as_text=True)
    assert "Kolibri servers on the network" in page and 'name="server"' in page
    listed = client.post("/manage/content/lan", data={"csrf_token": token, "server": url.removeprefix("http://")})
    body = listed.get_data(as_text=True)
    assert listed.status_code == 200 and "Channels on fake" in body
    assert "Test channel" in body and "Version 3" in body and "Français" in body
    body = fetched(client, client.post("/manage/content/lan/topics",
                                       data={"csrf_token": token, "server": url, "channel": CHANNEL}))
    assert "Numbers" in body and "Other things" in body and 'name="server"' in body
    assert f'value="{ids["topic"]}" data-size=' in body
    client.post("/manage/content/lan/import", data={"csrf_token": token, "server": url, "channel": CHANNEL,
                                                    "topic": ids["topic"]})
    (job,) = wait_for_jobs(app, timeout=120)
    assert job.state == "done", job.message
    assert installed_version(app) == 3
    assert app.extensions["passerelle.library"].manifest(PACK)["kolibri"]["topics"] == [ids["topic"]]
    page = client.get("/manage/content").get_data(as_text=True)
    assert "Test channel (v3)" in page and "done" in page


def test_a_newer_version_on_a_kolibri_server_shows_its_diff_then_updates(coordinator, fake_kolibri, tmp_path):
    app, client = coordinator
    url, ex, ids = fake_kolibri
    kolibri.import_channel(app.extensions["passerelle.library"], ex.root, CHANNEL)
    FakeKolibri.root = tmp_path / "v4"
    newer_version(FakeKolibri.root)
    token = csrf_token(client)
    body = client.post("/manage/content/lan", data={"csrf_token": token, "server": url}).get_data(as_text=True)
    assert "Installed: version 3" in body and "See what the update changes" in body
    preview = fetched(client, client.post("/manage/content/lan/update", data={"csrf_token": token, "server": url,
                                                                              "channel": CHANNEL}))
    # The fake server's channel has a film more, which version 4 does not have.
    assert "From version 3 to version 4." in preview and "Removed (2)" in preview and "A booklet" in preview
    assert f'name="server" value="{url}"' in preview
    assert installed_version(app) == 3
    client.post("/manage/content/lan/import", data={"csrf_token": token, "server": url, "channel": CHANNEL,
                                                    "update": "1"})
    (job,) = wait_for_jobs(app, timeout=120)
    assert job.state == "done", job.message
    assert installed_version(app) == 4


@pytest.fixture
def not_kolibri(tmp_path):
    """The address of a web server that is not Kolibri (an empty folder served)."""
    (tmp_path / "www").mkdir()
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "www"), **k)  # noqa: E731
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_wrong_addresses_and_servers_are_explained_in_words(coordinator, not_kolibri):
    app, client = coordinator
    token = csrf_token(client)

    def flash_after(server: str) -> str:
        response = client.post("/manage/content/lan", data={"csrf_token": token, "server": server},
                               follow_redirects=True)
        assert response.status_code == 200
        return response.get_data(as_text=True)

    assert "That is not the address of a server" in flash_after("file:///etc/passwd")
    assert "No answer from \u2066http://127.0.0.1:" in flash_after(f"127.0.0.1:{free_port()}")
    assert "answered, but it is not a Kolibri server" in flash_after(not_kolibri)  # a web server
    assert not app.extensions["passerelle.jobs"].recent()


def test_every_form_needs_its_csrf_token(coordinator, fake_kolibri):
    app, client = coordinator
    url, ex, ids = fake_kolibri
    FakeKolibri.requests = []
    for path in ("/manage/content/lan", "/manage/content/lan/topics", "/manage/content/lan/update",
                 "/manage/content/lan/import"):
        response = client.post(path, data={"server": url, "channel": CHANNEL, "whole": "1"})
        assert response.status_code == 400, path
    assert FakeKolibri.requests == []  # the box never contacted the server
    assert not app.extensions["passerelle.jobs"].recent()


def test_the_posted_channel_is_checked_with_the_server(coordinator, fake_kolibri):
    app, client = coordinator
    url, ex, ids = fake_kolibri
    response = client.post("/manage/content/lan/import", data={"csrf_token": csrf_token(client), "server": url,
                                                               "channel": "ab" * 16, "whole": "1"},
                           follow_redirects=True)
    assert "That channel is no longer offered by the Kolibri server" in response.get_data(as_text=True)
    assert not app.extensions["passerelle.jobs"].recent()
