"""The JSON API keeps to its own description, under generated requests.

schemathesis reads ``/api/openapi.json`` from a real server on 127.0.0.1 and
sends, for every operation, requests the description allows (each must be
accepted) and requests it forbids (each must be refused), as a guest, a
learner and a coordinator, with every check it has: no 5xx, statuses, content
types and bodies as described, authentication honoured. The learner and the
coordinator sign in through the real sign-in pages and send their session
cookie and CSRF token as the description declares them (security schemes).

Deterministic (``derandomize``) and bounded (``max-examples``) so that a run
takes the same path every time: about a minute on a small machine.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import urllib.parse
import urllib.request
from dataclasses import dataclass

import hypothesis
import pytest
import schemathesis
from passerelle.server.api.openapi import spec

from tests.conftest import PASSWORDS, PINS, LiveServer

MAX_EXAMPLES = 12  # per operation and role, besides the coverage phase's boundary cases

# Sync batches are gzip bytes: send what the description generates, as is.
schemathesis.serializer.alias("application/x-passerelle-batch", "application/octet-stream")


class Browser:
    """Just enough of a browser to sign in as a person does: cookies, forms, the CSRF meta tag."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def csrf_token(self, path: str = "/signin") -> str:
        with self.opener.open(self.base + path, timeout=30) as page:
            html = page.read().decode()
        return re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)

    def post(self, path: str, fields: dict) -> None:
        with self.opener.open(self.base + path, urllib.parse.urlencode(fields).encode(), timeout=30):
            pass

    def cookie(self, name: str) -> str:
        return next(c.value for c in self.jar if c.name == name)


def sign_in(server: LiveServer, ids: dict, who: str, cookie_name: str) -> tuple[str, str]:
    """(session cookie, CSRF token) of a fresh session of ``who``."""
    browser = Browser(server.url)
    token = browser.csrf_token()
    if who in PASSWORDS:
        browser.post("/signin/staff", {"csrf_token": token, "username": who,
                                       "password": PASSWORDS[who]})
    else:
        browser.post(f"/signin/learner/{ids[who]}", {"csrf_token": token, "secret": PINS[who]})
    # Signing in starts a new session, with a new token: read it as the kiosk's scripts do.
    return browser.cookie(cookie_name), browser.csrf_token("/")


@dataclass
class Target:
    """The running box the generated requests go to, and who sends them."""

    url: str
    ids: dict
    credentials: tuple[str, str] | None = None  # session cookie, CSRF token


DESCRIPTION = spec()  # what the server serves; the fixture checks that it serves exactly this
schema = schemathesis.openapi.from_dict(DESCRIPTION, config=schemathesis.Config.from_dict({
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True},
    "checks": {"enabled": True},  # all of them, as `--checks all`
}))
COOKIE = DESCRIPTION["components"]["securitySchemes"]["session"]["name"]
HEADER = DESCRIPTION["components"]["securitySchemes"]["csrf"]["name"]
# Some requests are made when tests are collected, before any server runs (the coverage phase's
# boundary cases): credentials go in as placeholders, replaced when the request is sent by the
# role's real ones (or taken out, for a guest). Requests made to test a missing or wrong
# credential never get placeholders: schemathesis leaves those as it made them.
PLACEHOLDER = {COOKIE: "signed-in-session", HEADER: "its-csrf-token"}


@schema.auth(refresh_interval=None)
class SignedIn:
    def get(self, case, context):
        return PLACEHOLDER

    def set(self, case, data, context):
        case.cookies = {**(case.cookies or {}), COOKIE: data[COOKIE]}
        case.headers = {**(case.headers or {}), HEADER: data[HEADER]}


def as_role(case, credentials: tuple[str, str] | None) -> tuple[dict | None, dict | None]:
    """The case's cookies and headers as the role sends them (copies: the coverage phase's cases
    are made once and shared by the three roles)."""
    cookies, headers = dict(case.cookies or {}), dict(case.headers or {})
    for container, name, index in ((cookies, COOKIE, 0), (headers, HEADER, 1)):
        if container.get(name) == PLACEHOLDER[name]:
            if credentials is None:
                del container[name]
            else:
                container[name] = credentials[index]
    return (cookies if case.cookies is not None else None,
            headers if case.headers is not None else None)


@pytest.fixture(scope="module", params=[None, "amina", "cora"],
                ids=["guest", "learner", "coordinator"])
def target(request, box_template, tmp_path_factory):
    template, ids = box_template
    home = tmp_path_factory.mktemp("fuzzed") / "box"
    shutil.copytree(template, home)
    with pytest.MonkeyPatch.context() as env:
        # The module's server outlives each test's own isolation: isolate it here.
        for name in [n for n in os.environ if n.startswith("PASSERELLE_")]:
            env.delenv(name)
        env.setenv("HOME", str(home.parent / "user-home"))
        server = LiveServer(home).start()
    try:
        with urllib.request.urlopen(server.url + "/api/openapi.json", timeout=30) as served:
            assert json.load(served) == json.loads(json.dumps(DESCRIPTION))
        found = Target(server.url, ids)
        if request.param:
            found.credentials = sign_in(server, ids, request.param, COOKIE)
            me = urllib.request.Request(server.url + "/api/v1/me",
                                        headers={"Cookie": f"{COOKIE}={found.credentials[0]}"})
            with urllib.request.urlopen(me, timeout=30) as answer:  # really signed in
                assert json.load(answer)["uuid"] == ids[request.param]
        yield found
    finally:
        _code, _out, err = server.stop()
        assert "Traceback" not in err, err[-3000:]


@schema.parametrize()
# No deadline and no health checks: a busy machine makes requests slow, never wrong.
@hypothesis.settings(deadline=None, suppress_health_check=list(hypothesis.HealthCheck))
def test_the_api_keeps_to_its_description(case, target):
    # Real records, so that operations reach their logic rather than a 404.
    real = {"pack_id": "demo-fr", "class_uuid": target.ids["class_a"],
            "session_uuid": target.ids["session_a"], "learner_uuid": target.ids["amina"]}
    shared = case.path_parameters, case.cookies, case.headers
    try:
        if case.path_parameters:
            case.path_parameters = {**case.path_parameters,
                                    **{k: v for k, v in real.items() if k in case.path_parameters}}
        case.cookies, case.headers = as_role(case, target.credentials)
        case.call_and_validate(base_url=target.url)
    finally:
        case.path_parameters, case.cookies, case.headers = shared
