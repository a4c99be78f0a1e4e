"""Sites: a hub (on SQLite, and on PostgreSQL) and three SQLite boxes in two sites, over HTTP
on 127.0.0.1 and by USB bundle. Each box holds only its own site's learners; the boxes of a site converge; the hub
holds everything and its impact report covers every box; a learner who moves follows."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from passerelle.server import records
from passerelle.server import sync as syncmod
from passerelle.server.people import accounts, sites
from passerelle.server.reports import impact


@pytest.fixture(params=["sqlite", "postgresql"])
def box(request, box_template, tmp_path):
    """The hub these tests serve: the set-up box, its records on SQLite or on PostgreSQL
    (a programme's hub); the boxes that sync with it stay on SQLite."""
    import shutil

    from tests.conftest import Box, postgresql_box

    if request.param == "postgresql":
        return postgresql_box(request, tmp_path)
    template, ids = box_template
    shutil.copytree(template, tmp_path / "box")
    return Box(tmp_path / "box", ids)


SITE_TABLES = ["users", "classes", "memberships", "progress", "sites", "organisations"]


def learners(db) -> dict[str, str | None]:
    return dict(db.execute("SELECT uuid, site FROM users WHERE role = 'learner' AND deleted = 0"))


def state(db) -> dict:
    """The folded tables and the real operations (placeholders of skipped runs left out: two
    boxes of a site may have been skipped the same operations in different runs)."""
    found = {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in SITE_TABLES}
    found["ops"] = sorted(db.execute("SELECT * FROM ops WHERE entity != ?",
                                     [syncmod.ops.SKIP_ENTITY]).fetchall(), key=repr)
    return found


def progress_of(db, learner: str) -> list:
    return db.execute("SELECT pack_id, node_id, progress, seconds, answers, correct FROM progress"
                      " WHERE learner_uuid = ? ORDER BY pack_id, node_id", [learner]).fetchall()


def events(db, learner: str, n: int, tag: str) -> None:
    for i in range(n):
        records.event(db, learner, {"event_id": f"{tag}-{i}", "pack_id": "pack", "node_id": f"n{i % 4}",
                                    "type": "answer", "correct": i % 2 == 0, "seconds": 30})


def setup_hub(hub):
    """Two sites; the template's learners and classes given a home on the hub."""
    site_a, site_b = sites.create_site(hub, "Molenbeek"), sites.create_site(hub, "Schaerbeek")
    existing = sorted(learners(hub))
    for i, uid in enumerate(existing):
        sites.move(hub, "user", uid, site_a if i % 2 == 0 else site_b)
    for i, cls in enumerate(sorted(c["uuid"] for c in records.query(hub, "class"))):
        sites.move(hub, "class", cls, site_a if i % 2 == 0 else site_b)
    return site_a, site_b


def test_three_boxes_two_sites_over_http_converge_and_hold_only_their_site(http_kit):
    kit = http_kit
    hub = kit.hub_db()
    site_a, site_b = setup_hub(hub)
    a1, a2, b1 = kit.new("a1"), kit.new("a2"), kit.new("b1")
    for box, site in ((a1, site_a), (a2, site_a), (b1, site_b)):
        kit.pair(box)
        syncmod.assign_site(hub, box.device, site)
    # The hub keeps writing for both sites, interleaved: the boxes are skipped the other's runs.
    hub_a = accounts.create_user(hub, role="learner", display_name="Hub A", pin="1234")
    sites.move(hub, "user", hub_a, site_a)
    hub_b = accounts.create_user(hub, role="learner", display_name="Hub B", pin="1234")
    sites.move(hub, "user", hub_b, site_b)
    for i in range(6):
        events(hub, hub_a if i % 2 else hub_b, 1, f"hub-{i}")

    for box in (a1, a2, b1):
        result = kit.sync(box)
        assert result.ok, result.summary()
        assert sites.this_site(box.db) == (site_b if box is b1 else site_a)

    # Each box makes its own learners (they get the box's site) and their progress.
    made = {}
    for box in (a1, a2, b1):
        made[box.name] = accounts.create_user(box.db, role="learner", display_name=f"On {box.name}",
                                              pin="4321")
        assert learners(box.db)[made[box.name]] == sites.this_site(box.db)
        events(box.db, made[box.name], 5, box.name)
    staff = accounts.create_user(b1.db, role="facilitator", display_name="Staff of B",
                                 username="staffb", password="a long password 123")

    for _ in range(2):
        for box in (a1, a2, b1):
            result = kit.sync(box)
            assert result.ok, result.summary()
    for box in (a1, a2, b1):
        assert kit.sync(box).summary().endswith("nothing new either way")

    hub_learners = learners(hub)
    assert {made["a1"], made["a2"], made["b1"], hub_a, hub_b} <= hub_learners.keys()
    for box in (a1, a2, b1):
        mine = sites.this_site(box.db)
        held = learners(box.db)
        assert held and set(held.values()) == {mine}, box.name
        assert held == {u: s for u, s in hub_learners.items() if s == mine}
        # Progress only of its own learners; organisation-wide records (staff) everywhere.
        assert {r[0] for r in box.db.execute("SELECT learner_uuid FROM progress")} <= held.keys()
        assert records.load(box.db, "user", staff) is not None
        assert len(sites.list_sites(box.db)) == 2
    assert state(a1.db) == state(a2.db)
    skipped = "SELECT count(*) FROM ops WHERE entity = ?"
    assert b1.db.execute(skipped, [syncmod.ops.SKIP_ENTITY]).fetchone()[0] > 0
    assert progress_of(a1.db, made["a2"]) == progress_of(hub, made["a2"]) != []
    assert made["a1"] not in learners(b1.db) and made["b1"] not in learners(a1.db)

    # The hub's report covers all three boxes (5 answers of 30 s each from each box's learner).
    today = date.today()
    report = impact.impact(hub, today - timedelta(days=1), today + timedelta(days=1))
    assert report.seconds >= 3 * 5 * 30 + 6 * 30
    assert {made["a1"], made["a2"], made["b1"]} <= {
        r[0] for r in hub.execute("SELECT DISTINCT learner_uuid FROM activity_days")}

    # A learner moves from site A to site B: their record and all their progress reach b1.
    sites.move(hub, "user", made["a1"], site_b)
    events(a1.db, made["a1"], 3, "a1-late")  # a1 has not heard yet
    for box in (a1, b1, a1, b1, a2):
        assert kit.sync(box).ok
    assert learners(b1.db)[made["a1"]] == site_b
    # What b1 had been skipped of that learner came after the move, below its vector.
    assert b1.db.execute("SELECT count(*) FROM ops WHERE origin = ? AND subject = ?",
                         [a1.device, made["a1"]]).fetchone()[0] == 1 + 5 + 3
    assert progress_of(b1.db, made["a1"]) == progress_of(hub, made["a1"])
    assert sum(r[4] for r in progress_of(b1.db, made["a1"])) == 8
    # The old site's boxes let the learner go (pruned once the hub held everything of theirs)
    # and get no more of them.
    assert made["a1"] not in learners(a2.db) and progress_of(a2.db, made["a1"]) == []
    events(hub, made["a1"], 2, "after-move")
    assert kit.sync(a2).ok and kit.sync(b1).ok
    assert progress_of(a2.db, made["a1"]) == []
    assert sum(r[4] for r in progress_of(b1.db, made["a1"])) == 10


def test_sites_by_usb_bundle(make_boxes, tmp_path, kit):
    hub, a, b = make_boxes(3)
    for box in (a, b):  # each box paired with the hub: it takes its word about skips
        syncmod.trust(box.db, hub.device, hub.public_key, label="hub", anchor=True)
    site_a, site_b = sites.create_site(hub.db, "A"), sites.create_site(hub.db, "B")
    syncmod.assign_site(hub.db, a.device, site_a)
    syncmod.assign_site(hub.db, b.device, site_b)
    for i in range(6):
        uid = f"learner-{i}"
        records.put(hub.db, "user", uid, {"role": "learner", "display_name": f"L{i}",
                                          "site": site_a if i % 2 == 0 else site_b})
        events(hub.db, uid, 3, f"hub-{i}")

    def carry(src, dst, site=None):
        path = syncmod.export_bundle(src.db, src.home, tmp_path / f"{src.name}-{dst.name}.bundle",
                                     syncmod.vector(dst.db), site=site, log=False).path
        return syncmod.import_bundle(dst.db, path, log=False)

    for box, site in ((a, site_a), (b, site_b)):
        carry(hub, box, site)
        assert set(learners(box.db).values()) == {site}
        assert syncmod.vector(box.db) == syncmod.vector(hub.db)  # skips keep it contiguous
        assert sites.this_site(box.db) == site  # the hub's signed word, as over the network
    # Boxes write, bundles go to the hub and back.
    for box, site in ((a, site_a), (b, site_b)):
        records.put(box.db, "user", f"new-{box.name}", {"role": "learner", "display_name": "N",
                                                         "site": site})
        events(box.db, f"new-{box.name}", 2, box.name)
        carry(box, hub)
    for box, site in ((a, site_a), (b, site_b)):
        carry(hub, box, site)
        assert set(learners(box.db).values()) == {site}
    assert f"new-{a.name}" in learners(hub.db) and f"new-{b.name}" in learners(hub.db)
    assert f"new-{a.name}" not in learners(b.db)
    # learner-0 moves to site B. Box a, which only ever sees USB sticks, records one more
    # answer of hers before it hears: she stays on a until the hub's bundle says it holds it.
    sites.move(hub.db, "user", "learner-0", site_b)
    events(a.db, "learner-0", 1, "a-late")
    waiting = carry(hub, a, site_a)
    assert waiting.pruned == 0 and progress_of(a.db, "learner-0")
    carry(a, hub)
    done = carry(hub, a, site_a)
    assert done.pruned == 1 and "moved to another site" in done.summary()
    assert traces(a.db, "learner-0") == {} and contiguous(a.db)
    assert set(learners(a.db).values()) == {site_a}
    carry(hub, b, site_b)  # her whole history reaches her new site, the late answer included
    assert sum(r[4] for r in progress_of(b.db, "learner-0")) == 4
    assert sum(r[4] for r in progress_of(hub.db, "learner-0")) == 4
    # A bundle from a box that is not the anchor is not believed about skips: what follows a
    # skipped run waits as a gap instead of being taken as complete.
    c = make_boxes(1)[0]
    kit.trust_all([hub, c])
    records.put(hub.db, "user", "late-b", {"role": "learner", "display_name": "Late", "site": site_b})
    result = carry(hub, c, site_a)
    assert "late-b" not in learners(c.db) and sites.this_site(c.db) is None
    assert syncmod.vector(c.db).get(hub.device, 0) < syncmod.vector(hub.db)[hub.device]
    assert result.held or result.applied


def test_the_hub_page_makes_sites_and_puts_boxes_in_them(http_kit, as_user, box_app):
    from tests.conftest import csrf_token

    kit = http_kit
    a = kit.new("library")
    kit.pair(a)
    box_app.config["SETTINGS"].values["hub_mode"] = True
    cora = as_user("cora")
    token = csrf_token(cora)
    page = cora.post("/manage/sync/sites", data={"csrf_token": token, "name": "Molenbeek"},
                     follow_redirects=True).get_data(as_text=True)
    assert "Molenbeek" in page and "The site is made" in page
    hub = kit.hub_db()
    site = sites.find_site(hub, "Molenbeek")["uuid"]
    saved = cora.post(f"/manage/sync/sites/assign/{a.device}",
                      data={"csrf_token": token, "site": site}, follow_redirects=True)
    assert "receives its site" in saved.get_data(as_text=True)
    assert syncmod.device_site(hub, a.device) == site
    fatou = as_user("fatou")
    assert fatou.post("/manage/sync/sites", data={"csrf_token": csrf_token(fatou),
                                                  "name": "X"}).status_code == 403
    assert kit.sync(a).ok and sites.this_site(a.db) == site


def test_sites_from_the_command_line(http_kit, sync_cli):
    kit = http_kit
    a = kit.new("library")
    kit.pair(a)
    code, out, err = sync_cli(kit.hub_home, "site", "add", "Schaerbeek")
    assert code == 0, err
    code, out, err = sync_cli(kit.hub_home, "site", "assign", a.device, "Schaerbeek")
    assert code == 0 and "now receives Schaerbeek" in out, err
    hub = kit.hub_db()
    learner = sorted(learners(hub))[0]
    code, out, err = sync_cli(kit.hub_home, "site", "move", learner, "schaerbeek")
    assert code == 0, err
    code, out, err = sync_cli(kit.hub_home, "site", "list", "--json")
    import json

    listed = json.loads(out)["sites"]
    assert listed[0]["name"] == "Schaerbeek" and listed[0]["learners"] == 1
    assert listed[0]["boxes"] == [a.device]
    assert kit.sync(a).ok
    assert learners(a.db) == {u: s for u, s in learners(hub).items() if s is None or
                              s == listed[0]["uuid"]}


def test_the_device_list_travels_only_when_it_changed(http_kit, monkeypatch):
    kit = http_kit
    a, b = kit.new("a"), kit.new("b")
    kit.pair(a)
    taken = []
    real = syncmod.adopt_devices
    monkeypatch.setattr(syncmod, "adopt_devices", lambda *args: taken.append(1) or real(*args))
    assert kit.sync(a).ok and len(taken) == 1
    assert kit.sync(a).ok and len(taken) == 1       # unchanged: not sent, not adopted
    kit.pair(b)                                     # the hub's list changed
    assert kit.sync(a).ok and len(taken) == 2
    assert b.device in {d["device_id"] for d in syncmod.devices(a.db)}
    assert kit.sync(a).ok and len(taken) == 2


def test_sync_log_is_kept_by_time_not_by_count(make_boxes):
    from datetime import UTC, datetime, timedelta

    box = make_boxes(1, trusted=False)[0]
    old = (datetime.now(UTC) - timedelta(days=31)).isoformat(timespec="seconds")
    recent = (datetime.now(UTC) - timedelta(days=29)).isoformat(timespec="seconds")
    with records.write_tx(box.db):
        for at in [old] * 3 + [recent] * 600:
            box.db.execute("INSERT INTO sync_log (at, direction, ok, message) VALUES (?, 'sync', 1,"
                           " 'x')", [at])
    syncmod.log_attempt(box.db, "sync", None, None, True, "now")
    ats = [r[0] for r in box.db.execute("SELECT at FROM sync_log")]
    assert len(ats) == 601 and old not in ats


# --- A learner who moved leaves the old site's boxes ------------------------------------------

def traces(db, learner: str) -> dict[str, int]:
    """Every row of this database that names the learner: every table with a column naming a
    person, and the log (as subject, or anywhere in a payload)."""
    found = {}
    for table, column in syncmod.partition.LEARNER_COLUMNS.items():
        found[table] = db.execute(f"SELECT count(*) FROM {table} WHERE {column} = ?",
                                  [learner]).fetchone()[0]
    found["ops"] = db.execute("SELECT count(*) FROM ops WHERE subject = ? OR payload LIKE ?",
                              [learner, f"%{learner}%"]).fetchone()[0]
    found["signin_failures"] = db.execute("SELECT count(*) FROM signin_failures WHERE key LIKE ?",
                                          [f"%{learner}%"]).fetchone()[0]
    return {t: n for t, n in found.items() if n}


def contiguous(db) -> bool:
    """Every seq up to the vector is an operation or inside a placeholder's run, per origin."""
    for origin, top in syncmod.vector(db).items():
        covered = set()
        for seq, entity, payload in db.execute("SELECT seq, entity, payload FROM ops WHERE origin = ?",
                                               [origin]):
            first = json.loads(payload)["first"] if entity == syncmod.ops.SKIP_ENTITY else seq
            covered.update(range(first, seq + 1))
        if not set(range(1, top + 1)) <= covered:
            return False
    return True


def test_a_learner_who_moves_leaves_the_old_sites_box(http_kit):
    kit = http_kit
    hub = kit.hub_db()
    site_a, site_b = setup_hub(hub)
    a1, a2, b1 = kit.new("a1"), kit.new("a2"), kit.new("b1")
    for box, site in ((a1, site_a), (a2, site_a), (b1, site_b)):
        kit.pair(box)
        syncmod.assign_site(hub, box.device, site)
        assert kit.sync(box).ok
    # A learner of a1's site, with a record, progress, a bookmark, a class, attendance, a sign-in.
    amina = accounts.create_user(a1.db, role="learner", display_name="Amina", pin="4321")
    stays = accounts.create_user(a1.db, role="learner", display_name="Stays", pin="4321")
    events(a1.db, amina, 6, "amina")
    events(a1.db, stays, 2, "stays")
    records.put(a1.db, "bookmark", "bm-amina", {"learner_uuid": amina, "pack_id": "pack",
                                                 "node_id": "n1", "created_at": "2026-01-01"})
    cls = accounts.create_class(a1.db, "Reading")
    accounts.add_member(a1.db, cls, amina)
    staff = accounts.create_user(a1.db, role="facilitator", display_name="Fac", username="fac",
                                 password="a long password 123")
    session = accounts.open_session(a1.db, cls, staff, date="2026-12-01")
    accounts.mark_attendance(a1.db, session, amina, True)
    accounts.start_signin(a1.db, records.load(a1.db, "user", amina), 3600)
    for box in (a1, a2, a1):
        assert kit.sync(box).ok
    assert traces(a2.db, amina)  # a2 is of the same site: it holds her too
    hub_before = traces(hub, amina)

    # She moves to site B; a1 has not heard yet and records one more answer of hers.
    sites.move(hub, "user", amina, site_b)
    events(a1.db, amina, 1, "amina-late")
    result = kit.sync(a1)
    assert result.ok, result.summary()
    assert any("taken off this box" in n for n in result.notes)
    assert traces(a1.db, amina) == {}, "a1 still holds something of the learner who left"
    assert contiguous(a1.db)
    # Nothing is lost: the hub has the late answer, and b1 receives her whole history.
    assert kit.sync(b1).ok
    for db in (hub, b1.db):
        assert sum(r[4] for r in progress_of(db, amina)) == 7
        assert records.load(db, "user", amina)["site"] == site_b
        assert records.load(db, "bookmark", "bm-amina") is not None
    assert traces(hub, amina)["ops"] == hub_before["ops"] + 2  # the move and the late answer
    # The other learner stays; a2 prunes her at its own next sync.
    assert progress_of(a1.db, stays) == progress_of(hub, stays) != []
    assert kit.sync(a2).ok and traces(a2.db, amina) == {}
    # a1 syncs on as before: its new writes reach the hub, its vector stays the hub's.
    events(a1.db, stays, 2, "stays-later")
    for box in (a1, b1, a2, a1):
        assert kit.sync(box).ok
    assert kit.sync(a1).summary().endswith("nothing new either way")
    assert syncmod.vector(a1.db) == syncmod.vector(hub)
    assert contiguous(a1.db) and contiguous(a2.db)
    assert sum(r[4] for r in progress_of(hub, stays)) == 4
    assert traces(a1.db, amina) == {} and traces(b1.db, amina)
    # She comes back: a1 receives her whole history again from the hub.
    sites.move(hub, "user", amina, site_a)
    assert kit.sync(a1).ok
    assert sum(r[4] for r in progress_of(a1.db, amina)) == 7
    assert records.load(a1.db, "bookmark", "bm-amina") is not None


def test_pruning_waits_for_the_hub_to_hold_everything(make_boxes, kit):
    hub, a = make_boxes(2)
    syncmod.trust(a.db, hub.device, hub.public_key, label="hub", anchor=True)
    site_a, site_b = sites.create_site(hub.db, "A"), sites.create_site(hub.db, "B")
    records.put(hub.db, "user", "lea", {"role": "learner", "display_name": "Léa", "site": site_a})
    syncmod.assign_site(hub.db, a.device, site_a)
    sites.set_this_site(a.db, site_a)

    def pull():
        for batch in syncmod.changes_for_site(hub.db, syncmod.vector(a.db), site_a, home=hub.home):
            syncmod.apply_received(a.db, batch.ops, batch.skips if hasattr(batch, "skips") else [],
                                   syncmod.trusted_keys(a.db), from_anchor=True)

    pull()
    events(a.db, "lea", 3, "lea")              # not on the hub yet
    sites.move(hub.db, "user", "lea", site_b)
    pull()
    assert records.load(a.db, "user", "lea")["site"] == site_b
    waiting = syncmod.prune_departed(a.db, syncmod.vector(hub.db))
    assert waiting.learners == [] and waiting.waiting == ["lea"]
    assert len(progress_of(a.db, "lea")) == 3  # kept until the hub holds them
    kit.direct(a, hub)
    done = syncmod.prune_departed(a.db, syncmod.vector(hub.db))
    assert done.learners == ["lea"] and traces(a.db, "lea") == {}
    assert contiguous(a.db)
    assert sum(r[4] for r in progress_of(hub.db, "lea")) == 3
