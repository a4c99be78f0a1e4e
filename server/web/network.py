"""Asking the box's root for a Wi-Fi change, without the service ever holding the right to.

On the Raspberry Pi image a root ``.path`` unit watches ``HOME/requests/network.json``;
when the setup page writes it, a root program (``firstboot.py`` of the image) checks and
applies it with NetworkManager, then answers in ``network.result.json``. The service stays
unprivileged: the worst a compromised service can do is ask for a Wi-Fi name.

The values are checked here, to give the person a clear error on the page, and again by
the root program, which never trusts its caller: the two checks are the same rules on
purpose, on each side of the privilege boundary.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from passerelle.server.errors import InvalidInput
from passerelle.server.i18n import lazy_text as _l

REQUESTS = "requests"
REQUEST = "network.json"
RESULT = "network.result.json"


def check_wifi(name: str, passphrase: str) -> dict:
    """``{"wifi": {...}}`` as the root program reads it, or :class:`InvalidInput` per field."""
    errors, wifi = {}, {}
    name = name.strip()
    if name:
        if len(name.encode()) > 32 or not name.isprintable():
            errors["wifi_name"] = _l("A Wi-Fi name has at most 32 characters.")
        wifi["name"] = name
    if passphrase:
        if not 8 <= len(passphrase) <= 63 or not all(32 <= ord(c) < 127 for c in passphrase):
            errors["wifi_passphrase"] = _l("A Wi-Fi passphrase has 8 to 63 characters, without "
                                           "accents; or leave it empty for an open Wi-Fi.")
        wifi["passphrase"] = passphrase
    if errors:
        raise InvalidInput(_l("the Wi-Fi settings are not valid"), details=errors)
    return {"wifi": wifi} if wifi else {}


def ask(home_root: Path, request: dict) -> bool:
    """Write the request whole (a half-written one is never seen); False when there is none."""
    if not request:
        return False
    folder = Path(home_root) / REQUESTS
    folder.mkdir(mode=0o750, exist_ok=True)
    tmp = folder / (REQUEST + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(request, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / REQUEST)
    return True


def last_result(home_root: Path) -> dict | None:
    """The root program's last answer, ``{"ok": bool, ...}``, or None while none came."""
    try:
        return json.loads((Path(home_root) / REQUESTS / RESULT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
