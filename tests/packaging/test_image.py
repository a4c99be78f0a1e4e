"""The Raspberry Pi image's own files, checked without building the image.

Building the image (Debian's arm64 packages under qemu) takes a quarter of an hour: it is
``make image`` and ``make image-check``, run before a release (docs/deployment.md). Here:
the first-boot program applied to a tree that stands for a box's root, the units read by
``systemd-analyze verify``, and the example ``passerelle.toml`` accepted as shipped.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from .conftest import PACKAGING, run
from .test_unit_file import SYSTEMD_ANALYZE

IMAGE = PACKAGING / "image"
FILES = IMAGE / "files"
FIRSTBOOT = FILES / "usr/lib/passerelle-image/bin/firstboot.py"
HOTSPOT = PACKAGING / "hotspot"


def _firstboot():
    spec = importlib.util.spec_from_file_location("firstboot", FIRSTBOOT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def box(tmp_path) -> Path:
    """A box's root as the packages leave it: the shipped keyfile and hotspot defaults."""
    root = tmp_path / "root"
    keyfile = root / "usr/lib/NetworkManager/system-connections/passerelle-hotspot.nmconnection"
    keyfile.parent.mkdir(parents=True)
    shutil.copy(HOTSPOT / "passerelle-hotspot.nmconnection", keyfile)
    defaults = root / "etc/default/passerelle-hotspot"
    defaults.parent.mkdir(parents=True)
    shutil.copy(HOTSPOT / "passerelle-hotspot.default", defaults)
    zone = root / "usr/share/zoneinfo/Europe/Brussels"
    zone.parent.mkdir(parents=True)
    zone.write_bytes(b"TZif2 stands for the real file")
    (root / "var/lib/passerelle").mkdir(parents=True)
    return root


def _boot_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "firmware" / "passerelle.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _run(box: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, FIRSTBOOT, "--root", box, *map(str, args)],
                          capture_output=True, text=True, check=False, timeout=60)


def _keyfile(box: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(box / "etc/NetworkManager/system-connections/passerelle-hotspot.nmconnection")
    return parser


def test_the_shipped_example_is_valid_and_changes_only_what_it_says():
    config = tomllib.loads((IMAGE / "passerelle.toml").read_text(encoding="utf-8"))
    assert _firstboot().check(config) == {"name": "Passerelle", "country": "00",
                                          "timezone": "Europe/Brussels", "language": "fr"}


def test_first_boot_applies_the_file_then_keeps_it_without_the_passphrase(box, tmp_path):
    boot = _boot_file(tmp_path, '[wifi]\nname = "Bibliothèque de Molenbeek"\ncountry = "BE"\n'
                                'passphrase = "lire-ensemble"\n\n[box]\ntimezone = "Europe/Brussels"\n'
                                'language = "nl"\n')
    proc = _run(box, boot)
    assert proc.returncode == 0, proc.stderr
    keyfile = box / "etc/NetworkManager/system-connections/passerelle-hotspot.nmconnection"
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o600  # it holds the passphrase
    read = _keyfile(box)
    ssid = read["wifi"]["ssid"]
    if ssid.endswith(";"):  # NetworkManager keeps a non-ASCII name as its bytes
        ssid = bytes(int(b) for b in ssid.rstrip(";").split(";")).decode()
    assert ssid == "Bibliothèque de Molenbeek"
    assert read["wifi-security"]["psk"] == "lire-ensemble"
    assert read["ipv4"]["address1"] == "10.42.0.1/24"
    assert "WIFI_COUNTRY=BE" in (box / "etc/default/passerelle-hotspot").read_text()
    assert (box / "etc/localtime").readlink() == Path("/usr/share/zoneinfo/Europe/Brussels")
    assert (box / "var/lib/passerelle/passerelle.toml").read_text() == 'default_language = "nl"\n'
    assert not boot.exists()
    kept = boot.with_name("passerelle.toml.done").read_text()
    assert "lire-ensemble" not in kept and "Molenbeek" in kept


@pytest.mark.parametrize("text, word", [
    ('[wifi]\nname = "' + "x" * 33 + '"\n', "wifi.name"),
    ('[wifi]\npassphrase = "short"\n', "wifi.passphrase"),
    ('[wifi]\ncountry = "Belgium"\n', "wifi.country"),
    ('[box]\ntimezone = "../../etc/shadow"\n', "box.timezone"),
    ('[box]\ntimezone = "Mars/Olympus"\n', "Mars/Olympus"),
    ('[box]\nlanguage = "de"\n', "box.language"),
    ('[wifi\nname = "x"\n', "passerelle.toml"),
])
def test_a_bad_file_changes_nothing_and_says_why(box, tmp_path, text, word):
    boot = _boot_file(tmp_path, text)
    before = sorted(p.relative_to(box) for p in box.rglob("*"))
    proc = _run(box, boot)
    assert proc.returncode == 1
    assert word in proc.stderr and "nothing changed" in proc.stderr
    assert sorted(p.relative_to(box) for p in box.rglob("*")) == before
    assert boot.exists()  # left for the person to correct


def test_a_request_from_the_setup_page_is_applied_and_answered(box, tmp_path):
    requests = box / "var/lib/passerelle/requests"
    requests.mkdir()
    request = requests / "network.json"
    request.write_text(json.dumps({"wifi": {"name": "Atelier"}}))
    proc = _run(box, "--request", request)
    assert proc.returncode == 0, proc.stderr
    assert not request.exists()
    assert json.loads((requests / "network.result.json").read_text()) == {
        "ok": True, "applied": ["wifi"], "wifi_name": "Atelier"}
    assert _keyfile(box)["wifi"]["ssid"] == "Atelier"
    request.write_text(json.dumps({"wifi": {"passphrase": "1234"}}))
    assert _run(box, "--request", request).returncode == 1
    answer = json.loads((requests / "network.result.json").read_text())
    assert answer["ok"] is False and "wifi.passphrase" in answer["error"]
    assert _keyfile(box)["wifi"]["ssid"] == "Atelier"  # unchanged


@pytest.mark.parametrize("unit", sorted(p.name for p in (FILES / "etc/systemd/system").iterdir()))
def test_systemd_accepts_the_image_units(tmp_path, unit):
    assert SYSTEMD_ANALYZE, "systemd-analyze is missing"
    src = FILES / "etc/systemd/system" / unit
    dest = tmp_path / unit
    text = src.read_text()
    # The programs they name exist on a box, not necessarily here.
    text = text.replace("/usr/lib/passerelle-image/bin/grow-data.sh", "/bin/true")
    text = text.replace("/usr/bin/python3.11 /usr/lib/passerelle-image/bin/firstboot.py", "/bin/true")
    dest.write_text(text)
    if unit.endswith(".path"):
        (tmp_path / unit.replace(".path", ".service")).write_text(
            "[Service]\nType=oneshot\nExecStart=/bin/true\n")
    proc = run([SYSTEMD_ANALYZE, "verify", dest], check=False,
               env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_LOG_LEVEL": "warning"})
    problems = [line for line in (proc.stdout + proc.stderr).splitlines()
                if str(tmp_path) in line or unit in line]
    assert not problems, problems


def test_the_grow_script_is_valid_shell():
    run(["sh", "-n", FILES / "usr/lib/passerelle-image/bin/grow-data.sh"])


def _boot_check():
    spec = importlib.util.spec_from_file_location("boot_check", IMAGE / "boot_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_emulated_boot_keeps_the_image_command_line_but_its_console():
    """make image-boot boots what cmdline.txt says (root, read-only first, repairs), only on
    the virt machine's serial console."""
    boot_check = _boot_check()
    line = boot_check.virt_cmdline(
        "console=tty0 root=LABEL=RASPIROOT rw fsck.repair=yes net.ifnames=0 cma=64M rootwait ro\n")
    words = line.split()
    assert [w for w in words if w.startswith("console=")] == ["console=ttyAMA0"]
    assert words[:7] == ["root=LABEL=RASPIROOT", "rw", "fsck.repair=yes", "net.ifnames=0",
                         "cma=64M", "rootwait", "ro"]


def test_the_emulated_boot_says_when_there_is_no_image(tmp_path):
    proc = subprocess.run([sys.executable, IMAGE / "boot_check.py", tmp_path / "none.img"],
                          capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode != 0
    assert "make image" in proc.stderr or "is missing" in proc.stderr
