"""Gzip for text answers (server/web/compress.py): pages, styles and scripts, never blobs or ranges."""

import gzip
import re

GZIP = {"Accept-Encoding": "gzip, deflate"}


def static_href(html: str, name: str) -> str:
    return re.search(rf'(/static/[0-9a-f]{{10}}/{re.escape(name)})"', html).group(1)


def test_pages_are_gzipped_when_asked(client):
    plain = client.get("/")
    packed = client.get("/", headers=GZIP)
    assert "Content-Encoding" not in plain.headers
    assert packed.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed.headers["Vary"]
    assert gzip.decompress(packed.get_data()) == plain.get_data()
    assert int(packed.headers["Content-Length"]) == len(packed.get_data()) < len(plain.get_data())


def test_static_files_are_gzipped_and_still_revalidate(client):
    href = static_href(client.get("/").get_data(as_text=True), "style.css")
    plain = client.get(href)
    packed = client.get(href, headers=GZIP)
    assert packed.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(packed.get_data()) == plain.get_data()
    assert packed.headers["ETag"].startswith('W/"')
    again = client.get(href, headers={**GZIP, "If-None-Match": packed.headers["ETag"]})
    assert again.status_code == 304
    assert client.get(href, headers=GZIP).get_data() == packed.get_data()  # cached form


def test_blobs_ranges_and_small_answers_are_left_alone(client, app):
    import sqlite3

    db = sqlite3.connect(app.config["DB_PATH"])
    for (sha,) in db.execute("SELECT sha256 FROM content_node_files WHERE mime LIKE 'text/%'"
                             " OR mime = 'image/svg+xml'"):
        response = client.get(f"/files/{sha}", headers=GZIP)
        assert "Content-Encoding" not in response.headers
    href = static_href(client.get("/").get_data(as_text=True), "style.css")
    ranged = client.get(href, headers={**GZIP, "Range": "bytes=0-99"})
    assert ranged.status_code == 206 and "Content-Encoding" not in ranged.headers
    small = client.get("/api/v1/health", headers=GZIP)
    assert len(small.get_data()) < 1024 and "Content-Encoding" not in small.headers
    refused = client.get("/", headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in refused.headers
