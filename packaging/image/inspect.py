"""Inspect a built Raspberry Pi image offline: what ``make image-check`` runs before a release.

    python packaging/image/inspect.py dist/passerelle-raspi-arm64.img [--card 4G]

Nothing is mounted: the partition table is read by sfdisk, the boot partition by mtools,
the ext4 partitions by debugfs, each from a copy of its bytes. Each check prints one line;
the exit status is the number of failed checks.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

CARD_FRACTION = 0.97
ENABLED = ("passerelle.service", "passerelle-firstboot.service", "passerelle-grow-data.service",
           "passerelle-netconf.path", "NetworkManager.service")
failures: list[str] = []


def check(ok: bool, what: str) -> None:
    print(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)


def out(cmd: list) -> str:
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True).stdout


def debugfs(image: Path, request: str) -> str:
    proc = subprocess.run(["debugfs", "-R", request, str(image)], capture_output=True, text=True,
                          check=False)
    return proc.stdout


def extract(disk: Path, part: dict, dest: Path) -> Path:
    subprocess.run(["dd", f"if={disk}", f"of={dest}", "bs=512", f"skip={part['start']}",
                    f"count={part['size']}", "conv=sparse", "status=none"], check=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("--card", default="4G")
    args = parser.parse_args(argv)
    disk = args.image
    card = int(float(args.card[:-1]) * 10**9) if args.card[-1] in "Gg" else int(args.card)
    size = disk.stat().st_size
    check(size <= card * CARD_FRACTION + 1,
          f"image {size / 1e9:.2f} GB is at most {CARD_FRACTION:.0%} of a {card / 1e9:.0f} GB card")
    table = json.loads(out(["sfdisk", "--json", disk]))["partitiontable"]
    parts = table["partitions"]
    check(table["label"] == "dos", "an MBR partition table (the Pi 3 boot ROM reads nothing else)")
    check([p["type"] for p in parts] == ["c", "83", "83"], "boot (FAT32 LBA), system, data")
    check(parts[0].get("bootable", False), "the boot partition is marked bootable")
    with tempfile.TemporaryDirectory() as tmp:
        firm = extract(disk, parts[0], Path(tmp) / "firm.img")
        listing = out(["mdir", "-b", "-i", firm, "::"])
        names = {Path(line.strip()).name for line in listing.splitlines()}
        for name in ("config.txt", "cmdline.txt", "passerelle.toml"):
            check(name in names, f"boot partition has {name}")
        check(any(n.startswith("vmlinuz") for n in names) and any(n.startswith("initrd") for n in names),
              "boot partition has the kernel and its initrd")
        check(any("bcm2711-rpi-4-b.dtb" in n for n in names)
              and any("bcm2837-rpi-3-b.dtb" in n for n in names),
              "device trees for the Pi 3 and Pi 4")
        cmdline = out(["mtype", "-i", firm, "::cmdline.txt"])
        check("root=LABEL=RASPIROOT" in cmdline and "fsck.repair=yes" in cmdline,
              f"cmdline.txt mounts RASPIROOT and repairs it after a power cut: {cmdline.strip()}")
        modes = [w for w in cmdline.split() if w in ("ro", "rw")]
        check(modes[-1:] == ["ro"], "the root is mounted read-only first, so systemd checks it "
                                    "(the initrd has no fsck)")
        root = extract(disk, parts[1], Path(tmp) / "root.img")
        check("RASPIROOT" in out(["e2label", root]), "system partition labelled RASPIROOT")
        wants = debugfs(root, "ls -l /etc/systemd/system/multi-user.target.wants")
        for unit in ENABLED:
            check(unit in wants, f"{unit} is enabled")
        keyfile = debugfs(root, "stat /usr/lib/NetworkManager/system-connections/"
                                "passerelle-hotspot.nmconnection")
        check(re.search(r"Mode:\s+0600", keyfile) is not None, "the Wi-Fi keyfile is 0600")
        ssh = debugfs(root, "ls /etc/ssh")
        check("ssh_host_" not in ssh, "no SSH host keys")
        check(debugfs(root, "ls /usr/sbin").count("sshd") == 0, "no SSH server")
        check(debugfs(root, "cat /etc/machine-id").strip() == "uninitialized",
              "no machine id (made at first boot)")
        shadow = debugfs(root, "cat /etc/shadow")
        check(all(line.split(":")[1] in ("*", "!", "!*", "")
                  and line.split(":")[1] != "" for line in shadow.splitlines() if line),
              "no password for any account")
        fstab = debugfs(root, "cat /etc/fstab")
        check("noatime" in fstab and "LABEL=PASSDATA" in fstab, "fstab: noatime, the data partition")
        check("swap" not in fstab, "no swap")
        check("Storage=volatile" in debugfs(root, "cat /etc/systemd/journald.conf.d/passerelle.conf"),
              "the journal is in memory")
        data = extract(disk, parts[2], Path(tmp) / "data.img")
        check("PASSDATA" in out(["e2label", data]), "data partition labelled PASSDATA")
        top = debugfs(data, "ls -l /")
        check("passerelle.db" not in top and "secret_key" not in top and "device.key" not in top,
              "no database, secret key nor device key: each box makes its own")
        owner = debugfs(data, "stat /")
        check(re.search(r"Mode:\s+0750", owner) is not None, "data home is 0750")
    print(f"{len(failures)} check(s) failed" if failures else "all checks passed")
    return len(failures)


if __name__ == "__main__":
    sys.exit(main())
