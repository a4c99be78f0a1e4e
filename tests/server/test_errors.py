"""One JSON error shape for every API error, made by one function."""

import pytest
from flask import Blueprint, abort
from passerelle.server.errors import InvalidInput


@pytest.fixture
def app_with_failing_routes(app):
    # Routes that fail the ways later subsystems will (sign-in, roles, bugs),
    # registered on this test app only, so every status goes through the real handlers.
    bp = Blueprint("failing", __name__, url_prefix="/api/v1/test-failures")

    @bp.get("/unauthorized")
    def unauthorized():
        abort(401)

    @bp.get("/forbidden")
    def forbidden():
        abort(403)

    @bp.post("/validation")
    def validation():
        raise InvalidInput("name: must not be empty", details={"field": "name"})

    @bp.get("/bug")
    def bug():
        raise RuntimeError("a bug with a secret inside")

    app.register_blueprint(bp)
    return app


@pytest.mark.parametrize("method, path, kwargs, status, code", [
    ("get", "/api/v1/no-such-thing", {}, 404, "not_found"),
    ("post", "/api/v1/health", {}, 405, "method_not_allowed"),
    ("post", "/api/v1/test-failures/validation", {}, 400, "invalid"),
    ("get", "/api/v1/test-failures/unauthorized", {}, 401, "unauthorized"),
    ("get", "/api/v1/test-failures/forbidden", {}, 403, "forbidden"),
    ("post", "/api/v1/health", {"data": b"x" * (17 * 1024 * 1024)}, 413, "too_large"),
    ("get", "/api/v1/test-failures/bug", {}, 500, "internal_error"),
])
def test_every_api_error_has_the_one_shape(app_with_failing_routes, method, path, kwargs, status, code):
    client = app_with_failing_routes.test_client()
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert set(body["error"]) <= {"code", "message", "details"}
    assert "secret" not in response.get_data(as_text=True)
    assert "<p>" not in body["error"]["message"]


def test_validation_errors_carry_details(app_with_failing_routes):
    body = app_with_failing_routes.test_client().post("/api/v1/test-failures/validation").get_json()
    assert body["error"]["details"] == {"field": "name"}


def test_kiosk_errors_are_friendly_pages_in_the_learners_language(client):
    response = client.get("/no-such-page", headers={"Accept-Language": "fr"})
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "Cette page n'est pas ici" in html
    assert "Retour à l'accueil" in html

    response = client.get("/no-such-page", headers={"Accept-Language": "ar"})
    assert 'dir="rtl"' in response.get_data(as_text=True)
    assert "هذه الصفحة غير موجودة هنا" in response.get_data(as_text=True)
