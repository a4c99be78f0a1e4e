"""Accounts: first-start setup, signing in and out, lockout, expiry, classes and attendance."""

import re
import sqlite3
import time

import pytest
from passerelle.server.people import accounts

from tests.conftest import PASSWORDS, PINS, csrf_token


def test_setup_creates_the_organisation_and_the_first_coordinator(fresh_client, fresh_app):
    assert fresh_client.get("/manage").headers["Location"].endswith("/setup")
    page = fresh_client.get("/setup").get_data(as_text=True)
    assert "There is no default password" in page
    token = csrf_token(fresh_client)
    form = {"csrf_token": token, "org_name": "BeCentral", "languages": ["fr", "nl"],
            "signin_mode": "picture", "profile_fields": ["gender"], "purpose_gender": "our funder asks",
            "display_name": "Nadia", "username": "nadia", "password": "a long enough pass",
            "password_again": "a long enough pass"}
    response = fresh_client.post("/setup", data=form)
    assert response.status_code == 302 and response.headers["Location"].endswith("/manage")
    assert "BeCentral" in fresh_client.get("/manage").get_data(as_text=True)
    # Done once: the page now leads home, and a second setup is refused.
    assert fresh_client.get("/setup").status_code == 302
    db = sqlite3.connect(fresh_app.config["DB_PATH"])
    stored = db.execute("SELECT password_hash FROM users WHERE username = 'nadia'").fetchone()[0]
    assert stored.startswith("$argon2id$") and "a long enough pass" not in stored


@pytest.mark.parametrize("change, field", [
    ({"password": "short", "password_again": "short"}, "password"),
    ({"password_again": "something else entirely"}, "password_again"),
    ({"org_name": " "}, "org_name"),
    ({"languages": []}, "languages"),
])
def test_setup_explains_what_is_wrong_and_creates_nothing(fresh_client, fresh_app, change, field):
    form = {"csrf_token": csrf_token(fresh_client), "org_name": "BeCentral", "languages": ["fr"],
            "signin_mode": "pin", "display_name": "Nadia", "username": "nadia",
            "password": "a long enough pass", "password_again": "a long enough pass", **change}
    response = fresh_client.post("/setup", data=form)
    assert response.status_code == 400
    assert f'id="e-{field}"' in response.get_data(as_text=True) or "error-text" in response.get_data(as_text=True)
    db = sqlite3.connect(fresh_app.config["DB_PATH"])
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 0


def test_forms_without_the_csrf_token_are_refused(fresh_client):
    response = fresh_client.post("/setup", data={"org_name": "X"})
    assert response.status_code == 400


def test_staff_sign_in_and_lockout(as_user, app):
    client = as_user(None)
    token = csrf_token(client)
    for _ in range(accounts.MAX_FAILURES):
        response = client.post("/signin/staff", data={"csrf_token": token, "username": "fatou",
                                                      "password": "wrong password"})
        assert response.status_code == 401
        assert "Wrong username or password" in response.get_data(as_text=True)
    # Locked: even the right password waits.
    response = client.post("/signin/staff", data={"csrf_token": token, "username": "fatou",
                                                  "password": PASSWORDS["fatou"]})
    assert response.status_code == 429
    assert "Too many attempts" in response.get_data(as_text=True)
    # Another account is not locked by fatou's failures.
    response = client.post("/signin/staff", data={"csrf_token": token, "username": "FARID",
                                                  "password": PASSWORDS["farid"]})
    assert response.status_code == 302


def test_the_lockout_ends(box_app, box):
    with box_app.app_context():
        from passerelle.server.db import get_db

        db = get_db()
        start = time.time()
        for _ in range(accounts.MAX_FAILURES):
            with pytest.raises(accounts.SigninFailed):
                accounts.authenticate_learner(db, box.ids["amina"], "0000", "tablet-1", now=start)
        with pytest.raises(accounts.LockedOut) as locked:
            accounts.authenticate_learner(db, box.ids["amina"], PINS["amina"], "tablet-1", now=start)
        assert 0 < locked.value.retry_after <= accounts.WINDOW_SECONDS + 1
        later = start + accounts.WINDOW_SECONDS + 1
        assert accounts.authenticate_learner(db, box.ids["amina"], PINS["amina"], "tablet-1",
                                             now=later)["display_name"] == "Amina"


def test_a_learner_signs_in_from_the_class_list(as_user, box):
    client = as_user(None)
    page = client.get("/signin").get_data(as_text=True)
    assert "Groupe A" in page
    page = client.get(f"/signin/class/{box.ids['class_a']}").get_data(as_text=True)
    assert "Amina" in page and "Bart" in page and "Chloe" not in page
    page = client.get(f"/signin/learner/{box.ids['amina']}").get_data(as_text=True)
    assert 'inputmode="numeric"' in page
    token = csrf_token(client)
    wrong = client.post(f"/signin/learner/{box.ids['amina']}", data={"csrf_token": token,
                                                                     "secret": "9999"})
    assert wrong.status_code == 401
    right = client.post(f"/signin/learner/{box.ids['amina']}", data={"csrf_token": token,
                                                                     "secret": PINS["amina"]})
    assert right.status_code == 302
    assert client.get("/api/v1/me").get_json()["display_name"] == "Amina"
    home = client.get("/").get_data(as_text=True)
    assert '<button type="submit" class="done">Sign out</button>' in home
    client.post("/signout", data={"csrf_token": csrf_token(client)})
    assert client.get("/api/v1/me").status_code == 401


def test_sessions_expire_on_the_servers_clock(as_user, monkeypatch):
    client = as_user("fatou")
    assert client.get("/api/v1/me").status_code == 200
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 481 * 60)
    assert client.get("/api/v1/me").status_code == 401


def test_idle_learners_are_signed_out(as_user, monkeypatch):
    learner, staff = as_user("amina"), as_user("fatou")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 16 * 60)
    assert learner.get("/api/v1/me").status_code == 401
    assert staff.get("/api/v1/me").status_code == 200  # staff are not on shared tablets


def test_a_removed_person_is_signed_out_at_once(as_user, box):
    learner, cora = as_user("bart"), as_user("cora")
    response = cora.post(f"/manage/people/{box.ids['bart']}/delete",
                         data={"csrf_token": csrf_token(cora)})
    assert response.status_code == 302
    assert learner.get("/api/v1/me").status_code == 401


def test_the_last_coordinator_cannot_be_removed(box_app, box):
    with box_app.app_context():
        from passerelle.server.db import get_db

        with pytest.raises(accounts.Conflict):
            accounts.delete_user(get_db(), box.ids["cora"])


def test_usernames_are_unique_without_case_or_accents(box_app):
    with box_app.app_context():
        from passerelle.server.db import get_db

        with pytest.raises(accounts.InvalidInput) as info:
            accounts.create_user(get_db(), role="facilitator", display_name="F", username="FÂTOU",
                                 password="long enough password")
        assert info.value.details == {"username": "this username is already taken"}


def test_profile_fields_only_when_the_organisation_asks(box_app):
    with box_app.app_context():
        from passerelle.server.db import get_db

        db = get_db()
        uid = accounts.create_user(db, role="learner", display_name="Dina", pin="1111",
                                   profile={"gender": "woman", "age_band": ""},
                                   consent={"given_at": "2026-11-22T10:00:00+00:00"})
        assert accounts.get_user(db, uid)["profile"] == {"gender": "woman"}
        with pytest.raises(accounts.InvalidInput) as info:
            accounts.create_user(db, role="learner", display_name="Eli", pin="1111",
                                 profile={"employment": "job-seeker"})
        assert "profile.employment" in info.value.details


def test_a_facilitator_takes_attendance_with_one_tap_per_learner(as_user, box):
    fatou = as_user("fatou")
    token = csrf_token(fatou)
    response = fatou.post(f"/manage/classes/{box.ids['class_a']}/sessions",
                          data={"csrf_token": token, "date": "2026-11-22", "place": "Bibliothèque",
                                "partner": "BSF", "topic": "Mots de passe"})
    session_url = response.headers["Location"]
    page = fatou.get(session_url).get_data(as_text=True)
    assert "Amina" in page and "Bart" in page and ">0</span> / 2" in page
    tap = re.search(rf'action="([^"]+/attendance/{box.ids["amina"]})"', page).group(1)
    fatou.post(tap, data={"csrf_token": token, "present": "1"})
    page = fatou.get(session_url).get_data(as_text=True)
    assert ">1</span> / 2" in page
    assert 'aria-pressed="true"' in page


def test_a_facilitator_adds_a_learner_to_their_class(as_user, box):
    fatou = as_user("fatou")
    response = fatou.post(f"/manage/classes/{box.ids['class_a']}",
                          data={"csrf_token": csrf_token(fatou), "display_name": "Youssef",
                                "pin": "4321", "avatar": "owl"})
    assert response.status_code == 302
    detail = fatou.get(f"/api/v1/classes/{box.ids['class_a']}").get_json()
    assert "Youssef" in [learner["display_name"] for learner in detail["learners"]]


def test_picture_password_sign_in(fresh_client, fresh_app):
    from passerelle.server.db import get_db

    with fresh_app.app_context():
        db = get_db()
        accounts.setup(db, org_name="Bibliothèque", languages=["fr"], signin_mode="picture",
                       profile_fields={}, display_name="Nadia", username="nadia",
                       password="a long enough pass")
        kid = accounts.create_user(db, role="learner", display_name="Léo",
                                   picture=["cat", "sun", "boat"])
    page = fresh_client.get(f"/signin/learner/{kid}").get_data(as_text=True)
    assert page.count('name="picture_0"') == len(accounts.PICTURES)
    assert 'name="picture_2"' in page
    token = csrf_token(fresh_client)
    wrong = fresh_client.post(f"/signin/learner/{kid}", data={
        "csrf_token": token, "picture_0": "sun", "picture_1": "cat", "picture_2": "boat"})
    assert wrong.status_code == 401  # the right pictures in the wrong order
    right = fresh_client.post(f"/signin/learner/{kid}", data={
        "csrf_token": token, "picture_0": "cat", "picture_1": "sun", "picture_2": "boat"})
    assert right.status_code == 302
    assert fresh_client.get("/api/v1/me").get_json()["display_name"] == "Léo"


def test_a_new_sign_in_mode_is_counted_against_the_learners_secrets(app, box):
    from passerelle.server.db import get_db

    with app.app_context():
        db = get_db()
        accounts.update_user(db, box.ids["chloe"], picture=["sun", "moon", "tree"])
        assert accounts.signin_mode_change(db, "picture") == {
            "from": "pin", "to": "picture", "learners": 3, "ready": 1, "without": 2}
        assert accounts.signin_mode_change(db, "pin")["without"] == 0
        assert accounts.signin_mode_change(db, "none")["without"] == 0
        assert accounts.signin_mode_change(db, "password")["ready"] == 0


def test_settings_are_checked_all_at_once_and_kept_on_the_organisation(app, box):
    from passerelle.server.db import get_db
    from passerelle.server.errors import InvalidInput

    with app.app_context():
        db = get_db()
        with pytest.raises(InvalidInput) as refused:
            accounts.update_settings(db, name="", languages=["xx"], signin_mode="telepathy",
                                     profile_fields={"shoe_size": ""}, learners_edit_profile=True,
                                     learners_change_secret=True)
        assert set(refused.value.details) == {"org_name", "languages", "signin_mode",
                                              "profile_fields"}
        org = accounts.update_settings(db, name=" Maison ", languages=["nl", "nl", "fr"],
                                       signin_mode="none", profile_fields={"gender": " funder "},
                                       learners_edit_profile=False, learners_change_secret=True)
        assert (org["name"], org["languages"], org["signin_mode"]) == ("Maison", ["nl", "fr"], "none")
        assert org["profile_fields"] == {"gender": "funder"}
        assert (org["learners_edit_profile"], org["learners_change_secret"]) == (None, 1)
