"""Shared fixtures: a real app on a real data home, a CLI runner, a live server over loopback."""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys
import time
import urllib.error
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
    app = create_app({"home": box.home, "TESTING": True})
    yield app
    app.extensions["passerelle.db_pool"].close()  # a PostgreSQL pool's connections too


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

    def __init__(self, home: Path, env: dict | None = None, launcher: tuple = ()):
        self.home = home
        self.launcher = list(launcher)  # a command the server's command line is given to
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # No background sync or LAN announcement unless a test asks: a timer firing in the
        # middle of a test would change what it asserts.
        self.env = {**os.environ, "PASSERELLE_SYNC_INTERVAL_MINUTES": "0",
                    "PASSERELLE_DISCOVERY": "false", **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20) -> LiveServer:
        self.proc = subprocess.Popen(
            [*self.launcher, PASSERELLE, "--home", str(self.home), "serve", "--host", "127.0.0.1",
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
            except urllib.error.HTTPError:
                return self  # serving, and reporting a problem (a test may have made one)
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


class SmallDisk:
    """A live server whose data home is a tiny filesystem of its own, which can really fill.

    The tmpfs is mounted in a private mount namespace (``unshare --mount``) that only
    the server process lives in: it is never seen outside, and it disappears with the
    process, whatever becomes of the test. The test reaches the files through
    ``/proc/<pid>/root``. Needs root (tests using it are skipped otherwise).
    """

    FILLER = "filler.bin"

    def __init__(self, box: Box, mount: Path, size_mb: int, env: dict | None = None):
        script = ('mount -t tmpfs -o size="$1" tmpfs "$2" && cp -a "$3"/. "$2"/ '
                  '&& shift 3 && exec "$@"')
        launcher = ("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                    f"{size_mb}m", str(mount), str(box.home))
        mount.mkdir()
        self.mount = mount
        self.server = LiveServer(mount, env, launcher=launcher).start()

    def path(self, name: str) -> Path:
        """A file of the data home, as the server sees it."""
        return Path(f"/proc/{self.server.proc.pid}/root{self.mount}") / name

    def fill(self) -> None:
        """Write a file until the disk has no byte left."""
        import errno

        with open(self.path(self.FILLER), "ab", buffering=0) as f:
            for block in (1 << 20, 1 << 12):
                try:
                    while True:
                        f.write(b"\0" * block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise

    def make_room(self) -> None:
        self.path(self.FILLER).unlink()

    def query(self, sql: str) -> list:
        """Rows of ``sql`` on the server's database, read inside its mount namespace (SQLite
        resolves the /proc/<pid>/root link, which would lead it outside)."""
        import json

        code = ("import json, sqlite3, sys; db = sqlite3.connect(sys.argv[1]);"
                " print(json.dumps(db.execute(sys.argv[2]).fetchall()))")
        done = subprocess.run(["nsenter", "--target", str(self.server.proc.pid), "--mount", "--",
                               sys.executable, "-c", code, str(self.mount / "passerelle.db"), sql],
                              capture_output=True, text=True, check=True, timeout=60)
        return json.loads(done.stdout)

    @staticmethod
    def available() -> bool:
        import shutil

        if os.geteuid() != 0 or not shutil.which("unshare"):
            return False
        probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True,
                               check=False)
        return probe.returncode == 0


@pytest.fixture
def small_disk(box, tmp_path):
    """`small_disk(size_mb, env)`: a live server on a tiny disk of its own (see SmallDisk)."""
    if not SmallDisk.available():
        pytest.skip("needs root to mount a tiny filesystem in a private mount namespace")
    made = []

    def make(size_mb: int = 8, env: dict | None = None) -> SmallDisk:
        made.append(SmallDisk(box, tmp_path / f"small-disk-{len(made)}", size_mb, env))
        return made[-1]

    yield make
    for one in made:
        one.server.stop()  # the namespace, and the tmpfs in it, end with the process


class HttpPerson:
    """Someone using a live server over HTTP: a cookie jar, the real sign-in forms, the page's
    CSRF token. Answers are (status, headers, body) whatever the status."""

    def __init__(self, url: str):
        import http.cookiejar

        self.url = url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.opener.addheaders = [("Accept-Language", "en")]  # tests read the English words
        self.token = ""

    def sign_in(self, box: Box, who: str) -> HttpPerson:
        if who in PASSWORDS:
            path, form = "/signin/staff", {"username": who, "password": PASSWORDS[who]}
        else:
            path, form = f"/signin/learner/{box.ids[who]}", {"secret": PINS[who]}
        self.refresh_token(path)
        status, _headers, _body = self.send("POST", path, form)
        assert status in (200, 302), status
        self.refresh_token("/")
        return self

    def refresh_token(self, path: str) -> None:
        import re

        _status, _headers, body = self.send("GET", path)
        self.token = re.search(r'name="csrf-token" content="([^"]+)"', body.decode()).group(1)

    def send(self, method: str, path: str, form: dict | None = None, *, data: bytes | None = None,
             headers: dict | None = None) -> tuple[int, dict, bytes]:
        import urllib.parse

        headers = dict(headers or {})
        if form is not None:
            data = urllib.parse.urlencode({"csrf_token": self.token, **form}, doseq=True).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif method != "GET":
            headers.setdefault("X-CSRFToken", self.token)
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(request, timeout=60) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.jar)


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
        if not db_url_of(home):
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # A small pack (article with an image, clip with subtitles, html5 app, exercise).
    from passerelle.content import build_pack

    built = build_pack(REPO / "tests" / "fixtures" / "demo-pack", home.parent / "demo-fr.zip",
                       created="2026-11-01T00:00:00Z")
    app.extensions["passerelle.library"].import_pack(built.path)
    app.extensions["passerelle.db_pool"].close()  # a PostgreSQL template must have no session
    return ids


def db_url_of(home: Path) -> str | None:
    toml = home / "passerelle.toml"
    if toml.exists():
        import tomllib

        return tomllib.loads(toml.read_text()).get("database_url")
    return None


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


# --- PostgreSQL: a throwaway cluster for the hub's engine ------------------------------------

def _postgresql_bindir() -> Path | None:
    import glob
    import shutil as sh

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = sh.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


class PostgresCluster:
    """initdb + pg_ctl in a temporary folder, on 127.0.0.1 and a free port; gone at the end.

    Run as the ``postgres`` user when the suite runs as root (PostgreSQL refuses root).
    fsync is off: a test cluster is thrown away, and its durability is not what is tested.
    """

    def __init__(self, bindir: Path):
        import pwd
        import tempfile

        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="passerelle-pg-"))
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data = self.root / "data"
        self.port = free_port()
        self.base = f"postgresql://postgres@127.0.0.1:{self.port}"

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def start(self) -> PostgresCluster:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "--auth=trust",
                  "--username=postgres", "--encoding=UTF8", "--locale=C", "--no-sync")
        self._pg_ctl_start(" -c synchronous_commit=off -c full_page_writes=off")
        return self

    def _pg_ctl_start(self, more: str) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
                   f" -c max_connections=300{more}")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options, "-w",
                  "-t", "60", "-l", str(self.root / "log"), "start")

    def start_standby_of(self, primary: PostgresCluster) -> PostgresCluster:
        """A hot standby streaming from ``primary``: a base backup (``-R`` writes the
        connection to follow), then started read-only, as a hub's read replica is."""
        self._run(str(self.bindir / "pg_basebackup"), "-d", primary.url(), "-D", str(self.data),
                  "-R", "-X", "stream", "--no-sync")
        self._pg_ctl_start(" -c hot_standby=on")  # max_connections as the primary's
        return self

    def url(self, database: str = "postgres") -> str:
        return f"{self.base}/{database}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)

    def stop(self) -> None:
        import shutil as sh

        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                      "stop")
        finally:
            sh.rmtree(self.root, ignore_errors=True)


def _required_postgresql() -> Path:
    """PostgreSQL's programs; a missing PostgreSQL fails the tests that need it, never skips."""
    bindir = _postgresql_bindir()
    if bindir is None:
        pytest.fail("PostgreSQL is not installed: `make test` installs Debian's postgresql "
                    "package (or: apt-get install postgresql)", pytrace=False)
    return bindir


@pytest.fixture(scope="session")
def postgresql_cluster():
    """A running PostgreSQL, for the whole session."""
    cluster = PostgresCluster(_required_postgresql()).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def postgresql_replicated():
    """A primary cluster of this test's own and a hot standby that follows it."""
    bindir = _required_postgresql()
    primary = PostgresCluster(bindir).start()
    standby = PostgresCluster(bindir)
    try:
        standby.start_standby_of(primary)
        yield primary, standby
    finally:
        standby.stop()
        primary.stop()


_pg_databases = iter(range(1, 10**9))


@pytest.fixture(scope="session")
def postgresql_template(postgresql_cluster) -> str:
    """One migrated PostgreSQL database (device id made), copied for each test that needs one."""
    from passerelle.server import db as dbmod

    postgresql_cluster.admin("CREATE DATABASE passerelle_template")
    dbmod.prepare(postgresql_cluster.url("passerelle_template"))
    return "passerelle_template"


@pytest.fixture
def postgresql_url(postgresql_cluster, postgresql_template) -> str:
    """The URL of a fresh, migrated PostgreSQL database of this test's own."""
    name = f"test_{next(_pg_databases)}"
    postgresql_cluster.admin(f"CREATE DATABASE {name} TEMPLATE {postgresql_template}")
    yield postgresql_cluster.url(name)
    postgresql_cluster.admin(f"DROP DATABASE {name} WITH (FORCE)")


_pg_free: list[str] = []  # databases made from the template, given back clean after a test


class Databases:
    """Migrated databases of one engine for a test: a copy of the SQLite template file, or a
    PostgreSQL database made from the migrated template database (making one takes most of
    a second here, so they are emptied and reused from test to test)."""

    def __init__(self, engine: str, request, root: Path):
        self.engine, self.request, self.root = engine, request, root
        self.made: list = []
        self.taken: list[str] = []

    def url(self, name: str) -> str:
        """A new migrated database's location (a file path or a postgresql:// URL)."""
        import shutil as sh

        if self.engine == "sqlite":
            path = self.root / f"{name}.db"
            sh.copy(self.request.getfixturevalue("template_db"), path)
            return str(path)
        cluster = self.request.getfixturevalue("postgresql_cluster")
        template = self.request.getfixturevalue("postgresql_template")
        if _pg_free:
            database = _pg_free.pop()
            _empty_postgres(cluster.url(database))
        else:
            database = f"test_{next(_pg_databases)}"
            cluster.admin(f"CREATE DATABASE {database} TEMPLATE {template}")
        self.taken.append(database)
        return cluster.url(database)

    def new(self, name: str, device: str | None = None):
        from passerelle.server import db as dbmod

        db = dbmod.connect(self.url(name))
        if device is not None:
            db.execute("UPDATE meta SET value = ? WHERE key = 'device_id'", [device])
            db.conn.commit()
        self.made.append(db)
        return db

    def close(self) -> None:
        for db in self.made:
            db.close()
        self.made.clear()
        _pg_free.extend(self.taken)
        self.taken.clear()


def _empty_postgres(url: str) -> None:
    """A used test database back to the template's state: every table emptied, a device id."""
    import uuid

    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'schema_migrations'")]
        conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
        conn.execute("INSERT INTO meta (key, value) VALUES ('device_id', %s), ('created_at',"
                     " '2026-01-01T00:00:00+00:00')", [str(uuid.uuid4())])


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request) -> str:
    """Run a test on both engines: SQLite (every box) and PostgreSQL (a hub)."""
    return request.param


@pytest.fixture
def databases(engine, request, tmp_path):
    made = Databases(engine, request, tmp_path)
    yield made
    made.close()


@pytest.fixture(scope="session")
def pg_box_template(tmp_path_factory, postgresql_cluster):
    """The set-up box of `box`, its records on PostgreSQL (a hub's engine)."""
    home = tmp_path_factory.mktemp("pg-box-template") / "box"
    home.mkdir()
    postgresql_cluster.admin("CREATE DATABASE box_template")
    (home / "passerelle.toml").write_text(
        f'database_url = "{postgresql_cluster.url("box_template")}"\n')
    return home, _build_box(home)


@pytest.fixture
def box_of_engine(engine, request, tmp_path) -> Box:
    """`box` on the engine of `engine`: a test module whose `box` returns this runs on both."""
    if engine == "sqlite":
        return request.getfixturevalue("box")
    return postgresql_box(request, tmp_path)


def postgresql_box(request, tmp_path) -> Box:
    """A copy of the set-up box whose records are on PostgreSQL (a hub's engine)."""
    import shutil as sh

    template, ids = request.getfixturevalue("pg_box_template")
    cluster = request.getfixturevalue("postgresql_cluster")
    home = tmp_path / "box"
    sh.copytree(template, home)
    database = f"test_{next(_pg_databases)}"
    cluster.admin(f"CREATE DATABASE {database} TEMPLATE box_template")
    (home / "passerelle.toml").write_text(f'database_url = "{cluster.url(database)}"\n')
    return Box(home, ids)
