"""Drop-in use: what visitors who do not sign in ("just look around") look at, and for how long.

Design
------
- **Nobody is named, nothing links two days.** A visitor is a random id made on their first page
  of the day and kept in the browser's session (the cookie the box sets anyway); on the next day,
  or once someone signs in on that browser, it is gone and a new one is made. No name, profile,
  address or device fingerprint is kept with it.
- **Counted, not replayed.** Each page view is one small ``guest`` event in the operation log
  (``records.event``) — not a learning event: guests have no progress, mastery or certificate, and
  their views must never count as "people reached". A trigger (migration ``m0023_guest_days``)
  adds the views up per UTC day, visitor and pack in ``guest_days``; the events travel by sync
  like every other operation, so the hub's report adds up every box's drop-in use.
- **Time without a script**: a page's time is the gap until the visitor's next page (so it works
  without JavaScript), at most :data:`MAX_PAGE_SECONDS`; a longer gap means the visitor left, and
  counts nothing. The last page of a visit counts no time: the figure is a lower bound.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from passerelle.server import records

MAX_PAGE_SECONDS = 30 * 60   # the trigger clamps to the same (m0023_guest_days)
MAX_ID_CHARS = 200           # pack and node ids, as the learning events bound them


def _visit_ok(visit) -> bool:
    return (isinstance(visit, dict) and isinstance(visit.get("id"), str)
            and isinstance(visit.get("day"), str) and isinstance(visit.get("at"), (int, float)))


def view(db, visit: dict | None, pack_id: str = "", node_id: str = "",
         now: float | None = None) -> dict:
    """Record one page view of a visitor; the visit to keep in their session for the next one.

    ``pack_id`` is "" for pages of no pack (the home page, a search)."""
    now = time.time() if now is None else now
    day = datetime.fromtimestamp(now, UTC).date().isoformat()
    if not _visit_ok(visit) or visit["day"] != day:
        visit = {"id": "guest-" + secrets.token_hex(16), "day": day, "at": 0, "pack": ""}
    payload = {"day": day, "pack_id": str(pack_id)[:MAX_ID_CHARS],
               "node_id": str(node_id)[:MAX_ID_CHARS]}
    gap = now - visit["at"]
    if visit["at"] and 0 < gap <= MAX_PAGE_SECONDS:
        payload["seconds"] = int(gap)
        payload["seconds_pack_id"] = str(visit.get("pack") or "")[:MAX_ID_CHARS]
    records.event(db, visit["id"], payload, entity="guest")
    return {"id": visit["id"], "day": day, "at": int(now), "pack": payload["pack_id"]}


@dataclass
class GuestPack:
    pack_id: str
    visits: int = 0
    views: int = 0
    seconds: int = 0


@dataclass
class GuestUse:
    """Drop-in use over a range of days. A *visit* is one visitor on one day."""

    visits: int = 0
    views: int = 0
    seconds: int = 0
    packs: list[GuestPack] = field(default_factory=list)


def use(db, first: date, last: date) -> GuestUse:
    """Visits, page views and time of visitors from ``first`` to ``last`` (UTC days, included)."""
    out = GuestUse()
    span = [first.isoformat(), last.isoformat()]
    row = db.execute("SELECT count(DISTINCT day || ' ' || guest), coalesce(sum(views), 0),"
                     " coalesce(sum(seconds), 0) FROM guest_days WHERE day BETWEEN ? AND ?",
                     span).fetchone()
    out.visits, out.views, out.seconds = row
    for pack_id, visits, views, seconds in db.execute(
            "SELECT pack_id, count(DISTINCT day || ' ' || guest), sum(views), sum(seconds)"
            " FROM guest_days WHERE day BETWEEN ? AND ? AND pack_id != '' GROUP BY pack_id",
            span):
        if views:  # a pack only credited with time, never viewed in the range, is left out
            out.packs.append(GuestPack(pack_id, visits, views, seconds))
    out.packs.sort(key=lambda p: (-p.visits, p.pack_id))
    return out
