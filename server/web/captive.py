"""The welcome page that phones and tablets open by themselves on the box's own Wi-Fi.

When a device joins a Wi-Fi network it asks a well-known address whether the
internet is there (Android ``/generate_204``, Apple ``/hotspot-detect.html``,
Windows ``/connecttest.txt``, Firefox ``/canonical.html``, NetworkManager...).
On the box's hotspot every name resolves to the box (packaging/hotspot), so
those checks arrive here. The setting ``captive_portal`` decides the answer:

- ``welcome``: a device not seen yet is redirected to ``/welcome``, which the
  system shows in its "sign in to network" window. Once that device opens any
  page of the box (the page's "Open Passerelle" button, or the box's address
  typed in a browser), each of its checks gets the exact bytes its system
  takes for "online", for an hour after its last request. So the device stays
  on this Wi-Fi (Android otherwise prefers mobile data), stops asking, and the
  window closes. The welcome page itself, its language links and static files
  do not count as opening a page: the window must not close before the learner
  read it. Content never waits for the tap: every page answers as usual.
- ``silent``: every check is answered "online" at once; no window opens.
- ``off``: checks answer 404 like any unknown page (a box on a school LAN,
  whose DNS never sends them here).

A client is its IP address: on the hotspot the box is the DHCP server, so one
address is one device. Devices behind a NAT router share one address: the first
that opens a page makes all of them "online" (none of the others sees the
window; all of them still reach the content). The memory is per server process
and lost on restart, which at worst shows the welcome window once more.

Requests for a probe host (``connectivitycheck.gstatic.com``...) on another
path, say a learner typing ``google.com``, are sent to the box's own address,
so that the learner's address bar and cookies belong to the box.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
)
from passerelle.server.web.auth import ANYONE, allow, enforce

# The box's address on its own hotspot: NetworkManager's shared mode (packaging/hotspot)
# always gives the access point this one, whatever the Wi-Fi's name or country.
BOX_ADDRESS = "10.42.0.1"
BOX_URL = f"http://{BOX_ADDRESS}/"
ONLINE_SECONDS = 3600
# The hotspot's DHCP pool is a /24: this bound only matters behind a NAT or on a LAN.
MAX_CLIENTS = 4096
EXTENSION = "passerelle.captive"

bp = Blueprint("captive", __name__)


@dataclass(frozen=True)
class Answer:
    """What one system takes for "the internet is there"."""

    system: str
    status: int
    body: bytes = b""
    mimetype: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def response(self) -> Response:
        response = Response(self.body, status=self.status, mimetype=self.mimetype)
        if self.mimetype is None:
            response.headers.pop("Content-Type", None)
        for name, value in self.headers:
            response.headers[name] = value
        return response


# Each body byte for byte as the real service sends it, and as each system compares it:
# Android and ChromeOS want a 204 (a 200 with a body, or a redirect, means a portal);
# Apple looks for its "Success" page; Windows reads the two texts without a newline;
# Firefox compares canonical.html's whole body with its built-in copy; NetworkManager
# takes its status header as "online" whatever the body (and checks the body otherwise).
ANDROID = Answer("android", 204)
APPLE = Answer("apple", 200, b"<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>",
               "text/html")
WINDOWS = Answer("windows", 200, b"Microsoft Connect Test", "text/plain")
WINDOWS_NCSI = Answer("windows", 200, b"Microsoft NCSI", "text/plain")
FIREFOX = Answer("firefox", 200,
                 b'<meta http-equiv="refresh" content="0;url=https://support.mozilla.org/kb/captive-portal"/>',
                 "text/html")
FIREFOX_SUCCESS = Answer("firefox", 200, b"success\n", "text/plain")
_NM_HEADER = (("X-NetworkManager-Status", "online"),)
NETWORKMANAGER = Answer("networkmanager", 200, b"NetworkManager is online\n", "text/plain",
                        _NM_HEADER)
NETWORKMANAGER_204 = Answer("networkmanager", 204, headers=_NM_HEADER)
NETWORKMANAGER_OK = Answer("networkmanager", 200, b"OK\n", "text/plain", _NM_HEADER)

# Paths that are a check whatever the host (a system may be set to another host, and
# some Android makers use their own host with Google's path).
PATH_PROBES: dict[str, Answer | None] = {
    "/generate_204": ANDROID,
    "/gen_204": ANDROID,
    "/hotspot-detect.html": APPLE,
    "/library/test/success.html": APPLE,
    "/connecttest.txt": WINDOWS,
    "/ncsi.txt": WINDOWS_NCSI,
    # What Windows opens in the browser once it believes it is behind a portal: never
    # answered "online", always sent to a page.
    "/redirect": None,
    "/canonical.html": FIREFOX,
    "/success.txt": FIREFOX_SUCCESS,
    "/check_network_status.txt": NETWORKMANAGER,
    "/nm-check.txt": NETWORKMANAGER,
}

# (host, path) pairs for checks whose path alone is too common to claim everywhere.
HOST_PATH_PROBES: dict[tuple[str, str], Answer] = {
    ("network-test.debian.org", "/nm"): NETWORKMANAGER,
    ("fedoraproject.org", "/static/hotspot.txt"): NETWORKMANAGER_OK,
}

# Hosts whose every path is a check: Apple has asked for random pages on these.
HOST_PROBES: dict[str, Answer] = {
    "captive.apple.com": APPLE,
    "www.appleiphonecell.com": APPLE,
    "www.itools.info": APPLE,
    "www.ibook.info": APPLE,
    "www.airport.us": APPLE,
    "www.thinkdifferent.us": APPLE,
    "connectivity-check.ubuntu.com": NETWORKMANAGER_204,
    "networkcheck.kde.org": NETWORKMANAGER_OK,
}

# Hosts that only ever reach the box because its DNS answers every name: another path
# on them is a person or an app that believes it is online, sent to the box's address.
PROBE_HOSTS = frozenset({
    *HOST_PROBES, *(host for host, _ in HOST_PATH_PROBES),
    "connectivitycheck.gstatic.com", "connectivitycheck.android.com", "clients1.google.com",
    "clients3.google.com", "www.google.com", "google.com", "play.googleapis.com",
    "www.gstatic.com", "www.apple.com", "apple.com", "www.msftconnecttest.com",
    "ipv6.msftconnecttest.com", "www.msftncsi.com", "ipv6.msftncsi.com",
    "detectportal.firefox.com", "nmcheck.gnome.org", "ping.archlinux.org",
})

# Requests that must not count as "this device opened Passerelle": the welcome window
# loads them while the learner is still reading it. The setup pages neither: on a new box
# the coordinator's phone fills them in that window, which would close half-way.
NOT_OPENING = frozenset({"kiosk.static_file", "kiosk.choose_language", "captive.welcome"})


def host_name(host: str) -> str:
    """The request's host without port or trailing dot, in lower case."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0].rstrip(".") if host.count(":") == 1 else host.rstrip(".")


def is_probe_host(host: str) -> bool:
    return host_name(host) in PROBE_HOSTS


def is_box_host(host: str) -> bool:
    """A name or address that means this box: an IP address, a single label, a local name.

    Background traffic of a phone's apps to other names (every name resolves to the box
    on its hotspot) must not count as the learner opening Passerelle.
    """
    name = host_name(host)
    if not name:
        return False
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    return "." not in name or name.endswith((".lan", ".local", ".localhost", ".home.arpa",
                                             ".internal"))


def probe_answer(host: str, path: str) -> tuple[bool, Answer | None]:
    """(is this a check?, the answer that means online) for a request's host and path."""
    name = host_name(host)
    if (name, path) in HOST_PATH_PROBES:
        return True, HOST_PATH_PROBES[(name, path)]
    if path in PATH_PROBES:
        return True, PATH_PROBES[path]
    if name in HOST_PROBES:
        return True, HOST_PROBES[name]
    return False, None


@dataclass
class Clients:
    """Which client addresses opened a page of the box lately (thread-safe, in memory)."""

    seconds: int = ONLINE_SECONDS
    clock: Callable[[], float] = time.monotonic
    _until: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def opened(self, address: str) -> None:
        now = self.clock()
        with self._lock:
            self._until.pop(address, None)  # re-inserted last: the dict stays oldest-first
            self._until[address] = now + self.seconds
            if len(self._until) > MAX_CLIENTS:
                self._forget(now)

    def is_online(self, address: str) -> bool:
        """True while the address opened a page less than an hour before its latest request.

        Every request of an online client moves its hour on, so a device in use never
        sees the welcome window again; one that left for an hour does (a shared tablet,
        a new learner).
        """
        now = self.clock()
        with self._lock:
            until = self._until.get(address)
            if until is None:
                return False
            if until <= now:
                del self._until[address]
                return False
            self._until.pop(address)
            self._until[address] = now + self.seconds
            return True

    def _forget(self, now: float) -> None:
        for address in [a for a, until in self._until.items() if until <= now]:
            del self._until[address]
        while len(self._until) > MAX_CLIENTS:
            del self._until[next(iter(self._until))]

    def __len__(self) -> int:
        return len(self._until)


def clients() -> Clients:
    return current_app.extensions[EXTENSION]


def _mode() -> str:
    return current_app.config["SETTINGS"]["captive_portal"]


def _client() -> str:
    return request.remote_addr or ""


def _to_box(path: str) -> Response:
    """A redirect to the box's own address (relative when the request already names the box).

    A check sent to another name (a phone maker's own probe host with Google's path) must
    land on the box's address, or its pages would count for that name, not the box.
    """
    target = path if is_box_host(request.host) else BOX_URL + path.lstrip("/")
    response = redirect(target, 302)
    response.headers["Cache-Control"] = "no-store"
    return response


def respond() -> Response | None:
    """The answer to a connectivity check or a probe host's request, or None to serve as usual."""
    mode = _mode()
    if mode == "off":
        return None
    is_probe, answer = probe_answer(request.host, request.path)
    if not is_probe and not is_probe_host(request.host):
        return None
    online = mode == "silent" or clients().is_online(_client())
    if is_probe and answer is not None and online:
        response = answer.response()
        response.headers["Cache-Control"] = "no-store"
        return response
    return _to_box("/" if online and not is_probe else "/welcome")


def _check_first() -> Response | None:
    """Runs before the access rules: a check is never sent to sign in nor to the setup page."""
    if request.endpoint in PROBE_ENDPOINTS or is_probe_host(request.host):
        return respond()
    return None


def _note_opening(response: Response) -> Response:
    """A device that opened a page of the box is online from now on (mode ``welcome``)."""
    endpoint = request.endpoint
    # A page: a person's navigation, not an API call, a health check or a sync from a peer.
    if (endpoint is not None and request.method == "GET" and response.mimetype == "text/html"
            and endpoint not in PROBE_ENDPOINTS and endpoint not in NOT_OPENING
            and not endpoint.startswith("kiosk.setup") and is_box_host(request.host)
            and _mode() == "welcome"):
        clients().opened(_client())
    return response


def _probe_view():
    return respond() or abort(404)


PROBE_ENDPOINTS: set[str] = set()
for _path in PATH_PROBES:
    _endpoint = "probe_" + _path.strip("/").replace("/", "_").replace(".", "_")
    bp.add_url_rule(_path, _endpoint, allow(ANYONE)(_probe_view), methods=["GET"])
    PROBE_ENDPOINTS.add(f"captive.{_endpoint}")


@bp.get("/welcome")
@allow(ANYONE)
def welcome():
    """The page a device's "sign in to network" window shows; it never marks the device."""
    response = Response(render_template("welcome.html", box_url=BOX_URL,
                                        portal=_mode() == "welcome"))
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION] = Clients()
    app.register_blueprint(bp)
    funcs = app.before_request_funcs.setdefault(None, [])
    # Before the access check (not first of all: the body-size check still runs first).
    funcs.insert(funcs.index(enforce) if enforce in funcs else len(funcs), _check_first)
    app.after_request(_note_opening)
