"""Build → check → import → export → re-import, updates, dedup, GC, listeners."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from packhelpers import MINI_PDF, Box, hand_pack, sha
from passerelle.content import (
    PackNotFound,
    VersionConflict,
    build_pack,
    check_pack,
    read_pack,
)


def test_build_check_import_export_reimport(tmp_path, source, box, library):
    built = build_pack(source, tmp_path / "demo.zip", created="2026-01-01T00:00:00Z")
    assert check_pack(built.path) == []
    result = library.import_pack(built.path)
    assert result.status == "installed"
    assert result.blobs_copied == result.blobs_total == 6
    [info] = library.list()
    assert (info.id, info.version, info.node_count, info.missing_blobs) == ("demo-pack", 1, 7, 0)

    exported = library.export("demo-pack", tmp_path / "exported.zip")
    folder = library.export("demo-pack", tmp_path / "exported-folder", format="folder")
    with zipfile.ZipFile(built.path) as a, zipfile.ZipFile(exported) as b:
        assert a.read("manifest.json") == b.read("manifest.json")
        assert sorted(a.namelist()) == sorted(b.namelist())
    assert (folder / "manifest.json").read_bytes() == zipfile.ZipFile(built.path).read("manifest.json")
    assert check_pack(exported) == [] and check_pack(folder) == []

    other = Box(tmp_path / "other").library()
    assert other.import_pack(exported).status == "installed"
    assert other.import_pack(folder).status == "already installed"
    assert [n["id"] for n in other.iter_nodes("demo-pack")] == [n["id"] for n in built.manifest["nodes"]]


def test_build_is_deterministic_and_ids_survive_renumbering(tmp_path, source):
    a = build_pack(source, tmp_path / "a.zip", created="2026-01-01T00:00:00Z")
    b = build_pack(source, tmp_path / "b.zip", created="2026-01-01T00:00:00Z")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    os.rename(source / "01-passwords" / "01-strong-passwords.md", source / "01-passwords" / "07-strong-passwords.md")
    c = build_pack(source, tmp_path / "c.zip", created="2026-01-01T00:00:00Z")
    assert {n["id"] for n in c.manifest["nodes"]} == {n["id"] for n in a.manifest["nodes"]}
    assert a.manifest == b.manifest


def test_build_created_defaults(tmp_path, source, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert build_pack(source, tmp_path / "a.zip").manifest["created"] == "2023-11-14T22:13:20Z"
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    for p in source.rglob("*"):
        os.utime(p, (1600000000, 1600000000))
    assert build_pack(source, tmp_path / "b.zip").manifest["created"] == "2020-09-13T12:26:40Z"


def test_built_manifest_content(tmp_path, source):
    m = build_pack(source, tmp_path / "p", folder=True).manifest
    nodes = {n["id"]: n for n in m["nodes"]}
    assert m["homepage"].startswith("https://")  # unknown pack.yaml key kept
    assert nodes["passwords"]["kind"] == "topic" and nodes["passwords"]["title"] == "Passwords"
    article = nodes["passwords/strong-passwords"]
    body = (tmp_path / "p" / "files" / article["files"][0]["sha256"]).read_text()
    assert f"sha256:{sha((source / '01-passwords/img/padlock.svg').read_bytes())}" in body
    assert [f["role"] for f in article["files"]] == ["main", "image"]
    video = nodes["passwords/intro"]
    assert video["duration"] == 31.5
    assert {(f["role"], f.get("lang")) for f in video["files"]} == {("main", None), ("subtitles", "fr"), ("poster", None)}
    game = nodes["passwords/game"]
    with zipfile.ZipFile(tmp_path / "p" / "files" / game["files"][0]["sha256"]) as zf:
        assert zf.namelist() == ["index.html", "js/app.js"]
    quiz = nodes["passwords/quiz"]["exercise"]
    assert quiz["mastery"] == {"model": "m_of_n", "m": 2, "n": 3}
    assert "sha256:" in quiz["questions"][0]["prompt"]


def test_build_reports_every_authoring_problem(tmp_path, source):
    from passerelle.content import InvalidPack

    (source / "01-passwords" / "03-intro.yaml").write_text("title: no duration\n")
    (source / "01-passwords" / "notes.txt").write_text("stray")
    (source / "01-passwords" / "01-strong-passwords.md").write_text("![x](img/missing.png)\n")
    with pytest.raises(InvalidPack) as err:
        build_pack(source, tmp_path / "x.zip")
    where = " ".join(str(p) for p in err.value.problems)
    assert "03-intro.webm" in where and "duration" in where
    assert "notes.txt" in where and "missing.png" in where
    assert not (tmp_path / "x.zip").exists()


def test_dedup_across_packs_and_gc_on_remove(tmp_path, box, library):
    shared = b"%PDF shared " * 100
    a = hand_pack(tmp_path, "a", {"shared": shared, "only-a": b"%PDF a"}, pack_id="pack-a")
    b = hand_pack(tmp_path, "b", {"shared": shared, "only-b": b"%PDF b"}, pack_id="pack-b")
    library.import_pack(a)
    result = library.import_pack(b)
    assert result.blobs_copied == 1 and result.blobs_total == 2
    assert library.blob_path(sha(shared)).exists()
    assert library.remove("pack-a") == 1  # only-a; shared is still used by pack-b
    assert library.blob_path(sha(shared)).exists()
    assert not library.blob_path(sha(b"%PDF a")).exists()
    library.remove("pack-b")
    assert box.snapshot()["tables"]["content_blobs"] == []
    assert [f for f, kind in box.snapshot()["files"].items() if kind != "dir"] == []
    with pytest.raises(PackNotFound):
        library.remove("pack-b")


def test_update_diff_copies_only_new_blobs_keeps_ids_and_gcs(tmp_path, library):
    v1 = {"intro": b"%PDF intro", "old": b"%PDF old", "same": b"%PDF same"}
    v2 = {"intro": b"%PDF intro v2", "same": b"%PDF same", "new": b"%PDF new"}
    library.import_pack(hand_pack(tmp_path, "v1", v1))
    plan = library.plan(hand_pack(tmp_path, "v2", v2, version=2))
    assert plan.status.startswith("dry run")
    assert plan.diff.added == ["new"] and plan.diff.changed == ["intro", "same"] or plan.diff.changed == ["intro"]
    assert plan.diff.removed == ["old"]
    assert library.get("hand-pack").version == 1  # dry run changed nothing
    result = library.import_pack(tmp_path / "v2")
    assert result.status == "updated" and result.previous_version == 1
    assert result.blobs_copied == 2 and result.bytes_copied == len(b"%PDF intro v2") + len(b"%PDF new")
    assert result.blobs_removed == 2  # old intro, old
    assert not library.blob_path(sha(b"%PDF old")).exists()
    assert {n["id"] for n in library.iter_nodes("hand-pack")} == {"root", "intro", "same", "new"}


def test_versions_same_is_noop_lower_refused_unless_forced(tmp_path, library):
    library.import_pack(hand_pack(tmp_path, "v2", version=2))
    assert library.import_pack(tmp_path / "v2").status == "already installed"
    with pytest.raises(VersionConflict) as err:
        library.import_pack(hand_pack(tmp_path, "v1", version=1))
    assert "older" in str(err.value) and "--force" in str(err.value)
    assert library.import_pack(tmp_path / "v1", force=True).status == "downgraded"
    assert library.get("hand-pack").version == 1
    # Same version number, different content: refused (a publisher forgot to bump).
    with pytest.raises(VersionConflict):
        library.import_pack(hand_pack(tmp_path, "v1b", {"doc": b"%PDF other"}, version=1))


def test_same_version_repairs_missing_blob(tmp_path, library):
    pack = hand_pack(tmp_path)
    library.import_pack(pack)
    library.blob_path(sha(MINI_PDF)).unlink()
    assert library.get("hand-pack").missing_blobs == 0  # the catalog does not know yet
    report = library.verify()
    assert report.missing == [sha(MINI_PDF)] and report.affected_packs == ["hand-pack"]
    assert library.get("hand-pack").missing_blobs == 1
    assert library.import_pack(pack).status == "reinstalled"
    assert library.verify().ok and library.get("hand-pack").missing_blobs == 0


def test_verify_quarantines_damaged_blob(tmp_path, library):
    library.import_pack(hand_pack(tmp_path))
    path = library.blob_path(sha(MINI_PDF))
    path.write_bytes(b"bit rot")
    report = library.verify()
    assert report.damaged == [sha(MINI_PDF)] and report.affected_packs == ["hand-pack"]
    assert not path.exists()
    assert len(list((library.storage / "quarantine").iterdir())) == 1


def test_unknown_fields_are_kept(tmp_path, library):
    pack = hand_pack(tmp_path, x_future={"a": 1})
    manifest = json.loads((pack / "manifest.json").read_text())
    manifest["nodes"][1]["x_node_extra"] = "kept"
    manifest["nodes"][1]["files"][0]["x_file_extra"] = True
    (pack / "manifest.json").write_text(json.dumps(manifest))
    library.import_pack(pack)
    node = next(n for n in library.iter_nodes("hand-pack") if n["id"] == "doc")
    assert node["x_node_extra"] == "kept" and node["files"][0]["x_file_extra"] is True
    out = library.export("hand-pack", tmp_path / "out", format="folder")
    assert (out / "manifest.json").read_bytes() == (pack / "manifest.json").read_bytes()


def test_listeners_and_open_member(tmp_path, source, box):
    events = []

    class Listener:
        def pack_installed(self, pack_id, version):
            events.append(("installed", pack_id, version))

        def pack_removed(self, pack_id):
            events.append(("removed", pack_id))
            raise RuntimeError("indexer bug")  # must not undo the removal

    library = box.library(listeners=[Listener()])
    built = build_pack(source, tmp_path / "demo.zip")
    library.import_pack(built.path)
    game = next(n for n in library.iter_nodes("demo-pack") if n["kind"] == "html5")
    app = game["files"][0]["sha256"]
    with library.open_member(app, "js/app.js") as f:
        assert f.read() == b"console.log('hi');\n"
    with library.open_member(app, "") as f:
        assert f.read().startswith(b"<!doctype html>")
    for bad in ("../manifest.json", "js/../../x", "/etc/passwd", "missing.js"):
        with pytest.raises(PackNotFound):
            library.open_member(app, bad)
    with library.open_blob(app) as f:
        assert f.read(2) == b"PK"
    library.remove("demo-pack")
    assert events == [("installed", "demo-pack", 1), ("removed", "demo-pack")]
    assert library.list() == []


def test_read_pack_opens_zip_and_folder(tmp_path, source):
    build_pack(source, tmp_path / "p.zip")
    build_pack(source, tmp_path / "p", folder=True)
    for where in (tmp_path / "p.zip", tmp_path / "p"):
        with read_pack(where) as pack:
            assert json.loads(pack.manifest_bytes())["id"] == "demo-pack"
            assert len(pack.blob_names()) == 6


def test_bundled_content_builds_if_present(tmp_path):
    from passerelle import content

    bundled = Path(content.__file__).parent / "bundled"
    folders = [p for p in bundled.glob("*/") if (p / "pack.yaml").is_file()] if bundled.is_dir() else []
    if not folders:
        pytest.skip("no bundled content yet")
    for folder in folders:
        built = build_pack(folder, tmp_path / f"{folder.name}.zip")
        assert [p for p in check_pack(built.path) if p.severity == "error"] == []


def test_fifty_thousand_nodes_import_quickly(tmp_path, box):
    import time

    nodes = [{"id": "root", "parent": None, "kind": "topic", "title": "Root", "files": []}]
    blob = b"%PDF tiny"
    for i in range(50_000):
        nodes.append({"id": f"n{i}", "parent": "root", "kind": "document", "title": f"Doc {i}", "order": i,
                      "files": [{"sha256": sha(blob), "size": len(blob), "mime": "application/pdf", "role": "main"}]})
    from packhelpers import manifest_for, write_folder_pack
    pack = write_folder_pack(tmp_path / "big", manifest_for(nodes=nodes, pack_id="big-pack"), [blob])
    start = time.monotonic()
    box.library().import_pack(pack)
    elapsed = time.monotonic() - start
    assert elapsed < 30, elapsed
    assert box.library().get("big-pack").node_count == 50_001


def test_a_large_manifest_is_stored_compressed_and_read_back_exactly(tmp_path, box, library, monkeypatch):
    from passerelle.content import library as library_module

    monkeypatch.setattr(library_module, "STORED_RAW_MAX", 0)  # every manifest counts as large here
    pack = hand_pack(tmp_path, "v1", {"a": b"%PDF a", "b": b"%PDF b"})
    ours = (pack / "manifest.json").read_bytes()
    library.import_pack(pack)
    stored = box.connect().execute("SELECT manifest FROM content_packs").fetchone()[0]
    assert stored != ours and library_module.stored_manifest(stored) == ours
    assert library.manifest("hand-pack") == json.loads(ours)
    assert (library.export("hand-pack", tmp_path / "out", format="folder") / "manifest.json").read_bytes() == ours
    assert library.import_pack(pack).status == "already installed"  # compared with what is stored
    result = library.import_pack(hand_pack(tmp_path, "v2", {"a": b"%PDF a", "c": b"%PDF c"}, version=2))
    assert result.status == "updated" and result.diff.removed == ["b"] and result.diff.added == ["c"]
