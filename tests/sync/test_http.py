"""Sync over HTTP on 127.0.0.1 with a real `passerelle serve` hub: pairing, syncing both ways,
box to box, and every request refused that should be (unsigned, replayed, unknown, revoked,
tampered)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import json
import time
import urllib.parse

import pytest
from passerelle.server import records
from passerelle.server import sync as syncmod
from passerelle.server.errors import ExitStatus, InvalidInput
from passerelle.server.people import accounts
from passerelle.server.sync import client as sync_client
from passerelle.server.sync.http import request_message


def test_boxes_pair_join_the_organisation_sync_both_ways_and_converge(http_kit, sync_cli):
    kit = http_kit
    a, b = kit.new("a"), kit.new("b")
    assert accounts.needs_setup(a.db)

    paired = kit.pair(a)
    assert paired["organisation"]["name"] == "Espace Numérique Test"
    kit.pair(b)
    hub = kit.hub_db()
    assert {d["device_id"]: d["label"] for d in syncmod.devices(hub)} == {a.device: "a", b.device: "b"}

    first = kit.sync(a)
    assert first.ok, first.summary()
    assert first.pulled.applied > 10 and first.pushed.applied == 0
    # A new box joined the hub's organisation: its people are there, no setup page any more.
    assert not accounts.needs_setup(a.db)
    assert syncmod.organisation_of(a.db) == syncmod.organisation_of(hub)

    # Every side writes; then a, b, a sync with the hub.
    a_learner = accounts.create_user(a.db, role="learner", display_name="Made on A", pin="1111")
    records.event(a.db, a_learner, {"pack_id": "p", "node_id": "n", "type": "completed"})
    for i in range(30):
        records.event(b.db, "someone", {"pack_id": "p", "node_id": f"n{i}", "type": "answer",
                                         "correct": True, "seconds": 5})
    records.put(hub, "class", "class-from-hub", {"name": "Made on the hub"})
    for box in (a, b, a):
        result = kit.sync(box)
        assert result.ok, result.summary()
    assert result.pulled.applied == 30 and result.pushed.applied == 0
    assert kit.dump(a.db) == kit.dump(b.db) == kit.dump(hub)
    again = kit.sync(b)
    assert again.ok and again.summary().endswith("nothing new either way")

    # Box to box on the LAN, without the hub: b trusts a because the hub vouched for it.
    records.put(a.db, "class", "class-from-a", {"name": "Made on A"})
    box_a = kit.start(home_dir=a.home)
    direct = kit.sync(b, box_a.url)
    assert direct.ok, direct.summary()
    assert direct.pulled.applied == 1
    assert records.load(b.db, "class", "class-from-a")["name"] == "Made on A"

    code, out, err = sync_cli(b.home, "status")
    assert code == 0, err
    assert "Peers:" in out and f"{kit.hub.url}" in out and "(default)" in out
    assert "operations waiting for it: 1" in out  # a's class, which the hub has not had yet


def test_pairing_refuses_wrong_expired_reused_codes_and_another_organisation(http_kit):
    kit = http_kit
    a, b, c = kit.new("a"), kit.new("b"), kit.new("c")
    good = kit.code()
    with pytest.raises(InvalidInput, match="10 letters"):
        sync_client.pair(a.db, a.home, kit.hub.url, "HELLO")
    with pytest.raises(sync_client.PeerRefused, match="code is wrong"):
        sync_client.pair(a.db, a.home, kit.hub.url, "22222-22222")
    assert syncmod.devices(kit.hub_db()) == []

    sync_client.pair(a.db, a.home, kit.hub.url, good)
    with pytest.raises(sync_client.PeerRefused, match="already used"):
        sync_client.pair(b.db, b.home, kit.hub.url, good)

    old = kit.code(now_ms=int(time.time() * 1000) - 11 * 60_000)
    with pytest.raises(sync_client.PeerRefused, match="expired"):
        sync_client.pair(b.db, b.home, kit.hub.url, old)

    # A few wrong tries burn every open code, the right one included.
    fresh = kit.code()
    for _ in range(syncmod.PAIR_MAX_FAILURES):
        with pytest.raises(sync_client.PeerRefused):
            sync_client.pair(b.db, b.home, kit.hub.url, "33333-33333")
    with pytest.raises(sync_client.PeerRefused, match="wrong"):
        sync_client.pair(b.db, b.home, kit.hub.url, fresh)

    accounts.setup(c.db, org_name="Another Space", languages=["fr"], signin_mode="pin",
                   profile_fields=None, display_name="Carl", username="carl",
                   password="another coordinator pass")
    with pytest.raises(syncmod.OtherOrganisation, match="own organisation"):
        sync_client.pair(c.db, c.home, kit.hub.url, kit.code())
    assert [d["device_id"] for d in syncmod.devices(kit.hub_db())] == [a.device]
    # The hub refuses too, should a box not check (its organisation is in what the code signs).
    with pytest.raises(syncmod.OtherOrganisation, match="one organisation"):
        syncmod.accept_pairing(kit.hub_db(), kit.hub_home, pair_request(kit, c), "n")


def pair_request(kit, box) -> dict:
    hub_id = syncmod.identity(kit.hub_db(), kit.hub_home)
    code = kit.code()
    transcript = syncmod.pair_transcript(hub_id["device_id"], hub_id["public_key"], box.device,
                                         box.public_key, box.name, syncmod.organisation_of(box.db), "n")
    return {"device_id": box.device, "public_key": box.public_key, "label": box.name,
            "organisation": syncmod.organisation_of(box.db),
            "mac": syncmod.pair_mac(syncmod.pairing_key(code, hub_id["device_id"]), "box", transcript)}


def test_a_man_in_the_middle_cannot_swap_the_hub_key(http_kit, monkeypatch):
    """A machine answering `hello` with its own key is caught: the hub's MAC covers the real key."""
    kit = http_kit
    a = kit.new("a")
    real_hello = sync_client.Peer.hello

    def swapped(self):
        info = real_hello(self)
        info["public_key"] = a.public_key  # any key that is not the hub's
        return info

    monkeypatch.setattr(sync_client.Peer, "hello", swapped)
    with pytest.raises(sync_client.PeerRefused, match="code is wrong"):
        kit.pair(a)
    assert syncmod.devices(a.db) == [] and syncmod.devices(kit.hub_db()) == []


class Raw:
    """Hand-made requests to the hub, to check what it refuses."""

    def __init__(self, url: str):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port

    def nonce(self) -> str:
        return self.send("GET", "/api/v1/sync/hello")[2]["nonce"]

    def send(self, method: str, path: str, body: bytes = b"", headers: dict | None = None):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        return response.status, response, parsed


def signed_headers(box, path: str, body: bytes, nonce: str, key=None) -> dict:
    key = key or syncmod.device_key(box.db, box.home)
    message = request_message("POST", path, hashlib.sha256(body).hexdigest(), nonce, box.device)
    return {"X-Passerelle-Device": box.device, "X-Passerelle-Nonce": nonce,
            "X-Passerelle-Signature": base64.b64encode(key.sign(message)).decode(),
            "Content-Type": "application/json"}


def test_unsigned_replayed_unknown_and_forged_requests_are_refused(http_kit):
    kit = http_kit
    a, stranger = kit.new("a"), kit.new("stranger")
    kit.pair(a)
    raw = Raw(kit.hub.url)
    path = "/api/v1/sync/vector"
    body = json.dumps({"vector": {}, "now_ms": int(time.time() * 1000)}).encode()

    status, _, answer = raw.send("POST", path, body, {"Content-Type": "application/json"})
    assert status == 401 and answer["error"]["code"] == "unsigned"

    headers = signed_headers(a, path, body, raw.nonce())
    status, response, answer = raw.send("POST", path, body, headers)
    assert status == 200 and answer["device_id"] == records.device_id(kit.hub_db())
    assert response.getheader("X-Passerelle-Next-Nonce")
    status, _, answer = raw.send("POST", path, body, headers)  # the same request again
    assert status == 401 and answer["error"]["code"] == "bad_nonce"
    assert "already used" in answer["error"]["message"]

    status, _, answer = raw.send("POST", path, body, signed_headers(stranger, path, body, raw.nonce()))
    assert status == 401 and answer["error"]["code"] == "unknown_device"
    assert "not paired" in answer["error"]["message"]

    # a's device id, another key; then a's key over another body.
    forged = signed_headers(a, path, body, raw.nonce(), key=syncmod.device_key(stranger.db, stranger.home))
    status, _, answer = raw.send("POST", path, body, forged)
    assert status == 401 and answer["error"]["code"] == "bad_signature"
    headers = signed_headers(a, path, body, raw.nonce())
    status, _, answer = raw.send("POST", path, body.replace(b"{}", b'{"x": 1}'), headers)
    assert status == 401 and answer["error"]["code"] == "bad_signature"
    # A nonce this hub never issued.
    status, _, answer = raw.send("POST", path, body, signed_headers(a, path, body, "made-up"))
    assert status == 401 and answer["error"]["code"] == "bad_nonce"


def test_a_tampered_batch_is_refused_with_nothing_applied(http_kit):
    kit = http_kit
    a, b = kit.new("a"), kit.new("b")
    kit.pair(a)
    kit.pair(b)
    for i in range(5):
        records.put(a.db, "user", f"a-{i}", {"role": "learner", "display_name": f"Learner {i}"})
    syncmod.sign_pending(a.db, a.home)
    (batch,) = syncmod.changes_for(a.db, {}, home=a.home)
    raw = Raw(kit.hub.url)
    path = "/api/v1/sync/batches"
    hub = kit.hub_db()
    before = kit.dump(hub)

    def post(lines: bytes, box=a):
        data = gzip.compress(lines)
        headers = signed_headers(box, path, data, raw.nonce())
        headers["Content-Type"] = "application/x-passerelle-batch"
        return raw.send("POST", path, data, headers)

    # One changed letter in the fourth operation's payload.
    lines = batch.lines().replace(b"Learner 3", b"Learner 8")
    status, _, answer = post(lines)
    assert status == 400 and answer["error"]["code"] == "sync_refused"
    assert f"operation {a.device}:4 is not signed by device {a.device}" in answer["error"]["message"]
    # b relaying a's operations with its own signatures: a forgery.
    forged = [syncmod.SignedOp.from_line(line) for line in batch.lines().splitlines()]
    b_key = syncmod.device_key(b.db, b.home)
    for op in forged:
        op.signature = b_key.sign(op.message())
    status, _, answer = post("".join(op.line() + "\n" for op in forged).encode(), box=b)
    assert status == 400 and "forged" in answer["error"]["message"]
    status, _, answer = post(b"garbage\n")
    assert status == 400
    assert kit.dump(hub) == before

    status, _, answer = post(batch.lines())  # the real batch goes through, once
    assert status == 200 and answer["applied"] == 5 and answer["vector"][a.device] == 5
    status, _, answer = post(batch.lines())
    assert status == 200 and (answer["applied"], answer["duplicates"]) == (0, 5)
    log = hub.execute("SELECT message FROM sync_log WHERE ok = 0 ORDER BY id").fetchall()
    assert any("refused a batch" in m for (m,) in log)


def test_a_revoked_box_is_refused_and_told_so_in_plain_words(http_kit, sync_cli):
    kit = http_kit
    a, b = kit.new("a"), kit.new("b")
    kit.pair(a)
    kit.pair(b)
    assert kit.sync(a).ok and kit.sync(b).ok
    records.put(a.db, "class", "a-class", {"name": "before revocation"})
    assert kit.sync(a).ok

    code, out, err = sync_cli(kit.hub_home, "revoke", a.device)
    assert code == 0 and "can no longer sync" in out
    records.put(a.db, "class", "a-class-2", {"name": "after revocation"})
    refused = kit.sync(a)
    assert not refused.ok
    assert isinstance(refused.error, sync_client.PeerRefused)
    assert "this box was revoked by the coordinator on" in refused.error.message
    assert records.load(kit.hub_db(), "class", "a-class-2") is None
    assert records.load(kit.hub_db(), "class", "a-class") is not None  # kept: learners' data

    code, out, err = sync_cli(a.home, "status")
    assert "last error" in out and "revoked by the coordinator" in out
    code, out, err = sync_cli(a.home, "now")
    assert code == ExitStatus.INVALID_INPUT and "revoked by the coordinator" in err
    assert err.count("\n") == 1

    # b learns the revocation from the hub: a is refused on b too.
    result = kit.sync(b)
    assert result.ok and any("revoked" in note for note in result.notes)
    assert syncmod.revoked_devices(b.db).keys() == {a.device}
    assert a.device not in syncmod.trusted_keys(b.db)


def test_a_box_clock_three_days_ahead_is_held_back_and_reported(http_kit):
    kit = http_kit
    a = kit.new("a")
    kit.pair(a)
    ahead_s = 3 * 24 * 3600
    # The box's clock ran 3 days ahead while it wrote: its hybrid clock carries the stamps.
    a.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('hlc', ?)",
                 [f"{int((time.time() + ahead_s) * 1000)}.0"])
    a.db.conn.commit()
    records.put(a.db, "class", "future-class", {"name": "written 3 days ahead"})
    result = kit.sync(a, clock=lambda: time.time() + ahead_s)
    assert result.ok, result.summary()
    assert result.pulled.applied > 0  # the hub's data still comes down
    assert result.pushed.held == {a.device: (1, 1, "clock ahead")}
    words = result.summary()
    assert "this box's clock is 3.0 days ahead of" in words
    assert "held back 1 operations of this box from #1: they are stamped 3.0 days ahead" in words
    assert records.load(kit.hub_db(), "class", "future-class") is None
    peer = next(p for p in syncmod.peers(a.db) if p["device_id"] != a.device)
    assert peer["ops_waiting"] == 1  # still waiting, not lost


def test_device_endpoints_are_not_for_browsers(as_user):
    for who, status in ((None, 401), ("cora", 403)):
        response = as_user(who).post("/api/v1/sync/vector", json={"vector": {}})
        assert response.status_code == status
        assert response.get_json()["error"]["code"] == ("unsigned" if who is None else "devices_only")


def test_code_pair_now_and_status_on_the_command_line(http_kit, sync_cli):
    kit = http_kit
    a = kit.new("a")
    code, out, err = sync_cli(kit.hub_home, "code", "--json")
    assert code == 0, err
    made = json.loads(out)
    assert len(made["code"]) == 11 and made["minutes"] == 10
    code, out, err = sync_cli(kit.hub_home, "code")
    assert "pairing code: " in out and "On the box: passerelle sync pair http://" in out

    code, out, err = sync_cli(a.home, "now")
    assert code == ExitStatus.NOT_FOUND and "pair it first" in err
    code, out, err = sync_cli(a.home, "pair", kit.hub.url, made["code"].lower().replace("-", " "),
                              "--label", "Box Molenbeek")
    assert code == 0, err
    assert "paired with" in out and "organisation Espace Numérique Test" in out
    code, out, err = sync_cli(a.home, "now")
    assert code == 0, err
    assert out.startswith("synced with ") and "received " in out
    code, out, err = sync_cli(a.home, "now", "--json")
    assert code == 0 and json.loads(out)["message"].endswith("nothing new either way")

    code, out, err = sync_cli(kit.hub_home, "status")
    assert "Box Molenbeek" in out and "operations waiting for it: 0" in out
    code, out, err = sync_cli(a.home, "status", "--json")
    peers = json.loads(out)["peers"]
    assert [p["url"] for p in peers] == [kit.hub.url] and peers[0]["last_ok_at"]


def test_nonces_are_single_use_expire_and_are_shared_by_processes(make_boxes):
    """A nonce made by one process (one connection) is taken once through another, never
    twice; expired, altered or foreign nonces are refused; there is no cap."""
    from passerelle.server import db as dbmod
    from passerelle.server.sync import nonces

    box = make_boxes(1, trusted=False)[0]
    secret = nonces.secret_from_key(syncmod.device_key(box.db, box.home))
    other = dbmod.connect(box.home / "passerelle.db")  # a second process's connection
    try:
        now = 1_000_000
        first = nonces.issue(secret, ttl_s=60, now_ms=now)
        assert nonces.valid(secret, first, now_ms=now)
        assert nonces.take(other, secret, first, now_ms=now)
        assert not nonces.take(box.db, secret, first, now_ms=now)  # a replay, from anywhere
        many = [nonces.issue(secret, ttl_s=60, now_ms=now) for _ in range(20_000)]
        assert len(set(many)) == 20_000 and nonces.take(box.db, secret, many[0], now_ms=now)
        assert not nonces.take(box.db, secret, many[1], now_ms=now + 61_000)  # expired
        body, _, mac = many[2].rpartition(".")
        assert not nonces.take(box.db, secret, "f" + body + "." + mac, now_ms=now)  # altered
        assert not nonces.take(box.db, b"another server" * 2, many[3], now_ms=now)
        assert nonces.purge(other, now_ms=now + 61_000) == 2
        assert box.db.execute("SELECT count(*) FROM sync_nonces").fetchone()[0] == 0
    finally:
        other.close()


