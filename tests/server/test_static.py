"""Static files are fingerprinted and cached for a year; a stale fingerprint is not cached."""

import re


def test_pages_link_fingerprinted_assets_cached_for_a_year(client):
    html = client.get("/").get_data(as_text=True)
    href = re.search(r'href="(/static/[0-9a-f]{10}/style\.css)"', html).group(1)
    response = client.get(href)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.mimetype == "text/css"


def test_a_stale_fingerprint_gets_todays_file_uncached(client):
    response = client.get("/static/0000000000/style.css")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-cache"


def test_no_path_traversal_out_of_static(client):
    assert client.get("/static/0000000000/../__init__.py").status_code == 404
    assert client.get("/static/0000000000/%2e%2e/__init__.py").status_code == 404
