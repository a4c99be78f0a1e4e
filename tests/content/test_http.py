"""Importing from another box over HTTP, including a connection dropped mid-blob."""

from __future__ import annotations

import http.server
import os
import threading
from functools import partial
from typing import ClassVar

import pytest
from packhelpers import hand_pack, sha
from passerelle.content import HttpSource, InvalidPack, PackNotFound


class DroppingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder with Range support; the first request for a big blob is cut halfway."""

    dropped: ClassVar[set] = set()
    ranges: ClassVar[list] = []

    def log_message(self, *a):
        pass

    def do_GET(self):
        path = self.translate_path(self.path)
        if "/files/" not in self.path or not os.path.isfile(path):
            return super().do_GET()
        with open(path, "rb") as f:
            data = f.read()
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.ranges.append(start)
        body = data[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path not in self.dropped and len(data) > 100_000:
            self.dropped.add(self.path)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)  # drop the connection mid-blob
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(folder):
        handler = partial(DroppingHandler, directory=str(folder))
        DroppingHandler.dropped, DroppingHandler.ranges = set(), []
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def test_http_import_resumes_dropped_blob(tmp_path, serve, library):
    big = b"%PDF" + os.urandom(400_000)
    pack = hand_pack(tmp_path, "p", {"big": big, "small": b"%PDF small"})
    url = serve(pack)
    result = library.import_pack(url)
    assert result.status == "installed" and result.blobs_copied == 2
    assert DroppingHandler.ranges and DroppingHandler.ranges[0] > 0  # resumed with Range
    assert library.blob_path(sha(big)).read_bytes() == big
    assert library.verify().ok


def test_http_only_missing_blobs_are_fetched(tmp_path, serve, library):
    shared = b"%PDF shared"
    library.import_pack(hand_pack(tmp_path, "a", {"shared": shared}, pack_id="pack-a"))
    pack = hand_pack(tmp_path, "b", {"shared": shared, "new": b"%PDF new"}, pack_id="pack-b")
    result = library.import_pack(HttpSource(serve(pack)))
    assert result.blobs_copied == 1 and result.blobs_total == 2


def test_http_errors(tmp_path, serve, box, library):
    pack = hand_pack(tmp_path, "p")
    url = serve(tmp_path)  # serves the parent: no manifest at the root
    with pytest.raises(PackNotFound):
        library.import_pack(url)
    (pack / "files" / sha(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n")).unlink()
    before = box.snapshot()
    with pytest.raises(InvalidPack, match="missing"):
        library.import_pack(url + "/p")
    assert box.snapshot() == before
