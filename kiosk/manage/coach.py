"""Coach reports: the grid of a class, a group or one lesson, a learner, and a class's activity
log, each printable on A4 (``static/report.css``) and downloadable as a CSV file that opens in
Excel (``server/reports/coach.py``). The words in the files are the page's language."""

from __future__ import annotations

from datetime import UTC, date, datetime

from flask import Response, render_template, request, url_for
from flask_babel import gettext as _
from markupsafe import Markup
from passerelle.kiosk import bp
from passerelle.kiosk.manage.common import STAFF, managed_class
from passerelle.server.db import get_db
from passerelle.server.errors import InvalidInput
from passerelle.server.learning import lessons
from passerelle.server.people import accounts
from passerelle.server.reports import coach
from passerelle.server.web.auth import allow, current_user, require


def _status_label(status: str) -> str:
    return {"not_started": _("Not started"), "in_progress": _("In progress"),
            "completed": _("Completed"), "needs_help": _("Needs help")}.get(status, status)


def _event_label(kind: str) -> str:
    return {"started": _("opened"), "progress": _("progress"), "answer": _("answered"),
            "completed": _("completed"), "time": _("time spent")}.get(kind, kind)


def _csv(text: str, stem: str) -> Response:
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return Response(text, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{stem}-{stamp}.csv"',
                             "Cache-Control": "no-store"})


def _row_cells(statuses: list[str], cells: dict) -> Markup:
    """A row of the grid: each cell is one of four the template builds once; they are joined
    here in one step, as a loop in the template over 1,200 cells was most of the page."""
    return Markup("").join(cells[s] for s in statuses)


def _grid_page(grid, group: dict, csv_url: str, **context):
    return render_template("manage/grid.html", grid=grid, group=group, csv_url=csv_url,
                           today=date.today(), row_cells=_row_cells, **context)


def _grid_csv(grid, stem: str) -> Response:
    return _csv(coach.grid_csv(grid, (_("Learner"), _("Learners who completed it")),
                               _status_label), stem)


# --- A class, a group, one lesson ----------------------------------------------------------

@bp.get("/manage/classes/<class_uuid>/grid")
@allow(*STAFF)
def manage_grid(class_uuid: str):
    db = get_db()
    group = managed_class(db, class_uuid)
    return _grid_page(lessons.class_grid(db, class_uuid), group,
                      url_for("kiosk.manage_grid_csv", class_uuid=class_uuid))


@bp.get("/manage/classes/<class_uuid>/grid.csv")
@allow(*STAFF)
def manage_grid_csv(class_uuid: str):
    db = get_db()
    managed_class(db, class_uuid)
    return _grid_csv(lessons.class_grid(db, class_uuid), "class-progress")


def _group_of(db, group_uuid: str) -> tuple[dict, dict]:
    found = lessons.get_group(db, group_uuid)
    return found, managed_class(db, found["class_uuid"])


@bp.get("/manage/groups/<group_uuid>/grid")
@allow(*STAFF)
def manage_group_grid(group_uuid: str):
    db = get_db()
    found, group = _group_of(db, group_uuid)
    return _grid_page(lessons.group_grid(db, group_uuid), group,
                      url_for("kiosk.manage_group_grid_csv", group_uuid=group_uuid), found=found)


@bp.get("/manage/groups/<group_uuid>/grid.csv")
@allow(*STAFF)
def manage_group_grid_csv(group_uuid: str):
    db = get_db()
    _group_of(db, group_uuid)
    return _grid_csv(lessons.group_grid(db, group_uuid), "group-progress")


def _assignment_of(db, assignment_uuid: str) -> tuple[dict, dict]:
    assignment = lessons.get_assignment(db, assignment_uuid)
    group = managed_class(db, assignment["class_uuid"])
    assignment["lesson"] = lessons.get_lesson(db, assignment["lesson_uuid"])
    return assignment, group


@bp.get("/manage/assignments/<assignment_uuid>/report")
@allow(*STAFF)
def manage_lesson_report(assignment_uuid: str):
    db = get_db()
    assignment, group = _assignment_of(db, assignment_uuid)
    return _grid_page(lessons.lesson_grid(db, assignment_uuid), group,
                      url_for("kiosk.manage_lesson_report_csv", assignment_uuid=assignment_uuid),
                      assignment=assignment)


@bp.get("/manage/assignments/<assignment_uuid>/report.csv")
@allow(*STAFF)
def manage_lesson_report_csv(assignment_uuid: str):
    db = get_db()
    _assignment_of(db, assignment_uuid)
    return _grid_csv(lessons.lesson_grid(db, assignment_uuid), "lesson-progress")


# --- One learner ----------------------------------------------------------------------------

def _seen_learner(db, user_uuid: str) -> dict:
    person = accounts.get_user(db, user_uuid)
    require(person["role"] == "learner" and accounts.may_see_learner(db, current_user(), user_uuid))
    return person


@bp.get("/manage/learners/<user_uuid>")
@allow(*STAFF)
def manage_learner(user_uuid: str):
    db = get_db()
    person = _seen_learner(db, user_uuid)
    return render_template("manage/learner.html", person=person, today=date.today(),
                           summary=lessons.learner_summary(db, user_uuid))


@bp.get("/manage/learners/<user_uuid>/report.csv")
@allow(*STAFF)
def manage_learner_csv(user_uuid: str):
    db = get_db()
    _seen_learner(db, user_uuid)
    headings = (_("Resource"), "pack_id", "node_id", _("Progress (%)"), _("Completed"),
                _("Answers"), _("Right answers"), _("Minutes"))
    return _csv(coach.learner_csv(lessons.learner_summary(db, user_uuid), headings),
                "learner-progress")


# --- A class's activity log --------------------------------------------------------------------

def _activity_range():
    """The dates asked for (by default the last 30 days), or an error in words."""
    today = date.today()
    start_text = request.args.get("start") or None
    end_text = request.args.get("end") or None
    try:
        end = date.fromisoformat(end_text) if end_text else today
        start = date.fromisoformat(start_text) if start_text else date.fromordinal(
            end.toordinal() - 29)
        if start > end:
            raise ValueError
    except ValueError:
        start, end = date.fromordinal(today.toordinal() - 29), today
        return start, end, _("Please give the dates as year-month-day, the start on or before "
                             "the end.")
    return start, end, None


@bp.get("/manage/classes/<class_uuid>/activity")
@allow(*STAFF)
def manage_activity(class_uuid: str):
    """The learning events of a class for a date range: how many, and the file to download."""
    db = get_db()
    group = managed_class(db, class_uuid)
    start, end, error = _activity_range()
    learners = {u["uuid"]: u["display_name"] for u in accounts.members(db, class_uuid)}
    found = coach.activity_rows(db, learners, start, end)
    return render_template("manage/activity.html", group=group, start=start, end=end,
                           error=error, events=found[-20:][::-1], total=len(found),
                           event_label=_event_label), 400 if error else 200


@bp.get("/manage/classes/<class_uuid>/activity.csv")
@allow(*STAFF)
def manage_activity_csv(class_uuid: str):
    db = get_db()
    managed_class(db, class_uuid)
    start, end, error = _activity_range()
    if error:
        raise InvalidInput(error, details={"start": error})
    learners = {u["uuid"]: u["display_name"] for u in accounts.members(db, class_uuid)}
    text = coach.activity_csv(db, learners, start, end, _event_label)
    return _csv(text, f"activity-{start.isoformat()}-{end.isoformat()}")
