"""The catalogue of installed content: the only reader of the content library's tables.

The content library (``passerelle.content``) owns ``content_packs``, ``content_nodes`` and
``content_node_files`` and writes them on import; everything else on the server reads them
through the functions here, so a change of the catalogue's shape is made in one place.
"""

from __future__ import annotations

import json

from passerelle.server import dialect

# A node's teaching-guide flag (the pack format's ``for_facilitators``, Kolibri's coach content):
# hidden from learners and guests with everything under it, shown to staff with a badge.
FOR_FACILITATORS = "for_facilitators"


def for_facilitators(data: dict | None) -> bool:
    """Whether this node itself is flagged (see :func:`staff_only` for its ancestors too)."""
    return bool(data) and data.get(FOR_FACILITATORS) is True


def staff_only(db, pack_id: str, found: dict, trail: list[dict] | None = None) -> bool:
    """Whether a node is for facilitators only: flagged itself or under a flagged topic
    (``trail``: its ancestors, when the caller has them already)."""
    if for_facilitators(found):
        return True
    return any(for_facilitators(t) for t in (ancestors(db, pack_id, found) if trail is None
                                             else trail))


def staff_only_keys(db, keys) -> set[tuple[str, str]]:
    """Which of these (pack id, node id) are for facilitators only (flagged or under a flagged
    topic): one walk up the tree for all of them."""
    keys = list(dict.fromkeys((str(p), str(n)) for p, n in keys))
    found: set[tuple[str, str]] = set()
    for start in range(0, len(keys), 400):
        chunk = keys[start:start + 400]
        found |= {(p, n) for p, n in db.execute(
            f"WITH RECURSIVE k (pack_id, node_id) AS (VALUES {', '.join(['(?, ?)'] * len(chunk))}),"
            " up (pack_id, start_id, node_id, depth) AS ("
            "  SELECT pack_id, node_id, node_id, 0 FROM k"
            "  UNION ALL SELECT n.pack_id, up.start_id, n.parent_id, up.depth + 1 FROM up"
            "  JOIN content_nodes n ON n.pack_id = up.pack_id AND n.node_id = up.node_id"
            "  WHERE n.parent_id IS NOT NULL AND up.depth < 40)"
            " SELECT DISTINCT up.pack_id, up.start_id FROM up JOIN content_nodes n"
            " ON n.pack_id = up.pack_id AND n.node_id = up.node_id"
            f" WHERE {dialect.of(db).json_is_true('n.data', FOR_FACILITATORS)}",
            [part for key in chunk for part in key]).fetchall()}
    return found


def _by_keys(db, columns: str, keys) -> list[tuple]:
    """Rows of content_nodes for (pack id, node id) pairs, a few hundred per query: a page
    listing N resources asks once, not N times."""
    keys = list(dict.fromkeys((str(p), str(n)) for p, n in keys))
    rows: list[tuple] = []
    for start in range(0, len(keys), 400):  # 800 variables: under every SQLite's limit
        chunk = keys[start:start + 400]
        # Joined from the keys (not "(pack_id, node_id) IN (VALUES ...)", which SQLite answers
        # by scanning the whole catalogue): one primary-key search per key.
        rows += db.execute(
            f"WITH k (pack_id, node_id) AS (VALUES {', '.join(['(?, ?)'] * len(chunk))})"
            f" SELECT n.pack_id, n.node_id, {columns} FROM k"
            " JOIN content_nodes n ON n.pack_id = k.pack_id AND n.node_id = k.node_id"
            " JOIN content_packs p ON p.id = n.pack_id",
            [part for key in chunk for part in key]).fetchall()
    return rows


def brief(db, keys) -> dict[tuple[str, str], dict]:
    """Title, kind and language of many resources in one query: (pack, node) -> facts.

    Resources no longer installed are absent from the answer. An article of a Kiwix ZIM
    (``zim:<uuid>``, its path) is a resource too: an article, in a lesson or a report.
    """
    keys = list(keys)
    articles = [(p, n) for p, n in keys if str(p).startswith(ZIM_PREFIX)]
    found = {(pack, node): {"title": title, "kind": kind, "language": language}
             for pack, node, title, kind, language
             in _by_keys(db, "n.title, n.kind, coalesce(n.language, p.language)",
                         [k for k in keys if not str(k[0]).startswith(ZIM_PREFIX)])}
    if articles:
        found.update(zim_articles(db, articles))
    return found


ZIM_PREFIX = "zim:"


def zim_articles(db, keys) -> dict[tuple[str, str], dict]:
    """:func:`brief` of ZIM articles: the ZIM's language, the article's title as the ZIM
    says it (read by the serving app's ZIM library; from its path elsewhere, the CLI)."""
    from flask import current_app, has_app_context
    from passerelle.content.zim import ZimNotFound, kiosk_language

    uuids = sorted({str(p)[len(ZIM_PREFIX):] for p, _ in keys})
    zims = dict(db.execute(
        f"SELECT uuid, language FROM content_zims WHERE uuid IN ({', '.join('?' * len(uuids))})",
        uuids).fetchall())
    library = (current_app.extensions.get("passerelle.zims") if has_app_context() else None)
    found = {}
    for pack, path in keys:
        uuid = str(pack)[len(ZIM_PREFIX):]
        if uuid not in zims:
            continue
        title = path.rsplit("/", 1)[-1].removesuffix(".html").replace("_", " ")
        if library is not None:
            try:
                entry = library.read(uuid, path)
                title = library.read(uuid, entry).title if isinstance(entry, str) else entry.title
            except ZimNotFound:
                if library.get(uuid).available:
                    continue   # no such article (an unplugged disk keeps its articles listed)
            except Exception:  # noqa: BLE001 - a damaged entry keeps its path as its title
                pass
        found[(pack, path)] = {"title": title or path, "kind": "article",
                               "language": kiosk_language(zims[uuid]), "zim": True}
    return found


def nodes(db, keys) -> dict[tuple[str, str], dict]:
    """:func:`node` for several nodes at once, by (pack id, node id)."""
    found = {}
    for pack, node_id, data, language in _by_keys(db, "n.data, p.language", keys):
        data = json.loads(data)
        data["pack_id"] = pack
        data.setdefault("language", language)
        found[(pack, node_id)] = data
    return found


def packs(db) -> list[dict]:
    rows = db.execute("SELECT p.id, p.title, p.language, p.node_count,"
                      " (SELECT n.data FROM content_nodes n WHERE n.pack_id = p.id AND n.parent_id IS NULL)"
                      " FROM content_packs p ORDER BY p.title COLLATE NOCASE").fetchall()
    result = []
    for pack_id, title, language, count, root in rows:
        root = json.loads(root) if root else {}
        result.append({"id": pack_id, "title": title, "language": language, "node_count": count,
                       "description": root.get("description", ""), "root": root.get("id"),
                       "thumbnail": file_of(root, "thumbnail"),
                       FOR_FACILITATORS: for_facilitators(root)})
    return result


def node(db, pack_id: str, node_id: str) -> dict | None:
    row = db.execute("SELECT n.data, p.language FROM content_nodes n"
                     " JOIN content_packs p ON p.id = n.pack_id"
                     " WHERE n.pack_id = ? AND n.node_id = ?", [pack_id, node_id]).fetchone()
    if row is None:
        return None
    data = json.loads(row[0])
    data["pack_id"] = pack_id
    data.setdefault("language", row[1])  # a node without its own language speaks the pack's
    return data


def resources(db) -> list[dict]:
    """Every installed resource (not topics), in pack order, for the lesson builder."""
    rows = db.execute("SELECT n.pack_id, n.node_id, n.title, n.kind, p.title FROM content_nodes n"
                      " JOIN content_packs p ON p.id = n.pack_id WHERE n.kind != 'topic'"
                      " ORDER BY p.title COLLATE NOCASE, n.position").fetchall()
    keys = ("pack_id", "node_id", "title", "kind", "pack_title")
    found = [dict(zip(keys, r, strict=True)) for r in rows]
    staff = staff_only_keys(db, [(r["pack_id"], r["node_id"]) for r in found])
    for r in found:
        r[FOR_FACILITATORS] = (r["pack_id"], r["node_id"]) in staff
    return found


def tree(db, pack_id: str | None = None) -> list[dict]:
    """Installed packs as trees: each pack with its nodes, each node with ``children``, in the
    order learners see them (for the lesson builder and the content page)."""
    where, params = ("WHERE n.pack_id = ?", [pack_id]) if pack_id else ("", [])
    rows = db.execute("SELECT n.pack_id, n.node_id, n.parent_id, n.kind, n.title, n.language,"
                      f" p.title, p.language, {dialect.of(db).json_is_true('n.data', FOR_FACILITATORS)}"
                      " FROM content_nodes n JOIN content_packs p"
                      f" ON p.id = n.pack_id {where}"
                      " ORDER BY p.title COLLATE NOCASE, n.sort_order, n.position", params
                      ).fetchall()
    packs_found: dict[str, dict] = {}
    nodes: dict[tuple[str, str], dict] = {}
    for pid, nid, parent, kind, title, lang, pack_title, pack_lang, staff in rows:
        pack = packs_found.setdefault(pid, {"pack_id": pid, "title": pack_title,
                                            "language": pack_lang, "children": []})
        nodes[(pid, nid)] = {"pack_id": pid, "node_id": nid, "parent": parent, "kind": kind,
                             "title": title, "language": lang or pack_lang, "children": [],
                             FOR_FACILITATORS: bool(staff)}
    for (pid, _nid), found in nodes.items():
        above = nodes.get((pid, found["parent"])) if found["parent"] else None
        (above["children"] if above else packs_found[pid]["children"]).append(found)

    def inherit(items: list[dict], flagged: bool) -> None:  # under a guide is a guide
        for item in items:
            item[FOR_FACILITATORS] = item[FOR_FACILITATORS] or flagged
            inherit(item["children"], item[FOR_FACILITATORS])

    for pack in packs_found.values():
        inherit(pack["children"], False)
    for pack in packs_found.values():  # a lone topic at the top is the pack itself: no level
        while len(pack["children"]) == 1 and pack["children"][0]["kind"] == "topic":
            pack["children"] = pack["children"][0]["children"]
    return list(packs_found.values())


def same_as(db, pack_id: str, found: dict) -> str | None:
    """The node this one is a second placement of (a Kolibri resource under two topics), if installed:
    pages send learners there, so that both placements share one progress."""
    primary = found.get("same_as")
    if isinstance(primary, str) and primary != found.get("id") and node(db, pack_id, primary) is not None:
        return primary
    return None


def children(db, pack_id: str, node_id: str) -> list[dict]:
    rows = db.execute("SELECT data FROM content_nodes WHERE pack_id = ? AND parent_id = ?"
                      " ORDER BY sort_order, position", [pack_id, node_id]).fetchall()
    return [json.loads(r[0]) for r in rows]


def children_brief(db, pack_id: str, node_id: str) -> list[dict]:
    """A topic's children as a list of them shows them: ``id``, ``title``, ``kind``,
    ``language`` (None: the pack's) and the guide flag, from the columns. Nothing else of
    each record is decoded: an exercise's record holds all its questions, and placing a Khan
    Academy exercise among its 15 siblings decoded every one of them (a fifth of its page)."""
    rows = db.execute("SELECT node_id, title, kind, language,"
                      f" {dialect.of(db).json_is_true('data', FOR_FACILITATORS)}"
                      " FROM content_nodes WHERE pack_id = ? AND parent_id = ?"
                      " ORDER BY sort_order, position", [pack_id, node_id]).fetchall()
    return [{"id": nid, "title": title, "kind": kind, "language": lang, FOR_FACILITATORS: bool(guide)}
            for nid, title, kind, lang, guide in rows]


def ancestors(db, pack_id: str, found: dict) -> list[dict]:
    trail, parent = [], found.get("parent")
    while parent:
        above = node(db, pack_id, parent)
        if above is None:
            break
        trail.append(above)
        parent = above.get("parent")
    return list(reversed(trail))


def file_of(data: dict, role: str, lang: str | None = None) -> dict | None:
    files = [f for f in data.get("files", []) if f.get("role") == role]
    if lang:
        files = [f for f in files if f.get("lang") == lang] or files
    return files[0] if files else None


def files_of(data: dict, role: str) -> list[dict]:
    return [f for f in data.get("files", []) if f.get("role") == role]


def main_file(data: dict) -> dict | None:
    return file_of(data, "main")
