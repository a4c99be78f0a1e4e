"""packaging/install.sh, run into a staging root (never into this machine's /)."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from .conftest import INSTALL_SH, SYSUSERS, clean_env, run
from .test_unit_file import SYSTEMD_ANALYZE, assert_systemd_accepts, parse_unit

IS_ROOT = os.geteuid() == 0
HAS_SYSUSERS = shutil.which("systemd-sysusers") is not None


def install(root: Path, *args, check: bool = True):
    """install.sh --root ROOT ...; the staging root keeps this machine untouched."""
    return run(["sh", INSTALL_SH, "--root", root, *args], check=check,
               env=clean_env(), cwd=root.parent, timeout=900)


def passwd_entry(root: Path, name: str = "passerelle") -> list[list[str]]:
    path = root / "etc" / "passwd"
    if not path.exists():
        return []
    return [line.split(":") for line in path.read_text().splitlines()
            if line.split(":", 1)[0] == name]


# --- Fast checks: the options and the errors ---------------------------------------

def test_help_lists_the_options():
    proc = run(["sh", INSTALL_SH, "--help"])
    for option in ("--root", "--prefix", "--from", "--no-enable", "--python", "--wheels"):
        assert option in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unknown option '--bogus'"),
    (["--prefix", "opt/passerelle"], "--prefix must be an absolute path"),
    (["--prefix", "/opt/my passerelle"], "--prefix may only contain"),
    (["--from", "/nonexistent/passerelle.whl"], "does not exist"),
    (["--from"], "option --from needs a value"),
    (["--python", "/nonexistent/python3"], "/nonexistent/python3 not found"),
])
def test_bad_options_fail_with_one_clear_line(tmp_path, args, message):
    root = tmp_path / "root"
    root.mkdir()
    proc = install(root, "--no-enable", *args, check=False)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("install.sh: error: "), proc.stderr
    assert message in lines[0]
    assert not any(root.iterdir()), "nothing is written before the options are checked"


def fake_python(tmp_path: Path, body: str) -> Path:
    """A python3 stand-in: `body` is a sh case on the -c code; anything else runs the real one."""
    path = tmp_path / "python3"
    path.write_text(f'#!/bin/sh\ncase "$2" in\n{body}\nesac\nexec "{sys.executable}" "$@"\n')
    path.chmod(0o755)
    return path


def test_old_python_is_refused(tmp_path):
    python = fake_python(tmp_path, '*version_info*) exit 1 ;;\n*python_version*) echo 3.9.2; exit 0 ;;')
    root = tmp_path / "root"
    root.mkdir()
    proc = install(root, "--no-enable", "--python", python, check=False)
    assert proc.returncode != 0
    assert "needs Python 3.11 or newer" in proc.stderr and "3.9.2" in proc.stderr


def test_missing_venv_module_names_the_debian_package(tmp_path):
    python = fake_python(tmp_path, "*ensurepip*) exit 1 ;;")
    root = tmp_path / "root"
    root.mkdir()
    proc = install(root, "--no-enable", "--python", python, check=False)
    assert proc.returncode != 0
    assert "apt-get install python3-venv" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


# --- The install into a staging root (slow: makes a venv) --------------------------

@pytest.fixture(scope="module")
def staged(wheel, wheelhouse, tmp_path_factory):
    """install.sh --root ROOT --no-enable --from WHEEL --wheels WHEELHOUSE, run once."""
    root = tmp_path_factory.mktemp("stage") / "root"
    root.mkdir()
    proc = install(root, "--no-enable", "--from", wheel, "--wheels", wheelhouse,
                   "--python", sys.executable)
    return root, proc


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SYSUSERS, reason="systemd-sysusers is not installed")
def test_install_creates_the_system_user(staged):
    root, _ = staged
    entries = passwd_entry(root)
    assert len(entries) == 1, (root / "etc" / "passwd").read_text()
    _, _, uid, gid, _, home, shell = entries[0]
    assert home == "/var/lib/passerelle"
    assert shell.endswith("/nologin")
    assert int(uid) < 1000, "a system user"
    groups = [line.split(":") for line in (root / "etc" / "group").read_text().splitlines()]
    assert ["passerelle", gid] in [g[:1] + g[2:3] for g in groups]
    assert (root / "usr/lib/sysusers.d/passerelle.conf").read_text() == SYSUSERS.read_text()


@pytest.mark.slow
def test_install_creates_the_data_home(staged):
    root, _ = staged
    data = root / "var/lib/passerelle"
    assert data.is_dir()
    assert stat.S_IMODE(data.stat().st_mode) == 0o750
    entries = passwd_entry(root)
    if IS_ROOT and entries:
        assert data.stat().st_uid == int(entries[0][2])
        assert data.stat().st_gid == int(entries[0][3])


@pytest.mark.slow
def test_install_puts_the_unit_in_place(staged):
    root, _ = staged
    unit_path = root / "etc/systemd/system/passerelle.service"
    unit = parse_unit(unit_path.read_text())
    exec_start = [v for k, v in unit["Service"] if k == "ExecStart"]
    assert exec_start == ["/opt/passerelle/venv/bin/passerelle serve"]
    assert stat.S_IMODE(unit_path.stat().st_mode) == 0o644
    assert not (root / "etc/systemd/system/multi-user.target.wants").exists(), "--no-enable"


@pytest.mark.slow
@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_installed_unit_passes_systemd_analyze_verify(staged, tmp_path):
    """The installed unit, its ExecStart pointed at the staged venv's real executable."""
    root, _ = staged
    text = (root / "etc/systemd/system/passerelle.service").read_text()
    copy = tmp_path / "passerelle.service"
    copy.write_text(text.replace("ExecStart=/opt/passerelle/", f"ExecStart={root}/opt/passerelle/"))
    assert_systemd_accepts(copy)


@pytest.mark.slow
def test_installed_program_runs(staged, wheel_version, tmp_path):
    root, proc = staged
    passerelle = root / "opt/passerelle/venv/bin/passerelle"
    version = run([passerelle, "--version"], env=clean_env(), cwd=tmp_path).stdout.strip()
    assert version == f"passerelle, version {wheel_version}"
    assert f"installed {version}" in proc.stdout
    cfg = (root / "opt/passerelle/venv/pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg

    assert (root / "opt/passerelle/share/doc/passerelle/deployment.md").is_file()

    wrapper = root / "usr/local/bin/passerelle"
    assert os.access(wrapper, os.X_OK)
    text = wrapper.read_text()
    assert "exec /opt/passerelle/venv/bin/passerelle " in text
    assert "PASSERELLE_HOME:=/var/lib/passerelle" in text
    # The wrapper, pointed at the staged venv, defaults to the service's home.
    staged_wrapper = tmp_path / "passerelle"
    staged_wrapper.write_text(text.replace("/opt/passerelle/", f"{root}/opt/passerelle/"))
    staged_wrapper.chmod(0o755)
    shown = run([staged_wrapper, "config", "show", "--json"], env=clean_env(), cwd=tmp_path)
    assert '"home"' in shown.stdout and "/var/lib/passerelle" in shown.stdout


@pytest.mark.slow
def test_second_run_upgrades_in_place_and_keeps_the_data(staged, wheel, wheel_version, tmp_path):
    """Idempotent: the same user, the data kept, and (without --no-enable) enabled in the root."""
    root, _ = staged
    data = root / "var/lib/passerelle"
    before = passwd_entry(root)
    settings = data / "passerelle.toml"
    settings.write_text("port = 8081\n")  # written by root here: the run gives it back
    python = root / "opt/passerelle/venv/bin/python"
    venv_inode = python.parent.parent.stat().st_ino

    # No --wheels this time: the dependencies are already there, so pip needs no index.
    proc = install(root, "--from", wheel, "--python", sys.executable)
    assert "upgrading the virtual environment" in proc.stdout
    assert passwd_entry(root) == before
    assert settings.read_text() == "port = 8081\n"
    assert python.parent.parent.stat().st_ino == venv_inode, "the venv was kept, not remade"
    if IS_ROOT and before:
        assert settings.stat().st_uid == int(before[0][2]), "files in the data home go to passerelle"
    version = run([root / "opt/passerelle/venv/bin/passerelle", "--version"],
                  env=clean_env(), cwd=tmp_path).stdout.strip()
    assert version == f"passerelle, version {wheel_version}"
    if shutil.which("systemctl"):
        link = root / "etc/systemd/system/multi-user.target.wants/passerelle.service"
        assert link.is_symlink(), proc.stdout + proc.stderr
        assert os.readlink(link) == "/etc/systemd/system/passerelle.service"


@pytest.mark.slow
def test_prefix_is_substituted_everywhere(wheel, wheelhouse, wheel_version, tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    install(root, "--no-enable", "--prefix", "/srv/passerelle-box/", "--from", wheel,
            "--wheels", wheelhouse, "--python", sys.executable)
    unit = (root / "etc/systemd/system/passerelle.service").read_text()
    assert "/opt/passerelle" not in unit
    assert "\nExecStart=/srv/passerelle-box/venv/bin/passerelle serve\n" in unit
    assert "exec /srv/passerelle-box/venv/bin/passerelle " in (root / "usr/local/bin/passerelle").read_text()
    assert not (root / "opt").exists()
    version = run([root / "srv/passerelle-box/venv/bin/passerelle", "--version"],
                  env=clean_env(), cwd=tmp_path).stdout.strip()
    assert version == f"passerelle, version {wheel_version}"
