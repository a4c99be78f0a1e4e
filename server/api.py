"""The JSON API, under ``/api/v1``; its description is served at ``/api/openapi.json``."""

from __future__ import annotations

import sqlite3

from flask import Blueprint, Flask, current_app, jsonify

from . import __version__
from . import db as dbmod
from .openapi import spec

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/v1/health")
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
        database["journal_mode"] = conn.execute("PRAGMA journal_mode").fetchone()[0]
    except sqlite3.Error as exc:
        database = {"status": "error", "message": str(exc)}
    body = {
        "status": "ok" if database["status"] == "ok" else "degraded",
        "version": __version__,
        "device_id": device_id,
        "database": database,
    }
    return jsonify(body), 200 if body["status"] == "ok" else 503


@bp.get("/openapi.json")
def openapi():
    return jsonify(spec())


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
