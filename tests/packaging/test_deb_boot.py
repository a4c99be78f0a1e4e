"""The amd64 package installed on a minimal Debian, booted with systemd, upgraded and purged.

- The system is Debian bookworm as ``mmdebstrap --variant=minbase`` makes it, with only
  what the package depends on (systemd, python3.11): if a dependency were missing from
  the control file, the service would not start here. The tree is cached as a tarball
  between runs (about 30 s to make, 240 MB), keyed by its package list.
- It boots with ``systemd-nspawn --boot``: the real systemd runs the hardened unit, so
  the sandbox, the sysusers file and the maintainer scripts are the ones a Pi runs. The
  container shares this machine's network; the service listens on 127.0.0.1 on a free port
  (a drop-in), which is all the tests talk to.
- Commands run inside the booted system through ``nsenter`` into its init's namespaces
  (no machined needed).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import INSTALL_SH, run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="booting a container needs root"),
]

BASE_PACKAGES = "systemd,systemd-sysv,dbus,python3.11"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "passerelle-tests"
BOOT_SECONDS = 240   # generous: the suite runs on a busy 2-core machine
DATA = "var/lib/passerelle"


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    assert found, f"{name} is missing: `make test` installs it (packaging-tools)"
    return found


def _minbase(packages: str) -> Path:
    """A minimal bookworm tree with these packages as a tarball, made once by mmdebstrap
    from this machine's apt sources, then reused (keyed by the package list)."""
    key = hashlib.sha256(packages.encode()).hexdigest()[:10]
    tar = CACHE / f"bookworm-amd64-minbase-{key}.tar"
    if not tar.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        part = tar.with_name(tar.name + ".part")
        run([_tool("mmdebstrap"), "--variant=minbase", f"--include={packages}",
             "--mode=root", "--format=tar", "--quiet", "bookworm", part], timeout=1800)
        part.rename(tar)  # only a whole tarball is ever reused
    return tar


@pytest.fixture(scope="session")
def bookworm() -> Path:
    return _minbase(BASE_PACKAGES)


@pytest.fixture(scope="session")
def bookworm_with_venv() -> Path:
    """What install.sh needs on top: Python's venv module (Debian ships it apart)."""
    return _minbase(BASE_PACKAGES + ",python3.11-venv")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health(port: int) -> dict | None:
    import json
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=5) as r:
            return json.load(r)
    except OSError:
        return None


class Box:
    """One Debian tree with the package installed, booted and stopped by the tests."""

    def __init__(self, root: Path):
        self.root = root
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None
        self.log = root.parent / "console.log"
        dropin = root / "etc/systemd/system/passerelle.service.d"
        dropin.mkdir(parents=True)
        (dropin / "test-port.conf").write_text(
            "[Service]\n"
            f"Environment=PASSERELLE_HOST=127.0.0.1\nEnvironment=PASSERELLE_PORT={self.port}\n")

    def dpkg(self, *args: str, booted: bool = False) -> subprocess.CompletedProcess:
        if booted:
            return self.sh("dpkg " + " ".join(args))
        return run(["chroot", self.root, "dpkg", *args], timeout=600)

    def boot(self) -> dict:
        self.start()
        return self.wait_healthy()

    def start(self) -> None:
        """Boot the container and wait until its systemd has finished starting units."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [_tool("systemd-nspawn"), "--quiet", "--directory", self.root, "--boot",
                 "--register=no", "--keep-unit", "--console=read-only"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + BOOT_SECONDS
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the container stopped:\n{self.console()}"
            if self.init_pid(missing_ok=True):
                # "degraded" is a finished boot too (this minimal system has no network units).
                state = self.sh("systemctl is-system-running --wait", check=False).stdout.strip()
                if state in ("running", "degraded"):
                    return
            time.sleep(0.5)
        pytest.fail(f"the container did not finish booting in {BOOT_SECONDS} s:\n{self.console()}")

    def wait_healthy(self, until=lambda health: True) -> dict:
        deadline = time.monotonic() + BOOT_SECONDS
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the container stopped:\n{self.console()}"
            found = _health(self.port)
            if found and until(found):
                return found
            time.sleep(0.5)
        pytest.fail(f"no health answer in {BOOT_SECONDS} s:\n{self.console()}\n"
                    f"{self.sh('systemctl status passerelle --no-pager', check=False).stdout}")

    def init_pid(self, missing_ok: bool = False) -> int | None:
        """The container's systemd: the process named systemd below our nspawn."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop()
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return pid
            except OSError:
                continue
            todo.extend(children.get(pid, []))
        if missing_ok:
            return None
        pytest.fail("the container's init was not found")

    def sh(self, command: str, check: bool = True) -> subprocess.CompletedProcess:
        return run(["nsenter", "--target", self.init_pid(), "--all", "sh", "-c", command],
                   timeout=600, check=check)

    def poweroff(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.sh("systemctl poweroff", check=False)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def console(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def _unpack(tar: Path, dest: Path) -> Path:
    root = dest / "root"
    root.mkdir()
    with tarfile.open(tar) as t:
        t.extractall(root, filter="fully_trusted")  # our own tarball, device nodes included
    return root


@pytest.fixture(scope="module")
def upgrade_deb(debs, tmp_path_factory) -> Path:
    """The same package under a higher version: what an upgrade installs."""
    work = tmp_path_factory.mktemp("upgrade")
    tree = work / "tree"
    run(["dpkg-deb", "-R", debs[0], tree])
    control = tree / "DEBIAN" / "control"
    text = control.read_text()
    version = re.search(r"^Version: (\S+)$", text, re.M).group(1)
    control.write_text(text.replace(f"Version: {version}", f"Version: {version}+up1"))
    out = work / "passerelle_up_amd64.deb"
    run(["dpkg-deb", "--root-owner-group", "-Zzstd", "-z1", "-b", tree, out], timeout=600)
    return out


@pytest.fixture(scope="module")
def box(bookworm, debs, tmp_path_factory):
    work = tmp_path_factory.mktemp("box")
    root = _unpack(bookworm, work)
    shutil.copy(debs[0], root / "tmp" / "passerelle.deb")
    box = Box(root)
    box.installed = box.dpkg("-i", "/tmp/passerelle.deb")
    box.first_health = box.boot()
    yield box
    box.poweroff()


def test_the_package_installs_on_minimal_debian_and_the_service_answers(box):
    assert "Setting up passerelle" in box.installed.stdout
    health = box.first_health
    assert health["status"] == "ok", health
    assert health["database"]["journal_mode"] == "wal"
    assert box.sh("systemctl is-active passerelle.service").stdout.strip() == "active"
    assert box.sh("systemctl is-enabled passerelle.service").stdout.strip() == "enabled"
    # The service runs as its own system user, and the data home is theirs alone.
    pid = box.sh("systemctl show -P MainPID passerelle.service").stdout.strip()
    uid = box.sh(f"stat -c %u /proc/{pid}").stdout.strip()
    assert box.sh(f"getent passwd {uid}").stdout.split(":")[0] == "passerelle"
    stat = box.sh(f"stat -c '%U %a' /{DATA}").stdout.split()
    assert stat == ["passerelle", "750"]
    assert (box.root / DATA / "passerelle.db").exists()


def test_the_running_sandbox_is_as_tight_as_the_unit_file_says(box):
    """systemd's score of the sandbox as it runs, next to its reading of the file alone."""
    running = box.sh("systemd-analyze security --no-pager passerelle.service", check=False)
    offline = box.sh("systemd-analyze security --offline=yes --no-pager "
                     "/lib/systemd/system/passerelle.service", check=False)
    score = re.compile(r"Overall exposure level for \S+: ([0-9.]+)")
    live = float(score.search(running.stdout + running.stderr).group(1))
    written = float(score.search(offline.stdout + offline.stderr).group(1))
    assert live <= 4.0, running.stdout
    assert live <= written + 0.05, (live, written)


def test_an_upgrade_restarts_the_service_on_the_new_package_and_keeps_the_data(box, upgrade_deb):
    before = box.sh("systemctl show -P MainPID passerelle.service").stdout.strip()
    device = box.first_health["device_id"]
    # The booted system mounts a tmpfs on /tmp; /var/tmp is the tree itself.
    shutil.copy(upgrade_deb, box.root / "var/tmp" / "passerelle-up.deb")
    box.dpkg("-i", "/var/tmp/passerelle-up.deb", booted=True)
    version = box.sh("dpkg-query -W -f '${Version}' passerelle").stdout
    assert version.endswith("+up1")
    health = box.wait_healthy()
    after = box.sh("systemctl show -P MainPID passerelle.service").stdout.strip()
    assert after not in ("", "0", before), "the service was not restarted on the new code"
    assert health["device_id"] == device  # same database, same identity


def test_purge_keeps_the_learners_data_and_says_how_to_delete_it(box):
    purged = box.dpkg("--purge", "passerelle", booted=True)
    assert f"sudo rm -rf /{DATA}" in purged.stdout
    assert (box.root / DATA / "passerelle.db").exists()
    assert not (box.root / "usr/lib/passerelle").exists()
    assert box.sh("systemctl is-active passerelle.service", check=False).stdout.strip() != "active"


# --- A box installed with install.sh, moved to the package -----------------------------------

# Run inside the box by the program's own Python (the old one, then the package's): a learner
# and a completed resource written through the services, then read back.
MAKE_LEARNER = """
from passerelle.server.app import create_app
from passerelle.server.db import get_db
from passerelle.server.learning import progress
from passerelle.server.people import accounts
app = create_app({"home": "/var/lib/passerelle"})
with app.app_context():
    db = get_db()
    learner = accounts.create_user(db, role="learner", display_name="Amina")
    progress.complete(db, learner, "demo-fr", "lesson-1")
    print(learner)
"""
READ_LEARNER = """
import json, sys
from passerelle.server.app import create_app
from passerelle.server.db import get_db
from passerelle.server.learning import progress
from passerelle.server.people import accounts
app = create_app({"home": "/var/lib/passerelle"})
with app.app_context():
    db = get_db()
    learner = sys.argv[1]
    print(json.dumps({"name": accounts.get_user(db, learner)["display_name"],
                      "progress": progress.of_learner(db, learner)}))
"""


def _as_service_user(python: str, script: str, *args: str) -> str:
    """A command line running SCRIPT with PYTHON as the service's user, in its data home."""
    import shlex
    return ("runuser -u passerelle -- env PASSERELLE_HOME=/var/lib/passerelle "
            f"{python} -c {shlex.quote(script)} " + " ".join(shlex.quote(a) for a in args))


def _processes(box: Box) -> list[str]:
    """Every command line running in the box (minbase has no ps)."""
    listing = box.sh("for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done",
                     check=False).stdout
    return [line.strip() for line in listing.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def old_box(bookworm_with_venv, wheel, wheelhouse, tmp_path_factory):
    """A box installed the old way, by install.sh from the wheel and a wheelhouse (no
    network), running, with a learner who completed a resource."""
    work = tmp_path_factory.mktemp("old-box")
    root = _unpack(bookworm_with_venv, work)
    source = root / "var/tmp/passerelle-src"
    (source / "packaging").mkdir(parents=True)
    for name in ("install.sh", "passerelle.service", "passerelle.sysusers"):
        shutil.copy(INSTALL_SH.parent / name, source / "packaging" / name)
    shutil.copytree(wheelhouse, root / "var/tmp/wheels")
    shutil.copy(wheel, root / "var/tmp/wheels" / wheel.name)
    box = Box(root)
    box.start()
    # --no-enable, then systemd's own enable --now: install.sh gives a new service 30 s to
    # answer, which a busy test machine may exceed; the wait below is the tests' generous one.
    box.installed = box.sh(
        f"sh /var/tmp/passerelle-src/packaging/install.sh --from /var/tmp/wheels/{wheel.name} "
        "--wheels /var/tmp/wheels --python python3.11 --no-enable")
    box.sh("systemctl daemon-reload && systemctl enable --now passerelle.service")
    box.first_health = box.wait_healthy()
    box.learner = box.sh(_as_service_user("/opt/passerelle/venv/bin/python", MAKE_LEARNER)
                         ).stdout.split()[-1]
    box.db_inode = box.sh(f"stat -c %i /{DATA}/passerelle.db").stdout.strip()
    yield box
    box.poweroff()


def test_a_box_installed_by_install_sh_moves_to_the_package_with_its_learners(old_box, debs):
    box = old_box
    assert "installed" in box.installed.stdout
    before = box.sh("systemctl show -P MainPID passerelle.service").stdout.strip()
    assert "/opt/passerelle/venv/bin/passerelle" in " ".join(
        p for p in _processes(box) if "passerelle serve" in p)
    shutil.copy(debs[0], box.root / "var/tmp" / "passerelle.deb")
    installed = box.dpkg("-i", "/var/tmp/passerelle.deb", booted=True)
    assert "install.sh's unit set aside" in installed.stdout, installed.stdout

    health = box.wait_healthy()
    # The service runs the package's program, restarted from the old one.
    after = box.sh("systemctl show -P MainPID passerelle.service").stdout.strip()
    assert after not in ("", "0", before)
    main = box.sh(f"tr '\\0' ' ' < /proc/{after}/cmdline").stdout
    assert "/usr/lib/passerelle/" in main, main
    assert box.sh("systemctl show -P FragmentPath passerelle.service").stdout.strip() in (
        "/lib/systemd/system/passerelle.service", "/usr/lib/systemd/system/passerelle.service")
    assert box.sh("systemctl is-enabled passerelle.service").stdout.strip() == "enabled"
    assert box.sh("command -v passerelle").stdout.strip() == "/usr/bin/passerelle"

    # The same data home, database file, identity and learner's progress.
    assert health["device_id"] == box.first_health["device_id"]
    assert box.sh(f"stat -c %i /{DATA}/passerelle.db").stdout.strip() == box.db_inode
    assert box.sh(f"stat -c '%U %a' /{DATA}").stdout.split() == ["passerelle", "750"]
    import json
    read = json.loads(box.sh(_as_service_user("/usr/lib/passerelle/bin/python3", READ_LEARNER,
                                              box.learner)).stdout)
    assert read["name"] == "Amina"
    assert [(p["pack_id"], p["node_id"], p["completed"]) for p in read["progress"]] == [
        ("demo-fr", "lesson-1", True)]

    # Nothing of the old install runs or is enabled; its unit is kept aside, inert.
    assert not [p for p in _processes(box) if "/opt/passerelle" in p]
    etc = box.root / "etc/systemd/system"
    assert not (etc / "passerelle.service").exists()
    assert (etc / "passerelle.service.install-sh").exists()
    link = etc / "multi-user.target.wants/passerelle.service"
    assert os.readlink(link) in ("/lib/systemd/system/passerelle.service",
                                 "/usr/lib/systemd/system/passerelle.service")
    assert not (box.root / "usr/local/bin/passerelle").exists()
    units = box.sh("systemctl list-unit-files --no-legend 'passerelle*'").stdout.split()
    assert units.count("passerelle.service") == 1
