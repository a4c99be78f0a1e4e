"""The layout's rules, read from the source: pages call services, private names stay private.

- ``kiosk/`` runs no SQL: the pages call the server's services, which own the tables.
- No module imports a name beginning with ``_`` from another module, nor reaches
  into another module's private attribute (``module._name``).
- ``content/`` and ``search_index/`` never import Flask, click or each other.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = {"server": "passerelle.server", "kiosk": "passerelle.kiosk",
            "content": "passerelle.content", "search_index": "passerelle.search_index"}
SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b",
                 re.IGNORECASE | re.DOTALL)


def sources(*folders: str):
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*.py")):
            if "bundled" not in path.parts:
                yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO)
    parts = [PACKAGES[rel.parts[0]], *rel.parts[1:]]
    parts[-1] = parts[-1].removesuffix(".py")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_kiosk_pages_run_no_sql():
    found = []
    for path, tree in sources("kiosk"):
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr in ("execute", "executemany", "query"):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} .{node.attr}()")
    assert not found, "SQL in the kiosk (call a service instead):\n" + "\n".join(found)


def test_no_module_uses_another_modules_private_names():
    modules = {module_name(path): tree for path, tree in sources(*PACKAGES)}
    found = []
    for path, tree in sources(*PACKAGES):
        here = module_name(path)
        aliases: dict[str, str] = {}  # local name -> module it stands for
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    if target in modules:
                        aliases[alias.asname or alias.name] = target
                    elif alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(REPO)}:{node.lineno} imports {alias.name}"
                                     f" from {node.module}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname and alias.name in modules:
                        aliases[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and aliases[node.value.id] != here
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                found.append(f"{path.relative_to(REPO)}:{node.lineno} uses"
                             f" {aliases[node.value.id]}.{node.attr}")
    assert not found, "private names used across modules:\n" + "\n".join(found)


@pytest.mark.parametrize("library, forbidden", [
    ("content", ("flask", "click", "passerelle.search_index", "passerelle.server", "passerelle.kiosk")),
    ("search_index", ("flask", "click", "passerelle.content", "passerelle.server", "passerelle.kiosk")),
])
def test_libraries_stay_libraries(library, forbidden):
    found = []
    for path, tree in sources(library):
        for node in ast.walk(tree):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if any(name == f or name.startswith(f + ".") for f in forbidden):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno} imports {name}")
    assert not found, "\n".join(found)


def test_the_catalogue_tables_are_read_in_one_place():
    """``content_*`` tables belong to the content library; the server reads them in
    ``server/packs/`` (``catalogue`` above all). Reports are the one exception: they
    aggregate over the catalogue in SQL, joined in one query, as reports at scale must."""
    allowed = ("server/packs/", "server/reports/")
    found = []
    for path, tree in sources("server", "kiosk"):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith(allowed):
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and re.search(r"\bcontent_(nodes|packs|node_files|zims)\b", node.value)):
                found.append(f"{rel}:{node.lineno}")
    assert not found, "catalogue tables read outside server/packs/:\n" + "\n".join(found)
