"""Hostile and broken packs: each refused with a message naming the problem, the box unchanged."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path

import pytest
from packhelpers import (
    MINI_PDF,
    hand_pack,
    manifest_for,
    sha,
    write_folder_pack,
    zip_folder,
)
from passerelle.content import (
    BlobMismatch,
    InvalidPack,
    Limits,
    SignatureError,
    UnsafePack,
    VersionConflict,
    check_pack,
)

GOOD = {"doc": MINI_PDF}


def _zip_with(tmp_path: Path, entries: list[tuple[zipfile.ZipInfo | str, bytes]], name="evil.zip") -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return path


def _manifest_bytes(**kw) -> bytes:
    return json.dumps(manifest_for(GOOD, **kw)).encode()


def _symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _node(i, **kw):
    base = {"id": f"n{i}", "parent": "root", "kind": "topic", "title": f"T{i}", "files": []}
    base.update(kw)
    return base


ROOT = {"id": "root", "parent": None, "kind": "topic", "title": "Root", "files": []}


def _nodes_pack(tmp_path, nodes, **kw):
    return write_folder_pack(tmp_path / "pack", manifest_for({}, nodes=nodes, **kw), [])


def case_zip_slip(tmp_path):
    return _zip_with(tmp_path, [("manifest.json", _manifest_bytes()), (f"files/{sha(MINI_PDF)}", MINI_PDF),
                                ("files/../../evil.sh", b"#!/bin/sh")]), "path traversal"


def case_absolute_path(tmp_path):
    return _zip_with(tmp_path, [("manifest.json", _manifest_bytes()), ("/etc/cron.d/evil", b"x")]), "absolute path"


def case_zip_symlink(tmp_path):
    return _zip_with(tmp_path, [("manifest.json", _manifest_bytes()),
                                (_symlink_info(f"files/{sha(MINI_PDF)}"), b"/etc/shadow")]), "symbolic link"


def case_zip_device(tmp_path):
    info = zipfile.ZipInfo("files/dev")
    info.create_system = 3
    info.external_attr = (stat.S_IFCHR | 0o666) << 16
    return _zip_with(tmp_path, [("manifest.json", _manifest_bytes()), (info, b"")]), "device file"


def case_folder_symlink(tmp_path):
    pack = hand_pack(tmp_path, "pack", GOOD)
    (pack / "files" / sha(MINI_PDF)).unlink()
    os.symlink("/etc/hostname", pack / "files" / sha(MINI_PDF))
    return pack, "symbolic link"


def case_folder_fifo(tmp_path):
    pack = hand_pack(tmp_path, "pack", GOOD)
    os.mkfifo(pack / "files" / ("f" * 64))
    return pack, "FIFO"


def case_blob_hash_mismatch(tmp_path):
    pack = hand_pack(tmp_path, "pack", {"a": b"%PDF a" * 10, "doc": MINI_PDF})
    (pack / "files" / sha(MINI_PDF)).write_bytes(MINI_PDF.replace(b"1.4", b"1.5"))
    return pack, "SHA-256"


def case_blob_size_mismatch(tmp_path):
    pack = hand_pack(tmp_path, "pack", GOOD)
    (pack / "files" / sha(MINI_PDF)).write_bytes(MINI_PDF + b"extra")
    return pack, "manifest says"


def case_blob_size_lie_in_zip(tmp_path):
    # The zip is made from a folder whose blob is longer than the manifest says.
    pack = hand_pack(tmp_path, "pack", {"a": b"%PDF a", "doc": MINI_PDF})
    (pack / "files" / sha(MINI_PDF)).write_bytes(MINI_PDF * 3)
    return zip_folder(pack, tmp_path / "lie.zip"), "manifest says"


def case_missing_blob(tmp_path):
    pack = hand_pack(tmp_path, "pack", GOOD)
    (pack / "files" / sha(MINI_PDF)).unlink()
    return pack, "missing"


def case_zip_bomb_ratio(tmp_path):
    bomb = b"\0" * (20 * 1024 * 1024)
    m = manifest_for({"bomb": bomb})
    return _zip_with(tmp_path, [("manifest.json", json.dumps(m).encode()), (f"files/{sha(bomb)}", bomb)]), "zip bomb"


def case_zip_declared_size_lie(tmp_path):
    path = _zip_with(tmp_path, [("manifest.json", _manifest_bytes()), (f"files/{sha(MINI_PDF)}", MINI_PDF)])
    # Rewrite the declared uncompressed size in the central directory (a lying header).
    data = bytearray(path.read_bytes())
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24:cd + 28] = (10**9).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path, "zip bomb"


def case_not_utf8(tmp_path):
    return write_folder_pack(tmp_path / "pack", b'{"title": "caf\xe9"}', []), "not UTF-8"


def case_not_json(tmp_path):
    return write_folder_pack(tmp_path / "pack", b"{not json", []), "not valid JSON"


def case_schema(tmp_path):
    m = manifest_for(GOOD)
    m["id"] = "Bad Id!"
    m["nodes"][1]["files"][0]["sha256"] = "XYZ"
    return write_folder_pack(tmp_path / "pack", m, GOOD), "nodes[1].files[0].sha256"


def case_duplicate_ids(tmp_path):
    return _nodes_pack(tmp_path, [ROOT, _node(1), _node(1)]), "duplicate node id"


def case_cycle(tmp_path):
    return _nodes_pack(tmp_path, [ROOT, _node(1, parent="n2"), _node(2, parent="n1")]), "cycle"


def case_orphan(tmp_path):
    return _nodes_pack(tmp_path, [ROOT, _node(1, parent="ghost")]), "orphan"


def case_parent_after_child(tmp_path):
    return _nodes_pack(tmp_path, [ROOT, _node(1, parent="n2"), _node(2)]), "parents come first"


def case_unknown_kind(tmp_path):
    return _nodes_pack(tmp_path, [ROOT, _node(1, kind="hologram")]), "hologram"


def case_absurd_depth(tmp_path):
    nodes = [ROOT] + [_node(i, parent="root" if i == 0 else f"n{i-1}") for i in range(40)]
    return _nodes_pack(tmp_path, nodes), "deeper than 32"


def case_too_many_files(tmp_path):
    files = [{"sha256": sha(MINI_PDF), "size": len(MINI_PDF), "mime": "image/png", "role": "thumbnail"}] * 65
    return _nodes_pack(tmp_path, [ROOT, _node(1, files=files)]), "at most 64"


def case_long_string(tmp_path):
    return _nodes_pack(tmp_path, [ROOT, _node(1, title="x" * 10_000)]), "longer than 500"


def case_two_roots(tmp_path):
    return _nodes_pack(tmp_path, [ROOT, dict(ROOT, id="root2")]), "root"


def case_bad_expression(tmp_path):
    ex = {"mastery": {"model": "do_all"}, "questions": [
        {"id": "q", "type": "generated", "prompt": "?", "variables": {"a": {"min": 1, "max": 2}},
         "answer": "__import__('os').system('id')"}]}
    return _nodes_pack(tmp_path, [ROOT, _node(1, kind="exercise", exercise=ex)]), "may be called"


def case_truncated_zip(tmp_path):
    path = _zip_with(tmp_path, [("manifest.json", _manifest_bytes()), (f"files/{sha(MINI_PDF)}", MINI_PDF)])
    path.write_bytes(path.read_bytes()[:-40])
    return path, "not a zip file"


def case_corrupt_zip_member(tmp_path):
    blob = os.urandom(5000)
    m = manifest_for({"doc": blob})
    path = _zip_with(tmp_path, [("manifest.json", json.dumps(m).encode()), (f"files/{sha(blob)}", blob)])
    data = bytearray(path.read_bytes())
    at = data.find(blob[:100]) if data.find(blob[:100]) >= 0 else 200
    data[at + 50] ^= 0xFF
    path.write_bytes(bytes(data))
    return path, "files/"


def _html5_pack(tmp_path, entries):
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for info, data in entries:
            zf.writestr(info, data)
    app = buf.getvalue()
    node = _node(1, kind="html5", files=[{"sha256": sha(app), "size": len(app), "mime": "application/zip",
                                           "role": "main"}])
    return write_folder_pack(tmp_path / "pack", manifest_for({}, nodes=[ROOT, node]), [app])


def case_html5_traversal(tmp_path):
    return _html5_pack(tmp_path, [("index.html", b"<p>"), ("../../escape.html", b"x")]), "traversal"


def case_html5_no_index(tmp_path):
    return _html5_pack(tmp_path, [("main.html", b"<p>")]), "index.html"


def case_html5_symlink(tmp_path):
    return _html5_pack(tmp_path, [("index.html", b"<p>"), (_symlink_info("x.js"), b"/etc/passwd")]), "symbolic link"


CASES = {name[5:]: fn for name, fn in globals().items() if name.startswith("case_")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_pack_is_refused_and_box_unchanged(name, tmp_path, box, library):
    # A box that already has content, so "unchanged" means something.
    library.import_pack(hand_pack(tmp_path, "installed", {"keep": b"%PDF keep"}, pack_id="installed-pack"))
    before = box.snapshot()
    pack, expected = CASES[name](tmp_path)
    with pytest.raises((InvalidPack, BlobMismatch)) as err:
        library.import_pack(pack)
    assert expected.lower() in str(err.value).lower(), str(err.value)
    assert box.snapshot() == before
    assert box.leftovers() == []
    # check_pack reports it too, with a location
    problems = [p for p in check_pack(pack) if p.severity == "error"]
    assert problems and all(p.location for p in problems)


def test_check_lists_every_problem_with_location(tmp_path):
    m = manifest_for(GOOD)
    m["nodes"].append(_node(5, parent="ghost"))
    m["nodes"].append(_node(5))
    m["nodes"][1]["files"][0]["size"] = 3
    pack = write_folder_pack(tmp_path / "pack", m, GOOD)
    text = [str(p) for p in check_pack(pack)]
    assert any(t.startswith("nodes[2].parent: orphan") for t in text)
    assert any(t.startswith("nodes[3].id: duplicate") for t in text)
    assert any(t.startswith("nodes[1].files[0].size") for t in text)


def test_unsafe_is_unsafepack(tmp_path, library):
    pack, _ = case_zip_slip(tmp_path)
    with pytest.raises(UnsafePack):
        library.import_pack(pack)


def test_total_uncompressed_limit(tmp_path, box):
    blob = os.urandom(3000)
    pack = zip_folder(hand_pack(tmp_path, "p", {"doc": blob}), tmp_path / "p.zip")
    library = box.library(limits=Limits(max_total_size=1000))
    with pytest.raises(UnsafePack, match="uncompressed"):
        library.import_pack(pack)


def test_lower_version_and_unsigned_when_required(tmp_path, box, library):
    library.import_pack(hand_pack(tmp_path, "v2", version=2))
    before = box.snapshot()
    with pytest.raises(VersionConflict):
        library.import_pack(hand_pack(tmp_path, "v1", version=1))
    strict = box.library(require_signature=True, trusted_keys=[])
    with pytest.raises(SignatureError, match="not signed"):
        strict.import_pack(hand_pack(tmp_path, "v3", version=3))
    assert box.snapshot() == before


@pytest.mark.parametrize("text", [
    b'{"nodes": [1, 2', b'{"nodes": [{"id": "a"},]}', b'{"format": 1, "nodes": []} x', b'[1]', b'{"a" 1}',
    b'{"nodes": {"id": 1}}', b' { "format" : 1 , "nodes" : [ { "id" : "r" } ] } ', b'{}',
])
def test_manifest_nodes_decoded_as_read_give_the_same_answers(text):
    from passerelle.content import parse_manifest, validate_manifest

    eager, problems = parse_manifest(text)
    lazy, lazy_problems = parse_manifest(text, lazy_nodes=True)
    assert bool(problems) == bool(lazy_problems)
    if eager is not None:
        assert {**lazy, "nodes": list(lazy.get("nodes", []))} == {**eager, "nodes": eager.get("nodes", [])} \
            or not isinstance(eager.get("nodes"), list)
        assert validate_manifest(eager) == validate_manifest(lazy)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_manifests_get_the_same_problems_when_decoded_as_read(name, tmp_path):
    from passerelle.content import parse_manifest, validate_manifest

    pack, _expected = CASES[name](tmp_path)
    path = Path(pack) / "manifest.json" if Path(pack).is_dir() else None
    if path is None or not path.exists():
        pytest.skip("a zip pack: its manifest is read by the same path")
    data = path.read_bytes()
    eager, _ = parse_manifest(data)
    lazy, _ = parse_manifest(data, lazy_nodes=True)
    if eager is None:
        assert lazy is None
    else:
        assert [str(p) for p in validate_manifest(eager)] == [str(p) for p in validate_manifest(lazy)]
