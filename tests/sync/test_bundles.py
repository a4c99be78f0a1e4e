"""Bundles and batches: refused when altered, forged, untrusted, revoked or foreign; clocks; keys."""

from __future__ import annotations

import base64
import json
import os
import stat
import zipfile

import pytest
from passerelle.server import records
from passerelle.server import sync as syncmod

DAY_MS = 24 * 3600 * 1000


def some_ops(box, n=5, name="Amina"):
    for i in range(n):
        records.put(box.db, "user", f"{box.name}-u{i}", {"role": "learner", "display_name": f"{name} {i}"})
    records.event(box.db, f"{box.name}-u0", {"pack_id": "p", "node_id": "n", "type": "answer",
                                             "correct": True, "seconds": 30})


def rewrite_member(path, name, transform):
    """A copy of the zip with one member's bytes changed (a valid zip: only our hashes catch it)."""
    out = path.with_name("altered-" + path.name)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            dst.writestr(info, transform(data) if info.filename == name else data)
    return out


def test_device_key_is_private_and_never_in_the_database(make_boxes):
    (a,) = make_boxes(1)
    key_file = a.home / "device.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    pem = key_file.read_bytes()
    dumped = "\n".join(repr(row) for table in a.db.table_names()
                       for row in a.db.execute(f"SELECT * FROM {table}").fetchall())
    assert pem.decode().splitlines()[1] not in dumped
    assert a.public_key in dumped  # the public half is in meta
    assert a.public_key == syncmod.identity(a.db, a.home)["public_key"]  # stable across calls


def test_bundle_roundtrip_is_idempotent_and_remembers_the_peer(make_boxes, tmp_path, kit):
    a, b = make_boxes(2)
    some_ops(a)
    info = syncmod.export_bundle(a.db, a.home, tmp_path)
    assert info.path.name.startswith(f"passerelle-{a.device}-") and info.path.suffix == ".bundle"
    assert not list(tmp_path.glob(".*.partial"))
    first = syncmod.import_bundle(b.db, info.path)
    assert (first.applied, first.duplicates) == (6, 0)
    again = syncmod.import_bundle(b.db, info.path)
    assert (again.applied, again.duplicates) == (0, 6)
    assert kit.dump(a.db) == kit.dump(b.db)
    assert syncmod.peer_vector(b.db, a.device) == {a.device: 6}
    with zipfile.ZipFile(info.path) as zf:
        manifest = json.loads(zf.read("bundle.json"))
    assert manifest["from_device"] == a.device and manifest["have"] == {a.device: 6}
    assert [e["name"] for e in manifest["batches"]] == ["batches/0001.jsonl.gz"]


def test_a_flipped_byte_in_a_batch_is_refused_and_nothing_applied(make_boxes, tmp_path, kit):
    a, b = make_boxes(2)
    some_ops(a, 20)
    path = syncmod.export_bundle(a.db, a.home, tmp_path / "a.bundle", max_ops=5).path
    before = kit.dump(b.db)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("batches/0003.jsonl.gz")
    data = bytearray(path.read_bytes())
    offset = info.header_offset + 30 + len(info.filename) + len(info.extra) + 10
    data[offset] ^= 0x01
    flipped = tmp_path / "flipped.bundle"
    flipped.write_bytes(bytes(data))
    with pytest.raises(syncmod.SyncRefused, match="altered"):
        syncmod.import_bundle(b.db, flipped)
    assert kit.dump(b.db) == before  # not even the two valid batches before it


def test_a_rewritten_batch_with_a_valid_zip_is_refused(make_boxes, tmp_path, kit):
    import gzip

    a, b = make_boxes(2)
    some_ops(a)
    path = syncmod.export_bundle(a.db, a.home, tmp_path / "a.bundle").path
    altered = rewrite_member(path, "batches/0001.jsonl.gz", lambda d: gzip.compress(
        gzip.decompress(d).replace(b"Amina 1", b"Amina X")))
    before = kit.dump(b.db)
    with pytest.raises(syncmod.SyncRefused, match="SHA-256"):
        syncmod.import_bundle(b.db, altered)
    assert kit.dump(b.db) == before


def test_an_edited_bundle_json_is_refused(make_boxes, tmp_path, kit):
    import gzip
    import hashlib

    a, b = make_boxes(2)
    some_ops(a)
    path = syncmod.export_bundle(a.db, a.home, tmp_path / "a.bundle").path
    # Alter a batch *and* put its new hash in bundle.json: the signature catches it.
    with zipfile.ZipFile(path) as zf:
        batch = gzip.compress(gzip.decompress(zf.read("batches/0001.jsonl.gz")).replace(b"Amina", b"Eve  "))
        manifest = json.loads(zf.read("bundle.json"))
    manifest["batches"][0]["sha256"] = hashlib.sha256(batch).hexdigest()
    step = rewrite_member(path, "batches/0001.jsonl.gz", lambda _: batch)
    edited = rewrite_member(step, "bundle.json", lambda _: json.dumps(manifest).encode())
    before = kit.dump(b.db)
    with pytest.raises(syncmod.SyncRefused, match="bundle.json is not signed"):
        syncmod.import_bundle(b.db, edited)
    assert kit.dump(b.db) == before


def test_a_relay_cannot_forge_another_boxs_op(make_boxes, tmp_path, kit):
    a, relay, c = make_boxes(3)
    some_ops(a, 2)
    kit.direct(a, relay)
    some_ops(relay, 2)
    # The relay invents a third op "from a", signed with its own key, and ships it honestly signed.
    key = syncmod.device_key(relay.db, relay.home)
    with records.write_tx(relay.db):
        version = records.next_version(relay.db, a.device)
        forged = records.Op(a.device, 4, version, "put", "user", f"{a.name}-u0",
                            {"role": "coordinator", "display_name": "Amina 0"})
        records.apply(relay.db, forged)
        relay.db.execute("INSERT INTO op_signatures VALUES (?, ?, ?)",
                         [a.device, 4, key.sign(syncmod.op_message(forged))])
    path = syncmod.export_bundle(relay.db, relay.home, tmp_path / "relay.bundle").path
    before = kit.dump(c.db)
    with pytest.raises(syncmod.SyncRefused, match=f"not signed by device {a.device}"):
        syncmod.import_bundle(c.db, path)
    assert kit.dump(c.db) == before
    # Over the direct path too: the whole batch is refused.
    batches = list(syncmod.changes_for(relay.db, {}, home=relay.home))
    with pytest.raises(syncmod.SyncRefused):
        syncmod.apply_batch(c.db, batches[0].ops, syncmod.trusted_keys(c.db))
    assert kit.dump(c.db) == before


def test_untrusted_and_revoked_devices_are_refused(make_boxes, tmp_path, kit, template_db):
    a, b = make_boxes(2)
    (stranger,) = make_boxes(1, trusted=False)
    some_ops(stranger)
    some_ops(a)
    before = kit.dump(b.db)
    path = syncmod.export_bundle(stranger.db, stranger.home, tmp_path / "s.bundle").path
    with pytest.raises(syncmod.SyncRefused, match="does not trust"):
        syncmod.import_bundle(b.db, path)
    old = syncmod.export_bundle(a.db, a.home, tmp_path / "a1.bundle").path
    syncmod.import_bundle(b.db, old)
    some_ops(a, 3, name="After")
    new = syncmod.export_bundle(a.db, a.home, tmp_path / "a2.bundle").path
    kept = kit.dump(b.db)
    assert syncmod.revoke(b.db, a.device)["ops_kept"] == 6
    with pytest.raises(syncmod.SyncRefused, match="revoked"):
        syncmod.import_bundle(b.db, new)
    assert kit.dump(b.db) == kept  # earlier ops kept, nothing new
    assert kept != before
    # Relayed by a trusted box, a revoked device's *new* ops are held back; the relay's own apply.
    (relay,) = make_boxes(1, trusted=False)
    kit.trust_all([relay, a])
    syncmod.trust(b.db, relay.device, relay.public_key)
    syncmod.trust(relay.db, b.device, b.public_key)
    kit.direct(a, relay)
    some_ops(relay, 2)
    result = kit.direct(relay, b)
    assert result.applied == 3 and result.held[a.device][1:] == (4, "revoked")
    # Untrusted origins relayed are held back the same way, not applied.
    status = syncmod.status(b.db, b.home)
    assert any(d["device_id"] == a.device and d["revoked_at"] for d in status["devices"])


def test_a_box_whose_clock_is_three_days_ahead(make_boxes, tmp_path, kit):
    a, b = make_boxes(2)
    some_ops(a, 2)  # written while its clock was right
    now = records.parse_version(records.ops_since(a.db, a.device, 0)[-1].version)[0]
    with records.write_tx(a.db):  # then its clock jumps three days ahead
        a.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('hlc', ?)",
                     [f"{now + 3 * DAY_MS}.0"])
    records.put(a.db, "user", "late", {"role": "learner", "display_name": "From the future"})
    records.put(a.db, "user", "later", {"role": "learner", "display_name": "Also"})
    path = syncmod.export_bundle(a.db, a.home, tmp_path / "a.bundle").path
    result = syncmod.import_bundle(b.db, path, now_ms=now)
    assert result.applied == 3  # the ops stamped in the present
    assert result.held == {a.device: (4, 2, "clock ahead")}
    assert 2.9 * DAY_MS < result.clock_ahead_ms[a.device] < 3.1 * DAY_MS
    assert "3.0 days ahead" in result.summary()
    assert records.load(b.db, "user", "late") is None
    # b's own clock was not dragged three days ahead by the ops it held back.
    assert int(b.db.execute("SELECT value FROM meta WHERE key = 'hlc'").fetchone()[0].split(".")[0]) < now + DAY_MS
    assert syncmod.vector(b.db)[a.device] == 3
    # Once b's time reaches them (or within a day of them), they are accepted.
    later = syncmod.import_bundle(b.db, path, now_ms=now + 2 * DAY_MS + 3600_000)
    assert later.applied == 2 and not later.held
    assert kit.dump(a.db) == kit.dump(b.db)


def test_another_organisations_bundle_is_refused(make_boxes, tmp_path):
    a, b = make_boxes(2)
    records.put(a.db, "organisation", "org-a", {"name": "A"})
    records.put(b.db, "organisation", "org-b", {"name": "B"})
    path = syncmod.export_bundle(a.db, a.home, tmp_path / "a.bundle").path
    with pytest.raises(syncmod.SyncRefused, match="organisation org-a"):
        syncmod.import_bundle(b.db, path)


def test_encrypted_bundle(make_boxes, tmp_path, kit):
    a, b = make_boxes(2)
    some_ops(a)
    path = syncmod.export_bundle(a.db, a.home, tmp_path / "a.bundle", passphrase="correct horse").path
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        blob = zf.read(names[0])
    assert names[0].endswith(".jsonl.gz.enc") and b"Amina" not in blob
    with pytest.raises(syncmod.SyncRefused, match="encrypted"):
        syncmod.import_bundle(b.db, path)
    with pytest.raises(syncmod.SyncRefused, match="passphrase is wrong"):
        syncmod.import_bundle(b.db, path, passphrase="wrong")
    assert syncmod.import_bundle(b.db, path, passphrase="correct horse").applied == 6
    assert kit.dump(a.db) == kit.dump(b.db)


def test_a_half_written_bundle_never_looks_whole(make_boxes, tmp_path, kit):
    a, b = make_boxes(2)
    some_ops(a, 30)
    path = syncmod.export_bundle(a.db, a.home, tmp_path / "a.bundle", max_ops=4).path
    data = path.read_bytes()
    before = kit.dump(b.db)
    for cut in (0, 100, len(data) // 2, len(data) - 30):
        partial = tmp_path / f"cut{cut}.bundle"
        partial.write_bytes(data[:cut])
        with pytest.raises(syncmod.SyncRefused, match="not a whole sync bundle"):
            syncmod.import_bundle(b.db, partial)
    assert kit.dump(b.db) == before
    # An export that fails midway leaves no file at the destination and no partial file.
    def boom(*_a, **_k):
        raise OSError("the stick was pulled out")
    original = zipfile.ZipFile.writestr
    zipfile.ZipFile.writestr = boom
    try:
        with pytest.raises(OSError):
            syncmod.export_bundle(a.db, a.home, tmp_path / "never.bundle")
    finally:
        zipfile.ZipFile.writestr = original
    assert not (tmp_path / "never.bundle").exists() and not list(tmp_path.glob(".*partial"))


def test_batches_are_bounded_in_count_and_bytes(make_boxes):
    (a,) = make_boxes(1)
    for i in range(60):
        records.put(a.db, "user", f"u{i}", {"role": "learner", "display_name": "x" * (i * 50)})
    batches = list(syncmod.changes_for(a.db, {}, max_ops=7, max_bytes=20_000, home=a.home))
    assert all(len(b.ops) <= 7 and (b.nbytes <= 20_000 or len(b.ops) == 1) for b in batches)
    assert all(len(b.lines()) <= 20_000 for b in batches)
    seqs = [s.seq for b in batches for s in b.ops]
    assert seqs == list(range(1, 61))
    assert list(syncmod.changes_for(a.db, {a.device: 60}, home=a.home)) == []
    assert [s.seq for b in syncmod.changes_for(a.db, {a.device: 55}) for s in b.ops] == [56, 57, 58, 59, 60]


def test_a_gap_is_held_until_the_missing_ops_arrive(make_boxes, kit):
    a, b = make_boxes(2)
    some_ops(a, 9)
    batches = [x.ops for x in syncmod.changes_for(a.db, {}, max_ops=4, home=a.home)]
    keys = syncmod.trusted_keys(b.db)
    late = syncmod.apply_batch(b.db, batches[1], keys)
    assert late.applied == 0 and late.held == {a.device: (5, 4, "gap")}
    assert syncmod.apply_batch(b.db, batches[0], keys).vector == {a.device: 4}
    for ops in batches:
        syncmod.apply_batch(b.db, ops, keys)
    assert kit.dump(a.db) == kit.dump(b.db)


def test_an_event_larger_than_any_tablet_may_send_is_held_back(make_boxes, kit):
    """A box that stored a huge event (hostile, or from before events were bounded) cannot push
    it on: it stays out of the log here, and that box's later operations wait behind it."""
    from passerelle.server.learning import events

    a, b = make_boxes(2)
    some_ops(a, 1)
    records.event(a.db, "a-u0", {"event_id": "huge", "pack_id": "p", "node_id": "n",
                                 "type": "answer", "answer": "x" * (events.MAX_EVENT_BYTES + 1)})
    records.put(a.db, "user", "after", {"role": "learner", "display_name": "After"})
    result = kit.direct(a, b)
    assert result.applied == 2 and result.held == {a.device: (3, 2, "event too large")}
    assert "larger than any box accepts" in syncmod.HELD_WORDS["event too large"]
    biggest = b.db.execute("SELECT max(length(payload)) FROM ops").fetchone()[0]
    assert biggest < 1000 and records.load(b.db, "user", "after") is None


def test_signed_bytes_are_the_canonical_op_whatever_the_path(make_boxes):
    (a,) = make_boxes(1)
    payload = {"display_name": "Zoë «ar» عربي \u2028", "n": 0.1, "z": [1, {"b": None, "a": True}],
               "role": "learner"}
    op = records.put(a.db, "user", "u1", payload)
    (batch,) = syncmod.changes_for(a.db, {}, home=a.home)
    from_db = batch.ops[0]
    from_line = syncmod.SignedOp.from_line(from_db.line())
    assert from_db.message() == from_line.message() == syncmod.op_message(op)
    assert json.loads(from_db.line())["payload"] == payload == from_line.payload
    assert from_line.op == op


def test_lines_signatures_are_base64_and_malformed_lines_refused(make_boxes):
    (a,) = make_boxes(1)
    some_ops(a, 1)
    (batch,) = syncmod.changes_for(a.db, {}, home=a.home)
    line = json.loads(batch.ops[0].line())
    assert len(base64.b64decode(line["signature"])) == 64
    line["seq"] = "1"
    with pytest.raises(syncmod.SyncRefused, match="malformed"):
        syncmod.SignedOp.from_line(json.dumps(line))


def test_export_of_200000_ops_streams_in_bounded_memory(template_db, tmp_path):
    """A subprocess fills a log of 200,000 ops, then streams it; its peak RSS barely moves."""
    import subprocess
    import sys

    script = f"""
import json, resource, shutil, sys
from pathlib import Path
from passerelle.server import db as dbmod, sync
home = Path({str(tmp_path)!r}) / 'big'
home.mkdir()
shutil.copy({str(template_db)!r}, home / 'passerelle.db')
db = dbmod.connect(home / 'passerelle.db')
db.execute("UPDATE meta SET value = 'big' WHERE key = 'device_id'")
# The subject index is not used by export; without it the fill takes a third of the time.
db.execute("DROP INDEX ops_subject")
payload = json.dumps({{"role": "learner", "display_name": "A learner with a longish name"}},
                     sort_keys=True, separators=(",", ":"))
with db.conn:
    db.conn.executemany("INSERT INTO ops VALUES ('big', ?, ?, 'put', 'user', ?, ?, NULL)",
        ((i, f"{{1700000000000 + i:013d}}.00000.big", f"user-{{i:07d}}", payload)
         for i in range(1, 200_001)))
    # Pre-made signatures: this test measures streaming, not 200,000 Ed25519 signatures.
    db.conn.executemany("INSERT INTO op_signatures VALUES ('big', ?, ?)",
                        ((i, bytes(64)) for i in range(1, 200_001)))
    db.execute("INSERT INTO heads VALUES ('big', 200000)")
sync.device_key(db, home)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
info = sync.export_bundle(db, home, home / 'out.bundle', max_ops=5000, log=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import zipfile
entries = json.loads(zipfile.ZipFile(info.path).read('bundle.json'))['batches']
print(json.dumps({{"count": sum(e['ops'] for e in entries), "batches": len(entries),
                   "biggest": max(e['ops'] for e in entries), "base_kb": base,
                   "growth_kb": peak - base, "bundle_ops": info.ops}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         check=True)
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["count"] == figures["bundle_ops"] == 200_000
    assert figures["biggest"] <= 5000 and figures["batches"] == 40
    assert figures["growth_kb"] < 60_000, figures  # a few batches' worth, not 200,000 ops
    assert os.path.exists(tmp_path / "big" / "out.bundle")


def test_the_verifier_agrees_with_the_signer_and_refuses_what_is_not_a_signature():
    """Ops are signed with ``cryptography`` (OpenSSL) and checked with libsodium: a signature
    one makes, the other accepts; a changed byte, a short signature, another key's signature
    or a key of small order is refused with the same exception as before."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    def raw(key):
        return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    verifier = syncmod.make_verifier(raw(key))
    for message in (b"", b"passerelle-op/1\n{}", os.urandom(5000)):
        signature = key.sign(message)
        verifier.verify(signature, message)  # accepted
        altered = bytes([signature[0] ^ 1]) + signature[1:]
        for bad_signature, bad_message in ((altered, message), (signature, message + b"x"),
                                           (signature[:63], message), (b"", message),
                                           (other.sign(message), message)):
            with pytest.raises(InvalidSignature):
                verifier.verify(bad_signature, bad_message)
    # The identity point as a key: every "signature" with R = identity, S = 0 would pass a
    # lax check; it is refused.
    identity = bytes([1]) + bytes(31)
    with pytest.raises(InvalidSignature):
        syncmod.make_verifier(identity).verify(identity + bytes(32), b"anything")
    for not_a_key in (b"", bytes(31), "x" * 32):
        with pytest.raises(ValueError):
            syncmod.make_verifier(not_a_key)


def test_a_large_batch_is_verified_on_several_threads_and_the_first_forgery_is_named(monkeypatch):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from passerelle.server.sync import ops as opsmod

    monkeypatch.setattr(opsmod, "VERIFY_THREADS", 3)
    key = Ed25519PrivateKey.generate()
    verifier = syncmod.make_verifier(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    class Signed:
        def __init__(self, seq):
            self.origin, self.seq, self.text = "box", seq, f"op {seq}".encode()
            self.signature = key.sign(self.text)

        def message(self):
            return self.text

    batch = [(Signed(seq), verifier) for seq in range(1, 1601)]
    assert opsmod.first_forged(batch) is None
    for seq in (1500, 700):  # forged in the third part, then also in the second
        batch[seq - 1][0].text += b"!"
        assert opsmod.first_forged(batch).seq == seq
