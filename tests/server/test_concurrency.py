"""Many writers at once on a hub on PostgreSQL: nothing lost, nothing numbered twice.

SQLite admits one writer at a time, so these writes were correct on a box by construction;
on PostgreSQL they hold because of the ``heads`` row locks, the conditional upserts of the
fold and ``FOR UPDATE`` on pairing codes. Each test starts its writers on a barrier, each with
a connection of its own, as a hub's request threads (or processes) would.
"""

from __future__ import annotations

import random
import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from passerelle.server import db as dbmod
from passerelle.server import records
from passerelle.server import sync as syncmod
from passerelle.server.people import accounts
from passerelle.server.records import Op


def run_together(n: int, work) -> list:
    """``work(i)`` in ``n`` threads started at once; their results (an exception re-raised)."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 (reported to the test below)
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.fixture
def hub_url(postgresql_url):
    return postgresql_url


def test_sixteen_threads_writing_own_ops_number_them_contiguously(hub_url):
    per_thread = 15

    def work(i: int) -> int:
        db = dbmod.connect(hub_url)
        try:
            for k in range(per_thread):
                if k % 2:
                    records.put(db, "user", f"u-{i}-{k}", {"role": "learner", "display_name": "x"})
                else:
                    records.event(db, f"u-{i}", {"pack_id": "p", "node_id": f"n{k}",
                                                 "type": "progress", "progress": 0.5})
            return per_thread
        finally:
            db.close()

    results = run_together(16, work)
    assert all(r == per_thread for r in results), results
    db = dbmod.connect(hub_url)
    me = records.device_id(db)
    seqs = [r[0] for r in db.execute("SELECT seq FROM ops WHERE origin = ? ORDER BY seq", [me])]
    assert seqs == list(range(1, 16 * per_thread + 1))  # contiguous, none lost
    assert records.version_vector(db) == {me: 16 * per_thread}
    versions = [r[0] for r in db.execute("SELECT version FROM ops ORDER BY seq")]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    db.close()


@pytest.fixture
def relayed(template_db, tmp_path):
    """A box's 120 signed operations, as a hub receives them relayed by other boxes."""
    import shutil

    home = tmp_path / "source"
    home.mkdir()
    shutil.copy(template_db, home / "passerelle.db")
    box = dbmod.connect(home / "passerelle.db")
    box.execute("UPDATE meta SET value = 'source-box' WHERE key = 'device_id'")
    box.conn.commit()
    for i in range(120):
        records.put(box, "user", f"learner-{i % 30}", {"role": "learner", "display_name": f"v{i}"})
    ops = [op for batch in syncmod.changes_for(box, {}, home=home) for op in batch.ops]
    key = syncmod.identity(box, home)["public_key"]
    box.close()
    return ops, key


def test_fifty_concurrent_pushes_of_one_origin_apply_it_once_and_contiguously(hub_url, relayed):
    ops, key = relayed
    db = dbmod.connect(hub_url)
    syncmod.trust(db, "source-box", key, label="source")
    trusted = syncmod.trusted_keys(db)
    db.close()
    rng = random.Random(7)
    # Each push carries the origin from its start up to a random point (boxes that relayed
    # different amounts of it); some carry all of it.
    ends = [len(ops) if i % 5 == 0 else rng.randint(1, len(ops)) for i in range(50)]

    def work(i: int):
        conn = dbmod.connect(hub_url)
        try:
            return syncmod.apply_batch(conn, ops[:ends[i]], trusted)
        finally:
            conn.close()

    results = run_together(50, work)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sum(r.applied for r in results) == len(ops)
    db = dbmod.connect(hub_url)
    assert syncmod.vector(db)["source-box"] == len(ops)
    seqs = [r[0] for r in db.execute("SELECT seq FROM ops WHERE origin = 'source-box' ORDER BY seq")]
    assert seqs == list(range(1, len(ops) + 1))
    assert db.execute("SELECT count(*) FROM op_signatures WHERE origin = 'source-box'"
                      ).fetchone()[0] == len(ops)
    db.close()


def test_a_thousand_races_of_two_puts_the_higher_version_always_wins(hub_url):
    races = 1000
    rng = random.Random(11)
    # Two origins put the same record at once, with versions in a random order.
    plans = []
    for i in range(races):
        a, b = rng.sample(range(1_700_000_000_000, 1_700_000_100_000), 2)
        plans.append((f"record-{i}", f"{a:013d}.00000.origin-a", f"{b:013d}.00000.origin-b"))
    barrier = threading.Barrier(2)
    errors: list = []

    def writer(side: int) -> None:
        db = dbmod.connect(hub_url)
        try:
            for i, (uuid, *versions) in enumerate(plans):
                version = versions[side]
                op = Op(f"origin-{'ab'[side]}", i + 1, version, "put", "class", uuid,
                        {"name": f"written by {'ab'[side]}"})
                barrier.wait()
                with records.write_tx(db):
                    records.apply(db, op)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
            barrier.abort()
        finally:
            db.close()

    threads = [threading.Thread(target=writer, args=(side,)) for side in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    db = dbmod.connect(hub_url)
    found = dict(db.execute("SELECT uuid, version FROM classes").fetchall())
    wrong = [uuid for uuid, a, b in plans if found[uuid] != max(a, b)]
    assert wrong == []
    assert len(found) == races
    db.close()


def test_one_pairing_code_used_at_once_by_ten_boxes_pairs_exactly_one(hub_url, tmp_path):
    hub_home = tmp_path / "hub"
    db = dbmod.connect(hub_url)
    accounts.setup(db, org_name="Hub", languages=["fr"], signin_mode="pin", profile_fields=None,
                   display_name="Cora", username="cora", password="coordinator passphrase")
    code = syncmod.make_pairing_code(db, hub_home)["code"]
    hub = syncmod.identity(db, hub_home)
    org = syncmod.organisation_of(db)
    db.close()
    key = syncmod.pairing_key(code, hub["device_id"])
    requests = []
    for i in range(10):
        box_key = syncmod.public_key_text(Ed25519PrivateKey.generate().public_key())
        transcript = syncmod.pair_transcript(hub["device_id"], hub["public_key"], f"box-{i}",
                                             box_key, f"Box {i}", org, "n")
        requests.append({"device_id": f"box-{i}", "public_key": box_key, "label": f"Box {i}",
                         "organisation": org, "mac": syncmod.pair_mac(key, "box", transcript)})

    def work(i: int):
        conn = dbmod.connect(hub_url)
        try:
            return syncmod.accept_pairing(conn, hub_home, requests[i], "n")
        finally:
            conn.close()

    results = run_together(10, work)
    paired = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, syncmod.PairingRefused)]
    assert len(paired) == 1 and len(refused) == 9, results
    assert all("already used" in str(r) for r in refused)
    db = dbmod.connect(hub_url)
    assert db.execute("SELECT count(*) FROM sync_devices WHERE device_id LIKE 'box-%'"
                      ).fetchone()[0] == 1
    db.close()
