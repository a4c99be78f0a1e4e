"""Security headers on every response; the box never points a browser elsewhere."""

import pytest
from passerelle.server.security import CSP


@pytest.mark.parametrize("path", ["/", "/api/v1/health", "/api/nope", "/nope"])
def test_security_headers_everywhere(client, path):
    response = client.get(path)
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"


def test_csp_allows_only_the_box_itself():
    for directive in CSP.split("; "):
        sources = directive.split()[1:]
        assert all(s in ("'self'", "'none'", "data:", "blob:") for s in sources), directive


def test_api_answers_are_not_cached(client):
    assert client.get("/api/v1/health").headers["Cache-Control"] == "no-store"


def test_request_size_limit_follows_the_setting(home):
    from passerelle.server.app import create_app

    app = create_app({"home": home, "TESTING": True, "max_request_mb": 1})
    response = app.test_client().post("/api/v1/health", data=b"x" * (2 * 1024 * 1024))
    assert response.status_code == 413


def test_language_redirect_never_leaves_the_box(client):
    response = client.get("/language/nl?next=//evil.example/")
    assert response.headers["Location"] == "/"
