"""The coordinator's sync page: this box, its peers (the boxes of a hub), pairing, "Sync now".

Everything here is a thin form over :mod:`passerelle.server.sync` and
:mod:`passerelle.server.sync.client`; a sync itself never runs inside a
request (it can take minutes on a first sync): "Sync now" wakes the background
sync and the page refreshes itself while it runs.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _
from passerelle.kiosk import bp
from passerelle.kiosk.manage import sites as sites_page
from passerelle.server import records
from passerelle.server import sync as syncmod
from passerelle.server.db import get_db
from passerelle.server.errors import PasserelleError
from passerelle.server.people import accounts
from passerelle.server.sync import client as sync_client
from passerelle.server.sync import discovery
from passerelle.server.sync import schedule as sync_schedule
from passerelle.server.web.auth import ANYONE, allow
from passerelle.server.web.security import body_limit
from werkzeug.datastructures import MultiDict


def _when(iso: str | None) -> str | None:
    if not iso:
        return None
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_datetime(moment, format="medium")


def _context(**extra) -> dict:
    db = get_db()
    home = current_app.config["HOME"]
    settings = current_app.config["SETTINGS"]
    status = syncmod.status(db, home)
    own = records.device_id(db)
    peers = []
    for peer in status["peers"]:
        if peer["device_id"] == own:
            continue
        peers.append({**peer, "name": peer.get("label") or peer["device_id"][:12],
                      "last_ok": _when(peer.get("last_ok_at")),
                      "seen": _when(peer.get("seen_at")),
                      "error_at": _when(peer.get("last_error_at")),
                      "revoked": _when(peer.get("revoked_at"))})
    schedule = sync_schedule.scheduler(current_app).state
    next_at = (datetime.fromtimestamp(schedule.next_at, UTC).isoformat()
               if schedule.next_at else None)
    return {"org": accounts.organisation(db), "status": status, "peers": peers,
            "hub_mode": settings["hub_mode"], "interval": settings["sync_interval_minutes"],
            "running": schedule.running, "next_at": _when(next_at),
            "encrypt_bundles": syncmod.bundles_encrypted(db),
            "has_peer_url": any(p.get("url") and not p.get("revoked_at") for p in peers),
            **sites_page.context(db), **extra}


@bp.get("/manage/sync")
@allow("coordinator")
def manage_sync():
    found = None
    if request.args.get("look"):
        settings = current_app.config["SETTINGS"]
        own = records.device_id(get_db())
        org = syncmod.organisation_of(get_db())
        found = [dict(p.as_dict(), same_org=(not org or p.organisation == org))
                 for p in discovery.browse(timeout=2.0, host=settings["host"])
                 if p.device_id != own]
    return render_template("manage/sync.html", **_context(found=found))


@bp.post("/manage/sync/now")
@allow("coordinator")
def manage_sync_now():
    sync_schedule.sync_soon(current_app)
    flash(_("Sync started. This page shows the result when it is done."))
    return redirect(url_for("kiosk.manage_sync"))


@bp.post("/manage/sync/code")
@allow("coordinator")
def manage_sync_code():
    try:
        code = syncmod.make_pairing_code(get_db(), current_app.config["HOME"])
    except PasserelleError as exc:
        flash(str(exc.message))
        return redirect(url_for("kiosk.manage_sync"))
    expires = datetime.fromtimestamp(code["expires_ms"] / 1000, UTC)
    return render_template("manage/sync.html",
                           **_context(code=code["code"], code_until=format_datetime(expires, "short"),
                                      code_minutes=code["minutes"]))


@bp.post("/manage/sync/pair")
@allow("coordinator")
def manage_sync_pair():
    url, code = request.form.get("url", "").strip(), request.form.get("code", "")
    try:
        done = sync_client.pair(get_db(), current_app.config["HOME"], url, code)
    except PasserelleError as exc:
        return render_template("manage/sync.html", **_context(
            pair_error=str(exc.message), pair_url=url)), (
            exc.status if 400 <= exc.status < 500 else 400)  # a form's answer, not a gateway's
    flash(_("Paired with %(name)s. The first sync starts now.", name=done["label"] or done["url"]))
    sync_schedule.sync_soon(current_app)
    return redirect(url_for("kiosk.manage_sync"))


@bp.post("/manage/sync/bundles")
@allow("coordinator")
def manage_sync_bundles():
    on = request.form.get("encrypt") == "1"
    syncmod.set_bundles_encrypted(get_db(), on)
    flash(_("USB bundles will be encrypted: a passphrase is asked when they are written and read.")
          if on else _("USB bundles will be signed but not encrypted."))
    return redirect(url_for("kiosk.manage_sync"))


@bp.post("/manage/sync/bundle/export")
@allow("coordinator")
def manage_sync_bundle_export():
    """A sync bundle to download, to carry to the hub or another box on a USB stick."""
    import uuid

    from flask import send_file

    db = get_db()
    home = current_app.config["HOME"]
    work = home.ensure().tmp / "bundles"
    work.mkdir(parents=True, exist_ok=True)
    target = work / f"{uuid.uuid4().hex}.bundle"
    try:
        info = syncmod.export_bundle(db, home, target,
                                     passphrase=request.form.get("passphrase") or None)
    except PasserelleError as exc:
        flash(str(exc.message))
        return redirect(url_for("kiosk.manage_sync") + "#usb-title")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    response = send_file(info.path, mimetype="application/octet-stream", as_attachment=True,
                         download_name=f"passerelle-{records.device_id(db)[:8]}-{stamp}.bundle")
    response.headers["Cache-Control"] = "no-store"
    response.call_on_close(lambda: info.path.unlink(missing_ok=True))
    return response


@bp.post("/manage/sync/bundle/import")
@allow("coordinator")
@body_limit("max_upload_mb")
def manage_sync_bundle_import():
    """Apply a sync bundle brought on a USB stick (checked completely before anything)."""
    import uuid

    upload = request.files.get("bundle")
    if upload is None or not upload.filename:
        flash(_("Choose a sync bundle file first."))
        return redirect(url_for("kiosk.manage_sync") + "#usb-title")
    work = current_app.config["HOME"].ensure().tmp / "bundles"
    work.mkdir(parents=True, exist_ok=True)
    target = work / f"{uuid.uuid4().hex}.bundle"
    upload.save(target)
    try:
        result = syncmod.import_bundle(get_db(), target,
                                       passphrase=request.form.get("passphrase") or None)
    except PasserelleError as exc:
        flash(_("The bundle was refused, nothing was applied: %(problem)s",
                problem=str(exc.message)))
    else:
        flash(_("The bundle was applied: %(count)s new changes.", count=result.applied))
    finally:
        target.unlink(missing_ok=True)
    return redirect(url_for("kiosk.manage_sync") + "#usb-title")


@bp.post("/manage/sync/revoke/<device_id>")
@allow("coordinator")
def manage_sync_revoke(device_id: str):
    try:
        syncmod.revoke(get_db(), device_id)
    except PasserelleError as exc:
        flash(str(exc.message))
    else:
        flash(_("That box is revoked: its next sync will be refused. What it sent before is kept."))
    return redirect(url_for("kiosk.manage_sync"))


# --- A new box joins its organisation's hub instead of being set up by hand ---------------

def _setup_page(**extra):
    return render_template("setup.html", errors={}, form=MultiDict(), modes=accounts.SIGNIN_MODES,
                           fields=accounts.PROFILE_FIELDS, **extra)


@bp.post("/setup/join")
@allow(ANYONE)
def setup_join():
    """Pair a box that is not set up with a hub; its first sync brings the organisation.

    Open to anyone exactly as long as /setup is (whoever first reaches a new box
    sets it up); once the box belongs to an organisation this answers with the home page.
    """
    db = get_db()
    if not accounts.needs_setup(db):
        return redirect(url_for("kiosk.home"))
    url, code = request.form.get("url", "").strip(), request.form.get("code", "")
    try:
        sync_client.pair(db, current_app.config["HOME"], url, code)
    except PasserelleError as exc:
        status = exc.status if 400 <= exc.status < 500 else 400
        return _setup_page(join_error=str(exc.message), join_url=url), status
    sync_schedule.sync_soon(current_app)
    return redirect(url_for("kiosk.setup_joining"))


@bp.get("/setup/joining")
@allow(ANYONE)
def setup_joining():
    db = get_db()
    if not accounts.needs_setup(db):
        org = accounts.organisation(db) or {}
        flash(_("This box has joined %(name)s. Sign in with the account you use on the hub.",
                name=org.get("name", "")))
        return redirect(url_for("kiosk.signin_staff"))
    if syncmod.default_peer(db) is None:
        return redirect(url_for("kiosk.setup"))
    state = sync_schedule.scheduler(current_app).state
    failed = state.last_error if not state.running else None
    return render_template("setup_joining.html", failed=failed)


@bp.post("/setup/joining")
@allow(ANYONE)
def setup_join_retry():
    if accounts.needs_setup(get_db()):
        sync_schedule.sync_soon(current_app)
    return redirect(url_for("kiosk.setup_joining"))
