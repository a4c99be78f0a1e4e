"""Single-use request nonces, in the database: any number of server processes share them.

A nonce is issued by this server (``hello``, and one in every answer), taken
once by the request that carries it, and expires after ``ttl_s``. Taking is
one ``DELETE … WHERE nonce = ? AND expires_ms > ?``: whichever process gets
the row first wins, the other sees no row, so a replay is refused even when
two processes race for it. Expired rows are removed now and then by
:func:`issue` (the index on ``expires_ms`` keeps that cheap). Times are wall
clock milliseconds (processes do not share a monotonic clock); a wall clock
set far wrong only shortens or lengthens a nonce's ten minutes.
"""

from __future__ import annotations

import secrets
import time

import sqlite_utils
from passerelle.server import records

TTL_S = 600
_PURGE_EVERY = 64  # issues between two purges of expired rows, on average


def issue(db: sqlite_utils.Database, ttl_s: float = TTL_S, now_ms: int | None = None) -> str:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    nonce = secrets.token_urlsafe(18)
    with records.write_tx(db):
        db.execute("INSERT INTO sync_nonces (nonce, expires_ms) VALUES (?, ?)",
                   [nonce, now_ms + int(ttl_s * 1000)])
        if secrets.randbelow(_PURGE_EVERY) == 0:
            purge(db, now_ms)
    return nonce


def take(db: sqlite_utils.Database, nonce: str, now_ms: int | None = None) -> bool:
    """Use a nonce up: True once, False ever after (or when unknown or expired)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    with records.write_tx(db):
        return db.execute("DELETE FROM sync_nonces WHERE nonce = ? AND expires_ms > ?",
                          [nonce, now_ms]).rowcount == 1


def valid(db: sqlite_utils.Database, nonce: str, now_ms: int | None = None) -> bool:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return db.execute("SELECT 1 FROM sync_nonces WHERE nonce = ? AND expires_ms > ?",
                      [nonce, now_ms]).fetchone() is not None


def purge(db: sqlite_utils.Database, now_ms: int | None = None) -> int:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    with records.write_tx(db):
        return db.execute("DELETE FROM sync_nonces WHERE expires_ms <= ?", [now_ms]).rowcount
