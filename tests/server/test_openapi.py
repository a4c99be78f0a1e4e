"""The OpenAPI description is valid and describes every API route."""

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
        path = "/".join(part.split(":")[-1] if part.startswith("{") else part
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
