"""Without python-libzim (no wheel for 32-bit ARM), Passerelle runs and says why ZIMs are off."""

from __future__ import annotations

from passerelle.content import zim


def test_without_libzim_the_box_runs_and_says_why_in_one_line(monkeypatch, client, runner, tmp_path):
    monkeypatch.setattr(zim, "AVAILABLE", False)
    monkeypatch.setattr(zim, "UNAVAILABLE_REASON", "ZIM files need python-libzim, which has no "
                                                   "build for this platform (armv7l)")
    listed = client.get("/api/v1/zims").get_json()
    assert listed == {"available": False, "reason": zim.UNAVAILABLE_REASON, "zims": []}
    assert client.get("/").status_code == 200
    assert client.get("/search?q=tablette").status_code == 200
    fake = tmp_path / "w.zim"
    fake.write_bytes(b"ZIM\x04" + b"\0" * 100)
    result = runner("content", "import", str(fake))
    assert result.exit_code != 0
    assert result.stderr.strip() == f"passerelle: error: {zim.UNAVAILABLE_REASON}"
    assert "ZIM files: unavailable (ZIM files need python-libzim" in runner("content", "list").stdout
