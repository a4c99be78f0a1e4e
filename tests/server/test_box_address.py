"""How tablets find the box: its address and QR code on the setup page and the printed
label, and the Wi-Fi name asked for at setup on the Raspberry Pi image (written for a root
unit to apply; the service itself never changes the network)."""

import json
import sqlite3
import stat

import pytest
from passerelle.server.app import create_app

from tests.conftest import csrf_token, english_client

SETUP = {"org_name": "BeCentral", "languages": ["fr"], "signin_mode": "pin",
         "display_name": "Nadia", "username": "nadia", "password": "a long enough pass",
         "password_again": "a long enough pass"}


@pytest.fixture
def image_box(tmp_path):
    """A new box as the Raspberry Pi image starts it: Wi-Fi requests switched on."""
    app = create_app({"home": tmp_path / "pi", "TESTING": True, "network_requests": True})
    return app, english_client(app)


def test_the_setup_page_shows_the_address_and_its_qr_code_and_no_wifi_form_by_default(fresh_client):
    page = fresh_client.get("/setup").get_data(as_text=True)
    assert "http://10.42.0.1/" in page
    assert '<svg viewBox=' in page and 'class="qr"' in page
    assert "<title>QR code of the box&#39;s address</title>" in page or "QR code of the box" in page
    assert 'name="wifi_name"' not in page


def test_on_the_image_setup_asks_for_the_wifi_and_writes_the_request(image_box):
    app, client = image_box
    page = client.get("/setup").get_data(as_text=True)
    assert 'name="wifi_name"' in page and 'name="wifi_passphrase"' in page
    response = client.post("/setup", data={"csrf_token": csrf_token(client), **SETUP,
                                           "wifi_name": "Atelier numérique",
                                           "wifi_passphrase": "lire ensemble"})
    assert response.status_code == 302
    request = app.config["HOME"].root / "requests" / "network.json"
    assert json.loads(request.read_text()) == {"wifi": {"name": "Atelier numérique",
                                                        "passphrase": "lire ensemble"}}
    assert stat.S_IMODE(request.stat().st_mode) == 0o640  # the passphrase: not for others
    assert "join the new Wi-Fi" in client.get("/manage").get_data(as_text=True)


def test_an_empty_wifi_form_asks_for_nothing(image_box):
    app, client = image_box
    client.post("/setup", data={"csrf_token": csrf_token(client), **SETUP, "wifi_name": ""})
    assert not (app.config["HOME"].root / "requests" / "network.json").exists()


@pytest.mark.parametrize("change, field", [
    ({"wifi_passphrase": "short"}, "wifi_passphrase"),
    ({"wifi_passphrase": "pas de caractères accentués"}, "wifi_passphrase"),
    ({"wifi_name": "x" * 33}, "wifi_name"),
])
def test_bad_wifi_settings_are_explained_and_nothing_is_created(image_box, change, field):
    app, client = image_box
    response = client.post("/setup", data={"csrf_token": csrf_token(client), **SETUP,
                                           "wifi_name": "Atelier", **change})
    assert response.status_code == 400
    assert f'id="e-{field}"' in response.get_data(as_text=True)
    db = sqlite3.connect(app.config["DB_PATH"])
    assert db.execute("SELECT count(*) FROM users").fetchone()[0] == 0
    assert not (app.config["HOME"].root / "requests" / "network.json").exists()


def test_the_label_names_the_wifi_once_the_box_applied_it(as_user, app):
    client = as_user("fatou")
    page = client.get("/manage").get_data(as_text=True)
    assert "/manage/label" in page
    label = client.get("/manage/label").get_data(as_text=True)
    assert "http://10.42.0.1/" in label and 'class="qr"' in label
    assert "Join the box&#39;s Wi-Fi" in label or "Join the box's Wi-Fi" in label
    requests = app.config["HOME"].root / "requests"
    requests.mkdir()
    (requests / "network.result.json").write_text(
        json.dumps({"ok": True, "applied": ["wifi"], "wifi_name": "Atelier <b>"}))
    label = client.get("/manage/label").get_data(as_text=True)
    assert "Join the Wi-Fi Atelier &lt;b&gt;" in label
