"""Single-use request nonces that any number of server processes share.

A nonce is issued by this server (``hello``, and one in every answer), taken
once by the request that carries it, and expires after ``ttl_s``.

- **Issuing writes nothing**: a nonce is ``<expiry ms, hex>.<random>.<MAC>``,
  the MAC an HMAC-SHA256 under a secret derived from this server's device key
  (``HOME/device.key``, the same file for every process of a hub), so any
  process recognises the nonces of any other, and nobody else can make one.
- **Taking writes one row**: ``INSERT INTO sync_nonces … ON CONFLICT (nonce) DO
  NOTHING``; the request whose insert made the row wins, any replay (from any
  process, even at the same moment) finds it there and is refused. Rows are
  kept until their nonce expires, then purged now and then.
- On SQLite that insert is committed without waiting for the disk
  (``synchronous = NORMAL`` for that transaction only, still atomic in WAL
  mode): losing it in a power cut can only let a request that was already
  answered be replayed within its ten minutes, and every sync request is
  idempotent.

Times are wall clock milliseconds of the server (processes share no monotonic
clock); the caller's clock plays no part.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

import sqlite_utils
from passerelle.server import records

TTL_S = 600
DOMAIN = b"passerelle-nonce/1"
_PURGE_EVERY = 64  # takes between two purges of expired rows, on average


def secret_from_key(private_key) -> bytes:
    """The nonce MAC key, derived from the device key (every process of a server has it)."""
    from cryptography.hazmat.primitives import serialization

    raw = private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                    serialization.NoEncryption())
    return hmac.new(raw, DOMAIN, hashlib.sha256).digest()


def _mac(secret: bytes, body: str) -> str:
    digest = hmac.new(secret, body.encode(), hashlib.sha256).digest()[:15]
    return base64.urlsafe_b64encode(digest).decode()


def issue(secret: bytes, ttl_s: float = TTL_S, now_ms: int | None = None) -> str:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    body = f"{now_ms + int(ttl_s * 1000):x}.{secrets.token_urlsafe(12)}"
    return f"{body}.{_mac(secret, body)}"


def _expiry(secret: bytes, nonce: str, now_ms: int) -> int | None:
    """The nonce's expiry if this server made it and it has not expired, else None."""
    body, _, mac = nonce.rpartition(".")
    if not body or len(nonce) > 100 or not hmac.compare_digest(mac, _mac(secret, body)):
        return None
    try:
        expires = int(body.split(".", 1)[0], 16)
    except ValueError:
        return None
    return expires if expires > now_ms else None


def valid(secret: bytes, nonce: str, now_ms: int | None = None) -> bool:
    """Made here and not expired (whether it was used is only known by taking it)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return _expiry(secret, nonce, now_ms) is not None


def take(db: sqlite_utils.Database, secret: bytes, nonce: str, now_ms: int | None = None) -> bool:
    """Use a nonce up: True once, False ever after (or when not ours, or expired)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    expires = _expiry(secret, nonce, now_ms)
    if expires is None:
        return False
    conn = db.conn
    relaxed = not conn.in_transaction
    if relaxed:
        conn.execute("PRAGMA synchronous = NORMAL")
    try:
        with records.write_tx(db):
            fresh = db.execute("INSERT INTO sync_nonces (nonce, expires_ms) VALUES (?, ?)"
                               " ON CONFLICT (nonce) DO NOTHING", [nonce, expires]).rowcount == 1
            if fresh and secrets.randbelow(_PURGE_EVERY) == 0:
                db.execute("DELETE FROM sync_nonces WHERE expires_ms <= ?", [now_ms])
    finally:
        if relaxed:
            conn.execute("PRAGMA synchronous = FULL")
    return fresh


def purge(db: sqlite_utils.Database, now_ms: int | None = None) -> int:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    with records.write_tx(db):
        return db.execute("DELETE FROM sync_nonces WHERE expires_ms <= ?", [now_ms]).rowcount
