"""Kiwix ZIM files in the kiosk: the library shelf, the reading frame, and staff's hide switch.

An article is shown inside the kiosk's own page (the learner's header, a way
back) in an iframe sandboxed like an html5 app; the ZIM's bytes come from
``/zim/<uuid>/<path>`` (``server/packs/zim.py``), which carries the same
sandbox in its own CSP header.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from passerelle.content import zim as zimlib
from passerelle.kiosk import bp
from passerelle.kiosk.learn import learner
from passerelle.server.db import get_db
from passerelle.server.errors import InvalidInput, NotFound
from passerelle.server.learning import lessons, progress
from passerelle.server.packs import catalogue as installed
from passerelle.server.packs import zim as zim_web
from passerelle.server.people.accounts import STAFF
from passerelle.server.web.auth import ANYONE, allow, current_user


def shelf() -> list[zimlib.ZimInfo]:
    """The ZIMs a learner sees in the library, in the reader's language first."""
    lang = str(get_locale()).split("-")[0]
    return sorted(zim_web.readable(), key=lambda z: (z.lang != lang, z.title.casefold()))


def language_name(code: str) -> str:
    """A ZIM's language in the reader's language ("bel" -> "biélorusse"), else the code."""
    from babel import Locale, UnknownLocaleError

    try:
        return Locale.parse(code).get_display_name(str(get_locale())) or code
    except (ValueError, UnknownLocaleError):
        return code


@bp.app_context_processor
def _globals() -> dict:
    return {"zim_shelf": shelf, "zim_language": language_name, "zim_catalogue": catalogue}


def catalogue() -> dict:
    """Every ZIM, hidden and unavailable ones included, for the coordinator's content page,
    with where the indexing of each one without a full-text index stands."""
    indexing = zim_web.indexer().statuses()
    listed = zim_web.zims().list()
    return {"available": zimlib.AVAILABLE, "reason": zimlib.UNAVAILABLE_REASON,
            "zims": listed, "indexing": indexing,
            "indexing_now": any(j.state == "queued" for j in indexing.values()),
            "usb": usb_zims(listed) if zimlib.AVAILABLE else []}


def usb_zims(listed: list[zimlib.ZimInfo]) -> list[dict]:
    """ZIM files on USB drives that the box does not serve from there yet."""
    from flask import current_app

    served = {(z.uuid, z.path) for z in listed if z.available}
    found = zim_web.find_on_drives(current_app.config["SETTINGS"]["usb_roots"])
    return [z for z in found if (z.get("uuid"), zimlib.zim_parts(z["path"])[0].as_posix())
            not in served]


def record_open(uuid: str, path: str) -> None:
    """Opening an article is learning activity: one "started" per learner, ZIM and article
    (the event id makes the next opening a repeat, as for a lesson)."""
    who = learner()
    if who is not None:
        progress.start(get_db(), who["uuid"], f"zim:{uuid}", path)


def lesson_articles(db, lesson: dict | None, posted: list[str]) -> dict[str, dict]:
    """The ZIM articles of a lesson in the builder ("zim:<uuid>/<path>" -> title, kind,
    language): they are in no pack's tree, and must keep their place when it is saved."""
    keys = [(i["pack_id"], i["node_id"]) for i in (lesson or {}).get("items", [])]
    keys += [tuple(k.split("/", 1)) for k in posted if "/" in k]
    keys = [k for k in keys if k[0].startswith(installed.ZIM_PREFIX)]
    return {f"{p}/{n}": facts for (p, n), facts in installed.brief(db, keys).items()}


@bp.get("/read/<uuid>/")
@allow(ANYONE)
def zim_home(uuid: str):
    info = zim_web.visible(uuid)
    if not info.available or not info.main_path:
        return render_template("zim.html", zim=info, path=None), 404
    return zim_read(uuid, info.main_path)


@bp.get("/read/<uuid>/<path:path>")
@allow(ANYONE)
def zim_read(uuid: str, path: str):
    info = zim_web.visible(uuid)
    if not info.available:
        return render_template("zim.html", zim=info, path=None), 404
    title = info.title
    try:
        found = zim_web.zims().read(uuid, path)
    except (zimlib.ZimNotFound, zimlib.InvalidZim):
        abort(404)
    if isinstance(found, str):
        return redirect(url_for("kiosk.zim_read", uuid=uuid, path=found))
    title = found.title or title
    record_open(uuid, path)
    return render_template("zim.html", zim=info, path=path, article_title=title,
                           src=url_for("zim.entry", uuid=uuid, path=path),
                           lessons=lessons.lessons(get_db()) if _staff() else None)


def _staff() -> bool:
    user = current_user()
    return bool(user and user["role"] in STAFF)


@bp.post("/read/<uuid>/lesson")
@allow(*STAFF)
def zim_add_to_lesson(uuid: str):
    """Staff add the article they are reading to a lesson (a saved one, or a new one)."""
    info = zim_web.visible(uuid)
    path = request.form.get("path", "")
    lesson_uuid = request.form.get("lesson") or None
    try:
        zim_web.zims().read(uuid, path)
    except (zimlib.ZimNotFound, zimlib.InvalidZim):
        abort(404)
    who = current_user()
    try:
        lesson_uuid = lessons.add_to_lesson(get_db(), lesson_uuid, f"zim:{uuid}", path,
                                            who["uuid"], new_title=request.form.get("title", ""))
    except InvalidInput:
        flash(_("Choose a lesson, or give the new lesson a title (at most 120 characters)."))
    except NotFound:
        abort(404)
    else:
        lesson = lessons.get_lesson(get_db(), lesson_uuid)
        flash(_("Added to the lesson %(title)s.", title=lesson["title"]))
    return redirect(url_for("kiosk.zim_read", uuid=info.uuid, path=path))


@bp.post("/read/<uuid>/time")
@allow(ANYONE)
def zim_time(uuid: str):
    """The reading page's report of time spent on an article (every minute, and when the
    learner leaves it): a learning event for a signed-in learner, nothing for anyone else."""
    who = learner()
    if who is None:
        return "", 204
    zim_web.visible(uuid)
    form = request.form
    progress.read_zim(get_db(), who["uuid"], uuid, form.get("path"), form.get("seconds"),
                      form.get("beat"))
    return "", 204


@bp.post("/manage/content/zim/<uuid>/visibility")
@allow("coordinator")
def manage_zim_visibility(uuid: str):
    hidden = request.form.get("hidden") == "1"
    try:
        zim_web.zims().set_hidden(uuid, hidden)
    except zimlib.ZimNotFound:
        abort(404)
    info = zim_web.zims().get(uuid)
    flash(_("%(title)s is now hidden from learners.", title=info.title) if hidden
          else _("%(title)s is now in the learners' library.", title=info.title))
    return redirect(url_for("kiosk.manage_content") + "#zims")


@bp.post("/manage/content/zim/<uuid>/indexing")
@allow("coordinator")
def manage_zim_indexing(uuid: str):
    """Start indexing a ZIM's articles for search, or stop it (its partial index dropped)."""
    from flask import current_app
    from passerelle.server.search import zim_index

    start = request.form.get("index") == "1"
    try:
        info = zim_web.zims().get(uuid)
        if start:
            zim_web.indexer().queue(uuid)
            zim_index.wake(current_app)
        else:
            zim_web.indexer().skip(uuid)
    except zimlib.ZimNotFound:
        abort(404)
    flash(_("The articles of %(title)s are being indexed for search, a little at a time; "
            "learners can use the box meanwhile.", title=info.title) if start
          else _("%(title)s is searched by its titles only.", title=info.title))
    return redirect(url_for("kiosk.manage_content") + "#zims")


@bp.post("/manage/content/zim/import")
@allow("coordinator")
def manage_zim_import():
    """Add a ZIM found on a USB drive, served from the drive (``content import --copy`` puts
    one in the data home). Only a file the drive scan lists is taken: the form names no
    other path on the box. A damaged file gets libzim's one line and changes nothing."""
    from flask import current_app
    from passerelle.server.search import zim_index

    wanted = request.form.get("path", "")
    found = {z["path"]: z for z in zim_web.find_on_drives(current_app.config["SETTINGS"]["usb_roots"])}
    if wanted not in found:
        abort(404)
    if found[wanted].get("problem"):
        flash(_("%(path)s cannot be added: %(problem)s", path=wanted,
                problem=found[wanted]["problem"]))
        return redirect(url_for("kiosk.manage_content") + "#zims")
    try:
        result = zim_web.zims().add(wanted, full_check=False)
    except zimlib.ContentError as exc:
        flash(_("%(path)s cannot be added: %(problem)s", path=wanted, problem=exc.message))
        return redirect(url_for("kiosk.manage_content") + "#zims")
    info = zim_web.zims().get(result.uuid)
    if not info.has_fulltext and current_app.config["SETTINGS"]["zim_index"]:
        zim_web.indexer().queue(info.uuid)
        zim_index.wake(current_app)
    flash(_("%(title)s is added, served from the USB drive.", title=info.title))
    return redirect(url_for("kiosk.manage_content") + "#zims")
