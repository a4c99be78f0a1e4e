"""The impact report: numbers, small-count suppression, the page and the CSV agreeing, the CLI,
and certificates of completion."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime

import pytest
from passerelle.server import records
from passerelle.server.cli.base import cli
from passerelle.server.cli.reports import report as report_group
from passerelle.server.db import get_db
from passerelle.server.people import accounts
from passerelle.server.reports import impact as reports

from tests.conftest import Runner

DAY = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)


@pytest.fixture
def box(box_of_engine):
    """Every test here runs on SQLite (a box) and on PostgreSQL (a hub)."""
    return box_of_engine


def add_event(db, learner: str, payload: dict, when: datetime = DAY) -> records.Op:
    """An event with a chosen time (the HLC version carries it), folded as the server does."""
    with records.write_tx(db):
        origin = records.device_id(db)
        seq = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM ops WHERE origin = ?",
                         [origin]).fetchone()[0]
        ms = int(when.timestamp() * 1000)
        op = records.Op(origin, seq, f"{ms:013d}.{seq % 100000:05d}.{origin}", "event", "progress",
                        learner, payload)
        records.apply(db, op)
    return op


def complete_module(db, learner: str, when: datetime = DAY) -> None:
    for node in ("basics/welcome", "basics/clip", "basics/game", "basics/quiz", "basics/guide"):
        add_event(db, learner, {"pack_id": "demo-fr", "node_id": node, "type": "completed",
                                "progress": 1, "seconds": 60}, when)


def people(db, n: int, gender: str | None, prefix: str) -> list[str]:
    made = []
    for i in range(n):
        made.append(accounts.create_user(db, role="learner", display_name=f"{prefix} {i}",
                                         profile={"gender": gender} if gender else None))
    return made


@pytest.fixture
def populated(app, box):
    """Amina and Bart active in March 2026 (Amina attended the class A session), 12 women,
    7 men and 3 non-binary learners active too; Chloé active only in 2025."""
    with app.app_context():
        db = get_db()
        accounts.update_user(db, box.ids["amina"], profile={"gender": "woman", "age_band": "26-35"})
        add_event(db, box.ids["amina"], {"pack_id": "demo-fr", "node_id": "basics/quiz",
                                         "type": "answer", "correct": True, "seconds": 90})
        add_event(db, box.ids["bart"], {"pack_id": "demo-fr", "node_id": "basics/welcome",
                                        "type": "completed", "progress": 1, "seconds": 1800})
        add_event(db, box.ids["bart"], {"pack_id": "other-pack", "node_id": "x",
                                        "type": "time", "seconds": 5 * 3600})  # clamped to 4 h
        add_event(db, box.ids["chloe"], {"pack_id": "demo-fr", "node_id": "basics/clip",
                                         "type": "started"}, datetime(2025, 6, 1, tzinfo=UTC))
        meeting = accounts.open_session(db, box.ids["class_a"], box.ids["fatou"], date="2026-03-11")
        accounts.mark_attendance(db, meeting, box.ids["amina"], True)
        accounts.mark_attendance(db, meeting, box.ids["bart"], False)
        for gender, n in (("woman", 12), ("man", 7), ("non-binary", 3)):
            for learner in people(db, n, gender, gender):
                add_event(db, learner, {"pack_id": "demo-fr", "node_id": "basics/clip",
                                        "type": "progress", "progress": 0.5, "seconds": 60})
    return box


# --- The rule --------------------------------------------------------------------------

def cells(**counts) -> list[reports.Cell]:
    return reports.suppress([reports.Cell(k, v) for k, v in counts.items()])


def shown(result: list[reports.Cell]) -> dict[str, str]:
    return {c.key: c.shown for c in result}


def test_counts_under_five_are_never_shown():
    result = shown(cells(woman=45, man=40, nonbinary=3, other=2, not_given=10))
    assert result == {"woman": "45", "man": "40", "nonbinary": "< 5", "other": "< 5",
                      "not_given": "10"}


def test_a_lone_suppressed_cell_takes_the_smallest_other_with_it():
    # Only "nonbinary" is small: the smallest other cell counting someone is hidden too,
    # never a zero (that would invent people).
    assert shown(cells(woman=45, man=40, nonbinary=3, other=0, not_given=10)) == {
        "woman": "45", "man": "40", "nonbinary": "< 5", "other": "0", "not_given": "≥ 5"}
    # Nobody gave an age: no age band is shown as "< 5".
    assert shown(cells(under_18=0, adult=0, not_given=3)) == {
        "under_18": "0", "adult": "0", "not_given": "< 5"}
    # No zero: the next smallest count is hidden, so 3 cannot be found as total - others.
    assert shown(cells(woman=12, man=9, not_given=3)) == {
        "woman": "12", "man": "≥ 5", "not_given": "< 5"}
    # Nothing small: nothing hidden; zeros are shown.
    assert shown(cells(woman=12, man=9, other=0)) == {"woman": "12", "man": "9", "other": "0"}


def test_rare_free_text_values_are_merged_and_never_named():
    profiles = [{"languages_spoken": ["arabic", "french"]}] * 6 + [{"languages_spoken": ["tigrinya"]}] * 2
    result = reports._breakdown("languages_spoken", [(p, 1) for p in profiles + [None] * 5])
    keys = {c.key: c.shown for c in result.cells}
    assert "tigrinya" not in keys
    assert keys["arabic"] == "6" and keys["french"] == "6"
    # The merged rare values (2) are hidden, and the smallest other cell (5 not given) with them.
    assert keys[reports.OTHER] == "< 5" and keys[reports.NOT_GIVEN] == "≥ 5"


def test_the_default_range_is_the_last_twelve_months():
    assert reports.date_range(None, None, today=date(2026, 11, 22)) == (date(2025, 11, 23),
                                                                         date(2026, 11, 22))
    assert reports.date_range(None, "2028-02-29") == (date(2027, 3, 1), date(2028, 2, 29))
    with pytest.raises(reports.InvalidInput):
        reports.date_range("2026-12-31", "2026-01-01")
    with pytest.raises(reports.InvalidInput):
        reports.date_range("31/12/2026", None)


# --- The numbers -------------------------------------------------------------------------

def test_the_report_counts_people_hours_sessions_and_completions(app, populated):
    with app.app_context():
        result = reports.impact(get_db(), date(2026, 1, 1), date(2026, 6, 30))
    assert result.people == 2 + 12 + 7 + 3  # Chloé's activity was in 2025
    assert result.sessions == 1
    assert result.attendances == 1
    assert result.seconds == 90 + 1800 + 4 * 3600 + 22 * 60
    assert result.completed == 1
    packs = {p.pack_id: p for p in result.packs}
    assert packs["demo-fr"].learners == 24 and packs["demo-fr"].completed == 1
    assert packs["demo-fr"].title == "Démo Passerelle" and packs["demo-fr"].language == "fr"
    assert packs["other-pack"].language == reports.UNKNOWN_LANGUAGE
    assert {lang.language: lang.learners for lang in result.languages} == {"fr": 24, "unknown": 1}
    gender = {b.field: shown(b.cells) for b in result.breakdowns}["gender"]
    # Two small cells (3 non-binary, Bart's 1 not given): no complement needed; 0 is shown.
    assert gender == {"woman": "13", "man": "7", "non-binary": "< 5", "other": "0",
                      "not-given": "< 5"}
    ages = {b.field: shown(b.cells) for b in result.breakdowns}["age_band"]
    # Amina alone in her band: hidden, with the smallest other count of someone (never an
    # empty band: "under 18: < 5" would invent people).
    assert ages["26-35"] == "< 5" and ages["under-18"] == "0" and ages["not-given"] == "≥ 5"
    assert list(ages.values()).count("< 5") == 1


def test_the_summary_follows_every_event(app, populated):
    """activity_days (kept by a trigger) says the same as the events themselves."""
    with app.app_context():
        db = get_db()
        import json

        from_events = sum(max(0, min(14400, json.loads(p).get("seconds") or 0)) for (p,) in
                          db.execute("SELECT payload FROM ops WHERE kind = 'event'").fetchall())
        assert db.execute("SELECT sum(seconds) FROM activity_days").fetchone()[0] == from_events
        op = records.ops_since(db, records.device_id(db), 0, 10**6)[-1]
        assert records.apply(db, op) is False  # already there: nothing counted twice
        assert db.execute("SELECT sum(seconds) FROM activity_days").fetchone()[0] == from_events


def test_a_facilitator_sees_only_their_classes(app, populated, as_user):
    page = as_user("fatou").get("/manage/reports?start=2026-01-01&end=2026-06-30")
    assert page.status_code == 200
    cells_ = dict(re.findall(r'data-cell="([^"]+)">([^<]*)<', page.get_data(as_text=True)))
    assert cells_["summary|all|people_reached"] == "2"  # Amina and Bart, in Groupe A
    assert cells_["summary|all|sessions"] == "1"
    assert "Only your classes" in page.get_data(as_text=True)
    everyone = as_user("cora").get("/manage/reports?start=2026-01-01&end=2026-06-30")
    assert 'data-cell="summary|all|people_reached">24<' in everyone.get_data(as_text=True)


def report_cells(client, start="2026-01-01", end="2026-06-30") -> dict[str, str]:
    page = client.get(f"/manage/reports?start={start}&end={end}")
    assert page.status_code == 200
    return dict(re.findall(r'data-cell="([^"]+)">([^<]*)<', page.get_data(as_text=True)))


def test_a_facilitators_report_follows_attendance_not_only_todays_members(app, populated,
                                                                          as_user, box):
    """Amina attended Groupe A's session in March, then left the class: Fatou's report for the
    half-year still counts her and what she did; Dina, who was present only at a session before
    the range and left too, is not counted; a newcomer of Groupe A is (a member now)."""
    with app.app_context():
        db = get_db()
        complete_module(db, box.ids["amina"])  # 5 resources completed, 5 minutes, in March
        dina, newcomer = people(db, 2, "woman", "later")
        accounts.add_member(db, box.ids["class_a"], dina)
        old = accounts.open_session(db, box.ids["class_a"], box.ids["fatou"], date="2025-12-01")
        accounts.mark_attendance(db, old, dina, True)
        add_event(db, dina, {"pack_id": "demo-fr", "node_id": "basics/clip", "type": "time",
                             "seconds": 600})
        accounts.remove_member(db, box.ids["class_a"], dina)
        accounts.remove_member(db, box.ids["class_a"], box.ids["amina"])
        accounts.add_member(db, box.ids["class_a"], newcomer)
        add_event(db, newcomer, {"pack_id": "demo-fr", "node_id": "basics/guide", "type": "time",
                                 "seconds": 120})
        scope = reports.scope_learners(db, [box.ids["class_a"]], date(2026, 1, 1), date(2026, 6, 30))
        assert scope == {box.ids["amina"], box.ids["bart"], newcomer}
        # The session of December 2025 puts Dina in the scope of a range that includes it.
        assert dina in reports.scope_learners(db, [box.ids["class_a"]], date(2025, 12, 1),
                                              date(2026, 6, 30))

    fatou = report_cells(as_user("fatou"))
    assert fatou["summary|all|people_reached"] == "3"  # Amina, Bart and the newcomer
    assert fatou["summary|all|attendances"] == "1"
    assert fatou["pack|demo-fr|learners"] == "3"
    assert fatou["summary|all|resources_completed"] == str(1 + 5)  # Bart's 1, Amina's module
    # 90 s + 5 min (Amina), 30 min + 4 h (Bart), 2 min (newcomer); never Dina's 10 minutes.
    assert fatou["summary|all|hours"] == reports.hours(90 + 300 + 1800 + 4 * 3600 + 120)
    farid = report_cells(as_user("farid"))  # Groupe B: Chloé, active only in 2025
    assert farid["summary|all|people_reached"] == "0"


def csv_rows(body: bytes, delimiter: str = ",") -> list[list[str]]:
    assert body.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=delimiter))


def test_the_page_and_the_csv_show_the_same_numbers(populated, as_user):
    cora = as_user("cora")
    query = "?start=2026-01-01&end=2026-06-30"
    page = cora.get("/manage/reports" + query).get_data(as_text=True)
    download = cora.get("/manage/reports.csv" + query)
    assert download.status_code == 200 and download.mimetype == "text/csv"
    assert "attachment" in download.headers["Content-Disposition"]
    # For Excel set to French or Dutch (Belgium): ";" between fields, a decimal comma.
    rows = csv_rows(download.data, ";")
    # A "name" column beside each id: what a person reads.
    assert rows[0] == ["section", "item", "name", "measure", "value"]
    from_csv = {f"{s}|{i}|{m}": v.replace(",", ".") for s, i, _n, m, v in rows[1:] if s != "period"}
    names = {(s, i): n for s, i, n, _m, _v in rows[1:]}
    assert names[("pack", "demo-fr")] == "Démo Passerelle"
    import html

    from_page = {k: html.unescape(v) for k, v in re.findall(r'data-cell="([^"]+)">([^<]*)<', page)}
    assert from_csv == from_page
    assert from_csv["profile:gender|non-binary|people_reached"] == "< 5"
    assert from_csv["summary|all|people_reached"] == "24"
    # Charts are drawn by the server, with a title and a description, and no script.
    assert page.count("<svg") >= 3 and "<title id=" in page and "<desc id=" in page
    assert "<script" not in page.split("<main")[1].split("</main>")[0]


def test_the_page_and_the_csv_agree_over_whole_years(populated, as_user):
    """Whole calendar years come from the yearly summary: the page and the CSV still agree,
    and 2025 (Chloé alone) and 2026 add up to the two years together."""
    cora = as_user("cora")
    for start, end in (("2025-01-01", "2026-12-31"), ("2024-12-31", "2026-01-01")):
        query = f"?start={start}&end={end}"
        page = cora.get("/manage/reports" + query).get_data(as_text=True)
        rows = csv_rows(cora.get("/manage/reports.csv" + query).data, ";")
        from_csv = {f"{s}|{i}|{m}": v.replace(",", ".") for s, i, _n, m, v in rows[1:]
                    if s != "period"}
        import html

        assert from_csv == {k: html.unescape(v) for k, v in
                            re.findall(r'data-cell="([^"]+)">([^<]*)<', page)}
    both = report_cells(cora, "2025-01-01", "2026-12-31")
    assert both["summary|all|people_reached"] == str(2 + 12 + 7 + 3 + 1)
    assert report_cells(cora, "2025-01-01", "2025-12-31")["summary|all|people_reached"] == "1"


def test_bad_dates_are_explained(as_user):
    cora = as_user("cora")
    page = cora.get("/manage/reports?start=2026-13-01")
    assert page.status_code == 400 and "year-month-day" in page.get_data(as_text=True)
    assert cora.get("/manage/reports.csv?start=2026-12-01&end=2026-01-01").status_code == 400


def test_learners_and_guests_cannot_see_reports(as_user):
    assert as_user("amina").get("/manage/reports").status_code == 403
    assert as_user(None).get("/manage/reports.csv").status_code == 302


# --- The command line ----------------------------------------------------------------------

@pytest.fixture
def report_cli(box):
    added = "report" not in cli.commands  # registered when the CLI package is imported
    if added:
        cli.add_command(report_group)
    yield Runner(box.home)
    if added:  # leave the group as it was found: later tests run `passerelle report` too
        cli.commands.pop("report", None)


def test_the_cli_prints_and_writes_the_same_report(app, populated, report_cli, tmp_path):
    out = report_cli("report", "impact", "--start", "2026-01-01", "--end", "2026-06-30")
    assert out.exit_code == 0, out.stderr
    assert re.search(r"summary all people_reached\s+24", out.stdout)
    target = tmp_path / "impact.csv"
    written = report_cli("report", "impact", "--start", "2026-01-01", "--end", "2026-06-30",
                         "--csv", str(target))
    assert written.exit_code == 0, written.stderr
    rows = csv_rows(target.read_bytes())
    with app.app_context():
        expected = reports.impact(get_db(), date(2026, 1, 1), date(2026, 6, 30)).rows()
    assert [tuple(r) for r in rows[1:]] == expected
    bad = report_cli("report", "impact", "--start", "nope")
    assert bad.exit_code == 7 and "not valid" in bad.stderr


def test_every_report_command_has_an_example(report_cli):
    for args in (["report"], ["report", "impact"], ["report", "progress"], ["report", "xapi"]):
        result = report_cli(*args, "--help")
        assert result.exit_code == 0 and "Example: passerelle report" in result.stdout


# --- Certificates ------------------------------------------------------------------------------

def test_a_certificate_for_a_completed_module(app, box, as_user):
    with app.app_context():
        complete_module(get_db(), box.ids["amina"], datetime(2026, 4, 2, 9, tzinfo=UTC))
    url = f"/manage/certificates/{box.ids['amina']}/demo-fr/basics"
    page = as_user("fatou").get(url)
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    for words in ("Espace Numérique Test", "Amina", "Les bases", "April 2, 2026", "signature-line",
                  "Certificate of completion", '<main class="certificate" lang="en" dir="ltr">'):
        assert words in text
    # Nothing from outside the box: every address on the page is one of its own paths.
    assert all(ref.startswith("/") for ref in re.findall(r'(?:src|href)="([^"]+)"', text))
    # In another language of the box, chosen on the page, Arabic right to left; the page around
    # it (links and buttons, never printed) stays in the facilitator's language.
    arabic = as_user("fatou").get(url + "?lang=ar").get_data(as_text=True)
    assert '<main class="certificate" lang="ar" dir="rtl">' in arabic
    assert '<html lang="en" dir="ltr">' in arabic and "Back to the impact report" in arabic
    assert "Amina" in arabic and "Les bases" in arabic
    assert "أبريل" in arabic  # the date in words, in Arabic
    unknown = as_user("fatou").get(url + "?lang=xx").get_data(as_text=True)
    assert '<main class="certificate" lang="en" dir="ltr">' in unknown
    # By default, the learner's own language.
    with app.app_context():
        accounts.update_user(get_db(), box.ids["amina"], language="nl")
    assert '<main class="certificate" lang="nl" dir="ltr">' in as_user("fatou").get(url).get_data(as_text=True)
    assert as_user("cora").get(url).status_code == 200
    assert as_user("farid").get(url).status_code == 403  # not one of Amina's classes
    assert as_user("amina").get(url).status_code == 403
    # Listed for her class, linked from the report page.
    listing = as_user("fatou").get(f"/manage/reports/certificates/{box.ids['class_a']}")
    assert url in listing.get_data(as_text=True)
    assert f"/manage/reports/certificates/{box.ids['class_a']}" in \
        as_user("fatou").get("/manage/reports").get_data(as_text=True)


def test_no_certificate_before_every_resource_is_completed(app, box, as_user):
    with app.app_context():
        add_event(get_db(), box.ids["bart"], {"pack_id": "demo-fr", "node_id": "basics/welcome",
                                              "type": "completed"})
    page = as_user("cora").get(f"/manage/certificates/{box.ids['bart']}/demo-fr/basics")
    assert page.status_code == 404
    assert "has completed 1 of the 5 resources" in page.get_data(as_text=True)
    assert as_user("cora").get(f"/manage/certificates/{box.ids['bart']}/demo-fr/nope").status_code == 404


def test_the_summaries_give_the_same_figures_as_the_events_for_any_range(template_db, tmp_path):
    """Whole months from activity_months, the days at the ends from activity_days: for ranges
    that start and end anywhere, the figures equal a count over the events themselves."""
    import random
    import shutil
    from datetime import timedelta

    from passerelle.server import db as dbmod
    from passerelle.server import records

    shutil.copy(template_db, tmp_path / "p.db")
    db = dbmod.connect(tmp_path / "p.db")
    rng = random.Random(7)
    made = []
    with records.write_tx(db):
        for i in range(400):
            day = date(2026, 1, 1) + timedelta(days=rng.randrange(120))
            learner, pack = f"l{rng.randrange(30)}", f"p{rng.randrange(3)}"
            seconds = rng.randrange(600)
            op = records._new_op(db, "event", "progress", learner, {
                "event_id": f"e{i}", "pack_id": pack, "node_id": "n", "type": "progress",
                "seconds": seconds, "occurred_at": f"{day.isoformat()}T23:30:00+00:00"})
            records.apply(db, op)
            made.append((day, learner, pack, seconds))
    assert db.execute("SELECT sum(events) FROM activity_months").fetchone()[0] == 400
    for _ in range(25):
        start = date(2026, 1, 1) + timedelta(days=rng.randrange(120))
        end = start + timedelta(days=rng.randrange(100))
        report = reports.impact(db, start, end)
        inside = [m for m in made if start <= m[0] <= end]
        assert report.seconds == sum(m[3] for m in inside)
        assert report.people == len({m[1] for m in inside})
        assert {p.pack_id: p.learners for p in report.packs} == {
            pack: len({m[1] for m in inside if m[2] == pack}) for pack in {m[2] for m in inside}}
    db.close()
