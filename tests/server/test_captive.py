"""The welcome page and the answers to devices' internet checks, system by system.

Each check is sent as the system sends it (its Host and User-Agent), and the answer is
compared byte for byte with what that system takes for "online". The clock of the
portal's memory is a variable here, so that "an hour later" needs no waiting.
"""

from __future__ import annotations

import gzip
import http.client

import pytest
from passerelle.server.app import create_app
from passerelle.server.web import captive

# (system, host, path, user agent, expected online status, body, extra header)
ANDROID_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/60.0.3112.32 Safari/537.36")
APPLE_UA = "CaptiveNetworkSupport-443.40.2 wispr"
FIREFOX_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
APPLE_SUCCESS = b"<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>"
FIREFOX_CANONICAL = (b'<meta http-equiv="refresh" '
                     b'content="0;url=https://support.mozilla.org/kb/captive-portal"/>')

PROBES = [
    ("android", "connectivitycheck.gstatic.com", "/generate_204", ANDROID_UA, 204, b"", None),
    ("android-fallback", "www.google.com", "/gen_204", ANDROID_UA, 204, b"", None),
    ("android-other", "clients3.google.com", "/generate_204", ANDROID_UA, 204, b"", None),
    # A phone maker's own host with Google's path.
    ("android-maker", "connect.rom.miui.com", "/generate_204", ANDROID_UA, 204, b"", None),
    ("apple", "captive.apple.com", "/hotspot-detect.html", APPLE_UA, 200, APPLE_SUCCESS, None),
    ("apple-old", "www.apple.com", "/library/test/success.html", APPLE_UA, 200, APPLE_SUCCESS,
     None),
    ("apple-random", "captive.apple.com", "/aBcD/xYz/index.html", APPLE_UA, 200, APPLE_SUCCESS,
     None),
    ("windows", "www.msftconnecttest.com", "/connecttest.txt", "Microsoft NCSI", 200,
     b"Microsoft Connect Test", None),
    ("windows-ncsi", "www.msftncsi.com", "/ncsi.txt", "Microsoft NCSI", 200, b"Microsoft NCSI",
     None),
    ("firefox", "detectportal.firefox.com", "/canonical.html", FIREFOX_UA, 200,
     FIREFOX_CANONICAL, None),
    ("firefox-v4", "detectportal.firefox.com", "/success.txt?ipv4", FIREFOX_UA, 200,
     b"success\n", None),
    ("gnome", "nmcheck.gnome.org", "/check_network_status.txt", "NetworkManager/1.42.4", 200,
     b"NetworkManager is online\n", "online"),
    ("debian", "network-test.debian.org", "/nm", "NetworkManager/1.42.4", 200,
     b"NetworkManager is online\n", "online"),
    ("arch", "ping.archlinux.org", "/nm-check.txt", "NetworkManager/1.42.4", 200,
     b"NetworkManager is online\n", "online"),
    ("ubuntu", "connectivity-check.ubuntu.com", "/", "NetworkManager/1.42.4", 204, b"", "online"),
    ("fedora", "fedoraproject.org", "/static/hotspot.txt", "NetworkManager/1.42.4", 200, b"OK\n",
     "online"),
]
IDS = [p[0] for p in PROBES]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def portal(box):
    """The app of a set-up box, in `welcome` mode, with a clock the test moves."""
    def make(mode: str = "welcome"):
        app = create_app({"home": box.home, "TESTING": True, "captive_portal": mode})
        clock = Clock()
        app.extensions[captive.EXTENSION].clock = clock
        return app, clock
    return make


def device(app, address: str):
    """A test client that comes from one address, as one tablet on the hotspot does."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def check(client, host: str, path: str, user_agent: str):
    return client.get(path, headers={"Host": host, "User-Agent": user_agent})


@pytest.mark.parametrize(("system", "host", "path", "ua", "status", "body", "nm"), PROBES, ids=IDS)
def test_a_new_device_is_sent_to_the_welcome_page(portal, system, host, path, ua, status, body,
                                                  nm):
    app, _ = portal()
    response = check(device(app, "10.42.0.23"), host, path, ua)
    assert response.status_code == 302
    assert response.headers["Location"] == "http://10.42.0.1/welcome"
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("system", "host", "path", "ua", "status", "body", "nm"), PROBES, ids=IDS)
def test_after_opening_a_page_each_system_gets_its_exact_online_answer(portal, system, host, path,
                                                                       ua, status, body, nm):
    app, _ = portal()
    tablet = device(app, "10.42.0.23")
    welcome = tablet.get("/welcome", headers={"Host": "10.42.0.1"})
    assert welcome.status_code == 200
    # Reading the welcome page does not count: the window must stay open.
    assert check(tablet, host, path, ua).status_code == 302
    # The "Open Passerelle" button leads to the home page, which does.
    assert tablet.get("/", headers={"Host": "10.42.0.1"}).status_code == 200
    response = check(tablet, host, path, ua)
    assert response.status_code == status
    assert response.get_data() == body
    assert response.headers.get("X-NetworkManager-Status") == nm
    assert response.headers["Cache-Control"] == "no-store"
    if status == 204:
        assert "Content-Type" not in response.headers


def test_silent_mode_answers_online_at_once(portal):
    app, _ = portal("silent")
    tablet = device(app, "10.42.0.40")
    for _system, host, path, ua, status, body, _nm in PROBES:
        response = check(tablet, host, path, ua)
        assert (response.status_code, response.get_data()) == (status, body), host


def test_off_mode_answers_nothing_special(portal):
    app, _ = portal("off")
    tablet = device(app, "10.42.0.41")
    assert check(tablet, "10.42.0.1", "/generate_204", ANDROID_UA).status_code == 404
    assert check(tablet, "10.42.0.1", "/hotspot-detect.html", APPLE_UA).status_code == 404
    # A probe host on another path is served like any other name (on a LAN it never comes).
    assert check(tablet, "www.google.com", "/", ANDROID_UA).status_code == 200


def test_the_online_answer_lasts_an_hour_after_the_last_request(portal):
    app, clock = portal()
    tablet = device(app, "10.42.0.50")
    tablet.get("/", headers={"Host": "10.42.0.1"})
    probe = ("connectivitycheck.gstatic.com", "/generate_204", ANDROID_UA)
    clock.now += 3000
    assert check(tablet, *probe).status_code == 204  # in use: the hour starts again
    clock.now += 3000
    assert check(tablet, *probe).status_code == 204
    clock.now += 3601  # gone for more than an hour: a new learner sees the welcome page
    assert check(tablet, *probe).status_code == 302


def test_devices_are_told_apart_by_their_address(portal):
    app, _ = portal()
    first, second = device(app, "10.42.0.60"), device(app, "10.42.0.61")
    first.get("/", headers={"Host": "10.42.0.1"})
    assert check(first, "captive.apple.com", "/hotspot-detect.html", APPLE_UA).status_code == 200
    assert check(second, "captive.apple.com", "/hotspot-detect.html", APPLE_UA).status_code == 302


def test_content_is_reachable_without_the_welcome_page(portal):
    app, _ = portal()
    tablet = device(app, "10.42.0.70")
    home = tablet.get("/", headers={"Host": "10.42.0.1"})
    assert home.status_code == 200 and b"Passerelle" in home.get_data()
    assert tablet.get("/search", headers={"Host": "passerelle.lan"}).status_code == 200


def test_the_welcome_page_never_redirects_and_there_is_no_loop(portal):
    """Welcome -> Open Passerelle -> home: no answer on the way leads back to /welcome."""
    app, _ = portal()
    tablet = device(app, "10.42.0.80")
    location = check(tablet, "connectivitycheck.gstatic.com", "/generate_204",
                     ANDROID_UA).headers["Location"]
    seen = []
    response = tablet.get("/welcome", headers={"Host": "10.42.0.1"})
    while True:
        seen.append(location)
        assert response.status_code in (200, 302), (location, response.status_code)
        if response.status_code == 200:
            break
        location = response.headers["Location"]
        assert location not in seen, seen
        response = tablet.get(location, headers={"Host": "10.42.0.1"})
    assert b'href="/"' in response.get_data()  # the "Open Passerelle" button
    home = tablet.get("/", headers={"Host": "10.42.0.1"})
    assert home.status_code == 200
    for _system, host, path, ua, status, _body, _nm in PROBES:
        assert check(tablet, host, path, ua).status_code == status, host


def test_static_files_and_language_links_do_not_close_the_window(portal):
    app, _ = portal()
    tablet = device(app, "10.42.0.90")
    page = tablet.get("/welcome", headers={"Host": "10.42.0.1"}).get_data(as_text=True)
    import re

    for url in re.findall(r'(?:href|src)="(/static/[^"]+)"', page):
        assert tablet.get(url, headers={"Host": "10.42.0.1"}).status_code == 200
    assert tablet.get("/language/ar?next=/welcome",
                      headers={"Host": "10.42.0.1"}).status_code == 302
    assert check(tablet, "connectivitycheck.gstatic.com", "/generate_204",
                 ANDROID_UA).status_code == 302
    # Background traffic of the phone's apps to other names does not count either.
    tablet.get("/", headers={"Host": "ads.example.com"})
    assert check(tablet, "connectivitycheck.gstatic.com", "/generate_204",
                 ANDROID_UA).status_code == 302


def test_other_paths_of_probe_hosts_lead_to_the_box(portal):
    app, _ = portal()
    tablet = device(app, "10.42.0.100")
    # A learner typing google.com before opening anything: the welcome page, on the box.
    response = check(tablet, "www.google.com", "/", ANDROID_UA)
    assert response.headers["Location"] == "http://10.42.0.1/welcome"
    # Windows opens this one in the browser when it thinks it is behind a portal.
    response = check(tablet, "www.msftconnecttest.com", "/redirect", "Mozilla/5.0 (Windows NT 10.0)")
    assert response.headers["Location"] == "http://10.42.0.1/welcome"
    tablet.get("/", headers={"Host": "10.42.0.1"})
    response = check(tablet, "connectivitycheck.gstatic.com", "/some/page", ANDROID_UA)
    assert response.status_code == 302 and response.headers["Location"] == "http://10.42.0.1/"


def test_checks_are_answered_before_the_box_is_set_up(tmp_path):
    app = create_app({"home": tmp_path / "new-box", "TESTING": True})
    tablet = device(app, "10.42.0.110")
    response = check(tablet, "connectivitycheck.gstatic.com", "/generate_204", ANDROID_UA)
    assert response.headers["Location"] == "http://10.42.0.1/welcome"
    # The welcome page of a new box leads to its setup; the setup pages do not close the window.
    assert "/setup" in tablet.get("/welcome", headers={"Host": "10.42.0.1"}).headers["Location"]
    assert tablet.get("/setup", headers={"Host": "10.42.0.1"}).status_code == 200
    assert check(tablet, "connectivitycheck.gstatic.com", "/generate_204",
                 ANDROID_UA).status_code == 302


@pytest.mark.parametrize("lang", ["fr", "nl", "en", "ar"])
def test_the_welcome_page_speaks_the_four_languages(portal, lang):
    app, _ = portal()
    tablet = device(app, "10.42.0.120")
    tablet.environ_base["HTTP_ACCEPT_LANGUAGE"] = lang
    page = tablet.get("/welcome", headers={"Host": "10.42.0.1"}).get_data(as_text=True)
    words = {"fr": "Ouvrir Passerelle", "nl": "Passerelle openen", "en": "Open Passerelle",
             "ar": "افتح Passerelle"}
    assert words[lang] in page
    assert 'href="http://10.42.0.1/"' in page and "http://passerelle.lan/" in page
    assert f'<html lang="{lang}" dir="{"rtl" if lang == "ar" else "ltr"}">' in page
    assert "If this window closes" in page if lang == "en" else True


def test_host_names():
    assert captive.host_name("WWW.Google.COM.:80") == "www.google.com"
    assert captive.host_name("[fe80::1]:8080") == "fe80::1"
    assert captive.is_box_host("10.42.0.1") and captive.is_box_host("passerelle.lan:8080")
    assert captive.is_box_host("passerelle.local") and captive.is_box_host("localhost")
    assert not captive.is_box_host("captive.apple.com") and not captive.is_box_host("example.org")


def test_the_memory_of_devices_is_bounded():
    clients = captive.Clients(clock=Clock())
    for n in range(captive.MAX_CLIENTS + 10):
        clients.opened(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
    assert len(clients) == captive.MAX_CLIENTS
    assert not clients.is_online("10.0.0.0") and clients.is_online("10.0.16.9")


def raw_get(port: int, host: str, path: str, user_agent: str) -> tuple[int, object, bytes]:
    """One request as a device sends it, read as bytes (no redirect followed)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host, "User-Agent": user_agent,
                                                  "Accept-Encoding": "gzip"})
        response = connection.getresponse()
        return response.status, response.msg, response.read()  # headers: any case
    finally:
        connection.close()


def test_over_http_through_the_real_server(live_server):
    """The same state machine through Waitress: status lines and bodies as they leave the box."""
    port = live_server.port
    for _system, host, path, ua, _status, _body, _nm in PROBES:
        status, headers, _ = raw_get(port, host, path, ua)
        assert (status, headers["Location"]) == (302, "http://10.42.0.1/welcome"), host
    status, headers, page = raw_get(port, "10.42.0.1", "/welcome", FIREFOX_UA)
    if headers.get("Content-Encoding") == "gzip":
        page = gzip.decompress(page)
    assert status == 200 and b"http://10.42.0.1/" in page
    assert raw_get(port, "10.42.0.1", "/", ANDROID_UA)[0] == 200
    for _system, host, path, ua, status, body, nm in PROBES:
        got_status, headers, got_body = raw_get(port, host, path, ua)
        assert (got_status, got_body) == (status, body), host
        assert headers.get("X-NetworkManager-Status") == nm, host
        assert "Content-Encoding" not in headers
