"""Build the Raspberry Pi image (Pi 3 and 4, arm64) from Debian packages.

    make image                   # or: python packaging/image/build.py --debs dist --out dist

Three stages; the first is cached, because it is most of the time (Debian's arm64
packages unpacked and configured under qemu-user-static):

1. **base**: ``mmdebstrap --variant=minbase`` of bookworm arm64 with the kernel, the Pi
   firmware, Wi-Fi firmware, NetworkManager, nftables, avahi and python3.11, as a tarball
   in the cache, keyed by its package list.
2. **system**: the tarball unpacked, ``passerelle`` and ``passerelle-hotspot`` installed with
   dpkg (their maintainer scripts run under qemu), then the image's own files (``files/``):
   fstab with ``noatime``, a volatile journal, ``fsck.repair=yes``, the first-boot unit that
   reads ``passerelle.toml`` from the boot partition, the unit that grows the data partition,
   and the root ``.path`` unit through which the web service asks for network changes. The
   server is never started here: each box makes its own ``secret_key`` and ``device_id`` at
   first start, so no two boxes share them. No SSH server, no password, no machine id.
3. **image**: an MBR disk (the Pi 3's boot ROM reads nothing else) of three partitions
   made without loop devices: ``RASPIFIRM`` (vfat, the firmware, kernel and
   ``passerelle.toml``), ``RASPIROOT`` (ext4, the system) and ``PASSDATA`` (ext4, mounted
   on ``/var/lib/passerelle``, grown to the card's end at first boot). The image is 97%
   of the nominal card size (``--card``), because cards sold as 8 GB hold a little less
   than 8×10⁹ bytes. Published as ``.img.xz`` with its sha256 and a bmap (flashing writes
   only the used blocks).

Optional content (``--content`` packs, Kolibri channels or ZIM files) is copied into the
data partition's ``import/`` folder, and the first start imports it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
FILES = HERE / "files"
SUITE = "bookworm"
COMPONENTS = "main non-free-firmware"
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
SECURITY = os.environ.get("DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
PACKAGES = (
    "systemd", "systemd-sysv", "systemd-timesyncd", "dbus", "udev", "kmod", "python3.11",
    # The Pi: kernel, boot firmware (generates config.txt and cmdline.txt), Wi-Fi firmware.
    "linux-image-arm64", "raspi-firmware", "firmware-brcm80211", "initramfs-tools",
    # The box's own Wi-Fi (passerelle-hotspot's dependencies, listed so the base is cached).
    "network-manager", "wpasupplicant", "wireless-regdb", "iw", "rfkill", "nftables",
    "avahi-daemon", "dnsmasq-base",
    # No real-time clock on a Pi: the last known time is kept across power cuts, so the
    # clock (and the order of learners' events) never goes back to 1970.
    "fake-hwclock",
    # Growing the data partition at first boot; checking filesystems at boot.
    "fdisk", "cloud-guest-utils", "e2fsprogs", "dosfstools",
    # The time zone passerelle.toml names.
    "tzdata",
)
FIRM_MB = 256
DATA_MB = 256          # before first boot; grown to the end of the card
ROOT_SLACK = 1.25      # free room on the system partition for upgrades
CARD_FRACTION = 0.97


_START = time.monotonic()


def say(message: str) -> None:
    print(f"image: [{time.monotonic() - _START:6.1f} s] {message}", flush=True)


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def base_tarball(cache: Path, arch: str) -> Path:
    key = hashlib.sha256(" ".join((SUITE, arch, COMPONENTS, *PACKAGES)).encode()).hexdigest()[:12]
    tar = cache / f"base-{SUITE}-{arch}-{key}.tar"
    if tar.exists():
        say(f"base: cached {tar.name}")
        return tar
    cache.mkdir(parents=True, exist_ok=True)
    part = tar.with_name(tar.name + ".part")
    say(f"base: mmdebstrap {SUITE} {arch} (slow the first time: packages configured under qemu)")
    run(["mmdebstrap", f"--arch={arch}", "--variant=minbase", f"--components={COMPONENTS}",
         "--include=" + ",".join(PACKAGES), "--mode=root", "--format=tar",
         # Never a box's own settings: the firmware's cmdline and fstab come from stage 2.
         "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-include=/usr/share/doc/*/copyright",
         "--dpkgopt=path-exclude=/usr/share/man/*", "--dpkgopt=path-exclude=/usr/share/locale/*",
         "--dpkgopt=path-include=/usr/share/locale/fr/*", "--dpkgopt=path-include=/usr/share/locale/nl/*",
         "--dpkgopt=path-include=/usr/share/locale/ar/*",
         SUITE, part,
         f"deb {MIRROR} {SUITE} {COMPONENTS}", f"deb {MIRROR} {SUITE}-updates {COMPONENTS}",
         f"deb {SECURITY} {SUITE}-security {COMPONENTS}"])
    part.rename(tar)
    return tar


def install_files(root: Path) -> None:
    """The image's own files, then their permissions and enable links."""
    for src in sorted(FILES.rglob("*")):
        if src.is_file():
            dest = root / src.relative_to(FILES)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
            mode = 0o755 if src.suffix in ("", ".py", ".sh") and "bin" in src.parts else 0o644
            dest.chmod(mode)


def system(root: Path, debs: list[Path], content: list[Path]) -> None:
    tmp = root / "var" / "tmp" / "passerelle-debs"
    tmp.mkdir(parents=True)
    for deb in debs:
        shutil.copy(deb, tmp / deb.name)
    say("system: dpkg -i " + " ".join(d.name for d in debs))
    run(["chroot", root, "dpkg", "-i", *[f"/var/tmp/passerelle-debs/{d.name}" for d in debs]])
    shutil.rmtree(tmp)
    install_files(root)
    serves(root)
    chroot = ["chroot", root]
    run([*chroot, "systemctl", "enable", "passerelle-firstboot.service",
         "passerelle-grow-data.service", "passerelle-netconf.path", "fake-hwclock.service"])
    # No password for anyone, no SSH server, no host keys: a box is administered from its
    # web pages, or with a keyboard and screen by someone who sets a password.
    run([*chroot, "usermod", "--password", "*", "root"])
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    # One machine id per box, made at first boot (systemd's "uninitialized" convention).
    (root / "etc" / "machine-id").write_text("uninitialized\n")
    (root / "var" / "lib" / "dbus" / "machine-id").unlink(missing_ok=True)
    (root / "etc" / "hostname").write_text("passerelle\n")
    (root / "etc" / "hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tpasserelle\n"
                                        "::1\tlocalhost ip6-localhost ip6-loopback\n")
    # The server never ran: no database, settings or key of a box may be in the image.
    data = root / "var" / "lib" / "passerelle"
    leftovers = [p for p in data.rglob("*")] if data.exists() else []
    assert not leftovers, f"the build left files in /var/lib/passerelle: {leftovers}"
    if content:
        incoming = data / "import"
        incoming.mkdir(parents=True)
        for item in content:
            say(f"system: preloading {item.name}")
            shutil.copy(item, incoming / item.name)
    # The root filesystem by its label, not /dev/mmcblk0p2: the same card boots from a USB
    # reader too (Pi 4).
    firmware_defaults = root / "etc" / "default" / "raspi-firmware"
    firmware_defaults.write_text(firmware_defaults.read_text()
                                 + '\n# Passerelle\'s image: the root filesystem by its label.\n'
                                   'ROOTPART="LABEL=RASPIROOT"\n')
    # The root is mounted read-only by the initrd, then checked by systemd-fsck-root and
    # remounted read-write as fstab says: the initrd has no fsck (it was made before the
    # image's fstab existed), so with the firmware hook's "rw" alone, fsck.repair=yes never
    # ran on the root after a power cut. The last of "rw" and "ro" wins.
    extra = root / "etc" / "default" / "raspi-extra-cmdline"
    words = extra.read_text().split() if extra.exists() else []
    extra.write_text(" ".join([w for w in words if w not in ("ro", "rw")] + ["ro"]) + "\n")
    # The kernel's postinst wrote cmdline.txt before our raspi-firmware defaults existed.
    kernel = sorted((root / "boot").glob("vmlinuz-*"))[-1].name.removeprefix("vmlinuz-")
    # The hook acts only when told it runs for a package's "configure", and needs /proc to see
    # that it runs in a chroot (else it asks for /boot/firmware to be mounted).
    run(["mount", "-t", "proc", "proc", root / "proc"])
    try:
        run([*chroot, "env", "DEB_MAINT_PARAMS=configure",
             "/etc/kernel/postinst.d/z50-raspi-firmware", kernel])
    finally:
        run(["umount", root / "proc"])
    apt_lists = root / "var" / "lib" / "apt" / "lists"
    for f in apt_lists.glob("*_Packages"):
        f.unlink()
    shutil.rmtree(root / "var" / "cache" / "apt" / "archives", ignore_errors=True)
    (root / "var" / "cache" / "apt" / "archives" / "partial").mkdir(parents=True)


def serves(root: Path) -> None:
    """The arm64 program answers /api/v1/health, run under qemu in the tree, with a throwaway
    data home outside /var/lib/passerelle (deleted after): the image's data home stays empty."""
    import json
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = root / "var" / "tmp" / "passerelle-check"
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PASSERELLE_HOME": "/var/tmp/passerelle-check",
           "LANG": "C.UTF-8"}
    started = time.monotonic()
    proc = subprocess.Popen(["chroot", str(root), "/usr/bin/passerelle", "serve", "--host",
                             "127.0.0.1", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while time.monotonic() - started < 600:
            if proc.poll() is not None:
                raise SystemExit("image: the arm64 program did not start:\n"
                                 + proc.stderr.read().decode(errors="replace")[-2000:])
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=10) as r:
                    health = json.load(r)
                break
            except OSError:
                time.sleep(1)
        else:
            raise SystemExit("image: the arm64 program gave no health answer in 10 minutes")
        say(f"system: the arm64 program answers under qemu in {time.monotonic() - started:.0f} s: "
            f"{health['status']}, schema {health['database']['schema_version']}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(home, ignore_errors=True)


def _du_mb(path: Path) -> int:
    out = subprocess.run(["du", "-s", "--block-size=1M", "--apparent-size", str(path)],
                         check=True, capture_output=True, text=True).stdout
    return int(out.split()[0])


def image(root: Path, out: Path, card_bytes: int, work: Path) -> Path:
    """An MBR disk image made from the tree, without loop devices or mounts."""
    firm_dir, data_dir = work / "firm", work / "data"
    shutil.move(root / "boot" / "firmware", firm_dir)
    (root / "boot" / "firmware").mkdir()
    shutil.move(root / "var" / "lib" / "passerelle", data_dir)
    (root / "var" / "lib" / "passerelle").mkdir()
    toml = FILES.parent / "passerelle.toml"
    shutil.copy(toml, firm_dir / "passerelle.toml")
    data_mb = max(DATA_MB, _du_mb(data_dir) + 64)
    root_mb = int(_du_mb(root) * ROOT_SLACK) + 256
    total = int(card_bytes * CARD_FRACTION) // (1024 * 1024)
    start = 4
    if start + FIRM_MB + root_mb + data_mb > total:
        raise SystemExit(f"image: {FIRM_MB + root_mb + data_mb} MiB do not fit a card of "
                         f"{card_bytes / 1e9:.0f} GB; give a larger --card")
    data_mb = total - start - FIRM_MB - root_mb - 1  # the rest; grown again on a larger card
    say(f"image: boot {FIRM_MB} MiB, system {root_mb} MiB, data {data_mb} MiB, "
        f"{total} MiB in all ({CARD_FRACTION:.0%} of {card_bytes / 1e9:.0f} GB)")
    parts = work / "parts"
    parts.mkdir()
    firm_img, root_img, data_img = parts / "firm.img", parts / "root.img", parts / "data.img"
    run(["mkfs.vfat", "-n", "RASPIFIRM", "-C", firm_img, FIRM_MB * 1024], stdout=subprocess.DEVNULL)
    entries = [p for p in firm_dir.iterdir()]
    if entries:
        run(["mcopy", "-s", "-p", "-m", "-i", firm_img, *entries, "::"])
    ext4 = ["mkfs.ext4", "-q", "-F"]
    run([*ext4, "-E", "root_owner=0:0", "-L", "RASPIROOT", "-d", root, root_img, f"{root_mb}M"])
    # The data partition's root is /var/lib/passerelle: the service user's, 0750, as the
    # package made it.
    user = next(line.split(":") for line in (root / "etc" / "passwd").read_text().splitlines()
                if line.startswith("passerelle:"))
    data_dir.chmod(0o750)
    run([*ext4, "-E", f"root_owner={user[2]}:{user[3]}", "-L", "PASSDATA", "-m", "0", "-d", data_dir, data_img, f"{data_mb}M"])
    # mke2fs -d sets the owner of the filesystem's root, not its mode: 0750, as the package
    # makes /var/lib/passerelle.
    run(["debugfs", "-w", "-R", "set_inode_field / mode 040750", data_img],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    disk = out.with_suffix("")  # …/passerelle.img
    with open(disk, "wb") as f:
        f.truncate(total * 1024 * 1024)
    layout = (f"label: dos\nunit: sectors\n"
              f"start={start * 2048}, size={FIRM_MB * 2048}, type=c, bootable\n"
              f"start={(start + FIRM_MB) * 2048}, size={root_mb * 2048}, type=83\n"
              f"start={(start + FIRM_MB + root_mb) * 2048}, size={data_mb * 2048}, type=83\n")
    run(["sfdisk", "--quiet", disk], input=layout.encode())
    for img, offset in ((firm_img, start), (root_img, start + FIRM_MB),
                        (data_img, start + FIRM_MB + root_mb)):
        run(["dd", f"if={img}", f"of={disk}", "bs=1M", f"seek={offset}", "conv=notrunc,sparse",
             "status=none"])
    return disk


def publish(disk: Path) -> dict:
    say("publish: bmap, xz, sha256")
    bmap = disk.with_name(disk.name + ".bmap")
    run(["bmaptool", "create", "-o", bmap, disk])
    xz = disk.with_name(disk.name + ".xz")
    with open(xz, "wb") as f:
        run(["xz", "-T0", "-3", "-c", disk], stdout=f)
    digest = hashlib.sha256()
    with open(xz, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    sums = xz.with_name(xz.name + ".sha256")
    sums.write_text(f"{digest.hexdigest()}  {xz.name}\n")
    return {"image": disk, "xz": xz, "bmap": bmap, "sha256": sums}


def parse_size(text: str) -> int:
    units = {"G": 10**9, "M": 10**6}
    return int(float(text[:-1]) * units[text[-1].upper()]) if text[-1].upper() in units else int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--debs", type=Path, default=REPO / "dist",
                        help="folder with passerelle_*_arm64.deb and passerelle-hotspot_*_all.deb")
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    parser.add_argument("--card", default="4G", help="nominal card size (default 4G)")
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
                        / "passerelle-image")
    parser.add_argument("--content", type=Path, action="append", default=[],
                        help="a pack, Kolibri channel or ZIM file to preload (repeatable)")
    parser.add_argument("--stage", choices=("base", "all"), default="all")
    parser.add_argument("--no-publish", action="store_true",
                        help="the .img only, without .xz, bmap and sha256 (to boot it under qemu)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("image: run as root (dpkg in a chroot, device nodes in the tree)")
    arch = "arm64"
    base = base_tarball(args.cache, arch)
    if args.stage == "base":
        return 0
    debs = [*sorted(args.debs.glob(f"passerelle_*_{arch}.deb"))[-1:],
            *sorted(args.debs.glob("passerelle-hotspot_*_all.deb"))[-1:]]
    if len(debs) != 2:
        raise SystemExit(f"image: build the packages first (make deb ARCH={arch}); "
                         f"found {[d.name for d in debs]} in {args.debs}")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.cache, prefix="work-") as tmp:
        work = Path(tmp)
        root = work / "root"
        root.mkdir()
        say(f"system: unpacking {base.name}")
        with tarfile.open(base) as t:
            t.extractall(root, filter="fully_trusted")
        system(root, debs, args.content)
        disk = image(root, args.out / "passerelle-raspi-arm64.img.xz", parse_size(args.card), work)
    found = {"image": disk} if args.no_publish else publish(disk)
    for name, path in found.items():
        if path.exists():
            say(f"{name}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
