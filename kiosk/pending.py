"""Learners' events the box could not store because its disk is full: kept by the tablet.

A page that records something as it is shown (opening a resource or an
exercise, the last page of a document) or posted (an exercise answer) must not
lose it, nor fail, because the data home's disk is full. The events are handed
to the page instead (``data-pending`` on the element carrying ``data-learner``),
and the page's ``progress.js`` puts them in the tablet's queue with the events
it made itself, sending them all to ``/api/v1/progress`` once the box has room
again. Each event keeps the id it would have been recorded under, so the box
counts it once whichever way it arrives (the queue, or the learner pressing
"Check" again on the same question).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import current_app, g
from passerelle.kiosk import bp
from passerelle.server.learning import progress


def keep(events: list[dict]) -> None:
    """Hand ``events`` to the page being made, for the tablet's queue.

    Without the box's ``occurred_at``: the page stamps them with the tablet's clock as it
    queues them (a moment later), as the box reads every queued event's time.
    """
    current_app.logger.warning("disk full: %d event(s) left to the tablet", len(events))
    g.setdefault("pending_events", []).extend(
        {k: v for k, v in e.items() if k != "occurred_at"} for e in events)


@contextmanager
def kept_if_full() -> Iterator[None]:
    """Around a write of learners' events made while showing a page: on a full disk the
    page is shown all the same, and the events go to the tablet."""
    try:
        yield
    except progress.EventsNotStored as exc:
        keep(exc.events)


@bp.app_context_processor
def pending_context() -> dict:
    return {"pending_events": g.get("pending_events", [])}
