"""Helpers for the content tests: small real packs (authoring folders, folder packs, zips) and a box."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import stat
import zipfile
from pathlib import Path

import sqlite_utils
from passerelle.content import MIGRATIONS, Library

MINI_PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>\n'


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_source(root: Path, *, version: int = 1, pack_id: str = "demo-pack", extra: str = "") -> Path:
    """An authoring folder using every feature of docs/authoring-format.md."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pack.yaml").write_text(
        f"id: {pack_id}\nversion: {version}\ntitle: Demo pack\ndescription: For tests.\n"
        "language: fr\nlicense: CC-BY-4.0\npublisher: Passerelle tests\ntags: [demo]\n"
        "homepage: https://example.org/unknown-field-kept\n")
    topic = root / "01-passwords"
    topic.mkdir(exist_ok=True)
    (topic / "_topic.yaml").write_text("title: Passwords\ndescription: Keep accounts safe.\n")
    (topic / "img").mkdir(exist_ok=True)
    (topic / "img" / "padlock.svg").write_bytes(SVG)
    (topic / "01-strong-passwords.md").write_text(
        "---\ntitle: Strong passwords\ndescription: Long beats complex.\ntags: [security]\n---\n"
        "# Passphrases\n\nA padlock: ![A padlock](img/padlock.svg)\n" + extra)
    (topic / "02-quiz.exercise.yaml").write_text("""\
title: Check your passwords
mastery: {model: m_of_n, m: 2, n: 3}
randomize: true
questions:
  - id: strongest
    type: single_choice
    prompt: "Which is strongest? ![lock](img/padlock.svg)"
    choices: ["P@ss1", "correct horse battery staple"]
    answer: 1
    hints: ["Length matters."]
    explanation: A long passphrase wins.
  - id: capital
    type: text
    prompt: Capital of Belgium?
    answers: ["Bruxelles", "Brussel"]
  - id: add
    type: generated
    variables: {a: {min: 10, max: 99}, b: {min: 10, max: 99}}
    prompt: "How much is {a} + {b}?"
    answer: "a + b"
    explanation: "{a} + {b} = {answer}"
""")
    (topic / "03-intro.webm").write_bytes(b"\x1aE\xdf\xa3 fake webm " * 200)
    (topic / "03-intro.yaml").write_text("title: How to hold a tablet\nduration: 31.5\n")
    (topic / "03-intro.fr.vtt").write_text("WEBVTT\n\n00:00.000 --> 00:01.000\nBonjour\n")
    (topic / "03-intro.poster.svg").write_bytes(SVG)
    (topic / "04-guide.pdf").write_bytes(MINI_PDF)
    game = topic / "05-game.html5"
    game.mkdir(exist_ok=True)
    (game / "index.html").write_text("<!doctype html><title>game</title><script src='js/app.js'></script>")
    (game / "js").mkdir(exist_ok=True)
    (game / "js" / "app.js").write_text("console.log('hi');\n")
    (topic / "05-game.yaml").write_text("title: A game\n")
    return root


# --- hand-made packs (for hostile and broken input) -----------------------------------------

def manifest_for(blobs: dict[str, bytes] | None = None, *, pack_id: str = "hand-pack", version: int = 1,
                 nodes: list[dict] | None = None, **extra) -> dict:
    blobs = blobs if blobs is not None else {"doc": MINI_PDF}
    if nodes is None:
        nodes = [{"id": "root", "parent": None, "kind": "topic", "title": "Root", "files": []}]
        for i, (name, data) in enumerate(blobs.items()):
            nodes.append({"id": name, "parent": "root", "kind": "document", "title": name.title(),
                          "order": i, "files": [{"sha256": sha(data), "size": len(data),
                                                 "mime": "application/pdf", "role": "main"}]})
    return {"format": 1, "id": pack_id, "version": version, "title": "Hand pack",
            "description": "", "language": "fr", "license": "CC0-1.0", "publisher": "tests",
            "created": "2026-01-01T00:00:00Z", "nodes": nodes, **extra}


def write_folder_pack(root: Path, manifest: dict | bytes, blobs: dict[str, bytes] | list[bytes]) -> Path:
    (root / "files").mkdir(parents=True, exist_ok=True)
    data = manifest if isinstance(manifest, bytes) else json.dumps(manifest, indent=1).encode()
    (root / "manifest.json").write_bytes(data)
    for blob in (blobs.values() if isinstance(blobs, dict) else blobs):
        (root / "files" / sha(blob)).write_bytes(blob)
    return root


def zip_folder(folder: Path, out: Path) -> Path:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return out


def hand_pack(tmp_path: Path, name: str = "hand", blobs: dict[str, bytes] | None = None, **kw) -> Path:
    blobs = blobs if blobs is not None else {"doc": MINI_PDF}
    return write_folder_pack(tmp_path / name, manifest_for(blobs, **kw), blobs)


def article_pack(root: Path, body: str, files: list[tuple[bytes, str, str]], *,
                 pack_id: str = "article-pack", article_mime: str = "text/markdown") -> Path:
    """A folder pack with one article whose body may link or show ``files``: (bytes, mime, role).

    Hostile packs are written by hand like this (the builder only writes allowed types).
    """
    article = body.encode()
    entries = [{"sha256": sha(article), "size": len(article), "mime": article_mime, "role": "main"}]
    entries += [{"sha256": sha(data), "size": len(data), "mime": mime, "role": role}
                for data, mime, role in files]
    nodes = [{"id": "root", "parent": None, "kind": "topic", "title": "Root", "files": []},
             {"id": "read-me", "parent": "root", "kind": "article", "title": "Read me", "order": 0,
              "files": entries}]
    blobs = [article] + [data for data, _, _ in files]
    return write_folder_pack(root, manifest_for(nodes=nodes, pack_id=pack_id), blobs)


# --- the library ----------------------------------------------------------------------------

class Box:
    def __init__(self, root: Path):
        self.root = root
        self.db_path = root / "passerelle.db"
        self.storage = root / "storage"
        self.tmp = root / "tmp"
        root.mkdir(parents=True, exist_ok=True)
        db = self.connect()
        db.execute("PRAGMA journal_mode = WAL")
        MIGRATIONS.apply(db)
        db.close()

    def connect(self) -> sqlite_utils.Database:
        conn = sqlite3.connect(str(self.db_path), timeout=5)
        conn.execute("PRAGMA foreign_keys = ON")
        return sqlite_utils.Database(conn)

    def library(self, **kw) -> Library:
        return Library(self.connect, self.storage, self.tmp, **kw)

    def snapshot(self) -> dict:
        """Everything an import may touch: catalog rows and the storage tree with hashes."""
        db = self.connect()
        try:
            tables = {t: sorted(map(tuple, db.execute(f"SELECT * FROM {t}").fetchall()), key=repr)
                      for t in ("content_packs", "content_nodes", "content_node_files", "content_blobs")}
        finally:
            db.close()
        files = {}
        if self.storage.exists():
            for path in sorted(self.storage.rglob("*")):
                st = path.lstat()
                files[path.relative_to(self.storage).as_posix()] = (
                    sha(path.read_bytes()) if stat.S_ISREG(st.st_mode) else "dir")
        return {"tables": tables, "files": files}

    def leftovers(self) -> list[str]:
        """Anything in tmp besides the lock file and empty folders."""
        if not self.tmp.exists():
            return []
        return sorted(p.relative_to(self.tmp).as_posix() for p in self.tmp.rglob("*")
                      if p.is_file() and p.name != "lock")


