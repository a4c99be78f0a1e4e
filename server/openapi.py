"""The OpenAPI 3 description of the JSON API.

Written by hand next to the routes, because the description is a contract
for other tools (hubs, dashboards) and deserves words, not only types. A test
walks the app's URL map and fails when an ``/api/`` route is missing here, so
a new route cannot ship undocumented.
"""

from __future__ import annotations

from . import __version__

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable machine-readable code.",
                         "examples": ["not_found", "invalid", "forbidden"]},
                "message": {"type": "string", "description": "Human-readable explanation."},
                "details": {"type": "object", "description": "Optional structured details, "
                            "e.g. the field that failed validation."},
            },
        }
    },
}


def _error(description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


PATHS: dict = {
    "/api/v1/health": {
        "get": {
            "summary": "Health of the box",
            "description": "Version, device id and database status. Needs no sign-in.",
            "operationId": "health",
            "tags": ["box"],
            "responses": {
                "200": {"description": "The box is healthy.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
                "503": {"description": "The database cannot be read.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
            },
        }
    },
    "/api/openapi.json": {
        "get": {
            "summary": "This description",
            "operationId": "openapi",
            "tags": ["box"],
            "responses": {"200": {"description": "The OpenAPI 3.1 document."}},
        }
    },
}

SCHEMAS: dict = {
    "Error": ERROR_SCHEMA,
    "Health": {
        "type": "object",
        "required": ["status", "version", "device_id", "database"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded"]},
            "version": {"type": "string"},
            "device_id": {"type": "string", "format": "uuid"},
            "database": {
                "type": "object",
                "properties": {
                    "status": {"type": "string", "enum": ["ok", "error"]},
                    "schema_version": {"type": "string"},
                    "journal_mode": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}

# Responses every operation may give, documented once.
COMMON_RESPONSES = {
    "400": _error("The request is malformed or fails validation."),
    "404": _error("No such resource."),
    "405": _error("The method is not allowed on this path."),
    "413": _error("The request body is larger than the box accepts."),
    "500": _error("An unexpected error; it was logged on the box."),
}


def spec() -> dict:
    paths = {}
    for path, operations in PATHS.items():
        paths[path] = {}
        for method, operation in operations.items():
            operation = dict(operation)
            operation["responses"] = {**COMMON_RESPONSES, **operation["responses"]}
            paths[path][method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Passerelle API",
            "version": __version__,
            "description": "The JSON API of a Passerelle box. Every error has the shape "
                           "`{\"error\": {\"code\", \"message\", \"details\"?}}`.",
            "license": {"name": "AGPL-3.0-or-later", "identifier": "AGPL-3.0-or-later"},
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
