"""The hotspot's configuration files, checked by the tools that will read them.

Nothing here changes this machine's network: dnsmasq is started on 127.0.0.1 on a
spare port with only the hotspot's DNS file, nftables only *checks* the ruleset
(``nft -c``, inside a new network namespace where one can be made), and the other
files are parsed.
"""

from __future__ import annotations

import configparser
import re
import shutil
import socket
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest
from passerelle.server.web import captive

from .conftest import PACKAGING, run
from .test_unit_file import assert_systemd_accepts, needs_systemd_analyze

HOTSPOT = PACKAGING / "hotspot"
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
NFT = shutil.which("nft") or "/usr/sbin/nft"
needs_dnsmasq = pytest.mark.skipif(not shutil.which(DNSMASQ), reason="dnsmasq is not installed "
                                   "(`make test` installs dnsmasq-base)")
needs_nft = pytest.mark.skipif(not shutil.which(NFT), reason="nft is not installed "
                               "(`make test` installs nftables)")


def keyfile() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(HOTSPOT / "passerelle-hotspot.nmconnection", encoding="utf-8")
    return parser


def test_the_access_point_shares_ipv4_on_the_address_the_welcome_page_names():
    conf = keyfile()
    assert conf["connection"]["type"] == "wifi"
    assert conf["connection"]["autoconnect"] == "true"
    assert conf["wifi"]["mode"] == "ap"
    assert conf["wifi"]["ssid"] == "Passerelle"
    assert conf["ipv4"]["method"] == "shared"
    assert conf["ipv4"]["address1"] == f"{captive.BOX_ADDRESS}/24"
    # 2.4 GHz, a channel allowed in every country (1-11) and free of radar detection.
    assert conf["wifi"]["band"] == "bg" and 1 <= int(conf["wifi"]["channel"]) <= 11
    # An open network by default: no passphrase for learners to type.
    assert "wifi-security" not in conf


def test_the_radio_unit_sets_the_country_and_unblocks_the_wifi():
    from .test_unit_file import last, parse_unit, values

    unit = parse_unit((HOTSPOT / "passerelle-hotspot-radio.service").read_text())
    service = unit["Service"]
    assert "NetworkManager.service" in last(unit["Unit"], "Before")
    assert values(service, "ExecStart") == ["/usr/sbin/rfkill unblock wlan",
                                            "/usr/sbin/iw reg set ${WIFI_COUNTRY}"]
    assert last(service, "EnvironmentFile") == "-/etc/default/passerelle-hotspot"
    assert "WIFI_COUNTRY=00" in values(service, "Environment")
    default = (HOTSPOT / "passerelle-hotspot.default").read_text()
    assert "\nWIFI_COUNTRY=00\n" in default


@needs_systemd_analyze
@pytest.mark.parametrize("name", ["passerelle-hotspot-radio.service",
                                  "passerelle-hotspot-redirect.service"])
def test_systemd_accepts_the_hotspot_units(tmp_path, name):
    path = tmp_path / name
    # Point the commands at executables that exist here: verify checks they do.
    path.write_text((HOTSPOT / name).read_text().replace("/usr/sbin/nft", "/bin/true")
                    .replace("/usr/sbin/rfkill", "/bin/true").replace("/usr/sbin/iw", "/bin/true"))
    assert_systemd_accepts(path)


def test_the_avahi_service_announces_the_web_page():
    root = ET.parse(HOTSPOT / "passerelle-avahi.service").getroot()
    assert root.tag == "service-group"
    service = root.find("service")
    assert service.findtext("type") == "_http._tcp"
    assert service.findtext("port") == "80"


# --- dnsmasq ------------------------------------------------------------------------

@needs_dnsmasq
def test_dnsmasq_accepts_the_file():
    proc = run([DNSMASQ, "--test", f"--conf-file={HOTSPOT / 'passerelle-dnsmasq.conf'}"])
    assert "syntax check OK" in proc.stdout + proc.stderr


@needs_dnsmasq
def test_dnsmasq_check_catches_mistakes(tmp_path):
    bad = tmp_path / "bad.conf"
    bad.write_text((HOTSPOT / "passerelle-dnsmasq.conf").read_text() + "adress=/x/1.2.3.4\n")
    proc = run([DNSMASQ, "--test", f"--conf-file={bad}"], check=False)
    assert proc.returncode != 0


def spare_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ask(port: int, name: str, timeout: float = 2) -> list[str]:
    """The IPv4 addresses a DNS server on 127.0.0.1:port gives for a name.

    The DNS wire format is built and read by python-zeroconf (already a dependency for
    the box's mDNS announcement: mDNS packets are DNS packets), not by hand.
    """
    from zeroconf import DNSIncoming, DNSOutgoing, DNSQuestion
    from zeroconf.const import _CLASS_IN, _FLAGS_QR_QUERY, _TYPE_A

    query = DNSOutgoing(_FLAGS_QR_QUERY | 0x0100, multicast=False, id_=4242)  # 0x0100: recursion desired
    query.add_question(DNSQuestion(name.rstrip(".") + ".", _TYPE_A, _CLASS_IN))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(query.packets()[0], ("127.0.0.1", port))
        data, _ = s.recvfrom(4096)
    answer = DNSIncoming(data)
    assert answer.id == 4242
    return [socket.inet_ntoa(record.address) for record in answer.answers()
            if getattr(record, "address", None) and len(record.address) == 4]


@pytest.fixture
def dnsmasq(tmp_path):
    """dnsmasq on 127.0.0.1 and a spare port, with only the hotspot's file (no DHCP)."""
    port = spare_udp_port()
    log = tmp_path / "dnsmasq.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [DNSMASQ, "--keep-in-foreground", f"--conf-file={HOTSPOT / 'passerelle-dnsmasq.conf'}",
             f"--port={port}", "--listen-address=127.0.0.1", "--bind-interfaces",
             "--pid-file=", "--log-facility=-", "--log-queries"],
            stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dnsmasq exited {proc.returncode}:\n{log.read_text()}")
            try:
                ask(port, "passerelle.lan", timeout=0.5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"dnsmasq did not answer within 30 s:\n{log.read_text()}")
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


PROBE_NAMES = sorted(captive.PROBE_HOSTS)


@needs_dnsmasq
def test_dnsmasq_answers_every_probe_name_and_the_box_names_with_the_box(dnsmasq):
    for name in ["passerelle.lan", "passerelle.local", *PROBE_NAMES, "example.org",
                 "wikipedia.org", "a.b.c.d.example"]:
        assert ask(dnsmasq, name) == [captive.BOX_ADDRESS], name
    # Windows compares this one's address with the real one before it believes it is online.
    assert ask(dnsmasq, "dns.msftncsi.com") == ["131.107.255.255"]


# --- nftables -----------------------------------------------------------------------

def nft_check(path) -> subprocess.CompletedProcess:
    """`nft -c -f` (check only, nothing applied), in a new network namespace when possible."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-rn", "true"], check=False,
                                  capture_output=True).returncode == 0:
        return run([unshare, "-rn", NFT, "-c", "-f", path], check=False)
    return run([NFT, "-c", "-f", path], check=False)


@needs_nft
def test_nft_accepts_the_redirect(tmp_path):
    proc = nft_check(HOTSPOT / "passerelle-redirect.nft")
    if proc.returncode != 0 and "Operation not permitted" in proc.stderr:
        pytest.skip("no permission to check nftables rules here (needs root or user namespaces)")
    assert proc.returncode == 0, proc.stderr
    text = (HOTSPOT / "passerelle-redirect.nft").read_text()
    assert "tcp dport 80 redirect to :8080" in text
    # Its own table, deleted first: loading twice never stacks rules, nor touches others'.
    assert text.index("delete table inet passerelle") < text.index("table inet passerelle {")


@needs_nft
def test_nft_check_catches_mistakes(tmp_path):
    bad = tmp_path / "bad.nft"
    bad.write_text((HOTSPOT / "passerelle-redirect.nft").read_text()
                   .replace("redirect to :8080", "redirect to :80800"))
    proc = nft_check(bad)
    if "Operation not permitted" in proc.stderr:
        pytest.skip("no permission to check nftables rules here")
    assert proc.returncode != 0


def test_the_redirect_goes_to_the_default_port():
    from passerelle.server.settings import BY_NAME

    assert f"redirect to :{BY_NAME['port'].default}" in (HOTSPOT / "passerelle-redirect.nft").read_text()


def _nmcli_offline(*args: str, keyfile_text: str) -> configparser.ConfigParser:
    """NetworkManager's own reading of a keyfile (``nmcli --offline`` reads one on stdin and
    prints it back normalised, touching no running NetworkManager)."""
    nmcli = shutil.which("nmcli")
    assert nmcli, "nmcli is missing: `make test` installs network-manager (packaging-tools)"
    proc = run([nmcli, "--offline", "connection", "modify", *args], input=keyfile_text)
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(proc.stdout)
    return parser


def test_networkmanager_reads_the_access_point_as_written():
    written = keyfile()
    read = _nmcli_offline("connection.id", "passerelle-hotspot",
                          keyfile_text=(HOTSPOT / "passerelle-hotspot.nmconnection").read_text())
    for section in ("connection", "wifi", "ipv4", "ipv6"):
        for key, value in written[section].items():
            if key == "autoconnect" and value == "true":
                continue  # NetworkManager's default: left out when it prints the file back
            assert read[section].get(key) == value, (section, key)


def test_the_commands_the_keyfile_documents_work_offline():
    """The name and passphrase commands given in the keyfile's comments, run on the file."""
    text = (HOTSPOT / "passerelle-hotspot.nmconnection").read_text()
    documented = [line.split("nmcli connection modify passerelle-hotspot", 1)[1].split()
                  for line in text.splitlines() if "nmcli connection modify" in line]
    assert len(documented) == 2
    named = _nmcli_offline("wifi.ssid", "Bibliothèque", keyfile_text=text)
    ssid = named["wifi"]["ssid"]
    if re.fullmatch(r"(\d+;)+", ssid):  # a non-ASCII name is kept as its UTF-8 bytes
        ssid = bytes(int(b) for b in ssid.rstrip(";").split(";")).decode()
    assert ssid == "Bibliothèque"
    secured = _nmcli_offline("wifi-sec.key-mgmt", "wpa-psk", "wifi-sec.psk", "a passphrase",
                             keyfile_text=text)
    assert secured["wifi-security"]["key-mgmt"] == "wpa-psk"
    assert secured["wifi-security"]["psk"] == "a passphrase"
    assert secured["ipv4"]["address1"] == "10.42.0.1/24"  # the address labels print survives
    with pytest.raises(pytest.fail.Exception):
        _nmcli_offline("wifi.mode", "not-a-mode", keyfile_text=text)
