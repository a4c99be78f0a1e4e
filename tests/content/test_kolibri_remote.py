"""Importing a channel from a Kolibri server on the LAN: a fake Kolibri on 127.0.0.1 serves a fixture channel
through Kolibri's public content API, with a connection that breaks mid-file."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import ClassVar

import pytest
from kolibri_channel import CHANNEL, hexid, standard
from passerelle.content import PackNotFound, SourceUnavailable, kolibri, kolibri_remote

PACK = "kolibri-" + CHANNEL
BIG = os.urandom(300_000)


class FakeKolibri(http.server.BaseHTTPRequestHandler):
    """Kolibri 0.19's public content API over an export folder: the info, the channel list and
    lookup, ``/content/databases/`` and ``/content/storage/`` (with Range)."""

    root: ClassVar[Path]
    requests: ClassVar[list] = []          # (path, first byte asked)
    cut: ClassVar[dict] = {}               # path → bytes sent before the connection is dropped

    def log_message(self, *a):
        pass

    def send_json(self, payload, status: int = 200) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def channel(self) -> dict:
        with kolibri.open_channel(self.root, CHANNEL) as db:
            c = db.channel()
        return {"id": c.id, "name": c.name, "language": c.language, "included_languages": [c.language],
                "description": c.description, "tagline": None, "total_resource_count": c.resources,
                "version": c.version, "published_size": c.size, "last_published": None,
                "icon_encoding": "data:image/png;base64,AAAA", "matching_tokens": [], "public": True}

    def do_GET(self):
        path = self.path.split("?")[0]
        rng = self.headers.get("Range")
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        self.requests.append((path, start))
        if path == "/api/public/info/":
            return self.send_json({"application": "kolibri", "kolibri_version": "0.19.5", "device_name": "fake"})
        if path == "/api/public/v1/channels":
            return self.send_json([self.channel()])
        if path.startswith("/api/public/v1/channels/lookup/"):
            if path.rsplit("/", 1)[1] != CHANNEL:
                return self.send_json({"id": "NOT_FOUND", "metadata": {"view": ""}}, 404)
            return self.send_json([self.channel()])
        file = self.root / path.lstrip("/")
        if not path.startswith("/content/") or ".." in path or not file.is_file():
            return self.send_json({"error": "not found"}, 404)
        data = file.read_bytes()
        body = data[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if path in self.cut:
            self.wfile.write(body[: self.cut[path]])
            self.wfile.flush()
            self.connection.shutdown(2)  # the Wi-Fi drops mid-file
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def fake_kolibri(tmp_path):
    ex, ids = standard(tmp_path / "kolibri-home")
    ids["big"] = ex.node(hexid("big"), CHANNEL, "video", "A long film", order=3)
    ids["big_md5"] = ex.file(ids["big"], "low_res_video", BIG, "mp4")
    ex.save()
    FakeKolibri.root, FakeKolibri.requests, FakeKolibri.cut = ex.root, [], {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeKolibri)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", ex, ids
    server.shutdown()
    server.server_close()


def storage_requests() -> list[tuple[str, int]]:
    return [r for r in FakeKolibri.requests if r[0].startswith("/content/storage/")]


def fast(url: str, library) -> kolibri_remote.KolibriServer:
    return kolibri_remote.KolibriServer(url, retries=2, retry_delay=0, limits=library.limits)


def test_a_kolibri_server_is_recognised_and_lists_its_channels(fake_kolibri, library):
    url, ex, ids = fake_kolibri
    server = fast(url, library)
    assert server.info()["kolibri_version"] == "0.19.5"
    (c,) = server.channels()
    assert (c["id"], c["name"], c["version"], c["language"]) == (CHANNEL, "Test channel", 3, "fr")
    assert c["thumbnail"].startswith("data:image/png")
    with pytest.raises(PackNotFound, match="no channel"):
        server.lookup("ab" * 16)


def test_a_channel_imports_from_a_kolibri_server_like_from_a_stick(fake_kolibri, library, tmp_path):
    url, ex, ids = fake_kolibri
    done = kolibri_remote.import_channel(library, url, CHANNEL, server=fast(url, library))
    assert done.result.status == "installed" and not done.report.partial
    nodes = {n["kolibri"]["node_id"]: n for n in library.manifest(PACK)["nodes"]}
    assert nodes[ids["exercise"]]["exercise"]["questions"]
    assert library.blob_path(hashlib.sha256(BIG).hexdigest()).read_bytes() == BIG
    # Only the low-resolution video was asked for; each file once.
    fetched = [p for p, _ in storage_requests()]
    assert len(fetched) == len(set(fetched))
    assert not any(p.endswith(hashlib.md5(b"HIGH" * 100).hexdigest() + ".mp4") for p in fetched)
    assert not kolibri_remote.work_folder(library, CHANNEL).exists()  # the downloaded database is gone
    assert library.verify().ok


def test_an_interrupted_transfer_resumes_without_fetching_again(fake_kolibri, library):
    url, ex, ids = fake_kolibri
    big = f"/content/storage/{ids['big_md5'][0]}/{ids['big_md5'][1]}/{ids['big_md5']}.mp4"
    FakeKolibri.cut = {big: 50_000}   # every attempt breaks after 50 kB: the import gives up
    with pytest.raises(SourceUnavailable, match="run the import again to resume"):
        kolibri_remote.import_channel(library, url, CHANNEL, server=fast(url, library))
    assert library.list() == []
    first = storage_requests()
    done_before = {p for p, _ in first if p != big}
    assert done_before  # the other files came before the film
    resumed_at = [start for p, start in first if p == big]
    assert resumed_at[:2] == [0, 50_000]  # resumed with Range within the run

    FakeKolibri.requests, FakeKolibri.cut = [], {}
    done = kolibri_remote.import_channel(library, url, CHANNEL, server=fast(url, library))
    assert done.result.status == "installed" and not done.report.partial
    second = storage_requests()
    assert {p for p, _ in second} == {big}  # nothing fetched twice
    assert second[0][1] >= 100_000  # the half-fetched file continued where it stopped
    assert library.blob_path(hashlib.sha256(BIG).hexdigest()).read_bytes() == BIG


def test_an_update_fetches_only_the_files_the_box_lacks(fake_kolibri, library):
    url, ex, ids = fake_kolibri
    kolibri_remote.import_channel(library, url, CHANNEL, server=fast(url, library))
    conn = sqlite3.connect(ex.path)
    conn.execute("UPDATE content_channelmetadata SET version = 4")
    conn.commit()
    conn.close()
    extra = kolibri_channel_add_audio(ex.path, ex.storage, b"a new song")
    FakeKolibri.requests = []
    done = kolibri_remote.import_channel(library, url, CHANNEL, server=fast(url, library))
    assert done.result.status == "updated"
    assert [p for p, _ in storage_requests()] == [f"/content/storage/{extra[0]}/{extra[1]}/{extra}.mp3"]


def test_a_file_the_server_lacks_is_a_partial_import(fake_kolibri, library):
    url, ex, ids = fake_kolibri
    (ex.storage / ids["big_md5"][0] / ids["big_md5"][1] / f"{ids['big_md5']}.mp4").unlink()
    done = kolibri_remote.import_channel(library, url, CHANNEL, server=fast(url, library))
    assert done.report.partial and done.report.missing == [f"A long film: {ids['big_md5']}.mp4 missing"]


def test_a_url_that_is_not_kolibri_is_not_taken_for_one(tmp_path, library):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        other = kolibri_remote.KolibriServer(f"http://127.0.0.1:{server.server_address[1]}/nothing",
                                             retries=0, retry_delay=0)
        assert other.info() is None
        with pytest.raises(PackNotFound):
            other.lookup(CHANNEL)
    finally:
        server.shutdown()
        server.server_close()


def kolibri_channel_add_audio(db_path: Path, storage: Path, data: bytes) -> str:
    """One more audio resource in a saved channel (what a new channel version brings)."""
    md5 = hashlib.md5(data).hexdigest()
    conn = sqlite3.connect(db_path)
    node = hexid("new song")
    cols = [r[1] for r in conn.execute("PRAGMA table_info(content_contentnode)")]
    row = dict(zip(cols, conn.execute("SELECT * FROM content_contentnode WHERE kind = 'audio' LIMIT 1").fetchone(),
                   strict=True))
    row.update(id=node, content_id=hexid("content new song"), title="A new song", parent_id=CHANNEL)
    conn.execute(f"INSERT INTO content_contentnode ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                 list(row.values()))
    conn.execute("INSERT INTO content_localfile VALUES (?,?,?,?)", [md5, "mp3", True, len(data)])
    conn.execute("INSERT INTO content_file (id, preset, supplementary, thumbnail, priority, contentnode_id,"
                 " lang_id, local_file_id) VALUES (?,?,?,?,?,?,?,?)",
                 [hexid("new song file"), "audio", False, False, 1, node, None, md5])
    conn.commit()
    conn.close()
    target = storage / md5[0] / md5[1] / f"{md5}.mp3"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return md5


def test_the_command_line_lists_then_imports_from_a_kolibri_server(fake_kolibri, runner):
    url, ex, ids = fake_kolibri
    listed = runner("content", "import", url)
    assert listed.exit_code == 0, listed.stderr
    assert CHANNEL in listed.stdout and "Test channel" in listed.stdout
    dry = runner("content", "import", url, "--channel", CHANNEL, "--topic", ids["topic"], "--dry-run")
    assert dry.exit_code == 0 and "dry run" in dry.stdout and not storage_requests()
    done = runner("content", "import", url, "--channel", CHANNEL, "--topic", ids["topic"])
    assert done.exit_code == 0, done.stderr
    assert f"{PACK} v3: installed" in done.stdout
    missing = runner("content", "import", url, "--channel", "ab" * 16)
    assert missing.exit_code != 0 and "no channel" in missing.stderr
