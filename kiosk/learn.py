"""Browsing and viewing content: the home page, topics, and a page per kind of resource."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from passerelle.kiosk import bp, labels, pending  # noqa: F401 - labels registers the `label` template global
from passerelle.kiosk.markdown import render_markdown
from passerelle.server.db import get_db
from passerelle.server.learning import bookmarks, lessons, progress, quizzes
from passerelle.server.packs import catalogue, pdfpages
from passerelle.server.packs import web as cw
from passerelle.server.people import accounts
from passerelle.server.web.auth import ANYONE, allow, current_user


def learner() -> dict | None:
    user = current_user()
    return user if user and user["role"] == "learner" else None


def is_staff() -> bool:
    """Facilitators and coordinators: they also see the teaching guides (``for_facilitators``)."""
    user = current_user()
    return bool(user) and user["role"] in accounts.STAFF


def visible_children(db, pack_id: str, node_id: str, brief: bool = False) -> list[dict]:
    """A topic's children as this person may see them: guides only for staff. ``brief``:
    only their id, title, kind and language (``catalogue.children_brief``)."""
    found = (catalogue.children_brief if brief else catalogue.children)(db, pack_id, node_id)
    return found if is_staff() else [c for c in found if not catalogue.for_facilitators(c)]


def require_visible(db, pack_id: str, found: dict, trail: list[dict] | None = None) -> bool:
    """404 for a teaching guide asked for by a learner or a guest (as if it were not there);
    for staff, whether it is one (the page shows the badge)."""
    guide = catalogue.staff_only(db, pack_id, found, trail)
    if guide and not is_staff():
        abort(404)
    return guide


def statuses(db, pack_id: str) -> dict[str, str]:
    """node id -> 'completed' | 'in-progress' for the signed-in learner (empty for guests)."""
    who = learner()
    if who is None:
        return {}
    return progress.statuses(db, who["uuid"], pack_id)


def record_start(db, pack_id: str, node_id: str) -> None:
    """Opening a resource starts it, once: the event id makes a second opening a repeat."""
    who = learner()
    if who is not None:
        with pending.kept_if_full():  # reading goes on when the disk is full
            progress.start(db, who["uuid"], pack_id, node_id)


def place(db, pack_id: str, found: dict, lesson_uuid: str | None = None) -> dict | None:
    """Where a resource stands among the ones a learner goes through with it: the items of
    the assigned lesson they came from (``?lesson=``), else the resources of its topic.

    ``{"items", "index", "position", "count", "previous", "next", "back", "back_label",
    "lesson"}``, where previous/next are ``{"title", "kind", "url", "language"}`` or None;
    None when the resource is in no sequence."""
    who = learner()
    items, lesson, back, back_is_lesson = None, None, None, False
    if lesson_uuid and who is not None:
        for a in lessons.assigned_to(db, who["uuid"]):
            if a["lesson"].get("uuid") == lesson_uuid:
                items = [{"pack_id": i["pack_id"], "node_id": i["node_id"], "title": i["title"],
                          "kind": i["kind"], "language": i.get("language")} for i in a["items"]]
                lesson, back, back_is_lesson = a["lesson"], url_for("kiosk.home") + "#assigned-title", True
                break
    if items is None or not any(i["pack_id"] == pack_id and i["node_id"] == found["id"]
                                for i in items):
        lesson, back_is_lesson = None, False
        parent = found.get("parent")
        if not parent:
            return None
        items = [{"pack_id": pack_id, "node_id": c["id"], "title": c.get("title", ""),
                  "kind": c["kind"], "language": c.get("language") or found.get("language")}
                 for c in visible_children(db, pack_id, parent, brief=True) if c["kind"] != "topic"]
        back = url_for("kiosk.learn", pack_id=pack_id, node_id=parent)
    index = next((n for n, i in enumerate(items)
                  if i["pack_id"] == pack_id and i["node_id"] == found["id"]), None)
    if index is None:
        return None

    def link(n: int) -> dict | None:
        if not 0 <= n < len(items):
            return None
        item = items[n]
        url = url_for("kiosk.learn", pack_id=item["pack_id"], node_id=item["node_id"],
                      lesson=lesson["uuid"] if lesson else None)
        return {**item, "url": url}

    return {"items": items, "index": index, "position": index + 1, "count": len(items),
            "previous": link(index - 1), "next": link(index + 1), "back": back,
            "back_is_lesson": back_is_lesson, "lesson": lesson}


@bp.get("/")
@allow(ANYONE)
def home():
    db = get_db()
    lang = str(get_locale())
    packs = sorted((p for p in catalogue.packs(db) if is_staff() or not p[catalogue.FOR_FACILITATORS]),
                   key=lambda p: (p["language"].split("-")[0] != lang, p["title"]))
    resume, marked, assigned, open_quizzes = [], [], [], []
    who = learner()
    if who is not None:
        assigned = lessons.assigned_to(db, who["uuid"])
        open_quizzes = quizzes.open_for(db, who["uuid"])
        marked = bookmarks.of_learner(db, who["uuid"])
        resume = progress.in_progress(db, who["uuid"])
    return render_template("home.html", packs=packs, resume=resume, bookmarks=marked,
                           assigned=assigned, quizzes=open_quizzes)


@bp.get("/learn/<pack_id>")
@allow(ANYONE)
def pack_home(pack_id: str):
    pack = next((p for p in catalogue.packs(get_db()) if p["id"] == pack_id), None)
    if pack is None or not pack["root"] or (pack[catalogue.FOR_FACILITATORS] and not is_staff()):
        abort(404)
    return redirect(url_for("kiosk.learn", pack_id=pack_id, node_id=pack["root"]))


@bp.get("/learn/<pack_id>/<path:node_id>")
@allow(ANYONE)
def learn(pack_id: str, node_id: str):
    if pack_id.startswith(catalogue.ZIM_PREFIX):
        # A ZIM article in a lesson, a report or "continue": read in the ZIM's own frame.
        return redirect(url_for("kiosk.zim_read", uuid=pack_id[len(catalogue.ZIM_PREFIX):],
                                path=node_id))
    db = get_db()
    found = catalogue.node(db, pack_id, node_id)
    if found is None:
        abort(404)
    trail = catalogue.ancestors(db, pack_id, found)
    guide = require_visible(db, pack_id, found, trail)
    pack_title = (trail[0] if trail else found).get("title")
    context = {"node": found, "trail": trail, "pack_id": pack_id, "pack_title": pack_title,
               "status": statuses(db, pack_id), "guide": guide}
    kind = found["kind"]
    lesson_uuid = request.args.get("lesson") or None
    if found.get("unavailable"):  # a Kolibri resource of a kind this box cannot show
        return render_template("unavailable.html", **context)
    same = catalogue.same_as(db, pack_id, found)
    if same:  # one resource placed under two topics: one page, one progress
        return redirect(url_for("kiosk.learn", pack_id=pack_id, node_id=same))
    if kind == "topic":
        return render_template("topic.html", children=visible_children(db, pack_id, node_id), **context)
    if kind == "exercise":
        return redirect(url_for("kiosk.practice", pack_id=pack_id, node_id=node_id,
                                lesson=lesson_uuid))
    record_start(db, pack_id, node_id)
    context["place"] = place(db, pack_id, found, lesson_uuid)
    main = catalogue.main_file(found)
    context.update(main=main, subtitles=catalogue.files_of(found, "subtitles"),
                   poster=catalogue.file_of(found, "poster") or catalogue.file_of(found, "thumbnail"),
                   transcript=catalogue.file_of(found, "transcript"), resume_at=_resume_at(db, found))
    who = learner()
    context["bookmarked"] = who is not None and bookmarks.is_bookmarked(db, who["uuid"], pack_id,
                                                                         node_id)
    if kind == "article" and main:
        with cw.library().open_blob(main["sha256"]) as f:
            context["body"] = render_markdown(f.read().decode("utf-8", errors="replace"),
                                              image_size=cw.image_size)
    if kind == "document" and main and main.get("mime") == "application/epub+zip":
        context["epub"] = _book(db, pack_id, node_id, found, main["sha256"])
    elif kind == "document" and main:
        context["pdf"] = _document(db, pack_id, node_id, main["sha256"])
    return render_template("resource.html", **context)


def _book(db, pack_id: str, node_id: str, node: dict, sha256: str) -> dict:
    """An EPUB, chapter ?chapter=N (from 1) of its reading order, served from the zip in the
    html5 apps' sandbox; read once its last chapter was shown, as a PDF's last page."""
    spine = (node.get("epub") or {}).get("spine") or []
    if not spine:
        return {"error": True}
    chapter = max(1, min(len(spine), request.args.get("chapter", 1, type=int) or 1))
    who = learner()
    if who is not None and chapter == len(spine):
        progress.complete(db, who["uuid"], pack_id, node_id)
    return {"error": False, "chapter": chapter, "count": len(spine),
            "src": url_for("files.app_member", sha256=sha256, member=spine[chapter - 1])}


PDF_ZOOMS = (100, 150, 200)  # percent of the page's width; pinching the image zooms further


def _document(db, pack_id: str, node_id: str, sha256: str) -> dict:
    """The document viewer: page ?page=N (from 1) rendered by the box, at zoom ?zoom=Z."""
    try:
        count = cw.pdf_page_count(sha256)
    except pdfpages.DocumentError:
        return {"error": True}
    shown = min(count, pdfpages.MAX_PAGES)
    page = max(1, min(shown, request.args.get("page", 1, type=int) or 1))
    zoom = request.args.get("zoom", 100, type=int)
    zoom = zoom if zoom in PDF_ZOOMS else 100
    first = url_for("files.pdf_page", sha256=sha256, page=1, width=pdfpages.WIDTHS[0])
    base = first.rsplit("/", 2)[0] + "/"  # + "<page>/<width>.webp", also built by pdfviewer.js
    # The image's CSS width: the page's column (main is 60rem with 1.5rem of padding), zoomed.
    sizes = f"(min-width: 60rem) {57 * zoom // 100}rem, {zoom}vw"
    who = learner()
    if who is not None and page == shown:
        # The last page was shown: the document is read, also without JavaScript. Same event
        # id as "I have finished", so seeing the last page again does not count twice.
        with pending.kept_if_full():
            progress.complete(db, who["uuid"], pack_id, node_id)
    return {"error": False, "count": count, "shown": shown, "page": page, "zoom": zoom,
            "zooms": PDF_ZOOMS, "base": base, "widths": pdfpages.WIDTHS, "sizes": sizes}


def _resume_at(db, found: dict) -> float:
    who = learner()
    if who is None:
        return 0.0
    return progress.position(db, who["uuid"], found["pack_id"], found["id"])


@bp.post("/learn/<pack_id>/<path:node_id>/done")
@allow("learner")
def learn_done(pack_id: str, node_id: str):
    """'I have finished': completes an article, document or app (also without JavaScript)
    and goes on to the next item of the lesson or topic, so the learner keeps their place."""
    db = get_db()
    found = catalogue.node(db, pack_id, node_id)
    if found is None or found["kind"] in ("topic", "exercise"):
        abort(404)
    who = learner()
    progress.complete(db, who["uuid"], pack_id, node_id)
    here = place(db, pack_id, found, request.args.get("lesson") or None)
    if here and here["next"]:
        return redirect(here["next"]["url"])
    if here:  # the last one: back to the lesson or topic, where it shows as done
        if here["lesson"]:
            flash(_("You reached the end of the lesson %(title)s. Well done!",
                    title=here["lesson"].get("title", "")))
        return redirect(here["back"])
    parent = found.get("parent")
    target = url_for("kiosk.learn", pack_id=pack_id, node_id=parent) if parent else url_for("kiosk.home")
    return redirect(target)
