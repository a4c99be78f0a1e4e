"""Drop-in use: visitors who do not sign in are counted anonymously, and the impact report shows it."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from passerelle.server import records
from passerelle.server.db import get_db
from passerelle.server.learning import guests
from passerelle.server.reports import impact

TODAY = datetime.now(UTC).date()


def rows(app) -> list[tuple]:
    with app.app_context():
        return get_db().execute("SELECT day, guest, pack_id, views, seconds FROM guest_days"
                                " ORDER BY pack_id").fetchall()


def test_a_guest_looking_around_is_counted_without_a_name(app, as_user):
    guest = as_user(None)
    for url in ("/", "/learn/demo-fr", "/learn/demo-fr/basics", "/search?q=courriel"):
        assert guest.get(url, follow_redirects=True).status_code == 200
    found = rows(app)
    assert {r[1] for r in found} and len({r[1] for r in found}) == 1  # one visitor...
    visitor = found[0][1]
    assert visitor.startswith("guest-") and len(visitor) == 38     # ...a random id, nothing else
    assert sum(r[3] for r in found) == 4                            # four pages
    assert {r[2] for r in found} == {"", "demo-fr"}
    with app.app_context():
        db = get_db()
        # Not a learner, not a person: nothing about it in the people's tables or the progress.
        assert db.execute("SELECT count(*) FROM users WHERE uuid = ?", [visitor]).fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM progress").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM activity_days").fetchone()[0] == 0


def test_signed_in_people_are_not_guests(app, as_user):
    for who in ("amina", "fatou"):
        as_user(who).get("/learn/demo-fr/basics")
    assert rows(app) == []


def test_time_is_the_gap_to_the_next_page_and_a_new_day_is_a_new_visitor(app):
    with app.app_context():
        db = get_db()
        start = datetime(2026, 11, 2, 10, 0, tzinfo=UTC).timestamp()
        visit = guests.view(db, None, "demo-fr", "basics", now=start)
        visit = guests.view(db, visit, "demo-fr", "basics/welcome", now=start + 90)
        visit = guests.view(db, visit, "", "", now=start + 90 + 3 * 3600)  # left for 3 hours
        same_day = visit["id"]
        visit = guests.view(db, visit, "demo-fr", "basics", now=start + 86400)
        assert visit["id"] != same_day
        use = guests.use(db, date(2026, 11, 2), date(2026, 11, 3))
        assert (use.visits, use.views, use.seconds) == (2, 4, 90)
        assert [(p.pack_id, p.visits, p.views, p.seconds) for p in use.packs] == [("demo-fr", 2, 3, 90)]
        # The events are the record: folded again from the log (as sync does), the same rows.
        before = db.execute("SELECT * FROM guest_days ORDER BY 1, 2, 3").fetchall()
        ops = db.execute("SELECT origin, seq, version, kind, entity, subject, payload FROM ops"
                         " WHERE entity = 'guest'").fetchall()
        with records.write_tx(db):
            db.execute("DELETE FROM ops WHERE entity = 'guest'")
            db.execute("DELETE FROM guest_days")
            for origin, seq, version, kind, entity, subject, payload in ops:
                import json
                records.apply(db, records.Op(origin, seq, version, kind, entity, subject,
                                             json.loads(payload)))
        assert db.execute("SELECT * FROM guest_days ORDER BY 1, 2, 3").fetchall() == before


def test_the_impact_report_shows_drop_in_use_beside_learners(app, as_user):
    guest = as_user(None)
    guest.get("/learn/demo-fr/basics")
    guest.get("/learn/demo-fr/basics/welcome")
    coordinator = as_user("cora")
    page = coordinator.get("/manage/reports").get_data(as_text=True)
    cells = dict(re.findall(r'data-cell="([^"]+)">([^<]*)<', page))
    assert cells["guests|all|visits"] == "1" and cells["guests|all|page_views"] == "2"
    assert cells["guests:pack|demo-fr|page_views"] == "2"
    assert cells["summary|all|people_reached"] == "0"  # a guest is not a person reached
    assert "Drop-in use, without signing in" in page
    csv = coordinator.get("/manage/reports.csv").get_data(as_text=True)
    assert "guests;all;;visits;1" in csv.replace('"', "")
    assert "guests:pack;demo-fr;Démo Passerelle;page_views;2" in csv.replace('"', "")
    # A facilitator's report covers their classes: visitors belong to none.
    mine = as_user("fatou").get("/manage/reports").get_data(as_text=True)
    assert "guests|all|visits" not in mine
    with app.app_context():
        report = impact.impact(get_db(), TODAY, TODAY)
        assert ("guests", "all", "page_views", "2") in report.rows()
