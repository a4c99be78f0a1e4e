"""Background sync schedule (back-off, "sync now") and LAN discovery over loopback mDNS."""

from __future__ import annotations

import threading

from passerelle.server.sync import discovery
from passerelle.server.sync.schedule import BackgroundSync, retry_delay


class FakeClock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


def test_failures_back_off_but_never_beyond_the_interval():
    interval = 15 * 60
    delays = [retry_delay(n, interval) for n in range(1, 8)]
    assert delays[:5] == [30, 60, 120, 240, 480]
    assert max(delays) == interval          # a hub back after days is reached within one interval
    assert retry_delay(0, interval) == interval


def test_an_attempt_schedules_the_next_one_and_remembers_the_error_in_words():
    clock = FakeClock()
    outcomes = [ConnectionRefusedError("the hub at http://10.0.0.1:8080 did not answer"), None]

    def run_once():
        outcome = outcomes.pop(0)
        if outcome:
            raise outcome

    sync = BackgroundSync(run_once, 900, clock=clock, jitter=0)
    assert sync.attempt() is False
    assert sync.state.failures == 1
    assert "did not answer" in sync.state.last_error
    assert sync.state.next_at == clock.now + 30
    assert sync.attempt() is True
    assert sync.state.failures == 0 and sync.state.last_error is None
    assert sync.state.last_ok_at == clock.now
    assert sync.state.next_at == clock.now + 900


def test_sync_now_wakes_the_thread_at_once():
    ran = threading.Event()
    sync = BackgroundSync(ran.set, 3600, first_delay_s=3600)
    sync.start()
    try:
        assert not ran.wait(0.3)       # nothing before the first delay...
        sync.trigger()                 # ...until the coordinator asks
        assert ran.wait(5)
    finally:
        sync.stop()
    assert sync.state.last_ok_at is not None


def test_a_box_announced_on_loopback_is_found_with_its_organisation():
    announcer = discovery.Announcer(host="127.0.0.1", port=18931, device_id="d" * 32,
                                    organisation="org-1", role="hub", version="9.9",
                                    name="Hub de la gare")
    assert announcer.start()
    try:
        peers = discovery.browse(timeout=3.0, host="127.0.0.1")
    finally:
        announcer.close()
    mine = [p for p in peers if p.device_id == "d" * 32]
    assert mine, peers
    assert mine[0].url == "http://127.0.0.1:18931"
    assert (mine[0].organisation, mine[0].role, mine[0].name) == ("org-1", "hub", "Hub de la gare")


def test_a_serving_box_is_found_by_sync_discover(server_factory, box, sync_cli, monkeypatch):
    import json

    served = server_factory({"PASSERELLE_DISCOVERY": "true"})
    monkeypatch.setenv("PASSERELLE_HOST", "127.0.0.1")   # listen on loopback only

    def listen():
        code, out, err = sync_cli(box.home, "discover", "--json", "--timeout", "3")
        assert code == 0, err
        return [p for p in json.loads(out) if p["url"] == served.url]

    found = listen() or listen()   # the announcement starts beside the server, give it a moment
    assert found, "the serving box did not answer"
    assert found[0]["role"] == "box" and found[0]["organisation"]
    assert found[0]["name"].startswith("Espace Numérique Test")
