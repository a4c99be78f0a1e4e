"""Security headers on every response; the box never points a browser elsewhere."""

import pytest
from passerelle.server.web.security import CSP


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


def test_a_message_naming_what_someone_typed_is_escaped_on_the_page(fresh_client):
    """Translated domain messages are shown escaped, like any other text."""
    from tests.conftest import csrf_token

    hostile = '<img src=x onerror="alert(1)">'
    page = fresh_client.post("/setup", data={
        "csrf_token": csrf_token(fresh_client), "org_name": "Espace", "languages": ["fr"],
        "signin_mode": "pin", "profile_fields": [hostile], "display_name": "Cora",
        "username": "cora", "password": "a long passphrase", "password_again": "a long passphrase",
    })
    html = page.get_data(as_text=True)
    assert page.status_code == 400
    assert "unknown profile field" in html
    assert hostile not in html and "&lt;img src=x" in html
