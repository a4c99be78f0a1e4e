"""Reports, exports and certificates for staff (the numbers come from ``server/reports.py``).

- ``/manage/reports`` and ``/manage/reports.csv``: the impact report of a date range. A
  coordinator sees the whole organisation; a facilitator sees the same report restricted to
  their own classes (their current learners and those classes' sessions).
- ``/manage/exports/progress.csv`` and ``/manage/exports/xapi.jsonl``: everything, for a
  coordinator who keeps a Learning Record Store; streamed from their own database connection.
- ``/manage/certificates/...``: a printable certificate of completion of a module.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Response, current_app, render_template, request, stream_with_context
from flask_babel import gettext as _
from passerelle.server import accounts, reports
from passerelle.server.auth import allow, current_user, require
from passerelle.server.db import connect, get_db
from passerelle.server.errors import InvalidInput, NotFound

from . import bp

STAFF = ("facilitator", "coordinator")


def _scope(db) -> list[str] | None:
    """None for a coordinator (everything), else the uuids of the facilitator's classes."""
    user = current_user()
    if user["role"] == "coordinator":
        return None
    return [c["uuid"] for c in accounts.classes_of(db, user)]


def _field_labels() -> dict[str, str]:
    return {"age_band": _("Age band"), "gender": _("Gender"), "languages_spoken": _("Languages spoken"),
            "newcomer": _("Newcomer"), "employment": _("Employment situation")}


def _value_label(key: str) -> str:
    if key == reports.NOT_GIVEN:
        return _("not given")
    if key == reports.OTHER:
        return _("other languages (each fewer than 5 people)")
    return key


def _charts(report: reports.Report) -> dict[str, list[tuple[str, int | None, str]]]:
    """Rows of each bar chart: (label, count or None when suppressed, text shown)."""
    charts = {f"profile:{b.field}": [(_value_label(c.key), None if c.suppressed else c.count, c.shown)
                                     for c in b.cells] for b in report.breakdowns}
    charts["packs"] = [(p.title, p.learners, str(p.learners)) for p in report.packs]
    charts["languages"] = [(lang.language, lang.learners, str(lang.learners)) for lang in report.languages]
    return charts


@bp.get("/manage/reports")
@allow(*STAFF)
def manage_reports():
    db = get_db()
    error = None
    try:
        start, end = reports.date_range(request.args.get("start"), request.args.get("end"))
    except InvalidInput as exc:
        error = _("Please give the dates as year-month-day, the start on or before the end.")
        start, end = reports.date_range(None, None)
        status = exc.status
    else:
        status = 200
    report = reports.impact(db, start, end, _scope(db))
    classes = accounts.classes_of(db, current_user())
    return render_template("manage/reports.html", report=report, error=error, classes=classes,
                           field_labels=_field_labels(), value_label=_value_label,
                           charts=_charts(report), hours=reports.hours,
                           query={"start": start.isoformat(), "end": end.isoformat()}), status


@bp.get("/manage/reports.csv")
@allow(*STAFF)
def manage_reports_csv():
    db = get_db()
    start, end = reports.date_range(request.args.get("start"), request.args.get("end"))
    report = reports.impact(db, start, end, _scope(db))
    name = f"impact-{start.isoformat()}-{end.isoformat()}.csv"
    return Response(reports.impact_csv(report), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


def _streamed(chunks_of, mimetype: str, stem: str, ext: str, **kwargs) -> Response:
    """A download read from its own connection, so it outlives the request's and stays small."""
    config = current_app.config

    def generate():
        db = connect(config["DB_PATH"], config["DB_BUSY_TIMEOUT_MS"])
        try:
            db.execute("BEGIN")  # one snapshot for the whole file
            yield from chunks_of(db, **kwargs)
        finally:
            db.conn.rollback()
            db.close()

    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return Response(stream_with_context(generate()), mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{stem}-{stamp}.{ext}"',
                             "Cache-Control": "no-store"})


@bp.get("/manage/exports/progress.csv")
@allow("coordinator")
def manage_export_progress():
    return _streamed(reports.progress_csv, "text/csv", "progress", "csv")


@bp.get("/manage/exports/xapi.jsonl")
@allow("coordinator")
def manage_export_xapi():
    return _streamed(reports.xapi_statements, "application/x-ndjson", "xapi", "jsonl",
                     with_names=request.args.get("names") == "1")


@bp.get("/manage/reports/certificates/<class_uuid>")
@allow(*STAFF)
def manage_class_certificates(class_uuid: str):
    db = get_db()
    group = accounts.get_class(db, class_uuid)
    require(accounts.can_manage_class(db, current_user(), class_uuid))
    learners = {u["uuid"]: u for u in accounts.members(db, class_uuid)}
    done = reports.completed_modules(db, learners.keys())
    for row in done:
        row["display_name"] = learners[row["learner_uuid"]]["display_name"]
    done.sort(key=lambda r: (r["display_name"].casefold(), r["title"].casefold()))
    return render_template("manage/report_certificates.html", group=group, done=done)


def _may_see_learner(db, learner_uuid: str) -> bool:
    user = current_user()
    if user["role"] == "coordinator":
        return True
    return db.execute(
        "SELECT 1 FROM memberships l JOIN memberships f ON f.class_uuid = l.class_uuid"
        " WHERE l.user_uuid = ? AND l.deleted = 0 AND f.user_uuid = ? AND f.deleted = 0"
        " AND f.role = 'facilitator' LIMIT 1", [learner_uuid, user["uuid"]]).fetchone() is not None


@bp.get("/manage/certificates/<learner_uuid>/<pack_id>/<path:node_id>")
@allow(*STAFF)
def manage_certificate(learner_uuid: str, pack_id: str, node_id: str):
    db = get_db()
    learner = accounts.get_user(db, learner_uuid)  # 404 for no one
    require(_may_see_learner(db, learner_uuid))
    try:
        found = reports.certificate(db, learner_uuid, pack_id, node_id)
    except NotFound as exc:
        details = exc.details or {}
        if "resources" in details:
            message = _("%(name)s has completed %(done)s of the %(total)s resources of this module. "
                        "The certificate is ready once every resource is completed.",
                        name=learner["display_name"], done=details["completed"],
                        total=details["resources"])
        else:
            message = _("There is no such module, so there is no certificate to print.")
        return render_template("manage/certificate.html", certificate=None, message=message), 404
    return render_template("manage/certificate.html", certificate=found, message=None)
