"""Reports and exports: pure functions over the database, no Flask.

Impact report
-------------
:func:`impact` answers what funders ask ("how many people, how many hours,
how many women") for a date range, and is the **only** query behind the
report page, its CSV and ``passerelle report impact``: all three render the
same :class:`Report` (``Report.rows()`` is the CSV), so they cannot disagree.

- Days are UTC calendar days, both ends included. An event belongs to the
  day of its version (the hybrid logical clock's milliseconds), a session to
  its ``date``.
- *People reached*: learners with at least one learning event or one
  "present" mark in a session of the range. Learners later deleted still
  count (they were reached); their profile is gone, so they are "not given".
- *Hours*: the sum of the events' ``seconds`` (each clamped to 0..4 h as the
  fold does). *Resources completed*: resources whose first completion falls
  in the range (``progress.completed_version``), so a resource done twice
  counts once.
- Learning time is read from the summaries ``activity_years`` (whole calendar
  years), ``activity_months`` (the other whole months) and ``activity_days``
  (the days at either end), one row per year, month or day, learner and pack,
  kept by the fold (``records.apply_many``), never from
  the events themselves: scanning 2,000,000 events takes 15 s on a small box,
  the summaries a fraction of a second. Every figure is aggregated in SQL; what
  comes back to Python is one row per pack, language or distinct profile.
- A facilitator's report is restricted to the sessions of their classes and
  to *their* learners for the range: those marked present at one of those
  sessions in the range (a learner who has since left the class still counts,
  with what they did), and those who are members of the classes now. Their
  hours and completions in the range count; other learners' never do.

Small counts are suppressed (:func:`suppress`) in the breakdowns by profile
field, so that no one can be singled out: see the rule there.

*Drop-in use* (``Report.guests``, the organisation's report only): visits, page views and
hours of people who looked around without signing in (``learning/guests.py``). They are
not people reached and never in the learners' figures. Nothing about a visitor is known
but a random id of one day, so there is no profile to break down and nothing to suppress;
the counts are shown as the learners' totals are.

Exports
-------
:func:`progress_csv` (one row per learner and resource) and
:func:`xapi_statements` (one xAPI statement per event, for a Learning Record
Store) are generators reading one cursor: memory stays bounded whatever the
number of events. Deleted learners are left out of both.
"""

from __future__ import annotations

import io
import json
import re
import uuid as uuidlib
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import sqlite_utils
from passerelle.server import dialect as engines
from passerelle.server import records
from passerelle.server.errors import InvalidInput, NotFound
from passerelle.server.i18n import lazy_text as _l
from passerelle.server.learning import guests as guest_use
from passerelle.server.people import accounts
from passerelle.server.reports import spreadsheet

SUPPRESS_BELOW = 5
NOT_GIVEN = "not-given"
OTHER = "other-values"  # rare free-text values (languages spoken), merged so none is named
UNKNOWN_LANGUAGE = "unknown"
BOM = "\ufeff"  # Excel reads a CSV as UTF-8 (accents right) only when it starts with one


@dataclass(frozen=True)
class CsvDialect:
    """How numbers and fields are separated in a CSV file.

    ``SPREADSHEET`` is for the files people download from the pages and open in Excel: the
    boxes run in Belgium, where Windows' regional settings (whatever the language of the
    interface) give Excel ";" as the list separator and "," as the decimal mark. With commas
    Excel shows one column, and "1.5" hours becomes the date 1 May. LibreOffice and Google
    Sheets ask for or detect the separator, so they read it too. ``PLAIN`` (RFC 4180, a
    decimal point) is for scripts: the command line's files.
    """

    delimiter: str = ","
    decimal: str = "."

    def writer(self, out):
        # The one CSV writer: formulas neutralised, text quoted (reports/spreadsheet.py).
        return spreadsheet.writer(out, delimiter=self.delimiter)

    def number(self, value) -> str:
        text = value if isinstance(value, str) else str(value)
        return text.replace(".", self.decimal) if _DECIMAL.fullmatch(text) else text


_DECIMAL = re.compile(r"-?\d+\.\d+")
PLAIN = CsvDialect()
SPREADSHEET = CsvDialect(";", ",")


# --- Dates ----------------------------------------------------------------------------

def _parse_day(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidInput(_l("the dates are not valid"),
                           details={name: _l("a date like %(example)s", example="2026-01-31")}) from None


def date_range(start: str | None, end: str | None, today: date | None = None) -> tuple[date, date]:
    """The range asked for; by default the last 12 months (a year back from ``end``, excluded)."""
    today = today or datetime.now(UTC).date()
    last = _parse_day(end, "end") if end else today
    if start:
        first = _parse_day(start, "start")
    else:
        try:
            first = last.replace(year=last.year - 1) + timedelta(days=1)
        except ValueError:  # 29 February
            first = last.replace(year=last.year - 1, day=28) + timedelta(days=1)
    if first > last:
        raise InvalidInput(_l("the dates are not valid"),
                           details={"start": _l("on or before the end date")})
    return first, last


def _ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def version_bounds(first: date, last: date) -> tuple[str, str]:
    """Versions (HLC strings) from the first day's midnight to the day after the last, excluded."""
    return f"{_ms(first):013d}", f"{_ms(last + timedelta(days=1)):013d}"


def version_time(version: str) -> datetime:
    return datetime.fromtimestamp(int(version[:13]) / 1000, UTC)


# --- Suppression of small counts --------------------------------------------------------

@dataclass
class Cell:
    key: str
    count: int
    suppressed: bool = False

    @property
    def shown(self) -> str:
        """What a reader sees: the number, "< 5", or "≥ 5" for a larger count hidden with a
        small one (true, and it leaves several possible splits of the two)."""
        if not self.suppressed:
            return str(self.count)
        return f"< {SUPPRESS_BELOW}" if self.count < SUPPRESS_BELOW else f"≥ {SUPPRESS_BELOW}"


def suppress(cells: list[Cell]) -> list[Cell]:
    """Hide the counts that could single someone out, in one breakdown (cells of one field).

    1. *Primary*: every count from 1 to 4 is shown as "< 5", never as the number.
       A count of 0 is shown (it says nothing about anyone).
    2. *Complementary*: when exactly one cell is hidden, the smallest other cell that
       counts someone (the first in display order on a tie) is hidden too, so the
       hidden count cannot be found again by subtracting the others from the total.
       Two hidden cells only give their sum, which fits several splits.
    3. A zero is never hidden: "< 5" there would invent people in a category nobody is
       in ("Under 18: < 5" when nobody gave an age). When no other cell counts anyone,
       the lone hidden cell is everyone, whose number the report gives anyway.
    """
    for cell in cells:
        cell.suppressed = 0 < cell.count < SUPPRESS_BELOW
    hidden = [c for c in cells if c.suppressed]
    if len(hidden) == 1:
        others = [c for c in cells if not c.suppressed and c.count > 0]
        if others:
            min(others, key=lambda c: c.count).suppressed = True
    return cells


# --- The impact report -------------------------------------------------------------------

@dataclass
class PackRow:
    pack_id: str
    title: str
    language: str
    learners: int = 0
    seconds: int = 0
    completed: int = 0


@dataclass
class LanguageRow:
    language: str
    learners: int = 0
    seconds: int = 0
    completed: int = 0


@dataclass
class Breakdown:
    field: str
    cells: list[Cell]


@dataclass
class Report:
    start: date
    end: date
    organisation: str
    scope: str                     # "organisation", or "classes" for a facilitator's report
    people: int = 0
    sessions: int = 0
    attendances: int = 0
    seconds: int = 0
    completed: int = 0
    packs: list[PackRow] = field(default_factory=list)
    languages: list[LanguageRow] = field(default_factory=list)
    breakdowns: list[Breakdown] = field(default_factory=list)
    guests: guest_use.GuestUse | None = None  # drop-in use; the organisation's report only

    @property
    def hours(self) -> str:
        return hours(self.seconds)

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(section, item, measure, value) for every number of the report: the CSV, and what
        the page shows (a test compares the two)."""
        out = [("period", "start", "date", self.start.isoformat()),
               ("period", "end", "date", self.end.isoformat()),
               ("period", "scope", "scope", self.scope),
               ("summary", "all", "people_reached", str(self.people)),
               ("summary", "all", "sessions", str(self.sessions)),
               ("summary", "all", "attendances", str(self.attendances)),
               ("summary", "all", "hours", self.hours),
               ("summary", "all", "resources_completed", str(self.completed))]
        for p in self.packs:
            out += [("pack", p.pack_id, "learners", str(p.learners)),
                    ("pack", p.pack_id, "hours", hours(p.seconds)),
                    ("pack", p.pack_id, "resources_completed", str(p.completed))]
        for lang in self.languages:
            out += [("language", lang.language, "learners", str(lang.learners)),
                    ("language", lang.language, "hours", hours(lang.seconds)),
                    ("language", lang.language, "resources_completed", str(lang.completed))]
        for b in self.breakdowns:
            out += [(f"profile:{b.field}", c.key, "people_reached", c.shown) for c in b.cells]
        if self.guests is not None:
            g = self.guests
            out += [("guests", "all", "visits", str(g.visits)),
                    ("guests", "all", "page_views", str(g.views)),
                    ("guests", "all", "hours", hours(g.seconds))]
            for p in g.packs:
                out += [("guests:pack", p.pack_id, "visits", str(p.visits)),
                        ("guests:pack", p.pack_id, "page_views", str(p.views)),
                        ("guests:pack", p.pack_id, "hours", hours(p.seconds))]
        return out


def hours(seconds: int) -> str:
    return f"{seconds / 3600:.1f}"


def _profile_values(field_name: str) -> tuple[str, ...]:
    return accounts.PROFILE_CHOICES.get(field_name, ())


def _breakdown(field_name: str, profiles: Iterable[tuple[dict | None, int]]) -> Breakdown:
    """Counts per value of one profile field, from (profile, how many people have it)."""
    counts: dict[str, int] = defaultdict(int)
    for profile, n in profiles:
        value = (profile or {}).get(field_name)
        if value in (None, "", []):
            counts[NOT_GIVEN] += n
        elif isinstance(value, list):  # languages spoken: a person counts once per language
            for v in {str(v).strip().casefold() for v in value if str(v).strip()}:
                counts[v] += n
        else:
            counts[str(value)] += n
    known = _profile_values(field_name)
    if known:
        keys = [*known, *sorted(k for k in counts if k not in known and k != NOT_GIVEN)]
        cells = [Cell(k, counts.get(k, 0)) for k in keys]
    else:  # free text: rare values merged, so a rare language is never named
        common = sorted((k for k, n in counts.items() if k != NOT_GIVEN and n >= SUPPRESS_BELOW),
                        key=lambda k: (-counts[k], k))
        rare = sum(n for k, n in counts.items() if k != NOT_GIVEN and n < SUPPRESS_BELOW)
        cells = [Cell(k, counts[k]) for k in common] + ([Cell(OTHER, rare)] if rare else [])
    cells.append(Cell(NOT_GIVEN, counts.get(NOT_GIVEN, 0)))
    return Breakdown(field_name, suppress(cells))


def scope_learners(db: sqlite_utils.Database, class_uuids: Collection[str], start: date,
                   end: date) -> set[str]:
    """The learners of these classes for ``start``..``end``: present at one of their sessions in
    the range (membership may have ended since), or members now.

    Attendance is the record of who was in a class on a given day; the membership table only
    says who is in it today, and a learner who moved on keeps the history they made there.
    """
    if not class_uuids:
        return set()
    marks = ",".join("?" * len(class_uuids))
    classes = list(class_uuids)
    members = {r[0] for r in db.execute(
        f"SELECT user_uuid FROM memberships WHERE deleted = 0 AND role = 'learner'"
        f" AND class_uuid IN ({marks})", classes).fetchall()}
    attended = {r[0] for r in db.execute(
        f"SELECT DISTINCT a.learner_uuid FROM attendance a"
        f" JOIN class_sessions s ON s.uuid = a.session_uuid"
        f" WHERE a.deleted = 0 AND a.present = 1 AND s.deleted = 0 AND s.date BETWEEN ? AND ?"
        f" AND s.class_uuid IN ({marks})", [start.isoformat(), end.isoformat(), *classes])}
    return members | attended


def _month_span(start: date, end: date) -> tuple[str, str] | None:
    """The whole calendar months inside ``start``..``end`` ("YYYY-MM" first and last), if any."""
    first = start if start.day == 1 else (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    after_end = end + timedelta(days=1)
    last = (after_end.replace(day=1) if after_end.day == 1 else end.replace(day=1)) - timedelta(days=1)
    if first > last:
        return None
    return first.isoformat()[:7], last.isoformat()[:7]


def _year_span(start: date, end: date) -> tuple[int, int] | None:
    """The whole calendar years inside ``start``..``end`` (first and last), if any."""
    first = start.year if (start.month, start.day) == (1, 1) else start.year + 1
    last = end.year if (end.month, end.day) == (12, 31) else end.year - 1
    return (first, last) if first <= last else None


def _rows_of(table: str, key: str, first: str, last: str) -> tuple[str, list]:
    """The SELECT of (learner_uuid, pack_id, seconds) of one summary for its keys ``first``..
    ``last`` (one key: an equality, so PostgreSQL reads the key's rows in learner order)."""
    if first == last:
        return f"SELECT learner_uuid, pack_id, seconds FROM {table} WHERE {key} = ?", [first]
    return (f"SELECT learner_uuid, pack_id, seconds FROM {table} WHERE {key} BETWEEN ? AND ?",
            [first, last])


def _months_and_days(start: date, end: date) -> list[tuple[str, list]]:
    """SELECTs of (learner_uuid, pack_id, seconds) for ``start``..``end`` from the monthly
    summary for whole months and the daily one for the days at either end."""
    span = _month_span(start, end)
    if span is None:
        return [_rows_of("activity_days", "day", start.isoformat(), end.isoformat())]
    month_first = date.fromisoformat(span[0] + "-01")
    month_after = (date.fromisoformat(span[1] + "-28") + timedelta(days=4)).replace(day=1)
    parts = [_rows_of("activity_months", "month", *span)]
    if start < month_first:
        parts.append(_rows_of("activity_days", "day", start.isoformat(),
                              (month_first - timedelta(days=1)).isoformat()))
    if month_after <= end:
        parts.append(_rows_of("activity_days", "day", month_after.isoformat(), end.isoformat()))
    return parts


def _activity(start: date, end: date) -> tuple[str, list, bool]:
    """SQL for the (learner_uuid, pack_id, seconds) rows of the range, from the summaries: the
    yearly one for whole years, the monthly one for the other whole months, the daily one for
    the days at either end. And whether its rows are already one per learner and pack (one
    year, month or day read from one summary, whose key that is)."""
    years = _year_span(start, end)
    if years is None:
        parts = _months_and_days(start, end)
    else:
        parts = []
        if start < date(years[0], 1, 1):
            parts += _months_and_days(start, date(years[0] - 1, 12, 31))
        parts.append(_rows_of("activity_years", "year", f"{years[0]:04d}", f"{years[1]:04d}"))
        if date(years[1], 12, 31) < end:
            parts += _months_and_days(date(years[1] + 1, 1, 1), end)
    distinct = len(parts) == 1 and len(parts[0][1]) == 1
    return (" UNION ALL ".join(sql for sql, _ in parts),
            [p for _, params in parts for p in params], distinct)


def _scope_sql(class_uuids: Collection[str], start: date, end: date) -> tuple[str, list]:
    """SQL for the learners of these classes for the range (see :func:`scope_learners`)."""
    marks = ",".join("?" * len(class_uuids)) or "NULL"
    classes = list(class_uuids)
    return (f"SELECT user_uuid AS learner_uuid FROM memberships WHERE deleted = 0"
            f" AND role = 'learner' AND class_uuid IN ({marks})"
            f" UNION SELECT a.learner_uuid FROM attendance a"
            f" JOIN class_sessions s ON s.uuid = a.session_uuid"
            f" WHERE a.deleted = 0 AND a.present = 1 AND s.deleted = 0 AND s.date BETWEEN ? AND ?"
            f" AND s.class_uuid IN ({marks})",
            [*classes, start.isoformat(), end.isoformat(), *classes])


def impact(db: sqlite_utils.Database, start: date, end: date,
           class_uuids: Collection[str] | None = None) -> Report:
    """The impact report (see :func:`_impact`), its statements given room to aggregate."""
    with engines.of(db).analytics(db):
        return _impact(db, start, end, class_uuids)


def _impact(db: sqlite_utils.Database, start: date, end: date,
            class_uuids: Collection[str] | None = None) -> Report:
    """The impact report for ``start``..``end`` (both included): the whole organisation, or only
    the given classes (their learners for the range, see :func:`scope_learners`, and their
    sessions) when ``class_uuids`` is set.

    Every figure is aggregated in SQL from the summaries (``activity_years`` for whole years,
    ``activity_months`` for the other whole months, ``activity_days`` for the days at the ends, ``progress`` for completions, sessions and
    attendance): the rows that come back are one per pack, language or profile, whatever the
    number of learners."""
    org = accounts.organisation(db) or {}
    report = Report(start, end, org.get("name") or "", "organisation" if class_uuids is None
                    else "classes")
    low, high = version_bounds(start, end)
    activity, activity_params, distinct = _activity(start, end)
    if class_uuids is None:
        scoped = f"SELECT learner_uuid, pack_id, seconds FROM ({activity}) act"
        scoped_params = activity_params
        completions = ("SELECT pack_id, count(*) FROM progress"
                       " WHERE completed_version >= ? AND completed_version < ? GROUP BY pack_id")
        completion_params: list = [low, high]
    else:
        scope, scope_params = _scope_sql(class_uuids, start, end)
        scoped = (f"SELECT act.learner_uuid, act.pack_id, act.seconds FROM ({activity}) act"
                  f" WHERE act.learner_uuid IN ({scope})")
        scoped_params = [*activity_params, *scope_params]
        completions = (f"SELECT pack_id, count(*) FROM progress WHERE completed_version >= ?"
                       f" AND completed_version < ? AND learner_uuid IN ({scope}) GROUP BY pack_id")
        completion_params = [low, high, *scope_params]

    # Sessions and attendance.
    session_where = "s.deleted = 0 AND s.date BETWEEN ? AND ?"
    params: list = [start.isoformat(), end.isoformat()]
    if class_uuids is not None:
        session_where += f" AND s.class_uuid IN ({','.join('?' * len(class_uuids)) or 'NULL'})"
        params += list(class_uuids)
    report.sessions = db.execute(f"SELECT count(*) FROM class_sessions s WHERE {session_where}",
                                 params).fetchone()[0]
    present = ("SELECT a.learner_uuid FROM attendance a JOIN class_sessions s"
               f" ON s.uuid = a.session_uuid WHERE a.deleted = 0 AND a.present = 1 AND {session_where}")
    report.attendances = db.execute(f"SELECT count(*) FROM ({present}) p", params).fetchone()[0]

    # Everything about learners in one statement: ``lp`` (one row per learner and pack of the
    # range; when they must be grouped, a CTE used three times, which both SQLite and
    # PostgreSQL materialise, so the summaries are read once) gives learners and time per pack, learners per language of the
    # pack, and everyone reached (learned, or was present) per distinct profile. Learners per
    # language are counted from DISTINCT pairs, which PostgreSQL hashes (its count(DISTINCT)
    # sorts: 1.4 of 10 s over a million learners).
    installed = {r[0]: (r[1], r[2]) for r in db.execute(
        "SELECT id, title, language FROM content_packs").fetchall()}
    # A ZIM read on the box (time on its articles) is a row like a pack's.
    installed.update(zim_titles(db))
    cases = " ".join("WHEN ? THEN ?" for _ in installed)
    language = f"CASE pack_id {cases} ELSE ? END" if installed else "?"
    language_params = [*(x for pack_id, (_, lang) in installed.items() for x in (pack_id, lang)),
                       UNKNOWN_LANGUAGE]
    if distinct:
        # One calendar year (or month, or day) read from one summary, whose rows are already
        # one per learner and pack: nothing to group (grouping a year's months into pairs took
        # half the report's time over a million learners), and nothing to materialise either:
        # each part reads the summary itself (in parallel workers, or in learner order).
        lp, with_lp = f"({scoped})", ""
        uses = [*scoped_params, *language_params, *scoped_params, *scoped_params]
    else:
        lp, with_lp = "lp", (f"WITH lp AS (SELECT learner_uuid, pack_id, sum(seconds) AS seconds"
                             f" FROM ({scoped}) act GROUP BY learner_uuid, pack_id)")
        uses = [*scoped_params, *language_params]
    rows = db.execute(
        f"{with_lp}"
        f" SELECT 'pack', pack_id, count(*), sum(seconds) FROM {lp} pl GROUP BY pack_id"
        f" UNION ALL SELECT 'language', lang, count(*), NULL"
        f"   FROM (SELECT DISTINCT learner_uuid, {language} AS lang FROM {lp} ll) l GROUP BY lang"
        f" UNION ALL SELECT 'profile', u.profile, count(*), NULL"
        f"   FROM (SELECT learner_uuid FROM {lp} lr UNION SELECT learner_uuid FROM ({present}) p) r"
        f"   LEFT JOIN users u ON u.uuid = r.learner_uuid AND u.deleted = 0 GROUP BY u.profile",
        [*uses, *params]).fetchall()
    per_pack: dict[str, list[int]] = {}
    by_language: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    groups: list[tuple[dict | None, int]] = []
    for part, key, count, seconds in rows:
        if part == "pack":
            per_pack[key] = [count, seconds, 0]
            report.seconds += seconds
        elif part == "language":
            by_language[key][0] = count
        else:
            groups.append((json.loads(key) if key else None, count))
            report.people += count
    for pack_id, done in db.execute(completions, completion_params):
        per_pack.setdefault(pack_id, [0, 0, 0])[2] += done
        report.completed += done
    for pack_id, (learners, seconds, done) in per_pack.items():
        title, lang = installed.get(pack_id, (pack_id, UNKNOWN_LANGUAGE))
        report.packs.append(PackRow(pack_id, title, lang, learners, seconds, done))
        by_language[lang][1] += seconds
        by_language[lang][2] += done
    report.packs.sort(key=lambda p: (-p.learners, p.title.casefold()))
    report.languages = sorted((LanguageRow(lang, *v) for lang, v in by_language.items()),
                              key=lambda r: (-r.learners, r.language))

    # Who was reached, by each profile field the organisation asks: from one row per distinct
    # profile (a handful of answers), never one per learner; deleted learners are "not given".
    enabled = list((org.get("profile_fields") or {}).keys())
    if enabled:
        report.breakdowns = [_breakdown(f, groups) for f in enabled]
    if class_uuids is None:  # visitors belong to no class
        report.guests = guest_use.use(db, start, end)
    return report


def zim_titles(db) -> dict[str, tuple[str, str]]:
    """``zim:<uuid>`` -> (title, language as the kiosk names it) of the box's ZIM files."""
    from passerelle.content.zim import kiosk_language

    return {f"zim:{uuid}": (title, kiosk_language(language) or UNKNOWN_LANGUAGE)
            for uuid, title, language in db.execute("SELECT uuid, title, language FROM content_zims")}


def impact_csv(report: Report, dialect: CsvDialect = PLAIN,
               name_of: Callable[[str, str], str] | None = None) -> str:
    """The report as CSV text (with the BOM Excel needs to read accents right).

    With ``name_of(section, item)``, a "name" column follows "item": what a person reads (a
    pack's title, a language's name) beside the stable id a script reads.
    """
    out = io.StringIO()
    writer = dialect.writer(out)
    if name_of is None:
        writer.writerow(["section", "item", "measure", "value"])
        writer.writerows((*row[:3], dialect.number(row[3])) for row in report.rows())
    else:
        writer.writerow(["section", "item", "name", "measure", "value"])
        writer.writerows((row[0], row[1], name_of(row[0], row[1]), row[2], dialect.number(row[3]))
                         for row in report.rows())
    return BOM + out.getvalue()


# --- A class's progress grid (learners x resources of one pack) ---------------------------

def class_progress(db: sqlite_utils.Database, class_uuid: str, pack_id: str) -> list[dict]:
    """Each current learner of a class with their summary on each resource of one pack."""
    cursor = db.execute(
        "SELECT p.learner_uuid, p.node_id, p.progress, p.completed_version IS NOT NULL, p.seconds,"
        " p.answers, p.correct FROM memberships m"
        " JOIN progress p ON p.learner_uuid = m.user_uuid AND p.pack_id = ?"
        " WHERE m.class_uuid = ? AND m.deleted = 0 AND m.role = 'learner'", [pack_id, class_uuid])
    keys = ("learner_uuid", "node_id", "progress", "completed", "seconds", "answers", "correct")
    return [dict(zip(keys, row, strict=True)) for row in cursor]


# --- Exports ----------------------------------------------------------------------------------

PROGRESS_COLUMNS = ("learner_uuid", "display_name", "pack_id", "node_id", "title", "progress",
                    "completed", "completed_on", "seconds", "answers", "correct")


def _csv_line(values: Iterable, dialect: CsvDialect = PLAIN) -> str:
    out = io.StringIO()
    dialect.writer(out).writerow(values)
    return out.getvalue()


def progress_csv(db: sqlite_utils.Database, batch: int = 1000, dialect: CsvDialect = PLAIN
                 ) -> Iterator[str]:
    """All progress, one CSV row per learner and resource, in chunks of ``batch`` rows (BOM first)."""
    yield BOM + _csv_line(PROGRESS_COLUMNS, dialect)
    out = io.StringIO()
    writer = dialect.writer(out)
    for rows in engines.chunks(
            db, "SELECT p.learner_uuid, u.display_name, p.pack_id, p.node_id, n.title, p.progress,"
            " p.completed_version, p.seconds, p.answers, p.correct FROM progress p"
            " JOIN users u ON u.uuid = p.learner_uuid AND u.deleted = 0"
            " LEFT JOIN content_nodes n ON n.pack_id = p.pack_id AND n.node_id = p.node_id"
            " ORDER BY p.learner_uuid, p.pack_id, p.node_id", size=batch):
        for learner, name, pack_id, node_id, title, progress, done, seconds, answers, correct in rows:
            writer.writerow([learner, name, pack_id, node_id, title or "",
                             dialect.number(f"{progress:g}"),
                             "true" if done else "false",
                             version_time(done).date().isoformat() if done else "",
                             seconds, answers, correct])
        yield out.getvalue()
        out.seek(0)
        out.truncate()


# xAPI: https://github.com/adlnet/xAPI-Spec ; verbs from the ADL vocabulary.
ADL = "http://adlnet.gov/expapi/verbs/"
VERBS = {"started": "attempted", "answer": "answered", "completed": "completed",
         "progress": "progressed", "time": "experienced"}
PROGRESS_EXTENSION = "https://w3id.org/xapi/cmi5/result/extensions/progress"
QUESTION_EXTENSION = "urn:passerelle:xapi:question_id"
ACTIVITY_TYPES = {"exercise": "http://adlnet.gov/expapi/activities/assessment",
                  "video": "http://adlnet.gov/expapi/activities/media",
                  "audio": "http://adlnet.gov/expapi/activities/media",
                  "topic": "http://adlnet.gov/expapi/activities/module"}
_STATEMENT_NAMESPACE = uuidlib.UUID("3b2f8f1e-6d0c-4a57-9d43-7c1e5a0b2f64")


def statement_id(origin: str, seq: int) -> str:
    """The same event always gets the same statement id, so a re-export never duplicates it."""
    return str(uuidlib.uuid5(_STATEMENT_NAMESPACE, f"{origin}:{seq}"))


def iso_duration(seconds: int) -> str:
    h, rest = divmod(max(0, int(seconds)), 3600)
    m, s = divmod(rest, 60)
    return "PT" + (f"{h}H" if h else "") + (f"{m}M" if m else "") + (f"{s}S" if s or not (h or m) else "")


def statement(op: tuple, p: dict, org_uuid: str, node: tuple[str | None, str | None, str] | None,
              name: str | None = None) -> dict:
    """One xAPI statement for one event row (origin, seq, version, subject, _) and its payload."""
    origin, seq, version, subject, _ = op
    kind = p.get("type")
    verb = VERBS.get(kind, "experienced")
    title, node_kind, language = node or (None, None, UNKNOWN_LANGUAGE)
    actor: dict = {"objectType": "Agent",
                   "account": {"homePage": f"urn:passerelle:{org_uuid}", "name": subject}}
    if name is not None:
        actor["name"] = name
    definition: dict = {"name": {language if language != UNKNOWN_LANGUAGE else "und":
                                 title or p.get("node_id", "")}}
    if node_kind:
        definition["type"] = ACTIVITY_TYPES.get(node_kind, "http://adlnet.gov/expapi/activities/lesson")
    result: dict = {}
    seconds = max(0, min(records.MAX_EVENT_SECONDS, int(p.get("seconds") or 0)))
    if seconds:
        result["duration"] = iso_duration(seconds)
    if kind == "answer":
        result["success"] = bool(p.get("correct"))
        if p.get("question_id") is not None:
            result["extensions"] = {QUESTION_EXTENSION: str(p["question_id"])}
    progress = p.get("progress")
    if kind == "completed" or (isinstance(progress, (int, float)) and progress >= 1):
        result["completion"] = True
    if isinstance(progress, (int, float)) and kind in ("progress", "completed"):
        result.setdefault("extensions", {})[PROGRESS_EXTENSION] = round(
            max(0, min(1, progress)) * 100)
    body = {
        "id": statement_id(origin, seq),
        "actor": actor,
        "verb": {"id": ADL + verb, "display": {"en-US": verb}},
        "object": {"objectType": "Activity",
                   "id": f"urn:passerelle:{p.get('pack_id')}/{p.get('node_id')}",
                   "definition": definition},
        # When it happened on the tablet (placed on the box's clock), else when it was recorded.
        "timestamp": p.get("occurred_at") if isinstance(p.get("occurred_at"), str)
        else version_time(version).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "context": {"platform": "Passerelle"},
    }
    if language != UNKNOWN_LANGUAGE:
        body["context"]["language"] = language
    if result:
        body["result"] = result
    return body


def xapi_statements(db: sqlite_utils.Database, with_names: bool = False,
                    batch: int = 1000) -> Iterator[str]:
    """Every learning event as an xAPI statement, one JSON object per line, in chunks.

    The actor is an account (``urn:passerelle:<organisation uuid>``, the learner's uuid): no
    name or profile data leaves unless ``with_names`` (then the display name only).
    """
    org = accounts.organisation(db) or {}
    org_uuid = org.get("uuid", "unknown")
    learners = {uid: (name if with_names else None) for uid, name in db.execute(
        "SELECT uuid, display_name FROM users WHERE deleted = 0 AND role = 'learner'")}
    nodes = {(pack, node): (title, kind, language) for pack, node, title, kind, language in db.execute(
        "SELECT n.pack_id, n.node_id, n.title, n.kind, coalesce(n.language, p.language)"
        " FROM content_nodes n JOIN content_packs p ON p.id = n.pack_id")}
    for rows in engines.chunks(db, "SELECT origin, seq, version, subject, payload FROM ops"
                               " WHERE kind = 'event' AND entity = 'progress'"
                               " ORDER BY origin, seq", size=batch):
        lines = []
        for row in rows:
            if row[3] not in learners:
                continue
            p = json.loads(row[4])
            node = nodes.get((p.get("pack_id"), p.get("node_id")))
            lines.append(json.dumps(statement(row, p, org_uuid, node, learners[row[3]]),
                                    ensure_ascii=False, separators=(",", ":")))
        if lines:
            yield "\n".join(lines) + "\n"


# --- Certificates of completion ---------------------------------------------------------------

@dataclass
class Certificate:
    organisation: str
    learner_uuid: str
    learner_name: str
    pack_id: str
    node_id: str
    module_title: str
    language: str
    completed_on: date
    resources: int


def module_resources(db: sqlite_utils.Database, pack_id: str, node_id: str) -> list[str]:
    """The resources (not topics) under a topic, at any depth."""
    rows = db.execute(
        "WITH RECURSIVE under(node_id, kind) AS ("
        " SELECT node_id, kind FROM content_nodes WHERE pack_id = ? AND parent_id = ?"
        " UNION ALL SELECT n.node_id, n.kind FROM content_nodes n"
        " JOIN under u ON n.pack_id = ? AND n.parent_id = u.node_id)"
        " SELECT node_id FROM under WHERE kind != 'topic'", [pack_id, node_id, pack_id]).fetchall()
    return [r[0] for r in rows]


def certificate(db: sqlite_utils.Database, learner_uuid: str, pack_id: str, node_id: str
                ) -> Certificate:
    """What a certificate shows; NotFound unless the learner completed every resource of the module."""
    learner = records.load(db, "user", learner_uuid)
    if learner is None or learner["role"] != "learner":
        raise NotFound(_l("no such learner"))
    row = db.execute(
        "SELECT n.title, n.kind, coalesce(n.language, p.language) FROM content_nodes n"
        " JOIN content_packs p ON p.id = n.pack_id WHERE n.pack_id = ? AND n.node_id = ?",
        [pack_id, node_id]).fetchone()
    if row is None or row[1] != "topic":
        raise NotFound(_l("no such module"))
    resources = module_resources(db, pack_id, node_id)
    if not resources:
        raise NotFound(_l("this module has no resources"))
    done = db.execute(
        f"SELECT count(*), max(completed_version) FROM progress WHERE learner_uuid = ?"
        f" AND pack_id = ? AND completed_version IS NOT NULL"
        f" AND node_id IN ({','.join('?' * len(resources))})",
        [learner_uuid, pack_id, *resources]).fetchone()
    if done[0] < len(resources):
        raise NotFound(_l("%(name)s has completed %(done)s of the %(total)s resources of this"
                          " module, not all of them yet", name=learner["display_name"],
                          done=done[0], total=len(resources)),
                       details={"completed": done[0], "resources": len(resources)})
    org = accounts.organisation(db) or {}
    return Certificate(org.get("name") or "", learner_uuid, learner["display_name"], pack_id,
                       node_id, row[0], row[2], version_time(done[1]).date(), len(resources))


def completed_modules(db: sqlite_utils.Database, learner_uuids: Collection[str]) -> list[dict]:
    """Every (learner, module) where the learner completed all the module's resources."""
    if not learner_uuids:
        return []
    ids = list(learner_uuids)
    done: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)  # (learner, pack) -> node -> version
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        for learner, pack_id, node_id, version in db.execute(
                "SELECT learner_uuid, pack_id, node_id, completed_version FROM progress"
                f" WHERE completed_version IS NOT NULL AND learner_uuid IN ({','.join('?' * len(chunk))})",
                chunk):
            done[(learner, pack_id)][node_id] = version
    modules: dict[str, list[tuple[str, str, list[str]]]] = {}
    found = []
    for (learner, pack_id), nodes in sorted(done.items()):
        if pack_id not in modules:
            topics = db.execute("SELECT node_id, title FROM content_nodes WHERE pack_id = ?"
                                " AND kind = 'topic' AND parent_id IS NOT NULL ORDER BY position",
                                [pack_id]).fetchall()
            modules[pack_id] = [(t, title, module_resources(db, pack_id, t)) for t, title in topics]
        for topic, title, resources in modules[pack_id]:
            if resources and all(r in nodes for r in resources):
                found.append({"learner_uuid": learner, "pack_id": pack_id, "node_id": topic,
                              "title": title,
                              "completed_on": version_time(max(nodes[r] for r in resources)).date()})
    return found
