"""Request bodies are judged from their headers, before Waitress reads (and spools) them.

An attacker on the tablets' Wi-Fi used to fill the data home's disk with one large
POST to the sign-in page: Waitress spooled the whole body to HOME/tmp before the
app's 413. Now the body is refused unread; only a signed-in coordinator (or staff,
for their own upload route) may send a large one, and only while the disk keeps its
reserve.
"""

from __future__ import annotations

import io
import json
import re
import socket
import time
import zipfile
from pathlib import Path

import pytest
from passerelle.server import disk
from passerelle.server.app import create_app
from passerelle.server.web import bodygate

from tests.conftest import REPO, HttpPerson, english_client, sign_in

MiB = 1024 * 1024


# --- The parser, fed by hand -------------------------------------------------------------

@pytest.fixture
def gate_app(box):
    return create_app({"home": box.home, "TESTING": True, "max_request_mb": 1,
                       "max_upload_mb": 64, "disk_reserve_mb": 1})


def parser_for(app):
    from waitress.adjustments import Adjustments

    gate = bodygate.BodyGate(app)
    cls = type("Parser", (bodygate.GatedParser,), {"gate": gate})
    return gate, (lambda: cls(Adjustments(max_request_body_size=2**40)))


def cookie_of(app, box, who: str) -> str:
    client = english_client(app)
    sign_in(client, box, who)
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"])
    return f"{cookie.key}={cookie.value}"


def head(path: str, length: int | None, cookie: str = "", extra: str = "") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: box"]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    if cookie:
        lines.append(f"Cookie: {cookie}")
    if extra:
        lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def feed(parser, data: bytes) -> int:
    """Give the parser bytes as the channel does; how many it took in all."""
    taken = 0
    while data and not parser.completed:
        n = parser.received(data)
        taken += n
        data = data[n:]
    return taken


def test_a_large_body_to_signin_is_refused_from_its_headers(gate_app):
    _gate, make = parser_for(gate_app)
    parser = make()
    request = head("/signin", 1024 * MiB) + b"x" * 65536
    assert feed(parser, request) == len(request)  # the body's first bytes are swallowed, unread
    assert parser.completed and parser.refused == 413
    assert parser.body_rcv is None and parser.get_body_stream().read() == b""
    assert parser.headers["CONNECTION"] == "close"  # the rest is never read


def test_a_body_within_the_limit_is_read(gate_app):
    _gate, make = parser_for(gate_app)
    parser = make()
    feed(parser, head("/signin", 10) + b"username=a")
    assert parser.completed and not parser.refused
    assert parser.get_body_stream().read() == b"username=a"


def test_expect_continue_gets_the_refusal_not_a_continue(gate_app):
    _gate, make = parser_for(gate_app)
    parser = make()
    feed(parser, head("/signin", 1024 * MiB, extra="Expect: 100-continue"))
    assert parser.refused == 413 and not parser.expect_continue


def test_a_chunked_body_is_cut_off_at_the_limit(gate_app):
    _gate, make = parser_for(gate_app)
    parser = make()
    feed(parser, head("/signin", None))
    chunk = b"10000\r\n" + b"c" * 0x10000 + b"\r\n"  # 64 KiB chunks
    sent = 0
    while not parser.completed:
        feed(parser, chunk)
        sent += len(chunk)
        assert sent < 2 * MiB, "a chunked body beyond the limit kept being read"
    assert parser.refused == 413
    assert parser.body_rcv is None


FORGED = "passerelle_session=eyJ1aWQiOiJ4Iiwicm9sZSI6ImNvb3JkaW5hdG9yIn0.aaaa.bbbb"


@pytest.mark.parametrize("who", [None, "amina", "fatou", "forged"])
def test_only_a_coordinator_may_send_a_large_pack(gate_app, box, who):
    _gate, make = parser_for(gate_app)
    if who is None:
        cookie = ""
    elif who == "forged":  # {"uid": "x", "role": "coordinator"} with a made-up signature
        cookie = FORGED
    else:
        cookie = cookie_of(gate_app, box, who)
    parser = make()
    feed(parser, head("/manage/content/upload", 8 * MiB, cookie))
    assert parser.refused == 413


def test_a_coordinator_may_send_a_large_pack(gate_app, box):
    gate, make = parser_for(gate_app)
    parser = make()
    feed(parser, head("/manage/content/upload", 8 * MiB, cookie_of(gate_app, box, "cora")))
    assert not parser.refused and not parser.completed  # reading the body
    assert parser in gate._receiving  # its spool and copies are counted against the disk
    parser.close()
    assert parser not in gate._receiving


def test_staff_may_send_a_large_file_for_their_material(gate_app, box):
    _gate, make = parser_for(gate_app)
    parser = make()
    feed(parser, head("/manage/material/file", 8 * MiB, cookie_of(gate_app, box, "fatou")))
    assert not parser.refused


def test_an_expired_coordinator_session_gets_the_small_limit(gate_app, box, monkeypatch):
    cookie = cookie_of(gate_app, box, "cora")
    _gate, make = parser_for(gate_app)
    later = time.time() + gate_app.config["SETTINGS"]["session_lifetime_minutes"] * 60 + 60
    monkeypatch.setattr(time, "time", lambda: later)
    parser = make()
    feed(parser, head("/manage/content/upload", 8 * MiB, cookie))
    assert parser.refused == 413


def test_a_body_that_would_eat_the_reserve_is_refused(gate_app, box, monkeypatch):
    cookie = cookie_of(gate_app, box, "cora")
    gate, make = parser_for(gate_app)
    # 30 MiB free, 1 MiB reserve: an 8 MiB pack needs 3 copies (24 MiB), two do not fit.
    monkeypatch.setattr(disk, "free_bytes", lambda _path: 30 * MiB)
    first = make()
    feed(first, head("/manage/content/upload", 8 * MiB, cookie))
    assert not first.refused
    second = make()
    feed(second, head("/manage/content/upload", 8 * MiB, cookie))
    assert second.refused == 507  # the first one's promise counts
    first.close()  # the first upload ended: its space is free again
    third = make()
    feed(third, head("/manage/content/upload", 8 * MiB, cookie))
    assert not third.refused


def test_a_small_body_is_read_even_when_the_disk_is_low(gate_app, monkeypatch):
    """Learners' progress posts stay in memory: the reserve is kept for them."""
    monkeypatch.setattr(disk, "free_bytes", lambda _path: 0)
    _gate, make = parser_for(gate_app)
    parser = make()
    body = json.dumps({"events": []}).encode()
    feed(parser, head("/api/v1/progress", len(body)) + body)
    assert parser.completed and not parser.refused


def test_a_long_body_stops_when_free_space_falls_below_the_reserve(gate_app, box, monkeypatch):
    free = [200 * MiB]
    monkeypatch.setattr(disk, "free_bytes", lambda _path: free[0])
    _gate, make = parser_for(gate_app)
    parser = make()
    feed(parser, head("/manage/content/upload", 32 * MiB, cookie_of(gate_app, box, "cora")))
    assert not parser.refused
    feed(parser, b"x" * 4 * MiB)
    free[0] = 0  # another writer filled the disk meanwhile
    feed(parser, b"x" * 8 * MiB)
    assert parser.refused == 507 and parser.body_rcv is None


def test_the_app_answers_a_refused_body_in_its_own_shape(gate_app):
    client = gate_app.test_client()
    response = client.post("/api/v1/progress", environ_overrides={"passerelle.body_refused": 413})
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "too_large"
    response = client.post("/api/v1/progress", environ_overrides={"passerelle.body_refused": 507})
    assert response.status_code == 507
    assert response.get_json()["error"]["code"] == "insufficient_storage"
    page = client.post("/signin", environ_overrides={"passerelle.body_refused": 413})
    assert page.status_code == 413 and "<html" in page.get_data(as_text=True)


# --- Over HTTP, against `passerelle serve` ----------------------------------------------

def bytes_written(server) -> int:
    """Bytes the server process has written to files so far (all its threads), from the kernel."""
    text = Path(f"/proc/{server.proc.pid}/io").read_text()
    return int(re.search(r"^wchar: (\d+)$", text, re.M).group(1))


def read_head(sock: socket.socket) -> bytes:
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            part = sock.recv(65536)
            if not part:
                break
            data += part
    except OSError:  # reset once the server closed with our unread body in its buffer
        pass
    return data.split(b"\r\n\r\n", 1)[0]


def exchange(port: int, request: bytes, body: bytes = b"", repeat: int = 0) -> bytes:
    """Send a request's head, then ``body`` ``repeat`` times (as an attacker would, whatever
    the server says), reading the answer's head meanwhile."""
    import threading

    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(60)
        answer = {}
        reader = threading.Thread(target=lambda: answer.setdefault("head", read_head(s)))
        s.sendall(request)
        reader.start()
        try:
            for _ in range(repeat):
                s.sendall(body)
        except OSError:  # the server closed the connection: nothing reads the rest
            pass
        reader.join(60)
    return answer.get("head", b"")


needs_proc_io = pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc")


@needs_proc_io
def test_a_large_post_to_signin_is_refused_before_its_body_is_read(live_server):
    # What a first refusal imports and logs is not what this measures.
    assert exchange(live_server.port, head("/signin", 64 * MiB)).startswith(b"HTTP/1.1 413")
    before = bytes_written(live_server)
    # 1 GiB announced; an attacker keeps sending (64 MiB here) whatever the server answers.
    answer = exchange(live_server.port, head("/signin", 1024 * MiB), b"a" * 65536, repeat=1024)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"Connection: close" in answer
    written = bytes_written(live_server) - before
    assert written < 256 * 1024, f"the server wrote {written} bytes for a refused body"
    with live_server.get("/api/v1/health") as response:  # and the box still answers
        assert response.status == 200


@needs_proc_io
def test_a_chunked_post_is_cut_off_at_the_limit(server_factory):
    server = server_factory(env={"PASSERELLE_MAX_REQUEST_MB": "1"})
    before = bytes_written(server)
    chunk = b"10000\r\n" + b"c" * 0x10000 + b"\r\n"
    answer = exchange(server.port, head("/signin", None), chunk, repeat=1024)  # 64 MiB
    assert answer.startswith(b"HTTP/1.1 413")
    assert bytes_written(server) - before < 4 * MiB  # the 1 MiB allowed, spooled, and no more


def demo_pack(tmp_path) -> Path:
    from passerelle.content import build_pack

    return build_pack(REPO / "tests" / "fixtures" / "demo-pack", tmp_path / "demo.zip",
                      created="2026-11-01T00:00:00Z").path


def multipart(fields: dict, files: dict) -> tuple[bytes, str]:
    boundary = "passerelle-test-boundary"
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                  f"{value}\r\n".encode())
    for name, (filename, content) in files.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                  f'filename="{filename}"\r\nContent-Type: application/zip\r\n\r\n'.encode())
        out.write(content + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def upload(person: HttpPerson, pack: bytes, padding: int) -> tuple[int, dict, bytes]:
    # A second file field pads the body past max_request_mb; the view only reads "pack".
    body, kind = multipart({"csrf_token": person.token},
                           {"pack": ("demo.zip", pack), "extra": ("pad.bin", b"\0" * padding)})
    return person.send("POST", "/manage/content/upload", data=body, headers={"Content-Type": kind})


def test_a_coordinator_upload_still_works_over_http(server_factory, box, tmp_path):
    server = server_factory(env={"PASSERELLE_MAX_REQUEST_MB": "1"})
    pack = demo_pack(tmp_path).read_bytes()
    assert zipfile.is_zipfile(io.BytesIO(pack))
    cora = HttpPerson(server.url).sign_in(box, "cora")
    cora.refresh_token("/manage/content")
    status, _headers, body = upload(cora, pack, 2 * MiB)
    assert status == 200, body[:300]  # redirected to the content page
    assert b"The pack is being imported" in body
    deadline = time.monotonic() + 120
    while True:  # the import runs in the background
        _status, _headers, page = cora.send("GET", "/manage/content")
        if b'class="job done"' in page or b'class="job failed"' in page:
            break
        assert time.monotonic() < deadline, "the import did not finish"
        time.sleep(0.2)
    assert b'class="job done"' in page


@pytest.mark.parametrize("who", [None, "amina", "fatou"])
def test_others_cannot_send_a_large_upload(server_factory, box, who):
    server = server_factory(env={"PASSERELLE_MAX_REQUEST_MB": "1"})
    person = HttpPerson(server.url)
    if who:
        person.sign_in(box, who)
    answer = exchange(server.port, head("/manage/content/upload", 512 * MiB, person.cookie_header(),
                                        "Content-Type: multipart/form-data; boundary=x"))
    assert answer.startswith(b"HTTP/1.1 413")


def test_uploads_keep_the_disk_reserve(server_factory, box, tmp_path):
    # A reserve larger than any disk: every body that would be spooled is refused.
    server = server_factory(env={"PASSERELLE_MAX_REQUEST_MB": "1",
                                 "PASSERELLE_DISK_RESERVE_MB": "1048576"})
    cora = HttpPerson(server.url).sign_in(box, "cora")
    cora.refresh_token("/manage/content")
    status, _headers, body = upload(cora, demo_pack(tmp_path).read_bytes(), 2 * MiB)
    assert status == 507
    assert b"not enough free space" in body
    # Learners' progress (small bodies, kept in memory) is still recorded.
    amina = HttpPerson(server.url).sign_in(box, "amina")
    status, _headers, body = amina.send(
        "POST", "/api/v1/progress", data=json.dumps({"events": [
            {"event_id": "e-reserve-1", "pack_id": "demo-fr", "node_id": "basics/welcome",
             "type": "started"}]}).encode(), headers={"Content-Type": "application/json"})
    assert status == 200, body
    assert json.loads(body)["accepted"] == 1
