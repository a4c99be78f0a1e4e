"""The Debian packages, built as `make deb ARCH=amd64` builds them, then inspected.

Nothing is installed on this machine: the package is unpacked into a folder, its
private Python environment is run from there with Debian's python3.11, its files,
control fields and maintainer scripts are read, and lintian checks both packages.
Installing it on a minimal Debian and booting it is in test_deb_boot.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import PACKAGING, clean_env, run
from .test_unit_file import parse_unit

DEBIAN_PYTHON = "/usr/bin/python3.11"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="dpkg-deb is not installed"),
    pytest.mark.skipif(not Path(DEBIAN_PYTHON).exists(), reason="no Debian python3.11 here"),
]

PREFIX = "usr/lib/passerelle"
SITE = f"{PREFIX}/lib/python3.11/site-packages"


def fields(deb) -> dict[str, str]:
    text = run(["dpkg-deb", "-f", deb]).stdout
    found, key = {}, None
    for line in text.splitlines():
        if line.startswith(" ") and key:
            found[key] += "\n" + line
        else:
            key, _, value = line.partition(": ")
            found[key] = value
    return found


def listing(deb) -> dict[str, tuple[str, str]]:
    """{path: (mode string, owner)} of the package's files."""
    found = {}
    for line in run(["dpkg-deb", "-c", deb]).stdout.splitlines():
        parts = line.split(None, 5)
        path = parts[5].split(" -> ")[0].removeprefix("./").rstrip("/")
        found[path] = (parts[0], parts[1])
    return found


@pytest.fixture(scope="module")
def unpacked(debs, tmp_path_factory):
    """The main package unpacked, with /usr/bin/python3.11 of this machine in its place."""
    root = tmp_path_factory.mktemp("root")
    run(["dpkg-deb", "-x", debs[0], root])
    run(["dpkg-deb", "-e", debs[0], root / "DEBIAN"])
    (root / "usr" / "bin" / "python3.11").symlink_to(DEBIAN_PYTHON)
    return root


def test_the_control_fields(debs):
    main, hotspot = fields(debs[0]), fields(debs[1])
    assert main["Package"] == "passerelle" and main["Architecture"] == "amd64"
    depends = [d.strip() for d in main["Depends"].split(",")]
    assert "python3.11 (>= 3.11.2)" in depends
    # Debian's Python libraries are never needed, so none can conflict.
    assert not [d for d in depends if d.startswith("python3-")]
    assert "Conflicts" not in main and "Provides" not in main
    assert hotspot["Package"] == "passerelle-hotspot" and hotspot["Architecture"] == "all"
    assert f"passerelle (>= {main['Version']})" in hotspot["Depends"]
    for needed in ("network-manager", "dnsmasq-base", "nftables", "iw", "rfkill"):
        assert needed in hotspot["Depends"]


def test_files_stay_in_the_private_environment(debs):
    files = listing(debs[0])
    allowed = (f"{PREFIX}", "usr/bin/passerelle", "usr/lib/systemd/system/passerelle.service",
               "usr/lib/sysusers.d/passerelle.conf", "usr/share/doc/passerelle",
               "usr/share/lintian/overrides/passerelle")
    outside = [p for p in files if p not in ("", ".", "usr", "usr/bin", "usr/lib", "usr/share",
                                             "usr/lib/systemd", "usr/lib/systemd/system",
                                             "usr/lib/sysusers.d", "usr/share/doc",
                                             "usr/share/lintian", "usr/share/lintian/overrides")
               and not p.startswith(allowed)]
    assert not outside, outside[:20]
    assert not [p for p in files if "dist-packages" in p or p.startswith("etc/")]
    assert all(owner == "root/root" for _, owner in files.values())
    assert files["usr/bin/passerelle"][0] == "-rwxr-xr-x"
    # Shared libraries are not programs.
    assert not [p for p, (mode, _) in files.items() if ".so" in p.rsplit("/", 1)[-1]
                and "x" in mode and not mode.startswith("l")]


def test_the_environment_is_private_and_precompiled(unpacked):
    venv = unpacked / PREFIX
    cfg = (venv / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in cfg and "home = /usr/bin" in cfg
    assert (venv / "bin" / "python3").readlink().as_posix() == "../../../bin/python3.11"
    assert (venv / "bin" / "passerelle").read_text().startswith(f"#!/{PREFIX}/bin/python3\n")
    sources = list((unpacked / SITE / "passerelle").rglob("*.py"))
    assert sources
    for source in sources:
        pycs = list((source.parent / "__pycache__").glob(source.stem + ".cpython-311*.pyc"))
        assert pycs, f"no byte-code for {source}"
        # Hash-based and never checked against the source (PEP 552 flags = 0b01).
        assert int.from_bytes(pycs[0].read_bytes()[4:8], "little") == 1, pycs[0]


def test_the_environment_runs_without_writing_anything(unpacked, tmp_path):
    before = sorted(p.as_posix() for p in (unpacked / PREFIX).rglob("*"))
    python = unpacked / PREFIX / "bin" / "python3"
    code = ("import sys, passerelle.server.cli as cli; "
            "print(cli.__file__); print('\\n'.join(sys.path))")
    proc = run([python, "-c", code], env=clean_env(PYTHONDONTWRITEBYTECODE=""), cwd=tmp_path)
    module, *path = proc.stdout.splitlines()
    assert module.startswith(str(unpacked / SITE))
    assert not [p for p in path if "dist-packages" in p or "site-packages" in p
                and not p.startswith(str(unpacked))], path
    proc = run([python, "-c", "from passerelle.server.cli import main; main()", "--home",
                tmp_path / "home", "config", "show"], env=clean_env(), cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "captive_portal" in proc.stdout
    after = sorted(p.as_posix() for p in (unpacked / PREFIX).rglob("*"))
    assert after == before, set(after) ^ set(before)


def test_the_command_defaults_to_the_service_home(unpacked):
    text = (unpacked / "usr" / "bin" / "passerelle").read_text()
    assert ': "${PASSERELLE_HOME:=/var/lib/passerelle}"' in text
    assert f"exec /{PREFIX}/bin/passerelle" in text


def test_the_unit_is_the_hardened_one_with_the_package_paths(unpacked):
    packaged = parse_unit((unpacked / "usr/lib/systemd/system/passerelle.service").read_text())
    source = parse_unit((PACKAGING / "passerelle.service").read_text())
    assert dict(packaged["Service"])["ExecStart"] == f"/{PREFIX}/bin/passerelle serve"

    def without(unit, key):
        return [(k, v) for k, v in unit if k != key]

    assert without(packaged["Service"], "ExecStart") == without(source["Service"], "ExecStart")
    assert without(packaged["Unit"], "Documentation") == without(source["Unit"], "Documentation")
    assert packaged["Install"] == source["Install"]
    assert (unpacked / "usr/lib/sysusers.d/passerelle.conf").read_text() == \
        (PACKAGING / "passerelle.sysusers").read_text()


def test_maintainer_scripts(unpacked):
    scripts = {name: (unpacked / "DEBIAN" / name).read_text()
               for name in ("postinst", "prerm", "postrm")}
    for name, text in scripts.items():
        run(["sh", "-n", unpacked / "DEBIAN" / name])
        assert text.startswith("#!/bin/sh\n") and "set -e" in text, name
    postinst = scripts["postinst"]
    assert "systemd-sysusers passerelle.conf" in postinst
    assert "deb-systemd-invoke restart passerelle.service" in postinst
    # A box installed with install.sh: its unit and command are set aside, its data stays.
    assert "/etc/systemd/system/passerelle.service.install-sh" in postinst
    # Upgrades keep the service running (postinst restarts it); only removal stops it.
    assert '"$1" = remove' in scripts["prerm"] and "stop passerelle.service" in scripts["prerm"]
    postrm = scripts["postrm"]
    assert "sudo rm -rf /var/lib/passerelle" in postrm
    assert not [line for line in postrm.splitlines()
                if "rm " in line and "/var/lib/passerelle" in line and "echo" not in line]


def test_the_hotspot_package(debs):
    files = listing(debs[1])
    keyfile = "usr/lib/NetworkManager/system-connections/passerelle-hotspot.nmconnection"
    assert files[keyfile] == ("-rw-------", "root/root")
    for path in ("etc/NetworkManager/dnsmasq-shared.d/passerelle.conf",
                 "usr/lib/passerelle-hotspot/redirect.nft", "etc/default/passerelle-hotspot",
                 "usr/lib/systemd/system/passerelle-hotspot-redirect.service",
                 "usr/lib/systemd/system/passerelle-hotspot-radio.service",
                 "etc/avahi/services/passerelle.service"):
        assert path in files, path
    conffiles = run(["dpkg-deb", "--info", debs[1], "conffiles"]).stdout.split()
    assert sorted(conffiles) == sorted("/" + p for p in files if p.startswith("etc/")
                                       and files[p][0].startswith("-"))


@pytest.mark.skipif(not shutil.which("lintian"), reason="lintian is not installed "
                    "(`make test` installs it)")
def test_lintian_finds_no_error_nor_warning(debs):
    """Each remaining finding is overridden in the package, with the reason written there.

    bookworm's lintian calls every zstd-compressed package malformed (Debian's archive
    takes only xz or gzip); dpkg itself installs them since bookworm, and xz takes ten
    minutes here, so that one finding is set aside.
    """
    proc = subprocess.run(["lintian", "--suppress-tags", "malformed-deb-archive",
                           "--fail-on", "error,warning", *debs], check=False,
                          capture_output=True, text=True, timeout=900)
    findings = [line for line in proc.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert proc.returncode == 0 and not findings, proc.stdout + proc.stderr
