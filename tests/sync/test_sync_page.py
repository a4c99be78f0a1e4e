"""The coordinator's sync page and a new box joining its hub from the setup page, against a
real hub served on 127.0.0.1."""

from __future__ import annotations

import time

from passerelle.server import __version__, records
from passerelle.server import sync as syncmod
from passerelle.server.app import create_app

from tests.conftest import csrf_token, english_client, sign_in


def _wait_for(check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_a_new_box_joins_the_hub_from_its_setup_page(http_kit, box):
    kit = http_kit
    new = kit.new("van")
    app = create_app({"home": new.home, "TESTING": True})
    client = english_client(app)
    page = client.get("/setup").get_data(as_text=True)
    assert "join your organisation" in page

    token = csrf_token(client)
    wrong = client.post("/setup/join", data={"csrf_token": token, "url": kit.hub.url,
                                             "code": "22222-22222"})
    assert wrong.status_code == 400
    assert "code is wrong" in wrong.get_data(as_text=True)

    joined = client.post("/setup/join", data={"csrf_token": token, "url": kit.hub.url,
                                              "code": kit.code()})
    assert joined.status_code == 302 and joined.headers["Location"].endswith("/setup/joining")

    def done():
        answer = client.get("/setup/joining")
        return answer if answer.status_code == 302 else None

    assert _wait_for(done).headers["Location"].endswith("/signin/staff")
    # The hub's coordinator signs in on the new box with the password she has on the hub.
    sign_in(client, box, "cora")
    home = client.get("/manage").get_data(as_text=True)
    assert "Espace Numérique Test" in home
    # And the setup page is gone for good.
    assert client.get("/setup").status_code == 302


def test_the_hub_page_lists_its_boxes_makes_codes_and_revokes(http_kit, as_user, box_app):
    kit = http_kit
    a = kit.new("library")
    kit.pair(a)
    for i in range(5):
        records.event(a.db, "someone", {"pack_id": "p", "node_id": f"n{i}", "type": "answer",
                                        "correct": True, "seconds": 5})
    assert kit.sync(a).ok

    box_app.config["SETTINGS"].values["hub_mode"] = True
    cora = as_user("cora")
    page = cora.get("/manage/sync").get_data(as_text=True)
    assert "Boxes of the organisation" in page
    assert "library" in page and "Up to date" in page, page[page.find("<main"):]
    assert f"version {__version__}" in page

    assert as_user("fatou").get("/manage/sync").status_code == 403   # coordinators only
    assert as_user("amina").get("/manage/sync").status_code == 403

    token = csrf_token(cora)
    made = cora.post("/manage/sync/code", data={"csrf_token": token}).get_data(as_text=True)
    assert "pairing-code" in made and "valid 10 minutes" in made

    revoked = cora.post(f"/manage/sync/revoke/{a.device}", data={"csrf_token": token},
                        follow_redirects=True).get_data(as_text=True)
    assert "Revoked on" in revoked
    again = kit.sync(a)
    assert not again.ok and "revoked" in again.summary()


def test_sync_now_from_a_box_page_runs_in_the_background(http_kit, box):
    kit = http_kit
    a = kit.new("station")
    kit.pair(a)
    assert kit.sync(a).ok                       # the box now has the organisation and cora
    records.put(kit.hub_db(), "class", "class-late", {"name": "Made on the hub later"})

    app = create_app({"home": a.home, "TESTING": True})
    client = english_client(app)
    sign_in(client, box, "cora")
    before = client.get("/manage/sync").get_data(as_text=True)
    assert "Hub and other boxes" in before and "Sync now" in before
    client.post("/manage/sync/now", data={"csrf_token": csrf_token(client)})
    _wait_for(lambda: records.load(a.db, "class", "class-late"))
    assert syncmod.peers(a.db)[0]["last_ok_at"]


def test_the_hubs_impact_report_counts_what_learners_did_on_every_box(http_kit, box):
    from datetime import date

    from passerelle.server.reports import impact as reports

    kit = http_kit
    hub = kit.hub_db()
    today = date.today()
    before = reports.impact(hub, today, today)
    boxes = [kit.new("library"), kit.new("van")]
    for b, learner in zip(boxes, ("amina", "chloe"), strict=True):
        kit.pair(b)
        assert kit.sync(b).ok                  # the box receives the organisation's learners
        records.event(b.db, box.ids[learner], {"event_id": f"on-{b.name}", "pack_id": "demo-fr",
                                               "node_id": "basics/welcome", "type": "completed",
                                               "seconds": 600})
        assert kit.sync(b).ok
    after = reports.impact(hub, today, today)
    assert after.people == before.people + 2
    assert after.seconds == before.seconds + 1200
    assert after.completed == before.completed + 2


def test_the_organisation_asks_for_encrypted_bundles_and_every_box_follows(http_kit, as_user,
                                                                          tmp_path):
    import pytest
    from passerelle.server.errors import InvalidInput

    kit = http_kit
    plain = syncmod.export_bundle(kit.hub_db(), kit.hub_home, tmp_path / "before.bundle")
    cora = as_user("cora")
    page = cora.post("/manage/sync/bundles", data={"csrf_token": csrf_token(cora), "encrypt": "1"},
                     follow_redirects=True).get_data(as_text=True)
    assert "will be encrypted" in page
    hub = kit.hub_db()
    with pytest.raises(InvalidInput, match="asks for encrypted bundles"):
        syncmod.export_bundle(hub, kit.hub_home, tmp_path / "plain.bundle")
    sealed = syncmod.export_bundle(hub, kit.hub_home, tmp_path / "sealed.bundle",
                                   passphrase="correct horse")

    a = kit.new("van")
    kit.pair(a)
    assert kit.sync(a).ok                       # the choice travels with the organisation
    assert syncmod.bundles_encrypted(a.db)
    with pytest.raises(InvalidInput, match="asks for encrypted bundles"):
        syncmod.export_bundle(a.db, a.home, tmp_path / "from-a.bundle")
    with pytest.raises(InvalidInput, match="this one is not encrypted"):
        syncmod.import_bundle(a.db, plain.path)
    taken = syncmod.import_bundle(a.db, sealed.path, passphrase="correct horse")
    assert taken.applied == 0 and taken.duplicates > 0     # it had it all from the hub already
