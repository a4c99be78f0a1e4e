"""Boot the built Raspberry Pi image under emulation and time its first and second boots.

    make image-boot              # or: python3 packaging/image/boot_check.py dist/passerelle-raspi-arm64.img

The Pi's firmware does not run under ``qemu-system-aarch64 -M virt``, so the image's own
kernel and initrd are taken from its boot partition (with mtools: nothing is mounted, no
root needed) and given to qemu with a command line of the virt machine's (``console=ttyAMA0``)
that mounts the same ``root=LABEL=RASPIROOT``. Everything after the kernel is the image's:
its initrd, fstab, systemd units, first-boot program, packages and data partition.

A sparse copy of the image is made one gigabyte larger (a larger card), and a
``passerelle.toml`` is put on its boot partition as a coordinator would. The copy boots
twice. Each boot is timed from power-on to: the kernel handing over to the initrd, systemd
starting, the first-boot unit and the growing of the data partition finished (first boot
only), ``passerelle.service`` started, and ``/api/v1/health`` answering on the box's port 80
(forwarded by qemu; the hotspot package's nftables redirect takes it to the server).
Between and after the boots the copy is read offline to check what the first boot did:
the Wi-Fi keyfile written by ``nmcli --offline``, the country, the time zone, the language,
``passerelle.toml`` renamed without its passphrase, the data partition and its filesystem
grown to the end of the disk, one identity kept across both boots.

The figures are an upper bound for a Pi: qemu emulates every arm64 instruction (TCG) on a
shared x86 machine; the load average is printed with them. Exit status: 0 when both boots
answer and every check passes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SECTOR = 512

# What the coordinator writes on the boot partition (every key the first-boot program reads).
TOML = """\
[wifi]
name = "Classe 3B"
country = "BE"
passphrase = "un mot de passe"

[box]
timezone = "Africa/Dakar"
language = "nl"
"""

# Console lines (the kernel's, then systemd's status lines) and what each one marks.
MILESTONES = (
    ("kernel", re.compile(r"Booting Linux on physical CPU")),
    ("initrd", re.compile(r"Run /init as init process")),
    ("systemd", re.compile(r"systemd\[1\]: systemd \d+|Welcome to .*Debian")),
    ("root checked", re.compile(r"Finished systemd-fsck-root\.service")),
    ("first-boot unit done", re.compile(r"Finished passerelle-firstboot\.service")),
    ("data partition grown", re.compile(r"Finished passerelle-grow-data\.service")),
    ("passerelle.service started", re.compile(r"Started passerelle\.service")),
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
FAILED = re.compile(r"FAILED\]? .*?(\S+\.(?:service|mount|path))|Failed to start (\S+\.service)")

failures: list[str] = []


def check(ok: bool, what: str) -> None:
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)


def out(cmd: list, **kw) -> str:
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True,
                          **kw).stdout


def partitions(disk: Path) -> list[dict]:
    return json.loads(out(["sfdisk", "--json", disk]))["partitiontable"]["partitions"]


def fat(disk: Path, part: dict) -> str:
    """An mtools drive spec for a FAT partition inside a disk image (no copy, no mount)."""
    return f"{disk}@@{part['start'] * SECTOR}"


def ext4(disk: Path, part: dict, dest: Path) -> Path:
    """A copy of an ext4 partition's bytes, for debugfs (which reads a whole device)."""
    subprocess.run(["dd", f"if={disk}", f"of={dest}", f"bs={SECTOR}", f"skip={part['start']}",
                    f"count={part['size']}", "conv=sparse", "status=none"], check=True)
    return dest


def debugfs(image: Path, request: str) -> str:
    return subprocess.run(["debugfs", "-R", request, str(image)], capture_output=True,
                          text=True, check=False).stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=10) as r:
            return json.load(r)
    except (OSError, ValueError):
        return None


def load() -> str:
    return "{:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


class Boot:
    """One power-on of the copy: qemu started, its console read line by line and timed."""

    def __init__(self, disk: Path, kernel: Path, initrd: Path, cmdline: str, work: Path,
                 name: str, memory: int, cpus: int):
        self.name = name
        self.port = free_port()
        self.log = work / f"console-{name}.log"
        self.seen: dict[str, float] = {}
        self.failed: list[str] = []
        self.lines = 0
        self.cpu = float("nan")
        self.monitor = work / f"monitor-{name}.sock"
        cmd = ["qemu-system-aarch64", "-M", "virt", "-cpu", "cortex-a72", "-m", str(memory),
               "-smp", str(cpus), "-no-reboot", "-display", "none",
               "-monitor", f"unix:{self.monitor},server=on,wait=off",
               "-serial", "stdio", "-kernel", kernel, "-initrd", initrd,
               "-append", cmdline,
               # The Pi's SD card as a virtio disk; writes go to the copy (kept for boot 2).
               "-drive", f"file={disk},format=raw,if=virtio,cache=writeback",
               # The box's port 80, as a tablet reaches it.
               "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{self.port}-:80",
               # romfile=: no PXE option ROM (qemu-system-arm does not ship the x86 one's
               # arm twin, and the kernel is given directly).
               "-device", "virtio-net-pci,netdev=net0,romfile="]
        self.start = time.monotonic()
        self.proc = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        with open(self.log, "wb") as log:
            for raw in self.proc.stdout:
                log.write(raw)
                log.flush()
                self.lines += 1
                line = ANSI.sub("", raw.decode(errors="replace"))
                at = time.monotonic() - self.start
                for name, pattern in MILESTONES:
                    if name not in self.seen and pattern.search(line):
                        self.seen[name] = at
                        print(f"boot {self.name}: [{at:7.1f} s] {name}", flush=True)
                failed = FAILED.search(line)
                if failed:
                    unit = failed.group(1) or failed.group(2)
                    if unit not in self.failed:
                        self.failed.append(unit)
                        print(f"boot {self.name}: [{at:7.1f} s] failed: {unit}", flush=True)

    def wait_health(self, timeout: float) -> dict | None:
        while time.monotonic() - self.start < timeout:
            if self.proc.poll() is not None:
                return None
            found = health(self.port)
            if found:
                at = time.monotonic() - self.start
                self.seen["health answers"] = at
                self.cpu = self.cpu_seconds()
                print(f"boot {self.name}: [{at:7.1f} s] health answers on port 80: "
                      f"{found.get('status')}; qemu used {self.cpu:.0f} CPU-seconds", flush=True)
                return found
            time.sleep(2)
        return None

    def cpu_seconds(self) -> float:
        """The host CPU time qemu has used (both emulated cores): what the boot cost, less
        dependent than the wall clock on what else the machine runs."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def power_off(self, timeout: float) -> bool:
        """The power button (the virt machine's GPIO key, which systemd-logind takes for a
        clean shutdown), through qemu's monitor; the plug is pulled if the box has not
        stopped in time. True when it stopped by itself."""
        if self.proc.poll() is None:
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(30)
                    s.connect(str(self.monitor))
                    s.sendall(b"system_powerdown\n")
                    time.sleep(1)
            except OSError as exc:
                print(f"boot {self.name}: the power button was not pressed: {exc}", flush=True)
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
        clean = self.proc.poll() is not None
        if not clean:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.reader.join(timeout=30)
        return clean

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def virt_cmdline(image_cmdline: str) -> str:
    """The image's own cmdline.txt, with the virt machine's serial console instead of the
    Pi's screen: the root, its mount mode and the fsck options stay the image's."""
    words = [w for w in image_cmdline.split() if not w.startswith("console=")]
    return " ".join([
        *words, "console=ttyAMA0",
        # Status lines name their unit (not its description cut to 80 columns), to be timed.
        "systemd.status_unit_format=name",
        # Emulated on a busy machine, udev's first pass over the devices can take longer
        # than the 90 s systemd waits for the partitions by default (seconds on a Pi); the
        # box would then stop in emergency mode, which says nothing about a Pi.
        "systemd.default_timeout_start_sec=900"])


def offline_checks(disk: Path, work: Path, grown_bytes: int, toml: str) -> None:
    """What the first boot left on the card, read without mounting it."""
    parts = partitions(disk)
    firm = fat(disk, parts[0])
    names = {Path(line.strip()).name for line in out(["mdir", "-b", "-i", firm, "::"]).splitlines()}
    check("passerelle.toml" not in names and "passerelle.toml.done" in names,
          "passerelle.toml was applied and renamed passerelle.toml.done")
    if "passerelle.toml.done" in names:
        done = out(["mtype", "-i", firm, "::passerelle.toml.done"])
        check("un mot de passe" not in done, "passerelle.toml.done keeps no passphrase")
    end = parts[2]["start"] + parts[2]["size"]
    check(end * SECTOR > grown_bytes - 2 * 1024 * 1024,
          f"the data partition reaches the end of the disk ({end * SECTOR / 1e9:.2f} of "
          f"{grown_bytes / 1e9:.2f} GB)")
    root = ext4(disk, parts[1], work / "root.img")
    keyfile = debugfs(root, "cat /etc/NetworkManager/system-connections/"
                            "passerelle-hotspot.nmconnection")
    check("ssid=Classe 3B" in keyfile and "psk=un mot de passe" in keyfile
          and "key-mgmt=wpa-psk" in keyfile,
          "the Wi-Fi keyfile (nmcli --offline) has the name and passphrase")
    mode = debugfs(root, "stat /etc/NetworkManager/system-connections/"
                         "passerelle-hotspot.nmconnection")
    check(re.search(r"Mode:\s+0600", mode) is not None, "the written keyfile is 0600")
    check("WIFI_COUNTRY=BE" in debugfs(root, "cat /etc/default/passerelle-hotspot"),
          "the Wi-Fi country is BE")
    check("Africa/Dakar" in debugfs(root, "stat /etc/localtime")
          + debugfs(root, "cat /etc/timezone"), "the time zone is Africa/Dakar")
    machine_id = debugfs(root, "cat /etc/machine-id").strip()
    check(re.fullmatch(r"[0-9a-f]{32}", machine_id) is not None,
          f"a machine id was made at first boot ({machine_id or 'none'})")
    root.unlink()
    data = ext4(disk, parts[2], work / "data.img")
    header = subprocess.run(["dumpe2fs", "-h", str(data)], capture_output=True, text=True,
                            check=True).stdout
    blocks = int(re.search(r"Block count:\s+(\d+)", header).group(1))
    block = int(re.search(r"Block size:\s+(\d+)", header).group(1))
    check(blocks * block > parts[2]["size"] * SECTOR - 4 * 1024 * 1024,
          f"the data filesystem fills its partition ({blocks * block / 1e9:.2f} GB)")
    top = debugfs(data, "ls /")
    check(".grown" in top and "passerelle.db" in top, "the data home has .grown and the database")
    check('default_language = "nl"' in debugfs(data, "cat /passerelle.toml"),
          "the pages' first language is nl")
    data.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", type=Path, nargs="?",
                        default=REPO / "dist" / "passerelle-raspi-arm64.img")
    parser.add_argument("--timeout", type=float, default=2400,
                        help="seconds each boot may take to answer (default 2400: emulation "
                             "on a busy machine)")
    parser.add_argument("--memory", type=int, default=1024, help="MiB (a Pi 3 has 1024)")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--grow", default="1G", help="how much larger the copy is than the image")
    parser.add_argument("--keep", type=Path, help="keep the copy and console logs in this folder")
    parser.add_argument("--again", action="store_true",
                        help="boot the copy kept in --keep once more (a later boot), timed")
    args = parser.parse_args(argv)
    for tool in ("qemu-system-aarch64", "mcopy", "sfdisk", "debugfs", "dumpe2fs"):
        if not shutil.which(tool) and not shutil.which(tool, path="/usr/sbin:/sbin"):
            raise SystemExit(f"boot-check: {tool} is missing (make image-boot installs it)")
    if not args.image.exists():
        raise SystemExit(f"boot-check: no image at {args.image}: make image first")
    grow = int(args.grow.rstrip("Gg")) * 1024**3 if args.grow[-1] in "Gg" else int(args.grow)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    work_ctx = (tempfile.TemporaryDirectory(prefix="passerelle-boot-", dir=args.keep)
                if not args.keep else None)
    work = args.keep or Path(work_ctx.name)
    try:
        print(f"boot-check: load average {load()} on {os.cpu_count()} cores", flush=True)
        parts = partitions(args.image)
        firm = fat(args.image, parts[0])
        config = out(["mtype", "-i", firm, "::config.txt"])
        kernel_name = re.search(r"(?m)^kernel=(\S+)", config).group(1)
        initrd_name = re.search(r"(?m)^initramfs (\S+)", config).group(1)
        kernel, initrd = work / "vmlinuz", work / "initrd.img"
        out(["mcopy", "-o", "-i", firm, f"::{kernel_name}", kernel])
        out(["mcopy", "-o", "-i", firm, f"::{initrd_name}", initrd])
        cmdline = virt_cmdline(out(["mtype", "-i", firm, "::cmdline.txt"]))
        print(f"boot-check: {kernel_name}, {initrd_name}, command line: {cmdline}", flush=True)
        disk = work / "disk.img"
        if args.again:
            if not (args.keep and disk.exists()):
                raise SystemExit("boot-check: --again boots the copy kept by an earlier --keep")
            boots = ("again",)
        else:
            subprocess.run(["cp", "--sparse=always", args.image, disk], check=True)
            with open(disk, "r+b") as f:
                f.truncate(args.image.stat().st_size + grow)
            toml = work / "passerelle.toml"
            toml.write_text(TOML)
            out(["mcopy", "-o", "-i", fat(disk, parts[0]), toml, "::passerelle.toml"])
            boots = ("first", "second")

        figures: dict[str, dict[str, float]] = {}
        cpu: dict[str, float] = {}
        identity = None
        for name in boots:
            boot = Boot(disk, kernel, initrd, cmdline, work, name, args.memory, args.cpus)
            found = boot.wait_health(args.timeout)
            figures[name] = dict(boot.seen)
            cpu[name] = boot.cpu
            check(found is not None and found.get("status") == "ok",
                  f"{name} boot: /api/v1/health answers on port 80")
            if found is None:
                print(boot.tail(), file=sys.stderr)
            check("root checked" in boot.seen, f"{name} boot: systemd checked the root filesystem")
            if name == "first":
                for milestone in ("first-boot unit done", "data partition grown"):
                    check(milestone in boot.seen, f"first boot: {milestone}")
                identity = (found or {}).get("device_id")
            else:
                if name == "second":
                    check(bool(identity) and (found or {}).get("device_id") == identity,
                          "second boot: the same device id (the data partition kept its database)")
                else:
                    print(f"boot {name}: device id {(found or {}).get('device_id')}")
                check("first-boot unit done" not in boot.seen,
                      f"{name} boot: the first-boot unit did not run again")
            check(not boot.failed, f"{name} boot: no unit failed {boot.failed or ''}".rstrip())
            clean = boot.power_off(timeout=600)
            print(f"boot {name}: {'powered off' if clean else 'plug pulled (no clean power-off)'} "
                  f"after {time.monotonic() - boot.start:.0f} s; load average {load()}", flush=True)
            if name == "first":
                offline_checks(disk, work, args.image.stat().st_size + grow, TOML)
            if found is None:
                break
        print("boot-check: seconds from power-on (qemu TCG, an upper bound for a Pi):")
        names = [m for m, _ in MILESTONES] + ["health answers"]
        print(f"  {'':28} " + " ".join(f"{b:>8}" for b in boots))
        for m in names:
            row = [figures.get(b, {}).get(m) for b in boots]
            print(f"  {m:28} " + " ".join(f"{v:8.1f}" if v is not None else f"{'-':>8}" for v in row))
        print(f"  {'qemu CPU-seconds to health':28} "
              + " ".join(f"{cpu.get(b, float('nan')):8.0f}" for b in boots))
        print(f"boot-check: load average {load()}")
    finally:
        if work_ctx is not None:
            work_ctx.cleanup()
    print(f"{len(failures)} check(s) failed" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
