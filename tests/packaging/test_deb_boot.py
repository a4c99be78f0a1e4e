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

from .conftest import run

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


@pytest.fixture(scope="session")
def bookworm() -> Path:
    """A minimal bookworm tree as a tarball, made once by mmdebstrap from this machine's
    apt sources, then reused."""
    key = hashlib.sha256(BASE_PACKAGES.encode()).hexdigest()[:10]
    tar = CACHE / f"bookworm-amd64-minbase-{key}.tar"
    if not tar.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        part = tar.with_name(tar.name + ".part")
        run([_tool("mmdebstrap"), "--variant=minbase", f"--include={BASE_PACKAGES}",
             "--mode=root", "--format=tar", "--quiet", "bookworm", part], timeout=1800)
        part.rename(tar)  # only a whole tarball is ever reused
    return tar


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
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [_tool("systemd-nspawn"), "--quiet", "--directory", self.root, "--boot",
                 "--register=no", "--keep-unit", "--console=read-only"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        return self.wait_healthy()

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

    def init_pid(self) -> int:
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
