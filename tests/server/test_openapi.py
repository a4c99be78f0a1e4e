"""The OpenAPI description is valid and describes every API route."""

import pytest
from openapi_spec_validator import validate


def test_spec_is_valid_openapi(client):
    spec = client.get("/api/openapi.json").get_json()
    validate(spec)


def test_every_api_route_is_described(app, client):
    spec = client.get("/api/openapi.json").get_json()
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        # A converter's name goes ({path:node_id} -> {node_id}), the brace stays.
        path = "/".join("{" + part[1:].split(":")[-1] if part.startswith("{") else part
                        for part in path.split("/"))
        path = path.replace("{", "{").replace("}}", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method.lower() not in spec["paths"].get(path, {}):
                missing.append(f"{method} {path}")
    assert not missing, f"undocumented API routes: {missing}"


def test_every_operation_documents_the_error_shape(client):
    spec = client.get("/api/openapi.json").get_json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            ref = operation["responses"]["404"]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/Error", (method, path)


def test_every_write_declares_the_csrf_header(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["csrf"] == {
        **spec["components"]["securitySchemes"]["csrf"], "type": "apiKey", "in": "header",
        "name": "X-CSRFToken"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            needs_session = any("session" in r for r in operation.get("security", []))
            if needs_session and method in ("post", "put", "patch", "delete"):
                assert operation["security"] == [{"session": [], "csrf": []}], (method, path)


def test_search_parameters_are_described_as_they_are_checked(client):
    spec = client.get("/api/openapi.json").get_json()
    search = {p["name"]: p for p in spec["paths"]["/api/v1/search"]["get"]["parameters"]}
    assert search["kind"]["schema"]["items"]["enum"] == [
        "topic", "video", "audio", "document", "article", "html5", "exercise"]
    assert search["offset"]["schema"]["maximum"] == 10_000


@pytest.mark.parametrize("query, status", [
    ("/api/v1/search?q=mail&offset=3964.0", 200),   # an integer, as JSON Schema counts them
    ("/api/v1/search?q=mail&limit=20.0", 200),
    ("/api/v1/search?q=mail&limit=2.5", 400),
    ("/api/v1/search?q=mail&limit=1e1", 200),
    ("/api/v1/search?q=mail&offset=10001", 400),
    ("/api/v1/search?q=mail&kind=", 400),            # not one of the kinds
    ("/api/v1/search?q=mail&kind=video", 200),
    ("/api/v1/search/suggest?q=&limit=abc", 400),    # checked even when there is nothing to suggest
    ("/api/v1/search/suggest?q=%20&limit=0", 400),
    ("/api/v1/search/suggest?q=&limit=5.0", 200),
    ("/api/v1/search/suggest", 400),                 # q is required
])
def test_the_server_accepts_what_the_description_allows_and_only_that(client, query, status):
    assert client.get(query).status_code == status


def test_a_write_without_a_session_hears_sign_in_first(client):
    """Without a session there is no CSRF token to have: 401, as the description says."""
    response = client.post("/api/v1/progress", json={"events": []}, headers={"X-CSRFToken": "x"})
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "unauthorized"
