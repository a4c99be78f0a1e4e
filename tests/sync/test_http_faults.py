"""Faults over real HTTP on 127.0.0.1: the connection cut in the middle of a batch (both ways),
the hub killed with kill -9 in the middle of a push. Each time nothing is lost or counted twice,
the database is sound, and the next sync resumes from what was acknowledged."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time

from passerelle.server import records
from passerelle.server import sync as syncmod
from passerelle.server.sync.client import PeerUnreachable

from tests.conftest import LiveServer


def test_a_pull_cut_mid_batch_resumes_without_loss_or_duplicates(http_kit, write_many):
    kit = http_kit
    hub = kit.hub_db()
    write_many(hub, 2000)
    a = kit.new("a")
    kit.pair(a)
    hub_device = records.device_id(hub)

    proxy = kit.proxy(cut_after=60_000, direction="down")  # ~1/3 of the stream
    cut = kit.sync(a, proxy.url, max_ops=200)
    assert not cut.ok and proxy.cut
    assert isinstance(cut.error, PeerUnreachable) and "cut" in cut.error.message
    held = syncmod.vector(a.db).get(hub_device, 0)
    assert 0 < held < syncmod.vector(hub)[hub_device] and held % 200 == 0  # whole batches only
    assert cut.pulled.applied == held

    resumed = kit.sync(a, max_ops=200)
    assert resumed.ok, resumed.summary()
    assert resumed.pulled.duplicates == 0 and resumed.pulled.applied == syncmod.vector(hub)[hub_device] - held
    assert kit.dump(a.db) == kit.dump(hub)
    log = a.db.execute("SELECT ok, message FROM sync_log WHERE direction = 'sync' ORDER BY id").fetchall()
    assert log[0][0] == 0 and "was cut" in log[0][1] and log[1][0] == 1


def test_a_push_cut_mid_batch_resumes_without_loss_or_duplicates(http_kit, write_many):
    kit = http_kit
    a = kit.new("a")
    kit.pair(a)
    assert kit.sync(a).ok
    write_many(a.db, 1500, who="learner-a")
    hub = kit.hub_db()

    proxy = kit.proxy(cut_after=40_000, direction="up")
    cut = kit.sync(a, proxy.url, max_ops=250)
    assert not cut.ok and proxy.cut and "cut" in cut.error.message
    got = syncmod.vector(hub).get(a.device, 0)
    assert got == cut.pushed.applied and got % 250 == 0 and got < 1500

    resumed = kit.sync(a, max_ops=250)
    assert resumed.ok, resumed.summary()
    assert (resumed.pushed.applied, resumed.pushed.duplicates) == (1500 - got, 0)
    assert kit.dump(a.db) == kit.dump(hub)
    assert hub.execute("SELECT count(*) FROM ops WHERE origin = ?", [a.device]).fetchone()[0] == 1500


def test_the_hub_killed_mid_push_loses_nothing_and_the_sync_resumes(http_kit, write_many):
    kit = http_kit
    kit.hub.stop()  # this test runs its own hub, to kill it
    hub_server = LiveServer(kit.hub_home).start()
    try:
        a = kit.new("a")
        kit.pair(a, hub_server.url)
        write_many(a.db, 2000, who="learner-a")
        syncmod.sign_pending(a.db, a.home)
        results = []
        worker = threading.Thread(target=lambda: results.append(kit.sync(a, max_ops=100)))
        worker.start()
        watcher = sqlite3.connect(kit.hub_home / "passerelle.db", timeout=10)
        deadline = time.monotonic() + 60
        count = 0
        while time.monotonic() < deadline:
            count = watcher.execute("SELECT count(*) FROM ops WHERE origin = ?", [a.device]).fetchone()[0]
            if count >= 200:
                break
            time.sleep(0.02)
        hub_server.proc.send_signal(signal.SIGKILL)  # in the middle of the push
        hub_server.proc.wait(10)
        worker.join(60)
        (cut,) = results
        assert not cut.ok and isinstance(cut.error, PeerUnreachable)
        assert 200 <= count < 2000
        assert watcher.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        kept = watcher.execute("SELECT count(*), max(seq) FROM ops WHERE origin = ?",
                               [a.device]).fetchone()
        assert kept[0] == kept[1] and kept[0] % 100 == 0  # whole batches, no hole
        watcher.close()
    finally:
        hub_server.stop()

    restarted = LiveServer(kit.hub_home).start()
    try:
        resumed = kit.sync(a, restarted.url, max_ops=100)
        assert resumed.ok, resumed.summary()
        assert resumed.pushed.duplicates == 0 and resumed.pushed.applied == 2000 - kept[0]
        assert kit.dump(a.db) == kit.dump(kit.hub_db())
    finally:
        restarted.stop()


def test_an_unreachable_hub_is_reported_in_words(http_kit, sync_cli):
    kit = http_kit
    a = kit.new("a")
    kit.pair(a)
    kit.hub.stop()
    result = kit.sync(a)
    assert not result.ok and "could not reach" in result.error.message
    assert "connection refused" in result.error.message
    code, out, err = sync_cli(a.home, "status")
    assert "could not reach" in out
    code, out, err = sync_cli(a.home, "now", "--json")
    assert code == 1 and '"ok": false' in out
