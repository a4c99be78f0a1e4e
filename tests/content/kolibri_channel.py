"""Build Kolibri export folders for tests, with Kolibri's own schema (content DB v5) and our own files."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import uuid
import zipfile
from pathlib import Path

SCHEMA = Path(__file__).parents[1] / "fixtures" / "kolibri" / "SCHEMA_content_db_5.sql"
CHANNEL = "c0ffee00c0ffee00c0ffee00c0ffee00"


def hexid(seed: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, seed).hex


def perseus_zip(questions: dict[str, dict], mastery=("m_of_n", 2, 3), images: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        model, m, n = mastery
        zf.writestr("exercise.json", json.dumps({"all_assessment_items": list(questions), "mastery_model": model,
                                                 "m": m, "n": n, "randomize": False}))
        for qid, item in questions.items():
            zf.writestr(f"{qid}.json", json.dumps(item))
        for name, data in (images or {}).items():
            zf.writestr(f"images/{name}", data)
    return buf.getvalue()


def item(content: str, widgets: dict, hints=()) -> dict:
    return {"question": {"content": content, "images": {}, "widgets": widgets},
            "answerArea": {}, "hints": [{"content": h, "images": {}, "widgets": {}} for h in hints],
            "itemDataVersion": {"major": 0, "minor": 1}}


PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")

QUESTIONS = {
    "q1": item("How much is $3 + 4$? [[\u2603 input-number 1]]\n\n![](${\u2623 LOCALPATH}/images/dot.png)",
               {"input-number 1": {"type": "input-number", "graded": True,
                                   "options": {"value": 7, "simplify": "required", "answerType": "number"}}},
               hints=["Count on from $3$.", "$3 + 4 = 7$"]),
    "q2": item("Half of one? [[\u2603 numeric-input 1]]",
               {"numeric-input 1": {"type": "numeric-input", "options": {"answers": [
                   {"value": 0.5, "status": "correct", "simplify": "required", "strict": False,
                    "maxError": 0}]}}}),
    "q3": item("Pick the even number.\n\n[[\u2603 radio 1]]",
               {"radio 1": {"type": "radio", "options": {"choices": [
                   {"content": "$3$", "correct": False}, {"content": "$4$", "correct": True}]}}}),
    "q4": item("Put them in order [[\u2603 orderer 1]]", {"orderer 1": {"type": "orderer", "options": {}}}),
}


class ExportFolder:
    """A KOLIBRI_DATA folder being written: nodes and files, then ``save()``."""

    def __init__(self, root: Path, channel_id: str = CHANNEL, name: str = "Test channel", version: int = 3):
        self.root = Path(root)
        self.channel_id = channel_id
        self.db_dir = self.root / "content" / "databases"
        self.storage = self.root / "content" / "storage"
        self.db_dir.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(parents=True, exist_ok=True)
        self.path = self.db_dir / f"{channel_id}.sqlite3"
        self.db = sqlite3.connect(self.path)
        self.db.executescript(SCHEMA.read_text())
        self.lft = 0
        self.db.execute("INSERT INTO content_language VALUES ('fr', 'fr', NULL, 'Français', 'ltr')")
        self.db.execute(
            "INSERT INTO content_channelmetadata (id, name, description, tagline, author, version, thumbnail,"
            " last_updated, min_schema_version, root_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [channel_id, name, "A channel for tests", None, "Tests", version, "", "2024-05-01T10:00:00",
             "5", channel_id])
        self.node(channel_id, None, "topic", "Root", content_id=channel_id, lang="fr")

    def node(self, node_id: str, parent: str | None, kind: str, title: str, *, content_id: str | None = None,
             lang: str | None = None, coach: bool = False, options: dict | None = None, order: float = 0) -> str:
        self.lft += 1
        self.db.execute(
            "INSERT INTO content_contentnode (id, license_name, title, coach_content, content_id, channel_id,"
            " description, sort_order, license_owner, author, kind, available, options, duration, lft, rght,"
            " tree_id, level, lang_id, parent_id) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [node_id, "CC BY-SA", title, coach, content_id or hexid("content" + node_id), self.channel_id,
             f"About {title}", order, "Tests", "Tests", kind, True, json.dumps(options or {}), 60, self.lft,
             0, 1, 0, lang, parent])
        return node_id

    def file(self, node_id: str, preset: str, data: bytes, ext: str, *, lang: str | None = None,
             thumbnail: bool = False, write: bool = True, md5: str | None = None) -> str:
        md5 = md5 or hashlib.md5(data).hexdigest()
        self.db.execute("INSERT OR IGNORE INTO content_localfile VALUES (?,?,?,?)", [md5, ext, True, len(data)])
        self.db.execute(
            "INSERT INTO content_file (id, preset, supplementary, thumbnail, priority, contentnode_id, lang_id,"
            " local_file_id) VALUES (?,?,?,?,?,?,?,?)",
            [hexid(node_id + preset + md5), preset, preset.endswith("subtitle"), thumbnail, 1, node_id, lang, md5])
        if write:
            target = self.storage / md5[0] / md5[1] / f"{md5}.{ext}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return md5

    def save(self) -> Path:
        self.db.commit()
        self.db.close()
        return self.root


def html5_zip(index: bytes = b"<!doctype html><title>app</title><p>Hello") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("index.html", index)
    return buf.getvalue()


def epub_zip(chapters=("<p>Once upon a time</p>", "<p>The end</p>")) -> bytes:
    """A small EPUB 3: mimetype, container, package (manifest + spine) and XHTML chapters."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        zf.writestr("META-INF/container.xml",
                    '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:'
                    'xmlns:container"><rootfiles><rootfile full-path="OEBPS/content.opf" '
                    'media-type="application/oebps-package+xml"/></rootfiles></container>')
        items = "".join(f'<item id="c{i}" href="text/ch{i}.xhtml" media-type="application/xhtml+xml"/>'
                        for i in range(len(chapters)))
        refs = "".join(f'<itemref idref="c{i}"/>' for i in range(len(chapters)))
        zf.writestr("OEBPS/content.opf",
                    '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
                    f'<metadata/><manifest>{items}</manifest><spine>{refs}</spine></package>')
        for i, body in enumerate(chapters):
            zf.writestr(f"OEBPS/text/ch{i}.xhtml",
                        '<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><head><title>'
                        f'Chapter {i}</title></head><body>{body}</body></html>')
    return buf.getvalue()


def standard(root: Path) -> tuple[ExportFolder, dict]:
    """A channel with every kind: returns the folder and the ids that tests look at."""
    ex = ExportFolder(root)
    ids = {}
    ids["topic"] = ex.node(hexid("topic"), CHANNEL, "topic", "Numbers", order=1)
    ids["other"] = ex.node(hexid("other"), CHANNEL, "topic", "Other things", order=2)
    ids["video"] = ex.node(hexid("video"), ids["topic"], "video", "Counting video", lang="fr", order=1)
    ex.file(ids["video"], "high_res_video", b"HIGH" * 100, "mp4")
    ids["low_md5"] = ex.file(ids["video"], "low_res_video", b"LOW" * 10, "mp4")
    ex.file(ids["video"], "video_subtitle", b"WEBVTT\n\n00:00.000 --> 00:01.000\nBonjour\n", "vtt", lang="fr")
    ex.file(ids["video"], "video_thumbnail", PNG, "png", thumbnail=True)
    ids["exercise"] = ex.node(hexid("exercise"), ids["topic"], "exercise", "Adding", order=2, options={
        "completion_criteria": {"model": "mastery", "threshold": {"mastery_model": "num_correct_in_a_row_2"}}})
    ex.file(ids["exercise"], "exercise", perseus_zip(QUESTIONS, images={"dot.png": PNG}), "perseus")
    ids["audio"] = ex.node(hexid("audio"), ids["other"], "audio", "A song", order=1)
    ex.file(ids["audio"], "audio", b"ID3 audio bytes", "mp3")
    ids["pdf"] = ex.node(hexid("pdf"), ids["other"], "document", "A booklet", order=2)
    ex.file(ids["pdf"], "document", b"%PDF-1.4\n% test\n", "pdf")
    ids["app"] = ex.node(hexid("app"), ids["other"], "html5", "A game", order=3)
    ex.file(ids["app"], "html5_zip", html5_zip(), "zip")
    ids["h5p"] = ex.node(hexid("h5p"), ids["other"], "h5p", "An H5P thing", order=4)
    ex.file(ids["h5p"], "h5p", b"PK h5p", "h5p")
    ids["epub"] = ex.node(hexid("epub"), ids["other"], "document", "A book", order=5)
    ex.file(ids["epub"], "epub", epub_zip(), "epub")
    ids["coach"] = ex.node(hexid("coach"), ids["other"], "audio", "For coaches", coach=True, order=6)
    ex.file(ids["coach"], "audio", b"coach audio", "mp3")
    # The same resource (same content_id and file) under a second topic.
    ids["again"] = ex.node(hexid("again"), ids["other"], "audio", "A song", order=7,
                           content_id=hexid("content" + ids["audio"]))
    ex.file(ids["again"], "audio", b"ID3 audio bytes", "mp3")
    return ex, ids


def algebra_channel(root: Path) -> tuple[ExportFolder, str]:
    """A channel with one Khan Academy exercise: an expression to simplify (`e1`, "5x") and a
    radio question whose eight choices are shuffled (`r1`, "c")."""
    ex = ExportFolder(root)
    node = ex.node(hexid("algebra"), CHANNEL, "exercise", "Algebra", order=1)
    questions = {
        "e1": item("Write $2x + 3x$ more simply. [[\u2603 expression 1]]", {"expression 1": {
            "type": "expression", "options": {"answerForms": [
                {"value": "5x", "form": False, "simplify": True, "considered": "correct"}]}}}),
        "r1": item("Pick $c$. [[\u2603 radio 1]]", {"radio 1": {"type": "radio", "options": {
            "randomize": True, "choices": [{"content": f"${c}$", "correct": c == "c"} for c in "abcdefgh"]}}}),
    }
    ex.file(node, "exercise", perseus_zip(questions), "perseus")
    ex.save()
    return ex, node


def slideshow(ex, node_id: str, slides: list[dict], images: dict[str, bytes], manifest: bytes | None = None) -> str:
    """A Kolibri slideshow node as Kolibri Studio publishes it: a JSON manifest and its images."""
    node = ex.node(node_id, CHANNEL, "slideshow", "A slideshow", order=9)
    for data in images.values():
        ex.file(node, "slideshow_image", data, "png")
    if manifest is None:
        manifest = json.dumps({"slideshow_data": slides}).encode()
    ex.file(node, "slideshow_manifest", manifest, "json")
    return node
