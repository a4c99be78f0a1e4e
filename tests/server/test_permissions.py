"""Who may do what: every route for every role, deny by default, no peeking at others' data."""

import pytest
from passerelle.server.errors import Forbidden
from passerelle.server.web.auth import ANYONE, SIGNED_IN

from tests.conftest import csrf_token

ROLES = [None, "amina", "fatou", "cora"]  # guest, learner, facilitator, coordinator
ROLE_OF = {None: ANYONE, "amina": "learner", "fatou": "facilitator", "cora": "coordinator"}


def routes(app):
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method, view


def test_every_route_declares_who_may_call_it(app):
    undeclared = [f"{m} {r.rule}" for r, m, v in routes(app) if not hasattr(v, "allowed")]
    assert not undeclared


def values_for(ids, app, db=None):
    import sqlite3

    db = db or sqlite3.connect(app.config["DB_PATH"])
    app_sha = db.execute("SELECT sha256 FROM content_node_files WHERE node_id = 'basics/game'"
                         ).fetchone()[0]
    return {"class_uuid": ids["class_a"], "session_uuid": ids["session_a"],
              "learner_uuid": ids["amina"], "user_uuid": ids["bart"], "code": "nl",
              "digest": "0000000000", "filename": "style.css", "pack_id": "demo-fr",
              "node_id": "basics/welcome", "sha256": app_sha, "assignment_uuid": "none", "lesson_uuid": "none", "group_uuid": "none", "token": "0" * 32, "action": "open", "member": "app.js", "name": "x.zip",
            "device_id": "no-such-device", "page": 1, "width": 800,
            "quiz_uuid": "none", "run_uuid": "none",
            # A ZIM the box does not hold: each route still says who may ask.
            "uuid": "00000000-0000-0000-0000-000000000000", "path": "A/Main_Page"}


@pytest.mark.parametrize("who", ROLES)
def test_permission_matrix(app, box, as_user, who):
    """Each route answers each role as its declaration says: allowed roles are never refused
    (401/403), others always are, and a guest is sent to sign in."""
    client = as_user(who)
    token = csrf_token(client)
    role = ROLE_OF[who]
    values = values_for(box.ids, app)
    # Routes that destroy what others need (removing a person or a pack) go last.
    ordered = sorted(routes(app), key=lambda r: "remove" in r[0].rule or "delete" in r[0].rule)
    for rule, method, view in ordered:
        if rule.endpoint == "kiosk.signout" or (
                method == "POST" and rule.endpoint.startswith("kiosk.signin")):
            continue  # sign-out ends this client's session; wrong credentials rightly give 401
        path = rule.build(values, append_unknown=False)[1]
        kwargs = {"headers": {"X-CSRFToken": token}}
        if method in ("POST", "PUT"):
            kwargs["data"] = {"csrf_token": token}
        response = client.open(path, method=method, **kwargs)
        allowed = view.allowed
        permitted = ANYONE in allowed or (who and (SIGNED_IN in allowed or role in allowed))
        status = response.status_code
        if permitted:
            assert status not in (401, 403), f"{who} refused on {method} {path}: {status}"
        elif who is None:
            assert status == 401 or (status == 302 and "/signin" in response.headers["Location"]), \
                f"guest let through on {method} {path}: {status}"
        else:
            assert status == 403, f"{who} let through on {method} {path}: {status}"


def test_a_facilitator_sees_only_their_own_classes(as_user, box):
    fatou = as_user("fatou")
    names = [c["name"] for c in fatou.get("/api/v1/classes").get_json()["classes"]]
    assert names == ["Groupe A"]
    assert fatou.get(f"/api/v1/classes/{box.ids['class_b']}").status_code == 403
    assert fatou.get(f"/manage/classes/{box.ids['class_b']}").status_code == 403
    page = fatou.get("/manage").get_data(as_text=True)
    assert "Groupe A" in page and "Groupe B" not in page


def test_a_coordinator_sees_every_class(as_user):
    names = [c["name"] for c in as_user("cora").get("/api/v1/classes").get_json()["classes"]]
    assert names == ["Groupe A", "Groupe B"]


def test_a_learner_reads_only_their_own_progress(as_user, box):
    amina, bart = as_user("amina"), as_user("bart")
    event = {"event_id": "amina-1", "pack_id": "demo-fr", "node_id": "basics/quiz", "type": "completed"}
    response = amina.post("/api/v1/progress", json={"events": [event]},
                          headers={"X-CSRFToken": csrf_token(amina)})
    assert response.get_json() == {"accepted": 1, "duplicates": 0, "refused": []}
    assert len(amina.get("/api/v1/progress").get_json()["progress"]) == 1
    assert bart.get("/api/v1/progress").get_json()["progress"] == []
    assert bart.get(f"/api/v1/classes/{box.ids['class_a']}").status_code == 403


def test_the_api_never_shows_secrets(as_user, box):
    body = as_user("cora").get(f"/api/v1/classes/{box.ids['class_a']}").get_data(as_text=True)
    assert "argon2" not in body and "pin_hash" not in body and "Amina" in body


def _new_learner(app, name: str, class_uuid: str | None = None) -> str:
    from passerelle.server.db import get_db
    from passerelle.server.people import accounts

    with app.app_context():
        db = get_db()
        uid = accounts.create_user(db, role="learner", display_name=name, pin="9876")
        if class_uuid:
            accounts.add_member(db, class_uuid, uid)
    return uid


def test_a_facilitator_cannot_pull_another_classs_learner_into_theirs(app, box, as_user):
    """Chloé is in Farid's class: Fatou must not get her record and history by adding her."""
    from passerelle.server.db import get_db
    from passerelle.server.people import accounts

    fatou = as_user("fatou")
    class_a, chloe = box.ids["class_a"], box.ids["chloe"]
    newcomer = _new_learner(app, "Nouvelle")
    page = fatou.get(f"/manage/classes/{class_a}").get_data(as_text=True)
    assert "Chloe" not in page and "Nouvelle" in page  # only who she may add is offered
    response = fatou.post(f"/manage/classes/{class_a}/members", follow_redirects=True,
                          data={"csrf_token": csrf_token(fatou), "user_uuid": chloe})
    # Refused by the service, and the page says why (other ticked learners would be added).
    assert "only a coordinator may add this person" in response.get_data(as_text=True)
    assert fatou.get(f"/manage/learners/{chloe}").status_code == 403
    names = [p["display_name"] for p in fatou.get(f"/api/v1/classes/{class_a}").get_json()["learners"]]
    assert "Chloe" not in names
    # The service refuses it too, whoever calls it.
    with app.app_context():
        db = get_db()
        fatou_user = accounts.get_user(db, box.ids["fatou"])
        with pytest.raises(Forbidden):
            accounts.enrol(db, fatou_user, class_a, chloe)
        assert chloe not in {m["uuid"] for m in accounts.members(db, class_a)}
    # A learner in no class yet is hers to add.
    response = fatou.post(f"/manage/classes/{class_a}/members",
                          data={"csrf_token": csrf_token(fatou), "user_uuid": newcomer})
    assert response.status_code == 302
    assert fatou.get(f"/manage/learners/{newcomer}").status_code == 200


def test_a_facilitator_may_add_a_learner_of_another_of_their_own_classes(app, box, as_user):
    from passerelle.server.db import get_db
    from passerelle.server.people import accounts

    with app.app_context():
        class_c = accounts.create_class(get_db(), "Groupe C", facilitator_uuid=box.ids["fatou"])
    dina = _new_learner(app, "Dina", class_c)
    fatou = as_user("fatou")
    assert "Dina" in fatou.get(f"/manage/classes/{box.ids['class_a']}").get_data(as_text=True)
    response = fatou.post(f"/manage/classes/{box.ids['class_a']}/members",
                          data={"csrf_token": csrf_token(fatou), "user_uuid": dina})
    assert response.status_code == 302
    # ...but not one who is also in someone else's class.
    with app.app_context():
        accounts.add_member(get_db(), box.ids["class_b"], dina)
        class_d = accounts.create_class(get_db(), "Groupe D", facilitator_uuid=box.ids["fatou"])
    response = fatou.post(f"/manage/classes/{class_d}/members", follow_redirects=True,
                          data={"csrf_token": csrf_token(fatou), "user_uuid": dina})
    assert "only a coordinator may add this person" in response.get_data(as_text=True)
    with app.app_context():
        assert dina not in {m["uuid"] for m in accounts.members(get_db(), class_d)}


def test_a_coordinator_may_add_anyone_to_any_class(box, as_user):
    cora = as_user("cora")
    class_a, chloe = box.ids["class_a"], box.ids["chloe"]
    assert "Chloe" in cora.get(f"/manage/classes/{class_a}").get_data(as_text=True)
    response = cora.post(f"/manage/classes/{class_a}/members",
                         data={"csrf_token": csrf_token(cora), "user_uuid": chloe})
    assert response.status_code == 302
    names = [p["display_name"] for p in cora.get(f"/api/v1/classes/{class_a}").get_json()["learners"]]
    assert "Chloe" in names


def test_people_settings_and_the_learners_own_page_declare_who_may_call_them(app):
    """The people list's actions and export, the settings, and the learner's own page."""
    expected = {"kiosk.manage_people_chosen": {"coordinator"},
                "kiosk.manage_people_export": {"coordinator"},
                "kiosk.manage_settings": {"coordinator"},
                "kiosk.me_page": {"learner"}, "kiosk.me_secret": {"learner"},
                "kiosk.me_profile": {"learner"}, "kiosk.me_certificate": {"learner"}}
    assert {e: set(app.view_functions[e].allowed) for e in expected} == expected
# ZIM routes: who may index, import, add to a lesson, report reading time.
ZIM_ROUTES = [
    # (method, path, roles allowed: never 401/403 for them, always for the others)
    ("POST", "/manage/content/zim/{uuid}/indexing", {"cora"}),
    ("POST", "/manage/content/zim/import", {"cora"}),
    ("POST", "/read/{uuid}/lesson", {"fatou", "cora"}),
    ("POST", "/read/{uuid}/time", {None, "amina", "fatou", "cora"}),
    ("GET", "/api/v1/zims/{uuid}/snippets?q=x&path=A/x", {None, "amina", "fatou", "cora"}),
]


@pytest.mark.parametrize("method,path,allowed", ZIM_ROUTES)
def test_zim_routes_answer_each_role_as_declared(as_user, method, path, allowed):
    for who in ROLES:
        client = as_user(who)
        token = csrf_token(client)
        response = client.open(path.format(uuid="00000000-0000-0000-0000-000000000000"),
                               method=method, data={"csrf_token": token, "path": "A/x"},
                               headers={"X-CSRFToken": token})
        refused = response.status_code in (401, 403) or (
            who is None and response.status_code == 302 and "/signin" in response.location)
        assert refused == (who not in allowed), (who, path, response.status_code)


def test_the_exercise_players_answer_is_a_learners_write(app):
    """The script's one request per answer: learners only (guests and staff use the form)."""
    assert set(app.view_functions["kiosk.practice_answer"].allowed) == {"learner"}


# Kolibri channels: the update preview of a channel on a drive, and Kolibri servers on the LAN.
KOLIBRI_ROUTES = [
    ("GET", "/manage/content/kolibri/update", {"cora"}),
    ("POST", "/manage/content/lan", {"cora"}),
    ("POST", "/manage/content/lan/topics", {"cora"}),
    ("POST", "/manage/content/lan/update", {"cora"}),
    ("POST", "/manage/content/lan/import", {"cora"}),
    ("GET", "/manage/content/lan/fetch/" + "0" * 32, {"cora"}),
    ("POST", "/manage/content/lan/fetch/" + "0" * 32 + "/cancel", {"cora"}),
]


@pytest.mark.parametrize("method,path,allowed", KOLIBRI_ROUTES)
def test_kolibri_routes_answer_each_role_as_declared(as_user, method, path, allowed):
    for who in ROLES:
        client = as_user(who)
        token = csrf_token(client)
        # An address that is not one: no request leaves the box, whoever asks.
        response = client.open(path, method=method, data={"csrf_token": token, "server": "ftp://x"},
                               headers={"X-CSRFToken": token})
        refused = response.status_code in (401, 403) or (
            who is None and response.status_code == 302 and "/signin" in response.location)
        assert refused == (who not in allowed), (who, path, response.status_code)
