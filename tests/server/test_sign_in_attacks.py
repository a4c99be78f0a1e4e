"""Attacks on signing in, as someone on the box's Wi-Fi would try them.

Copied session cookies, parallel guesses against the lockout, redirects to another host after
signing in, and parallel first-start setups. The races run against a real server over loopback
with real threads: the test client handles one request at a time and could not show them.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest
from passerelle.server import records
from passerelle.server.db import get_db
from passerelle.server.home import DB_NAME
from passerelle.server.people import accounts
from passerelle.server.web.security import safe_next

from tests.conftest import PASSWORDS, PINS, csrf_token, english_client

# --- Sessions end on the server ------------------------------------------------------------


def copy_cookie(victim, app):
    """What someone listening on the Wi-Fi gets: the victim's cookie, replayed elsewhere."""
    name = app.config["SESSION_COOKIE_NAME"]
    thief = english_client(app)
    thief.set_cookie(name, victim.get_cookie(name).value)
    return thief


def test_a_copy_of_the_cookie_stops_working_at_sign_out(as_user, box_app):
    cora = as_user("cora")
    thief = copy_cookie(cora, box_app)
    assert thief.get("/api/v1/me").status_code == 200
    assert cora.post("/signout", data={"csrf_token": csrf_token(cora)}).status_code == 302
    assert thief.get("/api/v1/me").status_code == 401
    assert thief.get("/manage/people").status_code == 302  # to the sign-in page


def test_the_server_keeps_only_a_digest_of_the_token(as_user, box_app):
    cora = as_user("cora")
    serializer = box_app.session_interface.get_signing_serializer(box_app)
    cookie = serializer.loads(cora.get_cookie(box_app.config["SESSION_COOKIE_NAME"]).value)
    token = cookie["sid"]
    db = sqlite3.connect(box_app.config["DB_PATH"])
    ids = [row[0] for row in db.execute("SELECT id FROM signins")]
    assert ids == [hashlib.sha256(token.encode()).hexdigest()]
    assert "uid" not in cookie


@pytest.mark.parametrize("who, change", [
    ("fatou", {"password": "a brand new passphrase"}),
    ("amina", {"pin": "9876"}),
    ("amina", {"picture": ["sun", "moon", "tree"]}),
    ("fatou", {"role": "coordinator"}),
])
def test_a_new_secret_or_role_signs_the_person_out_everywhere(as_user, box_app, box, who, change):
    person = as_user(who)
    thief = copy_cookie(person, box_app)
    with box_app.app_context():
        accounts.update_user(get_db(), box.ids[who], **change)
        assert get_db().execute("SELECT count(*) FROM signins WHERE user_uuid = ?",
                                [box.ids[who]]).fetchone()[0] == 0
    assert person.get("/api/v1/me").status_code == 401
    assert thief.get("/api/v1/me").status_code == 401


def test_a_new_language_keeps_the_session(as_user, box_app, box):
    amina = as_user("amina")
    assert amina.get("/language/nl").status_code == 302
    assert amina.get("/api/v1/me").status_code == 200


def test_a_secret_changed_on_another_box_ends_the_session_here(as_user, box_app, box):
    """A reset arrives by sync as an operation folded into the table, not through accounts."""
    amina = as_user("amina")
    with box_app.app_context():
        db = get_db()
        user = accounts.get_user(db, box.ids["amina"])
        fields = {k: user[k] for k in records.ENTITIES["user"]}
        fields["pin_hash"] = accounts.LEARNER_HASHER.hash("5555")
        records.put(db, "user", box.ids["amina"], fields)
    assert amina.get("/api/v1/me").status_code == 401
    db = sqlite3.connect(box_app.config["DB_PATH"])
    assert db.execute("SELECT count(*) FROM signins WHERE user_uuid = ?",
                      [box.ids["amina"]]).fetchone()[0] == 0


def test_a_removed_persons_copied_cookie_is_refused(as_user, box_app, box):
    bart, cora = as_user("bart"), as_user("cora")
    thief = copy_cookie(bart, box_app)
    cora.post(f"/manage/people/{box.ids['bart']}/delete", data={"csrf_token": csrf_token(cora)})
    assert thief.get("/api/v1/me").status_code == 401


def test_signing_in_again_ends_the_browsers_previous_session(as_user, box_app, box):
    """Each sign-in gets a new token: a cookie planted or copied before it is worth nothing."""
    browser = english_client(box_app)
    token = csrf_token(browser)
    planted = copy_cookie(browser, box_app)  # the guest cookie an attacker could have set
    browser.post("/signin/staff", data={"csrf_token": token, "username": "fatou",
                                        "password": PASSWORDS["fatou"]})
    as_fatou = copy_cookie(browser, box_app)
    assert planted.get("/api/v1/me").status_code == 401
    assert as_fatou.get("/api/v1/me").get_json()["display_name"] == "Fatou"
    browser.post(f"/signin/learner/{box.ids['amina']}",
                 data={"csrf_token": csrf_token(browser), "secret": PINS["amina"]})
    assert browser.get("/api/v1/me").get_json()["display_name"] == "Amina"
    assert as_fatou.get("/api/v1/me").status_code == 401


def test_expired_sessions_are_purged(as_user, box_app, monkeypatch):
    as_user("fatou")
    as_user("amina")
    db = sqlite3.connect(box_app.config["DB_PATH"])
    assert db.execute("SELECT count(*) FROM signins").fetchone()[0] == 2
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 481 * 60)
    as_user("cora")
    assert db.execute("SELECT count(*) FROM signins").fetchone()[0] == 1


def test_an_idle_learners_session_ends_on_the_server(as_user, box_app, monkeypatch):
    amina = as_user("amina")
    thief = copy_cookie(amina, box_app)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 16 * 60)
    assert amina.get("/api/v1/me").status_code == 401
    monkeypatch.setattr(time, "time", real)
    assert thief.get("/api/v1/me").status_code == 401


def test_a_coordinator_signs_a_person_out_everywhere(as_user, box_app, box):
    fatou, cora = as_user("fatou"), as_user("cora")
    thief = copy_cookie(fatou, box_app)
    page = cora.get("/manage/people").get_data(as_text=True)
    assert "Sign Fatou out everywhere" in page and "Sign Farid out everywhere" not in page
    response = cora.post(f"/manage/people/{box.ids['fatou']}/signout",
                         data={"csrf_token": csrf_token(cora)})
    assert response.status_code == 302
    assert "Fatou is signed out everywhere." in cora.get("/manage/people").get_data(as_text=True)
    assert fatou.get("/api/v1/me").status_code == 401
    assert thief.get("/api/v1/me").status_code == 401
    assert cora.get("/api/v1/me").status_code == 200


def test_a_restored_backup_does_not_bring_ended_sessions_back(as_user, box_app, box, tmp_path):
    from passerelle.server import db as dbmod

    fatou = as_user("fatou")
    thief = copy_cookie(fatou, box_app)
    snapshot = dbmod.backup(box_app.config["DB_PATH"], tmp_path / "snap.db")
    fatou.post("/signout", data={"csrf_token": csrf_token(fatou)})
    dbmod.restore(box_app.config["DB_PATH"], snapshot, tmp_path / "backups")
    assert thief.get("/api/v1/me").status_code == 401


# --- Open redirects ----------------------------------------------------------------------------

# As an attacker writes them in a link (percent-encoded in the query string).
ENCODED = ["//other-host/x", "/%09/other-host/x", "/%0A/other-host/x", "/%0D%0A/other-host/x",
           "/%5C/other-host/x", "/%5Cother-host/x", "%5C%5Cother-host/x", "%2F%2Fother-host/x",
           "https://other-host/x", "http:other-host/x", "javascript:alert(1)",
           "%20//other-host/x", "%00//other-host/x", "%09//other-host/x", "///other-host/x",
           "/%00/other-host/x", "other-host/x", "data:text/html,hello", "%01//other-host",
           "/%7F/other-host"]
# As they arrive in the view, decoded.
DECODED = ["/\t/other-host/x", "/\\other-host/x", "\\/other-host/x", " //other-host/x",
           "/\r\n/other-host/x", "\x0b//other-host/x", "/\x0c/other-host/x", "HTTPS://other-host",
           "/\t\\other-host"]


@pytest.mark.parametrize("target", ENCODED)
def test_the_language_choice_never_sends_the_browser_away(client, target):
    response = client.get(f"/language/en?next={target}")
    assert response.status_code == 302 and response.headers["Location"] == "/"


@pytest.mark.parametrize("target", DECODED)
def test_the_language_choice_reads_next_as_a_browser_would(client, target):
    response = client.get("/language/en", query_string={"next": target})
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("target", ENCODED[:8] + DECODED[:3])
def test_signing_in_never_sends_the_browser_away(as_user, target):
    browser = as_user(None)
    query = f"next={target}" if target in ENCODED else urlencode({"next": target})
    response = browser.post(f"/signin/staff?{query}",
                            data={"csrf_token": csrf_token(browser), "username": "fatou",
                                  "password": PASSWORDS["fatou"]})
    assert response.status_code == 302 and response.headers["Location"] == "/manage"


def test_a_path_on_the_box_is_followed(as_user, client):
    browser = as_user(None)
    response = browser.post("/signin/staff?next=/manage/classes%3Fx%3D1",
                            data={"csrf_token": csrf_token(browser), "username": "fatou",
                                  "password": PASSWORDS["fatou"]})
    assert response.headers["Location"] == "/manage/classes?x=1"
    assert client.get("/language/fr?next=/learn").headers["Location"] == "/learn"
    assert safe_next("/a\\b/%2F%2Fc") == "/a/b/%2F%2Fc"  # encoded slashes stay in the path
    assert safe_next(None, "/home") == safe_next("", "/home") == "/home"


# --- Races against a live server -----------------------------------------------------------


class Browser:
    """One cookie and CSRF token, shared by parallel requests (what a script would do)."""

    def __init__(self, server, page: str = "/signin"):
        self.port = server.port
        self.cookie = ""
        body = self.send("GET", page)[2]
        self.token = re.search(r'<meta name="csrf-token" content="([^"]+)"', body).group(1)

    def send(self, method: str, path: str, form: dict | None = None) -> tuple[int, dict, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=300)
        try:
            headers = {"Accept-Language": "en"}
            if self.cookie:
                headers["Cookie"] = self.cookie
            body = None
            if form is not None:
                body = urlencode({"csrf_token": self.token, **form}, doseq=True)
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            text = response.read().decode()
            cookie = response.getheader("Set-Cookie")
            if cookie and not self.cookie:
                self.cookie = cookie.split(";", 1)[0]
            return response.status, dict(response.getheaders()), text
        finally:
            conn.close()

    def in_parallel(self, path_and_forms: list[tuple[str, dict]]) -> list[int]:
        with ThreadPoolExecutor(max_workers=len(path_and_forms)) as pool:
            return list(pool.map(lambda pf: self.send("POST", *pf)[0], path_and_forms))


TRIES = 40


def test_parallel_guesses_check_no_more_secrets_than_the_limit(live_server, box):
    browser = Browser(live_server)
    pins = [{"secret": f"{n:04d}"} for n in range(9000, 9000 + TRIES)]
    statuses = browser.in_parallel([(f"/signin/learner/{box.ids['amina']}", pin) for pin in pins])
    # 401: a PIN was checked and was wrong; 429: refused before any check.
    assert statuses.count(401) == accounts.MAX_FAILURES
    assert statuses.count(429) == TRIES - accounts.MAX_FAILURES
    # A username that exists and one that does not answer alike, locks included.
    for username in ("fatou", "nobody-here"):
        tries = [("/signin/staff", {"username": username, "password": f"guess number {n}"})
                 for n in range(TRIES)]
        statuses = browser.in_parallel(tries)
        assert (statuses.count(401), statuses.count(429)) == (
            accounts.MAX_FAILURES, TRIES - accounts.MAX_FAILURES), username


def test_parallel_guesses_from_one_client_stop_at_its_limit(live_server):
    browser = Browser(live_server)
    tries = [("/signin/staff", {"username": f"name-{n}", "password": "guess"})
             for n in range(accounts.MAX_FAILURES_PER_CLIENT + 10)]
    statuses = browser.in_parallel(tries)
    assert statuses.count(401) == accounts.MAX_FAILURES_PER_CLIENT
    assert statuses.count(429) == 10


def test_an_unknown_username_is_locked_like_a_real_one(as_user):
    answers = {}
    for username in ("farid", "no-such-person"):
        client = as_user(None)
        token = csrf_token(client)
        answers[username] = [
            (r.status_code, "Wrong username or password" in r.get_data(as_text=True),
             "Too many attempts" in r.get_data(as_text=True))
            for r in (client.post("/signin/staff", data={"csrf_token": token, "username": username,
                                                         "password": "wrong password"})
                      for _ in range(accounts.MAX_FAILURES + 1))]
    assert answers["farid"] == answers["no-such-person"]
    assert answers["farid"][-1] == (429, False, True)


def test_a_success_takes_back_its_attempt(box_app, box):
    with box_app.app_context():
        db = get_db()
        for _ in range(accounts.MAX_FAILURES_PER_CLIENT + 1):
            accounts.authenticate_learner(db, box.ids["bart"], PINS["bart"], "tablet-9")
        assert db.execute("SELECT count(*) FROM signin_failures").fetchone()[0] == 0


def test_parallel_first_starts_set_the_box_up_once(server_factory, tmp_path):
    server = server_factory(home_dir=tmp_path / "new-box")
    browser = Browser(server, "/setup")
    forms = [("/setup", {"org_name": f"Org {n}", "languages": ["fr"], "signin_mode": "pin",
                         "display_name": f"Coordinator {n}", "username": f"coord{n}",
                         "password": "a long enough pass", "password_again": "a long enough pass"})
             for n in range(8)]
    statuses = browser.in_parallel(forms)
    assert statuses == [302] * 8
    db = sqlite3.connect(tmp_path / "new-box" / DB_NAME)
    assert db.execute("SELECT count(*) FROM organisations").fetchone()[0] == 1
    assert db.execute("SELECT count(*) FROM users WHERE role = 'coordinator'").fetchone()[0] == 1
