"""Reports, exports and certificates for staff (the numbers come from ``server/reports/impact.py``).

- ``/manage/reports`` and ``/manage/reports.csv``: the impact report of a date range. A
  coordinator sees the whole organisation; a facilitator sees the same report restricted to
  their own classes (the learners present at those classes' sessions in the range or members
  now, and those sessions: ``reports.scope_learners``).
- ``/manage/exports/progress.csv`` and ``/manage/exports/xapi.jsonl``: everything, for a
  coordinator who keeps a Learning Record Store; streamed from their own database connection.
- ``/manage/certificates/...``: a printable certificate of completion of a module, in the
  language chosen (``?lang=``), by default the learner's own, then the page's. The report page
  and the certificate have a print stylesheet (A4, no navigation nor buttons, right-to-left
  for Arabic): ``static/report.css``.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import (
    Response,
    current_app,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import force_locale, format_date, get_locale
from flask_babel import gettext as _
from markupsafe import Markup
from passerelle.kiosk import bp
from passerelle.kiosk.labels import LABELS, label
from passerelle.server.db import get_db, reports_db, snapshot
from passerelle.server.errors import InvalidInput, NotFound
from passerelle.server.i18n import NAMES, offered
from passerelle.server.i18n import direction as i18n_direction
from passerelle.server.packs import authoring, catalogue
from passerelle.server.packs import zim as zim_web
from passerelle.server.people import accounts
from passerelle.server.reports import impact as reports
from passerelle.server.web.auth import allow, current_user, require

STAFF = accounts.STAFF


def _scope(db) -> list[str] | None:
    """None for a coordinator (everything), else the uuids of the facilitator's classes."""
    from passerelle.server.learning import upkeep

    user = current_user()
    if user["role"] == "coordinator":
        return None
    # A class in the bin still counts for the months it ran: deleting it keeps the history.
    return [c["uuid"] for c in accounts.classes_of(db, user)] + \
        [c["uuid"] for c in upkeep.removed_classes(db, user)]


def _field_labels() -> dict[str, str]:
    return {field: str(name) for field, name in LABELS["profile_field"].items()}


def _value_label(key: str, field: str = "") -> str:
    """A profile answer as people read it (the stored ids stay in the CSV)."""
    if key == reports.NOT_GIVEN:
        return _("not given")
    if key == reports.OTHER:
        return _("other languages (each fewer than 5 people)")
    return label(field, key)


def language_name(code: str) -> str:
    """A content language by its own name ("Français"), as the language menu shows it."""
    if code == reports.UNKNOWN_LANGUAGE:
        return _("unknown")
    return NAMES.get(code.split("-")[0], code)


def _charts(report: reports.Report) -> dict[str, list[tuple[str, int | None, str]]]:
    """Rows of each bar chart: (label, count or None when suppressed, text shown)."""
    charts = {f"profile:{b.field}": [(_value_label(c.key, b.field), None if c.suppressed else c.count,
                                      c.shown) for c in b.cells] for b in report.breakdowns}
    names = _pack_titles(get_db())
    charts["packs"] = [(pack_name(names, p.pack_id), p.learners, str(p.learners))
                       for p in report.packs]
    charts["languages"] = [(language_name(lang.language), lang.learners, str(lang.learners))
                           for lang in report.languages]
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
    with reports_db() as source:
        report = reports.impact(source, start, end, _scope(db))
    classes = accounts.classes_of(db, current_user())
    return render_template("manage/reports.html", report=report, error=error, classes=classes,
                           field_labels=_field_labels(), value_label=_value_label,
                           language_name=language_name, charts=_charts(report), hours=reports.hours,
                           long_date=_long_date, pack_titles=_pack_titles(db),
                           pack_name=pack_name,
                           query={"start": start.isoformat(), "end": end.isoformat()}), status


def _pack_titles(db) -> dict[str, str]:
    """What each pack id of this box stands for: packs' and ZIMs' titles (learners' activity
    names ZIMs ``zim:<uuid>``)."""
    names = {p["id"]: p["title"] for p in catalogue.packs(db)}
    names.update({f"zim:{z.uuid}": z.title for z in zim_web.zims().list()})
    return names


def pack_name(names: dict[str, str], pack_id: str) -> str:
    """A pack as a person reads it, also when this box does not hold it: learners' activity
    arrives by sync from boxes with packs of their own (their facilitators' material)."""
    if pack_id in names:
        return names[pack_id]
    if authoring.is_local_pack(pack_id):
        return _("Material made on another box (%(id)s)", id=pack_id)
    if pack_id.startswith("zim:"):
        return _("An encyclopedia not on this box")
    return pack_id


@bp.get("/manage/reports.csv")
@allow(*STAFF)
def manage_reports_csv():
    db = get_db()
    start, end = reports.date_range(request.args.get("start"), request.args.get("end"))
    with reports_db() as source:
        report = reports.impact(source, start, end, _scope(db))
    name = f"impact-{start.isoformat()}-{end.isoformat()}.csv"
    titles = _pack_titles(db)

    def name_of(section: str, item: str) -> str:
        if section in ("pack", "guests:pack"):
            return pack_name(titles, item)
        if section == "language":
            return language_name(item)
        if section.startswith("profile:"):
            return str(_value_label(item, section.partition(":")[2]))
        return ""

    return Response(reports.impact_csv(report, reports.SPREADSHEET, name_of), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


def _streamed(chunks_of, mimetype: str, stem: str, ext: str, **kwargs) -> Response:
    """A download read from its own connection, so it outlives the request's and stays small."""
    config = current_app.config

    def generate():
        # Read where reports read (a hub's replica, if it has one), in one consistent state
        # for the whole file.
        with snapshot(config["REPORTS_DB_PATH"], config["DB_BUSY_TIMEOUT_MS"]) as db:
            yield from chunks_of(db, **kwargs)

    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return Response(stream_with_context(generate()), mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{stem}-{stamp}.{ext}"',
                             "Cache-Control": "no-store"})


@bp.get("/manage/exports/progress.csv")
@allow("coordinator")
def manage_export_progress():
    return _streamed(reports.progress_csv, "text/csv", "progress", "csv",
                     dialect=reports.SPREADSHEET)


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
    return render_template("manage/report_certificates.html", group=group, done=done,
                           long_date=_long_date)


def _long_date(day) -> str:
    """A date as words in the page's language ("22 novembre 2026"), for printed pages."""
    return format_date(day, format="long")


def _certificate_language(learner: dict) -> str:
    """``?lang=`` when the box offers it, else the learner's own language, else the page's."""
    languages = offered()
    for wanted in (request.args.get("lang"), learner.get("language")):
        if wanted in languages:
            return wanted
    return str(get_locale())


@bp.get("/manage/certificates/<learner_uuid>/<pack_id>/<path:node_id>")
@allow(*STAFF)
def manage_certificate(learner_uuid: str, pack_id: str, node_id: str):
    db = get_db()
    learner = accounts.get_user(db, learner_uuid)  # 404 for no one
    require(accounts.may_see_learner(db, current_user(), learner_uuid))
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
    language = _certificate_language(learner)
    # The certificate (words, date, direction) in its own language; the page around it (what
    # the facilitator clicks, never printed) stays in the facilitator's.
    with force_locale(language):
        body = render_template("manage/certificate_body.html", certificate=found,
                               completed_on=_long_date(found.completed_on))
        direction = i18n_direction()
    links = {code: url_for("kiosk.manage_certificate", learner_uuid=learner_uuid, pack_id=pack_id,
                           node_id=node_id, lang=code) for code in offered()}
    return render_template("manage/certificate.html", certificate=found, message=None,
                           body=Markup(body), certificate_lang=language,  # noqa: S704 - our template
                           certificate_dir=direction, language_links=links)
