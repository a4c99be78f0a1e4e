"""The systemd unit and the sysusers file: required settings, and systemd's own verdict."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import SYSUSERS, UNIT

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

# What systemd-analyze may say about a unit in a container or a build machine
# that says nothing about the unit's syntax: the service user does not exist here.
TOLERATED = re.compile(r"(user|group).*(not found|no such|does not exist)|Failed to resolve (user|group)",
                       re.IGNORECASE)


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit as {section: [(key, value), ...]}, keeping repeated keys in order."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    pending = ""
    for number, raw in enumerate(text.splitlines(), 1):
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            assert line.endswith("]"), f"line {number}: bad section header {line!r}"
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"line {number}: setting outside a section"
        assert "=" in line, f"line {number}: not KEY=VALUE: {line!r}"
        key, value = line.split("=", 1)
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k == key]


def last(section: list[tuple[str, str]], key: str) -> str | None:
    found = values(section, key)
    return found[-1] if found else None


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def test_unit_has_the_three_sections(unit):
    assert set(unit) == {"Unit", "Service", "Install"}
    assert "network.target" in last(unit["Unit"], "After").split()
    assert last(unit["Install"], "WantedBy") == "multi-user.target"


def test_unit_runs_the_server_as_the_passerelle_user(unit):
    service = unit["Service"]
    assert last(service, "ExecStart") == "/opt/passerelle/venv/bin/passerelle serve"
    assert last(service, "User") == "passerelle"
    assert last(service, "Group") == "passerelle"
    assert "PASSERELLE_HOME=/var/lib/passerelle" in values(service, "Environment")
    assert last(service, "StateDirectory") == "passerelle"
    assert last(service, "StateDirectoryMode") == "0750"
    assert last(service, "Restart") == "on-failure"
    assert int(last(service, "RestartSec")) > 0
    assert last(service, "KillSignal") == "SIGTERM"
    assert int(last(service, "TimeoutStopSec")) >= 10
    assert last(service, "UMask") == "0027"


REQUIRED_HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "CapabilityBoundingSet": "",
    "ReadWritePaths": "/var/lib/passerelle",
}


@pytest.mark.parametrize("key", sorted(REQUIRED_HARDENING))
def test_unit_is_hardened(unit, key):
    assert last(unit["Service"], key) == REQUIRED_HARDENING[key], key


def test_unit_allows_only_ip_unix_and_netlink_sockets(unit):
    families = last(unit["Service"], "RestrictAddressFamilies").split()
    assert sorted(families) == ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"]


def test_usb_sticks_stay_readable(unit):
    """Content is imported from USB sticks under /media, /mnt or /run/media: never hide them."""
    service = unit["Service"]
    for key in ("InaccessiblePaths", "TemporaryFileSystem", "BindPaths"):
        for value in values(service, key):
            assert not re.search(r"(^|\s|-)/(media|mnt|run)", value), f"{key}={value}"
    # ProtectHome= hides /home, /root and /run/user only; ProtectSystem=strict makes the
    # rest read-only, and sticks mounted after the start still show (slave propagation).
    assert last(service, "ProtectHome") in ("yes", "read-only", "tmpfs")
    assert last(service, "ProtectSystem") == "strict"


def test_sysusers_file_creates_a_system_user_with_no_login():
    lines = [line.split() for line in SYSUSERS.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert len(lines) == 1
    fields = lines[0]
    assert fields[:3] == ["u", "passerelle", "-"]
    assert fields[-2:] == ["/var/lib/passerelle", "/usr/sbin/nologin"]


def systemd_analyze_verify(unit_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", "--generators=no", str(unit_path)],
        check=False, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_LOG_LEVEL": "notice",
             "SYSTEMD_PAGER": "", "LANG": "C.UTF-8"},
    )


def assert_systemd_accepts(unit_path: Path) -> None:
    """`systemd-analyze verify` passes: no syntax error, no unknown key, nothing ignored.

    It exits 0 even for unknown keys or unparsable values ("..., ignoring"), so every
    line it prints about this unit counts as a failure, except a missing user.
    """
    proc = systemd_analyze_verify(unit_path)
    output = (proc.stdout + proc.stderr).strip()
    complaints = [line for line in output.splitlines()
                  if unit_path.name in line and not TOLERATED.search(line)]
    assert proc.returncode == 0 and not complaints, f"systemd-analyze verify:\n{output}"


def unit_copy(tmp_path: Path, exec_start: str) -> Path:
    """The unit with ExecStart pointing at an executable that exists on this machine."""
    path = tmp_path / "passerelle.service"
    text = UNIT.read_text(encoding="utf-8")
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={exec_start}", text, flags=re.MULTILINE)
    path.write_text(text, encoding="utf-8")
    return path


needs_systemd_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None,
                                           reason="systemd-analyze is not installed")


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    assert_systemd_accepts(unit_copy(tmp_path, "/bin/true"))


@needs_systemd_analyze
def test_systemd_analyze_verify_catches_mistakes(tmp_path):
    """The check above would notice a typo: systemd only warns about it and exits 0."""
    path = unit_copy(tmp_path, "/bin/true")
    path.write_text(path.read_text().replace("ProtectHome=yes", "ProtectHom=yes"))
    with pytest.raises(AssertionError, match="Unknown key"):
        assert_systemd_accepts(path)


@needs_systemd_analyze
def test_systemd_security_exposure_is_low(tmp_path):
    """systemd's own score of the sandbox (0 = locked down, 10 = none); 3.0 when written."""
    proc = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager",
                           str(unit_copy(tmp_path, "/bin/true"))],
                          check=False, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
    if "--offline" in proc.stderr or "unrecognized option" in proc.stderr:
        pytest.skip("this systemd-analyze has no offline security review (systemd < 250)")
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", proc.stdout + proc.stderr)
    assert found, proc.stdout + proc.stderr
    assert float(found.group(1)) <= 4.0, proc.stdout
