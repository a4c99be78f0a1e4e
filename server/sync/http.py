"""Sync over HTTP, the serving side: ``/api/v1/sync/...``, for other boxes, not for browsers.

A sync is a handful of requests from a box (the client, :mod:`.sync_client`)
to a peer (the hub, or another box of the organisation on the LAN):

1. ``GET hello`` — who the peer is, its clock, and a fresh nonce (no signature needed).
2. ``POST vector`` — the box's vector and clock; the peer answers with its own
   vector and clock, how far apart the clocks are, and the devices of the
   organisation it knows (so boxes paired with one hub accept each other's
   operations, and learn the hub's revocations).
3. ``POST changes`` — what the box lacks, as a stream of length-prefixed gzip
   batches ending with an empty frame (a stream without it was cut).
4. ``POST batches`` — one gzip batch of what the peer lacks per request,
   verified and applied whole, answered with the ``ApplyResult`` and the peer's
   new vector (the acknowledgement a cut push resumes from).

**Authentication** (deny by default): every request but ``hello`` and ``pair``
carries the caller's device id, a nonce and an Ed25519 signature by its
device key over ``(method, path, sha256(body), nonce, device id)``. Nonces are
issued by this server (``hello``, and a fresh one in every answer's
``X-Passerelle-Next-Nonce`` so a sync needs no extra round trip), single-use,
made and checked with a key derived from this server's device key and
recorded as used in the database for ``NONCE_TTL_S`` (:mod:`.nonces`), so any
number of server processes share them; the caller's clock plays no part,
which matters on boxes whose clocks are days wrong. Unknown device → 401, bad
signature or unknown/used nonce → 401, revoked device → 403 with the date in
words. JSON answers are signed by this server's device key over the request's
nonce, the status and the body's hash, so a box can trust the device list and
the acknowledgements it gets (there is no TLS on a LAN).

The access rule is :data:`.auth.DEVICE`: :func:`.auth.enforce` calls
:func:`check_device` for these views; a session cookie counts for nothing and
the views are exempt from CSRF (no browser makes these requests). The wire
format and the reasons are in ``docs/sync.md``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import socket
import sqlite3
import struct
import threading
import time
import zlib

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    jsonify,
    request,
)
from passerelle.server import db as dbmod
from passerelle.server import records
from passerelle.server import sync as syncmod
from passerelle.server.db import get_db
from passerelle.server.errors import InvalidInput, api_error
from passerelle.server.sync import nonces
from passerelle.server.web.auth import ANYONE, DEVICE, allow, csrf, has_session_cookie

bp = Blueprint("sync_http", __name__, url_prefix="/api/v1/sync")

PROTOCOL = 1
HEADER_DEVICE = "X-Passerelle-Device"
HEADER_NONCE = "X-Passerelle-Nonce"
HEADER_SIGNATURE = "X-Passerelle-Signature"
HEADER_NEXT_NONCE = "X-Passerelle-Next-Nonce"
REQUEST_DOMAIN = "passerelle-request/1"
RESPONSE_DOMAIN = "passerelle-response/1"
BATCH_TYPE = "application/x-passerelle-batch"      # one batch: gzip of JSON lines
STREAM_TYPE = "application/x-passerelle-batches"   # frames: 4-byte big-endian length, gzip batch
NONCE_TTL_S = nonces.TTL_S
MAX_BATCH_OPS = 50_000
MAX_BATCH_BYTES = 64 * 1024 * 1024  # uncompressed: a gzip bomb stops here


def request_message(method: str, path: str, body_sha256: str, nonce: str, device: str) -> bytes:
    """The bytes a box signs for each request."""
    return "\n".join([REQUEST_DOMAIN, method.upper(), path, body_sha256, nonce, device]).encode()


def response_message(nonce: str, status: int, body_sha256: str) -> bytes:
    """The bytes a peer signs for each JSON answer (bound to the request's nonce)."""
    return "\n".join([RESPONSE_DOMAIN, nonce, str(status), body_sha256]).encode()


def gunzip_bounded(data: bytes, limit: int = MAX_BATCH_BYTES) -> bytes:
    """Decompress one batch, refusing more than ``limit`` bytes (a gzip bomb, or garbage)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
    except zlib.error:
        raise syncmod.SyncRefused("a batch is not valid gzip (damaged on the way?); nothing of it "
                                  "was applied") from None
    if len(out) > limit or d.unconsumed_tail:
        raise syncmod.SyncRefused(f"a batch is larger than {limit // 2**20} MiB once "
                                  "uncompressed; nothing of it was applied")
    if not d.eof:
        raise syncmod.SyncRefused("a batch was cut short; nothing of it was applied")
    return out


def parse_site_batch(data: bytes) -> tuple[list[syncmod.SignedOp], list[tuple[str, int, int]]]:
    """A pulled batch: its ops, and the runs skipped because they belong to other sites."""
    lines = [line for line in gunzip_bounded(data).splitlines() if line.strip()]
    if len(lines) > MAX_BATCH_OPS:
        raise syncmod.SyncRefused(f"a batch holds more than {MAX_BATCH_OPS} operations")
    return syncmod.parse_lines(lines)


def parse_batch(data: bytes) -> list[syncmod.SignedOp]:
    lines = [line for line in gunzip_bounded(data).splitlines() if line.strip()]
    if len(lines) > MAX_BATCH_OPS:
        raise syncmod.SyncRefused(f"a batch holds more than {MAX_BATCH_OPS} operations")
    return [syncmod.SignedOp.from_line(line) for line in lines]


class _State:
    def __init__(self):
        self.key = None
        self.nonce_secret: bytes | None = None
        self.lock = threading.Lock()
        self.label = socket.gethostname()


def _state() -> _State:
    return current_app.extensions["passerelle.sync_http"]


def _key():
    """This server's device key, read once (the key file does not change while serving)."""
    state = _state()
    if state.key is None:
        with state.lock:
            if state.key is None:
                state.key = syncmod.device_key(get_db(), current_app.config["HOME"])
    return state.key


def _nonce_secret() -> bytes:
    """The key of this server's nonces: derived from its device key, the same in every process."""
    state = _state()
    if state.nonce_secret is None:
        state.nonce_secret = nonces.secret_from_key(_key())
    return state.nonce_secret


def _now_ms() -> int:
    return int(time.time() * 1000)


# --- Authentication (called by auth.enforce for views that allow DEVICE) ----------------

def check_device() -> Response | None:
    """None when the request is signed by a paired, non-revoked device with a fresh nonce;
    otherwise the error answer. Sets ``g.sync_device`` and ``g.sync_nonce``."""
    device = request.headers.get(HEADER_DEVICE, "")
    nonce = request.headers.get(HEADER_NONCE, "")
    signature = request.headers.get(HEADER_SIGNATURE, "")
    if not (device and nonce and signature):
        if has_session_cookie():
            return api_error(403, "this address is for boxes syncing with this one, not for "
                                  "browsers", "devices_only")
        return api_error(401, "a sync request must be signed by a box paired with this one "
                              "(passerelle sync pair)", "unsigned")
    db = get_db()
    row = db.execute("SELECT public_key, organisation, revoked_at FROM sync_devices"
                     " WHERE device_id = ?", [device]).fetchone()
    org = syncmod.organisation_of(db)
    if row is None or (org and row[1] and row[1] != org):
        return api_error(401, f"this box ({device}) is not paired with {_state().label}; pair it "
                              "with `passerelle sync pair URL CODE` and a code from the "
                              "coordinator", "unknown_device")
    body = request.get_data(cache=True)
    message = request_message(request.method, request.path, hashlib.sha256(body).hexdigest(),
                              nonce, device)
    try:
        from cryptography.exceptions import InvalidSignature

        syncmod.make_verifier(syncmod.parse_public_key(row[0])).verify(
            base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, ValueError):
        return api_error(401, f"the request is not signed by the key of device {device}",
                         "bad_signature")
    if not nonces.take(get_db(), _nonce_secret(), nonce):
        return api_error(401, "the request's nonce is unknown or was already used (a replayed "
                              "request, or this server restarted); ask for a new one",
                         "bad_nonce")
    g.sync_nonce = nonce
    if row[2] is not None:
        return api_error(403, f"this box was revoked by the coordinator on {row[2][:10]}; it can "
                              f"no longer sync with {_state().label} (its data already there is "
                              "kept); ask the coordinator", "revoked")
    g.sync_device = device
    return None


@bp.after_request
def _sign_answer(response: Response) -> Response:
    """Every answer carries the next nonce; JSON answers are signed by this server's key."""
    response.headers[HEADER_NEXT_NONCE] = nonces.issue(_nonce_secret())
    if not response.is_streamed and response.mimetype == "application/json":
        try:
            key = _key()
        except Exception:  # noqa: BLE001 - an answer without a signature beats no answer
            return response
        nonce = g.get("sync_nonce") or request.headers.get(HEADER_NONCE, "")
        digest = hashlib.sha256(response.get_data()).hexdigest()
        response.headers[HEADER_SIGNATURE] = base64.b64encode(
            key.sign(response_message(nonce, response.status_code, digest))).decode()
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(sqlite3.OperationalError)
def _busy(exc: sqlite3.OperationalError):
    if "locked" in str(exc) or "busy" in str(exc):
        return api_error(503, "this server is busy writing; try again in a moment", "busy")
    raise exc


# --- Endpoints ----------------------------------------------------------------------------

def _json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object")
    return body


def _vector_field(body: dict, name: str) -> dict[str, int]:
    value = body.get(name, {})
    if not syncmod.is_vector(value):
        raise InvalidInput(f"{name} must be a vector like {{\"DEVICE\": 120}}")
    return value


def _organisation(db) -> dict | None:
    org = syncmod.organisation_of(db)
    return {"uuid": org, "name": syncmod.organisation_name(db)} if org else None


@bp.get("/hello")
@allow(ANYONE)
def hello():
    """Who this box is, its clock and a nonce; the first request of a pairing or a sync."""
    db = get_db()
    key = _key()
    return jsonify({"protocol": PROTOCOL, "device_id": records.device_id(db),
                    "public_key": syncmod.public_key_text(key.public_key()),
                    "label": _state().label, "organisation": _organisation(db),
                    "now_ms": _now_ms(), "nonce": nonces.issue(_nonce_secret())})


@bp.post("/pair")
@allow(ANYONE)
def pair():
    """A box pairs with a one-time code; authenticated by the code (HMAC both ways)."""
    body = _json_body()
    nonce = body.get("nonce")
    if not isinstance(nonce, str) or not nonces.take(get_db(), _nonce_secret(), nonce):
        return api_error(401, "the pairing request's nonce is unknown or was already used; start "
                              "the pairing again", "bad_nonce")
    db = get_db()
    _key()
    who = f"{body.get('label') or 'a box'} ({body.get('device_id')})"
    try:
        reply = syncmod.accept_pairing(db, current_app.config["HOME"], body, nonce,
                                       hub_label=_state().label)
    except syncmod.SyncRefused as exc:
        syncmod.log_attempt(db, "pair", str(body.get("device_id"))[:80], request.remote_addr,
                            False, f"pairing refused for {who}: {exc.message}")
        raise
    syncmod.log_attempt(db, "pair", body["device_id"], request.remote_addr, True,
                        f"paired with {who}")
    return jsonify(reply)


@bp.post("/vector")
@allow(DEVICE)
def exchange_vector():
    """Exchange vectors and clocks; the answer lists the organisation's devices."""
    body = _json_body()
    theirs = _vector_field(body, "vector")
    their_now = body.get("now_ms")
    db = get_db()
    org = syncmod.organisation_of(db)
    their_org = body.get("organisation")
    if org and isinstance(their_org, str) and their_org != org:
        raise syncmod.OtherOrganisation(
            f"this box belongs to another organisation ({their_org}) than "
            f"{_state().label} ({org}); a box syncs only with its own organisation")
    version = body.get("version")
    # "done": the caller's last word after a whole sync, its vector now final. The hub's
    # page then shows the box up to date, with what it lacks counted from that vector.
    syncmod.record_peer(db, g.sync_device, vector=theirs,
                        version=version[:40] if isinstance(version, str) else None,
                        ok=True if body.get("done") is True else None)
    now = _now_ms()
    version = syncmod.devices_version(db)
    answer = {"device_id": records.device_id(db), "organisation": _organisation(db),
              "vector": syncmod.vector(db), "now_ms": now,
              "skew_ms": their_now - now if isinstance(their_now, int) else None,
              "devices_version": version,
              "site": syncmod.device_site(db, g.sync_device),  # the caller's, as assigned here
              "max_ops": current_app.config["SETTINGS"]["sync_batch_ops"]}
    if body.get("devices_version") != version:  # the list only when the caller lacks it
        answer["devices"] = syncmod.device_list(db)
    return jsonify(answer)


@bp.post("/changes")
@allow(DEVICE)
def changes():
    """What the caller lacks, streamed as length-prefixed gzip batches, then an empty frame."""
    body = _json_body()
    since = _vector_field(body, "since")
    cap = current_app.config["SETTINGS"]["sync_batch_ops"]
    max_ops = body.get("max_ops", cap)
    if not isinstance(max_ops, int) or isinstance(max_ops, bool) or max_ops < 1:
        raise InvalidInput("max_ops must be a positive whole number")
    max_ops = min(max_ops, cap)
    home = current_app.config["HOME"]
    path, busy_ms = current_app.config["DB_PATH"], current_app.config["DB_BUSY_TIMEOUT_MS"]
    site = syncmod.device_site(get_db(), g.sync_device)  # a box of a site gets only its own

    def frames():
        # The stream runs after the request has ended (its pooled connection given back), so
        # it reads through a connection of its own, closed when the stream ends or is cut.
        # One batch in memory at a time; Waitress holds the app back when the client is slow.
        db = dbmod.connect(path, busy_ms)
        try:
            # A caller of a site (the hub's view) gets its site's ops; any other caller, a
            # peer of this box's own site on the LAN, every op with moved learners' history.
            batches = (syncmod.changes_for_site(db, since, site, max_ops, home=home) if site
                       else syncmod.changes_for_peer(db, since, max_ops, home=home))
            for batch in batches:
                data = gzip.compress(batch.lines(), compresslevel=6, mtime=0)
                yield struct.pack(">I", len(data)) + data
            yield struct.pack(">I", 0)
        finally:
            db.close()

    return Response(frames(), mimetype=STREAM_TYPE)


@bp.post("/batches")
@allow(DEVICE)
def batches():
    """Verify one batch whole and apply it in one transaction; answer the new vector."""
    db = get_db()
    try:
        ops = parse_batch(request.get_data(cache=True))
        # Ops below this box's vector that it lacks (a moved learner's history, sent before
        # the put that brought them) are verified and applied too.
        result = syncmod.apply_received(db, ops, [], syncmod.trusted_keys(db),
                                        revoked=syncmod.revoked_devices(db))
    except syncmod.SyncRefused as exc:
        syncmod.log_attempt(db, "sync", g.sync_device, request.remote_addr, False,
                            f"refused a batch from {g.sync_device}: {exc.message}")
        raise
    held = {origin: {"first": first, "count": n, "reason": why, "words": syncmod.HELD_WORDS[why]}
            for origin, (first, n, why) in result.held.items()}
    return jsonify({"applied": result.applied, "duplicates": result.duplicates, "held": held,
                    "clock_ahead_ms": result.clock_ahead_ms, "vector": result.vector,
                    "now_ms": _now_ms()})


def init_app(app: Flask) -> None:
    from passerelle.server.sync import peers

    app.extensions["passerelle.sync_http"] = _State()
    settings = app.config.get("SETTINGS")
    if settings is not None:
        peers.LOG_KEEP_DAYS = settings["sync_log_days"]
    app.extensions["passerelle.device_auth"] = check_device
    csrf.exempt(bp)  # devices sign each request; no browser session is involved
    app.register_blueprint(bp)
