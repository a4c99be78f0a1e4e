"""Kolibri channels: found, read by column name, converted and installed atomically; hostile ones refused."""

from __future__ import annotations

import hashlib
import io
import sqlite3
import zipfile

import pytest
from kolibri_channel import (
    CHANNEL,
    PNG,
    epub_zip,
    hexid,
    html5_zip,
    perseus_zip,
    slideshow,
    standard,
)
from passerelle.content import PackNotFound, kolibri

PACK = "kolibri-" + CHANNEL


@pytest.fixture
def export(tmp_path):
    ex, ids = standard(tmp_path / "KOLIBRI_DATA")
    ex.save()
    return ex, ids


def nodes_of(library) -> dict:
    return {n["kolibri"]["node_id"]: n for n in library.manifest(PACK)["nodes"]}


def test_lists_the_channels_of_an_export_folder(export, tmp_path):
    ex, _ids = export
    channels, problems = kolibri.find_channels(tmp_path)  # the folder above KOLIBRI_DATA works too
    assert problems == []
    (c,) = channels
    assert (c.id, c.name, c.version, c.language) == (CHANNEL, "Test channel", 3, "fr")
    assert c.resources == 9 and c.size > 0
    assert kolibri.is_kolibri_folder(ex.root) and not kolibri.is_kolibri_folder(tmp_path / "nothing")


def test_a_channel_imports_every_kind_it_can_show(export, library, box):
    ex, ids = export
    done = kolibri.import_channel(library, ex.root, CHANNEL)
    assert done.result.status == "installed" and not done.report.partial
    nodes = nodes_of(library)
    video = nodes[ids["video"]]
    assert video["kind"] == "video" and video["id"] == hexid("content" + ids["video"])  # content_id
    roles = {f["role"]: f for f in video["files"]}
    assert roles["main"]["size"] == 30  # the low-resolution file, not the high one
    assert roles["subtitles"]["lang"] == "fr" and roles["thumbnail"]["mime"] == "image/png"
    assert nodes[ids["audio"]]["kind"] == "audio" and nodes[ids["pdf"]]["kind"] == "document"
    assert nodes[ids["app"]]["kind"] == "html5"
    assert nodes[ids["h5p"]]["unavailable"] == "h5p"
    book = nodes[ids["epub"]]  # an EPUB is a document, read chapter by chapter
    assert book["kind"] == "document" and book["files"][0]["mime"] == "application/epub+zip"
    assert book["epub"]["spine"] == ["OEBPS/text/ch0.xhtml", "OEBPS/text/ch1.xhtml"]
    # Kolibri's coach content is kept, marked for facilitators (the pages hide it from learners).
    assert nodes[ids["coach"]]["for_facilitators"] is True and done.report.coach_only == 1
    assert "for_facilitators" not in nodes[ids["audio"]]
    # The same resource placed twice: one blob, and the first placement keeps the content_id.
    assert nodes[ids["again"]]["id"].startswith(nodes[ids["audio"]]["id"] + "-")
    assert nodes[ids["again"]]["same_as"] == nodes[ids["audio"]]["id"] and "same_as" not in nodes[ids["audio"]]
    assert nodes[ids["again"]]["files"][0]["sha256"] == nodes[ids["audio"]]["files"][0]["sha256"]
    # Blobs are stored by sha256 and verified.
    sha = roles["main"]["sha256"]
    assert library.blob_path(sha).read_bytes() == b"LOW" * 10
    assert sha == hashlib.sha256(b"LOW" * 10).hexdigest()
    # Importing again changes nothing: the conversion is deterministic.
    again = kolibri.import_channel(library, ex.root, CHANNEL)
    assert again.result.status == "already installed"


def test_exercises_become_perseus_questions_with_mastery_and_images(export, library):
    ex, ids = export
    done = kolibri.import_channel(library, ex.root, CHANNEL)
    node = nodes_of(library)[ids["exercise"]]
    exercise = node["exercise"]
    assert exercise["mastery"] == {"model": "streak", "n": 2}  # num_correct_in_a_row_2
    assert [q["id"] for q in exercise["questions"]] == ["q1", "q2", "q3"]  # the orderer is skipped
    assert (done.report.questions_playable, done.report.questions_total) == (3, 4)
    assert done.report.skipped_widgets == {"orderer": 1}
    image = next(f for f in node["files"] if f["role"] == "image")
    assert f"sha256:{image['sha256']}" in exercise["questions"][0]["prompt"]
    assert library.blob_path(image["sha256"]).read_bytes() == PNG


def test_topics_import_only_their_subtrees_and_add_up(export, library):
    ex, ids = export
    dry = kolibri.import_channel(library, ex.root, CHANNEL, [ids["topic"]], dry_run=True)
    assert dry.result is None and dry.plan.size > 0 and len(dry.added) == 4  # root, topic, video, exercise
    assert library.list() == []
    kolibri.import_channel(library, ex.root, CHANNEL, [ids["topic"]])
    assert ids["audio"] not in nodes_of(library) and ids["video"] in nodes_of(library)
    kolibri.import_channel(library, ex.root, CHANNEL, [ids["other"]])
    assert {ids["audio"], ids["video"]} <= set(nodes_of(library))
    with pytest.raises(PackNotFound, match="no node"):
        kolibri.import_channel(library, ex.root, CHANNEL, ["0" * 32])


def test_dry_run_reads_no_media_file(export, library):
    ex, ids = export
    for path in ex.storage.rglob("*.mp4"):
        path.unlink()
    done = kolibri.import_channel(library, ex.root, CHANNEL, dry_run=True)
    assert done.report is None and library.list() == []


# --- hostile and damaged channels ---------------------------------------------------------

def test_a_database_that_is_not_a_channel_is_refused_in_one_line(tmp_path, library, box):
    db_dir = tmp_path / "x" / "content" / "databases"
    db_dir.mkdir(parents=True)
    conn = sqlite3.connect(db_dir / f"{CHANNEL}.sqlite3")
    conn.execute("CREATE TABLE content_contentnode (id TEXT)")
    conn.commit()
    conn.close()
    (db_dir / f"{'ab' * 16}.sqlite3").write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    before = box.snapshot()
    channels, problems = kolibri.find_channels(tmp_path / "x")
    assert channels == [] and len(problems) == 2
    assert all("not a Kolibri channel database" in p.message and "\n" not in p.message for p in problems)
    with pytest.raises(kolibri.NotAChannel, match="no content_channelmetadata table"):
        kolibri.import_channel(library, tmp_path / "x", CHANNEL)
    with pytest.raises(kolibri.NotAChannel, match="damaged|not a database"):
        kolibri.import_channel(library, tmp_path / "x", "ab" * 16)
    assert box.snapshot() == before


def test_extra_tables_and_columns_and_a_missing_optional_column_are_tolerated(tmp_path, library):
    ex, ids = standard(tmp_path / "k")
    ex.db.execute("CREATE TABLE something_new (x)")
    ex.db.execute("ALTER TABLE content_contentnode ADD COLUMN future TEXT")
    ex.db.execute("ALTER TABLE content_contentnode DROP COLUMN learner_needs")
    ex.save()
    done = kolibri.import_channel(library, ex.root, CHANNEL)
    assert done.result.status == "installed"


def test_a_path_traversal_in_an_extension_is_never_opened(tmp_path, library, box):
    ex, ids = standard(tmp_path / "k")
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    evil = ex.node(hexid("evil"), CHANNEL, "video", "Evil")
    ex.file(evil, "low_res_video", b"x", "../../../../secret.txt", write=False)
    ex.save()
    done = kolibri.import_channel(library, ex.root, CHANNEL)
    node = nodes_of(library)[evil]
    assert node["unavailable"] == "video (no file)"
    assert all(f["sha256"] != hashlib.sha256(b"do not read").hexdigest() for f in node["files"])
    assert done.result.status == "installed"
    with pytest.raises(Exception, match="unsafe file name"):
        kolibri.storage_path(ex.storage, "a" * 32, "../x")


def test_an_md5_mismatch_leaves_the_resource_out_and_is_reported(tmp_path, library):
    ex, ids = standard(tmp_path / "k")
    liar = ex.node(hexid("liar"), CHANNEL, "audio", "Liar")
    ex.file(liar, "audio", b"not what the name says", "mp3", md5="0" * 32)
    ex.save()
    done = kolibri.import_channel(library, ex.root, CHANNEL)
    assert done.report.partial and "damaged (md5 is" in done.report.damaged[0]
    assert liar not in nodes_of(library) and ids["audio"] in nodes_of(library)


def test_a_missing_file_gives_a_partial_import_that_a_later_run_completes(tmp_path, library):
    ex, ids = standard(tmp_path / "k")
    ex.save()
    low = ex.storage / ids["low_md5"][0] / ids["low_md5"][1] / f"{ids['low_md5']}.mp4"
    low.rename(tmp_path / "kept.mp4")
    done = kolibri.import_channel(library, ex.root, CHANNEL)
    assert done.report.partial and done.report.missing == [f"Counting video: {ids['low_md5']}.mp4 missing"]
    assert ids["video"] not in nodes_of(library) and ids["audio"] in nodes_of(library)
    (tmp_path / "kept.mp4").rename(low)
    again = kolibri.import_channel(library, ex.root, CHANNEL)
    assert not again.report.partial and again.result.blobs_copied == 2  # the video and its subtitles
    assert ids["video"] in nodes_of(library)


def bomb(first: str = "index.html") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(first, b"<p>hi")
        zf.writestr("exercise.json", b"{}")
        zf.writestr("big.bin", b"\0" * (64 * 1024 * 1024))
    return buf.getvalue()


def test_zip_bombs_in_html5_and_perseus_files_are_refused(tmp_path, library, box):
    ex, ids = standard(tmp_path / "k")
    app = ex.node(hexid("bomb-app"), CHANNEL, "html5", "Bomb app")
    ex.file(app, "html5_zip", bomb(), "zip")
    quiz = ex.node(hexid("bomb-quiz"), CHANNEL, "exercise", "Bomb quiz")
    ex.file(quiz, "exercise", bomb("q.json"), "perseus")
    ex.save()
    done = kolibri.import_channel(library, ex.root, CHANNEL)
    assert len(done.report.refused) == 2 and all("zip bomb" in r for r in done.report.refused)
    nodes = nodes_of(library)
    assert app not in nodes and quiz not in nodes and ids["app"] in nodes
    stored = {p.name for p in box.storage.rglob("*") if p.is_file()}
    assert hashlib.sha256(bomb()).hexdigest() not in stored
    assert hashlib.sha256(bomb("q.json")).hexdigest() not in stored


def test_an_epub_that_is_not_one_is_refused(tmp_path, library):
    ex, ids = standard(tmp_path / "k")
    fake = ex.node(hexid("fake book"), CHANNEL, "document", "Fake book")
    ex.file(fake, "epub", b"PK not a zip", "epub")
    evil = ex.node(hexid("evil book"), CHANNEL, "document", "Evil book")
    ex.file(evil, "epub", epub_zip(("<p>a</p>",)).replace(b"text/ch0.xhtml", b"../../../../etc/passwd"), "epub")
    ex.save()
    done = kolibri.import_channel(library, ex.root, CHANNEL)
    assert sorted(r.split(":")[0] for r in done.report.refused) == ["Evil book", "Fake book"]
    nodes = nodes_of(library)
    assert fake not in nodes and evil not in nodes and ids["epub"] in nodes


def test_an_html5_zip_without_index_is_refused(tmp_path, library):
    ex, ids = standard(tmp_path / "k")
    app = ex.node(hexid("noindex"), CHANNEL, "html5", "No index")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("main.html", "x")
    ex.file(app, "html5_zip", buf.getvalue(), "zip")
    ex.save()
    done = kolibri.import_channel(library, ex.root, CHANNEL)
    assert "no index.html" in done.report.refused[0]


def test_an_older_channel_version_is_refused_unless_forced(tmp_path, library):
    ex, ids = standard(tmp_path / "k")
    ex.save()
    kolibri.import_channel(library, ex.root, CHANNEL)
    conn = sqlite3.connect(ex.path)
    conn.execute("UPDATE content_channelmetadata SET version = 1")
    conn.commit()
    conn.close()
    from passerelle.content import VersionConflict

    with pytest.raises(VersionConflict):
        kolibri.import_channel(library, ex.root, CHANNEL)
    assert kolibri.import_channel(library, ex.root, CHANNEL, force=True).result.status in (
        "downgraded", "reinstalled")


def test_unused_helpers_are_consistent():
    assert perseus_zip({}) and html5_zip()


def test_an_update_dry_run_lists_what_is_added_changed_and_removed(tmp_path, library):
    ex, ids = standard(tmp_path / "k")
    ex.save()
    kolibri.import_channel(library, ex.root, CHANNEL)
    ours = {k: nodes_of(library)[ids[k]]["id"] for k in ("audio", "pdf", "video")}
    same = kolibri.import_channel(library, ex.root, CHANNEL, dry_run=True)
    assert (same.added, same.changed, same.removed) == ([], [], []) and same.kept > 3
    conn = sqlite3.connect(ex.path)
    conn.execute("UPDATE content_contentnode SET title = 'A new song' WHERE id = ?", [ids["audio"]])
    conn.execute("DELETE FROM content_file WHERE contentnode_id = ?", [ids["pdf"]])
    conn.execute("DELETE FROM content_contentnode WHERE id = ?", [ids["pdf"]])
    conn.execute("UPDATE content_channelmetadata SET version = 4")
    conn.commit()
    conn.close()
    before = library.manifest(PACK)
    dry = kolibri.import_channel(library, ex.root, CHANNEL, dry_run=True)
    assert ours["audio"] in dry.changed and dry.titles[ours["audio"]] == "A new song"
    assert dry.removed == [ours["pdf"]] and dry.titles[ours["pdf"]] == "A booklet"
    assert ours["video"] not in dry.changed and dry.added == []
    assert dry.as_dict()["diff"]["removed"] == [{"id": ours["pdf"], "title": "A booklet"}]
    assert library.manifest(PACK) == before  # a dry run changes nothing


def test_a_slideshow_becomes_an_article_of_its_slides_in_order(tmp_path, library, box):
    ex, _ids = standard(tmp_path / "k")
    first, second, unused = PNG, PNG + b"2", PNG + b"3"
    md5 = {name: hashlib.md5(data).hexdigest() for name, data in
           (("first", first), ("second", second), ("unused", unused))}
    node = slideshow(ex, hexid("slides"), [
        {"checksum": md5["second"], "caption": "Then *wash* <script>x</script> [a](http://far.away/)",
         "descriptive_text": "Hands [under] water", "sort_order": 2},
        {"checksum": md5["first"], "caption": "First, soap.", "sort_order": 1},
        {"checksum": "f" * 32, "caption": "An image the channel does not hold", "sort_order": 0},
    ], {"first": first, "second": second, "unused": unused})
    ex.save()
    done = kolibri.import_channel(library, ex.root, CHANNEL)
    assert not done.report.partial and "slideshow" not in done.report.unavailable
    found = nodes_of(library)[node]
    assert found["kind"] == "article" and found["kolibri"]["kind"] == "slideshow"
    main = next(f for f in found["files"] if f["role"] == "main")
    assert main["mime"] == "text/markdown"
    text = library.blob_path(main["sha256"]).read_text()
    sha = {name: hashlib.sha256(data).hexdigest() for name, data in
           (("first", first), ("second", second))}
    # In Kolibri's order; the description is the image's text, the caption comes below it.
    assert text.index(sha["first"]) < text.index(")\n\nFirst, soap") < text.index(sha["second"])
    assert f"![First, soap\\.](sha256:{sha['first']})" in text  # no description: the caption
    assert f"![Hands \\[under\\] water](sha256:{sha['second']})" in text
    assert "\\*wash\\*" in text and "\\<script\\>" in text and "\\[a\\]\\(http" in text
    assert "An image the channel does not hold" not in text
    assert {f["sha256"] for f in found["files"] if f["role"] == "image"} >= set(sha.values())


def test_a_slideshow_whose_manifest_is_not_kolibris_is_refused_and_reported(tmp_path, library):
    ex, ids = standard(tmp_path / "k")
    node = slideshow(ex, hexid("bad-slides"), [], {"only": PNG}, manifest=b"{not json")
    ex.save()
    done = kolibri.import_channel(library, ex.root, CHANNEL)
    assert done.report.partial and "not a readable slideshow" in done.report.refused[0]
    assert node not in nodes_of(library) and ids["audio"] in nodes_of(library)
