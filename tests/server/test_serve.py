"""`passerelle serve` for real: Waitress over loopback, access log, clean shutdown."""

import json
import signal
import urllib.error

import pytest
from passerelle.server import __version__
from passerelle.server.migrations import MIGRATIONS
from passerelle.server.web.serve import urls_for


def test_health_over_http(live_server):
    with live_server.get("/api/v1/health") as response:
        body = json.load(response)
        assert response.headers["Server"] == "passerelle"
        assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert body["status"] == "ok"
    assert body["version"] == __version__
    latest = MIGRATIONS._migrations[-1].name
    assert body["database"] == {"status": "ok", "schema_version": latest, "journal_mode": "wal"}


def test_home_page_over_http_in_french(live_server):
    with live_server.get("/", headers={"Accept-Language": "fr-BE"}) as response:
        assert "Bienvenue sur Passerelle" in response.read().decode()


def test_errors_over_http_keep_the_shape(live_server):
    with pytest.raises(urllib.error.HTTPError) as info:
        live_server.get("/api/v1/nothing-here")
    assert info.value.code == 404
    assert json.load(info.value)["error"]["code"] == "not_found"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_clean_shutdown_on_signals(server_factory, sig):
    server = server_factory()
    server.get("/api/v1/health").read()
    code, out, err = server.stop(sig)
    assert code == 0, err
    assert f"{sig.name} received, stopping" in err
    assert "passerelle: stopped" in err
    assert f"http://127.0.0.1:{server.port}/" in out


def test_access_log_has_one_line_per_request(live_server, home):
    live_server.get("/api/v1/health?probe=1").read()
    live_server.stop()
    lines = (home / "logs" / "access.log").read_text().splitlines()
    probe = [line for line in lines if "probe=1" in line]
    assert len(probe) == 1
    assert '"GET /api/v1/health?probe=1 HTTP/1.1" 200' in probe[0]
    assert probe[0].startswith("127.0.0.1 ")


def test_the_addresses_printed_for_tablets():
    assert urls_for("127.0.0.1", 8080) == ["http://127.0.0.1:8080/"]
    for url in urls_for("0.0.0.0", 8080):
        assert url.startswith("http://") and url.endswith(":8080/")
