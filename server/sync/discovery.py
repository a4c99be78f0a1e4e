"""LAN discovery: boxes and hubs announce themselves with mDNS / DNS-SD and find each other.

A serving box registers one ``_passerelle._tcp`` service whose TXT record
carries what a peer needs to decide whether it is worth pairing or syncing
with: the device id, the organisation (a uuid, or empty before setup), the
role (``box`` or ``hub``), the software version and the box's name. Nothing
secret is announced: pairing still needs a one-time code and every sync
request is signed (see ``docs/sync.md``).

The library is python-zeroconf (pure Python, maintained, used by Home
Assistant): a DNS-SD responder and browser are a few thousand lines of
protocol corner cases (probing, conflict renaming, goodbye packets, cache
expiry) that are not worth writing again.

Which interfaces: a box serving only on 127.0.0.1 announces only on the
loopback interface (the tests and benchmarks do that, so no packet leaves the
machine); a box serving on 0.0.0.0 announces on every interface.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import asdict, dataclass

SERVICE = "_passerelle._tcp.local."
LOG = logging.getLogger("passerelle.discovery")


@dataclass(frozen=True)
class Peer:
    """One box or hub seen on the network."""

    name: str
    url: str
    device_id: str
    organisation: str
    role: str
    version: str

    def as_dict(self) -> dict:
        return asdict(self)


def _interfaces(host: str):
    from zeroconf import InterfaceChoice

    if host in ("127.0.0.1", "localhost"):
        return ["127.0.0.1"]
    if host in ("0.0.0.0", "", "::"):
        return InterfaceChoice.All
    return [host]


def _instance_name(device_id: str) -> str:
    # DNS-SD instance names must be unique on the link: the device id is.
    return f"passerelle-{device_id[:12]}.{SERVICE}"


class Announcer:
    """Announces this box while it serves; ``close()`` sends the goodbye packets."""

    def __init__(self, *, host: str, port: int, device_id: str, organisation: str | None,
                 role: str, version: str, name: str):
        self.host, self.port = host, int(port)  # Waitress may report the port as text
        self.properties = {"device": device_id, "org": organisation or "", "role": role,
                           "version": version, "name": name[:60]}
        self.device_id = device_id
        self._zc = None
        self._info = None

    def start(self) -> bool:
        """Register the service; False (logged, never raised) when the network refuses.

        A box with no multicast route still serves learners: discovery is a
        convenience, so failing to announce is a warning, not a start-up error.
        """
        try:
            from zeroconf import IPVersion, ServiceInfo, Zeroconf

            addresses = [socket.inet_aton(a) for a in _addresses(self.host)]
            # Always zeroconf's own loop thread: left to choose, it attaches to any asyncio loop
            # running in the calling thread (a test's browser driver has one), which may never
            # run its callbacks, and the box goes unannounced.
            self._zc = Zeroconf(interfaces=_interfaces(self.host), ip_version=IPVersion.V4Only,
                                use_asyncio=False)
            self._info = ServiceInfo(
                SERVICE, _instance_name(self.device_id), addresses=addresses, port=self.port,
                properties=self.properties, server=f"passerelle-{self.device_id[:12]}.local.")
            # Registration probes the name, then announces it (a second or two): handed to
            # zeroconf's own event loop, never waited for. Its blocking API gives up after a
            # fixed time and raises on a busy machine, although the loop would have finished.
            future = asyncio.run_coroutine_threadsafe(self._register(), self._zc.loop)
            future.add_done_callback(_report)
            return True
        except (OSError, ImportError, ValueError) as exc:
            LOG.warning("LAN discovery is off: %s", exc)
            self.close()
            return False

    async def _register(self) -> None:
        broadcast = await self._zc.async_register_service(self._info, allow_name_change=True)
        await broadcast

    def close(self) -> None:
        from zeroconf import Error as ZeroconfError

        zc, self._zc = self._zc, None
        if zc is None:
            return
        try:
            if self._info is not None:
                zc.unregister_service(self._info)
        except (OSError, KeyError, RuntimeError, ZeroconfError):
            pass  # never registered, the network went away, or a busy loop: goodbye is a courtesy
        finally:
            zc.close()


def _report(future) -> None:
    """Log why an announcement failed (a name clash, no multicast): the box serves anyway."""
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:
        LOG.warning("could not announce this box on the LAN: %s", exc)


def _addresses(host: str) -> list[str]:
    if host in ("0.0.0.0", "", "::"):
        from passerelle.server.web.serve import lan_addresses

        return lan_addresses() or ["127.0.0.1"]
    if host == "localhost":
        return ["127.0.0.1"]
    return [host]


def _text(props: dict, key: str) -> str:
    value = props.get(key.encode())
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else ""


def browse(timeout: float = 3.0, host: str = "0.0.0.0") -> list[Peer]:
    """The Passerelle boxes and hubs that answer within ``timeout`` seconds, by name.

    ``host`` picks the interfaces as for :class:`Announcer` (127.0.0.1: loopback only).
    """
    from zeroconf import IPVersion, ServiceBrowser, ServiceListener, Zeroconf

    found: dict[str, Peer] = {}
    zc = Zeroconf(interfaces=_interfaces(host), ip_version=IPVersion.V4Only, use_asyncio=False)

    class Listener(ServiceListener):
        def add_service(self, zc_, type_, name):
            info = zc_.get_service_info(type_, name, timeout=int(timeout * 1000))
            if info is None or not info.parsed_addresses():
                return
            props = info.properties or {}
            address = info.parsed_addresses()[0]
            found[name] = Peer(
                name=_text(props, "name") or name.split(".")[0],
                url=f"http://{address}:{info.port}",
                device_id=_text(props, "device"), organisation=_text(props, "org"),
                role=_text(props, "role") or "box", version=_text(props, "version"))

        update_service = add_service

        def remove_service(self, zc_, type_, name):
            found.pop(name, None)

    try:
        browser = ServiceBrowser(zc, SERVICE, Listener())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.1)
        browser.cancel()
    finally:
        zc.close()
    return sorted(found.values(), key=lambda p: (p.role != "hub", p.name, p.device_id))
