"""Sync over HTTP, the calling side: pair with a hub, then sync with any paired peer.

:func:`pair` runs once per box (``passerelle sync pair HUB_URL CODE``);
:func:`sync_once` is one sync with one peer (``passerelle sync now``, and the
background scheduler). A sync is: ``hello`` (a nonce, the peer's identity),
``vector`` (vectors, clocks, the organisation's devices), a pull of what this
box lacks (a stream of batches, each applied as it arrives), then a push of
what the peer lacks (one batch per request, each acknowledged with the peer's
new vector). Every batch is applied whole or not at all and applying twice
changes nothing, so a sync cut anywhere — cable, power, a killed server —
resumes next time from what each side holds. Memory stays one batch.

The stdlib ``http.client`` is enough (one keep-alive connection per sync,
timeouts on every socket operation); nothing here needs Flask.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import http.client
import json
import logging
import socket
import struct
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import sqlite_utils
from passerelle.server import __version__, records
from passerelle.server import sync as syncmod
from passerelle.server.errors import ExitStatus, InvalidInput, NotFound, PasserelleError
from passerelle.server.people import sites
from passerelle.server.sync.http import (
    BATCH_TYPE,
    HEADER_DEVICE,
    HEADER_NEXT_NONCE,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    MAX_BATCH_BYTES,
    gunzip_bounded,
    parse_site_batch,
    request_message,
    response_message,
)

LOG = logging.getLogger("passerelle.sync")
API = "/api/v1/sync/"
MAX_JSON_BYTES = 16 * 1024 * 1024


class PeerUnreachable(PasserelleError):
    """The peer could not be reached, did not answer in time, or the connection was cut."""

    code = "peer_unreachable"
    status = 503
    exit_code = ExitStatus.ERROR


class PeerRefused(syncmod.SyncRefused):
    """The peer refused this box (unknown, revoked, another organisation...), or the other way."""

    code = "peer_refused"


def normalise_url(url: str) -> str:
    """``hub.local:8080`` → ``http://hub.local:8080``; only a scheme, a host and a port."""
    text = (url or "").strip()
    if "://" not in text:
        text = "http://" + text
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"not a peer address: {url!r} (like http://192.168.1.10:8080)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidInput(f"a peer address is only scheme, host and port, like "
                           f"http://192.168.1.10:8080 (not {url!r})")
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput(f"not a peer address: {url!r} (bad port)") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


class Peer:
    """One keep-alive HTTP connection to a peer; requests signed with this box's device key."""

    def __init__(self, url: str, *, key=None, device: str | None = None, timeout: float = 30):
        self.url = normalise_url(url)
        parts = urllib.parse.urlsplit(self.url)
        factory = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        self.conn = factory(parts.hostname, parts.port, timeout=timeout)
        self.key, self.device, self.timeout = key, device, timeout
        self.nonce: str | None = None
        self.peer_key: bytes | None = None  # raw public key: answers are checked against it
        self.sent = self.received = 0

    def close(self) -> None:
        self.conn.close()

    # --- transport ---------------------------------------------------------------------

    def _request(self, method: str, path: str, body: bytes = b"",
                 headers: dict | None = None) -> http.client.HTTPResponse:
        for attempt in (1, 2):
            fresh = self.conn.sock is None
            if fresh:
                try:
                    self.conn.connect()
                except TimeoutError:
                    raise PeerUnreachable(f"{self.url} did not answer within "
                                          f"{self.timeout:g} s") from None
                except OSError as exc:
                    raise PeerUnreachable(f"could not reach {self.url} ({_reason(exc)}): is it "
                                          "switched on and on this network?") from None
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                response = self.conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                if not fresh and attempt == 1:
                    continue  # the peer closed an idle keep-alive connection: open a new one
                raise PeerUnreachable(f"the connection to {self.url} was cut; the next sync "
                                      "resumes where this one stopped") from None
            except TimeoutError:
                self.conn.close()
                raise PeerUnreachable(f"{self.url} did not answer within {self.timeout:g} s; "
                                      "the next sync resumes where this one stopped") from None
            except (OSError, http.client.HTTPException) as exc:
                self.conn.close()
                raise PeerUnreachable(f"the connection to {self.url} failed ({_reason(exc)}); "
                                      "the next sync resumes where this one stopped") from None
            self.sent += len(body)
            return response
        raise AssertionError("unreachable")

    def read(self, response: http.client.HTTPResponse, n: int | None = None) -> bytes:
        """Read from an answer; a connection cut before the end is :class:`PeerUnreachable`."""
        try:
            data = response.read() if n is None else response.read(n)
        except (http.client.IncompleteRead, OSError, http.client.HTTPException) as exc:
            self.conn.close()
            if isinstance(exc, TimeoutError):
                raise PeerUnreachable(f"{self.url} stopped sending for {self.timeout:g} s; the next "
                                      "sync resumes where this one stopped") from None
            raise PeerUnreachable(f"the connection to {self.url} was cut during the transfer; "
                                  "the next sync resumes where this one stopped") from None
        if n is not None and len(data) < n:
            self.conn.close()
            raise PeerUnreachable(f"the connection to {self.url} was cut during the transfer; "
                                  "the next sync resumes where this one stopped")
        self.received += len(data)
        return data

    def _answer(self, response: http.client.HTTPResponse, nonce: str, verify: bool) -> dict:
        body = self.read(response)
        if response.getheader("Content-Encoding", "").lower() == "gzip":
            body = gunzip_bounded(body, MAX_JSON_BYTES)
        if verify and self.peer_key is not None:
            try:
                from cryptography.exceptions import InvalidSignature

                signature = base64.b64decode(response.getheader(HEADER_SIGNATURE, ""), validate=True)
                syncmod.make_verifier(self.peer_key).verify(
                    signature, response_message(nonce, response.status,
                                                hashlib.sha256(body).hexdigest()))
            except (InvalidSignature, ValueError):
                raise PeerRefused(f"an answer from {self.url} is not signed by the peer's key "
                                  "(altered on the way, or another machine answering in its "
                                  "place); nothing of it was used") from None
        try:
            value = json.loads(body)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise PeerUnreachable(f"{self.url} did not answer like a Passerelle box "
                                  f"(HTTP {response.status})")
        return value

    # --- the protocol --------------------------------------------------------------------

    def hello(self) -> dict:
        response = self._request("GET", API + "hello", headers={"Accept-Encoding": "gzip"})
        if response.status != 200:
            self._raise(response, "", verify=False)
        info = self._answer(response, "", verify=False)
        if not isinstance(info.get("device_id"), str) or not isinstance(info.get("nonce"), str):
            raise PeerUnreachable(f"{self.url} did not answer like a Passerelle box")
        self.nonce = info["nonce"]
        return info

    def post(self, name: str, payload: dict | bytes, *, content_type: str = "application/json",
             signed: bool = True, stream: bool = False):
        """POST to ``/api/v1/sync/<name>``; the parsed JSON answer, or the open stream."""
        path = API + name
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        digest = hashlib.sha256(body).hexdigest()
        busy = 0
        retried_nonce = False
        while True:
            headers = {"Content-Type": content_type, "Accept-Encoding": "gzip"}
            nonce = ""
            if signed:
                if self.nonce is None:
                    self.hello()
                nonce, self.nonce = self.nonce, None
                headers.update({HEADER_DEVICE: self.device, HEADER_NONCE: nonce,
                                HEADER_SIGNATURE: base64.b64encode(self.key.sign(request_message(
                                    "POST", path, digest, nonce, self.device))).decode()})
            response = self._request("POST", path, body, headers)
            self.nonce = response.getheader(HEADER_NEXT_NONCE) or None
            if response.status == 200:
                return response if stream else self._answer(response, nonce, verify=signed)
            error = self._error(response, nonce, verify=signed)
            if response.status == 401 and error[0] == "bad_nonce" and not retried_nonce:
                retried_nonce = True  # the peer restarted, or the nonce expired: once more
                continue
            if response.status == 503 and error[0] == "busy" and busy < 4:
                busy += 1
                time.sleep(0.25 * 2 ** busy)
                continue
            self._raise(response, nonce, verify=signed, error=error)

    def _error(self, response, nonce: str, verify: bool) -> tuple[str, str]:
        try:
            body = self._answer(response, nonce, verify=False)
            error = body.get("error") or {}
            return str(error.get("code", "")), str(error.get("message", ""))
        except PeerUnreachable:
            return "", ""

    def _raise(self, response, nonce: str, verify: bool, error: tuple[str, str] | None = None):
        code, message = error or self._error(response, nonce, verify)
        status = response.status
        if status == 503 and code == "setup_required":
            raise PeerRefused(f"{self.url} is not set up yet; set it up first")
        if status in (400, 401, 403, 409):
            # The peer's own words ("this box was revoked by the coordinator on ...").
            raise PeerRefused(message or f"{self.url} refused this box (HTTP {status})")
        raise PeerUnreachable(f"{self.url} answered HTTP {status}"
                              + (f": {message}" if message else ""))

    def frames(self, response: http.client.HTTPResponse) -> Iterator[bytes]:
        """The gzip batches of a ``changes`` stream; :class:`PeerUnreachable` if it was cut."""
        while True:
            size = struct.unpack(">I", self.read(response, 4))[0]
            if size == 0:
                self.read(response)  # the end of the chunked body: the connection is reusable
                return
            if size > MAX_BATCH_BYTES:
                self.conn.close()
                raise PeerRefused(f"{self.url} sent a batch of {size:,} bytes; refused")
            yield self.read(response, size)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "unknown host name"
    return getattr(exc, "strerror", None) or type(exc).__name__


# --- Pairing ----------------------------------------------------------------------------

def pair(db: sqlite_utils.Database, home, url: str, code: str, *, label: str | None = None,
         timeout: float = 30) -> dict:
    """Pair this box with the hub at ``url`` using a one-time ``code`` from its coordinator.

    Both sides learn each other's device id and key; the code authenticates the
    exchange both ways (an HMAC keyed by a slow hash of the code over both
    keys), so a machine in the middle can substitute neither key. The hub
    becomes this box's default peer; a box not yet set up joins the hub's
    organisation at its first sync.
    """
    code = syncmod.normalise_code(code)
    url = normalise_url(url)
    label = (label or socket.gethostname()).strip()[:80]
    key = syncmod.device_key(db, home)
    me = records.device_id(db)
    mine = syncmod.public_key_text(key.public_key())
    org = syncmod.organisation_of(db)
    peer = Peer(url, timeout=timeout)
    hub_device = None
    try:
        info = peer.hello()
        hub_device, hub_key = info["device_id"], info.get("public_key")
        hub_org = (info.get("organisation") or {}).get("uuid")
        if not isinstance(hub_key, str):
            raise PeerUnreachable(f"{url} did not answer like a Passerelle box")
        if hub_device == me:
            raise InvalidInput(f"{url} is this box itself")
        if hub_org is None:
            raise PeerRefused(f"{url} is not set up yet; set it up first, then make a code there")
        if org and org != hub_org:
            name = (info.get("organisation") or {}).get("name")
            raise syncmod.OtherOrganisation(
                f"this box belongs to another organisation ({org}) than {url} ({name}, {hub_org}); "
                "a box pairs only with its own organisation's hub")
        pairing_key = syncmod.pairing_key(code, hub_device)
        transcript = syncmod.pair_transcript(hub_device, hub_key, me, mine, label, org, peer.nonce)
        answer = peer.post("pair", {"device_id": me, "public_key": mine, "label": label,
                                    "organisation": org, "nonce": peer.nonce,
                                    "mac": syncmod.pair_mac(pairing_key, "box", transcript)},
                           signed=False)
        mac = answer.pop("mac", "")
        expected = syncmod.pair_mac(pairing_key, "hub", transcript, syncmod.canonical_json(answer))
        if (not isinstance(mac, str) or not hmac.compare_digest(mac, expected)
                or answer.get("device_id") != hub_device or answer.get("public_key") != hub_key):
            raise PeerRefused(f"the answer from {url} was not made with the code: another machine "
                              "may be answering in the hub's place; nothing was recorded")
        organisation = answer.get("organisation") or {}
        hub_label = answer.get("label") or info.get("label") or url
        syncmod.trust(db, hub_device, hub_key, label=hub_label,
                      organisation=organisation.get("uuid"), anchor=True)
        syncmod.record_peer(db, hub_device, url=url)
        syncmod.set_default_peer(db, hub_device)
    except PasserelleError as exc:
        syncmod.log_attempt(db, "pair", hub_device, url, False, f"pairing with {url} failed: "
                            f"{exc.message}")
        raise
    finally:
        peer.close()
    message = (f"paired with {hub_label} at {url} (device {hub_device}, organisation "
               f"{organisation.get('name')})")
    syncmod.log_attempt(db, "pair", hub_device, url, True, message)
    return {"device_id": hub_device, "label": hub_label, "url": url,
            "organisation": organisation, "message": message}


# --- One sync ---------------------------------------------------------------------------

@dataclass
class SyncResult:
    peer_url: str | None = None
    peer_device: str | None = None
    peer_label: str | None = None
    ok: bool = False
    pulled: syncmod.ApplyResult = field(default_factory=syncmod.ApplyResult)
    pushed: syncmod.ApplyResult = field(default_factory=syncmod.ApplyResult)  # as the peer applied
    pulled_batches: int = 0
    pushed_batches: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    skew_ms: int | None = None           # this box's clock minus the peer's
    notes: list[str] = field(default_factory=list)
    error: PasserelleError | None = None
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return self.peer_label or self.peer_url or "the peer"

    def summary(self) -> str:
        moved = (self.pulled.applied + self.pulled.duplicates + self.pushed.applied
                 + self.pushed.duplicates)
        if self.ok and not moved:
            words = [f"synced with {self.name}: nothing new either way"]
        else:
            words = [("synced with " if self.ok else "before the problem, with ") + self.name + ": "
                     f"received {self.pulled.applied} operations ({self.pulled.duplicates} already "
                     f"here), sent {self.pushed.applied} ({self.pushed.duplicates} already there)"]
        if not self.ok and self.error is not None:
            words.insert(0, f"sync with {self.peer_url} failed: {self.error.message}")
            if not moved:
                words.pop()
        words += self.notes
        return "; ".join(words)

    def as_dict(self) -> dict:
        def apply_dict(r: syncmod.ApplyResult) -> dict:
            return {"applied": r.applied, "duplicates": r.duplicates,
                    "held": {o: {"first": f, "count": n, "reason": why}
                             for o, (f, n, why) in r.held.items()},
                    "clock_ahead_ms": r.clock_ahead_ms}

        return {"ok": self.ok, "peer_url": self.peer_url, "peer_device": self.peer_device,
                "peer_label": self.peer_label, "pulled": apply_dict(self.pulled),
                "pushed": apply_dict(self.pushed), "pulled_batches": self.pulled_batches,
                "pushed_batches": self.pushed_batches, "bytes_sent": self.bytes_sent,
                "bytes_received": self.bytes_received, "skew_ms": self.skew_ms,
                "notes": self.notes, "seconds": round(self.seconds, 3),
                "error": None if self.error is None else {"code": self.error.code,
                                                          "message": self.error.message},
                "message": self.summary()}

    def raise_for_error(self) -> None:
        if self.error is not None:
            raise self.error


def sync_once(db_factory: Callable[[], sqlite_utils.Database], home, peer_url: str | None = None, *,
              timeout: float = 30, max_ops: int = syncmod.DEFAULT_MAX_OPS,
              clock: Callable[[], float] = time.time) -> SyncResult:
    """One sync with one peer (the default peer, the hub, without ``peer_url``).

    Never raises for the peer's or the network's problems: the result says what
    moved and, when ``ok`` is false, what went wrong in plain words
    (``result.error``). Every attempt is one line of ``sync_log``; the peer's
    last known vector, address, last success and last error go to ``sync_peers``.
    ``db_factory`` opens a connection (the caller's thread owns it; it is closed
    here); ``clock`` is this box's wall clock in seconds (tests make it wrong).
    """
    started = time.monotonic()
    db = db_factory()
    result = SyncResult(peer_url=peer_url)
    peer: Peer | None = None
    theirs: dict[str, int] | None = None
    try:
        try:
            key = syncmod.device_key(db, home)
            me = records.device_id(db)
            if peer_url is None:
                default = syncmod.default_peer(db)
                if default is None or not default["url"]:
                    raise NotFound("this box has no hub to sync with: pair it first "
                                   "(passerelle sync pair HUB_URL CODE), or give --peer URL")
                peer_url = default["url"]
            result.peer_url = peer_url = normalise_url(peer_url)
            peer = Peer(peer_url, key=key, device=me, timeout=timeout)
            info = peer.hello()
            device = info["device_id"]
            result.peer_label = info.get("label") if isinstance(info.get("label"), str) else None
            _check_peer(db, me, device, info, peer, result)
            label = syncmod.peer_label(db, device) or result.peer_label
            result.peer_label = label
            theirs = _exchange(db, peer, result, clock)
            _pull(db, peer, result, theirs, max_ops, clock)
            theirs = _push(db, home, peer, result, theirs, max_ops)
            if syncmod.is_anchor(db, result.peer_device):
                _prune(db, result, theirs)
            # Tell the peer where this box now stands, so its page of boxes is true.
            peer.post("vector", {"vector": syncmod.vector(db), "now_ms": int(clock() * 1000),
                                 "organisation": syncmod.organisation_of(db),
                                 "version": __version__, "done": True})
            result.ok = True
        except PasserelleError as exc:
            result.error = exc
        except Exception as exc:  # noqa: BLE001 - every attempt is recorded; the traceback is logged
            LOG.exception("sync with %s failed unexpectedly", peer_url)
            result.error = PasserelleError(f"unexpected error: {type(exc).__name__}: {exc} (the "
                                           "traceback is in the log)")
        finally:
            if peer is not None:
                result.bytes_sent, result.bytes_received = peer.sent, peer.received
                peer.close()
        result.seconds = time.monotonic() - started
        _record(db, result, theirs)
    finally:
        db.close()
    return result


def _check_peer(db, me: str, device: str, info: dict, peer: Peer, result: SyncResult) -> None:
    """The box at that address must be one this box trusts, presenting the key it trusts."""
    if device == me:
        raise InvalidInput(f"{peer.url} is this box itself")
    row = db.execute("SELECT public_key, revoked_at FROM sync_devices WHERE device_id = ?",
                     [device]).fetchone()
    if row is None:
        raise PeerRefused(f"the box at {peer.url} ({device}) is not paired with this box; pair "
                          f"first: passerelle sync pair {peer.url} CODE")
    result.peer_device = device
    if row[1] is not None:
        raise PeerRefused(f"the box at {peer.url} ({device}) was revoked on {row[1][:10]}; this "
                          "box no longer syncs with it")
    try:
        presented = syncmod.parse_public_key(str(info.get("public_key")))
    except InvalidInput:
        presented = b""
    if presented != syncmod.parse_public_key(row[0]):
        raise PeerRefused(f"the box at {peer.url} presents another key than the one this box "
                          f"knows for {device}: if it was reinstalled, pair again; otherwise "
                          "another machine is answering in its place")
    peer.peer_key = presented


def _vector(value) -> dict[str, int]:
    if not syncmod.is_vector(value):
        raise PeerUnreachable("the peer answered a malformed vector")
    return value


def _exchange(db, peer: Peer, result: SyncResult, clock) -> dict[str, int]:
    """Vectors, clocks and the organisation's devices; returns what the peer holds."""
    org = syncmod.organisation_of(db)
    now = int(clock() * 1000)
    asked = {"vector": syncmod.vector(db), "now_ms": now, "organisation": org,
             "version": __version__}
    if result.peer_device and syncmod.is_anchor(db, result.peer_device):
        # The device list comes again only when the hub's changed since this box took it.
        asked["devices_version"] = syncmod.adopted_devices_version(db, result.peer_device)
    answer = peer.post("vector", asked)
    their_org = (answer.get("organisation") or {}).get("uuid")
    if org and their_org and org != their_org:
        raise syncmod.OtherOrganisation(f"{peer.url} belongs to another organisation "
                                        f"({their_org}) than this box ({org})")
    if isinstance(answer.get("now_ms"), int):
        result.skew_ms = now - answer["now_ms"]
        if abs(result.skew_ms) > syncmod.SKEW_REPORT_MS:
            side = "ahead of" if result.skew_ms > 0 else "behind"
            result.notes.append(f"this box's clock is {syncmod.days_text(abs(result.skew_ms))} {side} "
                                f"{result.name}'s; set the right date and time on the box that "
                                "is wrong")
    devices = answer.get("devices")
    if isinstance(devices, list):
        learned = syncmod.adopt_devices(db, result.peer_device, [d for d in devices
                                                                  if isinstance(d, dict)])
        if learned["revoked"]:
            result.notes.append(f"{learned['revoked']} device(s) revoked by the coordinator are "
                                "refused from now on")
        version = answer.get("devices_version")
        if learned.get("anchor") and isinstance(version, str):
            syncmod.record_peer(db, result.peer_device)
            syncmod.set_adopted_devices_version(db, result.peer_device, version[:40])
    if "site" in answer and syncmod.is_anchor(db, result.peer_device):
        site = answer["site"]
        sites.set_this_site(db, site if isinstance(site, str) and site else None)
    theirs = _vector(answer.get("vector"))
    syncmod.record_peer(db, result.peer_device, vector=theirs)
    return theirs


def _pull(db, peer: Peer, result: SyncResult, theirs: dict[str, int], max_ops: int, clock) -> None:
    ours = syncmod.vector(db)
    if not any(seq > ours.get(origin, 0) for origin, seq in theirs.items()):
        return
    keys, revoked = syncmod.trusted_keys(db), syncmod.revoked_devices(db)
    anchor = syncmod.is_anchor(db, result.peer_device)
    response = peer.post("changes", {"since": ours, "max_ops": max_ops}, stream=True)
    for data in peer.frames(response):
        batch, skips = parse_site_batch(data)
        result.pulled.add(syncmod.apply_received(db, batch, skips, keys, int(clock() * 1000),
                                                 revoked=revoked, from_anchor=anchor))
        result.pulled_batches += 1
    for origin, (seq, n, why) in sorted(result.pulled.held.items()):
        result.notes.append(f"held back {n} operations of {syncmod.peer_label(db, origin) or origin}"
                            f" from #{seq}: {syncmod.HELD_WORDS[why]}")


def _push(db, home, peer: Peer, result: SyncResult, theirs: dict[str, int],
          max_ops: int) -> dict[str, int]:
    """Send what the peer lacks, one acknowledged batch at a time; returns its last vector."""
    syncmod.sign_pending(db, home)
    if not syncmod.ops_waiting(syncmod.vector(db), theirs):
        return theirs
    held_origins: set[str] = set()
    for batch in syncmod.changes_for_peer(db, theirs, max_ops, home=home):
        # Once the peer holds back an origin's ops (a clock far ahead), the rest would be too.
        ops = [op for op in batch.ops if op.origin not in held_origins]
        if not ops:
            continue
        data = gzip.compress("".join(op.line() + "\n" for op in ops).encode(), compresslevel=6,
                             mtime=0)
        answer = peer.post("batches", data, content_type=BATCH_TYPE)
        held = {}
        for origin, h in (answer.get("held") or {}).items():
            if isinstance(h, dict) and h.get("reason") in syncmod.HELD_WORDS:
                held[origin] = (int(h.get("first", 0)), int(h.get("count", 0)), h["reason"])
        applied = syncmod.ApplyResult(
            applied=int(answer.get("applied", 0)), duplicates=int(answer.get("duplicates", 0)),
            held=held, clock_ahead_ms={o: int(ms) for o, ms in
                                       (answer.get("clock_ahead_ms") or {}).items()},
            vector=_vector(answer.get("vector")))
        result.pushed.add(applied)
        result.pushed_batches += 1
        held_origins |= held.keys()
        theirs = applied.vector
        syncmod.record_peer(db, result.peer_device, vector=theirs)
    me = records.device_id(db)
    for origin, (seq, n, why) in sorted(result.pushed.held.items()):
        who = "this box" if origin == me else (syncmod.peer_label(db, origin) or origin)
        if why == "clock ahead":
            ahead = result.pushed.clock_ahead_ms.get(origin)
            words = (f"they are stamped {syncmod.days_text(ahead)} ahead of its clock" if ahead
                     else "they are stamped more than a day ahead of its clock")
            result.notes.append(f"{result.name} held back {n} operations of {who} from #{seq}: "
                                f"{words}; fix the date and time of {who}, they will then go "
                                "through")
        else:
            result.notes.append(f"{result.name} held back {n} operations of {who} from #{seq}: "
                                f"{syncmod.HELD_WORDS[why]}")
    return theirs


def _prune(db, result: SyncResult, theirs: dict[str, int]) -> None:
    """Learners who moved to another site leave this box, once the hub acknowledged holding
    everything of theirs (``theirs``: its vector after this box's push)."""
    pruned = syncmod.prune_departed(db, theirs)
    if pruned.learners:
        result.notes.append(f"{len(pruned.learners)} learner(s) who moved to another site were "
                            "taken off this box (the hub and their new site keep everything)")


def _record(db, result: SyncResult, theirs: dict[str, int] | None) -> None:
    message = result.summary()
    if result.peer_device:
        syncmod.record_peer(db, result.peer_device, vector=theirs,
                            url=result.peer_url if result.ok else None, ok=result.ok,
                            error=None if result.ok else message)
    syncmod.log_attempt(db, "sync", result.peer_device, result.peer_url, result.ok, message,
                        ops=result.pulled.applied + result.pushed.applied,
                        duplicates=result.pulled.duplicates + result.pushed.duplicates,
                        held=result.pulled.held_count + result.pushed.held_count)


def sync_all(db_factory: Callable[[], sqlite_utils.Database], home, **kw) -> list[SyncResult]:
    """One sync with every peer that has an address and is not revoked (for the scheduler)."""
    db = db_factory()
    try:
        urls = [row[0] for row in db.execute(
            "SELECT p.url FROM sync_peers p JOIN sync_devices d ON d.device_id = p.device_id"
            " WHERE p.url IS NOT NULL AND d.revoked_at IS NULL ORDER BY p.url")]
    finally:
        db.close()
    return [sync_once(db_factory, home, url, **kw) for url in urls]


__all__ = ["Peer", "PeerUnreachable", "PeerRefused", "SyncResult", "pair", "sync_once", "sync_all",
           "normalise_url"]
