"""Sites on the coordinator's sync page: make a site, put each box in one.

A box receives its own site's learners and classes and what is organisation-wide
(see docs/sync.md, "Sites"); the hub holds everything. Thin forms over
:mod:`passerelle.server.people.sites` and :mod:`passerelle.server.sync`.
"""

from __future__ import annotations

from flask import flash, redirect, request, url_for
from flask_babel import gettext as _
from passerelle.kiosk import bp
from passerelle.server import sync as syncmod
from passerelle.server.db import get_db
from passerelle.server.errors import PasserelleError
from passerelle.server.people import sites
from passerelle.server.web.auth import allow


def context(db) -> dict:
    """What the sync page shows of sites: each with its learners, and each device's site."""
    counts = sites.counts(db)
    return {"sites": [{**s, "learners": counts.get(s["uuid"], 0)} for s in sites.list_sites(db)],
            "device_sites": {d["device_id"]: d.get("site") for d in syncmod.devices(db)},
            "this_site": sites.this_site(db)}


@bp.post("/manage/sync/sites")
@allow("coordinator")
def manage_sites_add():
    try:
        sites.create_site(get_db(), request.form.get("name", ""))
    except PasserelleError as exc:
        flash(str(exc.message))
    else:
        flash(_("The site is made: put its boxes in it below."))
    return redirect(url_for("kiosk.manage_sync") + "#sites-title")


@bp.post("/manage/sync/sites/assign/<device_id>")
@allow("coordinator")
def manage_sites_assign(device_id: str):
    db = get_db()
    site = request.form.get("site") or None
    try:
        if site is not None:
            sites.get_site(db, site)
        syncmod.assign_site(db, device_id, site)
    except PasserelleError as exc:
        flash(str(exc.message))
    else:
        flash(_("Saved: at its next sync the box receives its site's learners."))
    return redirect(url_for("kiosk.manage_sync") + "#sites-title")
