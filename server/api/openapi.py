"""The OpenAPI 3 description of the JSON API.

Written by hand next to the routes, because the description is a contract
for other tools (hubs, dashboards) and deserves words, not only types. A test
walks the app's URL map and fails when an ``/api/`` route is missing here, so
a new route cannot ship undocumented.
"""

from __future__ import annotations

from passerelle.content.kolibri_labels import SLUGS as LABEL_SLUGS
from passerelle.server import __version__
from passerelle.server.learning import events
from passerelle.server.search.service import KINDS

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
            "description": "Version, device id, database status and free space on the data "
                           "home's disk (`low` below `disk_warning_mb`, `critical` below "
                           "`disk_reserve_mb`). Needs no sign-in.",
            "operationId": "health",
            "tags": ["box"],
            "responses": {
                "200": {"description": "The box is healthy.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
                "503": {"description": "The database cannot be read, or the disk is below "
                                       "its reserve.",
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

def _json(schema_ref: str, description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}


def _param(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string"}}


SIGNED_IN = [{"session": []}]
# A write needs the session and the CSRF token that goes with it (both, in one requirement).
SIGNED_IN_WRITE = [{"session": [], "csrf": []}]

PATHS.update({
    "/api/v1/me": {"get": {
        "summary": "The signed-in person", "operationId": "me", "tags": ["people"],
        "security": SIGNED_IN,
        "responses": {"200": _json("Person", "Who is signed in.")}}},
    "/api/v1/progress": {
        "get": {
            "summary": "My progress", "operationId": "progressGet", "tags": ["learning"],
            "description": "The signed-in learner's own progress per resource (at most 1,000, "
                           "most recent first).",
            "security": SIGNED_IN,
            "parameters": [{"name": "pack_id", "in": "query", "required": False,
                            "schema": {"type": "string"}, "description": "Only this pack."}],
            "responses": {"200": _json("ProgressList", "Progress per resource.")}},
        "post": {
            "summary": "Record learning events", "operationId": "progressPost", "tags": ["learning"],
            "description": "A batch of at most 500 events queued by a tablet. Each carries an "
                           "`event_id` made by the tablet: an event sent again (after a dropped "
                           "connection) counts once. All events are checked first; when one is "
                           "invalid, none is recorded. Events for resources this box does not "
                           "hold are refused one by one (`refused`), the others recorded. Each event is bounded (see `Event`): "
                           "fields not described are dropped. Needs the `X-CSRFToken` header.",
            "security": SIGNED_IN_WRITE,
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/EventBatch"}}}},
            "responses": {"200": _json("EventReceipt", "How many were new, how many repeats.")}}},
    "/api/v1/classes": {"get": {
        "summary": "Classes I may manage", "operationId": "classes", "tags": ["classes"],
        "description": "All classes for a coordinator; a facilitator's own classes.",
        "security": SIGNED_IN,
        "responses": {"200": {"description": "The classes."}}}},
    "/api/v1/classes/{class_uuid}": {"get": {
        "summary": "A class and its members", "operationId": "classDetail", "tags": ["classes"],
        "security": SIGNED_IN, "parameters": [_param("class_uuid", "The class.")],
        "responses": {"200": {"description": "The class, its learners and facilitators."}}}},
    "/api/v1/classes/{class_uuid}/grid": {"get": {
        "summary": "The class grid", "operationId": "classGrid", "tags": ["classes"],
        "description": "Learners × resources of the class's open lessons, each cell one of "
                       "not_started, in_progress, completed, needs_help; and the questions most "
                       "often missed. Polled by the facilitator's page during a session.",
        "security": SIGNED_IN, "parameters": [_param("class_uuid", "The class.")],
        "responses": {"200": {"description": "learners, columns, cells, most_missed"}}}},
    "/api/v1/me/lessons": {"get": {
        "summary": "My assigned lessons", "operationId": "myLessons", "tags": ["learning"],
        "security": SIGNED_IN,
        "responses": {"200": {"description": "Open lessons with each resource's status."}}}},
    "/api/v1/sessions/{session_uuid}/attendance/{learner_uuid}": {"put": {
        "summary": "Mark a learner present or absent", "operationId": "attendancePut",
        "description": "Needs the `X-CSRFToken` header.",
        "tags": ["classes"], "security": SIGNED_IN_WRITE,
        "parameters": [_param("session_uuid", "The session."), _param("learner_uuid", "The learner.")],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["present"],
            "properties": {"present": {"type": "boolean"}}}}}},
        "responses": {"200": {"description": "The mark and the number present."}}}},
})

PATHS.update({
    "/api/v1/packs": {"get": {
        "summary": "Installed packs", "operationId": "packs", "tags": ["content"],
        "description": "The packs this box can give to another box or hub.",
        "responses": {"200": {"description": "id, version, title, language, size, nodes."}}}},
    "/api/v1/packs/{pack_id}/manifest.json": {"get": {
        "summary": "A pack's manifest", "operationId": "packManifest", "tags": ["content"],
        "description": "The exact bytes imported (so a publisher's signature stays valid). With "
                       "`signature.json` and `files/{sha256}` this is the pack folder layout: "
                       "`passerelle content import http://BOX:8080/api/v1/packs/ID` copies the pack.",
        "parameters": [_param("pack_id", "The pack.")],
        "responses": {"200": {"description": "manifest.json"}}}},
    "/api/v1/packs/{pack_id}/signature.json": {"get": {
        "summary": "A pack's publisher signature", "operationId": "packSignature",
        "tags": ["content"], "parameters": [_param("pack_id", "The pack.")],
        "responses": {"200": {"description": "signature.json"}}}},
    "/api/v1/packs/{pack_id}/files/{sha256}": {"get": {
        "summary": "One blob of a pack", "operationId": "packFile", "tags": ["content"],
        "description": "Supports Range, so a transfer cut mid-blob resumes.",
        "parameters": [_param("pack_id", "The pack."), _param("sha256", "The blob's SHA-256.")],
        "responses": {"200": {"description": "The bytes."}, "206": {"description": "A range."}}}},
})

_LIST = {"type": "array", "items": {"type": "string"}}
PATHS.update({
    "/api/v1/search": {"get": {
        "summary": "Search the installed content", "operationId": "search", "tags": ["search"],
        "description": "Full-text search over every installed pack, in any of the box's languages: "
                       "all words first, then any word, then spelling corrections. Kind words in "
                       "the query (\"vidéo\", \"oefening\"...) act as filters. Snippets are "
                       "HTML-escaped text with `<mark>` around matches.",
        "parameters": [
            {"name": "q", "in": "query", "required": False, "schema": {"type": "string", "maxLength": 200}},
            {"name": "kind", "in": "query", "required": False,
             "schema": {"type": "array", "items": {"type": "string", "enum": list(KINDS)}},
             "description": "Only these kinds of resource."},
            {"name": "language", "in": "query", "required": False, "schema": _LIST},
            {"name": "pack", "in": "query", "required": False, "schema": _LIST},
            *({"name": name, "in": "query", "required": False,
               "schema": {"type": "array", "items": {"type": "string", "enum": list(values)}},
               "description": f"Only resources labelled with one of these ({name} facet: Kolibri's "
                             "labels of the resource)."}
              for name, values in LABEL_SLUGS.items()),
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
            {"name": "offset", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 0, "maximum": 10_000, "default": 0}}],
        "responses": {"200": {"description": "hits, total, facets (kind, language, pack; and activity, "
                                             "category, level when the results carry Kolibri labels: "
                                             "value -> count, each ignoring its own filter), "
                                             "mode (all, any, fuzzy), did_you_mean, approximate (a very common word: total and "
                                             "facets estimated from a 1/16 sample)."}}}},
    "/api/v1/search/suggest": {"get": {
        "summary": "Suggestions as you type", "operationId": "suggest", "tags": ["search"],
        "parameters": [{"name": "q", "in": "query", "required": True, "schema": {"type": "string"}},
                       {"name": "language", "in": "query", "required": False, "schema": _LIST},
                       {"name": "limit", "in": "query", "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 20, "default": 8}}],
        "responses": {"200": {"description": "{\"suggestions\": [...]}"}}}},
})

# Kiwix ZIM files (server/packs/zim.py): their entries are served at /zim/<uuid>/<path>, outside /api.
PATHS.update({
    "/api/v1/zims": {"get": {
        "summary": "The ZIM files learners can read", "operationId": "listZims", "tags": ["zim"],
        "description": "Hidden ZIMs are listed for staff only, with their path on the box. "
                       "`available` is false when python-libzim is missing on this platform "
                       "(`reason` says why); each ZIM's `available` is false while its disk is "
                       "not connected.",
        "responses": {"200": {"description": "available, reason, zims: [{uuid, name, title, "
                                             "description, language, lang, article_count, size, "
                                             "has_fulltext, has_title_index, available, "
                                             "main_path, url}]"}}}},
    "/api/v1/zims/search": {"get": {
        "summary": "Search the ZIM files", "operationId": "searchZims", "tags": ["zim"],
        "description": "Each readable ZIM answers from its own index: Xapian full text when "
                       "it has one (`mode: fulltext`), else the box's index of its articles "
                       "once it has been indexed (`mode: index`), else its title index "
                       "(`mode: title`). `snippet` is escaped HTML with `<mark>` around the "
                       "words found.",
        "parameters": [{"name": "q", "in": "query", "required": True, "schema": {"type": "string",
                                                                                "maxLength": 200}},
                       {"name": "zim", "in": "query", "required": False,
                        "schema": {"type": "string"}, "description": "Only this ZIM (its UUID)."}],
        "responses": {"200": {"description": "query, sources: [{uuid, title, language, total, "
                                             "mode, hits: [{path, title, snippet, url}]}]"}}}},
    "/api/v1/zims/{uuid}/snippets": {"get": {
        "summary": "Snippets of some articles of a ZIM for a search", "operationId": "zimSnippets",
        "tags": ["zim"],
        "description": "What the search page asks for after showing the hits of a ZIM's own "
                       "Xapian index, which it shows without their snippets (each means reading "
                       "its article). `snippets` maps each path to escaped HTML with `<mark>` "
                       "around the words found (empty when the article cannot be read); at most "
                       "20 paths. A ZIM hidden from learners, or whose disk is away, is 404.",
        "parameters": [{"name": "uuid", "in": "path", "required": True,
                        "schema": {"type": "string"}},
                       {"name": "q", "in": "query", "required": True,
                        "schema": {"type": "string", "maxLength": 200}},
                       {"name": "path", "in": "query", "required": False,
                        "schema": {"type": "array", "items": {"type": "string"}, "maxItems": 20},
                        "style": "form", "explode": True}],
        "responses": {"200": {"description": "query, snippets: {path: snippet}"}}}},
})

# Sync between boxes (server/sync/http.py, docs/sync.md): for devices, not browsers.
_SIGNED = ("Signed by the calling box: headers `X-Passerelle-Device`, `X-Passerelle-Nonce` (from "
           "`hello` or the previous answer's `X-Passerelle-Next-Nonce`, single use) and "
           "`X-Passerelle-Signature` (Ed25519 over method, path, SHA-256 of the body, nonce and "
           "device id). Unknown device, bad signature or used nonce: 401; revoked device: 403. "
           "JSON answers carry the server's signature in `X-Passerelle-Signature`.")
_VECTOR = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0},
           "description": "Highest operation number held per origin device."}
PATHS.update({
    "/api/v1/sync/hello": {"get": {
        "summary": "Who this box is, and a nonce", "operationId": "syncHello", "tags": ["sync"],
        "description": "Device id, public key, organisation, clock (`now_ms`) and a single-use "
                       "nonce for the next request. Needs no signature.",
        "responses": {"200": {"description": "protocol, device_id, public_key, label, "
                                             "organisation, now_ms, nonce"}}}},
    "/api/v1/sync/pair": {"post": {
        "summary": "Pair a box with a one-time code", "operationId": "syncPair", "tags": ["sync"],
        "description": "The box sends its device id, public key, name, organisation, the nonce "
                       "from `hello` and an HMAC keyed by the code (scrypt) over both devices' "
                       "ids and keys; the answer carries this box's and the same kind of HMAC. "
                       "A wrong, expired or used code: 403; another organisation: 409.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["device_id", "public_key", "nonce", "mac"]}}}},
        "responses": {"200": {"description": "device_id, public_key, label, organisation, mac"},
                      "409": _error("The box belongs to another organisation.")}}},
    "/api/v1/sync/vector": {"post": {
        "summary": "Exchange vectors and clocks", "operationId": "syncVector", "tags": ["sync"],
        "description": _SIGNED + " The answer: this box's vector and clock, the difference of "
                                 "the clocks, the organisation's devices (with revocations) when "
                                 "the caller's `devices_version` is not the current one, and the "
                                 "caller's site.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["vector"], "properties": {
                "vector": _VECTOR, "now_ms": {"type": "integer"},
                "organisation": {"type": ["string", "null"]},
                "devices_version": {"type": ["string", "null"]}}}}}},
        "responses": {"200": {"description": "device_id, organisation, vector, now_ms, skew_ms, "
                                             "devices_version, devices (when changed), site, "
                                             "max_ops"}}}},
    "/api/v1/sync/changes": {"post": {
        "summary": "Stream what the caller lacks", "operationId": "syncChanges", "tags": ["sync"],
        "description": _SIGNED + " The answer (`application/x-passerelle-batches`) is a stream of "
                                 "frames: a 4-byte big-endian length, then a gzip batch of JSON "
                                 "lines (signed operations, and for a box of a site "
                                 "`{\"skip\": [origin, first, last]}` lines for runs of other "
                                 "sites); a frame of length 0 ends it.",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["since"], "properties": {
                "since": _VECTOR, "max_ops": {"type": "integer", "minimum": 1}}}}}},
        "responses": {"200": {"description": "The stream of batches."}}}},
    "/api/v1/sync/batches": {"post": {
        "summary": "Apply one batch", "operationId": "syncBatch", "tags": ["sync"],
        "description": _SIGNED + " The body (`application/x-passerelle-batch`) is one gzip batch "
                                 "of JSON lines. Verified whole, then applied in one transaction; "
                                 "a batch with one altered or forged operation is refused (400) "
                                 "with nothing applied. Sending it again changes nothing.",
        "requestBody": {"required": True, "content": {"application/x-passerelle-batch": {
            "schema": {"type": "string", "format": "binary"}}}},
        "responses": {"200": {"description": "applied, duplicates, held, clock_ahead_ms, vector, "
                                             "now_ms"},
                      "503": _error("The server is busy writing; try again.")}}},
})

SCHEMAS: dict = {
    "Person": {"type": "object", "properties": {
        "uuid": {"type": "string", "format": "uuid"},
        "role": {"type": "string", "enum": ["learner", "facilitator", "coordinator"]},
        "display_name": {"type": "string"}, "username": {"type": ["string", "null"]},
        "avatar": {"type": ["string", "null"]}, "language": {"type": ["string", "null"]}}},
    "Event": events.schema(),
    "EventBatch": {"type": "object", "required": ["events"], "properties": {
        "events": {"type": "array", "maxItems": events.MAX_EVENTS,
                   "items": {"$ref": "#/components/schemas/Event"}},
        "sent_at": {"type": "string", "format": "date-time", "maxLength": 40,
                    "description": "The tablet's clock when sending: the box corrects each "
                                   "event's `occurred_at` by the difference with its own clock."}}},
    "EventReceipt": {"type": "object", "properties": {
        "accepted": {"type": "integer"}, "duplicates": {"type": "integer"},
        "refused": {"type": "array", "description": "Events for resources this box does not "
                    "hold, each with its reason: the tablet drops them.",
                    "items": {"type": "object", "properties": {
                        "event_id": {"type": "string"},
                        "reason": {"type": "string", "enum": ["not_installed"]}}}}}},
    "ProgressList": {"type": "object", "properties": {"progress": {"type": "array", "items": {
        "type": "object", "properties": {
            "pack_id": {"type": "string"}, "node_id": {"type": "string"},
            "progress": {"type": "number"}, "completed": {"type": "boolean"},
            "seconds": {"type": "integer"}, "answers": {"type": "integer"},
            "correct": {"type": "integer"}, "position": {"type": ["number", "string", "null"]}}}}}},
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
            "disk": {
                "type": "object",
                "properties": {
                    "status": {"type": "string", "enum": ["ok", "low", "critical", "error"]},
                    "free_mb": {"type": "integer"},
                    "total_mb": {"type": "integer"},
                    "warning_mb": {"type": "integer"},
                    "reserve_mb": {"type": "integer"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}

# Responses every operation may give, documented once.
COMMON_RESPONSES = {
    "400": _error("The request is malformed or fails validation."),
    "401": _error("Sign in first."),
    "403": _error("Signed in, but not allowed to do this."),
    "404": _error("No such resource."),
    "405": _error("The method is not allowed on this path."),
    "413": _error("The request body is larger than the box accepts."),
    "507": _error("The box's disk is full, or too full for this request body: nothing was "
                  "saved. A tablet keeps its queued events and sends them again later."),
    "500": _error("An unexpected error; it was logged on the box."),
}


# The exercise player's script: an answer checked and recorded in one request.
PATHS["/api/v1/practice/{pack_id}/{node_id}/answer"] = {"post": {
    "summary": "Answer an exercise's question", "operationId": "practiceAnswer",
    "tags": ["learning"],
    "description": "What the exercise page's script posts when the learner presses \"Check\": "
                   "the answer is checked and recorded exactly as the page's form does it, and "
                   "the reply carries the page's body twice, rendered in the learner's "
                   "language: with the feedback, and with the next question (shown when the "
                   "learner presses \"Next question\", with no other request). `attempt` is "
                   "the number the question's form carries; the same attempt sent again (a "
                   "lost reply) is recorded once and answered the same. Query `lesson` and "
                   "`more` as on the page. Needs the `X-CSRFToken` header; learners only.",
    "security": SIGNED_IN_WRITE,
    "parameters": [_param("pack_id", "The pack."),
                   _param("node_id", "The exercise (may contain `/`)."),
                   {"name": "lesson", "in": "query", "required": False,
                    "schema": {"type": "string"}, "description": "The lesson it is part of."},
                   {"name": "more", "in": "query", "required": False,
                    "schema": {"type": "string"},
                    "description": "`1`: keep practising after mastery."}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["attempt", "answer"], "additionalProperties": False,
        "properties": {
            "attempt": {"anyOf": [{"type": "integer", "minimum": 0, "maximum": 999999999},
                                  {"type": "string", "pattern": "^[0-9]{1,9}$"}],
                        "description": "The form's attempt."},
            "answer": {"type": "object", "maxProperties": 60,
                       "propertyNames": {"maxLength": 100},
                       "description": "The question's fields as the form posts them: name to "
                                      "list of values (`answer`; a Khan Academy question's "
                                      "widget names).",
                       "additionalProperties": {"type": "array", "maxItems": 50,
                                                "items": {"type": "string", "maxLength": 500}}}}}}}},
    "responses": {
        "200": {"description": "Recorded (or a resent attempt): `correct`, `just_mastered`, "
                               "`mastered`, `attempt`, and the HTML of the page's body "
                               "`feedback` and `next`."},
        "409": _error("The question was already left behind (another tab): load the page."),
        "422": _error("No answer to check (`not_an_answer`); the message says what to do."),
        "507": _error("The box's disk is full: nothing recorded; post the page's form.")}}}


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
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "session": {"type": "apiKey", "in": "cookie", "name": "passerelle_session",
                        "description": "The session cookie set by signing in on the box's pages."},
            "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRFToken",
                     "description": "The CSRF token of the session: the `content` of the pages' "
                                    "`<meta name=\"csrf-token\">`. Every write needs it; without "
                                    "it, or with another session's, the answer is 400 "
                                    "`csrf_failed`."}}},
    }
