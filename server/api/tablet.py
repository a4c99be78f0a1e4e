"""The JSON API, under ``/api/v1``; its description is served at ``/api/openapi.json``."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, jsonify, request
from passerelle.server import __version__, dialect, disk
from passerelle.server import db as dbmod
from passerelle.server.api.openapi import spec
from passerelle.server.errors import InvalidInput
from passerelle.server.learning import progress
from passerelle.server.learning.events import validate_batch
from passerelle.server.people import accounts
from passerelle.server.web.auth import ANYONE, SIGNED_IN, allow, current_user, require

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/v1/health")
@allow(ANYONE)
def health():
    """Whether the box is up and its database sound (no sign-in: tablets and monitors poll it)."""
    database = {"status": "ok"}
    device_id = current_app.config["DEVICE_ID"]
    try:
        conn = dbmod.get_db()
        # Read each time: a restore while serving gives the box a new device id.
        device_id = dbmod.get_meta(conn, "device_id")
        conn.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
        database["schema_version"] = dbmod.schema_version(conn)
        if dialect.of(conn) is dialect.POSTGRES:  # a hub on PostgreSQL: WAL is the server's own
            database["journal_mode"] = "postgresql"
        else:
            database["journal_mode"] = conn.execute("PRAGMA journal_mode").fetchone()[0]
    except dbmod.engine_errors() as exc:
        database = {"status": "error", "message": str(exc)}
    try:
        space = disk.space(current_app.config["HOME"].root, current_app.config["SETTINGS"]).as_dict()
    except OSError as exc:
        space = {"status": "error", "message": str(exc)}
    # Below the reserve the box can still record progress, but not for long: say so.
    sound = database["status"] == "ok" and space["status"] in ("ok", "low")
    body = {
        "status": "ok" if sound else "degraded",
        "version": __version__,
        "device_id": device_id,
        "database": database,
        "disk": space,
    }
    return jsonify(body), 200 if body["status"] == "ok" else 503


@bp.get("/openapi.json")
@allow(ANYONE)
def openapi():
    return jsonify(spec())


def public_user(user: dict) -> dict:
    """What the API shows of a person: never a hash, never the profile to others."""
    return {"uuid": user["uuid"], "role": user["role"], "display_name": user["display_name"],
            "username": user["username"], "avatar": user["avatar"], "language": user["language"]}


@bp.get("/v1/me")
@allow(SIGNED_IN)
def me():
    return jsonify(public_user(current_user()))


@bp.post("/v1/progress")
@allow("learner")
def progress_post():
    """Record a batch of learning events from a tablet; resent events count once.

    Validated first, then written with the batches of other tablets arriving at
    the same time (one transaction, see ``records.GroupCommit``); the answer
    leaves only once they are committed: the tablet may then forget them.
    """
    body = request.get_json(silent=True)
    events = validate_batch(body)
    db = dbmod.get_db()
    events, refused = progress.from_tablet(db, events, sent_at=body.get("sent_at"))
    accepted = progress.record(db, current_user()["uuid"], events) if events else 0
    return jsonify({"accepted": accepted, "duplicates": len(events) - accepted, "refused": refused})


@bp.get("/v1/progress")
@allow("learner")
def progress_get():
    """The signed-in learner's own progress, per resource."""
    rows = progress.of_learner(dbmod.get_db(), current_user()["uuid"],
                               request.args.get("pack_id") or None)
    return jsonify({"progress": rows})


@bp.get("/v1/classes")
@allow("facilitator", "coordinator")
def classes_list():
    db = dbmod.get_db()
    return jsonify({"classes": [{"uuid": c["uuid"], "name": c["name"], "description": c["description"]}
                                for c in accounts.classes_of(db, current_user())]})


@bp.get("/v1/classes/<class_uuid>")
@allow("facilitator", "coordinator")
def class_detail(class_uuid: str):
    db = dbmod.get_db()
    group = accounts.get_class(db, class_uuid)
    require(accounts.can_manage_class(db, current_user(), class_uuid))
    return jsonify({"uuid": group["uuid"], "name": group["name"],
                    "description": group["description"],
                    "learners": [public_user(u) for u in accounts.members(db, class_uuid)],
                    "facilitators": [public_user(u) for u in
                                     accounts.members(db, class_uuid, "facilitator")]})


@bp.get("/v1/classes/<class_uuid>/grid")
@allow("facilitator", "coordinator")
def class_grid(class_uuid: str):
    """Learners × resources of the open lessons, with statuses, and the most missed questions."""
    from passerelle.server.learning import lessons

    db = dbmod.get_db()
    accounts.get_class(db, class_uuid)
    require(accounts.can_manage_class(db, current_user(), class_uuid))
    return jsonify(lessons.class_grid(db, class_uuid).as_dict())


@bp.get("/v1/me/lessons")
@allow("learner")
def my_lessons():
    """The open lessons assigned to the signed-in learner, with each resource's status."""
    from passerelle.server.learning import lessons

    found = lessons.assigned_to(dbmod.get_db(), current_user()["uuid"])
    return jsonify({"lessons": [{"assignment": a["uuid"], "title": a["lesson"]["title"],
                                 "items": a["items"]} for a in found]})


@bp.put("/v1/sessions/<session_uuid>/attendance/<learner_uuid>")
@allow("facilitator", "coordinator")
def attendance_put(session_uuid: str, learner_uuid: str):
    db = dbmod.get_db()
    meeting = accounts.get_session(db, session_uuid)
    require(accounts.can_manage_class(db, current_user(), meeting["class_uuid"]))
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("present"), bool):
        raise InvalidInput("expected {\"present\": true or false}", details={"present": "true or false"})
    accounts.mark_attendance(db, session_uuid, learner_uuid, body["present"])
    present = accounts.attendance(db, session_uuid)
    return jsonify({"present": present.get(learner_uuid, False), "count": sum(present.values())})


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
