"""The coordinator's content page finds Kolibri export folders on USB drives, shows each channel and its topics
with their sizes, and imports the ticked topics as a background job."""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "content"))

from kolibri_channel import CHANNEL, standard  # noqa: E402
from passerelle.server.app import create_app  # noqa: E402
from passerelle.server.packs import imports  # noqa: E402

from tests.conftest import csrf_token, english_client, sign_in  # noqa: E402
from tests.server.test_content_admin import installed, wait_for_jobs  # noqa: E402

PACK = "kolibri-" + CHANNEL


def drive_with_channel(tmp_path: Path):
    ex, ids = standard(tmp_path / "media" / "usb0" / "KOLIBRI_DATA")
    ex.save()
    return ex, ids


def test_kolibri_folders_are_found_with_their_channels(tmp_path):
    ex, ids = drive_with_channel(tmp_path)
    packs, folders = imports.scan_drives([str(tmp_path / "media")])
    assert packs == []
    (folder,) = folders
    assert folder["path"] == str(ex.root) and folder["problems"] == []
    (channel,) = folder["channels"]
    assert (channel["id"], channel["name"], channel["version"], channel["language"]) == (CHANNEL, "Test channel", 3,
                                                                                         "fr")
    topics = {t["id"]: t for t in imports.kolibri_topics(folder["path"], CHANNEL)}
    assert set(topics) == {ids["topic"], ids["other"]}
    assert topics[ids["topic"]]["size"] > 0 and topics[ids["topic"]]["resources"] == 2  # a video, an exercise
    assert imports.kolibri_channel([str(tmp_path / "media")], "/etc", CHANNEL) is None


def test_a_coordinator_ticks_topics_and_imports_them(box, tmp_path, monkeypatch):
    ex, ids = drive_with_channel(tmp_path)
    monkeypatch.setenv("PASSERELLE_USB_ROOTS", str(tmp_path / "media"))
    app = create_app({"home": box.home, "TESTING": True})
    client = english_client(app)
    sign_in(client, box, "cora")
    token = csrf_token(client)
    page = client.get("/manage/content").get_data(as_text=True)
    assert "Test channel" in page and "Choose topics" in page and str(ex.root) in page
    topics = client.get("/manage/content/kolibri", query_string={"path": str(ex.root), "channel": CHANNEL})
    body = topics.get_data(as_text=True)
    assert topics.status_code == 200 and "Numbers" in body and "Other things" in body
    assert re.search(rf'value="{ids["topic"]}" data-size="\d+"', body)
    # A folder the page did not offer is never read.
    client.post("/manage/content/kolibri", data={"csrf_token": token, "path": "/etc", "channel": CHANNEL,
                                                 "topic": ids["topic"]})
    assert not app.extensions["passerelle.jobs"].recent()
    none = client.post("/manage/content/kolibri", data={"csrf_token": token, "path": str(ex.root),
                                                        "channel": CHANNEL})
    assert none.status_code == 302 and "kolibri" in none.location  # no topic ticked: back to the picker
    client.post("/manage/content/kolibri", data={"csrf_token": token, "path": str(ex.root), "channel": CHANNEL,
                                                 "topic": ids["topic"]})
    (job,) = wait_for_jobs(app, timeout=120)
    assert job.state == "done", job.message
    assert PACK in installed(app)
    manifest = app.extensions["passerelle.library"].manifest(PACK)
    assert manifest["kolibri"]["topics"] == [ids["topic"]]
    page = client.get("/manage/content").get_data(as_text=True)
    assert "done" in page


def test_the_box_setting_picks_the_video_resolution_of_the_pages_imports(box, tmp_path, monkeypatch):
    ex, ids = drive_with_channel(tmp_path)
    monkeypatch.setenv("PASSERELLE_USB_ROOTS", str(tmp_path / "media"))
    app = create_app({"home": box.home, "TESTING": True, "kolibri_video": "high"})
    client = english_client(app)
    sign_in(client, box, "cora")
    sizes = {t["id"]: t["size"] for t in imports.kolibri_topics(str(ex.root), CHANNEL, "high")}
    low = {t["id"]: t["size"] for t in imports.kolibri_topics(str(ex.root), CHANNEL)}
    assert sizes[ids["topic"]] > low[ids["topic"]]  # the high-resolution file is the larger one
    body = client.get("/manage/content/kolibri", query_string={"path": str(ex.root), "channel": CHANNEL}
                      ).get_data(as_text=True)
    assert f'value="{ids["topic"]}" data-size="{sizes[ids["topic"]]}"' in body  # the size shown
    client.post("/manage/content/kolibri", data={"csrf_token": csrf_token(client), "path": str(ex.root),
                                                 "channel": CHANNEL, "topic": ids["topic"]})
    (job,) = wait_for_jobs(app, timeout=120)
    assert job.state == "done", job.message
    video = next(n for n in app.extensions["passerelle.library"].manifest(PACK)["nodes"]
                 if n["kind"] == "video")
    main = next(f for f in video["files"] if f["role"] == "main")
    assert main["size"] == 400  # b"HIGH" * 100, not the low-resolution file


def test_a_big_channel_is_usable_at_once_and_its_documents_text_follows_in_the_background(
        box, tmp_path, monkeypatch, runner):
    import time

    from passerelle.server.search import pack_text
    from passerelle.server.search import service as search

    ex, ids = drive_with_channel(tmp_path)
    monkeypatch.setattr(pack_text, "INLINE_NODES", 0)   # this small channel counts as big here
    monkeypatch.setattr(pack_text, "BATCH_NODES", 1)    # a slice per node: the job takes a few rounds
    result = runner("content", "import", str(ex.root), "--channel", CHANNEL)
    assert result.exit_code == 0, result.stderr
    assert "passerelle index text" in result.stdout
    app = create_app({"home": box.home, "TESTING": True})
    client = english_client(app)
    found = client.get("/api/v1/search?q=book").get_json()   # the EPUB, by its title
    assert any(h["title"] == "A book" for h in found["hits"])
    assert client.get("/api/v1/search?q=upon").get_json()["total"] == 0   # its chapter: not yet
    background = pack_text.start_background(app)
    try:
        deadline = time.monotonic() + 300
        while (search.service(app).text.status(PACK).state == "queued"
               and time.monotonic() < deadline):
            time.sleep(0.2)
    finally:
        background.stop()
    job = search.service(app).text.status(PACK)
    assert job.state == "done" and job.indexed >= 1
    search.service(app).clear_cache()
    hits = client.get("/api/v1/search?q=upon").get_json()["hits"]
    assert [h["title"] for h in hits] == ["A book"]      # an EPUB chapter's text
