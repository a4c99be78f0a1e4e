"""A channel's database from a Kolibri server on the LAN is fetched in the background: the coordinator's
POST starts (or joins) the fetch and is sent to a page that follows it and then shows the topics (or the
update's changes); failures are said in words; only the coordinators who asked see it; the import that
follows does not download the database again; a cut download resumes; unused databases expire.

A fake Kolibri on 127.0.0.1 serves the test channel; its database can be held half-sent until the test
lets it go, so that "while it is being fetched" is a state the test controls, not a race."""

import http.server
import re
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "content"))

import test_kolibri_remote  # noqa: E402
from kolibri_channel import CHANNEL  # noqa: E402
from passerelle.content import SourceUnavailable, kolibri_remote  # noqa: E402
from passerelle.server.app import create_app  # noqa: E402
from passerelle.server.db import get_db  # noqa: E402
from passerelle.server.packs import imports  # noqa: E402
from passerelle.server.people import accounts  # noqa: E402
from test_kolibri_remote import FakeKolibri  # noqa: E402

from tests.conftest import csrf_token, english_client, free_port, sign_in  # noqa: E402
from tests.server import test_kolibri_lan_admin  # noqa: E402
from tests.server.test_content_admin import wait_for_jobs  # noqa: E402
from tests.server.test_kolibri_lan_admin import fetched  # noqa: E402

DATABASE = f"/content/databases/{CHANNEL}.sqlite3"
# The fake Kolibri server of the LAN import's tests, on 127.0.0.1.
fake_kolibri = test_kolibri_remote.fake_kolibri
not_kolibri = test_kolibri_lan_admin.not_kolibri
DEADLINE = 120  # seconds: generous, for a busy machine; never a measure of speed


class HeldKolibri(FakeKolibri):
    """The fake Kolibri, whose channel database stops just before its end until ``release`` is set
    (what came before is read by the box in whole chunks, so it shows as progress)."""

    release: ClassVar[threading.Event] = threading.Event()

    def do_GET(self):
        if self.path.split("?")[0] != DATABASE or self.release.is_set():
            return super().do_GET()
        self.requests.append((DATABASE, 0))
        data = (self.root / DATABASE.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[:-4096])
        self.wfile.flush()
        self.release.wait(DEADLINE)
        self.wfile.write(data[-4096:])


@pytest.fixture
def held_kolibri(fake_kolibri):
    url, ex, ids = fake_kolibri
    HeldKolibri.release = threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HeldKolibri)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", ex, ids
    HeldKolibri.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def coordinator(box, tmp_path, monkeypatch):
    monkeypatch.setenv("PASSERELLE_USB_ROOTS", str(tmp_path / "media"))
    # These tests are about what the pages do, not about a slow Wi-Fi: a busy machine must not make
    # the fake server look unreachable (one that is not there is refused at once all the same).
    monkeypatch.setattr(imports, "LAN_TIMEOUT", 60.0)
    app = create_app({"home": box.home, "TESTING": True})
    client = english_client(app)
    sign_in(client, box, "cora")
    yield app, client
    app.extensions["passerelle.db_pool"].close()


def database_requests() -> int:
    return sum(1 for path, _ in FakeKolibri.requests if path == DATABASE)


def until(condition, what: str):
    end = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < end, f"still waiting for {what}"
        time.sleep(0.05)


def work_database(app) -> Path:
    library = app.extensions["passerelle.library"]
    return kolibri_remote.work_folder(library, CHANNEL) / "content" / "databases" / f"{CHANNEL}.sqlite3"


def test_the_topics_arrive_after_the_download_and_the_import_does_not_download_again(coordinator, held_kolibri):
    app, client = coordinator
    url, ex, ids = held_kolibri
    token = csrf_token(client)
    posted = client.post("/manage/content/lan/topics", data={"csrf_token": token, "server": url, "channel": CHANNEL})
    assert posted.status_code == 303
    location = posted.headers["Location"]
    # The request did not wait for the database: its end is held back by the server.
    size = (ex.root / DATABASE.lstrip("/")).stat().st_size
    jobs = app.extensions["passerelle.jobs"]
    (job,) = jobs.tasks.values()
    until(lambda: job.done > 0, "the first chunks of the database")
    page = client.get(location).get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="3">' in page
    assert "Downloading the catalogue of Test channel" in page and f"kB of {round(size / 1000)} kB" in page
    assert re.search(r'<progress max="\d+" value="\d+">', page)
    assert 'action="/manage/content/lan/fetch/' in page and "Stop the download" in page
    # A second click on "Choose topics" joins the same download.
    again = client.post("/manage/content/lan/topics", data={"csrf_token": token, "server": url, "channel": CHANNEL})
    assert again.status_code == 303 and again.headers["Location"] == location
    assert len(jobs.tasks) == 1 and database_requests() == 1

    HeldKolibri.release.set()
    body = fetched(client, client.post("/manage/content/lan/topics",
                                       data={"csrf_token": token, "server": url, "channel": CHANNEL}))
    assert "Numbers" in body and "Other things" in body and 'http-equiv="refresh"' not in body
    assert f'value="{ids["topic"]}" data-size=' in body and f'name="server" value="{url}"' in body
    assert database_requests() == 1
    assert work_database(app).is_file()  # on disk, not in memory: the import finds it there

    client.post("/manage/content/lan/import", data={"csrf_token": token, "server": url, "channel": CHANNEL,
                                                    "topic": ids["topic"]})
    (imported,) = wait_for_jobs(app, timeout=DEADLINE)
    assert imported.state == "done", imported.message
    assert database_requests() == 1  # the import used the database already fetched
    assert not work_database(app).exists()  # and removed it once imported


def test_unreachable_and_foreign_servers_are_said_in_words_with_a_way_back(coordinator, not_kolibri):
    app, client = coordinator
    token = csrf_token(client)
    nobody = f"http://127.0.0.1:{free_port()}/"
    body = fetched(client, client.post("/manage/content/lan/topics",
                                       data={"csrf_token": token, "server": nobody, "channel": CHANNEL}))
    # The address is isolated left to right (LRI ... PDI): in Arabic its slash stays at its end.
    assert f"No answer from \u2066{nobody}\u2069. Is the Kolibri server on, and on the same Wi-Fi?" in body
    assert "Try again" in body and 'href="/manage/content#lan-title"' in body
    assert 'action="/manage/content/lan/topics"' in body and 'name="csrf_token"' in body
    # A web server, but not Kolibri.
    body = fetched(client, client.post("/manage/content/lan/update",
                                       data={"csrf_token": token, "server": not_kolibri, "channel": CHANNEL}))
    assert "answered, but it is not a Kolibri server that shares its channels" in body
    assert 'action="/manage/content/lan/update"' in body
    # A failed fetch is not joined: trying again asks the server again.
    retried = client.post("/manage/content/lan/topics", data={"csrf_token": token, "server": nobody,
                                                              "channel": CHANNEL})
    assert len(app.extensions["passerelle.jobs"].tasks) == 3 and retried.status_code == 303
    # Not a channel id: refused before anything is asked of anyone.
    refused = client.post("/manage/content/lan/topics", data={"csrf_token": token, "server": nobody,
                                                              "channel": "../x"}, follow_redirects=True)
    assert "That channel is no longer offered" in refused.get_data(as_text=True)
    assert not app.extensions["passerelle.jobs"].recent()  # never in the imports' list


def test_only_the_coordinators_who_asked_see_the_download(coordinator, held_kolibri, box, as_user):
    app, client = coordinator
    url, ex, ids = held_kolibri
    with app.app_context():
        accounts.create_user(get_db(), role="coordinator", display_name="Other", username="other",
                             password="another coordinator pass")
    posted = client.post("/manage/content/lan/topics", data={"csrf_token": csrf_token(client), "server": url,
                                                             "channel": CHANNEL})
    location = posted.headers["Location"]
    token = location.rsplit("/", 1)[1]
    assert len(token) >= 32  # unguessable

    other = english_client(app)
    other_token = csrf_token(other)
    other.post("/signin/staff", data={"csrf_token": other_token, "username": "other",
                                      "password": "another coordinator pass"})
    # The content page lists one's own downloads only (how a page left is found again).
    mine = client.get("/manage/content").get_data(as_text=True)
    assert "Channel catalogues you asked for" in mine and f'href="{location}"' in mine
    assert "Channel catalogues you asked for" not in other.get("/manage/content").get_data(as_text=True)
    seen = other.get(location, follow_redirects=True).get_data(as_text=True)
    assert "That download is over. Choose the channel again." in seen and "Test channel" not in seen
    other.post(f"{location}/cancel", data={"csrf_token": csrf_token(other)})
    (job,) = app.extensions["passerelle.jobs"].tasks.values()
    assert not job.cancelled  # another coordinator cannot stop it either
    for who, refused in (("amina", 403), ("fatou", 403)):
        person = english_client(app)
        sign_in(person, box, who)
        assert person.get(location).status_code == refused
        assert person.post(f"{location}/cancel", data={"csrf_token": csrf_token(person)}).status_code == refused
    guest = english_client(app)
    assert guest.get(location).status_code in (302, 401)
    # Once the other coordinator asks for the same channel, they join it, and see it.
    joined = other.post("/manage/content/lan/topics", data={"csrf_token": csrf_token(other), "server": url,
                                                            "channel": CHANNEL})
    assert joined.headers["Location"] == location
    assert "Downloading the catalogue of" in other.get(location).get_data(as_text=True)
    assert database_requests() == 1
    HeldKolibri.release.set()


def test_a_stopped_download_is_cleaned_up(coordinator, held_kolibri):
    app, client = coordinator
    url, ex, ids = held_kolibri
    token = csrf_token(client)
    location = client.post("/manage/content/lan/topics", data={"csrf_token": token, "server": url,
                                                               "channel": CHANNEL}).headers["Location"]
    jobs = app.extensions["passerelle.jobs"]
    (job,) = jobs.tasks.values()
    until(lambda: job.done > 0, "the first bytes")
    assert client.post(f"{location}/cancel").status_code == 400 and not job.cancelled  # CSRF, as every form
    stopped = client.post(f"{location}/cancel", data={"csrf_token": token}, follow_redirects=True)
    assert "The download was stopped." in stopped.get_data(as_text=True)
    HeldKolibri.release.set()  # the next chunk arrives; the download sees it was stopped
    until(lambda: job.state == "cancelled", "the download to stop")
    assert jobs.tasks == {}
    folder = work_database(app).parent
    assert not work_database(app).exists() and not list(folder.glob("*.part"))
    assert "That download is over" in client.get(location, follow_redirects=True).get_data(as_text=True)


def test_unused_databases_expire_and_those_in_use_stay(coordinator, fake_kolibri):
    app, client = coordinator
    url, ex, ids = fake_kolibri
    body = fetched(client, client.post("/manage/content/lan/topics", data={"csrf_token": csrf_token(client),
                                                                          "server": url, "channel": CHANNEL}))
    assert "Numbers" in body and work_database(app).is_file(), body[body.find("<main"):][:1500]
    jobs, library = app.extensions["passerelle.jobs"], app.extensions["passerelle.library"]
    assert imports.sweep_lan_databases(jobs, library) == []  # fresh: kept
    later = time.time() + imports.LAN_DB_KEEP + 60
    (job,) = jobs.tasks.values()
    job.state = "running"  # as if a fetch were using it
    assert imports.sweep_lan_databases(jobs, library, now=later) == []
    job.state = "done"
    assert imports.sweep_lan_databases(jobs, library, now=later) == [CHANNEL]
    assert not work_database(app).parent.parent.exists() and jobs.tasks == {}


def test_a_cut_download_of_a_database_resumes_where_it_stopped(coordinator, fake_kolibri):
    url, ex, ids = fake_kolibri
    library = coordinator[0].extensions["passerelle.library"]
    server = kolibri_remote.KolibriServer(url, retries=1, retry_delay=0, limits=library.limits)
    size = (ex.root / DATABASE.lstrip("/")).stat().st_size
    FakeKolibri.cut = {DATABASE: size // 3}   # every attempt breaks a third of the way
    folder = kolibri_remote.work_folder(library, CHANNEL)
    seen = []
    with pytest.raises(SourceUnavailable):
        server.fetch_database(CHANNEL, 3, folder, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][1] == size
    (part,) = (folder / "content" / "databases").glob("*.part")
    kept = part.stat().st_size
    assert kept >= size // 3
    FakeKolibri.requests, FakeKolibri.cut = [], {}
    server.fetch_database(CHANNEL, 3, folder)
    assert [start for path, start in FakeKolibri.requests if path == DATABASE] == [kept]
    fetched_db = folder / "content" / "databases" / f"{CHANNEL}.sqlite3"
    assert fetched_db.read_bytes() == (ex.root / DATABASE.lstrip("/")).read_bytes()
    assert not list(fetched_db.parent.glob("*.part"))


def test_an_older_version_on_the_server_is_said_on_the_update_page(coordinator, fake_kolibri, tmp_path):
    from passerelle.content import kolibri

    from tests.server.test_kolibri_lan_admin import newer_version

    app, client = coordinator
    url, ex, ids = fake_kolibri
    newer_version(tmp_path / "v4")
    kolibri.import_channel(app.extensions["passerelle.library"], tmp_path / "v4", CHANNEL)
    body = fetched(client, client.post("/manage/content/lan/update", data={"csrf_token": csrf_token(client),
                                                                          "server": url, "channel": CHANNEL}))
    assert "version 3 is older than the installed version 4" in body and "Try again" in body
    assert app.extensions["passerelle.library"].get("kolibri-" + CHANNEL).version == 4
