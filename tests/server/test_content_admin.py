"""Content from the browser and from peers: uploads, USB drives, background imports, removal."""

import io
import json
import sqlite3
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
from passerelle.server.app import create_app

from tests.conftest import PASSERELLE, REPO, csrf_token, english_client, sign_in


def build_demo(tmp_path: Path) -> Path:
    from passerelle.content import build_pack

    return build_pack(REPO / "tests" / "fixtures" / "demo-pack", tmp_path / "demo.zip",
                      created="2026-11-01T00:00:00Z").path


def installed(app) -> set[str]:
    db = sqlite3.connect(app.config["DB_PATH"])
    return {r[0] for r in db.execute("SELECT id FROM content_packs")}


def wait_for_jobs(app, timeout=30):
    jobs = app.extensions["passerelle.jobs"]
    deadline = time.monotonic() + timeout
    while jobs.busy() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not jobs.busy()
    return jobs.recent()


@pytest.fixture
def cora(app, box):
    client = english_client(app)
    sign_in(client, box, "cora")
    client.get("/manage/content")  # remove the demo pack for a clean slate
    client.post("/manage/content/demo-fr/remove", data={"csrf_token": csrf_token(client)})
    assert installed(app) == set()
    return client


def test_upload_imports_in_the_background_and_cleans_up(app, cora, tmp_path):
    data = build_demo(tmp_path).read_bytes()
    response = cora.post("/manage/content/upload", content_type="multipart/form-data",
                         data={"csrf_token": csrf_token(cora), "pack": (io.BytesIO(data), "demo.zip")})
    assert response.status_code == 302
    job = wait_for_jobs(app)[0]
    assert job.state == "done" and job.message == "installed"
    assert installed(app) == {"demo-fr"}
    assert not list((app.config["HOME"].tmp / "uploads").iterdir())
    page = cora.get("/manage/content", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Démo Passerelle" in page and "done" in page


def test_a_hostile_upload_fails_visibly_and_changes_nothing(app, cora):
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("manifest.json", "{}")
        zf.writestr("../../etc/evil", "x")
    cora.post("/manage/content/upload", content_type="multipart/form-data",
              data={"csrf_token": csrf_token(cora), "pack": (io.BytesIO(evil.getvalue()), "evil.zip")})
    job = wait_for_jobs(app)[0]
    assert job.state == "failed" and job.message
    assert installed(app) == set()
    page = cora.get("/manage/content", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "failed" in page


def test_packs_on_usb_drives_are_found_and_imported(box, tmp_path, monkeypatch):
    drive = tmp_path / "media" / "usb0"
    (drive / "course").mkdir(parents=True)
    zipped = build_demo(drive / "course")
    monkeypatch.setenv("PASSERELLE_USB_ROOTS", str(tmp_path / "media"))
    app = create_app({"home": box.home, "TESTING": True})
    client = english_client(app)
    sign_in(client, box, "cora")
    token = csrf_token(client)
    client.post("/manage/content/demo-fr/remove", data={"csrf_token": token})
    page = client.get("/manage/content").get_data(as_text=True)
    assert str(zipped) in page and "Démo Passerelle" in page
    # A path the page did not offer is never imported.
    client.post("/manage/content/import", data={"csrf_token": token, "path": "/etc"})
    assert not app.extensions["passerelle.jobs"].recent()
    client.post("/manage/content/import", data={"csrf_token": token, "path": str(zipped)})
    assert wait_for_jobs(app)[0].state == "done"
    assert installed(app) == {"demo-fr"}
    assert zipped.exists(), "nothing is removed from the stick"


def test_only_coordinators_manage_content(as_user):
    assert as_user("fatou").get("/manage/content").status_code == 403
    assert as_user("amina").post("/manage/content/demo-fr/remove").status_code in (400, 403)


def test_another_box_imports_a_pack_over_http(live_server, tmp_path):
    listing = json.load(live_server.get("/api/v1/packs"))
    assert [p["id"] for p in listing["packs"]] == ["demo-fr"]
    other = tmp_path / "other-box"
    result = subprocess.run(
        [PASSERELLE, "--home", str(other), "content", "import",
         f"{live_server.url}/api/v1/packs/demo-fr"], capture_output=True, text=True, timeout=120,
        check=False)
    assert result.returncode == 0, result.stderr
    assert "demo-fr v1: installed" in result.stdout
    ours = live_server.get("/api/v1/packs/demo-fr/manifest.json").read()
    db = sqlite3.connect(other / "passerelle.db")
    assert bytes(db.execute("SELECT manifest FROM content_packs").fetchone()[0]) == ours


def test_uploads_have_their_own_size_limit(box):
    app = create_app({"home": box.home, "TESTING": True, "max_request_mb": 1, "max_upload_mb": 3})
    client = english_client(app)
    sign_in(client, box, "cora")
    token = csrf_token(client)
    big = io.BytesIO(b"x" * (2 * 1024 * 1024))
    response = client.post("/manage/content/upload", content_type="multipart/form-data",
                           data={"csrf_token": token, "pack": (big, "big.zip")})
    assert response.status_code == 302  # accepted, then refused by the importer as not a pack
    assert wait_for_jobs(app)[0].state == "failed"
    too_big = io.BytesIO(b"x" * (4 * 1024 * 1024))
    response = client.post("/manage/content/upload", content_type="multipart/form-data",
                           data={"csrf_token": token, "pack": (too_big, "big.zip")})
    assert response.status_code == 413


def test_failed_imports_name_the_pack_never_the_boxs_folders(app, cora, box, tmp_path, monkeypatch):
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("manifest.json", "{}")
        zf.writestr("../../etc/evil", "x")
    cora.post("/manage/content/upload", content_type="multipart/form-data",
              data={"csrf_token": csrf_token(cora), "pack": (io.BytesIO(evil.getvalue()), "evil.zip")})
    job = wait_for_jobs(app)[0]
    assert job.state == "failed" and job.message.startswith("evil.zip: ")
    page = cora.get("/manage/content").get_data(as_text=True)
    assert "evil.zip: " in page
    for secret in (str(box.home), "/uploads/", str(tmp_path)):
        assert secret not in job.message and secret not in page
    # Whatever the library or the system says, a path is cut down to its last part.
    jobs = app.extensions["passerelle.jobs"]

    def fail(source, progress=None):
        raise OSError(13, "Permission denied", str(box.home / "tmp" / "content" / "staging" / "ab.part"))

    monkeypatch.setattr(jobs.library, "import_pack", fail)
    jobs.submit(str(box.home / "tmp" / "uploads" / "x.zip"), "demo.zip")
    job = wait_for_jobs(app)[0]
    assert job.state == "failed" and "ab.part" in job.message and str(box.home) not in job.message
