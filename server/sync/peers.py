"""Peers and the sync log: where each peer is, what it holds, how the last sync went, and the
trust a box learns from its hub's device list."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

import sqlite_utils
from passerelle.server import records
from passerelle.server.errors import InvalidInput
from passerelle.server.sync.keys import (
    KEY_PREFIX,
    devices,
    identity,
    mark_devices_changed,
    organisation_of,
    parse_public_key,
)
from passerelle.server.sync.ops import canonical_json, vector

# Days of sync_log kept: the setting sync_log_days of a serving box (server/sync/http.py sets
# it at start); the command line keeps this default.
LOG_KEEP_DAYS = 30


def remember_peer(db: sqlite_utils.Database, device: str, have: Mapping[str, int]) -> None:
    if not isinstance(have, dict):
        return
    record_peer(db, device, vector=have)


def peer_vector(db: sqlite_utils.Database, device: str) -> dict[str, int] | None:
    row = db.execute("SELECT vector FROM sync_peers WHERE device_id = ?", [device]).fetchone()
    return json.loads(row[0]) if row else None


# --- The log ----------------------------------------------------------------------------

def log_attempt(db: sqlite_utils.Database, direction: str, peer: str | None, path: str | None,
                ok: bool, message: str, ops: int = 0, duplicates: int = 0, held: int = 0) -> None:
    """One line of ``sync_log`` (export, import, sync or pair), kept ``LOG_KEEP_DAYS`` days."""
    log_result(db, direction, peer, path, ok, message, ops, duplicates, held)


def log_result(db: sqlite_utils.Database, direction: str, peer: str | None, path: str | None, ok: bool,
         message: str, ops: int = 0, duplicates: int = 0, held: int = 0) -> None:
    with records.write_tx(db):
        db.execute("INSERT INTO sync_log (at, direction, peer, path, ops, duplicates, held, ok, message)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [records.now_iso(), direction, peer, path, ops, duplicates, held, 1 if ok else 0, message])
        # Kept by time, not by count: at a busy hub 500 rows were a minute and a half.
        cutoff = (datetime.now(UTC) - timedelta(days=LOG_KEEP_DAYS)).isoformat(timespec="seconds")
        db.execute("DELETE FROM sync_log WHERE at < ?", [cutoff])


def status(db: sqlite_utils.Database, home) -> dict:
    ident = identity(db, home)
    last = {}
    for direction in ("export", "import"):
        cursor = db.execute("SELECT * FROM sync_log WHERE direction = ? ORDER BY id DESC LIMIT 1",
                            [direction])
        row = cursor.fetchone()
        last[direction] = dict(zip([d[0] for d in cursor.description], row, strict=True)) if row else None
    cursor = db.execute("SELECT * FROM sync_log WHERE direction = 'sync' ORDER BY id DESC LIMIT 1")
    row = cursor.fetchone()
    last["sync"] = dict(zip([d[0] for d in cursor.description], row, strict=True)) if row else None
    cursor = db.execute("SELECT * FROM sync_log WHERE ok = 0 ORDER BY id DESC LIMIT 1")
    row = cursor.fetchone()
    error = dict(zip([d[0] for d in cursor.description], row, strict=True)) if row else None
    ours = vector(db)
    default = default_peer(db)
    return {**ident, "vector": ours, "devices": devices(db), "last": last,
            "last_error": error, "peers": peers(db, ours),
            "default_peer": default["device_id"] if default else None}


# --- Peers: where they are, what they hold, how the last sync went ----------------------

def record_peer(db: sqlite_utils.Database, device: str, *, vector: Mapping[str, int] | None = None,
                url: str | None = None, ok: bool | None = None, error: str | None = None,
                version: str | None = None) -> None:
    """Remember what a peer holds (``vector``), where it answers (``url``) and how the last
    sync with it went (``ok``: last success now; ``error``: the last error, in words)."""
    now = records.now_iso()
    with records.write_tx(db):
        db.execute("INSERT INTO sync_peers (device_id, vector, seen_at) VALUES (?, '{}', ?)"
                   " ON CONFLICT (device_id) DO NOTHING", [device, now])
        if vector is not None:
            db.execute("UPDATE sync_peers SET vector = ?, seen_at = ? WHERE device_id = ?",
                       [canonical_json(dict(vector)), now, device])
        if url is not None:
            db.execute("UPDATE sync_peers SET url = ? WHERE device_id = ?", [url, device])
        if version is not None:
            db.execute("UPDATE sync_peers SET version = ? WHERE device_id = ?", [version, device])
        if ok:
            db.execute("UPDATE sync_peers SET last_ok_at = ?, last_error = NULL, last_error_at = NULL"
                       " WHERE device_id = ?", [now, device])
        if error is not None:
            db.execute("UPDATE sync_peers SET last_error = ?, last_error_at = ? WHERE device_id = ?",
                       [error, now, device])


def peer_label(db: sqlite_utils.Database, device: str) -> str | None:
    """The name people know a device by (its label here), if it has one."""
    row = db.execute("SELECT label FROM sync_devices WHERE device_id = ?", [device]).fetchone()
    return row[0] if row else None


def set_default_peer(db: sqlite_utils.Database, device: str) -> None:
    with records.write_tx(db):
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('sync_default_peer', ?)", [device])


def default_peer(db: sqlite_utils.Database) -> dict | None:
    """The peer ``sync now`` uses without ``--peer``: the hub this box paired with."""
    row = db.execute("SELECT value FROM meta WHERE key = 'sync_default_peer'").fetchone()
    if row is None:
        return None
    found = db.execute("SELECT url FROM sync_peers WHERE device_id = ?", [row[0]]).fetchone()
    return {"device_id": row[0], "url": found[0] if found else None}


def peer_by_url(db: sqlite_utils.Database, url: str) -> str | None:
    row = db.execute("SELECT device_id FROM sync_peers WHERE url = ? ORDER BY seen_at DESC LIMIT 1",
                     [url]).fetchone()
    return row[0] if row else None


def ops_waiting(ours: Mapping[str, int], theirs: Mapping[str, int]) -> int:
    """How many operations this box holds that a peer at ``theirs`` lacks."""
    return sum(max(0, seq - theirs.get(origin, 0)) for origin, seq in ours.items())


def peers(db: sqlite_utils.Database, ours: Mapping[str, int] | None = None) -> list[dict]:
    """Every peer this box synced or exchanged bundles with, and what it is waiting for."""
    ours = vector(db) if ours is None else ours
    cursor = db.execute(
        "SELECT p.*, d.label, d.revoked_at FROM sync_peers p"
        " LEFT JOIN sync_devices d ON d.device_id = p.device_id ORDER BY coalesce(d.label, p.device_id)")
    names = [d[0] for d in cursor.description]
    found = []
    for row in cursor.fetchall():
        peer = dict(zip(names, row, strict=True))
        theirs = json.loads(peer.pop("vector"))
        peer["ops_waiting"] = ops_waiting(ours, theirs)
        found.append(peer)
    return found


# --- Trust learned from the hub ---------------------------------------------------------

def device_list(db: sqlite_utils.Database) -> list[dict]:
    """The devices of this box's organisation it knows, revoked ones included (what a hub
    tells the boxes that paired with it, so that they accept each other's operations)."""
    org = organisation_of(db)
    found = []
    for device_id, key, label, device_org, revoked_at in db.execute(
            "SELECT device_id, public_key, label, organisation, revoked_at FROM sync_devices"
            " ORDER BY device_id"):
        if org is None or device_org is None or device_org == org:
            found.append({"device_id": device_id, "public_key": key, "label": label,
                          "revoked_at": revoked_at})
    return found


def adopt_devices(db: sqlite_utils.Database, anchor: str, listed: Iterable[Mapping]) -> dict:
    """Take the device list of the hub this box paired with (``anchor``).

    Devices the hub vouched for mirror the hub's list (key, name, revocation); a
    device trusted here directly only takes the hub's revocation, never a new key.
    A device the hub revoked stays revoked here even before this box has seen it.
    """
    own = records.device_id(db)
    row = db.execute("SELECT organisation, anchor, revoked_at FROM sync_devices WHERE device_id = ?",
                     [anchor]).fetchone()
    if row is None or not row[1] or row[2] is not None:
        return {"added": 0, "revoked": 0, "anchor": False}  # only the hub this box paired with
    organisation = row[0]
    added = revoked = 0
    with records.write_tx(db):
        for d in listed:
            device, key = d.get("device_id"), d.get("public_key")
            revoked_at, label = d.get("revoked_at"), d.get("label")
            if (not isinstance(device, str) or not isinstance(key, str) or device in (own, anchor)
                    or not device or any(c in device for c in ". \t\n")
                    or not isinstance(revoked_at, str | None) or not isinstance(label, str | None)):
                continue
            try:
                key = KEY_PREFIX + base64.b64encode(parse_public_key(key)).decode()
            except InvalidInput:
                continue
            here = db.execute("SELECT public_key, vouched_by, revoked_at FROM sync_devices"
                              " WHERE device_id = ?", [device]).fetchone()
            if here is None:
                db.execute("INSERT INTO sync_devices (device_id, public_key, organisation, label,"
                           " paired_at, revoked_at, vouched_by) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [device, key, organisation, label, records.now_iso(), revoked_at, anchor])
                added += revoked_at is None
                revoked += revoked_at is not None
            elif here[1] == anchor:
                if here[2] is None and revoked_at is not None:
                    revoked += 1
                db.execute("UPDATE sync_devices SET public_key = ?, label = ?, revoked_at = ?"
                           " WHERE device_id = ?", [key, label, revoked_at, device])
            elif revoked_at is not None and here[2] is None:
                db.execute("UPDATE sync_devices SET revoked_at = ? WHERE device_id = ?",
                           [revoked_at, device])
                revoked += 1
        mark_devices_changed(db)  # a box's list is served to the boxes that sync with it
    return {"added": added, "revoked": revoked, "anchor": True}


def adopted_devices_version(db: sqlite_utils.Database, peer: str) -> str | None:
    row = db.execute("SELECT devices_version FROM sync_peers WHERE device_id = ?", [peer]).fetchone()
    return row[0] if row else None


def set_adopted_devices_version(db: sqlite_utils.Database, peer: str, version: str | None) -> None:
    with records.write_tx(db):
        db.execute("UPDATE sync_peers SET devices_version = ? WHERE device_id = ?", [version, peer])
