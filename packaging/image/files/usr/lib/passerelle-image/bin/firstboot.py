"""Apply a box's first settings: the Wi-Fi name, passphrase and country, the time zone and the
interface language.

Two callers, as root:
- at first boot, ``passerelle.toml`` on the boot partition (written on any computer after
  flashing the card); the file is then renamed ``passerelle.toml.done``, without its
  passphrase, so the card keeps no secret in the clear;
- ``passerelle-netconf.service``, for a request the setup page wrote as JSON with the same
  keys (the web service stays unprivileged).

Every value is checked before anything changes; a bad file changes nothing and says why in
the journal. The Wi-Fi keyfile is edited with ``nmcli --offline`` (NetworkManager's own
reader and writer), so it is right whether or not NetworkManager runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

KEYFILE = "passerelle-hotspot.nmconnection"
SHIPPED = Path("usr/lib/NetworkManager/system-connections") / KEYFILE
LOCAL = Path("etc/NetworkManager/system-connections") / KEYFILE
HOTSPOT_DEFAULTS = Path("etc/default/passerelle-hotspot")
SETTINGS = Path("var/lib/passerelle/passerelle.toml")
LANGUAGES = ("fr", "nl", "en", "ar")


class Refused(ValueError):
    pass


def check(config: dict) -> dict:
    """The settings, checked: {'name', 'passphrase', 'country', 'timezone', 'language'}."""
    wifi, box = config.get("wifi") or {}, config.get("box") or {}
    if not isinstance(wifi, dict) or not isinstance(box, dict):
        raise Refused("[wifi] and [box] are sections")
    found = {}
    name = wifi.get("name")
    if name is not None:
        if not isinstance(name, str) or not 1 <= len(name.encode()) <= 32 or not name.isprintable():
            raise Refused("wifi.name: 1 to 32 bytes of printable text")
        found["name"] = name
    passphrase = wifi.get("passphrase")
    if passphrase not in (None, ""):
        if not isinstance(passphrase, str) or not 8 <= len(passphrase) <= 63 \
                or not all(32 <= ord(c) < 127 for c in passphrase):
            raise Refused("wifi.passphrase: 8 to 63 ASCII characters, or none for an open Wi-Fi")
        found["passphrase"] = passphrase
    country = wifi.get("country")
    if country is not None:
        if not isinstance(country, str) or not re.fullmatch(r"[A-Z]{2}|00", country):
            raise Refused("wifi.country: two capital letters such as BE, FR, SN (00: the world)")
        found["country"] = country
    timezone = box.get("timezone")
    if timezone is not None:
        if not isinstance(timezone, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_+\-/]{0,63}", timezone) \
                or ".." in timezone:
            raise Refused("box.timezone: a name such as Europe/Brussels")
        found["timezone"] = timezone
    language = box.get("language")
    if language is not None:
        if language not in LANGUAGES:
            raise Refused(f"box.language: one of {', '.join(LANGUAGES)}")
        found["language"] = language
    return found


def _write(path: Path, text: str, mode: int) -> None:
    """Written whole or not at all: a power cut leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def apply(settings: dict, root: Path, nmcli: str = "nmcli") -> list[str]:
    done = []
    if "name" in settings or "passphrase" in settings:
        source = root / LOCAL if (root / LOCAL).exists() else root / SHIPPED
        args = []
        if "name" in settings:
            args += ["wifi.ssid", settings["name"]]
        if "passphrase" in settings:
            args += ["wifi-sec.key-mgmt", "wpa-psk", "wifi-sec.psk", settings["passphrase"]]
        out = subprocess.run([nmcli, "--offline", "connection", "modify", *args],
                             input=source.read_text(encoding="utf-8"), capture_output=True,
                             text=True, check=True).stdout
        _write(root / LOCAL, out, 0o600)
        done.append("wifi")
    if "country" in settings:
        path = root / HOTSPOT_DEFAULTS
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        line = f"WIFI_COUNTRY={settings['country']}"
        text = re.sub(r"(?m)^WIFI_COUNTRY=.*$", line, text) if "WIFI_COUNTRY=" in text \
            else text + line + "\n"
        _write(path, text, 0o644)
        done.append("country")
    if "timezone" in settings:
        zone = root / "usr/share/zoneinfo" / settings["timezone"]
        if not zone.is_file():
            raise Refused(f"box.timezone: {settings['timezone']} is not a known time zone")
        localtime = root / "etc/localtime"
        tmp = localtime.with_name("localtime.new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(f"/usr/share/zoneinfo/{settings['timezone']}")
        os.replace(tmp, localtime)
        _write(root / "etc/timezone", settings["timezone"] + "\n", 0o644)
        done.append("timezone")
    if "language" in settings:
        path = root / SETTINGS
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        line = f'default_language = "{settings["language"]}"'
        text = re.sub(r"(?m)^default_language\s*=.*$", line, text) if "default_language" in text \
            else text + line + "\n"
        _write(path, text, 0o640)
        try:
            import pwd
            user = pwd.getpwnam("passerelle")
            os.chown(path, user.pw_uid, user.pw_gid)
        except (KeyError, PermissionError):
            pass  # a test tree, or no service user yet: root keeps it readable by the group
        done.append("language")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, nargs="?")
    parser.add_argument("--request", type=Path, help="a JSON request from the setup page")
    parser.add_argument("--root", type=Path, default=Path("/"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    source = args.request or args.path
    if source is None:
        parser.error("give passerelle.toml or --request")
    try:
        raw = source.read_bytes()
        config = json.loads(raw) if args.request else tomllib.loads(raw.decode("utf-8"))
        done = apply(check(config), args.root)
    except (OSError, ValueError, subprocess.CalledProcessError) as exc:
        print(f"passerelle: {source} not applied, nothing changed: {exc}", file=sys.stderr)
        if args.request:
            _write(source.with_name("network.result.json"),
                   json.dumps({"ok": False, "error": str(exc)}), 0o644)
            source.unlink(missing_ok=True)
        return 1
    print(f"passerelle: applied {', '.join(done) or 'nothing'} from {source}")
    if args.request:
        answer = {"ok": True, "applied": done}
        if "name" in (config.get("wifi") or {}):  # what the printed label names
            answer["wifi_name"] = config["wifi"]["name"]
        _write(source.with_name("network.result.json"), json.dumps(answer), 0o644)
        source.unlink()
    else:
        # Keep the file for reference, without the secret.
        kept = re.sub(r'(?m)^(\s*passphrase\s*=).*$', r'\1 ""  # applied, then removed', raw.decode())
        _write(source.with_name(source.name + ".done"), kept, 0o600)
        source.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
