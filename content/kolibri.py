"""Kolibri channels: found in an export folder, read by column name, converted into a pack and installed.

A Kolibri channel on disk is ``content/databases/<channel_id>.sqlite3`` (its
content database) plus ``content/storage/<a>/<b>/<md5>.<ext>`` (its files, named
by their md5). That is what Kolibri's "Export to drive" writes under
``KOLIBRI_DATA`` and what ``KOLIBRI_HOME/content`` holds.

Design
------
- **A channel becomes a pack, and installs like one, reading each file once.**
  Under the library lock (:meth:`Library.session`), every file the chosen
  topics need is copied into the library's staging area while its md5 (its
  name) and its SHA-256 are computed; :func:`convert` builds a manifest of our
  format (``docs/pack-format.md``) from what was staged, and the session's
  import does what every pack import does (content-addressed storage shared
  with every other pack, catalogue swapped in one transaction) without reading
  those files again. ``kill -9`` at any point leaves the box as it was; the next
  run finds what was staged and goes on. The pack id is ``kolibri-<channel id>``.
- **What is already on the box is not read again.** Each file entry of the
  manifest keeps the md5 it came from, so updating a channel (from a stick or a
  Kolibri server, :mod:`.kolibri_remote`) reads only the files it lacks.
- **A file that is missing or whose md5 differs** leaves its resource out, and
  the import reports it (a partial import), rather than refusing a whole channel
  for one bad video.
- **The database is read, never written**: it is opened read-only and
  immutable (no journal left on a USB stick), and columns are read by name, so
  older and newer schemas with extra tables or columns work. A file that is not
  a Kolibri content database, or is damaged, is refused with one line.
- **Nothing from the database is used as a path unchecked**: channel ids,
  md5 names and extensions must match strict patterns (an extension such as
  ``../../x`` is refused), and files are opened without following links.
- **Identity for progress is Kolibri's ``content_id``**: a resource's node id is
  its ``content_id``, so progress survives a channel update that moves it.
  Topics keep Kolibri's node id (that is what ``--topic`` takes). When one
  resource is placed under two topics, the second placement gets a derived id
  and ``same_as``: the first one's id, where the pages send learners, so that
  both placements share one progress.
- **A slideshow becomes an article**: its images in Kolibri's order, each with
  its caption below and its description as the image's text (:func:`slideshow_markdown`),
  shown by the article page on any tablet, without a script.
- **What the box cannot show is said, not broken**: h5p and other kinds become
  a small page saying the resource is not available on this box (the node
  carries ``unavailable``: the kind), and are counted in the report. Coach-only resources are kept, marked ``for_facilitators``. Exercises are Perseus, converted by
  :mod:`.perseus`; one with no playable question is left out and counted.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sqlite3
import stat
import threading
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from .errors import BlobMismatch, InvalidPack, PackNotFound, Problem, UnsafePack
from .library import release_memory
from .manifest import DEFAULT_LIMITS, Limits
from .packio import PackSource, scan_zip, unsafe_member_name
from .perseus import mastery_of, read_exercise

HEX32 = re.compile(r"^[0-9a-f]{32}$")
EXTENSION = re.compile(r"^[a-z0-9]{1,10}$")
LANGUAGE = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
PACK_PREFIX = "kolibri-"
REQUIRED = {
    "content_channelmetadata": {"id", "name", "version"},
    "content_contentnode": {"id", "parent_id", "kind", "title", "content_id"},
    "content_file": {"contentnode_id", "local_file_id", "preset"},
    "content_localfile": {"id", "extension"},
}
MIME = {"mp4": "video/mp4", "webm": "video/webm", "mp3": "audio/mpeg", "ogg": "audio/ogg", "m4a": "audio/mp4",
        "wav": "audio/wav", "pdf": "application/pdf", "zip": "application/zip", "vtt": "text/vtt",
        "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
        "svg": "image/svg+xml", "webp": "image/webp", "epub": "application/epub+zip",
        "h5p": "application/zip", "perseus": "application/zip", "json": "application/json"}
SLIDE_IMAGES = ("png", "jpg", "jpeg", "gif", "webp")
MAX_SLIDESHOW_MANIFEST = 1024 * 1024  # its text: a few hundred bytes per slide
VIDEO_PRESETS = {"low": ("low_res_video", "high_res_video", "video"),
                 "high": ("high_res_video", "low_res_video", "video")}
MAIN = {  # Kolibri kind → (our kind, presets of the main file, extensions we can show)
    "audio": ("audio", ("audio",), ("mp3", "ogg", "m4a", "wav")),
    "document": ("document", ("document", "epub"), ("pdf", "epub")),
    "html5": ("html5", ("html5_zip",), ("zip",)),
    "html5_zip": ("html5", ("html5_zip",), ("zip",)),
    "exercise": ("exercise", ("exercise",), ("perseus",)),
}
SUBTITLE_PRESETS = ("video_subtitle", "caption")
LABELS = ("learning_activities", "categories", "grade_levels", "resource_types", "accessibility_labels",
          "learner_needs")
LICENSES = {"CC BY": "CC-BY-4.0", "CC BY-SA": "CC-BY-SA-4.0", "CC BY-ND": "CC-BY-ND-4.0",
            "CC BY-NC": "CC-BY-NC-4.0", "CC BY-NC-SA": "CC-BY-NC-SA-4.0", "CC BY-NC-ND": "CC-BY-NC-ND-4.0",
            "Public Domain": "LicenseRef-Public-Domain", "All Rights Reserved": "LicenseRef-All-Rights-Reserved",
            "Special Permissions": "LicenseRef-Special-Permissions"}
Progress = Callable[[int, int, str], None]


class NotAChannel(InvalidPack):
    """The file is not a Kolibri content database, or it is damaged."""

    def __init__(self, where: str, why: str):
        super().__init__([Problem(where, why)], "not a Kolibri channel")
        self.message = f"{where}: not a Kolibri channel database ({why})"
        self.args = (self.message,)


# --- finding and reading channels -----------------------------------------------------

@dataclass
class Channel:
    id: str
    name: str
    description: str
    version: int
    author: str
    language: str
    thumbnail: str          # a data: URI, as Kolibri stores it, or ""
    last_updated: str
    resources: int          # nodes that are not topics
    size: int               # bytes of every file the database lists (what a full import reads)
    db_path: str
    storage: str

    @property
    def pack_id(self) -> str:
        return PACK_PREFIX + self.id

    def as_dict(self) -> dict:
        return asdict(self)


def databases_dir(root: str | os.PathLike) -> Path | None:
    """Where a folder keeps channel databases: ``KOLIBRI_DATA``, ``KOLIBRI_HOME``, or their ``content``."""
    root = Path(root)
    for candidate in (root / "content" / "databases", root / "databases",
                      root / "KOLIBRI_DATA" / "content" / "databases"):
        if candidate.is_dir():
            return candidate
    return None


def is_kolibri_folder(root: str | os.PathLike) -> bool:
    found = databases_dir(root)
    return found is not None and any(HEX32.match(p.stem) for p in found.glob("*.sqlite3"))


def find_channels(root: str | os.PathLike) -> tuple[list[Channel], list[Problem]]:
    """Every channel of an export folder, and one problem per database that could not be read."""
    found = databases_dir(root)
    if found is None:
        raise PackNotFound(f"{root}: no Kolibri channels here (no content/databases folder)")
    channels, problems = [], []
    for path in sorted(found.glob("*.sqlite3")):
        if not HEX32.match(path.stem):
            continue
        try:
            with ChannelDatabase(path) as db:
                channels.append(db.channel())
        except InvalidPack as exc:
            problems.append(Problem(str(path), exc.message))
    return channels, problems


def open_channel(root: str | os.PathLike, channel_id: str) -> ChannelDatabase:
    if not HEX32.match(channel_id or ""):
        raise PackNotFound(f"{channel_id!r} is not a Kolibri channel id (32 hexadecimal characters)")
    found = databases_dir(root)
    path = found / f"{channel_id}.sqlite3" if found else None
    if path is None or not path.is_file():
        raise PackNotFound(f"{root}: no channel {channel_id} here")
    return ChannelDatabase(path)


class ChannelDatabase:
    """One content database, opened read-only; every query names its columns."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.storage = self.path.parent.parent / "storage"
        where = str(self.path)
        try:
            st = os.stat(self.path, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise NotAChannel(where, "not a regular file")
            with open(self.path, "rb") as f:
                if f.read(16) != b"SQLite format 3\x00":
                    raise NotAChannel(where, "not an SQLite database")
            self.conn = sqlite3.connect(f"file:{quote(str(self.path.resolve()))}?mode=ro&immutable=1",
                                        uri=True, check_same_thread=False)
            self.conn.row_factory = sqlite3.Row
            self.columns = {}
            for (table,) in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
                self.columns[table] = {r[1] for r in self.conn.execute(f'PRAGMA table_info("{table}")')}
        except sqlite3.DatabaseError as exc:
            raise NotAChannel(where, f"damaged or not a database: {exc}") from None
        for table, needed in REQUIRED.items():
            if table not in self.columns:
                self.close()
                raise NotAChannel(where, f"no {table} table")
            lacking = needed - self.columns[table]
            if lacking:
                self.close()
                raise NotAChannel(where, f"{table} has no column {', '.join(sorted(lacking))}")

    def close(self) -> None:
        conn = getattr(self, "conn", None)
        if conn is not None:
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def has(self, table: str, column: str) -> bool:
        return column in self.columns.get(table, ())

    def _select(self, table: str, wanted: Iterable[str], tail: str = "", args=()) -> list[dict]:
        cols = [c for c in wanted if self.has(table, c)]
        sql = f"SELECT {', '.join(cols)} FROM {table} {tail}"
        try:
            return [dict(r) for r in self.conn.execute(sql, args)]
        except sqlite3.DatabaseError as exc:
            raise NotAChannel(str(self.path), f"damaged: {exc}") from None

    def meta(self) -> dict:
        rows = self._select("content_channelmetadata", ("id", "name", "description", "tagline", "author",
                                                         "version", "thumbnail", "last_updated", "root_id",
                                                         "root_pk"))
        row = next((r for r in rows if r.get("id") == self.path.stem), None)
        if row is None:
            raise NotAChannel(str(self.path), f"no channel {self.path.stem} in its metadata")
        return row

    def channel(self) -> Channel:
        meta = self.meta()
        try:
            counted = self.conn.execute(
                "SELECT COUNT(*) FROM content_contentnode WHERE kind != 'topic'").fetchone()[0]
            size = (self.conn.execute("SELECT COALESCE(SUM(file_size), 0) FROM content_localfile").fetchone()[0]
                    if self.has("content_localfile", "file_size") else 0)
        except sqlite3.DatabaseError as exc:
            raise NotAChannel(str(self.path), f"damaged: {exc}") from None
        return Channel(id=self.path.stem, name=_text(meta.get("name")) or self.path.stem,
                       description=_text(meta.get("description")), version=_int(meta.get("version")),
                       author=_text(meta.get("author")), language=self.language(meta),
                       thumbnail=_text(meta.get("thumbnail")) if _text(meta.get("thumbnail")).startswith(
                           "data:image/") else "",
                       last_updated=_text(meta.get("last_updated")), resources=int(counted or 0),
                       size=int(size or 0), db_path=str(self.path), storage=str(self.storage))

    def language(self, meta: dict | None = None) -> str:
        """The channel's language: its root's, else the most common among its nodes."""
        if not self.has("content_contentnode", "lang_id"):
            return "und"
        root = self.root_id(meta)
        rows = self._select("content_contentnode", ("lang_id",), "WHERE id = ?", [root])
        lang = _language(rows[0].get("lang_id")) if rows else None
        if lang:
            return lang
        try:
            row = self.conn.execute("SELECT lang_id FROM content_contentnode WHERE lang_id IS NOT NULL "
                                    "GROUP BY lang_id ORDER BY COUNT(*) DESC LIMIT 1").fetchone()
        except sqlite3.DatabaseError as exc:
            raise NotAChannel(str(self.path), f"damaged: {exc}") from None
        return (_language(row[0]) if row else None) or "und"

    def root_id(self, meta: dict | None = None) -> str:
        meta = meta or self.meta()
        root = meta.get("root_id") or meta.get("root_pk")
        if root:
            return root
        rows = self._select("content_contentnode", ("id",), "WHERE parent_id IS NULL LIMIT 1")
        if not rows:
            raise NotAChannel(str(self.path), "no root node")
        return rows[0]["id"]

    def nodes(self) -> list[dict]:
        order = "ORDER BY lft" if self.has("content_contentnode", "lft") else ""
        return self._select("content_contentnode", (
            "id", "parent_id", "kind", "title", "content_id", "description", "sort_order", "lang_id",
            "license_name", "license_owner", "author", "coach_content", "options", "duration", *LABELS), order)

    def files(self) -> dict[str, list[dict]]:
        wanted = ["f.contentnode_id", "f.preset", "f.local_file_id", "l.extension"]
        for col, alias in (("lang_id", "f.lang_id"), ("thumbnail", "f.thumbnail"),
                           ("supplementary", "f.supplementary"), ("priority", "f.priority")):
            if self.has("content_file", col):
                wanted.append(alias)
        if self.has("content_localfile", "file_size"):
            wanted.append("l.file_size")
        order = "ORDER BY f.priority" if self.has("content_file", "priority") else ""
        sql = (f"SELECT {', '.join(wanted)} FROM content_file f JOIN content_localfile l "
               f"ON l.id = f.local_file_id {order}")
        out: dict[str, list[dict]] = {}
        try:
            for r in self.conn.execute(sql):
                out.setdefault(r["contentnode_id"], []).append(dict(r))
        except sqlite3.DatabaseError as exc:
            raise NotAChannel(str(self.path), f"damaged: {exc}") from None
        return out

    def tags(self) -> dict[str, list[str]]:
        if "content_contentnode_tags" not in self.columns or "content_contenttag" not in self.columns:
            return {}
        out: dict[str, list[str]] = {}
        try:
            for node, tag in self.conn.execute(
                    "SELECT t.contentnode_id, g.tag_name FROM content_contentnode_tags t "
                    "JOIN content_contenttag g ON g.id = t.contenttag_id"):
                if isinstance(tag, str) and tag.strip():
                    out.setdefault(node, []).append(tag.strip()[:100])
        except sqlite3.DatabaseError:
            return {}  # tags are a nicety: an odd tags table does not refuse a channel
        return out

    def assessments(self) -> dict[str, dict]:
        if "content_assessmentmetadata" not in self.columns:
            return {}
        rows = self._select("content_assessmentmetadata", ("contentnode_id", "mastery_model", "randomize"))
        return {r["contentnode_id"]: r for r in rows if r.get("contentnode_id")}


def _text(value) -> str:
    return value.strip() if isinstance(value, str) else ""


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _language(value) -> str | None:
    text = _text(value).replace("_", "-")
    return text if LANGUAGE.match(text) and len(text) <= 35 else None


def _license(name) -> str | None:
    text = _text(name)
    if not text:
        return None
    return LICENSES.get(text) or "LicenseRef-" + (re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-")[:60] or "Other")


# --- planning: which nodes, which files --------------------------------------------------

@dataclass
class PlannedFile:
    md5: str
    ext: str
    size: int       # as the database says (0 if unknown); the real size is measured while hashing
    role: str
    lang: str | None = None


@dataclass
class PlannedNode:
    id: str
    parent: str | None
    kind: str                 # ours, "slideshow" (an article once converted), or "unavailable"
    kolibri_kind: str
    data: dict                # the node's manifest fields except files/exercise
    files: list[PlannedFile] = field(default_factory=list)
    main: PlannedFile | None = None
    mastery: object = None


@dataclass
class Plan:
    channel: Channel
    topics: list[str] | None
    nodes: list[PlannedNode]      # emptied by :func:`convert` as it goes (a big channel's plan is large)
    kinds: Counter
    unavailable: Counter
    coach_only: int
    node_count: int = 0
    size: int = 0                 # bytes to read from the export (each md5 once)

    def __post_init__(self):
        self.node_count = len(self.nodes)
        seen = {}
        for node in self.nodes:
            for f in node.files + ([node.main] if node.main else []):
                seen[f.md5] = f.size
        self.size = sum(seen.values())

    def summary(self) -> dict:
        return {"channel": self.channel.id, "name": self.channel.name, "version": self.channel.version,
                "topics": self.topics, "nodes": self.node_count, "size": self.size,
                "kinds": dict(self.kinds), "unavailable": dict(self.unavailable), "coach_only": self.coach_only}


def plan(db: ChannelDatabase, topics: Iterable[str] | None = None, video: str = "low",
         limits: Limits = DEFAULT_LIMITS) -> Plan:
    """The nodes and files an import of ``topics`` (None: the whole channel) would take."""
    channel = db.channel()
    meta = db.meta()
    root = db.root_id(meta)
    rows = db.nodes()
    by_id = {r["id"]: r for r in rows if isinstance(r.get("id"), str)}
    if root not in by_id:
        raise NotAChannel(str(db.path), f"the root node {root} is missing")
    children: dict[str, list[dict]] = {}
    for r in rows:
        children.setdefault(r.get("parent_id"), []).append(r)
    for siblings in children.values():
        siblings.sort(key=lambda r: (r.get("sort_order") is None, r.get("sort_order") or 0))
    chosen = None
    keep: set[str] = set()
    if topics:
        chosen = sorted(set(topics))
        for t in chosen:
            if t not in by_id:
                raise PackNotFound(f"channel {channel.id} has no node {t}")
        for t in chosen:  # the path from the root, so the subtree hangs where it belongs
            current, hops = t, 0
            while current is not None and current in by_id and hops <= limits.max_depth + 1:
                keep.add(current)
                current, hops = by_id[current].get("parent_id"), hops + 1
    files = db.files()
    tags = db.tags()
    assessments = db.assessments()
    out: list[PlannedNode] = []
    kinds: Counter = Counter()
    unavailable: Counter = Counter()
    coach = 0
    used_ids: set[str] = set()
    stack = [(root, None, 0, chosen is None)]
    while stack:
        node_id, parent, depth, whole = stack.pop()
        row = by_id[node_id]
        inside = whole or (chosen is not None and node_id in chosen)
        if not inside and node_id not in keep:
            continue
        if row.get("coach_content"):
            coach += 1  # imported, marked for facilitators (_plan_node)
        if depth > limits.max_depth:
            raise NotAChannel(str(db.path), f"the tree is deeper than {limits.max_depth} levels")
        planned = _plan_node(row, parent, files.get(node_id, []), tags.get(node_id, []),
                             assessments.get(node_id), video, used_ids, is_root=parent is None)
        if planned is None:
            continue
        out.append(planned)
        kinds[planned.kolibri_kind] += 1
        if planned.kind == "unavailable":
            unavailable[planned.kolibri_kind] += 1
        if len(out) > limits.max_nodes:
            raise NotAChannel(str(db.path), f"more than {limits.max_nodes} nodes")
        if planned.kind == "topic":
            for child in reversed(children.get(node_id, [])):
                if child.get("id") in by_id:
                    stack.append((child["id"], planned.id, depth + 1, inside))
    return Plan(channel, chosen, out, kinds, unavailable, coach)


def _plan_node(row: dict, parent: str | None, files: list[dict], tags: list[str], assessment: dict | None,
               video: str, used: set[str], is_root: bool) -> PlannedNode | None:
    kolibri_kind = _text(row.get("kind")) or "unknown"
    same_as = None
    node_key = _text(row.get("id"))
    content_id = _text(row.get("content_id"))
    if not HEX32.match(node_key):
        return None
    if kolibri_kind == "topic" or is_root:
        our_id = node_key
    else:
        our_id = content_id if HEX32.match(content_id) else node_key
        if our_id in used:  # the same resource under a second topic
            same_as, our_id = our_id, f"{our_id}-{node_key[:8]}"
    if our_id in used:
        return None
    used.add(our_id)
    # Kept as Kolibri wrote them (ids, mapped to search facets by :mod:`.kolibri_labels`), bounded:
    # a column is data from the stick, and a node's JSON is read on every page that shows it.
    labels = {k: list(dict.fromkeys(v.strip()[:64] for v in _text(row.get(k))[:4096].split(",")
                                    if v.strip()))[:32]
              for k in LABELS if _text(row.get(k))}
    labels = {k: v for k, v in labels.items() if v}
    data = {"id": our_id, "parent": parent, "title": (_text(row.get("title")) or "Untitled")[:500]}
    if same_as:
        data["same_as"] = same_as  # the first placement: the pages send learners there, one progress
    if _text(row.get("description")):
        data["description"] = _text(row.get("description"))[:20000]
    lang = _language(row.get("lang_id"))
    if lang:
        data["language"] = lang
    if tags:
        data["tags"] = sorted(set(tags))[:64]
    if row.get("coach_content"):  # Kolibri's "coach content": a guide for facilitators
        data["for_facilitators"] = True
    kolibri = {"node_id": node_key, "content_id": content_id, "kind": kolibri_kind}
    for key in ("license_owner", "author"):
        if _text(row.get(key)):
            kolibri[key] = _text(row.get(key))[:200]
    if _license(row.get("license_name")):
        kolibri["license"] = _license(row.get("license_name"))
    if labels:
        kolibri["labels"] = labels
    data["kolibri"] = kolibri
    planned = PlannedNode(id=our_id, parent=parent, kind="topic", kolibri_kind=kolibri_kind, data=data)
    usable = [f for f in files if HEX32.match(_text(f.get("local_file_id")))
              and EXTENSION.match(_text(f.get("extension")))]
    thumb = next((f for f in usable if (f.get("thumbnail") or str(f.get("preset", "")).endswith("_thumbnail"))
                  and f["extension"] in ("png", "jpg", "jpeg", "gif", "webp")), None)
    if thumb:
        planned.files.append(_planned(thumb, "thumbnail"))
    if kolibri_kind == "topic" or is_root:
        return planned
    if kolibri_kind == "video":
        presets = VIDEO_PRESETS.get(video, VIDEO_PRESETS["low"])
        mains = sorted((f for f in usable if f.get("preset") in presets and f["extension"] in ("mp4", "webm")),
                       key=lambda f: presets.index(f["preset"]))
        planned.kind = "video"
        data["duration"] = max(0, min(360000, _int(row.get("duration"))))
        for f in usable:
            if f.get("preset") in SUBTITLE_PRESETS and f["extension"] == "vtt":
                planned.files.append(_planned(f, "subtitles", _language(f.get("lang_id"))))
    elif kolibri_kind == "slideshow":
        # Its manifest (JSON: the slides' order, captions and descriptions) and its images.
        mains = [f for f in usable if f.get("preset") == "slideshow_manifest" and f["extension"] == "json"]
        planned.kind = "slideshow"
        planned.files.extend(_planned(f, "image") for f in usable
                             if f.get("preset") == "slideshow_image" and f["extension"] in SLIDE_IMAGES)
    elif kolibri_kind in MAIN:
        planned.kind, presets, exts = MAIN[kolibri_kind]
        mains = sorted((f for f in usable if f.get("preset") in presets and f["extension"] in exts),
                       key=lambda f: exts.index(f["extension"]))  # a PDF before an EPUB
        if planned.kind == "audio":
            data["duration"] = max(0, min(360000, _int(row.get("duration"))))
        if planned.kind == "exercise":
            planned.mastery = _mastery_spec(row, assessment)
            planned.data["randomize"] = bool((assessment or {}).get("randomize"))
    else:
        mains = []
    if not mains:
        planned.kind = "unavailable"
        # The kind we cannot show: a document in EPUB is "epub", not "document".
        ext = next((f["extension"] for f in usable if not f.get("supplementary") and f is not thumb), None)
        if kolibri_kind in MAIN or kolibri_kind == "video":
            planned.kolibri_kind = f"{kolibri_kind} ({ext or 'no file'})"
        planned.files = [f for f in planned.files if f.role == "thumbnail"]
        return planned
    planned.main = _planned(mains[0], "main")
    return planned


def _planned(row: dict, role: str, lang: str | None = None) -> PlannedFile:
    return PlannedFile(md5=row["local_file_id"], ext=row["extension"], size=max(0, _int(row.get("file_size"))),
                       role=role, lang=lang)


def _mastery_spec(row: dict, assessment: dict | None):
    """Kolibri 0.15+ puts mastery in the node's options; older channels in assessment metadata."""
    try:
        options = json.loads(row.get("options") or "{}")
        threshold = options.get("completion_criteria", {}).get("threshold")
        if isinstance(threshold, dict) and threshold.get("mastery_model"):
            return threshold
    except (ValueError, AttributeError):
        pass
    if assessment and assessment.get("mastery_model"):
        try:
            spec = json.loads(assessment["mastery_model"])
            if isinstance(spec, dict) and spec.get("type"):
                return spec
        except ValueError:
            pass
    return None


# --- converting: hashing files, building the manifest ---------------------------------------

@dataclass
class Report:
    """What a conversion left out, and why (shown to the coordinator before and after import)."""

    missing: list[str] = field(default_factory=list)        # "title: md5.ext"
    damaged: list[str] = field(default_factory=list)        # md5 mismatch, unreadable
    refused: list[str] = field(default_factory=list)        # unsafe html5 or exercise zips
    unavailable: Counter = field(default_factory=Counter)   # kind → resources shown as unavailable
    hidden_exercises: int = 0
    questions_total: int = 0
    questions_playable: int = 0
    skipped_widgets: Counter = field(default_factory=Counter)
    coach_only: int = 0

    @property
    def partial(self) -> bool:
        return bool(self.missing or self.damaged or self.refused)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["unavailable"] = dict(self.unavailable)
        d["skipped_widgets"] = dict(self.skipped_widgets)
        d["partial"] = self.partial
        return d


class KolibriSource(PackSource):
    """A converted channel as a pack source: the manifest made here, blobs read from the export."""

    def __init__(self, manifest: bytes | bytearray, blobs: dict[str, tuple[int, object]], description: str,
                 report: Report, plan: Plan, files=None):
        # sha256 → (size, (md5, ext) of the channel's file | bytes | None: staged by the conversion)
        self.blobs = blobs
        self.files = files
        self.description = description
        self.problems = []
        self.report = report
        self.plan = plan
        self._bytes = manifest

    @property
    def manifest(self) -> dict:
        return json.loads(self._bytes)

    def manifest_bytes(self) -> bytes:
        # The conversion's buffer (a bytearray, never changed after): bytes-like, not copied.
        return self._bytes  # type: ignore[return-value]

    def signature_bytes(self) -> bytes | None:
        return None

    def blob_size(self, sha256: str):
        found = self.blobs.get(sha256)
        return None if found is None else found[0]

    def blob_names(self) -> set[str]:
        return set(self.blobs)

    def open_blob(self, sha256: str, size: int) -> BinaryIO:
        _size, where = self.blobs[sha256]
        if isinstance(where, bytes):
            return io.BytesIO(where)
        if where is None or self.files is None:
            raise InvalidPack([Problem(f"files/{sha256}", "was staged by the conversion and is gone")])
        return self.files.opener(*where)(0)  # a file of the channel (export folder or Kolibri server)


def _member_opener(data: bytes, member: str) -> Callable[[int], BinaryIO]:
    """A zip member of ``data`` as a stream from ``offset`` (a part staged by an interrupted run)."""
    def open_at(offset: int) -> BinaryIO:
        stream = zipfile.ZipFile(io.BytesIO(data)).open(member)
        stream.read(offset)
        return stream
    return open_at


SMALL = 64 * 1024 * 1024   # a .perseus zip is read into memory up to this size


def _read_small(files, f: PlannedFile) -> bytes | str:
    """The bytes of a small channel file, its md5 checked; or why it cannot be used."""
    try:
        with files.opener(f.md5, f.ext)(0) as stream:
            data = stream.read(SMALL + 1)
    except FileNotFoundError:
        return "missing"
    except UnsafePack as exc:
        return f"unreadable ({exc.message})"
    except InvalidPack:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc})"
    if len(data) > SMALL:
        return f"unreadable (larger than {SMALL // 2**20} MB)"
    got = hashlib.md5(data, usedforsecurity=False).hexdigest()
    if got != f.md5:
        return f"damaged (md5 is {got}, its name says {f.md5})"
    return data


def _open_regular(path: str | os.PathLike) -> int:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafePack([Problem(str(path), "not a regular file")])
    return fd


def storage_path(storage: str | os.PathLike, md5: str, ext: str) -> Path:
    """``storage/<a>/<b>/<md5>.<ext>``, only for names that cannot leave the folder."""
    if not HEX32.match(md5) or not EXTENSION.match(ext):
        raise UnsafePack([Problem(f"{md5}.{ext}", "unsafe file name in the channel database")])
    return Path(os.path.join(storage, md5[0], md5[1], f"{md5}.{ext}"))


class LocalFiles:
    """The files of an export folder: ``storage/<a>/<b>/<md5>.<ext>``."""

    local = True

    def __init__(self, storage: str | os.PathLike):
        self.storage = Path(storage)

    def opener(self, md5: str, ext: str) -> Callable[[int], BinaryIO]:
        path = storage_path(self.storage, md5, ext)

        def open_at(offset: int) -> BinaryIO:
            f = os.fdopen(_open_regular(path), "rb", buffering=0)
            if offset:
                f.seek(offset)
            return f

        return open_at


def installed_files(manifest: dict | None) -> tuple[dict[str, tuple[str, int]], dict[str, dict]]:
    """What an installed channel already holds, so that it is not read again.

    md5 → (sha256, size) of its files, and md5 of a ``.perseus`` file → the exercise
    node made from it (the zip itself is not kept: its questions and images are).
    """
    known: dict[str, tuple[str, int]] = {}
    exercises: dict[str, dict] = {}
    for node in (manifest or {}).get("nodes", ()):
        for f in node.get("files", ()):
            md5 = f.get("md5")
            if isinstance(md5, str) and HEX32.match(md5):
                known[md5] = (f["sha256"], f["size"])
        md5 = ((node.get("exercise") or {}).get("source") or {}).get("md5")
        if isinstance(md5, str) and HEX32.match(md5):
            exercises[md5] = node
    return known, exercises


def _reused_exercise(node: dict | None, session) -> tuple[dict, list[dict]] | None:
    """An installed exercise node's (exercise, image files), if every image is still stored."""
    if node is None:
        return None
    images = [f for f in node.get("files", ()) if f.get("role") == "image"]
    if not all(session.has(f["sha256"], f["size"]) for f in images):
        return None
    return node["exercise"], images


def _obtain(session, files, f: PlannedFile, known: dict, limits: Limits,
            on_read: Callable[[int], None]) -> tuple[str, int] | str:
    """(sha256, size) of a channel file, staged on its one read; or why it cannot be used.

    A file this channel's installed version already holds is not read at all; one
    that an interrupted run staged is found again; any other is copied into the
    library's staging area while its md5 (its name) and SHA-256 are computed.
    """
    got = known.get(f.md5)
    if got is not None and session.has(*got):
        return got
    key = f"kolibri-{f.md5}"
    got = session.staged(key)
    if got is not None:
        return got
    try:
        return session.stage(files.opener(f.md5, f.ext), key, expect={"md5": f.md5},
                             limit=limits.max_blob_size, on_read=on_read)
    except FileNotFoundError:
        return "missing"
    except BlobMismatch as exc:
        return f"damaged ({exc.detail})"
    except UnsafePack as exc:
        return f"unreadable ({exc.message})"
    except InvalidPack:  # the Kolibri server answered 404: it does not hold this file
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc})"


STAGING_THREADS = min(os.cpu_count() or 1, 4)


class _Stager:
    """Stage every file of a disk's channel that the conversion will read, on all cores,
    while the conversion runs.

    Copying is reading, hashing (md5 and SHA-256) and writing: hashlib and file I/O release
    the GIL, so a few threads keep every core busy where one kept one. The files are staged
    in the plan's order on a background thread and the conversion, which walks the same
    order, takes each result when it comes to it: its own work (exercises read and
    converted in memory, html5 zips checked, the manifest encoded) runs meanwhile instead
    of after the last copy. A file under a topic the conversion later leaves out is staged
    for nothing, and cleaned up by the import. From a server, files come one at a time over
    one connection: not here.
    """

    def __init__(self, session, files, nodes: list[PlannedNode], known: dict, limits: Limits,
                 on_read: Callable[[int], None]):
        wanted: dict[str, PlannedFile] = {}
        for planned in nodes:
            for f in planned.files:
                wanted.setdefault(f.md5, f)
            if planned.main is not None and planned.kind != "exercise":
                wanted.setdefault(planned.main.md5, planned.main)
        self._todo = [f for f in wanted.values() if not (f.md5 in known and session.has(*known[f.md5]))]
        self._pending = {f.md5 for f in self._todo}
        self._got: dict[str, tuple[str, int] | str] = {}
        self._ready = threading.Condition()
        self._stop = False
        self._error: BaseException | None = None
        self._work = (session, files, known, limits, on_read)
        self._thread = threading.Thread(target=self._run, name="kolibri-stager", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        session, files, known, limits, on_read = self._work
        try:
            with ThreadPoolExecutor(STAGING_THREADS, thread_name_prefix="kolibri-stage") as pool:
                # A few hundred at a time: 20,000 futures queued at once would be 20 MB of bookkeeping.
                for i in range(0, len(self._todo), 256):
                    if self._stop:
                        return
                    part = self._todo[i:i + 256]
                    results = pool.map(lambda f: _obtain(session, files, f, known, limits, on_read), part)
                    for f, one in zip(part, results, strict=True):
                        with self._ready:
                            self._got[f.md5] = one
                            self._ready.notify_all()
        except BaseException as exc:  # noqa: BLE001 - handed to the conversion, which raises it
            self._error = exc
        finally:
            self._todo = []
            with self._ready:
                self._stop = True
                self._ready.notify_all()

    def take(self, md5: str) -> tuple[str, int] | str | None:
        """The staging's result for a file it stages (waiting for it); None for another file."""
        if md5 not in self._pending:
            return None
        with self._ready:
            while md5 not in self._got and not self._stop:
                self._ready.wait()
        if self._error is not None:
            raise self._error
        self._pending.discard(md5)
        return self._got.pop(md5, None)

    def close(self) -> None:
        """Stop staging (the conversion failed) or wait for its end; nothing is copied afterwards."""
        with self._ready:
            self._stop = True
        self._thread.join()


def convert(db: ChannelDatabase, chosen: Plan, session, files=None, limits: Limits = DEFAULT_LIMITS,
            progress: Progress | None = None, installed: tuple[dict, dict] | None = None) -> KolibriSource:
    """Stage every file the plan needs (one read each, md5 checked) and build the pack manifest.

    ``session`` is the library's :class:`~passerelle.content.library.ImportSession`;
    ``files`` where the channel's files are read (its export folder by default, or a
    Kolibri server); ``installed`` what the installed version holds (:func:`installed_files`).
    """
    channel = chosen.channel
    files = files or LocalFiles(channel.storage)
    known, installed_exercises = installed or ({}, {})
    report = Report(unavailable=Counter(chosen.unavailable), coach_only=chosen.coach_only)
    hashed: dict[str, tuple[str, int] | str] = {}
    blobs: dict[str, tuple[int, object]] = {}
    total = chosen.size
    done = 0
    counting = threading.Lock()

    def on_read(n: int) -> None:
        nonlocal done
        with counting:  # staging threads: one progress line at a time
            done += n
            if progress:
                progress(min(done, total), total, "copy")

    stager = _Stager(session, files, chosen.nodes, known, limits, on_read) \
        if getattr(files, "local", False) else None
    try:
        return _convert(chosen, session, files, limits, known, installed_exercises, report, hashed, blobs,
                        on_read, stager)
    finally:
        if stager is not None:
            stager.close()


def _convert(chosen: Plan, session, files, limits: Limits, known: dict, installed_exercises: dict,
             report: Report, hashed: dict, blobs: dict, on_read: Callable[[int], None],
             stager: _Stager | None) -> KolibriSource:
    channel = chosen.channel

    def fetch_failed(f: PlannedFile, title: str, why: str) -> None:
        line = f"{title}: {f.md5}.{f.ext} {why}"
        if why == "missing":
            if line not in report.missing:
                report.missing.append(line)
        elif line not in report.damaged:
            report.damaged.append(line)

    def fetch(f: PlannedFile, title: str) -> dict | None:
        if f.md5 not in hashed:
            got = stager.take(f.md5) if stager is not None else None
            hashed[f.md5] = got if got is not None else _obtain(session, files, f, known, limits, on_read)
        got = hashed[f.md5]
        if isinstance(got, str):
            fetch_failed(f, title, got)
            return None
        sha, size = got
        # Its name, not an opener: 20,000 closures and paths would be 20 MB held to the end.
        blobs[sha] = (size, (f.md5, f.ext))
        entry = {"sha256": sha, "size": size, "mime": MIME.get(f.ext, "application/octet-stream"),
                 "role": f.role, "md5": f.md5}
        if f.lang:
            entry["lang"] = f.lang
        return entry

    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    # Each node's JSON as soon as it is made (a manifest's dicts are large), appended to the
    # manifest's one buffer; its head goes in front at the end.
    body = bytearray()
    count = 0
    licenses: Counter = Counter()
    kept: set[str] = set()
    todo, chosen.nodes = chosen.nodes, []
    for i in range(len(todo)):
        planned, todo[i] = todo[i], None
        if planned.parent is not None and planned.parent not in kept:
            continue
        node = dict(planned.data)
        title = node["title"]
        node_files = [e for e in (fetch(f, title) for f in planned.files) if e]
        kind = planned.kind
        if kind == "unavailable":
            kind = "article"
            node["unavailable"] = planned.kolibri_kind
            text = f"# {title}\n\nThis resource ({planned.kolibri_kind}) is not available on this box.\n".encode()
            sha = hashlib.sha256(text).hexdigest()
            blobs[sha] = (len(text), text)
            node_files.insert(0, {"sha256": sha, "size": len(text), "mime": "text/markdown", "role": "main"})
        elif kind == "exercise" and planned.main is not None and (
                reused := _reused_exercise(installed_exercises.get(planned.main.md5), session)):
            # The same .perseus file as the installed version: its questions and images are
            # taken as they are, and the file is not read (nor fetched) again.
            exercise, images = reused
            source = exercise["source"]
            report.questions_total += source["total"]
            report.questions_playable += source["playable"]
            report.skipped_widgets.update(source["skipped"])
            lost = source["total"] - source["playable"] - sum(source["skipped"].values())
            if lost > 0:
                report.skipped_widgets["too many images"] += lost
            own = source.get("mastery") or exercise["mastery"]
            node["exercise"] = {**exercise, "mastery": mastery_of(planned.mastery) if planned.mastery else own,
                                "randomize": source.get("randomize", False) or node.get("randomize", False)}
            node_files.extend(images)
        elif kind == "exercise" and planned.main is not None:
            # From a disk, a .perseus zip is read into memory, not staged: it is not kept (its
            # questions and images are), and a staged copy would be written and deleted for
            # nothing. From a server it is staged, so that a resumed import does not fetch it again.
            if getattr(files, "local", False):
                data = _read_small(files, planned.main)
            else:
                staged = fetch(planned.main, title)
                data = "" if staged is None else session.path(staged["sha256"]).read_bytes()
            if isinstance(data, str):
                if data:
                    fetch_failed(planned.main, title, data)
                continue
            try:
                ex = read_exercise(io.BytesIO(data), f"{planned.main.md5}.perseus", limits)
            except InvalidPack as exc:  # UnsafePack included
                report.refused.append(f"{title}: {exc.message}")
                continue
            report.questions_total += ex.total
            report.questions_playable += ex.playable
            report.skipped_widgets.update(ex.skipped)
            if not ex.questions:
                report.hidden_exercises += 1
                continue
            questions, images = _fit_images(ex, limits.max_files_per_node - len(node_files))
            if len(questions) < ex.playable:
                report.skipped_widgets["too many images"] += ex.playable - len(questions)
                report.questions_playable -= ex.playable - len(questions)
            if not questions:
                report.hidden_exercises += 1
                continue
            mastery = mastery_of(planned.mastery) if planned.mastery else ex.mastery
            node["exercise"] = {"mastery": mastery, "randomize": ex.randomize or node.get("randomize", False),
                                "questions": questions,
                                "source": {"total": ex.total, "playable": len(questions),
                                           "skipped": dict(ex.skipped), "md5": planned.main.md5,
                                           "mastery": ex.mastery, "randomize": ex.randomize}}
            for member in images:
                sha, size, mime = ex.images[member]
                if not session.has(sha, size) and session.fresh.get(sha) != size:
                    session.stage(_member_opener(data, member), f"img-{sha}")
                blobs[sha] = (size, None)  # staged just now (or stored): never opened again
                node_files.append({"sha256": sha, "size": size, "mime": mime, "role": "image"})
            del data
        elif kind == "slideshow" and planned.main is not None:
            manifest = fetch(planned.main, title)
            if manifest is None:
                continue
            text = slideshow_markdown(session.path(manifest["sha256"]), node_files)
            if isinstance(text, str):
                report.refused.append(f"{title}: {text}")
                continue
            kind = "article"
            sha = hashlib.sha256(text).hexdigest()
            blobs[sha] = (len(text), text)
            node_files.insert(0, {"sha256": sha, "size": len(text), "mime": "text/markdown", "role": "main"})
        elif planned.main is not None:
            main = fetch(planned.main, title)
            if main is None:
                continue
            path = session.path(main["sha256"])  # the staged (or stored) copy: read locally
            if kind == "html5":
                why = _html5_problem(path, limits)
                if why:
                    report.refused.append(f"{title}: {why}")
                    continue
            if planned.main.ext == "epub":
                spine = epub_spine(path, limits)
                if isinstance(spine, str):
                    report.refused.append(f"{title}: {spine}")
                    continue
                node["epub"] = {"spine": spine}
            node_files.insert(0, main)
        node.pop("randomize", None)
        node["kind"] = kind
        node["order"] = count
        node["files"] = _dedupe(node_files)[: limits.max_files_per_node]
        if node["kolibri"].get("license"):
            licenses[node["kolibri"]["license"]] += 1
        if count:
            body += b","
        body += encode(node).encode()
        count += 1
        kept.add(node["id"])
    created = _rfc3339(channel.last_updated)
    head = {
        "format": 1, "id": channel.pack_id, "version": max(1, channel.version),
        "title": channel.name[:500], "description": channel.description[:20000],
        "language": channel.language if channel.language != "und" else "und",
        "license": licenses.most_common(1)[0][0] if licenses else "NOASSERTION",
        "publisher": (channel.author or "Kolibri")[:200], "created": created,
        "source": "kolibri",
        "kolibri": {"channel_id": channel.id, "version": channel.version, "topics": chosen.topics,
                    "thumbnail": channel.thumbnail if len(channel.thumbnail) < 200_000 else ""},
        "nodes": [],
    }
    # The same bytes as encoding the whole manifest at once, without ever holding it twice:
    # the head is inserted in front of the nodes in place (a bytearray grows where it is;
    # joining pieces, or bytes(), would hold a second copy of 16 MB for a big channel).
    start = encode(head).encode()
    assert start.endswith(b"[]}")
    body[:0] = start[:-2]
    body += b"]}"
    return KolibriSource(body, blobs, f"Kolibri channel {channel.id} ({channel.name})", report, chosen, files)


_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")


def _plain(text: str, limit: int) -> str:
    """A channel's text shown as it is in Markdown: every mark escaped (no link, no image, no
    heading can come from a caption), on one line."""
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", " ".join(text.split())[:limit])


def slideshow_markdown(path: Path, images: list[dict]) -> bytes | str:
    """A Kolibri slideshow as an article: its slides in their ``sort_order``, each its image
    (``images``: the node's file entries, with the ``md5`` each came from) with its
    description as the image's text and its caption below. Kolibri Studio's manifest is
    ``{"slideshow_data": [{"checksum", "caption", "descriptive_text", "sort_order"}, ...]}``;
    a slide whose image is not here is left out. Why it cannot be read, as a string."""
    try:
        with open(path, "rb") as stream:
            raw = stream.read(MAX_SLIDESHOW_MANIFEST + 1)
        if len(raw) > MAX_SLIDESHOW_MANIFEST:
            return "not a readable slideshow (its manifest is too large)"
        slides = json.loads(raw)["slideshow_data"]
        if not isinstance(slides, list):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        return "not a readable slideshow (its manifest is not Kolibri's)"
    by_md5 = {e.get("md5"): e["sha256"] for e in images if e.get("role") == "image"}
    shown = []
    for n, slide in enumerate(slides[:200]):
        if not isinstance(slide, dict) or slide.get("checksum") not in by_md5:
            continue
        order = slide.get("sort_order")
        order = order if isinstance(order, (int, float)) and not isinstance(order, bool) else n
        caption = _plain(_text(slide.get("caption")), 2000)
        described = _plain(_text(slide.get("descriptive_text")), 2000) or caption
        part = f"![{described}](sha256:{by_md5[slide['checksum']]})"
        shown.append((order, n, part + (f"\n\n{caption}" if caption else "")))
    if not shown:
        return "not a readable slideshow (none of its slides has its image)"
    return ("\n\n---\n\n".join(text for _o, _n, text in sorted(shown)) + "\n").encode()


def _fit_images(ex, budget: int) -> tuple[list[dict], list[str]]:
    """The questions whose images fit in a node's file list (64 files at most), in order."""
    if not ex.images:
        return ex.questions[:500], []  # nothing to fit (most exercises)
    by_sha = {sha: member for member, (sha, _size, _mime) in ex.images.items()}
    taken: list[str] = []
    questions = []
    for q in ex.questions[:500]:
        text = json.dumps(q)
        needs = [by_sha[s] for s in re.findall(r"sha256:([0-9a-f]{64})", text) if s in by_sha]
        new = [m for m in dict.fromkeys(needs) if m not in taken]
        if len(taken) + len(new) > budget:
            continue
        taken.extend(new)
        questions.append(q)
    return questions, taken


def _dedupe(files: list[dict]) -> list[dict]:
    seen, out = set(), []
    for f in files:
        key = (f["sha256"], f["role"], f.get("lang"))
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def _html5_problem(path: Path, limits: Limits) -> str | None:
    try:
        with zipfile.ZipFile(path) as zf:
            problems = [p for p in scan_zip(zf, limits, "", limits.html5_max_members, limits.html5_max_total)
                        if p.severity == "error"]
            if not problems and "index.html" not in zf.namelist():
                return "no index.html at the root of the app"
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        return f"not a valid zip ({exc})"
    return f"unsafe zip: {problems[0]}" if problems else None


def epub_spine(path, limits: Limits) -> list[str] | str:
    """The reading order of an EPUB (its chapters' paths in the zip), or why it cannot be shown.

    The zip is checked like an html5 app (it is served member by member the same way);
    ``META-INF/container.xml`` names the package file, whose spine lists the chapters.
    """
    import posixpath
    import xml.etree.ElementTree as ET
    from urllib.parse import unquote

    try:
        with zipfile.ZipFile(path) as zf:
            problems = [p for p in scan_zip(zf, limits, "", limits.html5_max_members, limits.html5_max_total)
                        if p.severity == "error"]
            if problems:
                return f"unsafe zip: {problems[0]}"
            names = set(zf.namelist())

            def xml(name: str):
                info = zf.getinfo(name)
                if info.file_size > 4 * 1024 * 1024:
                    raise ValueError(f"{name} is too large")
                return ET.fromstring(zf.read(info))

            if "META-INF/container.xml" not in names:
                return "not an EPUB (no META-INF/container.xml)"
            rootfile = next((e.get("full-path") for e in xml("META-INF/container.xml").iter()
                             if e.tag.endswith("rootfile") and e.get("full-path")), None)
            if not rootfile or rootfile not in names:
                return "not an EPUB (its package file is missing)"
            package = xml(rootfile)
            base = posixpath.dirname(rootfile)
            hrefs = {}
            for e in package.iter():
                if e.tag.endswith("}item") or e.tag == "item":
                    if "html" in (e.get("media-type") or "") and e.get("id") and e.get("href"):
                        hrefs[e.get("id")] = posixpath.normpath(posixpath.join(base, unquote(e.get("href"))))
            spine = []
            for e in package.iter():
                if (e.tag.endswith("}itemref") or e.tag == "itemref") and e.get("idref") in hrefs:
                    member = hrefs[e.get("idref")]
                    if unsafe_member_name(member) is None and member in names and member not in spine:
                        spine.append(member)
    except (zipfile.BadZipFile, OSError, ValueError, KeyError, ET.ParseError) as exc:
        return f"not a readable EPUB ({exc})"
    return spine[:2000] if spine else "not an EPUB (no chapter in its spine)"


def _rfc3339(text: str) -> str:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return "2000-01-01T00:00:00Z"  # fixed, so the same channel always makes the same manifest
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_topics(installed_manifest: dict | None, topics: list[str] | None) -> list[str] | None:
    """Topics already imported from this channel are kept when more are added (None: the whole channel)."""
    if topics is None or installed_manifest is None:
        return topics
    before = (installed_manifest.get("kolibri") or {}).get("topics", "absent")
    if before is None:
        return None  # the whole channel is installed: adding topics changes nothing
    if isinstance(before, list):
        return sorted(set(before) | set(topics))
    return topics


@dataclass
class ChannelImport:
    """The outcome of :func:`import_channel`: the plan, what was left out, and the library's result."""

    plan: Plan
    report: Report | None
    result: object = None             # ImportResult; None for a dry run
    added: list[str] = field(default_factory=list)     # dry run: node ids new on this box
    removed: list[str] = field(default_factory=list)   # dry run: node ids that would go
    changed: list[str] = field(default_factory=list)   # dry run: node ids kept, with new content
    titles: dict[str, str] = field(default_factory=dict)  # dry run: the title of each id above
    kept: int = 0                     # dry run: resources that stay, with learners' progress

    def as_dict(self) -> dict:
        out = {"plan": self.plan.summary(), "report": self.report.as_dict() if self.report else None,
               "result": self.result.as_dict() if self.result is not None else None,
               "added": len(self.added), "removed": len(self.removed)}
        if self.result is None:
            out["changed"] = len(self.changed)
            out["kept"] = self.kept
            out["diff"] = {name: [{"id": i, "title": self.titles.get(i, "")} for i in ids[:200]]
                           for name, ids in (("added", self.added), ("changed", self.changed),
                                             ("removed", self.removed))}
        return out


def update_diff(installed: dict | None, chosen: Plan) -> tuple[list[str], list[str], list[str], dict, int]:
    """What importing ``chosen`` over the installed version would do, read from the database alone.

    (added, changed, removed, titles, kept): a node is changed when its title, description,
    place, kind or any of its files (compared by the md5 each came from) differ; ``kept``
    counts the resources that remain, whose learners' progress is kept (their id is
    Kolibri's ``content_id``)."""
    old: dict[str, tuple] = {}
    titles: dict[str, str] = {}
    for n in (installed or {}).get("nodes", ()):
        md5s = {f.get("md5") for f in n.get("files", ()) if f.get("md5")}
        source = ((n.get("exercise") or {}).get("source") or {}).get("md5")
        if source:
            md5s.add(source)
        old[n["id"]] = (n.get("title"), n.get("description"), n.get("parent"),
                        "unavailable" if n.get("unavailable") else n.get("kind"), frozenset(md5s))
        titles[n["id"]] = n.get("title", "")
    added, changed, seen = [], [], set()
    kept = 0
    for node in chosen.nodes:
        seen.add(node.id)
        titles[node.id] = node.data.get("title", "")
        before = old.get(node.id)
        if before is None:
            added.append(node.id)
            continue
        if node.kind != "topic":
            kept += 1
        md5s = frozenset(f.md5 for f in node.files + ([node.main] if node.main else []))
        if (node.data.get("title"), node.data.get("description"), node.parent, node.kind, md5s) != before:
            changed.append(node.id)
    removed = [i for i in old if i not in seen]
    return added, changed, removed, titles, kept


def import_channel(library, root: str | os.PathLike, channel_id: str, topics: Iterable[str] | None = None, *,
                   video: str = "low", dry_run: bool = False, force: bool = False,
                   progress: Progress | None = None, files=None) -> ChannelImport:
    """Import one channel (or some of its topics) from an export folder into ``library``.

    A dry run reads only the database: the size, the kinds and the nodes that would be
    added or removed, without reading a single media file.
    """
    from .errors import VersionConflict

    pack_id = PACK_PREFIX + channel_id
    try:
        installed = library.manifest(pack_id)
    except PackNotFound:
        installed = None
    with open_channel(root, channel_id) as db:
        chosen_topics = merge_topics(installed, sorted(set(topics)) if topics else None)
        chosen = plan(db, chosen_topics, video=video, limits=library.limits)
        if installed is not None:
            old_version = (installed.get("kolibri") or {}).get("version", installed.get("version"))
            if chosen.channel.version < _int(old_version) and not force:
                raise VersionConflict(pack_id, _int(old_version), chosen.channel.version)
        if dry_run:
            added, changed, removed, titles, kept = update_diff(installed, chosen)
            return ChannelImport(chosen, None, None, added, removed, changed, titles, kept)
        holder = [installed]
        installed = None
        return _install(library, db, chosen, holder, files, force, progress)


def _install(library, db: ChannelDatabase, chosen: Plan, holder: list, files, force: bool,
             progress: Progress | None) -> ChannelImport:
    """Stage, convert and import under one hold of the library lock (each file read once).

    ``holder`` holds the installed manifest (or None), so that it can be let go before the import.
    """
    installed = holder.pop()
    with library.session() as session:
        known, exercises = installed_files(installed)
        to_read = {}
        for node in chosen.nodes:
            for f in node.files + ([node.main] if node.main else []):
                if not (f.md5 in known and session.has(*known[f.md5])) and f.md5 not in exercises:
                    to_read[f.md5] = f.size
        session.reserve(sum(to_read.values()))
        before = None if installed is None else json.dumps(installed, ensure_ascii=False,
                                                           separators=(",", ":")).encode()
        installed = None  # noqa: F841 - a big channel's manifest is large: not kept through the import
        source = convert(db, chosen, session, files, library.limits, progress, (known, exercises))
        release_memory()  # the plan and the rows it was made from are gone: before the import
        # The same channel version with another selection of topics (or a repaired file)
        # is a legitimate re-import: the pack's version alone cannot tell them apart.
        changed = before is not None and before != source.manifest_bytes()
        before = None
        result = session.import_pack(source, force=force or changed, progress=progress)
    return ChannelImport(chosen, source.report, result)
