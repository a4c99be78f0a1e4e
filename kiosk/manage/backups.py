"""The coordinator's backups page: download one now, restore one (after a confirmation),
and the nightly backup on a USB stick."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

from flask import (
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from passerelle.kiosk import bp
from passerelle.kiosk.manage.classes import confirm_page
from passerelle.server import backups
from passerelle.server.db import get_db
from passerelle.server.errors import PasserelleError
from passerelle.server.web.auth import allow, sign_out
from passerelle.server.web.security import body_limit

_UPLOAD = re.compile(r"[0-9a-f]{32}")


def _uploads():
    folder = current_app.config["HOME"].tmp / "restore"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@bp.get("/manage/backups")
@allow("coordinator")
def manage_backups():
    db = get_db()
    last = backups.last_usb_backup(db)
    return render_template("manage/backups.html", nightly=backups.nightly_enabled(db),
                           sticks=backups.usb_sticks(current_app.config["SETTINGS"]["usb_roots"]),
                           last=datetime.fromtimestamp(last, UTC) if last else None)


@bp.get("/manage/backups/download")
@allow("coordinator")
def manage_backup_download():
    """A backup made now, as a file to keep somewhere else than the box."""
    home = current_app.config["HOME"]
    target = home.ensure().tmp / f"backup-{uuid.uuid4().hex}.db"
    from passerelle.server import db as dbmod

    dbmod.backup(home.db_path, target)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    response = send_file(target, mimetype="application/vnd.sqlite3", as_attachment=True,
                         download_name=f"passerelle-backup-{stamp}.db")
    response.headers["Cache-Control"] = "no-store"
    response.call_on_close(lambda: target.unlink(missing_ok=True))
    return response


@bp.post("/manage/backups/usb")
@allow("coordinator")
def manage_backup_usb():
    try:
        written = backups.backup_to_usb(get_db(), current_app.config["HOME"],
                                        current_app.config["SETTINGS"]["usb_roots"])
    except (OSError, PasserelleError) as exc:
        flash(_("The backup could not be written on the USB stick: %(problem)s", problem=str(exc)))
    else:
        if written is None:
            flash(_("No USB stick was found. Plug one in, wait a few seconds and try again."))
        else:
            flash(_("A backup was written on the USB stick: %(name)s", name=written.name))
    return redirect(url_for("kiosk.manage_backups"))


@bp.post("/manage/backups/nightly")
@allow("coordinator")
def manage_backup_nightly():
    on = request.form.get("nightly") == "1"
    backups.set_nightly(get_db(), on)
    flash(_("Every night, a backup is written on the USB stick when one is plugged in.") if on
          else _("The nightly backup on a USB stick is off."))
    return redirect(url_for("kiosk.manage_backups"))


@bp.post("/manage/backups/restore")
@allow("coordinator")
@body_limit("max_upload_mb")
def manage_backup_restore():
    """Step 1: the file is checked and kept aside; the next page says what a restore does."""
    from passerelle.server import db as dbmod

    upload = request.files.get("backup")
    if upload is None or not upload.filename:
        flash(_("Choose a backup file (.db) first."))
        return redirect(url_for("kiosk.manage_backups"))
    token = uuid.uuid4().hex
    target = _uploads() / f"{token}.db"
    upload.save(target)
    try:
        dbmod.validate_backup(target)
    except PasserelleError as exc:
        target.unlink(missing_ok=True)
        flash(_("This file cannot be restored: %(problem)s", problem=str(exc.message)))
        return redirect(url_for("kiosk.manage_backups"))
    return redirect(url_for("kiosk.manage_backup_restore_confirm", token=token))


@bp.route("/manage/backups/restore/<token>", methods=["GET", "POST"])
@allow("coordinator")
def manage_backup_restore_confirm(token: str):
    """Step 2: a confirmation page of its own, then the restore."""
    source = _uploads() / f"{token}.db"
    if not _UPLOAD.fullmatch(token) or not source.is_file():
        flash(_("That backup file is no longer here; upload it again."))
        return redirect(url_for("kiosk.manage_backups"))
    if request.method == "GET":
        return confirm_page(
            _("Restore this backup?"),
            [_("Everything on this box goes back to the moment of the backup: people, classes, "
               "sessions, attendance and progress recorded since then are replaced."),
             _("Everyone is signed out, you too.")],
            _("Yes, restore the backup"), url_for("kiosk.manage_backups"),
            _("A copy of the data as it is now is kept in the box's backups folder first."))
    try:
        backups.restore_upload(current_app.config["HOME"], source)
    except PasserelleError as exc:
        flash(_("This file cannot be restored: %(problem)s", problem=str(exc.message)))
        return redirect(url_for("kiosk.manage_backups"))
    finally:
        source.unlink(missing_ok=True)
    sign_out()
    flash(_("The backup was restored. Please sign in again."))
    return redirect(url_for("kiosk.signin_staff"))
