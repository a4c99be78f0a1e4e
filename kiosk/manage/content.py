"""Coordinators' content pages: installed packs, uploads, Kolibri channels, removal to the bin
and back, the bundled library and export."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from passerelle.kiosk import bp
from passerelle.kiosk.manage.common import (
    confirm_page,
)
from passerelle.server.db import get_db
from passerelle.server.i18n import ltr
from passerelle.server.packs import catalogue
from passerelle.server.search import service as search
from passerelle.server.web.auth import (
    allow,
    current_user,
)
from passerelle.server.web.security import body_limit


@bp.get("/manage/content")
@allow("coordinator")
def manage_content():
    from passerelle.server.packs import imports as content_admin
    from passerelle.server.packs.web import library

    settings = current_app.config["SETTINGS"]
    jobs = content_admin.runner()
    home = current_app.config["HOME"]
    content_admin.sweep_lan_databases(jobs, library())  # channel databases fetched and left unused
    packs = library().list()
    installed = {p.id for p in packs}
    drives, channels = content_admin.scan_drives(settings["usb_roots"])
    text = search.service().text
    text_jobs = text.statuses() if text is not None else {}
    return render_template("manage/content.html", packs=packs, text_jobs=text_jobs,
                           text_busy=any(j.state == "queued" for j in text_jobs.values()),
                           binned=content_admin.binned_packs(home, installed),
                           bundled_missing=len(content_admin.bundled_folders()) > 0 and any(
                               f.name not in installed for f in content_admin.bundled_folders()),
                           drives=drives, kolibri=channels,
                           kolibri_installed=content_admin.installed_kolibri_versions(library()),
                           jobs=[j.as_dict() for j in jobs.recent()], busy=jobs.busy(),
                           lan_fetches=jobs.tasks_of(current_user()["uuid"]),
                           max_upload_mb=settings["max_upload_mb"])


@bp.post("/manage/content/upload")
@allow("coordinator")
@body_limit("max_upload_mb")
def manage_content_upload():
    import uuid

    from passerelle.server.packs import imports as content_admin

    upload = request.files.get("pack")
    if upload is None or not upload.filename:
        flash(_("Choose a pack file (.zip) first."))
        return redirect(url_for("kiosk.manage_content"))
    folder = current_app.config["HOME"].tmp / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    # Never the name the browser sent: a random one, in the box's own folder.
    target = folder / f"{uuid.uuid4().hex}.zip"
    upload.save(target)
    content_admin.runner().submit(str(target), upload.filename[:100], remove_after=True)
    flash(_("The pack is being imported. You can follow it below."))
    return redirect(url_for("kiosk.manage_content"))


@bp.post("/manage/content/import")
@allow("coordinator")
def manage_content_import():
    from passerelle.server.packs import imports as content_admin

    wanted = request.form.get("path", "")
    # Only a pack that this page found on a drive: a path is never taken on trust.
    drives = content_admin.find_packs(current_app.config["SETTINGS"]["usb_roots"])
    found = next((d for d in drives if d["path"] == wanted), None)
    if found is None:
        flash(_("That pack is no longer on the drive. Is the USB stick still plugged in?"))
    else:
        content_admin.runner().submit(found["path"], f"{found['title']} (v{found['version']})")
        flash(_("The pack is being imported. You can follow it below."))
    return redirect(url_for("kiosk.manage_content"))


def _channel_on_drive(path: str, channel_id: str):
    """The Kolibri channel still on a mounted drive, else None (the coordinator is told why)."""
    from passerelle.server.packs import imports as content_admin

    channel = content_admin.kolibri_channel(current_app.config["SETTINGS"]["usb_roots"], path, channel_id)
    if channel is None:
        flash(_("That channel is no longer on the drive. Is the USB stick still plugged in?"))
    return channel


@bp.get("/manage/content/kolibri")
@allow("coordinator")
def manage_kolibri_topics():
    """A Kolibri channel on a drive: its topics, each with its size, to tick before importing."""
    from passerelle import content as lib
    from passerelle.server.packs import imports as content_admin

    path, channel_id = request.args.get("path", ""), request.args.get("channel", "")
    channel = _channel_on_drive(path, channel_id)
    if channel is None:
        return redirect(url_for("kiosk.manage_content"))
    try:
        topics = content_admin.kolibri_topics(path, channel_id, content_admin.runner().video)
    except lib.ContentError as exc:
        flash(exc.message)
        return redirect(url_for("kiosk.manage_content"))
    return render_template("manage/kolibri.html", path=path, server=None, channel=channel, topics=topics,
                           **_size_page_context())


@bp.post("/manage/content/kolibri")
@allow("coordinator")
def manage_kolibri_import():
    from passerelle.server.packs import imports as content_admin

    path, channel_id = request.form.get("path", ""), request.form.get("channel", "")
    channel = _channel_on_drive(path, channel_id)
    if channel is None:
        return redirect(url_for("kiosk.manage_content"))
    topics = None
    if request.form.get("update") == "1":  # the topics installed before, in their new version
        from passerelle.server.packs.web import library

        topics = content_admin.installed_topics(library(), channel_id)
    elif request.form.get("whole") != "1":
        topics = sorted({t for t in request.form.getlist("topic") if len(t) == 32 and t.isalnum()})
        if not topics:
            flash(_("Choose at least one topic."))
            return redirect(url_for("kiosk.manage_kolibri_topics", path=path, channel=channel_id))
    content_admin.runner().submit(path, f"{channel['name']} (v{channel['version']})", channel=channel_id,
                                  topics=topics)
    flash(_("The channel is being imported. You can follow it below."))
    return redirect(url_for("kiosk.manage_content"))


def _size_page_context() -> dict:
    from flask_babel import get_locale
    from passerelle.kiosk import size_units

    return {"size_units": size_units(), "lang": str(get_locale()).replace("_", "-")}


@bp.get("/manage/content/kolibri/update")
@allow("coordinator")
def manage_kolibri_update():
    """A newer version of an installed channel on a drive: what the update changes, to confirm."""
    from passerelle import content as lib
    from passerelle.server.packs import imports as content_admin
    from passerelle.server.packs.web import library

    path, channel_id = request.args.get("path", ""), request.args.get("channel", "")
    if _channel_on_drive(path, channel_id) is None:
        return redirect(url_for("kiosk.manage_content"))
    try:
        preview = content_admin.kolibri_update_preview(library(), path, channel_id,
                                                       video=content_admin.runner().video)
    except lib.ContentError as exc:
        flash(exc.message)
        return redirect(url_for("kiosk.manage_content"))
    return render_template("manage/kolibri_update.html", preview=preview,
                           action=url_for("kiosk.manage_kolibri_import"), fields={"path": path})


# --- Kolibri servers on the LAN ---------------------------------------------------------
# Every step is a POST with its CSRF token: each one makes the box contact the address
# typed, which no other site may make a coordinator's browser ask for.

def _lan_address():
    """The address posted, checked; None (and the coordinator told why) when it is not one."""
    from passerelle.server.packs import imports as content_admin

    address = content_admin.lan_address(request.form.get("server", ""))
    if address is None:
        flash(_("That is not the address of a server. Type it like %(example)s",
                example=ltr("http://192.168.1.20:8080/")))
    return address


def _lan_problem_text(reason: str, address: str) -> str:
    address = ltr(address)  # an address inside an Arabic sentence stays one
    if reason == "unreachable":
        return _("No answer from %(address)s. Is the Kolibri server on, and on the same Wi-Fi?",
                 address=address)
    if reason == "no_channel":
        return _("That channel is no longer offered by the Kolibri server at %(address)s.", address=address)
    return _("%(address)s answered, but it is not a Kolibri server that shares its channels.",
             address=address)


def _lan_problem(problem, address: str):
    flash(_lan_problem_text(problem.reason, address))
    return redirect(url_for("kiosk.manage_content") + "#lan-title")


@bp.post("/manage/content/lan")
@allow("coordinator")
def manage_lan_channels():
    """The channels a Kolibri server on the LAN offers: name, language, version, size."""
    from passerelle.server.packs import imports as content_admin
    from passerelle.server.packs.web import library

    address = _lan_address()
    if address is None:
        return redirect(url_for("kiosk.manage_content") + "#lan-title")
    try:
        info, channels = content_admin.lan_channels(address, library())
    except content_admin.LanProblem as problem:
        return _lan_problem(problem, address)
    return render_template("manage/kolibri_lan.html", address=address, info=info, channels=channels,
                           installed=content_admin.installed_kolibri_versions(library()))


@bp.post("/manage/content/lan/topics")
@allow("coordinator")
def manage_lan_topics():
    """A channel of a Kolibri server: its topics with their sizes, to tick before importing
    (its database is fetched in the background first; the page that follows shows it coming)."""
    return _lan_fetch("topics")


@bp.post("/manage/content/lan/update")
@allow("coordinator")
def manage_lan_update():
    """A newer version of an installed channel on a Kolibri server: what the update changes
    (its database fetched in the background first)."""
    return _lan_fetch("update")


def _lan_fetch(purpose: str):
    """Start (or join) the fetch of a channel's database, and send the coordinator to its page."""
    from passerelle.content.kolibri import HEX32
    from passerelle.server.packs import imports as content_admin
    from passerelle.server.packs.web import library

    address = _lan_address()
    if address is None:
        return redirect(url_for("kiosk.manage_content") + "#lan-title")
    channel_id = request.form.get("channel", "")
    if not HEX32.fullmatch(channel_id):
        flash(_lan_problem_text("no_channel", address))
        return redirect(url_for("kiosk.manage_content") + "#lan-title")
    # The name the channels page showed, until the server's own answer replaces it (shown only).
    name = request.form.get("name", "").strip()[:200] or channel_id
    job = content_admin.lan_fetch(content_admin.runner(), library(), address, channel_id, purpose,
                                  current_user()["uuid"], label=name)
    return redirect(url_for("kiosk.manage_lan_fetch", token=job.id), code=303)


@bp.get("/manage/content/lan/fetch/<token>")
@allow("coordinator")
def manage_lan_fetch(token: str):
    """A channel's database on its way from a Kolibri server, then its topics or the update's
    changes. Refreshes itself while it comes (no script needed); only whoever asked for it sees it."""
    from passerelle.server.packs import imports as content_admin

    job = content_admin.runner().task(token, current_user()["uuid"])
    if job is None or job.state == "cancelled":
        flash(_("That download is over. Choose the channel again."))
        return redirect(url_for("kiosk.manage_content") + "#lan-title")
    address = content_admin.lan_fetch_address(job)
    if job.state == "done" and job.kind == "topics":
        return render_template("manage/kolibri.html", path=None, server=address, channel=job.result["channel"],
                               topics=job.result["topics"], **_size_page_context())
    if job.state == "done":
        return render_template("manage/kolibri_update.html", preview=job.result["preview"],
                               action=url_for("kiosk.manage_lan_import"), fields={"server": address})
    problem = None
    if job.state == "failed":
        if job.message.startswith("conflict: "):
            problem = job.message.removeprefix("conflict: ")
        elif job.message in ("unreachable", "no_channel", "not_kolibri"):
            problem = _lan_problem_text(job.message, address)
        else:
            problem = _("The channel's catalogue could not be read. The box's log says more.")
    return render_template("manage/lan_fetch.html", job=job, address=address, problem=problem)


@bp.post("/manage/content/lan/fetch/<token>/cancel")
@allow("coordinator")
def manage_lan_fetch_cancel(token: str):
    from passerelle.server.packs import imports as content_admin

    if content_admin.runner().cancel_task(token, current_user()["uuid"]):
        flash(_("The download was stopped."))
    return redirect(url_for("kiosk.manage_content") + "#lan-title")


@bp.post("/manage/content/lan/import")
@allow("coordinator")
def manage_lan_import():
    """Import a channel (whole, its ticked topics, or the update of the installed ones) from a
    Kolibri server, as a background job like an import from a drive."""
    from passerelle.server.packs import imports as content_admin
    from passerelle.server.packs.web import library

    address = _lan_address()
    if address is None:
        return redirect(url_for("kiosk.manage_content") + "#lan-title")
    channel_id = request.form.get("channel", "")
    try:
        channel = content_admin.lan_channel(address, channel_id, library())
    except content_admin.LanProblem as problem:
        return _lan_problem(problem, address)
    topics = None
    if request.form.get("update") == "1":
        topics = content_admin.installed_topics(library(), channel_id)
    elif request.form.get("whole") != "1":
        topics = sorted({t for t in request.form.getlist("topic") if len(t) == 32 and t.isalnum()})
        if not topics:
            flash(_("Choose at least one topic."))
            return redirect(url_for("kiosk.manage_content") + "#lan-title")
    content_admin.runner().submit(address, f"{channel['name']} (v{channel['version']})", channel=channel_id,
                                  topics=topics)
    flash(_("The channel is being imported. You can follow it below."))
    return redirect(url_for("kiosk.manage_content"))


@bp.route("/manage/content/<pack_id>/remove", methods=["GET", "POST"])
@allow("coordinator")
def manage_content_remove(pack_id: str):
    from passerelle import content as lib
    from passerelle.server.packs import imports as content_admin
    from passerelle.server.packs.web import library

    try:
        info = library().get(pack_id)
    except lib.PackNotFound:
        abort(404)
    if request.method == "GET":
        return confirm_page(
            _("Remove %(name)s?", name=info.title),
            [_("Learners will no longer find %(name)s in the library, in search or in their "
               "lessons.", name=info.title),
             _("Lessons that use it show its resources as missing until it is back.")],
            _("Yes, remove %(name)s", name=info.title), url_for("kiosk.manage_content"),
            _("Learners' progress is kept, and the pack waits in the bin on the Content page: "
              "putting it back takes one click."))
    try:
        content_admin.remove_to_bin(library(), current_app.config["HOME"], pack_id)
    except lib.LibraryBusy:
        flash(_("An import is running; remove the pack when it has finished."))
    except lib.PackNotFound:
        abort(404)
    else:
        flash(_("%(name)s was removed. It is in the bin below.", name=info.title))
    return redirect(url_for("kiosk.manage_content") + "#bin")


@bp.post("/manage/content/bin/<pack_id>/restore")
@allow("coordinator")
def manage_content_restore(pack_id: str):
    from passerelle import content as lib
    from passerelle.server.packs import imports as content_admin

    try:
        content_admin.restore_from_bin(current_app.config["HOME"], content_admin.runner(), pack_id)
    except lib.PackNotFound:
        flash(_("That pack is no longer in the bin."))
    else:
        flash(_("The pack is being imported. You can follow it below."))
    return redirect(url_for("kiosk.manage_content"))


@bp.route("/manage/content/bin/empty", methods=["GET", "POST"])
@allow("coordinator")
def manage_content_empty_bin():
    from passerelle.server.packs import imports as content_admin

    home = current_app.config["HOME"]
    if request.method == "GET":
        names = [p["title"] for p in content_admin.binned_packs(home)]
        return confirm_page(_("Empty the bin?"), [
            _("These packs will be deleted for good: %(names)s.", names=", ".join(names) or "—")],
            _("Yes, empty the bin"), url_for("kiosk.manage_content"),
            _("Learners' progress is kept; a pack can always be imported again from a file."))
    content_admin.empty_bin(home)
    flash(_("The bin is empty."))
    return redirect(url_for("kiosk.manage_content"))


@bp.post("/manage/content/bundled")
@allow("coordinator")
def manage_content_bundled():
    """Put back the library that ships with Passerelle (after a removal, or on a bare box)."""
    from passerelle.server.packs import imports as content_admin
    from passerelle.server.packs.web import library

    installed = {p.id for p in library().list()}
    jobs = content_admin.reinstall_bundled(current_app.config["HOME"], content_admin.runner(),
                                           installed)
    if jobs:
        flash(_("The pack is being imported. You can follow it below."))
    else:
        flash(_("Every pack of the bundled library is already installed."))
    return redirect(url_for("kiosk.manage_content"))


@bp.get("/manage/content/<pack_id>")
@allow("coordinator")
def manage_content_pack(pack_id: str):
    """What is inside a pack: its topics and resources, as learners will see them."""
    from passerelle import content as lib
    from passerelle.server.packs.web import library

    try:
        info = library().get(pack_id)
    except lib.PackNotFound:
        abort(404)
    found = catalogue.tree(get_db(), pack_id)
    return render_template("manage/pack.html", pack=info, tree=found[0] if found else None)


@bp.get("/manage/content/<pack_id>/export.zip")
@allow("coordinator")
def manage_content_export(pack_id: str):
    """Any installed pack as a zip, to carry to another box on a USB stick."""
    import uuid

    from flask import send_file
    from passerelle import content as lib
    from passerelle.server.packs.web import library

    work = current_app.config["HOME"].tmp / "exports"
    work.mkdir(parents=True, exist_ok=True)
    target = work / f"{uuid.uuid4().hex}.zip"
    try:
        library().export(pack_id, target, format="zip")
    except lib.PackNotFound:
        abort(404)
    response = send_file(target, mimetype="application/zip", as_attachment=True,
                         download_name=f"{pack_id}.zip")
    response.call_on_close(lambda: target.unlink(missing_ok=True))
    return response
