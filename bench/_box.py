"""A box for the learner-page benchmarks: bundled library, a coordinator, learners, a server.

Shared by bench/page_weight.py and bench/load_bench.py. Everything runs on
127.0.0.1 in a temporary data home.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PASSERELLE = str(Path(sys.executable).with_name("passerelle"))
PIN = "2468"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pids() -> dict[int, list[int]]:
    """Every process's children (parent pid -> pids), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def tree_pids(root: int) -> list[int]:
    """A process and all its descendants."""
    children = child_pids()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def memory_kinds(pid: int) -> tuple[float, float]:
    """(anonymous, file-backed) resident memory in MB: the heap (Python objects, caches,
    malloc'd buffers), and pages of mapped files (shared libraries, SQLite's mapped files,
    a ZIM read by libzim), which the kernel takes back under pressure."""
    kb = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].rstrip(":") in ("Rss", "Anonymous", "Shared_Clean",
                                                          "Private_Clean"):
            kb[parts[0].rstrip(":")] = int(parts[1])
    anon = kb.get("Anonymous", 0)
    return anon / 1024, (kb.get("Rss", 0) - anon) / 1024


def memory_split(pid: int) -> str:
    """Resident memory by kind, in words (see :func:`memory_kinds`)."""
    anon, file_backed = memory_kinds(pid)
    return f"anonymous {anon:.1f} MB, file-backed {file_backed:.1f} MB"


def prepare(home: Path, learners: int = 0, demo_pack: bool = False) -> dict:
    """Import the bundled packs, set the box up, add learners in one class; their uuids."""
    subprocess.run([PASSERELLE, "--home", str(home), "content", "import", "--bundled"], check=True,
                   stdout=subprocess.DEVNULL)
    from passerelle.server.app import create_app
    from passerelle.server.db import get_db
    from passerelle.server.people import accounts

    app = create_app({"home": home})
    ids: dict = {"learners": []}
    with app.app_context():
        db = get_db()
        ids["coordinator"] = accounts.setup(
            db, org_name="Bench", languages=["fr", "nl", "en", "ar"], signin_mode="pin",
            profile_fields=None, display_name="Coordinator", username="coordinator",
            password="bench coordinator passphrase")
        if learners:
            ids["class"] = accounts.create_class(db, "Bench class")
            for i in range(learners):
                uuid = accounts.create_user(db, role="learner", display_name=f"Learner {i:03d}",
                                            pin=PIN, avatar="fox")
                accounts.add_member(db, ids["class"], uuid)
                ids["learners"].append(uuid)
        if demo_pack:  # the test fixture: a video with subtitles, a PDF, an exercise
            from passerelle.content import build_pack

            built = build_pack(REPO / "tests" / "fixtures" / "demo-pack", home.parent / "demo-fr.zip",
                               created="2026-11-01T00:00:00Z")
            app.extensions["passerelle.library"].import_pack(built.path)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return ids


def nodes(home: Path) -> dict[str, str]:
    """One URL path per kind of learner page, from the installed catalogue."""
    import sqlite3

    db = sqlite3.connect(home / "passerelle.db")
    found = {}
    for kind in ("topic", "article", "video", "exercise", "document"):
        row = db.execute("SELECT pack_id, node_id FROM content_nodes WHERE kind = ?"
                         " AND parent_id IS NOT NULL ORDER BY pack_id = 'demo-fr', pack_id, sort_order,"
                         " position LIMIT 1", [kind]).fetchone()
        if row:
            prefix = "/practice" if kind == "exercise" else "/learn"
            found[kind] = f"{prefix}/{row[0]}/{row[1]}"
    return found


class Server:
    """`passerelle serve` on 127.0.0.1, its output in HOME/bench-server.log.

    Never an unread pipe: a full pipe blocks the server and looks like overload.
    No LAN announcement and no background sync: a benchmark measures one thing.
    """

    def __init__(self, home: Path, threads: int = 8):
        self._launch(home, lambda port: [
            PASSERELLE, "--home", str(home), "serve", "--host", "127.0.0.1", "--port", str(port),
            "--threads", str(threads)])

    def _launch(self, home: Path, command, wait_s: float = 30, settle_s: float = 0) -> None:
        """Start ``command(port)`` and wait until the box answers on that port."""
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(home / "bench-server.log", "ab")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "PASSERELLE_DISCOVERY": "false", "PASSERELLE_SYNC_INTERVAL_MINUTES": "0"}
        self.proc = subprocess.Popen(command(self.port), stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/api/v1/health", timeout=1):
                    time.sleep(settle_s)
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise SystemExit(f"the server exited during start; see {home}/bench-server.log"
                                     ) from None
                time.sleep(0.1)
        raise SystemExit(f"the server did not start; see {home}/bench-server.log")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def sign_in(base: str, learner_uuid: str) -> tuple[str, str]:
    """Sign a learner in through the real form; (session cookie value, CSRF token)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    path = f"/signin/learner/{learner_uuid}"
    html = opener.open(base + path, timeout=30).read().decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    body = urllib.parse.urlencode({"csrf_token": token, "secret": PIN}).encode()
    opener.open(base + path, data=body, timeout=30).read()
    html = opener.open(base + "/", timeout=30).read().decode()
    if "signout" not in html:
        raise SystemExit(f"sign-in failed for {learner_uuid}")
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)
    cookie = next(c.value for c in jar if c.name == "passerelle_session")
    return cookie, token


# One serving process of a box on a port that others share (SO_REUSEPORT: the kernel hands
# each new connection to one of them). Not a way the box runs: the box serves from one
# process, whose memory holds state the others would not see (import jobs, the captive
# portal's clients, background sync, caches). This measures what a second process on the
# second core would give a class answering at once.
_SHARED_PORT_PROCESS = r"""
import signal, socket, sys
from pathlib import Path
from passerelle.server.app import create_app
from passerelle.server.web import bodygate, serve
from waitress.server import create_server

home, port, threads = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
app = create_app({"home": home})
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
sock.bind(("127.0.0.1", port))
sock.listen(1024)
serve.return_freed_memory()
server = create_server(serve.build_wsgi(app, app.config["SETTINGS"]), sockets=[sock],
                       threads=threads, ident="passerelle", connection_limit=1000,
                       asyncore_use_poll=True)
bodygate.install(server, app)
def stop(_signum, _frame):
    raise SystemExit(0)
signal.signal(signal.SIGTERM, stop)
try:
    server.run()
finally:
    server.close()
"""

# The parent of the serving processes, so that the CPU of its process tree is theirs.
_SHARED_PORT_PARENT = r"""
import signal, subprocess, sys
children = [subprocess.Popen([sys.executable, "-c", sys.argv[1], *sys.argv[3:]])
            for _ in range(int(sys.argv[2]))]
def stop(_signum, _frame):
    for child in children:
        child.terminate()
signal.signal(signal.SIGTERM, stop)
for child in children:
    child.wait()
"""


class SharedPortServers(Server):
    """``processes`` serving processes of one box on one port, as :class:`Server` is used."""

    def __init__(self, home: Path, threads: int = 8, processes: int = 2):
        # The first process to answer is not the last one up: a few seconds more, so the
        # kernel hands connections to all of them.
        self._launch(home, lambda port: [
            sys.executable, "-c", _SHARED_PORT_PARENT, _SHARED_PORT_PROCESS, str(processes),
            str(home), str(port), str(threads)], wait_s=60, settle_s=3)
