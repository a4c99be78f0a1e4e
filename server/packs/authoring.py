"""Facilitators' own material: a local pack, written on the box, shared like any other.

Each box keeps one *local pack* (``local-<device>``) as an authoring folder
under ``HOME/authoring/`` in the same format publishers use
(docs/authoring-format.md). Every addition writes a file there, then the
folder is built into a pack with the next version number and imported by
the content library — so an addition is atomic like any import, is indexed
for search, keeps learners' progress (node ids are fixed when an item is
made), and the pack can be exported from the content page and imported on
another box.
"""

from __future__ import annotations

import re
import shutil
import unicodedata
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from flask_babel import force_locale, gettext
from passerelle import content as lib
from passerelle.server.errors import InvalidInput
from passerelle.server.i18n import lazy_text as _l

UPLOAD_KINDS = {".pdf": "document", ".mp4": "video", ".webm": "video", ".mp3": "audio",
                ".ogg": "audio", ".m4a": "audio", ".png": "image", ".jpg": "image",
                ".jpeg": "image", ".svg": "image", ".webp": "image"}
TOPIC = "01-material"
# Items the pack could not be built with wait here, outside the build, until removed:
# one broken item must never stop the others from being published.
ASIDE = ".set-aside"
WHY = ".problem.txt"


def pack_id(db) -> str:
    """This box's local pack id, chosen once and kept in ``meta``.

    Not derived from the device id at each call: a restore gives the box a new
    device id, and the facilitators' pack must stay the same pack.
    """
    row = db.execute("SELECT value FROM meta WHERE key = 'local_pack_id'").fetchone()
    if row:
        return row[0]
    device = db.execute("SELECT value FROM meta WHERE key = 'device_id'").fetchone()[0]
    chosen = f"local-{device.replace('-', '')[:8]}"
    db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('local_pack_id', ?)", [chosen])
    db.conn.commit()
    return db.execute("SELECT value FROM meta WHERE key = 'local_pack_id'").fetchone()[0]


LOCAL_PACK = re.compile(r"local-[0-9a-f]{8}")


def is_local_pack(pack_id: str) -> bool:
    """Whether an id is a box's own material pack (this box's or, through sync, another's)."""
    return bool(LOCAL_PACK.fullmatch(pack_id or ""))


def folder(home, local_pack: str) -> Path:
    return Path(home.root) / "authoring" / local_pack


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:40] or "item"


def ensure(home, local_pack: str, org_name: str, language: str) -> Path:
    """The authoring folder, made on first use; its titles are written in the pack's language
    (content learners read, so in the organisation's first language, not the facilitator's)."""
    root = folder(home, local_pack)
    if not (root / "pack.yaml").exists():
        with force_locale(language):
            title = gettext("%(org)s: our material", org=org_name)
            description = gettext("Lessons and quizzes written by the facilitators of this space.")
            topic = gettext("Our material")
        (root / TOPIC / "img").mkdir(parents=True, exist_ok=True)
        (root / "pack.yaml").write_text(yaml.safe_dump({
            "id": local_pack, "version": 0, "title": title, "description": description,
            "language": language, "license": "CC-BY-SA-4.0", "publisher": org_name,
        }, allow_unicode=True, sort_keys=False), encoding="utf-8")
        (root / TOPIC / "_topic.yaml").write_text(yaml.safe_dump(
            {"id": "material", "title": topic}, allow_unicode=True), encoding="utf-8")
    return root


def items(home, local_pack: str) -> list[dict]:
    """What the material page lists: each item once, those set aside with the reason.

    A file someone broke by hand is listed by its name, never a reason for the page to fail:
    one facilitator's item must not take the page away from everyone.
    """
    root = folder(home, local_pack)
    found = [_describe(path, None) for path in _item_files(root / TOPIC)]
    aside = root / ASIDE
    found += [_describe(path, _reason(aside, _stem(path))) for path in _item_files(aside)]
    return found


def _item_files(where: Path) -> list[Path]:
    """The file that describes each item (its text, quiz or sidecar), in order of addition."""
    if not where.is_dir():
        return []
    return [p for p in sorted(where.iterdir()) if p.is_file() and not p.name.startswith("_")
            and (p.suffix == ".md" or p.suffix == ".yaml")]


def _describe(path: Path, problem: str | None) -> dict:
    kind = "article" if path.suffix == ".md" else (
        "exercise" if path.name.endswith(".exercise.yaml") else "file")
    try:
        text = path.read_text(encoding="utf-8")
        meta = lib.front_matter(text)[0] if kind == "article" else yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, lib.FrontMatterError):
        meta = None
    meta = meta if isinstance(meta, dict) else {}
    return {"stem": _stem(path), "id": str(meta.get("id") or ""),
            "title": str(meta.get("title") or _stem(path)),
            "kind": str(meta.get("kind") or kind) if kind == "file" else kind, "problem": problem}


def _stem(path: Path) -> str:
    return path.name.split(".", 1)[0]


def _reason(aside: Path, stem: str) -> str:
    try:
        return (aside / f"{stem}{WHY}").read_text(encoding="utf-8")
    except OSError:
        return ""


def _next_name(root: Path, title: str) -> tuple[str, str]:
    """A file stem keeping the order of additions, and a node id fixed forever.

    The number follows the highest one used, here or set aside: removing an item never
    gives its number to the next one.
    """
    used = [int(found.group(1)) for where in (root / TOPIC, root / TOPIC / "img", root / ASIDE)
            if where.is_dir() for p in where.iterdir() if (found := re.match(r"(\d+)-", p.name))]
    number = max(used, default=0) + 1
    return f"{number:03d}-{_slug(title)}", f"material/{uuid.uuid4().hex[:10]}"


def _title(title: str) -> str:
    title = " ".join((title or "").split())  # one line: line breaks and tabs become spaces
    if not title or len(title) > 120:
        raise InvalidInput(_l("the title is not valid"), details={"title": _l("1 to 120 characters")})
    return title


def _front_matter(meta: dict) -> str:
    return "---\n" + yaml.safe_dump(meta, allow_unicode=True, sort_keys=False) + "---\n"


def add_article(root: Path, title: str, body: str) -> str:
    title = _title(title)
    if not (body or "").strip() or len(body) > 100_000:
        raise InvalidInput(_l("the article is not valid"),
                           details={"body": _l("some text (100,000 characters at most)")})
    stem, node_id = _next_name(root, title)
    (root / TOPIC / f"{stem}.md").write_text(_front_matter({"id": node_id, "title": title}) + body,
                                              encoding="utf-8")
    return stem


def add_file(root: Path, title: str, filename: str, source: Path, duration: float | None = None) -> str:
    """A PDF, video or audio file becomes its own resource; an image, an article showing it.

    Videos and audio need their duration; the upload page reads it in the browser
    (the box may have no media tools), and 1 second stands in when it is unknown.
    """
    title = _title(title)
    suffix = Path(filename or "").suffix.lower()
    kind = UPLOAD_KINDS.get(suffix)
    if kind is None:
        raise InvalidInput(_l("this kind of file is not supported"),
                           details={"file": _l("one of %(choices)s",
                                               choices=", ".join(sorted(UPLOAD_KINDS)))})
    stem, node_id = _next_name(root, title)
    if kind == "image":
        image = f"{stem}{suffix}"
        shutil.move(str(source), root / TOPIC / "img" / image)
        body = f"![{title}](img/{image})\n"
        (root / TOPIC / f"{stem}.md").write_text(
            _front_matter({"id": node_id, "title": title}) + body, encoding="utf-8")
    else:
        shutil.move(str(source), root / TOPIC / f"{stem}{suffix}")
        sidecar = {"id": node_id, "title": title, "kind": kind}
        if kind in ("video", "audio"):
            sidecar["duration"] = round(duration, 1) if duration and duration > 0 else 1
        (root / TOPIC / f"{stem}.yaml").write_text(yaml.safe_dump(sidecar, allow_unicode=True),
                                                    encoding="utf-8")
    return stem


def add_quiz(root: Path, title: str, questions: list[dict]) -> str:
    """A quiz of single-choice questions: {prompt, choices: [..], answer: index}."""
    title = _title(title)
    clean, problems = [], {}
    for i, q in enumerate(questions):
        prompt = (q.get("prompt") or "").strip()
        choices = [c.strip() for c in q.get("choices", []) if c and c.strip()]
        if not prompt and not choices:
            continue
        answer = q.get("answer")
        if not prompt or len(choices) < 2 or not isinstance(answer, int) or not 0 <= answer < len(choices):
            problems[f"questions[{i}]"] = _l("a question, at least two answers, and which one is right")
            continue
        clean.append({"id": f"q{i + 1}", "type": "single_choice", "prompt": prompt,
                      "choices": choices, "answer": answer})
    if problems or not clean:
        raise InvalidInput(_l("the quiz is not valid"),
                           details=problems or {"questions": _l("at least one question")})
    stem, node_id = _next_name(root, title)
    (root / TOPIC / f"{stem}.exercise.yaml").write_text(yaml.safe_dump({
        "id": node_id, "title": title, "mastery": {"model": "do_all"}, "randomize": False,
        "questions": clean}, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return stem


def exercise_questions(db, copying: bool = True) -> list[dict]:
    """Questions of installed exercises a quiz can reuse: to copy them into this box's own
    pack, those showing no pack image (``copying``); to ask them where they are, all that
    have an id."""
    import json

    found = []
    for pack_id_, node_id, title, data in db.execute(
            "SELECT n.pack_id, n.node_id, n.title, n.data FROM content_nodes n"
            " WHERE n.kind = 'exercise' ORDER BY n.pack_id, n.position").fetchall():
        for q in (json.loads(data).get("exercise") or {}).get("questions", []):
            if copying and "sha256:" in json.dumps(q):  # its image is another pack's: not copied
                continue
            if not copying and not q.get("id"):
                continue
            found.append({"key": f"{pack_id_}/{node_id}#{q.get('id')}", "exercise": title,
                          "prompt": str(q.get("prompt", ""))[:160], "question": q})
    return found


def add_quiz_from(root: Path, title: str, questions: list[dict], shuffle: bool) -> str:
    """A quiz of questions taken from installed exercises, in the order chosen or shuffled."""
    title = _title(title)
    if not questions or len(questions) > 50:
        raise InvalidInput(_l("the quiz is not valid"),
                           details={"questions": _l("choose 1 to 50 questions")})
    copied = []
    for i, q in enumerate(questions):
        q = dict(q)
        q["id"] = f"q{i + 1}"  # ids unique inside the new exercise
        copied.append(q)
    stem, node_id = _next_name(root, title)
    (root / TOPIC / f"{stem}.exercise.yaml").write_text(yaml.safe_dump({
        "id": node_id, "title": title, "mastery": {"model": "do_all"}, "randomize": bool(shuffle),
        "questions": copied}, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return stem


@dataclass
class Published:
    result: lib.ImportResult
    set_aside: dict[str, str] = field(default_factory=dict)  # stem → what is wrong with it


def publish(root: Path, library: lib.Library, work: Path) -> Published:
    """Build the folder as the next version and import it (atomic, indexed, progress kept).

    An item the pack cannot be built with (an article showing an image that is not
    there, a file broken by hand) is set aside with its problem and the rest is built
    again: the others are still published. Problems that belong to no item (the pack's
    own file) still refuse the whole publication.
    """
    meta_path = root / "pack.yaml"
    meta = yaml.safe_load(meta_path.read_text(encoding="utf-8"))
    installed = next((p.version for p in library.list() if p.id == meta["id"]), 0)
    meta["version"] = max(int(meta.get("version", 0)), installed) + 1
    meta_path.write_text(yaml.safe_dump(meta, allow_unicode=True, sort_keys=False), encoding="utf-8")
    work.mkdir(parents=True, exist_ok=True)
    target = work / f"{meta['id']}-v{meta['version']}.zip"
    set_aside: dict[str, str] = {}
    try:
        while True:
            try:
                built = lib.build_pack(root, target)
                break
            except lib.InvalidPack as exc:
                broken = _items_named(root, exc.problems)
                if not broken:
                    raise
                for stem, problems in broken.items():
                    set_aside[stem] = "; ".join(problems)
                    _set_aside(root, stem, set_aside[stem])
        return Published(library.import_pack(built.path), set_aside)
    finally:
        target.unlink(missing_ok=True)


def _items_named(root: Path, problems: list[lib.Problem]) -> dict[str, list[str]]:
    """The items (by stem) that build problems point at: ``01-material/003-x.md`` or
    ``nodes[4].title (01-material/003-x.md)``. Only items that are still in the folder."""
    found: dict[str, list[str]] = {}
    for problem in problems:
        match = re.search(rf"(?:^|\(){re.escape(TOPIC)}/(?:img/)?(\d+-[^/.)\s]*)", problem.location)
        if match and _files_of(root / TOPIC, match.group(1)):
            found.setdefault(match.group(1), []).append(problem.message)
    return found


def _files_of(where: Path, stem: str) -> list[Path]:
    """Every file of one item: its text or sidecar, its media, its picture under img/."""
    return [p for folder_ in (where, where / "img") if folder_.is_dir()
            for p in folder_.iterdir() if p.is_file() and _stem(p) == stem]


def _set_aside(root: Path, stem: str, problem: str) -> None:
    aside = root / ASIDE
    for path in _files_of(root / TOPIC, stem):
        target = aside / path.relative_to(root / TOPIC)
        target.parent.mkdir(parents=True, exist_ok=True)
        path.replace(target)
    (aside / f"{stem}{WHY}").write_text(problem, encoding="utf-8")


def remove(root: Path, stem: str) -> bool:
    """Delete an item, published or set aside; False when there is no such item.

    The stem must name an item the page listed: it is never taken as a path.
    """
    if not re.fullmatch(r"\d+-[a-z0-9-]*", stem or ""):
        return False
    doomed = _files_of(root / TOPIC, stem) + _files_of(root / ASIDE, stem)
    for path in doomed:
        path.unlink(missing_ok=True)
    return bool(doomed)
