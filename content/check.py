"""``check_pack``: everything wrong with a pack, without installing it.

Used by ``passerelle pack check`` and by publishers before they ship a pack.
Unlike an import, it does not stop at the first bad blob: it reads them all
(streaming, 1 MiB at a time) and lists every problem with where it is.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import zipfile
from collections.abc import Callable
from contextlib import nullcontext

from .errors import ContentError, InvalidPack, Problem, SignatureError
from .manifest import DEFAULT_LIMITS, Limits, parse_manifest, validate_manifest
from .packio import CHUNK, FolderSource, PackSource, ZipSource, open_source, scan_zip
from .signing import verify_signature

_IMAGE_REF = re.compile(r"sha256:([0-9a-f]{64})")


def check_pack(path: str | os.PathLike | PackSource, limits: Limits = DEFAULT_LIMITS,
               progress: Callable[[int, int, str], None] | None = None,
               trusted_keys=None, require_signature: bool = False) -> list[Problem]:
    """Every problem of the pack at ``path`` (errors and warnings), each with its location."""
    try:
        if isinstance(path, PackSource) or str(path).startswith(("http://", "https://")):
            src = open_source(path, limits)
        elif os.path.isdir(path):
            src = FolderSource(path, limits)
        else:
            src = ZipSource(path, limits)
    except FileNotFoundError:
        return [Problem(str(path), "no such file or folder")]
    except InvalidPack as exc:
        return exc.problems
    with src:
        problems = list(src.problems)
        if any(p.severity == "error" for p in problems):
            return problems  # never read from a hostile container
        try:
            data = src.manifest_bytes()
        except InvalidPack as exc:
            return problems + exc.problems
        manifest, found = parse_manifest(data, limits)
        if manifest is None:
            return problems + found
        found = validate_manifest(manifest, limits)
        problems += found
        try:
            verify_signature(data, src.signature_bytes(), trusted_keys, require_signature)
        except SignatureError as exc:
            problems.append(Problem("signature.json", exc.message))
        if any(p.location == "nodes" or p.location == "format" for p in found):
            return problems
        problems += _check_blobs(src, manifest, limits, progress)
    return problems


def _check_blobs(src: PackSource, manifest: dict, limits: Limits, progress) -> list[Problem]:
    problems: list[Problem] = []
    where: dict[str, str] = {}
    sizes: dict[str, int] = {}
    html5: set[str] = set()
    articles: dict[str, tuple[str, set[str]]] = {}
    for i, node in enumerate(manifest.get("nodes", [])):
        if not isinstance(node, dict):
            continue
        files = node.get("files") if isinstance(node.get("files"), list) else []
        images = {f.get("sha256") for f in files if isinstance(f, dict) and f.get("role") == "image"}
        for j, f in enumerate(files):
            if not isinstance(f, dict) or not isinstance(f.get("sha256"), str) or not isinstance(f.get("size"), int):
                continue
            sha = f["sha256"]
            where.setdefault(sha, f"nodes[{i}].files[{j}]")
            sizes.setdefault(sha, f["size"])
            if f.get("role") == "main" and node.get("kind") == "html5":
                html5.add(sha)
            if f.get("role") == "main" and node.get("kind") == "article" and f["size"] <= 8 * CHUNK:
                articles[sha] = (f"nodes[{i}]", images)
        exercise = node.get("exercise")
        if isinstance(exercise, dict):
            text = repr(exercise)
            for ref in _IMAGE_REF.findall(text):
                if ref not in images:
                    problems.append(Problem(f"nodes[{i}].exercise", f"shows image sha256:{ref[:12]}… "
                                            "which is not in the node's files (role image)"))
    total = sum(sizes.values())
    done = 0
    names = src.blob_names()
    for sha in sorted(sizes):
        loc = f"{where[sha]}.sha256"
        have = src.blob_size(sha)
        if have is None:
            problems.append(Problem(loc, f"files/{sha} is missing from the pack"))
            continue
        if have is not ... and have != sizes[sha]:
            problems.append(Problem(f"{where[sha]}.size", f"files/{sha} has {have} bytes, "
                                    f"the manifest says {sizes[sha]}"))
            continue
        keep = sha in html5 or sha in articles
        with (tempfile.SpooledTemporaryFile(max_size=8 * CHUNK) if keep else nullcontext()) as spool:
            problems += _check_one(src, sha, sizes[sha], where[sha], spool, html5, articles, limits,
                                   progress, (done, total))
        done += sizes[sha]
    if names is not None:
        for extra in sorted(names - set(sizes)):
            problems.append(Problem(f"files/{extra}", "not referenced by the manifest (ignored)", "warning"))
    return problems


def _check_one(src, sha, size, where, spool, html5, articles, limits, progress, counts) -> list[Problem]:
    loc = f"{where}.sha256"
    done, total = counts
    h = hashlib.sha256()
    n_read = 0
    try:
        with src.open_blob(sha, size) as stream:
            while chunk := stream.read(CHUNK):
                h.update(chunk)
                n_read += len(chunk)
                if spool is not None:
                    spool.write(chunk)
                if progress:
                    progress(done + n_read, total, "check")
    except ContentError as exc:
        return [Problem(loc, exc.message)]
    if n_read != size:
        got = n_read if n_read <= size else f"more than {size}"
        return [Problem(f"{where}.size", f"files/{sha} has {got} bytes, the manifest says {size}")]
    if h.hexdigest() != sha:
        return [Problem(loc, f"files/{sha} does not match its SHA-256 (its content hashes to {h.hexdigest()})")]
    problems: list[Problem] = []
    if spool is not None:
        spool.seek(0)
        if sha in html5:
            problems += _check_html5(spool, loc, limits)
        if sha in articles:
            node_loc, images = articles[sha]
            text = spool.read().decode("utf-8", "replace")
            for ref in sorted(set(_IMAGE_REF.findall(text)) - images):
                problems.append(Problem(f"{node_loc}.files", f"the article shows image sha256:{ref[:12]}… "
                                        "which is not in the node's files (role image)"))
    return problems


def _check_html5(stream, loc: str, limits: Limits) -> list[Problem]:
    try:
        with zipfile.ZipFile(stream) as zf:
            problems = scan_zip(zf, limits, f"{loc} (html5) ", limits.html5_max_members, limits.html5_max_total)
            if "index.html" not in zf.namelist():
                problems.append(Problem(loc, "the html5 app has no index.html at its root"))
            return problems
    except zipfile.BadZipFile as exc:
        return [Problem(loc, f"the html5 app is not a valid zip ({exc})")]
