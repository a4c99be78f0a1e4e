"""``build_pack``: the authoring format (``docs/authoring-format.md``) → a pack.

Determinism is a feature: the same source gives a byte-identical manifest
(``created`` comes from the caller, ``SOURCE_DATE_EPOCH`` or the newest file
time, never from the clock), entries are sorted, html5 folders are zipped with
fixed timestamps and permissions. Ids come from paths with the ``NN-`` prefixes
removed, so renumbering a lesson keeps learners' progress attached to it.
Authoring mistakes are collected and reported together, each with its file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import stat
import tempfile
import unicodedata
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from frontmatter.default_handlers import YAMLHandler

from .errors import FrontMatterError, InvalidPack, Problem
from .manifest import DEFAULT_LIMITS, Limits, validate_manifest
from .packio import CHUNK, ZIP_EPOCH, write_pack

VIDEO = {".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".ogv": "video/ogg"}
AUDIO = {".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/opus",
         ".m4a": "audio/mp4", ".wav": "audio/wav", ".flac": "audio/flac"}
DOCUMENT = {".pdf": "application/pdf"}
IMAGES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
          ".webp": "image/webp", ".svg": "image/svg+xml"}
TRANSCRIPTS = {".txt": "text/plain", ".md": "text/markdown", ".vtt": "text/vtt"}
ASSET_DIRS = {"img", "media"}
_ORDER_PREFIX = re.compile(r"^\d+-")
_COMPANION = re.compile(
    r"^(?:(?P<sidecar>yaml)"
    r"|(?P<lang>[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*)\.vtt"
    r"|(?P<picture>poster|thumbnail)\.(?P<pext>png|jpe?g|gif|webp|svg)"
    r"|(?:(?P<tlang>[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*)\.)?transcript\.(?P<text>txt|md|vtt))$")
_MD_IMAGE = re.compile(r'(!\[[^\]]*\]\()\s*<?([^)\s>]+)>?((?:\s+"[^"]*")?\s*\))')
_HTML_IMAGE = re.compile(r'(<img\b[^>]*?\bsrc\s*=\s*["\'])([^"\']+)(["\'])', re.IGNORECASE)


def front_matter(text: str) -> tuple[dict, str]:
    """A Markdown file's YAML front matter (``---`` lines around it) and the text after it.

    python-frontmatter finds the two delimiter *lines* (a ``---`` inside a title or the
    text never splits it) and reads the YAML with PyYAML's safe loader. A file that does
    not open with ``---``, or never closes it, has no front matter: all of it is text.
    Raises :class:`FrontMatterError` when the front matter is not a YAML mapping.
    """
    handler = YAMLHandler()
    if not handler.detect(text):
        return {}, text
    try:
        head, body = handler.split(text)
    except ValueError:  # no closing line
        return {}, text
    try:
        meta = handler.load(head)
    except yaml.YAMLError as exc:
        raise FrontMatterError(f"front matter is not valid YAML: {exc}") from None
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise FrontMatterError("front matter must be a YAML mapping")
    return meta, body.lstrip("\n")


@dataclass
class BuildResult:
    path: Path
    manifest: dict
    warnings: list[Problem] = field(default_factory=list)


@dataclass
class _Blob:
    sha256: str
    size: int
    mime: str
    path: Path | None = None
    data: bytes | None = None

    def opener(self):
        if self.data is not None:
            return lambda: io.BytesIO(self.data)
        return lambda: open(self.path, "rb")


class _Builder:
    def __init__(self, src: Path, limits: Limits, workdir: Path):
        self.src = src.resolve()
        self.limits = limits
        self.workdir = workdir
        self.problems: list[Problem] = []
        self.blobs: dict[str, _Blob] = {}
        self.nodes: list[dict] = []
        self.ids: dict[str, str] = {}
        self.newest = 0.0

    # -- helpers --

    def rel(self, path: Path) -> str:
        return path.relative_to(self.src).as_posix()

    def error(self, path: Path | str, message: str) -> None:
        where = self.rel(path) if isinstance(path, Path) else path
        self.problems.append(Problem(where, message))

    def note_time(self, path: Path) -> None:
        self.newest = max(self.newest, path.lstat().st_mtime)

    def load_yaml(self, path: Path) -> dict:
        self.note_time(path)
        try:
            data = yaml.safe_load(path.read_text("utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            self.error(path, f"not valid YAML: {exc}")
            return {}
        if not isinstance(data, dict):
            self.error(path, "must be a YAML mapping (key: value lines)")
            return {}
        return data

    def add_file(self, path: Path, mime: str, note: bool = True) -> _Blob:
        if note:
            self.note_time(path)
        h = hashlib.sha256()
        size = 0
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
                size += len(chunk)
        return self.blobs.setdefault(h.hexdigest(), _Blob(h.hexdigest(), size, mime, path=path))

    def add_bytes(self, data: bytes, mime: str) -> _Blob:
        sha = hashlib.sha256(data).hexdigest()
        return self.blobs.setdefault(sha, _Blob(sha, len(data), mime, data=data))

    @staticmethod
    def file_entry(blob: _Blob, role: str, lang: str | None = None) -> dict:
        entry = {"sha256": blob.sha256, "size": blob.size, "mime": blob.mime, "role": role}
        if lang:
            entry["lang"] = lang
        return entry

    def node_id(self, path: Path, suffix: str, meta: dict) -> str:
        if meta.get("id") is not None:
            return str(meta["id"])
        parts = list(path.relative_to(self.src).parts)
        last = parts[-1]
        parts[-1] = last[: len(last) - len(suffix)] if suffix and last.endswith(suffix) else last
        return "/".join(_slug(_ORDER_PREFIX.sub("", p)) for p in parts)

    def register(self, node: dict, path: Path) -> None:
        if node["id"] in self.ids:
            self.error(path, f"node id {node['id']!r} is already used by {self.ids[node['id']]}")
            return
        self.ids[node["id"]] = self.rel(path) if path != self.src else "pack.yaml"
        self.nodes.append(node)

    def base_node(self, node_id: str, parent: str, kind: str, meta: dict, default_title: str,
                  order: int) -> dict:
        node: dict[str, Any] = {"id": node_id, "parent": parent, "kind": kind,
                                "title": str(meta.get("title") or default_title)}
        if meta.get("description"):
            node["description"] = str(meta["description"]).strip()
        if meta.get("language"):
            node["language"] = str(meta["language"])
        node["tags"] = [str(t) for t in meta.get("tags") or []]
        node["order"] = order
        # Unknown keys are the author's business: keep them on the node.
        for key, value in meta.items():
            if key not in node and key not in _META_KEYS:
                node[key] = value
        node["files"] = []
        return node

    # -- images in Markdown --

    def rewrite_images(self, text: str, base_dir: Path, source: Path, files: list[dict]) -> str:
        def resolve(target: str) -> str | None:
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith(("#", "/")):
                return None
            path = (base_dir / target).resolve()
            try:
                path.relative_to(self.src)
            except ValueError:
                self.error(source, f"image {target!r} is outside the source folder")
                return None
            if not path.is_file():
                self.error(source, f"image {target!r} does not exist")
                return None
            mime = IMAGES.get(path.suffix.lower())
            if mime is None:
                self.error(source, f"image {target!r}: unsupported type (use {', '.join(IMAGES)})")
                return None
            blob = self.add_file(path, mime)
            if not any(f["sha256"] == blob.sha256 and f["role"] == "image" for f in files):
                files.append(self.file_entry(blob, "image"))
            return f"sha256:{blob.sha256}"

        def md(match: re.Match) -> str:
            new = resolve(match.group(2))
            return match.group(0) if new is None else f"{match.group(1)}{new}{match.group(3)}"

        def html(match: re.Match) -> str:
            new = resolve(match.group(2))
            return match.group(0) if new is None else f"{match.group(1)}{new}{match.group(3)}"

        return _HTML_IMAGE.sub(html, _MD_IMAGE.sub(md, text))

    # -- the walk --

    def build(self, created: str | None) -> dict:
        pack_file = self.src / "pack.yaml"
        if not pack_file.is_file():
            raise InvalidPack([Problem("pack.yaml", f"missing in {self.src}")], "cannot build the pack")
        meta = self.load_yaml(pack_file)
        manifest: dict[str, Any] = {"format": 1}
        for key in ("id", "version", "title", "description", "language", "license", "publisher"):
            if key in meta:
                manifest[key] = meta[key]
            elif key != "description":
                self.error(pack_file, f"{key}: is required")
        manifest["created"] = created or ""
        if "tags" in meta:
            manifest["tags"] = [str(t) for t in meta["tags"] or []]
        for key, value in meta.items():
            if key not in manifest and key not in ("format", "nodes", "created"):
                manifest[key] = value
        root = {"id": "root", "parent": None, "kind": "topic", "title": str(meta.get("title") or "")}
        if meta.get("description"):
            root["description"] = str(meta["description"]).strip()
        if meta.get("for_facilitators") is True:  # the whole pack: its root hides everything
            root["for_facilitators"] = True
        root["files"] = []
        self.register(root, self.src)
        self.walk_topic(self.src, "root")
        if not created:
            created = datetime.fromtimestamp(int(self.newest), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        manifest["created"] = created
        manifest["nodes"] = self.nodes
        return manifest

    def walk_topic(self, folder: Path, parent: str) -> None:
        entries = sorted((e for e in folder.iterdir() if not e.name.startswith(".")), key=lambda p: p.name)
        for entry in entries:
            if entry.is_symlink():
                self.error(entry, "symbolic links are not allowed in a pack source")
        entries = [e for e in entries if not e.is_symlink()]
        skip = {"_topic.yaml"} | ({"pack.yaml"} if folder == self.src else set())
        files = [e for e in entries if e.is_file() and e.name not in skip]
        dirs = [e for e in entries if e.is_dir() and e.name not in ASSET_DIRS]
        # Which files are nodes, and the stems their companions attach to.
        nodes: list[tuple[Path, str, str]] = []  # (path, kind, suffix)
        for f in files:
            name, ext = f.name, f.suffix.lower()
            if name.endswith(".exercise.yaml"):
                nodes.append((f, "exercise", ".exercise.yaml"))
            elif ext in VIDEO:
                nodes.append((f, "video", f.suffix))
            elif ext in AUDIO:
                nodes.append((f, "audio", f.suffix))
            elif ext in DOCUMENT:
                nodes.append((f, "document", f.suffix))
        for d in dirs:
            if d.name.endswith(".html5"):
                nodes.append((d, "html5", ".html5"))
        stems = {p.name[: len(p.name) - len(sfx)]: p for p, _, sfx in nodes}
        companions: dict[str, list[tuple[Path, re.Match]]] = {}
        taken = {p for p, _, _ in nodes}
        for f in files:
            if f in taken:
                continue
            match = None
            for stem in sorted(stems, key=len, reverse=True):
                if f.name.startswith(stem + "."):
                    match = _COMPANION.match(f.name[len(stem) + 1:])
                    if match:
                        companions.setdefault(stem, []).append((f, match))
                        break
            if match:
                taken.add(f)
            elif f.suffix.lower() == ".md":
                nodes.append((f, "article", ".md"))
                taken.add(f)
        for f in files:
            if f not in taken:
                self.error(f, "not a lesson, a sidecar or a companion file the builder knows; "
                              "see docs/authoring-format.md (put shared images in img/)")
        items = sorted(nodes + [(d, "topic", "") for d in dirs if not d.name.endswith(".html5")],
                       key=lambda t: t[0].name)
        for order, (path, kind, suffix) in enumerate(items):
            stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
            comps = companions.get(stem, [])
            if kind == "topic":
                self.add_topic(path, parent, order)
            elif kind == "article":
                self.add_article(path, parent, order)
            elif kind == "exercise":
                self.add_exercise(path, parent, order)
            else:
                self.add_media(path, kind, suffix, parent, order, comps)

    def add_topic(self, folder: Path, parent: str, order: int) -> None:
        meta_file = folder / "_topic.yaml"
        meta = self.load_yaml(meta_file) if meta_file.is_file() else {}
        node_id = self.node_id(folder, "", meta)
        node = self.base_node(node_id, parent, "topic", meta, _title(folder.name), order)
        self.register(node, folder)
        self.walk_topic(folder, node_id)

    def add_article(self, path: Path, parent: str, order: int) -> None:
        self.note_time(path)
        try:
            text = path.read_text("utf-8")
        except UnicodeDecodeError:
            self.error(path, "not UTF-8 text")
            return
        try:
            meta, body = front_matter(text)
        except FrontMatterError as exc:
            self.error(path, str(exc))
            meta, body = {}, text
        node = self.base_node(self.node_id(path, ".md", meta), parent, "article", meta,
                              _title(path.stem), order)
        images: list[dict] = []
        body = self.rewrite_images(body, path.parent, path, images)
        node["files"] = [self.file_entry(self.add_bytes(body.encode("utf-8"), "text/markdown"), "main")] + images
        self.register(node, path)

    def add_exercise(self, path: Path, parent: str, order: int) -> None:
        meta = self.load_yaml(path)
        node = self.base_node(self.node_id(path, ".exercise.yaml", meta), parent, "exercise",
                              {k: v for k, v in meta.items() if k not in ("mastery", "randomize", "questions")},
                              _title(path.name[: -len(".exercise.yaml")]), order)
        images: list[dict] = []
        questions = []
        for q in meta.get("questions") or []:
            if not isinstance(q, dict):
                self.error(path, "each question must be a mapping")
                continue
            q = dict(q)
            for key in ("prompt", "explanation"):
                if isinstance(q.get(key), str):
                    q[key] = self.rewrite_images(q[key], path.parent, path, images)
            for key in ("hints", "choices"):
                if isinstance(q.get(key), list):
                    q[key] = [self.rewrite_images(x, path.parent, path, images) if isinstance(x, str) else x
                              for x in q[key]]
            questions.append(q)
        node["exercise"] = {"mastery": meta.get("mastery") or {"model": "do_all"},
                            "randomize": bool(meta.get("randomize", False)),
                            "questions": questions}
        node["files"] = images
        self.register(node, path)

    def add_media(self, path: Path, kind: str, suffix: str, parent: str, order: int,
                  comps: list[tuple[Path, re.Match]]) -> None:
        sidecars = [p for p, m in comps if m.group("sidecar")]
        meta = self.load_yaml(sidecars[0]) if sidecars else {}
        stem = path.name[: len(path.name) - len(suffix)]
        node = self.base_node(self.node_id(path, suffix, meta), parent, kind, meta, _title(stem), order)
        if kind in ("video", "audio"):
            if "duration" not in meta:
                self.error(path, f"a {kind} needs `duration:` (seconds) in {stem}.yaml")
            else:
                node["duration"] = meta["duration"]
        files = node["files"]
        if kind == "html5":
            if not (path / "index.html").is_file():
                self.error(path, "an html5 app folder needs an index.html")
                return
            files.append(self.file_entry(self.zip_html5(path), "main"))
        else:
            mime = {**VIDEO, **AUDIO, **DOCUMENT}[path.suffix.lower()]
            files.append(self.file_entry(self.add_file(path, mime), "main"))
        for comp, m in sorted(comps, key=lambda c: c[0].name):
            if m.group("lang"):
                files.append(self.file_entry(self.add_file(comp, "text/vtt"), "subtitles", m.group("lang")))
            elif m.group("picture"):
                mime = IMAGES["." + m.group("pext").lower()]
                files.append(self.file_entry(self.add_file(comp, mime), m.group("picture")))
            elif m.group("text"):
                mime = TRANSCRIPTS["." + m.group("text")]
                files.append(self.file_entry(self.add_file(comp, mime), "transcript", m.group("tlang")))
        self.register(node, path)

    def zip_html5(self, folder: Path) -> _Blob:
        members: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath) / name
                if p.is_symlink() or not stat.S_ISREG(p.lstat().st_mode):
                    self.error(p, "html5 apps may hold only regular files (no links)")
                    continue
                members.append(p)
            for d in list(dirnames):
                if (Path(dirpath) / d).is_symlink():
                    self.error(Path(dirpath) / d, "html5 apps may hold only regular files (no links)")
                    dirnames.remove(d)
        fd, tmp = tempfile.mkstemp(suffix=".zip", dir=self.workdir)
        os.close(fd)
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for p in sorted(members, key=lambda m: m.relative_to(folder).as_posix()):
                self.note_time(p)
                info = zipfile.ZipInfo(p.relative_to(folder).as_posix(), date_time=ZIP_EPOCH)
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                info.create_system = 3
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(p, "rb") as f, zf.open(info, "w") as out:
                    while chunk := f.read(CHUNK):
                        out.write(chunk)
        return self.add_file(Path(tmp), "application/zip", note=False)


_META_KEYS = {"id", "title", "description", "language", "tags", "duration"}


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_text).strip("-.")
    return slug or "x"


def _title(stem: str) -> str:
    words = _ORDER_PREFIX.sub("", stem).replace("-", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:] if words else stem


def default_created(src_dir: Path | None = None) -> str | None:
    """``SOURCE_DATE_EPOCH`` when set (reproducible builds), else None (newest file time)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and epoch.isdigit():
        return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def build_pack(src_dir: str | os.PathLike, out_path: str | os.PathLike, *, folder: bool = False,
               created: str | None = None, limits: Limits = DEFAULT_LIMITS,
               progress: Callable[[int, int, str], None] | None = None) -> BuildResult:
    """Build the authoring folder ``src_dir`` into a pack at ``out_path`` (zip, or folder).

    Raises :class:`InvalidPack` listing every authoring problem (nothing is written then).
    """
    src = Path(src_dir)
    if not src.is_dir():
        raise InvalidPack([Problem(str(src), "not a folder")], "cannot build the pack")
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".build-") as work:
        builder = _Builder(src, limits, Path(work))
        manifest = builder.build(created or default_created(src))
        problems = builder.problems
        if not problems:
            problems = [p for p in validate_manifest(manifest, limits)]
            problems = [Problem(_node_source(p.location, manifest, builder.ids), p.message) for p in problems]
        if problems:
            raise InvalidPack(problems, "cannot build the pack")
        data = (json.dumps(manifest, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
        blobs = [(b.sha256, b.size, b.mime, b.opener()) for b in builder.blobs.values()]
        write_pack(out, data, None, blobs, folder=folder, progress=progress)
    return BuildResult(out, manifest)


def _node_source(location: str, manifest: dict, ids: dict[str, str]) -> str:
    """``nodes[3].title`` → ``nodes[3].title (passwords/intro.md)``: point authors at their file."""
    match = re.match(r"^nodes\[(\d+)\]", location)
    if match:
        node = manifest["nodes"][int(match.group(1))]
        source = ids.get(node.get("id"))
        if source:
            return f"{location} ({source})"
    return location
