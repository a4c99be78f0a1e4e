"""Device keys and trust: each box's Ed25519 key, the devices it trusts or has revoked.

An operation is applied only when signed by its origin's trusted key; the key file lives
in the data home, never in the database, so a backup restored elsewhere cannot sign as this box.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import sqlite_utils
from passerelle.content import signing
from passerelle.server import records
from passerelle.server.errors import InvalidInput, NotFound
from passerelle.server.people import accounts

KEY_FILE = "device.key"
KEY_PREFIX = signing.PREFIX


# --- Device keys ------------------------------------------------------------------------

def _home_root(home) -> Path:
    """A :class:`~.home.Home` or a plain path to the data home."""
    return home if isinstance(home, Path) else Path(home.root) if hasattr(home, "ensure") else Path(home)


def device_key(db: sqlite_utils.Database, home):
    """This box's Ed25519 private key, made on first use in ``HOME/device.key`` (mode 0600).

    The key never enters the database, so a backup never carries it. Its public
    half is kept in ``meta.device_public_key`` for ``sync identity`` and status.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = _home_root(home) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        raise InvalidInput(f"{path} is not an Ed25519 private key; move it aside to make a new "
                           "one (other boxes must then trust the new public key)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"{path} is not an Ed25519 private key")
    public = public_key_text(key.public_key())
    row = db.execute("SELECT value FROM meta WHERE key = 'device_public_key'").fetchone()
    if row is None or row[0] != public:
        with records.write_tx(db):
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('device_public_key', ?)",
                       [public])
    return key


def public_key_text(public_key) -> str:
    # Same text form as publishers' keys (content.signing): one format for every key.
    return signing.public_key_text(public_key)


def parse_public_key(text: str) -> bytes:
    """``ed25519:<base64>`` (or bare base64) → the 32 raw bytes."""
    try:
        return signing.parse_public_key(text)
    except signing.SignatureError as exc:
        raise InvalidInput(f"not a public key: {exc}") from None


def organisation_of(db: sqlite_utils.Database) -> str | None:
    """The uuid of the organisation this box belongs to (None on a box not yet set up)."""
    org = accounts.organisation(db)
    return org["uuid"] if org else None


def bundles_encrypted(db: sqlite_utils.Database) -> bool:
    """Whether the organisation asks that USB bundles be encrypted (its record says so)."""
    return bool((accounts.organisation(db) or {}).get("encrypt_bundles"))


def set_bundles_encrypted(db: sqlite_utils.Database, on: bool) -> None:
    """Record the organisation's choice as an operation, so that every box follows it."""
    accounts.update_organisation(db, encrypt_bundles=1 if on else 0)


def identity(db: sqlite_utils.Database, home) -> dict:
    key = device_key(db, home)
    return {"device_id": records.device_id(db), "public_key": public_key_text(key.public_key()),
            "organisation": organisation_of(db)}


# --- Trust ------------------------------------------------------------------------------



def trust(db: sqlite_utils.Database, device_id: str, public_key: str, *, label: str | None = None,
          organisation: str | None = None, anchor: bool = False) -> dict:
    """Accept a device's operations from now on (by hand, or by pairing with a code).

    Trusting a device here makes it a direct trust (no longer only vouched for by a hub).
    ``anchor``: this box also takes the list of devices that device sends (the hub this
    box paired with); an existing anchor stays one.
    """
    device_id = device_id.strip()
    if not device_id or any(c in device_id for c in ". \t\n"):
        raise InvalidInput(f"not a device id: {device_id!r}")
    if device_id == records.device_id(db):
        raise InvalidInput("this is this box's own device id; a box always trusts itself")
    text = KEY_PREFIX + base64.b64encode(parse_public_key(public_key)).decode()
    organisation = organisation or organisation_of(db)
    with records.write_tx(db):
        db.execute(
            "INSERT INTO sync_devices (device_id, public_key, organisation, label, paired_at, anchor)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device_id) DO UPDATE SET"
            " public_key = excluded.public_key, organisation = excluded.organisation,"
            " label = coalesce(excluded.label, label), paired_at = excluded.paired_at,"
            " revoked_at = NULL, vouched_by = NULL, anchor = max(anchor, excluded.anchor)",
            [device_id, text, organisation, label, records.now_iso(), 1 if anchor else 0])
        mark_devices_changed(db)
    return {"device_id": device_id, "public_key": text, "organisation": organisation}


def mark_devices_changed(db: sqlite_utils.Database) -> None:
    """Give the device list a new version (call in the transaction that changed it): a hub
    sends its list to a box only when the version the box holds is not this one."""
    import secrets

    db.execute("INSERT INTO meta (key, value) VALUES ('devices_version', ?)"
               " ON CONFLICT (key) DO UPDATE SET value = excluded.value", [secrets.token_hex(10)])


def devices_version(db: sqlite_utils.Database) -> str:
    """The version of this box's device list (one read, whatever the number of devices)."""
    row = db.execute("SELECT value FROM meta WHERE key = 'devices_version'").fetchone()
    if row is None:
        with records.write_tx(db):
            mark_devices_changed(db)
        return devices_version(db)
    return row[0]


def revoke(db: sqlite_utils.Database, device_id: str) -> dict:
    """Refuse the device's bundles and new operations; those already applied stay."""
    with records.write_tx(db):
        found = db.execute("SELECT revoked_at FROM sync_devices WHERE device_id = ?",
                           [device_id]).fetchone()
        if found is None:
            raise NotFound(f"device {device_id} is not in this box's trusted devices "
                           "(see `passerelle sync status`)")
        if found[0] is None:
            db.execute("UPDATE sync_devices SET revoked_at = ? WHERE device_id = ?",
                       [records.now_iso(), device_id])
            mark_devices_changed(db)
    held = db.execute("SELECT coalesce(max(seq), 0) FROM ops WHERE origin = ?", [device_id]).fetchone()[0]
    return {"device_id": device_id, "ops_kept": held}


def devices(db: sqlite_utils.Database) -> list[dict]:
    cursor = db.execute("SELECT * FROM sync_devices ORDER BY coalesce(label, device_id)")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def trusted_keys(db: sqlite_utils.Database) -> dict[str, bytes]:
    """device id → raw public key of every device whose ops this box accepts, itself included.

    Devices paired for another organisation than this box's are left out: a box
    receives only its own organisation's data.
    """
    org = organisation_of(db)
    keys = {}
    for device_id, key, device_org in db.execute(
            "SELECT device_id, public_key, organisation FROM sync_devices WHERE revoked_at IS NULL"):
        if org is None or device_org is None or device_org == org:
            keys[device_id] = parse_public_key(key)
    own = db.execute("SELECT value FROM meta WHERE key = 'device_public_key'").fetchone()
    if own is not None:
        keys[records.device_id(db)] = parse_public_key(own[0])
    return keys


def revoked_devices(db: sqlite_utils.Database) -> dict[str, str]:
    return dict(db.execute("SELECT device_id, revoked_at FROM sync_devices"
                           " WHERE revoked_at IS NOT NULL").fetchall())
