"""The manifest: parsing, schema validation and the rules JSON Schema cannot express.

Validation never stops at the first problem: a publisher fixing a pack wants
the whole list, each with where it is (``nodes[12].files[0].sha256``).
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from . import media
from ._schema import compile_schema
from .errors import Problem
from .exercise import ExpressionError, expression_names

FORMAT = 1
KINDS = ("topic", "video", "audio", "document", "article", "html5", "exercise")
# The (normalised) MIME types each kind's main file may have.
MAIN_MIME = {
    "article": ("text/markdown",),
    "document": ("application/pdf", "application/epub+zip"),
    "html5": ("application/zip",),
    "video": tuple(sorted(media.VIDEO)),
    "audio": tuple(sorted(media.AUDIO)),
}
# The (normalised) MIME types each other role may have.
ROLE_MIME = {
    "subtitles": ("text/vtt",),
    "transcript": tuple(sorted(media.TEXT)),
    "thumbnail": tuple(sorted(media.PICTURES)),
    "poster": tuple(sorted(media.PICTURES)),
    "image": tuple(sorted(media.PICTURES)),
}
SHA256_IMAGE_LINK = r"sha256:([0-9a-f]{64})"


EPUB = media.EPUB


@dataclass(frozen=True)
class Limits:
    """How big a pack may be before it is treated as hostile; generous for real content."""

    max_manifest_bytes: int = 128 * 1024 * 1024
    max_nodes: int = 200_000
    max_depth: int = 32
    max_files_per_node: int = 64
    max_blob_size: int = 64 * 1024**3
    max_total_size: int = 2 * 1024**4
    max_zip_members: int = 2_000_000
    # A member that inflates more than this many times is a zip bomb (real media
    # barely compresses; a Markdown file reaches 5-10x).
    max_zip_ratio: int = 200
    html5_max_members: int = 20_000
    html5_max_total: int = 2 * 1024**3


DEFAULT_LIMITS = Limits()


@lru_cache(maxsize=1)
def schema() -> dict:
    """The JSON Schema of manifest format 1 (``content/schema/pack-v1.json``)."""
    text = resources.files(__package__).joinpath("schema/pack-v1.json").read_text("utf-8")
    return json.loads(text)


@lru_cache(maxsize=1)
def _validator():
    return compile_schema(schema())


def location(path) -> str:
    """``["nodes", 12, "files", 0, "sha256"]`` → ``nodes[12].files[0].sha256``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "manifest.json"


def parse_manifest(data: bytes, limits: Limits = DEFAULT_LIMITS, *,
                   lazy_nodes: bool = False) -> tuple[dict | None, list[Problem]]:
    """Decode manifest bytes; returns (manifest or None, problems).

    With ``lazy_nodes``, ``manifest["nodes"]`` is a :class:`LazyNodes`: each node is decoded
    when it is read, so a 20,000-node manifest is held as its text (16 MB) rather than as
    Python objects (75 MB). Readers that only iterate and index work with either.
    """
    if len(data) > limits.max_manifest_bytes:
        return None, [Problem("manifest.json", f"larger than {limits.max_manifest_bytes} bytes")]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem("manifest.json", f"not UTF-8 (byte {exc.start})")]
    try:
        manifest = _lazy_loads(text, data) if lazy_nodes else json.loads(text)
    except json.JSONDecodeError as exc:
        return None, [Problem("manifest.json", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]
    except RecursionError:
        return None, [Problem("manifest.json", "nested too deeply")]
    if not isinstance(manifest, dict):
        return None, [Problem("manifest.json", "must be a JSON object")]
    return manifest, []


class LazyNodes(Sequence):
    """The ``nodes`` array of a manifest, kept as its UTF-8 bytes (the manifest's own, not a
    copy) and decoded one node at a time.

    Not a ``list`` on purpose: ``json.dumps`` refuses it instead of writing ``[]``.
    """

    def __init__(self, data: bytes, spans: array):
        self._data = data
        # Byte offsets of each node in ``data``, start and end one after the other (a flat
        # array of machine integers: a list of tuples is 5 MB for 20,000 nodes).
        self._spans = spans

    def __len__(self) -> int:
        return len(self._spans) // 2

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("node index out of range")
        return json.loads(self._data[self._spans[2 * i]:self._spans[2 * i + 1]])

    def __iter__(self) -> Iterator:
        spans = iter(self._spans)
        for start, end in zip(spans, spans, strict=True):
            yield json.loads(self._data[start:end])


_DECODER = json.JSONDecoder()
_SPACE = " \t\n\r"


def _byte_spans(text: str, spans: array) -> array:
    """Character offsets in ``text`` (start, end, start, end…) as byte offsets in its UTF-8
    encoding, in one pass; the same offsets when the text is ASCII."""
    if text.isascii():
        return spans
    out = array("q")
    chars = nbytes = 0
    pairs = iter(spans)
    for start, end in zip(pairs, pairs, strict=True):
        nbytes += len(text[chars:start].encode("utf-8"))
        width = len(text[start:end].encode("utf-8"))
        out.extend((nbytes, nbytes + width))
        nbytes += width
        chars = end
    return out


def _lazy_loads(text: str, data: bytes):
    """``json.loads`` of a manifest (``text``, decoded from ``data``), except that the top-level
    ``nodes`` array becomes a :class:`LazyNodes`. Every value is still decoded (and so checked) by the standard
    decoder; only the punctuation of the top-level object and of that one array is read here."""
    raw = _DECODER.raw_decode

    def skip(i: int) -> int:
        while i < len(text) and text[i] in _SPACE:
            i += 1
        return i

    def expect(i: int, char: str) -> int:
        i = skip(i)
        if i >= len(text) or text[i] != char:
            raise json.JSONDecodeError(f"Expecting '{char}'", text, i)
        return i + 1

    i = skip(0)
    if not text.startswith("{", i):
        return json.loads(text)  # not an object: let the standard decoder say what it is
    out: dict = {}
    i = skip(i + 1)
    if text.startswith("}", i):
        i += 1
    else:
        while True:
            i = skip(i)
            if not text.startswith('"', i):
                raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, i)
            key, i = raw(text, i)
            i = skip(expect(i, ":"))
            if key == "nodes" and text.startswith("[", i):
                spans = array("q")
                i = skip(i + 1)
                if text.startswith("]", i):
                    i += 1
                else:
                    while True:
                        start = skip(i)
                        _value, i = raw(text, start)
                        spans.extend((start, i))
                        i = skip(i)
                        if text.startswith(",", i):
                            i += 1
                            continue
                        i = expect(i, "]")
                        break
                out[key] = LazyNodes(data, _byte_spans(text, spans))
            else:
                out[key], i = raw(text, i)
            i = skip(i)
            if text.startswith(",", i):
                i += 1
                continue
            i = expect(i, "}")
            break
    if skip(i) != len(text):
        raise json.JSONDecodeError("Extra data", text, skip(i))
    return out


@dataclass
class ManifestFacts:
    """What the library needs from a manifest besides its problems, gathered by the same
    pass over its nodes (a big pack's nodes are decoded once per pass)."""
    blobs: dict[str, int]        # sha256 → size of every blob referenced (see blob_table)
    served_zips: dict[str, str]  # see served_zips
    ids: list[str]               # node ids in order, each once


def validate_manifest(manifest: dict, limits: Limits = DEFAULT_LIMITS) -> list[Problem]:
    """Every problem of a parsed manifest: schema first, then structure and per-kind rules."""
    return check_manifest(manifest, limits)[0]


def check_manifest(manifest: dict, limits: Limits = DEFAULT_LIMITS) -> tuple[list[Problem], ManifestFacts | None]:
    """:func:`validate_manifest`, and the manifest's :class:`ManifestFacts` when it has no problem
    (None otherwise), in one pass over the nodes of a manifest parsed with ``lazy_nodes``."""
    problems: list[Problem] = []
    if manifest.get("format") != FORMAT:
        return [Problem("format", f"unsupported pack format {manifest.get('format')!r}; "
                                  f"this box reads format {FORMAT}")], None
    nodes = manifest.get("nodes")
    if isinstance(nodes, (list, LazyNodes)) and len(nodes) > limits.max_nodes:
        return [Problem("nodes", f"{len(nodes)} nodes; the limit is {limits.max_nodes}")], None
    found: list = []
    each = None
    if isinstance(nodes, LazyNodes):
        # The head with its first node, then every other node on its own (the same checks
        # as for the whole document, without holding every node decoded at once), in the
        # same pass as the tree checks.
        _validator()({**manifest, "nodes": nodes[:1]}, (), found)
        check_node = _node_validator()

        def each(i: int, node) -> None:
            if i:
                check_node(node, ("nodes", i), found)
    else:
        _validator()(manifest, (), found)
    facts = None
    tree: list[Problem] = []
    if isinstance(nodes, (list, LazyNodes)):
        facts = ManifestFacts({}, {}, [])
        tree = _check_tree(nodes, limits, each, facts)
    for path, message in found[:1000]:
        problems.append(Problem(location(path), message))
    if len(found) > 1000:
        problems.append(Problem("manifest.json", f"{len(found)} problems; only the first 1000 are listed"))
    problems.extend(tree)
    return problems, (facts if not problems else None)


@lru_cache(maxsize=1)
def _node_validator():
    root = schema()
    items = root["properties"]["nodes"]["items"]
    return compile_schema({**{k: v for k, v in root.items() if k in ("$defs", "definitions")}, **items})


def _check_tree(nodes: list, limits: Limits, each=None, facts: ManifestFacts | None = None) -> list[Problem]:
    """``each(i, node)`` is called for every node first (the per-node schema check of a lazy
    manifest); ``facts`` is filled as the nodes go by."""
    problems: list[Problem] = []
    index: dict[str, int] = {}
    depth: dict[str, int] = {}
    kinds: dict[str, str] = {}
    ids: dict[str, int] | None = None

    def all_ids() -> dict[str, int]:
        # Every node's position: only for the message of a parent that comes later (a second
        # pass over the nodes, on a manifest that is refused anyway).
        nonlocal ids
        if ids is None:
            ids = {n.get("id"): i for i, n in enumerate(nodes) if isinstance(n, dict)}
        return ids

    blob_sizes: dict[str, tuple[int, str]] = {}
    html5: dict[str, str] = {}
    books: dict[str, str] = {}
    roots = 0
    for i, node in enumerate(nodes):
        if each is not None:
            each(i, node)
        if not isinstance(node, dict):
            continue
        where = f"nodes[{i}]"
        node_id = node.get("id")
        if not isinstance(node_id, str):
            continue
        parent = node.get("parent")
        if node_id in index:
            problems.append(Problem(f"{where}.id", f"duplicate node id {node_id!r} (first at nodes[{index[node_id]}])"))
            continue
        if parent is None:
            roots += 1
            if i != 0:
                problems.append(Problem(f"{where}.parent", "only the first node may be the root (parent: null)"))
            if node.get("kind") != "topic":
                problems.append(Problem(f"{where}.kind", "the root node must be a topic"))
            depth[node_id] = 0
        elif parent == node_id:
            problems.append(Problem(f"{where}.parent", f"node {node_id!r} is its own parent (a cycle)"))
        elif parent not in index:
            if parent in all_ids():
                cycle = _find_cycle(nodes, all_ids(), node_id)
                if cycle:
                    problems.append(Problem(f"{where}.parent", "cycle: " + " → ".join(cycle)))
                else:
                    problems.append(Problem(f"{where}.parent", f"parent {parent!r} is defined after "
                                            f"this node (at nodes[{all_ids()[parent]}]); parents come first"))
            else:
                problems.append(Problem(f"{where}.parent", f"orphan: parent {parent!r} is not in the pack"))
        else:
            if kinds.get(parent) != "topic":
                problems.append(Problem(f"{where}.parent", f"parent {parent!r} is a {kinds.get(parent)}, not a topic"))
            depth[node_id] = depth.get(parent, 0) + 1
            if depth[node_id] > limits.max_depth:
                problems.append(Problem(where, f"deeper than {limits.max_depth} levels"))
        index[node_id] = i
        kinds[node_id] = node.get("kind")
        problems.extend(_check_node(node, where, limits, blob_sizes))
        if facts is not None:
            facts.ids.append(node_id)
            kind = node.get("kind")
            if kind in ("html5", "document"):
                _note_served_zip(node, kind, html5, books)
    if roots == 0 and nodes:
        problems.append(Problem("nodes", "no root node (a topic with parent: null)"))
    elif roots > 1:
        problems.append(Problem("nodes", f"{roots} root nodes; a pack has exactly one"))
    if facts is not None:
        facts.blobs = {sha: size for sha, (size, _where) in blob_sizes.items()}
        facts.served_zips = {**html5, **books}
    return problems


def _note_served_zip(node: dict, kind: str, html5: dict, books: dict) -> None:
    """One node's part of :func:`served_zips`."""
    for f in node.get("files", ()) if isinstance(node.get("files"), list) else ():
        if isinstance(f, dict) and f.get("role") == "main" and isinstance(f.get("sha256"), str):
            if kind == "html5":
                html5[f["sha256"]] = "index.html"
            elif f.get("mime") == EPUB:
                books[f["sha256"]] = "META-INF/container.xml"


def _find_cycle(nodes: list, all_ids: dict, start: str) -> list[str] | None:
    seen: list[str] = []
    current: Any = start
    while isinstance(current, str) and current in all_ids and len(seen) <= len(nodes):
        if current in seen:
            return seen[seen.index(current):] + [current]
        seen.append(current)
        current = nodes[all_ids[current]].get("parent")
    return None


def _check_node(node: dict, where: str, limits: Limits, blob_sizes: dict) -> list[Problem]:
    problems: list[Problem] = []
    kind = node.get("kind")
    files = node.get("files") if isinstance(node.get("files"), list) else []
    if len(files) > limits.max_files_per_node:
        problems.append(Problem(f"{where}.files", f"{len(files)} files; the limit is {limits.max_files_per_node}"))
    mains = []
    for j, f in enumerate(files):
        if not isinstance(f, dict):
            continue
        sha, size = f.get("sha256"), f.get("size")
        if isinstance(sha, str) and isinstance(size, int):
            if size > limits.max_blob_size:
                problems.append(Problem(f"{where}.files[{j}].size", f"{size} bytes is over the limit of {limits.max_blob_size}"))
            seen = blob_sizes.setdefault(sha, (size, f"{where}.files[{j}]"))
            if seen[0] != size:
                problems.append(Problem(f"{where}.files[{j}].size", f"{size} differs from the size {seen[0]} "
                                        f"declared for the same sha256 at {seen[1]}"))
        if f.get("role") == "main":
            mains.append((j, f))
        problems.extend(_check_mime(f, f"{where}.files[{j}].mime"))
    if kind == "topic":
        if mains:
            problems.append(Problem(f"{where}.files", "a topic has no main file"))
    elif kind in KINDS and kind != "exercise":
        if len(mains) != 1:
            problems.append(Problem(f"{where}.files", f"a {kind} needs exactly one file with role main, found {len(mains)}"))
        elif (kind in MAIN_MIME and media.allowed(mains[0][1].get("mime"))
              and media.normalise(mains[0][1].get("mime")) not in MAIN_MIME[kind]):
            problems.append(Problem(f"{where}.files[{mains[0][0]}].mime",
                                    f"a {kind}'s main file must be {' or '.join(MAIN_MIME[kind])}"))
    if kind in ("video", "audio") and "duration" not in node:
        problems.append(Problem(f"{where}.duration", f"a {kind} needs its duration in seconds"))
    if kind == "exercise":
        if not isinstance(node.get("exercise"), dict):
            problems.append(Problem(f"{where}.exercise", "an exercise node needs an exercise object"))
        else:
            problems.extend(_check_exercise(node["exercise"], f"{where}.exercise"))
    return problems


def _check_mime(f: dict, where: str) -> list[Problem]:
    """A file's type must be one the box knows how to serve safely (``media.ALLOWED``).

    Parameters and case do not matter (``text/markdown; charset=utf-8`` is fine);
    anything that a browser could run as a page or a script is refused here, and
    would be served only as a download if it were in the catalog anyway.
    """
    declared = f.get("mime")
    if not isinstance(declared, str):
        return []  # the schema reports it
    mime = media.normalise(declared)
    if mime not in media.ALLOWED:
        return [Problem(where, f"{declared!r} is not a type a pack may carry "
                               f"(images, audio, video, PDF, WebVTT, text, Markdown, html5 zips, EPUB)")]
    wanted = ROLE_MIME.get(f.get("role"))
    if wanted and mime not in wanted:
        return [Problem(where, f"a {f.get('role')} file must be {' or '.join(wanted)}, not {declared!r}")]
    if mime == media.ZIP and f.get("role") != "main":
        return [Problem(where, "a zip is only allowed as the main file of an html5 node")]
    if mime == media.EPUB and f.get("role") != "main":
        return [Problem(where, "an EPUB is only allowed as the main file of a document node")]
    return []


def _check_exercise(ex: dict, where: str) -> list[Problem]:
    problems: list[Problem] = []
    mastery = ex.get("mastery")
    if isinstance(mastery, dict) and mastery.get("model") == "m_of_n":
        m, n = mastery.get("m"), mastery.get("n")
        if isinstance(m, int) and isinstance(n, int) and m > n:
            problems.append(Problem(f"{where}.mastery", f"m ({m}) cannot exceed n ({n})"))
    ids: dict[str, int] = {}
    questions = ex.get("questions") if isinstance(ex.get("questions"), list) else []
    for k, q in enumerate(questions):
        if not isinstance(q, dict):
            continue
        qwhere = f"{where}.questions[{k}]"
        qid = q.get("id")
        if isinstance(qid, str):
            if qid in ids:
                problems.append(Problem(f"{qwhere}.id", f"duplicate question id {qid!r} (first at questions[{ids[qid]}])"))
            ids.setdefault(qid, k)
        choices = q.get("choices") if isinstance(q.get("choices"), list) else []
        kind = q.get("type")
        if kind == "single_choice" and isinstance(q.get("answer"), int) and q["answer"] >= len(choices):
            problems.append(Problem(f"{qwhere}.answer", f"answer {q['answer']} is not one of the {len(choices)} choices"))
        if kind == "multiple_choice" and isinstance(q.get("answers"), list):
            for a in q["answers"]:
                if isinstance(a, int) and a >= len(choices):
                    problems.append(Problem(f"{qwhere}.answers", f"answer {a} is not one of the {len(choices)} choices"))
        if kind == "generated" and isinstance(q.get("answer"), str) and isinstance(q.get("variables"), dict):
            for name, bounds in q["variables"].items():
                if isinstance(bounds, dict) and isinstance(bounds.get("min"), int) \
                        and isinstance(bounds.get("max"), int) and bounds["min"] > bounds["max"]:
                    problems.append(Problem(f"{qwhere}.variables.{name}", "min is greater than max"))
            try:
                unknown = expression_names(q["answer"]) - set(q["variables"])
            except ExpressionError as exc:
                problems.append(Problem(f"{qwhere}.answer", str(exc)))
            else:
                if unknown:
                    problems.append(Problem(f"{qwhere}.answer", f"unknown variable(s) {', '.join(sorted(unknown))}"))
    return problems


def blob_table(manifest: dict) -> dict[str, int]:
    """Every blob the manifest references: sha256 → size (validated manifests only)."""
    out: dict[str, int] = {}
    for node in manifest["nodes"]:
        for f in node.get("files", ()):
            out[f["sha256"]] = f["size"]
    return out


def served_zips(manifest: dict) -> dict[str, str]:
    """Zips the box serves member by member (html5 apps, EPUB books) → the entry each must have.

    Each is scanned as a hostile zip before it is stored, as html5 apps always were."""
    out = {sha: "index.html" for sha in html5_blobs(manifest)}
    for n in manifest["nodes"]:
        if n.get("kind") == "document":
            for f in n.get("files", ()):
                if f.get("role") == "main" and f.get("mime") == EPUB:
                    out[f["sha256"]] = "META-INF/container.xml"
    return out


def html5_blobs(manifest: dict) -> set[str]:
    """The blobs that are html5 apps (validated as zips before they are stored)."""
    return {f["sha256"] for n in manifest["nodes"] if n.get("kind") == "html5"
            for f in n.get("files", ()) if f.get("role") == "main"}
