"""Passerelle side by side with a real Kolibri 0.19: sign-in storms, first screen, cold start.

Usage:
  .venv/bin/python bench/kolibri_bench.py                                  # Passerelle only
  .venv/bin/python bench/kolibri_bench.py --kolibri-venv /work/kolibri-venv  # starts its own Kolibri
  .venv/bin/python bench/kolibri_bench.py --kolibri-url http://127.0.0.1:8080 \\
      --kolibri-admin 'admin:PASSWORD' [--kolibri-pid PID]                 # a Kolibri already running

Getting a Kolibri (outside this repository; nothing of it is committed):
  python3 -m venv /work/kolibri-venv && /work/kolibri-venv/bin/pip install kolibri==0.19.5
With ``--kolibri-venv`` the bench provisions a throw-away Kolibri in a temporary
KOLIBRI_HOME (``kolibri manage provisiondevice``), serves it with ``kolibri start
--foreground`` on 127.0.0.1 with the telemetry ping (DISABLE_PING) and zeroconf
off and every proxy variable pointed at a dead local port, so nothing leaves
127.0.0.1. With ``--kolibri-url`` it uses a running Kolibri and an admin
account: it adds a class and learners named ``bench_pw_NNN`` / ``bench_open_NNN``
(kept for the next run), switches the facility's ``learner_can_login_with_no_password``
during the storms and puts it back at the end.

Journeys, each side as a browser does it (Kolibri renders in the browser from
API calls; ``--show-requests`` lists what a real Chromium asks for, see
docs/benchmarks.md). A "tablet" is one keep-alive HTTP connection and its own
cookies, requests in sequence (a browser runs some of Kolibri's in parallel).
1. Sign-in storm: N tablets at once, from the sign-in screen on display to the
   learner's first screen. Passerelle: GET the learner's sign-in form, POST it
   (PIN, or nothing in ``none`` mode), GET ``/``. Kolibri: no-password facility:
   GET ``/api/auth/facilityusername/``, POST ``/api/auth/session/``; password
   facility: POST the session without password (the form's first step, answered
   400), then with it; then the first screen below.
2. First screen of a signed-in learner, static files cached (both sides serve
   them immutable): Passerelle ``GET /``; Kolibri ``/en/redirectuser/`` (302),
   ``/en/learn/`` and the 11 API calls its learn page makes on load. wrk with
   one connection per learner (-t N -c N), closed loop.
3. Cold start: from launching the server to the first 200 of the sign-in page;
   resident memory of all the server's processes at rest, then under load.

Each round runs every measurement on Passerelle then on Kolibri; ``--rounds 2``
(default) alternates them twice on a shared machine. Needs ``wrk``.
"""

from __future__ import annotations

import argparse
import http.client
import http.cookies
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _box import PASSERELLE, PIN, free_port, prepare, tree_pids  # noqa: E402

KOLIBRI_PASSWORD = PIN  # the same 4 characters on both sides
BROWSER = {"browser": {"name": "Chrome", "major": "120", "minor": "0", "patch": "0"},
           "os": {"name": "Android", "major": "10"}}
# What Kolibri 0.19.5's learn page asks for on load, in order, as recorded from
# Chromium (``--show-requests``); {uid} is the learner's id. With no channel
# imported the page lands on the Library tab.
KOLIBRI_LEARN_API = [
    ("PUT", "/api/auth/session/current/", json.dumps({"active": False, **BROWSER})),
    ("GET", "/learn/api/state", None),
    ("GET", "/api/content/channel/?available=true", None),
    ("GET", "/api/logger/userprogress/{uid}/", None),
    ("GET", "/api/content/contentnode/?max_results=1", None),
    ("GET", "/api/content/channel/?available=true", None),
    ("GET", "/api/content/usercontentnode/?resume=true&max_results=12&ordering=-last_interacted"
            "&exclude_course_ancestry=true", None),
    ("GET", "/api/content/contentnode/?parent__isnull=true&include_coach_content=false", None),
    ("GET", "/api/content/contentnodeprogress/?resume=true&max_results=12"
            "&ordering=-last_interacted&exclude_course_ancestry=true", None),
    ("GET", "/api/discovery/networklocation/", None),
    ("GET", "/api/discovery/pinned_devices/", None),
]
KOLIBRI_SCREEN = [("GET", "/en/redirectuser/", None, 302), ("GET", "/en/learn/", None, 200)] + [
    (m, p, b, 200) for m, p, b in KOLIBRI_LEARN_API]
PASSERELLE_SCREEN = [("GET", "/", None, 200)]


# --- HTTP: one tablet = one keep-alive connection and its cookies ------------------------------

class Tablet:
    def __init__(self, base: str, timeout: float = 300):
        url = urllib.parse.urlsplit(base)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
        self.cookies: dict[str, str] = {}
        self.location: str | None = None  # of the last answer
        # As a browser does when a keep-alive connection it reuses turns out closed by the
        # server (Kolibri closes them after 10 s idle): send once more on a new connection.
        self.retry_closed = False
        self.retries = 0

    def connect(self) -> None:
        self.conn.connect()

    def cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def request(self, method: str, path: str, body=None, form: dict | None = None,
                expect: int | tuple = 200, headers: dict | None = None) -> bytes:
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = self.cookie_header()
        if "kolibri_csrftoken" in self.cookies:
            headers["X-CSRFToken"] = self.cookies["kolibri_csrftoken"]
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            body = body if isinstance(body, str) else json.dumps(body)
            headers["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body, headers)
            response = self.conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            if not self.retry_closed:
                raise
            self.conn.close()
            self.retries += 1
            self.conn.request(method, path, body, headers)
            response = self.conn.getresponse()
        data = response.read()
        self.location = response.getheader("Location")
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                jar = http.cookies.SimpleCookie()
                jar.load(value)
                self.cookies.update({m.key: m.value for m in jar.values()})
        if response.status not in (expect if isinstance(expect, tuple) else (expect,)):
            raise RuntimeError(f"{method} {path}: {response.status} {data[:120]!r}")
        return data

    def close(self) -> None:
        self.conn.close()


def kolibri_env(home: Path) -> dict:
    """Environment of a throw-away Kolibri: its own home, no telemetry, no zeroconf, nothing leaves 127.0.0.1."""
    env = {**os.environ, "KOLIBRI_HOME": str(home), "KOLIBRI_DISABLE_PING": "1",
           "KOLIBRI_ZEROCONF_ENABLED": "0", "KOLIBRI_LISTEN_ADDRESS": "127.0.0.1",
           "KOLIBRI_RUN_MODE": "passerelle-bench", "no_proxy": "127.0.0.1,localhost",
           "NO_PROXY": "127.0.0.1,localhost"}
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env[var] = "http://127.0.0.1:9"  # discard port: any outside call fails here
    return env


def rss_tree_mb(root: int | None) -> float:
    if root is None:
        return float("nan")
    total = 0
    for pid in tree_pids(root):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_tree_s(root: int | None) -> float:
    """CPU seconds (user + system) used so far by a server and its children: a measure of work
    that other programs sharing the machine do not change, unlike latencies."""
    if root is None:
        return float("nan")
    ticks = 0
    for pid in tree_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_for(url: str, proc: subprocess.Popen | None, deadline_s: float = 120) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            Tablet(url, timeout=2).request("GET", urllib.parse.urlsplit(url).path or "/")
            return
        except (OSError, RuntimeError, http.client.HTTPException):
            if proc is not None and proc.poll() is not None:
                raise SystemExit(f"the server exited during start ({proc.args[0]})") from None
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer 200 in {deadline_s:.0f} s")


# --- The two servers ---------------------------------------------------------------------------

class Passerelle:
    name = "Passerelle"
    screen = PASSERELLE_SCREEN

    def __init__(self, tmp: Path, learners: int):
        self.home = tmp / "box"
        self.log = tmp / "passerelle.log"
        ids = prepare(self.home, learners=learners)
        self.learners = ids["learners"]
        self.proc = None
        self.pid = None

    def start(self) -> float:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        t0 = time.perf_counter()
        with open(self.log, "ab") as log:  # a file, never an unread pipe
            self.proc = subprocess.Popen([PASSERELLE, "--home", str(self.home), "serve", "--host",
                                          "127.0.0.1", "--port", str(port)], stdout=log, stderr=log)
        self.pid = self.proc.pid
        try:
            wait_for(self.url + "/signin", self.proc)
        except BaseException:
            self.stop()
            raise
        return time.perf_counter() - t0

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def set_mode(self, mode: str) -> None:
        """``secret`` (the PIN) or ``none``: the organisation's learner sign-in mode."""
        from passerelle.server import records
        from passerelle.server.app import create_app
        from passerelle.server.db import get_db
        from passerelle.server.people import accounts

        app = create_app({"home": self.home})
        with app.app_context():
            db = get_db()
            with records.write_tx(db):
                accounts.update_organisation(db, signin_mode="pin" if mode == "secret" else "none")
        self.mode = mode

    def users(self, n: int) -> list[str]:
        return self.learners[:n]

    def sign_in(self, tablet: Tablet, user: str) -> dict:
        path = f"/signin/learner/{user}"
        html = tablet.request("GET", path).decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        tablet.request("POST", path, form={"csrf_token": token,
                                           "secret": PIN if self.mode == "secret" else ""},
                       expect=302)
        return {}

    def first_screen(self, tablet: Tablet, me: dict) -> None:
        html = tablet.request("GET", "/").decode()
        if "signout" not in html:
            raise RuntimeError("home page without the sign-out button")

    def wrk_session(self, tablet: Tablet, me: dict) -> dict:
        return {"cookie": f"passerelle_session={tablet.cookies['passerelle_session']}", "token": "",
                "uid": ""}


class Kolibri:
    name = "Kolibri"
    screen = KOLIBRI_SCREEN

    def __init__(self, tmp: Path, learners: int, venv: str | None, url: str | None,
                 admin: str | None, facility: str | None, pid: int | None,
                 passwords: bool = True):
        self.proc, self.pid, self.venv = None, pid, venv
        self.passwords = passwords  # False: only learners without a password (no PBKDF2 to wait for)
        self.log = tmp / "kolibri.log"
        if venv:
            self.home = tmp / "kolibri-home"
            self.admin = ("admin", "bench admin passphrase")
            self.env = kolibri_env(self.home)
            t0 = time.perf_counter()
            self.manage("provisiondevice", "--facility", "Bench", "--superusername", self.admin[0],
                        "--superuserpassword", self.admin[1], "--preset", "formal",
                        "--language_id", "en", "--noinput", first=True)
            self.start()  # the first start after provisioning is not measured
            print(f"Kolibri provisioned in {time.perf_counter() - t0:.1f} s ({self.home})")
            try:
                self.setup_users(learners, facility)
            finally:  # it runs in its own session: it would outlive the bench
                self.stop()
            return
        self.url = url.rstrip("/")
        user, _, password = (admin or "").partition(":")
        if not password:
            raise SystemExit("--kolibri-url needs --kolibri-admin USER:PASSWORD "
                             "(a facility admin, to add the bench's learners)")
        self.admin = (user, password)
        self.setup_users(learners, facility)

    # provisioning ----------------------------------------------------------------------------
    def manage(self, *args: str, first: bool = False) -> None:
        cmd = [str(Path(self.venv) / "bin" / "kolibri"), "manage"]
        cmd += [] if first else ["--skip-update"]
        with open(self.log, "ab") as log:
            subprocess.run(cmd + list(args), env=self.env, check=True, stdout=log, stderr=log)

    def admin_tablet(self) -> Tablet:
        tablet = Tablet(self.url)
        tablet.request("POST", "/api/auth/session/", {"username": self.admin[0],
                                                      "password": self.admin[1],
                                                      "facility": self.facility})
        return tablet

    def setup_users(self, learners: int, facility: str | None) -> None:
        facilities = json.loads(Tablet(self.url).request("GET", "/api/auth/facility/"))
        chosen = next((f for f in facilities if facility in (None, f["id"], f["name"])), None)
        if chosen is None:
            raise SystemExit(f"no facility {facility!r} on {self.url}")
        self.facility, self.dataset = chosen["id"], chosen["dataset"]["id"]
        self.original_setting = chosen["dataset"]["learner_can_login_with_no_password"]
        admin = self.admin_tablet()
        classes = json.loads(admin.request("GET", f"/api/auth/classroom/?parent={self.facility}"))
        group = next((c for c in classes if c["name"] == "Passerelle bench"), None)
        if group is None:
            group = json.loads(admin.request("POST", "/api/auth/classroom/",
                                             {"name": "Passerelle bench", "parent": self.facility},
                                             expect=201))
        found = json.loads(admin.request("GET", f"/api/auth/facilityuser/?member_of={self.facility}"))
        found = found["results"] if isinstance(found, dict) else found
        have = {u["username"]: u["id"] for u in found}
        self.pw_users = [f"bench_pw_{i:03d}" for i in range(learners if self.passwords else 0)]
        self.open_users = [f"bench_open_{i:03d}" for i in range(learners)]
        # Learners without a password are stored as NOT_SPECIFIED, as Kolibri's own forms do
        # in a facility that allows it: their sign-in hashes nothing.
        self.set_no_password(True, admin)
        missing = [(u, KOLIBRI_PASSWORD) for u in self.pw_users if u not in have]
        missing += [(u, "NOT_SPECIFIED") for u in self.open_users if u not in have]

        def create(item):
            username, password = item
            tablet = Tablet(self.url)
            tablet.cookies = dict(admin.cookies)
            user = json.loads(tablet.request("POST", "/api/auth/facilityuser/", {
                "username": username, "full_name": username.replace("_", " ").title(),
                "password": password, "facility": self.facility}, expect=201))
            tablet.request("POST", "/api/auth/membership/", {"user": user["id"],
                                                             "collection": group["id"]}, expect=201)
            tablet.close()

        if missing:
            t0 = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(create, missing))
            print(f"Kolibri: {len(missing)} learners added through the API in "
                  f"{time.perf_counter() - t0:.1f} s")

    def set_no_password(self, allowed: bool, admin: Tablet | None = None) -> None:
        (admin or self.admin_tablet()).request(
            "PATCH", f"/api/auth/facilitydataset/{self.dataset}/",
            {"learner_can_login_with_no_password": allowed})

    # serving ----------------------------------------------------------------------------------
    def start(self) -> float:
        if not self.venv:
            return float("nan")
        port, zip_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{port}"
        t0 = time.perf_counter()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(Path(self.venv) / "bin" / "kolibri"), "start", "--foreground", "--port",
                 str(port), "--zip-port", str(zip_port)], env=self.env, stdout=log, stderr=log,
                start_new_session=True)
        self.pid = self.proc.pid
        try:
            wait_for(self.url + "/en/auth/", self.proc)
        except BaseException:
            self.stop()
            raise
        return time.perf_counter() - t0

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def set_mode(self, mode: str) -> None:
        self.set_no_password(mode == "none")
        self.mode = mode

    def users(self, n: int) -> list[str]:
        return (self.pw_users if self.mode == "secret" else self.open_users)[:n]

    def sign_in(self, tablet: Tablet, user: str) -> dict:
        body = {"username": user, "password": "", "facility": self.facility, "active": True,
                **BROWSER}
        if self.mode == "none":
            tablet.request("GET", f"/api/auth/facilityusername/?facility={self.facility}"
                                  f"&search={user}")
        else:  # the form's first step posts without password and is told one is needed
            tablet.request("POST", "/api/auth/session/", body, expect=400)
            body["password"] = KOLIBRI_PASSWORD
        session = json.loads(tablet.request("POST", "/api/auth/session/", body))
        return {"uid": session["user_id"]}

    def first_screen(self, tablet: Tablet, me: dict) -> None:
        for method, path, body, expect in self.screen:
            tablet.request(method, path.replace("{uid}", me["uid"]), body, expect=expect)

    def wrk_session(self, tablet: Tablet, me: dict) -> dict:
        return {"cookie": tablet.cookie_header(), "token": tablet.cookies["kolibri_csrftoken"],
                "uid": me["uid"]}

    def restore(self) -> None:
        if not self.venv:
            self.set_no_password(self.original_setting)


# --- Journey 1: sign-in storm ------------------------------------------------------------------

def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def storm(server, n: int) -> tuple[dict, list]:
    users = server.users(n)
    tablets = [Tablet(server.url) for _ in users]
    for tablet in tablets:
        tablet.connect()  # the sign-in screen is on display: the connection is open
    start = {}
    barrier = threading.Barrier(n, action=lambda: start.setdefault("t", time.perf_counter()))
    signed, shown, errors, sessions = [], [], [], [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            me = server.sign_in(tablets[i], users[i])
            signed.append(time.perf_counter() - start["t"])
            server.first_screen(tablets[i], me)
            shown.append(time.perf_counter() - start["t"])
            sessions[i] = server.wrk_session(tablets[i], me)
        except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
            errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    cpu0 = cpu_tree_s(server.pid)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = cpu_tree_s(server.pid) - cpu0
    for tablet in tablets:
        tablet.close()
    r = {"n": n, "ok": len(shown), "cpu_ms": cpu * 1000 / n, "errors": len(errors), "first_error": errors[0] if errors else ""}
    if signed:
        r.update(all_signed=max(signed), signed_p50=pct(signed, 50), signed_p95=pct(signed, 95))
    if shown:
        r.update(all_shown=max(shown), shown_p50=pct(shown, 50), shown_p95=pct(shown, 95))
    return r, [s for s in sessions if s]


# --- Journey 2: the first screen under wrk -----------------------------------------------------

LUA = r"""
-- Generated by bench/kolibri_bench.py: one learner per connection (-t N -c N).
local learners = %(learners)s
local screen = %(screen)s
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  me = learners[(id %% #learners) + 1]
  n = 0
  bad = 0
  expect = 200
  last = ""
end

function request()
  local r = screen[(n %% #screen) + 1]
  n = n + 1
  expect = r.expect
  local headers = {["Cookie"] = me.cookie}
  if r.method ~= "GET" then
    headers["X-CSRFToken"] = me.token
    headers["Content-Type"] = "application/json"
  end
  local path = string.gsub(r.path, "{uid}", me.uid)
  return wrk.format(r.method, path, headers, r.body)
end

function response(status, headers, body)
  if status ~= expect then
    bad = bad + 1
    last = status
  end
end

function done(summary, latency, requests)
  local wrong, last_bad = 0, ""
  for _, t in ipairs(threads) do
    wrong = wrong + (t:get("bad") or 0)
    if (t:get("bad") or 0) > 0 then last_bad = tostring(t:get("last")) end
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%%d,"seconds":%%.3f,"p50":%%d,"p95":%%d,"p99":%%d,"max":%%d,' ..
    '"socket":%%d,"timeout":%%d,"unexpected":%%d,"last_unexpected":"%%s"}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, e.connect + e.read + e.write, e.timeout, wrong, last_bad))
end
"""


def lua(value) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {lua(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "{" + ", ".join(lua(v) for v in value) + "}"
    if value is None:
        return "nil"
    return json.dumps(value)  # JSON string escapes are valid Lua escapes for these values


def load(server, sessions: list[dict], duration: int, tmp: Path) -> dict:
    n = len(sessions)
    script = tmp / f"{server.name}.lua"
    script.write_text(LUA % {
        "learners": lua(sessions),
        "screen": lua([{"method": m, "path": p, "body": b, "expect": e}
                       for m, p, b, e in server.screen])})
    samples, stop = [], threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(rss_tree_mb(server.pid))
            time.sleep(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu0 = cpu_tree_s(server.pid)
    run = subprocess.run(["wrk", "-t", str(n), "-c", str(n), "-d", f"{duration}s", "--timeout",
                          "10s", "-s", str(script), server.url], check=False, capture_output=True,
                         text=True, timeout=duration + 120)
    cpu = cpu_tree_s(server.pid) - cpu0
    stop.set()
    sampler.join()
    line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk gave no result:\n{run.stdout}\n{run.stderr}")
    r = json.loads(line[len("RESULT "):])
    r["rps"] = r["requests"] / r["seconds"]
    r["screens"] = r["rps"] / len(server.screen)
    r["cpu_ms"] = cpu * 1000 / (r["requests"] / len(server.screen))  # server CPU per first screen
    r["rss_max"] = max(samples) if samples else float("nan")
    return r


# --- Running, reporting ------------------------------------------------------------------------

def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def measure(server, args, tmp: Path) -> dict:
    out = {"cold": server.start(), "load": os.getloadavg()[0]}
    time.sleep(2)  # let start-up work settle before reading memory at rest
    out["idle_rss"] = rss_tree_mb(server.pid)
    cold = "not measured (already running)" if out["cold"] != out["cold"] else f"{out['cold']:.2f} s"
    print(f"  {server.name}: cold start to the sign-in page {cold}, "
          f"RSS at rest {out['idle_rss']:.1f} MB (machine load average {out['load']:.1f})")
    sessions = []
    try:
        for mode in ("secret", "none"):
            server.set_mode(mode)
            for n in args.storms:
                r, got = storm(server, n)
                out[(mode, n)] = r
                if n == max(args.storms):
                    sessions = got
                line = (f"  {server.name} storm {mode:6} x{n:3}: {r['ok']}/{n} on their first screen, "
                        f"{r['errors']} errors, server CPU {r['cpu_ms']:.0f} ms per learner")
                if r["ok"]:
                    line += (f"; all signed in {ms(r['all_signed'])} (p50 {ms(r['signed_p50'])}, "
                             f"p95 {ms(r['signed_p95'])}); all on the first screen "
                             f"{ms(r['all_shown'])} (p50 {ms(r['shown_p50'])}, p95 {ms(r['shown_p95'])})")
                print(line + (f"\n    first error: {r['first_error']}" if r["errors"] else ""))
        out["after_storms_rss"] = rss_tree_mb(server.pid)
        if len(sessions) == max(args.storms):
            w = load(server, sessions, args.duration, tmp)
            out["wrk"] = w
            print(f"  {server.name} first screen x{len(sessions)} under wrk: {w['rps']:.0f} req/s = "
                  f"{w['screens']:.1f} screens/s ({len(server.screen)} requests each); "
                  f"p50/p95/p99 {w['p50'] / 1000:.0f}/{w['p95'] / 1000:.0f}/{w['p99'] / 1000:.0f} ms; "
                  f"socket errors {w['socket']}, timeouts {w['timeout']}, unexpected status "
                  f"{w['unexpected']} {w['last_unexpected']}; RSS max {w['rss_max']:.1f} MB; "
                  f"server CPU {w['cpu_ms']:.1f} ms per screen")
    finally:
        server.stop()  # a Kolibri given by --kolibri-url is left running
    return out


def show_requests(servers, tmp: Path) -> None:
    """Sign one learner in per side, then list what Chromium fetches for the first screen."""
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get(
            "PASSERELLE_TEST_CHROMIUM", "/usr/bin/chromium"), headless=True, args=args)
        for server in servers:
            server.start()
            server.set_mode("none")
            tablet = Tablet(server.url)
            me = server.sign_in(tablet, server.users(1)[0])
            context = browser.new_context()
            context.add_cookies([{"name": k, "value": v, "url": server.url}
                                 for k, v in tablet.cookies.items()])
            page = context.new_page()
            seen = []
            page.on("request", lambda r, seen=seen: seen.append(f"{r.method} {r.url}"))
            entry = "/" if isinstance(server, Passerelle) else "/en/redirectuser/"
            page.goto(server.url + entry, wait_until="networkidle")
            # Until 4 s pass without a request (a loaded machine parses Kolibri's bundles slowly).
            quiet, deadline = 0, time.monotonic() + 60
            while quiet < 4 and time.monotonic() < deadline:
                before = len(seen)
                page.wait_for_timeout(1000)
                quiet = quiet + 1 if len(seen) == before else 0
            first = len(seen)
            page.wait_for_timeout(20000)  # the screen left open: does it poll?
            uid = me.get("uid") or "-"

            def show(items):
                return [s.replace(server.url, "").replace(uid, "{uid}")  # noqa: B023 - called now
                        for s in items if "/static/" not in s]

            dynamic = show(seen[:first])
            print(f"{server.name}: first screen (cold cache) = {first} requests, "
                  f"{len(dynamic)} outside /static/ (immutable, cached by a tablet):")
            for s in dynamic:
                print("   ", s)
            print(f"  then, in 20 s with the screen open: {show(seen[first:]) or 'nothing'}")
            context.close()
            if isinstance(server, Passerelle) or server.venv:
                server.stop()
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=100)
    parser.add_argument("--storms", default="35,100", help="tablets signing in at once, e.g. 35,100")
    parser.add_argument("--duration", type=int, default=30, help="seconds of wrk load per side")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kolibri-venv", help="a virtualenv with kolibri installed: start one")
    parser.add_argument("--kolibri-url", help="a running Kolibri 0.19 (needs --kolibri-admin)")
    parser.add_argument("--kolibri-admin", help="USER:PASSWORD of a facility admin (--kolibri-url)")
    parser.add_argument("--kolibri-facility", help="facility id or name (default: the first)")
    parser.add_argument("--kolibri-pid", type=int, help="the running Kolibri's pid, for its memory")
    parser.add_argument("--show-requests", action="store_true",
                        help="list the requests Chromium makes for each first screen, then stop")
    args = parser.parse_args()
    args.storms = sorted(int(x) for x in args.storms.split(","))
    if max(args.storms) > args.learners:
        raise SystemExit("--storms larger than --learners")
    if not shutil.which("wrk"):
        raise SystemExit("wrk is missing: apt-get install wrk")

    with tempfile.TemporaryDirectory(prefix="kolibri-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        servers = [Passerelle(tmp, args.learners)]
        print(f"Passerelle box prepared in {time.perf_counter() - t0:.1f} s "
              f"({args.learners} learners with a PIN, one class, the bundled library)")
        if args.kolibri_venv or args.kolibri_url:
            servers.append(Kolibri(tmp, args.learners, args.kolibri_venv, args.kolibri_url,
                                   args.kolibri_admin, args.kolibri_facility, args.kolibri_pid))
        else:
            print("No Kolibri given: Passerelle only. To compare, install Kolibri 0.19 in its own "
                  "virtualenv (python3 -m venv /work/kolibri-venv && /work/kolibri-venv/bin/pip "
                  "install kolibri==0.19.5) and pass --kolibri-venv /work/kolibri-venv, or pass "
                  "--kolibri-url and --kolibri-admin for a running one.")
        try:
            if args.show_requests:
                show_requests(servers, tmp)
                return
            results = {s.name: [] for s in servers}
            for r in range(args.rounds):
                print(f"round {r + 1}/{args.rounds}")
                for server in servers:
                    results[server.name].append(measure(server, args, tmp))
        finally:
            for server in servers:
                server.stop()  # after an error; a Kolibri given by --kolibri-url is left running
                if isinstance(server, Kolibri):
                    server.restore()
        print(f"\nmachine: {os.cpu_count()} cores, shared; servers as shipped (Passerelle "
              f"8 Waitress threads; Kolibri's cherrypy pool by its own default); client and wrk on "
              f"the same machine")
        summary(results, args)


def summary(results: dict, args) -> None:
    """A Markdown table: one column per side and round."""
    cols = [(name, i, r) for name, runs in results.items() for i, r in enumerate(runs)]
    rows = [("machine load average at the start", lambda r: f"{r['load']:.1f}"),
            ("cold start to the sign-in page",
             lambda r: "—" if r["cold"] != r["cold"] else f"{r['cold']:.2f} s"),  # nan: not started here
            ("RSS at rest (all processes)", lambda r: f"{r['idle_rss']:.0f} MB")]
    for mode, label in (("secret", "PIN / password"), ("none", "no password")):
        for n in args.storms:
            rows.append((f"{n} sign in at once, {label}: all signed in (p95)",
                         lambda r, k=(mode, n): "—" if "all_signed" not in r[k] else
                         f"{ms(r[k]['all_signed'])} ({ms(r[k]['signed_p95'])})"
                         + (f", {r[k]['errors']} errors" if r[k]["errors"] else "")))
            rows.append(("… and on their first screen (p95)",
                         lambda r, k=(mode, n): "—" if "all_shown" not in r[k] else
                         f"{ms(r[k]['all_shown'])} ({ms(r[k]['shown_p95'])})"))
            rows.append(("… server CPU per learner (sign-in + first screen)",
                         lambda r, k=(mode, n): f"{r[k]['cpu_ms']:.0f} ms"))
    rows += [("RSS after the storms", lambda r: f"{r['after_storms_rss']:.0f} MB"),
             ("first screen under wrk: requests/s", lambda r: f"{r['wrk']['rps']:.0f}"),
             ("… first screens/s", lambda r: f"{r['wrk']['screens']:.1f}"),
             ("… latency per request p50 / p95 / p99",
              lambda r: "{p50:.0f} / {p95:.0f} / {p99:.0f} ms".format(
                  **{k: r["wrk"][k] / 1000 for k in ("p50", "p95", "p99")})),
             ("… socket errors, timeouts, unexpected status",
              lambda r: f"{r['wrk']['socket']}, {r['wrk']['timeout']}, {r['wrk']['unexpected']}"),
             ("… server CPU per first screen", lambda r: f"{r['wrk']['cpu_ms']:.1f} ms"),
             ("… RSS max during wrk", lambda r: f"{r['wrk']['rss_max']:.0f} MB")]
    print("\n| measure | " + " | ".join(f"{n} run {i + 1}" for n, i, _ in cols) + " |")
    print("| --- |" + " --- |" * len(cols))
    for label, cell in rows:
        values = []
        for _, _, r in cols:
            try:
                values.append(cell(r))
            except (KeyError, TypeError, ValueError):
                values.append("—")
        print(f"| {label} | " + " | ".join(values) + " |")


if __name__ == "__main__":
    main()
