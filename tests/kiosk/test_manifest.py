"""The web app manifest: kiosk tablets add Passerelle to their home screen, full screen."""

import json
import re
from urllib.parse import urljoin


def test_pages_link_a_fullscreen_manifest_served_with_its_type(client):
    html = client.get("/").get_data(as_text=True)
    href = re.search(r'<link rel="manifest" href="([^"]+)"', html).group(1)
    response = client.get(href)
    assert response.status_code == 200
    assert response.mimetype == "application/manifest+json"
    manifest = json.loads(response.get_data(as_text=True))
    assert manifest["name"] == "Passerelle"
    assert manifest["display"] == "fullscreen"
    assert manifest["start_url"] == "/"
    sizes = {icon["sizes"]: icon for icon in manifest["icons"]}
    assert {"192x192", "512x512", "any"} <= set(sizes)
    for icon in manifest["icons"]:
        # Icons resolve against the manifest's own address, as browsers do.
        image = client.get(urljoin(href, icon["src"]))
        assert image.status_code == 200 and image.mimetype == icon["type"]
        if icon["type"] == "image/png":
            data = image.get_data()
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
            assert f"{width}x{height}" == icon["sizes"]
