"""Build the Debian packages: ``passerelle`` (amd64 or arm64) and ``passerelle-hotspot`` (all).

    make deb ARCH=arm64          # or: python packaging/deb/build.py --arch arm64 --out dist

Debian 12 (bookworm), Python 3.11. No debhelper and no chroot: the package is
assembled on any machine of either architecture, because nothing is compiled.

- ``/usr/lib/passerelle`` is a private virtual environment (``include-system-site-packages
  = false``) whose ``bin/python3`` is a link to Debian's ``/usr/bin/python3.11``. The
  wheels come only from ``requirements.lock`` (``pip download --require-hashes`` for the
  target platform, ``--only-binary=:all:``), and are unpacked by pypa's ``installer``
  library, which writes each script with the final interpreter path. Nothing goes into
  Debian's own ``dist-packages``, so the package never conflicts with ``python3-*``
  packages (Kolibri's did, with ``python3-markdown``).
- Byte-code is compiled at build time with ``unchecked-hash`` pycs: the sandboxed service
  (read-only ``/usr``) never tries to write them, and Python never re-reads a source file
  to check it. Only a package upgrade changes these files, and it replaces the pycs too.
- ``dpkg-deb -Zzstd``: the default xz takes ten minutes on these 2-core machines.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from email.parser import Parser
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGING = HERE.parent
REPO = PACKAGING.parent
LOCK = HERE / "requirements.lock"
PREFIX = "/usr/lib/passerelle"
DATA = "/var/lib/passerelle"
PY = "python3.11"
SITE = f"{PREFIX}/lib/{PY}/site-packages"
ARCHES = {"amd64": "x86_64", "arm64": "aarch64"}
MAINTAINER = os.environ.get("DEB_MAINTAINER", "Passerelle maintainers <passerelle@debian.invalid>")
DEBIAN_REVISION = "1"
# Not copied into the build: environments, caches, VCS data.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc",
    ".pytest_cache", ".ruff_cache", ".hypothesis", "node_modules", "test-artifacts", "tests",
)


_START = time.monotonic()


def say(message: str) -> None:
    print(f"build.py: [{time.monotonic() - _START:5.1f} s] {message}", flush=True)


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def sh(text: str) -> str:
    return textwrap.dedent(text).lstrip()


# --- Wheels --------------------------------------------------------------------------------

def build_wheel(work: Path) -> Path:
    """Passerelle's own wheel, built from a copy of the tree (the tree stays clean)."""
    source = work / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE, symlinks=True)
    out = work / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check", "-q",
         "-w", out, source])
    (wheel,) = out.glob("passerelle-*.whl")
    return wheel


def download_wheels(arch: str, wheelhouse: Path) -> list[Path]:
    """Every dependency for the target architecture, each checked against the lock's hashes."""
    from lock import PYTHON_VERSION, target_flags  # packaging/deb is on sys.path (main)

    run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--require-hashes", "-r", LOCK, "-d", wheelhouse,
         *target_flags(ARCHES[arch])])
    wheels = sorted(wheelhouse.glob("*.whl"))
    assert wheels, "no wheel downloaded"
    assert PYTHON_VERSION == PY.removeprefix("python")
    return wheels


def install_wheels(wheels: list[Path], root: Path) -> None:
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    scheme = {"purelib": SITE, "platlib": SITE, "scripts": f"{PREFIX}/bin", "data": PREFIX,
              "headers": f"{PREFIX}/include/site/{PY}"}
    destination = SchemeDictionaryDestination(
        scheme, interpreter=f"{PREFIX}/bin/python3", script_kind="posix", destdir=str(root))
    for wheel in wheels:
        with WheelFile.open(wheel) as source:
            install(source, destination, {"INSTALLER": b"passerelle-deb\n"})


def make_venv(root: Path) -> None:
    venv = root / PREFIX.lstrip("/")
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    (venv / "pyvenv.cfg").write_text(
        f"home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11\n"
        f"executable = /usr/bin/{PY}\n", encoding="utf-8")
    for name in ("python3", "python", PY):
        link = venv / "bin" / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(f"../../../bin/{PY}")  # /usr/lib/passerelle/bin -> /usr/bin


def compile_bytecode(root: Path) -> None:
    # Any CPython 3.11 writes the same byte-code for every architecture.
    python = f"/usr/bin/{PY}" if Path(f"/usr/bin/{PY}").exists() else shutil.which(PY) or sys.executable
    run([python, "-c", "import sys; assert sys.version_info[:2] == (3, 11)"])
    run([python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
         "-s", root, "-p", "/", root / PREFIX.lstrip("/") / "lib"])


# --- Files of the packages -----------------------------------------------------------------

def put(root: Path, path: str, text: str | bytes, mode: int = 0o644) -> Path:
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode("utf-8")
    target.write_bytes(text)
    target.chmod(mode)
    return target


def changelog(package: str, version: str) -> bytes:
    text = (f"{package} ({version}) bookworm; urgency=medium\n\n"
            f"  * Built from the Passerelle source tree by packaging/deb/build.py.\n\n"
            f" -- {MAINTAINER}  Thu, 01 Jan 2026 00:00:00 +0000\n")
    return gzip.compress(text.encode(), compresslevel=9, mtime=0)


def copyright_text(wheels: list[Path]) -> str:
    lines = ["Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
             "Upstream-Name: passerelle", "", "Files: *", "Copyright: 2026 Passerelle contributors",
             "License: AGPL-3.0-or-later", ""]
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
            meta = Parser().parsestr(zf.read(name).decode("utf-8", "replace"))
        license_name = (meta.get("License-Expression") or meta.get("License") or "").strip()
        if not license_name or "\n" in license_name or len(license_name) > 60:
            classifiers = [c.split("::")[-1].strip() for c in meta.get_all("Classifier") or []
                           if c.startswith("License ::")]
            license_name = ", ".join(classifiers) or "see its METADATA"
        lines += [f"Files: {SITE}/{meta['Name'].lower().replace('-', '_')}*",
                  f"Copyright: the authors of {meta['Name']} {meta['Version']}",
                  f"License: {license_name}", ""]
    lines += ["License: AGPL-3.0-or-later",
              " On Debian systems, the full text of the GNU Affero General Public License",
              " version 3 is not in common-licenses; see https://www.gnu.org/licenses/agpl-3.0.txt", ""]
    return "\n".join(lines)


UNIT_DOC = "file:/usr/share/doc/passerelle/deployment.md.gz"


def unit_text() -> str:
    text = (PACKAGING / "passerelle.service").read_text(encoding="utf-8")
    text = text.replace("/opt/passerelle/venv/bin/passerelle", f"{PREFIX}/bin/passerelle")
    text = text.replace("Documentation=file:/opt/passerelle/share/doc/passerelle/deployment.md",
                        f"Documentation={UNIT_DOC}")
    text = text.replace(
        "# Installed by packaging/install.sh as /etc/systemd/system/passerelle.service,\n"
        "# with /opt/passerelle replaced by the chosen --prefix.",
        "# Installed by the passerelle Debian package as /usr/lib/systemd/system/passerelle.service.")
    assert "/opt/passerelle" not in text, "the unit still names /opt/passerelle"
    return text


WRAPPER = sh(f"""
    #!/bin/sh
    # Passerelle's command line, with the service's data home unless told otherwise.
    # Run commands as the service's user:  sudo -u passerelle passerelle backup
    : "${{PASSERELLE_HOME:={DATA}}}"
    export PASSERELLE_HOME
    exec {PREFIX}/bin/passerelle "$@"
    """)

POSTINST = sh(f"""
    #!/bin/sh
    # passerelle: the user, the data home, and the service (restarted on upgrade).
    set -e

    case "$1" in
    configure)
        systemd-sysusers passerelle.conf
        if [ ! -d {DATA} ]; then
            mkdir -m 0750 {DATA}
        fi
        chown passerelle:passerelle {DATA}
        # A box installed with install.sh: its unit in /etc would hide this package's, and
        # its /usr/local/bin/passerelle comes first on the PATH. Both are set aside; the
        # data home is the same folder, so nothing else moves.
        if [ -f /etc/systemd/system/passerelle.service ] \\
           && grep -q '/opt/passerelle/venv/bin/passerelle' /etc/systemd/system/passerelle.service; then
            mv /etc/systemd/system/passerelle.service /etc/systemd/system/passerelle.service.install-sh
            rm -f /etc/systemd/system/multi-user.target.wants/passerelle.service
            echo "passerelle: install.sh's unit set aside as /etc/systemd/system/passerelle.service.install-sh;"
            echo "passerelle: its program in /opt/passerelle is no longer used (remove it when you wish)."
        fi
        if [ -f /usr/local/bin/passerelle ] \\
           && grep -q "Installed by Passerelle's install.sh" /usr/local/bin/passerelle; then
            rm -f /usr/local/bin/passerelle
        fi
        ;;
    esac

    if [ "$1" = configure ] || [ "$1" = abort-upgrade ] || [ "$1" = abort-deconfigure ] \\
       || [ "$1" = abort-remove ]; then
        # Enabled on first install; an administrator's `systemctl disable` is kept after that.
        deb-systemd-helper unmask passerelle.service >/dev/null || true
        if deb-systemd-helper --quiet was-enabled passerelle.service; then
            deb-systemd-helper enable passerelle.service >/dev/null || true
        else
            deb-systemd-helper update-state passerelle.service >/dev/null || true
        fi
        if [ -d /run/systemd/system ]; then
            systemctl --system daemon-reload >/dev/null || true
            # restart, not start: an upgrade must replace the running program.
            deb-systemd-invoke restart passerelle.service >/dev/null || true
        fi
    fi
    exit 0
    """)

PRERM = sh("""
    #!/bin/sh
    set -e
    # On upgrade the service keeps running until postinst restarts it on the new code.
    if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
        deb-systemd-invoke stop passerelle.service >/dev/null || true
    fi
    exit 0
    """)

POSTRM = sh(f"""
    #!/bin/sh
    set -e
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
    fi
    if [ "$1" = remove ]; then
        deb-systemd-helper mask passerelle.service >/dev/null || true
    fi
    if [ "$1" = purge ]; then
        deb-systemd-helper purge passerelle.service >/dev/null || true
        deb-systemd-helper unmask passerelle.service >/dev/null || true
        # Learners' work is never deleted by a package tool.
        if [ -d {DATA} ]; then
            echo "passerelle: the learners' data is kept in {DATA} (database, settings, backups)."
            echo "passerelle: to delete it for good:  sudo rm -rf {DATA}"
        fi
    fi
    exit 0
    """)


def control(fields: dict[str, str], description: str) -> str:
    lines = [f"{k}: {v}" for k, v in fields.items() if v]
    summary, _, body = description.strip().partition("\n")
    lines.append(f"Description: {summary}")
    for line in textwrap.dedent(body).strip("\n").splitlines():
        lines.append(" " + (line if line.strip() else "."))
    return "\n".join(lines) + "\n"


def installed_size(root: Path) -> int:
    total = sum(p.lstat().st_size for p in root.rglob("*") if "DEBIAN" not in p.parts)
    return (total + 1023) // 1024


def md5sums(root: Path) -> str:
    lines = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] == "DEBIAN" or path.is_symlink() or not path.is_file():
            continue
        lines.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {rel.as_posix()}")
    return "\n".join(lines) + "\n"


def normalise(root: Path) -> None:
    """Root-owned modes a package should have, and one timestamp for reproducible builds."""
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "1767225600"))
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            os.utime(path, (epoch, epoch), follow_symlinks=False)
            continue
        if path.is_dir():
            path.chmod(0o755)
        elif path.stat().st_mode & 0o111 and ".so" not in path.name:
            path.chmod(0o755)
        else:
            path.chmod(0o644)
        os.utime(path, (epoch, epoch))


def dpkg_deb(root: Path, out: Path, name: str) -> Path:
    (root / "DEBIAN" / "md5sums").write_text(md5sums(root))
    normalise(root)
    for script in ("postinst", "prerm", "postrm"):
        if (root / "DEBIAN" / script).exists():
            (root / "DEBIAN" / script).chmod(0o755)
    target = out / name
    run(["dpkg-deb", "--root-owner-group", "-Zzstd", "--build", root, target],
        stdout=subprocess.DEVNULL)
    return target


def lintian_overrides(package: str, tags: list[str]) -> str:
    return "".join(f"{package}: {tag}\n" for tag in tags)


# Why each lintian finding is expected of a private virtual environment, not a mistake.
MAIN_OVERRIDES = [
    "# The venv's scripts run with the venv's interpreter, a link to Debian's python3.11:",
    "# that is how a virtual environment keeps its libraries apart from Debian's.",
    "wrong-path-for-interpreter /usr/lib/passerelle/bin/python3 != /usr/bin/python3 *",
    "# It depends on python3.11, the exact interpreter the venv links to, not on python3,",
    "# which a Debian upgrade moves to another version the venv's libraries were not built for.",
    "python3-script-but-no-python3-dep *",
    "# Byte-code compiled at build time: the service's /usr is read-only (ProtectSystem=strict).",
    "package-installs-python-pycache-dir *",
    "# The wheels are shipped byte for byte as their hashes in requirements.lock say: the",
    "# compiled modules are not stripped, and the libraries some wheels bundle stay theirs.",
    "unstripped-binary-or-object *",
    "embedded-library *",
    "# Files of pip (which sqlite-utils requires) and of pypdfium2's licences, as shipped.",
    "unusual-interpreter python *",
    "executable-not-elf-or-script *",
    "national-encoding *",
    "# `passerelle --help` and `passerelle COMMAND --help` are the command's manual.",
    "no-manual-page [usr/bin/passerelle]",
    "# A first package for a project outside Debian's archive closes no Debian bug.",
    "initial-upload-closes-no-bugs *",
]
HOTSPOT_OVERRIDES = [
    "# NetworkManager ignores a connection keyfile that others than root can read.",
    "non-standard-file-perm 0600 != 0644 [usr/lib/NetworkManager/system-connections/passerelle-hotspot.nmconnection]",
    "initial-upload-closes-no-bugs *",
]


def overrides(package: str, lines: list[str]) -> str:
    return "\n".join(line if line.startswith("#") else f"{package}: {line}" for line in lines) + "\n"


# --- Packages ------------------------------------------------------------------------------

def build_main(arch: str, out: Path, work: Path, wheel: Path | None = None) -> Path:
    wheel = wheel or build_wheel(work)
    version = wheel.name.split("-")[1]
    deb_version = f"{version}-{DEBIAN_REVISION}"
    wheelhouse = work / "wheelhouse"
    say(f"downloading the locked wheels for {arch}")
    deps = download_wheels(arch, wheelhouse)
    root = work / "passerelle"
    say(f"assembling {PREFIX} from {len(deps) + 1} wheels")
    make_venv(root)
    install_wheels([wheel, *deps], root)
    say("compiling byte-code")
    compile_bytecode(root)
    # The venv's own scripts: only `passerelle` is the package's interface.
    put(root, "/usr/bin/passerelle", WRAPPER, 0o755)
    put(root, "/usr/lib/systemd/system/passerelle.service", unit_text())
    put(root, "/usr/lib/sysusers.d/passerelle.conf",
        (PACKAGING / "passerelle.sysusers").read_text(encoding="utf-8"))
    doc = "/usr/share/doc/passerelle"
    put(root, f"{doc}/deployment.md.gz",
        gzip.compress((REPO / "docs" / "deployment.md").read_bytes(), 9, mtime=0))
    put(root, f"{doc}/changelog.Debian.gz", changelog("passerelle", deb_version))
    put(root, f"{doc}/copyright", copyright_text([wheel, *deps]))
    put(root, "/usr/share/lintian/overrides/passerelle", overrides("passerelle", MAIN_OVERRIDES))
    put(root, "/DEBIAN/postinst", POSTINST, 0o755)
    put(root, "/DEBIAN/prerm", PRERM, 0o755)
    put(root, "/DEBIAN/postrm", POSTRM, 0o755)
    put(root, "/DEBIAN/control", control({
        "Package": "passerelle",
        "Version": deb_version,
        "Architecture": arch,
        "Maintainer": MAINTAINER,
        "Installed-Size": str(installed_size(root)),
        # Debian's interpreter and nothing of Debian's Python packages: the libraries
        # are the venv's own, so no python3-* package can ever conflict with them.
        "Depends": "python3.11 (>= 3.11.2), libc6 (>= 2.36), systemd | systemd-standalone-sysusers, "
                   "init-system-helpers (>= 1.54)",
        "Suggests": "passerelle-hotspot",
        "Section": "education",
        "Priority": "optional",
        "Homepage": "https://passerelle.invalid/",
    }, """Offline-first learning content server for community spaces
        Passerelle serves lessons, books, videos and exercises to learners' tablets
        over a local network, with no internet. It runs as the systemd service
        passerelle (user passerelle, data in /var/lib/passerelle), from a private
        Python environment in /usr/lib/passerelle.
        """))
    say("packing")
    return dpkg_deb(root, out, f"passerelle_{deb_version}_{arch}.deb")


HOTSPOT_POSTINST = sh("""
    #!/bin/sh
    set -e
    if [ "$1" = configure ] || [ "$1" = abort-upgrade ]; then
        for unit in passerelle-hotspot-radio.service passerelle-hotspot-redirect.service; do
            deb-systemd-helper unmask "$unit" >/dev/null || true
            if deb-systemd-helper --quiet was-enabled "$unit"; then
                deb-systemd-helper enable "$unit" >/dev/null || true
            else
                deb-systemd-helper update-state "$unit" >/dev/null || true
            fi
        done
        if [ -d /run/systemd/system ]; then
            systemctl --system daemon-reload >/dev/null || true
            deb-systemd-invoke restart passerelle-hotspot-radio.service \\
                passerelle-hotspot-redirect.service >/dev/null || true
            # NetworkManager reads the access point and restarts its dnsmasq with our DNS.
            nmcli connection reload >/dev/null 2>&1 || true
            nmcli connection up passerelle-hotspot >/dev/null 2>&1 || true
        fi
    fi
    exit 0
    """)

HOTSPOT_POSTRM = sh("""
    #!/bin/sh
    set -e
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        nmcli connection reload >/dev/null 2>&1 || true
    fi
    if [ "$1" = purge ]; then
        for unit in passerelle-hotspot-radio.service passerelle-hotspot-redirect.service; do
            deb-systemd-helper purge "$unit" >/dev/null || true
        done
    fi
    exit 0
    """)

HOTSPOT_PRERM = sh("""
    #!/bin/sh
    set -e
    if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
        nmcli connection down passerelle-hotspot >/dev/null 2>&1 || true
        deb-systemd-invoke stop passerelle-hotspot-redirect.service >/dev/null || true
    fi
    exit 0
    """)

HOTSPOT_FILES = {
    # source in packaging/hotspot -> (installed path, mode)
    "passerelle-hotspot.nmconnection":
        ("/usr/lib/NetworkManager/system-connections/passerelle-hotspot.nmconnection", 0o600),
    "passerelle-dnsmasq.conf": ("/etc/NetworkManager/dnsmasq-shared.d/passerelle.conf", 0o644),
    "passerelle-redirect.nft": ("/usr/lib/passerelle-hotspot/redirect.nft", 0o644),
    "passerelle-hotspot-redirect.service":
        ("/usr/lib/systemd/system/passerelle-hotspot-redirect.service", 0o644),
    "passerelle-hotspot-radio.service":
        ("/usr/lib/systemd/system/passerelle-hotspot-radio.service", 0o644),
    "passerelle-hotspot.default": ("/etc/default/passerelle-hotspot", 0o644),
    "passerelle-avahi.service": ("/etc/avahi/services/passerelle.service", 0o644),
}


def build_hotspot(out: Path, work: Path, version: str) -> Path:
    root = work / "passerelle-hotspot"
    deb_version = f"{version}-{DEBIAN_REVISION}"
    for source, (path, mode) in HOTSPOT_FILES.items():
        put(root, path, (PACKAGING / "hotspot" / source).read_bytes(), mode)
    doc = "/usr/share/doc/passerelle-hotspot"
    put(root, f"{doc}/README.md", (PACKAGING / "hotspot" / "README.md").read_bytes())
    put(root, f"{doc}/changelog.Debian.gz", changelog("passerelle-hotspot", deb_version))
    put(root, "/usr/share/lintian/overrides/passerelle-hotspot",
        overrides("passerelle-hotspot", HOTSPOT_OVERRIDES))
    put(root, f"{doc}/copyright", "\n".join([
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
        "Upstream-Name: passerelle", "", "Files: *", "Copyright: 2026 Passerelle contributors",
        "License: AGPL-3.0-or-later", " See https://www.gnu.org/licenses/agpl-3.0.txt", ""]))
    put(root, "/DEBIAN/conffiles", "\n".join(
        p for p, _ in HOTSPOT_FILES.values() if p.startswith("/etc/")) + "\n")
    put(root, "/DEBIAN/postinst", HOTSPOT_POSTINST, 0o755)
    put(root, "/DEBIAN/prerm", HOTSPOT_PRERM, 0o755)
    put(root, "/DEBIAN/postrm", HOTSPOT_POSTRM, 0o755)
    put(root, "/DEBIAN/control", control({
        "Package": "passerelle-hotspot",
        "Version": deb_version,
        "Architecture": "all",
        "Maintainer": MAINTAINER,
        "Installed-Size": str(installed_size(root)),
        "Depends": "passerelle (>= " + deb_version + "), network-manager, dnsmasq-base, nftables, "
                   "iw, rfkill, init-system-helpers (>= 1.54)",
        "Recommends": "avahi-daemon",
        "Section": "education",
        "Priority": "optional",
        "Homepage": "https://passerelle.invalid/",
    }, """Wi-Fi hotspot and welcome page for a Passerelle box
        Turns the box's Wi-Fi into an open access point named Passerelle, on which
        the box is http://10.42.0.1/ and every name resolves to the box, so that
        phones and tablets open Passerelle's welcome page by themselves. Port 80 is
        redirected to the service's port 8080 with nftables. A box on a school LAN
        needs only the passerelle package.
        """))
    normalise(root)
    # The keyfile must stay private to root: NetworkManager ignores it otherwise.
    (root / HOTSPOT_FILES["passerelle-hotspot.nmconnection"][0].lstrip("/")).chmod(0o600)
    (root / "DEBIAN" / "md5sums").write_text(md5sums(root))
    for script in ("postinst", "prerm", "postrm"):
        (root / "DEBIAN" / script).chmod(0o755)
    target = out / f"passerelle-hotspot_{deb_version}_all.deb"
    run(["dpkg-deb", "--root-owner-group", "-Zzstd", "--build", root, target],
        stdout=subprocess.DEVNULL)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=sorted(ARCHES), required=True)
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    parser.add_argument("--wheel", type=Path, help="Passerelle's wheel, if already built "
                        "(default: built from this source tree)")
    args = parser.parse_args(argv)
    if not shutil.which("dpkg-deb"):
        parser.error("dpkg-deb is needed (Debian's dpkg package)")
    args.out.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE))
    with tempfile.TemporaryDirectory(prefix="passerelle-deb-") as tmp:
        work = Path(tmp)
        main_deb = build_main(args.arch, args.out.resolve(), work, args.wheel)
        version = main_deb.name.split("_")[1].rsplit("-", 1)[0]
        hotspot_deb = build_hotspot(args.out.resolve(), work, version)
    for deb in (main_deb, hotspot_deb):
        say(f"built {deb} ({deb.stat().st_size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
