"""Pairing codes: a box joins a hub's organisation with a short code read aloud; both sides
prove they know it (scrypt + HMAC over a transcript of both keys) before trusting each other."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime

import sqlite_utils
from passerelle.server import dialect, records
from passerelle.server.errors import InvalidInput
from passerelle.server.people import accounts
from passerelle.server.sync.keys import (
    device_key,
    organisation_of,
    public_key_text,
    trust,
)
from passerelle.server.sync.ops import SyncRefused, canonical_json

# --- Pairing codes ----------------------------------------------------------------------

PAIR_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read aloud, typed without doubt
PAIR_CODE_LENGTH = 10                               # 31^10 ≈ 2^49.5 codes
PAIR_MINUTES = 10
PAIR_MAX_FAILURES = 5                               # wrong tries before every open code is burnt
PAIR_SCRYPT = {"n": 2**14, "r": 8, "p": 1}          # 16 MiB, ~50 ms: makes guessing offline costly
PAIR_DOMAIN = "passerelle-pair/1"


class PairingRefused(SyncRefused):
    """A pairing attempt with a wrong, expired or used code (nothing was recorded)."""

    code = "pairing_refused"
    status = 403


class OtherOrganisation(SyncRefused):
    """A box of another organisation (a hub serves one organisation)."""

    code = "other_organisation"
    status = 409


def format_code(raw: str) -> str:
    return f"{raw[:5]}-{raw[5:]}"


def normalise_code(text: str) -> str:
    """What a person typed → the code's 10 symbols (case, spaces and dashes do not matter)."""
    cleaned = "".join(c for c in str(text).upper() if c not in " -_.\t")
    if len(cleaned) != PAIR_CODE_LENGTH or any(c not in PAIR_ALPHABET for c in cleaned):
        raise InvalidInput("a pairing code is 10 letters and digits like K7QMX-W3P2D (never 0, 1, "
                           "I, L or O); the hub's coordinator makes one with `passerelle sync code`")
    return cleaned


def pairing_key(code: str, hub_device: str) -> bytes:
    """The secret both sides derive from the code (slow on purpose), salted by the hub's id."""
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=(PAIR_DOMAIN + ":" + hub_device).encode(), length=32,
                  n=PAIR_SCRYPT["n"], r=PAIR_SCRYPT["r"], p=PAIR_SCRYPT["p"]).derive(
        normalise_code(code).encode())


def pair_transcript(hub_device: str, hub_key: str, box_device: str, box_key: str,
                    label: str | None, organisation: str | None, nonce: str) -> bytes:
    """What both MACs cover: both device ids and public keys, so no key can be swapped."""
    return canonical_json([PAIR_DOMAIN, hub_device, hub_key, box_device, box_key, label,
                           organisation, nonce]).encode()


def pair_mac(key: bytes, role: str, transcript: bytes, extra: str = "") -> str:
    import hmac

    return hmac.new(key, role.encode() + b"\n" + transcript + b"\n" + extra.encode(),
                    hashlib.sha256).hexdigest()


def make_pairing_code(db: sqlite_utils.Database, home, *, minutes: int = PAIR_MINUTES,
                      now_ms: int | None = None) -> dict:
    """A one-time code a box uses to pair with this hub (valid ``minutes``, stored hashed).

    The coordinator's page calls this too. Only the scrypt key derived from the code
    is kept, and only for a day; a code is burnt by its first use or by
    ``PAIR_MAX_FAILURES`` wrong attempts.
    """
    if organisation_of(db) is None:
        raise InvalidInput("this box is not set up yet: set it up first (boxes that pair with it "
                           "join its organisation)")
    device_key(db, home)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    raw = "".join(secrets.choice(PAIR_ALPHABET) for _ in range(PAIR_CODE_LENGTH))
    key = pairing_key(raw, records.device_id(db))
    expires_ms = now_ms + minutes * 60_000
    with records.write_tx(db):
        db.execute("DELETE FROM sync_pair_codes WHERE expires_ms < ?", [now_ms - 24 * 3600 * 1000])
        db.execute("INSERT INTO sync_pair_codes (key, created_at, expires_ms) VALUES (?, ?, ?)",
                   [key, records.now_iso(), expires_ms])
    expires = datetime.fromtimestamp(expires_ms / 1000, UTC)
    return {"code": format_code(raw), "expires_ms": expires_ms,
            "expires_at": expires.isoformat(timespec="seconds"), "minutes": minutes}


def accept_pairing(db: sqlite_utils.Database, home, request: Mapping, nonce: str, *,
                   hub_label: str | None = None, now_ms: int | None = None) -> dict:
    """The hub's half of pairing: check the box's MAC, trust the box, answer with ours.

    ``request`` holds the box's ``device_id``, ``public_key``, ``label``,
    ``organisation`` (None for a box not set up yet, which joins this hub's) and
    ``mac``; ``nonce`` is the single-use nonce it was made over.
    """
    box_device, box_key = request.get("device_id"), request.get("public_key")
    label, box_org, mac = request.get("label"), request.get("organisation"), request.get("mac")
    if not (isinstance(box_device, str) and isinstance(box_key, str) and isinstance(mac, str)
            and isinstance(label, str | None) and isinstance(box_org, str | None)):
        raise InvalidInput("a pairing request needs device_id, public_key, label, organisation "
                           "and mac")
    if label is not None:
        label = label.strip()[:80] or None
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    hub_device = records.device_id(db)
    hub_key = public_key_text(device_key(db, home).public_key())
    org = organisation_of(db)
    if org is None:
        raise InvalidInput("this hub is not set up yet; set it up before pairing boxes with it")
    transcript = pair_transcript(hub_device, hub_key, box_device, box_key, label, box_org, nonce)
    import hmac

    refusal: SyncRefused | None = None
    with records.write_tx(db):
        # Locked until the commit (PostgreSQL; SQLite has one writer): ten boxes using one code
        # at once wait here in turn, and all but the first find it used.
        rows = db.execute("SELECT key, expires_ms, used_at, used_by FROM sync_pair_codes"
                          + dialect.of(db).for_update).fetchall()
        match = next((r for r in rows if hmac.compare_digest(
            pair_mac(bytes(r[0]), "box", transcript), mac)), None)
        if match is None:
            # A wrong code cannot be told apart from a guess at any open code: each counts
            # against all of them, so a few wrong tries burn them.
            db.execute("UPDATE sync_pair_codes SET failures = failures + 1"
                       " WHERE used_at IS NULL AND expires_ms >= ?", [now_ms])
            db.execute("DELETE FROM sync_pair_codes WHERE used_at IS NULL AND failures >= ?",
                       [PAIR_MAX_FAILURES])
            refusal = PairingRefused(
                "the pairing code is wrong (or was made on another hub); check it, or ask the "
                "hub's coordinator for a new one (`passerelle sync code`); after a few wrong tries "
                "a code no longer works")
        elif match[2] is not None:
            refusal = PairingRefused(f"this pairing code was already used (at {match[2][:16]}); "
                                     "ask the hub's coordinator for a new one")
        elif match[1] < now_ms:
            refusal = PairingRefused("this pairing code has expired (codes last "
                                     f"{PAIR_MINUTES} minutes); ask the hub's coordinator for a "
                                     "new one")
        elif box_org is not None and box_org != org:
            refusal = OtherOrganisation(
                f"this box belongs to another organisation ({box_org}) than the hub "
                f"({organisation_name(db)}, {org}); a hub serves one organisation, so this box "
                "cannot sync with it")
        elif box_device == hub_device:
            refusal = PairingRefused("a box cannot pair with itself")
        else:
            db.execute("UPDATE sync_pair_codes SET used_at = ?, used_by = ? WHERE key = ?",
                       [records.now_iso(), box_device, match[0]])
            trust(db, box_device, box_key, label=label, organisation=org)
    if refusal is not None:
        raise refusal
    reply = {"device_id": hub_device, "public_key": hub_key, "label": hub_label,
             "organisation": {"uuid": org, "name": organisation_name(db)}}
    reply["mac"] = pair_mac(bytes(match[0]), "hub", transcript, canonical_json(reply))
    return reply


def organisation_name(db: sqlite_utils.Database) -> str | None:
    org = accounts.organisation(db)
    return org["name"] if org else None
