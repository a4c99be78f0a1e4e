"""Shared fixtures: a real app on a real data home, a CLI runner, a live server over loopback."""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from passerelle.server.app import create_app
from passerelle.server.cli.base import main

REPO = Path(__file__).resolve().parents[1]
PASSERELLE = str(Path(sys.executable).with_name("passerelle"))


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No test sees the developer's PASSERELLE_* variables or ~/.passerelle."""
    for var in list(os.environ):
        if var.startswith("PASSERELLE_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    # Never the machine's own /media or /mnt: the backups page writes on USB sticks.
    monkeypatch.setenv("PASSERELLE_USB_ROOTS", str(tmp_path / "no-usb-drives"))


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "box"


@pytest.fixture
def app(box):
    """The app of a set-up box (see `box`), as learners and staff meet it."""
    return create_app({"home": box.home, "TESTING": True})


def english_client(app):
    """A test client whose browser asks for English (tests that read words set their language)."""
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


@pytest.fixture
def client(app):
    return english_client(app)


@pytest.fixture
def fresh_app(tmp_path):
    """The app of a brand-new box, before its setup page has been filled in."""
    return create_app({"home": tmp_path / "new-box", "TESTING": True})


@pytest.fixture
def fresh_client(fresh_app):
    return english_client(fresh_app)


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


class Runner:
    """Runs `passerelle --home HOME ...` in-process through the real entry point `main()`."""

    def __init__(self, home: Path):
        self.home = home

    def __call__(self, *args: str, input: str | None = None, home: bool = True) -> Result:
        argv = (["--home", str(self.home)] if home else []) + list(args)
        with CliRunner().isolation(input=input) as streams:
            code = main(argv)
        out, err = streams[0].getvalue().decode(), streams[1].getvalue().decode()
        return Result(int(code), out, err)


@pytest.fixture
def runner(home) -> Runner:
    return Runner(home)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`passerelle serve` in its own process, on 127.0.0.1 only."""

    def __init__(self, home: Path, env: dict | None = None):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # No background sync or LAN announcement unless a test asks: a timer firing in the
        # middle of a test would change what it asserts.
        self.env = {**os.environ, "PASSERELLE_SYNC_INTERVAL_MINUTES": "0",
                    "PASSERELLE_DISCOVERY": "false", **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> LiveServer:
        self.proc = subprocess.Popen(
            [PASSERELLE, "--home", str(self.home), "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--threads", "4"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read()}")
            try:
                with urllib.request.urlopen(self.url + "/api/v1/health", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("server did not start in time")

    def get(self, path: str, headers: dict | None = None):
        request = urllib.request.Request(self.url + path, headers=headers or {})
        return urllib.request.urlopen(request, timeout=10)

    def stop(self, sig: int | None = None) -> tuple[int, str, str]:
        import signal

        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig or signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err


@pytest.fixture
def server_factory(box):
    """Start more servers, or start them with a particular environment; all stopped at the end."""
    started = []

    def start(env: dict | None = None, home_dir: Path | None = None) -> LiveServer:
        server = LiveServer(home_dir or box.home, env).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def live_server(server_factory):
    return server_factory()


# --- A box that is set up, with people in it --------------------------------------------

PASSWORDS = {"cora": "coordinator passphrase", "fatou": "facilitator passphrase",
             "farid": "other facilitator pass"}
PINS = {"amina": "1234", "bart": "2345", "chloe": "3456"}


@dataclass
class Box:
    home: Path
    ids: dict


def _build_box(home: Path) -> dict:
    from passerelle.server.db import get_db
    from passerelle.server.people import accounts

    app = create_app({"home": home, "TESTING": True})
    with app.app_context():
        db = get_db()
        ids = {"cora": accounts.setup(
            db, org_name="Espace Numérique Test", languages=["fr", "nl", "en", "ar"],
            signin_mode="pin", profile_fields={"gender": "impact reports for our funder",
                                               "age_band": "impact reports"},
            display_name="Cora Coordinator", username="cora", password=PASSWORDS["cora"])}
        for name in ("fatou", "farid"):
            ids[name] = accounts.create_user(db, role="facilitator", display_name=name.title(),
                                             username=name, password=PASSWORDS[name])
        for name, pin in PINS.items():
            ids[name] = accounts.create_user(db, role="learner", display_name=name.title(),
                                             pin=pin, avatar="fox")
        ids["class_a"] = accounts.create_class(db, "Groupe A", facilitator_uuid=ids["fatou"])
        ids["class_b"] = accounts.create_class(db, "Groupe B", facilitator_uuid=ids["farid"])
        for name in ("amina", "bart"):
            accounts.add_member(db, ids["class_a"], ids[name])
        accounts.add_member(db, ids["class_b"], ids["chloe"])
        ids["session_a"] = accounts.open_session(db, ids["class_a"], ids["fatou"], topic="E-mail",
                                                  date=datetime.datetime.now(datetime.UTC).date().isoformat())
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # A small pack (article with an image, clip with subtitles, html5 app, exercise).
    from passerelle.content import build_pack

    built = build_pack(REPO / "tests" / "fixtures" / "demo-pack", home.parent / "demo-fr.zip",
                       created="2026-11-01T00:00:00Z")
    app.extensions["passerelle.library"].import_pack(built.path)
    return ids


@pytest.fixture(scope="session")
def box_template(tmp_path_factory):
    home = tmp_path_factory.mktemp("box-template") / "box"
    return home, _build_box(home)


@pytest.fixture
def box(box_template, tmp_path) -> Box:
    """A set-up box (organisation, coordinator, 2 facilitators, 3 learners, 2 classes)."""
    import shutil

    template, ids = box_template
    home = tmp_path / "box"
    shutil.copytree(template, home)
    return Box(home, ids)


@pytest.fixture
def box_app(app):
    return app


def csrf_token(client) -> str:
    import re

    html = client.get("/signin", follow_redirects=True).get_data(as_text=True)
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)


def sign_in(client, box: Box, who: str) -> None:
    """Sign in through the real forms, as a person would."""
    token = csrf_token(client)
    if who in PASSWORDS:
        response = client.post("/signin/staff", data={"csrf_token": token, "username": who,
                                                      "password": PASSWORDS[who]})
    else:
        response = client.post(f"/signin/learner/{box.ids[who]}",
                               data={"csrf_token": token, "secret": PINS[who]})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]


@pytest.fixture
def as_user(box_app, box):
    """`as_user("fatou")` gives a test client signed in as that person (None: a guest)."""

    def make(who: str | None):
        client = english_client(box_app)
        if who:
            sign_in(client, box, who)
        return client

    return make


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Path:
    """One migrated database, copied for every simulated box: migrations once, not per example."""
    from passerelle.server import db as dbmod

    path = tmp_path_factory.mktemp("template") / "template.db"
    dbmod.prepare(path)
    conn = dbmod.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode = DELETE")  # one self-contained file to copy
    conn.close()
    return path
