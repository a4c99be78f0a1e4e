"""One JSON error shape for every API error, made by one function."""

import pytest
from flask import Blueprint
from passerelle.server.web.auth import ANYONE, allow

from tests.conftest import csrf_token


@pytest.fixture
def app_with_a_bug(box_app):
    # The only route made up for this test: a real bug has no real route to show it.
    bp = Blueprint("buggy", __name__, url_prefix="/api/v1/test-bug")

    @bp.get("/")
    @allow(ANYONE)
    def bug():
        raise RuntimeError("a bug with a secret inside")

    box_app.register_blueprint(bp)
    return box_app


def call(app, who, method, path, **kwargs):
    from tests.conftest import sign_in

    client = app.test_client()
    if who:
        sign_in(client, app.config["TEST_BOX"], who)
    if method in ("post", "put"):
        kwargs.setdefault("headers", {})["X-CSRFToken"] = csrf_token(client)
    return getattr(client, method)(path, **kwargs)


@pytest.mark.parametrize("who, method, path, kwargs, status, code", [
    (None, "get", "/api/v1/no-such-thing", {}, 404, "not_found"),
    (None, "post", "/api/v1/health", {}, 405, "method_not_allowed"),
    ("amina", "post", "/api/v1/progress", {"json": {"events": [{"type": "jump"}]}}, 400, "invalid"),
    (None, "post", "/api/v1/progress", {"json": {"events": []}}, 401, "unauthorized"),
    ("amina", "get", "/api/v1/classes", {}, 403, "forbidden"),
    ("fatou", "get", "/api/v1/classes/{class_b}", {}, 403, "forbidden"),
    (None, "post", "/api/v1/health", {"data": b"x" * (17 * 1024 * 1024)}, 413, "too_large"),
    (None, "get", "/api/v1/test-bug/", {}, 500, "internal_error"),
    ("fatou", "get", "/api/v1/classes/no-such-class", {}, 404, "not_found"),
])
def test_every_api_error_has_the_one_shape(app_with_a_bug, box, who, method, path, kwargs, status,
                                           code):
    app_with_a_bug.config["TEST_BOX"] = box
    response = call(app_with_a_bug, who, method, path.format(**box.ids), **kwargs)
    assert response.status_code == status
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert set(body["error"]) <= {"code", "message", "details"}
    assert "secret" not in response.get_data(as_text=True)
    assert "<p>" not in body["error"]["message"]


def test_validation_errors_say_where(box_app, box):
    box_app.config["TEST_BOX"] = box
    response = call(box_app, "amina", "post", "/api/v1/progress",
                    json={"events": [{"event_id": "e1", "pack_id": "p", "node_id": "n",
                                      "type": "answer", "progress": 2}]})
    assert response.get_json()["error"]["details"] == {"events[0].progress": "a number from 0 to 1"}


def test_csrf_failures_have_the_shape_too(as_user):
    response = as_user("amina").post("/api/v1/progress", json={"events": []})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "csrf_failed"


def test_a_new_box_asks_for_setup_first(fresh_client):
    response = fresh_client.get("/api/v1/me")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "setup_required"
    assert fresh_client.get("/").headers["Location"].endswith("/setup")
    assert fresh_client.get("/api/v1/health").status_code == 200


def test_kiosk_errors_are_friendly_pages_in_the_learners_language(box_app):
    client = box_app.test_client()
    response = client.get("/no-such-page", headers={"Accept-Language": "fr"})
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "Cette page n'est pas ici" in html
    assert "Retour à l'accueil" in html

    response = client.get("/no-such-page", headers={"Accept-Language": "ar"})
    assert 'dir="rtl"' in response.get_data(as_text=True)
    assert "هذه الصفحة غير موجودة هنا" in response.get_data(as_text=True)


def test_a_wrong_method_on_a_page_is_a_friendly_405(client):
    response = client.delete("/")  # the home page does not take DELETE
    assert response.status_code == 405
    assert response.mimetype == "text/html"
    assert "GET" in response.headers["Allow"]


def test_a_library_error_escaping_a_view_reads_as_at_the_command_line(box_app):
    """The content library's exceptions get the same translation on the API as in the CLI."""
    from passerelle import content as lib

    bp = Blueprint("library_error", __name__, url_prefix="/api/v1/test-library")

    @bp.get("/")
    @allow(ANYONE)
    def missing():
        raise lib.PackNotFound("no pack called maths-xx is installed")

    box_app.register_blueprint(bp)
    answer = box_app.test_client().get("/api/v1/test-library/")
    assert answer.status_code == 404
    assert answer.get_json()["error"] == {"code": "not_found",
                                          "message": "no pack called maths-xx is installed"}
