"""A pack's declared types are normalised and allow-listed at import; how each type is served."""

from __future__ import annotations

import pytest
from packhelpers import SVG, article_pack, sha
from passerelle.content import InvalidPack, media

SCRIPT = b"fetch('/api/v1/me').then(r => r.text()).then(t => fetch('/leak?' + t));\n"
PAGE = b"<!doctype html><script src='/files/" + sha(SCRIPT).encode() + b"'></script>\n"


@pytest.mark.parametrize("declared", [
    "text/html", "text/html; charset=utf-8", "TEXT/HTML", " text/html", "application/xhtml+xml",
    "application/xml", "text/xml", "text/javascript", "application/javascript", "text/css",
    "application/octet-stream", "multipart/x-mixed-replace", "application/x-shockwave-flash",
])
def test_a_pack_carrying_a_page_or_a_script_is_refused(tmp_path, library, box, declared):
    # The attack: the pack's own article links to its page, which loads its script.
    pack = article_pack(tmp_path / "evil", f"[Open](sha256:{sha(PAGE)})\n",
                        [(PAGE, declared, "transcript"), (SCRIPT, "text/plain", "transcript")])
    before = box.snapshot()
    with pytest.raises(InvalidPack) as refused:
        library.import_pack(pack)
    assert "nodes[1].files[1].mime" in str(refused.value)
    assert box.snapshot() == before


@pytest.mark.parametrize(("role", "declared"), [
    ("image", "text/plain"), ("thumbnail", "application/pdf"), ("subtitles", "text/plain"),
    ("transcript", "image/png"), ("image", "application/zip"),
])
def test_each_role_has_its_own_types(tmp_path, library, role, declared):
    pack = article_pack(tmp_path / "odd", "text", [(b"x" * 10, declared, role)])
    with pytest.raises(InvalidPack, match=r"nodes\[1\]\.files\[1\]\.mime"):
        library.import_pack(pack)


def test_a_main_file_of_the_wrong_kind_is_refused(tmp_path, library):
    pack = article_pack(tmp_path / "odd", "text", [], article_mime="text/plain")
    with pytest.raises(InvalidPack, match="main file must be text/markdown"):
        library.import_pack(pack)


def test_declared_types_are_normalised_in_the_catalog(tmp_path, library, box):
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
    pack = article_pack(tmp_path / "ok", f"![pic](sha256:{sha(png)}) ![svg](sha256:{sha(SVG)})",
                        [(png, "image/JPG", "image"), (SVG, "Image/SVG+XML; charset=utf-8", "image"),
                         (b"WEBVTT\n", "text/vtt; charset=UTF-8", "transcript")],
                        article_mime="text/markdown; charset=utf-8")
    library.import_pack(pack)
    db = box.connect()
    stored = sorted(r[0] for r in db.execute("SELECT mime FROM content_node_files"))
    assert stored == ["image/jpeg", "image/svg+xml", "text/markdown", "text/vtt"]


@pytest.mark.parametrize(("declared", "content_type", "sandbox", "attachment"), [
    ("video/webm", "video/webm", False, False),
    ("audio/mp3", "audio/mpeg", False, False),
    ("image/png", "image/png", False, False),
    ("application/pdf", "application/pdf", False, False),
    ("text/vtt", "text/vtt", True, False),
    ("text/plain", "text/plain", True, False),
    ("image/svg+xml", "image/svg+xml", True, False),
    # What an older catalog may still hold, or anything unknown: a download, never a page.
    ("text/html; charset=utf-8", "application/octet-stream", True, True),
    ("application/xml", "application/octet-stream", True, True),
    ("application/xhtml+xml", "application/octet-stream", True, True),
    ("text/javascript", "application/octet-stream", True, True),
    ("text/css", "application/octet-stream", True, True),
    ("application/zip", "application/octet-stream", True, True),
    ("", "application/octet-stream", True, True),
])
def test_how_each_type_is_delivered(declared, content_type, sandbox, attachment):
    assert media.delivery(declared) == media.Delivery(content_type, sandbox, attachment)
