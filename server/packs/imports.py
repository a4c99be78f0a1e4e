"""Managing content from the browser: uploads, USB sticks, background imports, peers.

- An import can take minutes (gigabytes from a USB stick), far longer than a
  page should wait, so it runs in one background thread; the page shows its
  progress and the coordinator may close it. Jobs run one at a time — the
  library holds an exclusive lock anyway — and a job that dies (power cut)
  is simply imported again: the library resumes from what it had copied.
- USB sticks are found by looking, a few levels deep, under the mount roots
  (``/media``, ``/run/media``, ``/mnt``) for pack folders (a ``manifest.json``),
  pack zips and Kolibri export folders (``KOLIBRI_DATA``, ``content/databases``).
  Nothing is written to the stick.
- A Kolibri channel is imported whole or by topics, as a job like a pack; the
  coordinator sees each topic's size before choosing.
- Other boxes and hubs import installed packs from ``/api/v1/packs/<id>/``:
  the manifest's exact bytes and ``files/<sha256>``, the layout the content
  library's ``HttpSource`` reads.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from flask import Blueprint, Flask, abort, current_app, jsonify, send_file
from passerelle import content as lib
from passerelle.content import kolibri, kolibri_remote
from passerelle.server.db import get_db
from passerelle.server.web.auth import ANYONE, allow

USB_ROOTS = ("/media", "/run/media", "/mnt")
MAX_DEPTH = 3


@dataclass
class Job:
    id: str
    label: str
    source: str
    state: str = "queued"          # queued | running | done | failed
    done: int = 0
    total: int = 0
    step: str = ""
    message: str = ""
    result: dict | None = None
    started: float = field(default_factory=time.time)
    remove_after: bool = False     # an uploaded file is deleted once imported
    channel: str | None = None     # a Kolibri channel in the export folder ``source``
    topics: list[str] | None = None
    partial: list[str] = field(default_factory=list)  # what a Kolibri import left out
    # A task (see JobRunner.submit_task): what it is for, who may follow it, whether to stop.
    kind: str = "import"
    owners: list[str] = field(default_factory=list)
    cancelled: bool = False
    finished: float = 0.0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["percent"] = int(self.done * 100 / self.total) if self.total else None
        return d


class JobRunner:
    """One background thread importing packs in order; state kept for the pages."""

    def __init__(self, library: lib.Library, on_error=None, video: str = "low"):
        self.library = library
        self.video = video  # a Kolibri video's resolution (the ``kolibri_video`` setting)
        self.jobs: dict[str, Job] = {}
        self._queue: list[Job] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_error = on_error
        self.tasks: dict[str, Job] = {}
        self._task_queue: list[tuple[Job, Callable[[Job], dict]]] = []
        self._task_thread: threading.Thread | None = None

    def submit(self, source: str, label: str, remove_after: bool = False, channel: str | None = None,
               topics: list[str] | None = None) -> Job:
        job = Job(id=uuid.uuid4().hex[:12], label=label, source=source, remove_after=remove_after,
                  channel=channel, topics=topics)
        with self._lock:
            self.jobs[job.id] = job
            self._queue.append(job)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="passerelle-imports",
                                                daemon=True)
                self._thread.start()
        self._wake.set()
        return job

    def recent(self) -> list[Job]:
        return sorted(self.jobs.values(), key=lambda j: j.started, reverse=True)[:10]

    def busy(self) -> bool:
        return any(j.state in ("queued", "running") for j in self.jobs.values())

    def _run(self) -> None:
        while True:
            with self._lock:
                job = self._queue.pop(0) if self._queue else None
            if job is None:
                self._wake.clear()
                if not self._wake.wait(timeout=60):
                    return  # idle: the thread ends, the next submit starts another
                continue
            self._import(job)

    def _import(self, job: Job) -> None:
        job.state = "running"

        def progress(done: int, total: int, step: str) -> None:
            job.done, job.total, job.step = done, total, step

        try:
            if job.channel:
                # An export folder on a drive, or a Kolibri server on the LAN (its address).
                module = kolibri_remote if kolibri_remote.is_url(job.source) else kolibri
                done = module.import_channel(self.library, job.source, job.channel, job.topics,
                                             video=self.video, progress=progress)
                result = done.result
                job.partial = [*done.report.missing, *done.report.damaged, *done.report.refused][:50]
            else:
                result = self.library.import_pack(job.source, progress=progress)
        except lib.ContentError as exc:
            job.state, job.message = "failed", without_paths(str(exc), job.source, job.label)
        except Exception as exc:  # noqa: BLE001 - a job must fail visibly, not kill the thread
            job.state = "failed"
            job.message = without_paths(f"unexpected error: {exc}", job.source, job.label)
            if self._on_error:
                self._on_error(exc)  # the log keeps the whole story, paths included
        else:
            job.state, job.result = "done", result.as_dict()
            job.message = result.status
        finally:
            if job.remove_after:
                Path(job.source).unlink(missing_ok=True)

    # -- Tasks: work a page waits for, such as a channel's database fetched from the LAN ------
    # They have a lane of their own, so that a coordinator choosing topics does not wait behind
    # an import of hours; one at a time, so that a box shares its Wi-Fi with one download.
    # A task's id is unguessable and only its owners (who started or joined it) may see it.

    def submit_task(self, key: str, job: Job, work: Callable[[Job], dict],
                    reuse: Callable[[Job], bool] = lambda job: False) -> Job:
        """Run ``work(job)`` in the tasks' lane (its result becomes ``job.result``), or join the
        task of the same ``key`` that is under way, or done and still good (``reuse``): whoever
        joins becomes one of its owners."""
        owner = job.owners[0]
        with self._lock:
            for known in self.tasks.values():
                if known.source == key and not known.cancelled and (
                        known.state in ("queued", "running") or (known.state == "done" and reuse(known))):
                    if owner not in known.owners:
                        known.owners.append(owner)
                    return known
            job.id, job.source = secrets.token_urlsafe(24), key
            self.tasks[job.id] = job
            self._task_queue.append((job, work))
            if self._task_thread is None:
                self._task_thread = threading.Thread(target=self._run_tasks, name="passerelle-tasks",
                                                     daemon=True)
                self._task_thread.start()
        return job

    def task(self, task_id: str, owner: str) -> Job | None:
        """A task its owner may see (None for anyone else, as for an unknown id)."""
        job = self.tasks.get(task_id)
        return job if job is not None and owner in job.owners else None

    def tasks_of(self, owner: str) -> list[Job]:
        """The tasks someone may follow, newest first (how a page left is found again)."""
        with self._lock:
            return sorted((j for j in self.tasks.values() if owner in j.owners),
                          key=lambda j: j.started, reverse=True)

    def cancel_task(self, task_id: str, owner: str) -> bool:
        """Stop a task (its work stops at its next progress report); a finished one is forgotten."""
        job = self.task(task_id, owner)
        if job is None:
            return False
        job.cancelled = True
        with self._lock:
            if job.state != "running":
                self.tasks.pop(job.id, None)
                job.state = "cancelled" if job.state == "queued" else job.state
        return True

    def forget_tasks(self, older_than: float, now: float | None = None) -> None:
        """Drop finished tasks from memory (their pages then say so)."""
        now = time.time() if now is None else now
        with self._lock:
            for job in list(self.tasks.values()):
                if job.state not in ("queued", "running") and job.finished and now - job.finished > older_than:
                    del self.tasks[job.id]

    def busy_channels(self) -> set[str]:
        """The channels a queued or running import or task is using."""
        with self._lock:
            return {j.channel for j in [*self.jobs.values(), *self.tasks.values()]
                    if j.channel and j.state in ("queued", "running")}

    def _run_tasks(self) -> None:
        while True:
            with self._lock:
                if not self._task_queue:
                    self._task_thread = None  # the next submit starts another
                    return
                job, work = self._task_queue.pop(0)
            if job.cancelled:
                continue
            job.state = "running"
            try:
                result = work(job)
            except TaskStopped:
                job.finished, job.state = time.time(), "cancelled"
                with self._lock:
                    self.tasks.pop(job.id, None)
            except TaskFailed as exc:
                job.finished, job.message, job.state = time.time(), str(exc), "failed"
            except Exception as exc:  # noqa: BLE001 - a task must fail visibly, not kill the lane
                job.finished, job.message, job.state = time.time(), "unexpected", "failed"
                if self._on_error:
                    self._on_error(exc)
            else:  # the state last: a page that sees "done" finds the result and the time
                job.result, job.finished = result, time.time()
                job.state = "done"


class TaskStopped(Exception):
    """Raised by a task's progress report once the task is cancelled."""


class TaskFailed(Exception):
    """A task's failure, as a short code its page turns into words."""


# An absolute path on the box: a slash not following a letter, a dot, a colon or another
# slash (so "files/<sha>" and "http://host/x" are left alone), then its segments.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/-])/(?:[^\s/:'\"(),;]+/)*([^\s/:'\"(),;]*)")


def without_paths(message: str, source: str, label: str) -> str:
    """A job's message as the coordinator reads it: the pack's name, never the box's folders.

    The library names the file it read (an upload's random name under the data home, a
    folder on a USB stick) and the folders it writes to; the page shows the name the
    person knows instead, and only the last part of any other path.
    """
    if source:
        message = message.replace(source, label)
    return _ABSOLUTE_PATH.sub(lambda m: m.group(1) or "/", message)


# --- The bin: removed packs, kept as zips until the coordinator empties it -----------------
#
# A removed pack is exported to a zip first (the exact manifest bytes and signature, the
# files from storage), then uninstalled. A zip, rather than keeping its files in storage,
# because it is one self-contained file the library's clean-up never touches, putting it back
# is an ordinary import (checked like any other), and emptying the bin is deleting files.
# Learners' progress is recorded against the pack's id and the node ids, outside the content
# tables, so a pack put back finds every learner's progress where it was.

def bin_folder(home) -> Path:
    return home.root / "bin" / "packs"


def remove_to_bin(library: lib.Library, home, pack_id: str) -> Path:
    """Keep a pack in the bin, then uninstall it. Raises PackNotFound, LibraryBusy."""
    info = library.get(pack_id)
    folder = bin_folder(home)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{pack_id}.zip"
    partial = folder / f".{pack_id}.{uuid.uuid4().hex}.part"
    library.export(pack_id, partial, format="zip")
    os.replace(partial, target)
    (folder / f"{pack_id}.json").write_text(json.dumps({
        "id": pack_id, "title": info.title, "version": info.version, "language": info.language,
        "size": target.stat().st_size, "removed_at": time.time()}))
    library.remove(pack_id)
    return target


def binned_packs(home, installed: set[str] = frozenset()) -> list[dict]:
    """The packs in the bin, newest first (those installed again meanwhile are not offered)."""
    folder = bin_folder(home)
    found = []
    for meta in folder.glob("*.json") if folder.is_dir() else []:
        try:
            info = json.loads(meta.read_text())
        except (OSError, ValueError):
            continue
        if info.get("id") not in installed and (folder / f"{info.get('id')}.zip").is_file():
            found.append(info)
    return sorted(found, key=lambda i: i.get("removed_at", 0), reverse=True)


def restore_from_bin(home, jobs: JobRunner, pack_id: str) -> Job:
    """Import a pack from the bin again; its zip leaves the bin once imported."""
    folder = bin_folder(home)
    info = next((i for i in binned_packs(home) if i["id"] == pack_id), None)
    if info is None:
        raise lib.PackNotFound(f"no pack {pack_id!r} in the bin")
    # Moved out of the bin first: the import removes it afterwards, and the bin never offers
    # a pack twice while it is being put back.
    work = home.tmp / "uploads"
    work.mkdir(parents=True, exist_ok=True)
    source = work / f"{uuid.uuid4().hex}.zip"
    os.replace(folder / f"{pack_id}.zip", source)
    (folder / f"{pack_id}.json").unlink(missing_ok=True)
    return jobs.submit(str(source), f"{info['title']} (v{info['version']})", remove_after=True)


def empty_bin(home) -> int:
    """Delete every pack kept in the bin; returns how many."""
    folder = bin_folder(home)
    count = 0
    for path in folder.glob("*.zip") if folder.is_dir() else []:
        path.unlink(missing_ok=True)
        (folder / f"{path.stem}.json").unlink(missing_ok=True)
        count += 1
    return count


def bundled_folders() -> list[Path]:
    """The authoring folders of the packs shipped with Passerelle."""
    bundled = Path(lib.__file__).parent / "bundled"
    if not bundled.is_dir():
        return []
    return sorted(p for p in bundled.glob("*/") if (p / "pack.yaml").is_file())


def reinstall_bundled(home, jobs: JobRunner, installed: set[str]) -> list[Job]:
    """Build the bundled packs that are missing and import them in the background."""
    work = home.tmp / "uploads"
    work.mkdir(parents=True, exist_ok=True)
    submitted = []
    for folder in bundled_folders():
        target = work / f"{uuid.uuid4().hex}.zip"
        built = lib.build_pack(folder, target)
        if built.manifest["id"] in installed:
            target.unlink(missing_ok=True)
            continue
        submitted.append(jobs.submit(str(target), f"{built.manifest['title']} "
                                     f"(v{built.manifest['version']})", remove_after=True))
    return submitted


def pack_contents(library: lib.Library, pack_id: str) -> list[dict]:
    """What a pack holds, as a list of its nodes (titles, kinds, depth), in the pack's order."""
    nodes = list(library.iter_nodes(pack_id))
    return nodes


def runner(app: Flask | None = None) -> JobRunner:
    return (app or current_app).extensions["passerelle.jobs"]


# --- USB sticks --------------------------------------------------------------------

def find_packs(roots=USB_ROOTS, max_depth: int = MAX_DEPTH) -> list[dict]:
    """Packs on mounted drives: folders holding manifest.json, and zips holding one."""
    return scan_drives(roots, max_depth)[0]


def find_kolibri(roots=USB_ROOTS, max_depth: int = MAX_DEPTH) -> list[dict]:
    """Kolibri export folders on mounted drives, each with its channels (see :func:`scan_drives`)."""
    return scan_drives(roots, max_depth)[1]


def scan_drives(roots=USB_ROOTS, max_depth: int = MAX_DEPTH) -> tuple[list[dict], list[dict]]:
    """Packs, and Kolibri export folders (``path``, ``channels``, ``problems``), on mounted drives."""
    found, channels = [], []
    for root in roots:
        if not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            if "content" in dirnames and kolibri.is_kolibri_folder(dirpath):
                channels.append(_describe_kolibri(dirpath))
                dirnames[:] = []  # its storage/ holds thousands of folders and no pack
                continue
            depth = Path(dirpath).relative_to(root).parts
            if len(depth) >= max_depth:
                dirnames[:] = []
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            if "manifest.json" in filenames:
                found.append(_describe(Path(dirpath), _read_folder_manifest(Path(dirpath))))
                dirnames[:] = []  # a pack's files/ folder holds no other pack
                continue
            for name in filenames:
                if name.lower().endswith(".zip") and not name.startswith("."):
                    path = Path(dirpath) / name
                    found.append(_describe(path, _read_zip_manifest(path)))
    return [f for f in found if f is not None], channels


def _describe_kolibri(path: str) -> dict:
    try:
        found, problems = kolibri.find_channels(path)
    except lib.ContentError as exc:
        return {"path": path, "channels": [], "problems": [exc.message]}
    return {"path": path, "channels": [c.as_dict() for c in found], "problems": [p.message for p in problems]}


def kolibri_channel(roots, path: str, channel_id: str) -> dict | None:
    """A channel that :func:`scan_drives` offers (a posted path is never taken on trust)."""
    for folder in find_kolibri(roots):
        if folder["path"] == path:
            return next((c for c in folder["channels"] if c["id"] == channel_id), None)
    return None


def kolibri_topics(path: str, channel_id: str, video: str = "low", depth: int = 2) -> list[dict]:
    """The topics a coordinator may tick, two levels deep, each with the bytes it would import.

    A size counts each file once within its topic; the page adds up the ticked
    topics (a file shared by two ticked topics is counted twice there, and once
    by the import).
    """
    with kolibri.open_channel(path, channel_id) as db:
        planned = kolibri.plan(db, video=video)
    parent = {n.id: n.parent for n in planned.nodes}
    files: dict[str, dict[str, int]] = {}      # topic id → md5 → size, over its subtree
    resources: dict[str, int] = {}
    root = planned.nodes[0].id if planned.nodes else None
    for n in planned.nodes:
        own = {f.md5: f.size for f in n.files + ([n.main] if n.main else [])}
        ancestor = n.id if n.kind == "topic" else n.parent
        while ancestor is not None:
            files.setdefault(ancestor, {}).update(own)
            if n.kind != "topic":
                resources[ancestor] = resources.get(ancestor, 0) + 1
            ancestor = parent.get(ancestor)
    out = []
    levels = {root: 0}
    for n in planned.nodes:
        if n.kind != "topic" or n.id == root:
            continue
        level = levels.get(n.parent, depth) + 1
        levels[n.id] = level
        if level <= depth:
            out.append({"id": n.data["kolibri"]["node_id"], "title": n.data["title"], "level": level,
                        "parent": n.parent if n.parent != root else None,
                        "size": sum(files.get(n.id, {}).values()), "resources": resources.get(n.id, 0)})
    return out


def installed_kolibri_versions(library: lib.Library) -> dict[str, int]:
    """Channel id -> the version of it installed here (what an offered channel is compared to)."""
    return {p.id[len(kolibri.PACK_PREFIX):]: p.version for p in library.list()
            if p.id.startswith(kolibri.PACK_PREFIX)}


def installed_topics(library: lib.Library, channel_id: str) -> list[str] | None:
    """The topics imported from a channel (None: the whole channel, or none installed).

    An update brings the same topics in their new version: a coordinator who took two
    topics of a 30 GB channel is not sent the whole channel by an update."""
    try:
        manifest = library.manifest(kolibri.PACK_PREFIX + channel_id)
    except lib.PackNotFound:
        return None
    topics = (manifest.get("kolibri") or {}).get("topics")
    return list(topics) if isinstance(topics, list) and topics else None


def kolibri_update_preview(library: lib.Library, source: str, channel_id: str,
                           server: kolibri_remote.KolibriServer | None = None, video: str = "low") -> dict:
    """What updating an installed channel from ``source`` (a drive's export folder or a Kolibri
    server's address) would change: the dry run of ``passerelle content import --dry-run``,
    on the installed topics. Reads the channel's database only (fetched, for a server)."""
    topics = installed_topics(library, channel_id)
    if kolibri_remote.is_url(source):
        done = kolibri_remote.import_channel(library, source, channel_id, topics, dry_run=True,
                                             server=server, video=video)
    else:
        done = kolibri.import_channel(library, source, channel_id, topics, dry_run=True, video=video)
    try:
        before = library.get(kolibri.PACK_PREFIX + channel_id).version
    except lib.PackNotFound:
        before = None
    plan = done.plan
    return {"channel": {"id": plan.channel.id, "name": plan.channel.name, "version": plan.channel.version,
                        "language": plan.channel.language},
            "installed_version": before, "size": plan.size, "topics": topics,
            "kept": done.kept, "counts": {"added": len(done.added), "changed": len(done.changed),
                                          "removed": len(done.removed)},
            **{name: [{"id": i, "title": done.titles.get(i, "")} for i in ids[:100]]
               for name, ids in (("added", done.added), ("changed", done.changed),
                                 ("removed", done.removed))}}


# --- Kolibri servers on the LAN ------------------------------------------------------------
#
# The address comes from a form and the Wi-Fi is anyone's: only http(s) URLs of a host are
# taken, every request has a short timeout and few retries, and answers are size-limited by
# the content library (listings, databases). What went wrong is said in words.

LAN_TIMEOUT = 10.0


def lan_address(text: str) -> str | None:
    """A Kolibri server's base address from what the coordinator typed, or None if it is not one.

    ``kolibri-box:8080`` is taken as ``http://kolibri-box:8080/``; user names, passwords,
    queries and other schemes are refused."""
    from urllib.parse import urlsplit

    text = (text or "").strip()
    if not text or len(text) > 200 or any(c.isspace() or ord(c) < 32 for c in text):
        return None
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password \
            or parts.query or parts.fragment or "@" in parts.netloc:
        return None
    if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", parts.hostname):
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    path = parts.path.rstrip("/")
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}{path}/"


class LanProblem(Exception):
    """A Kolibri server on the LAN could not be used: ``reason`` is ``unreachable``, ``not_kolibri``
    or ``no_channel``."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason, self.detail = reason, detail


def lan_server(address: str, library: lib.Library) -> kolibri_remote.KolibriServer:
    return kolibri_remote.KolibriServer(address, timeout=LAN_TIMEOUT, retries=1, retry_delay=0.5,
                                        limits=library.limits)


@contextmanager
def _asking(address: str, library: lib.Library):
    """A Kolibri server on the LAN, its failures told as a :class:`LanProblem` a coordinator
    reads: it did not answer, it answered without the channel, or it is not Kolibri."""
    server = lan_server(address, library)
    try:
        yield server
    except lib.VersionConflict:
        raise  # an update's own question, asked by the page
    except (lib.SourceUnavailable, OSError) as exc:
        raise LanProblem("unreachable", getattr(exc, "message", str(exc))) from None
    except lib.PackNotFound as exc:  # the server answered: it has no such channel (any more)
        raise LanProblem("no_channel", exc.message) from None
    except lib.ContentError as exc:
        raise LanProblem("not_kolibri", exc.message) from None
    finally:
        server.http.close()


def lan_channels(address: str, library: lib.Library) -> tuple[dict, list[dict]]:
    """The device's description and its channels. Raises :class:`LanProblem`."""
    with _asking(address, library) as server:
        info = server.info()
        if info is None:
            raise LanProblem("not_kolibri")
        return info, server.channels()


def lan_channel(address: str, channel_id: str, library: lib.Library) -> dict:
    """One channel the server offers (checked again: a posted id is not taken on trust)."""
    with _asking(address, library) as server:
        return server.lookup(channel_id)


def lan_topics(address: str, channel_id: str, library: lib.Library,
               video: str = "low") -> tuple[dict, list[dict]]:
    """A server's channel and its topics with their sizes (:func:`kolibri_topics`): its
    database is fetched into the library's work folder, where the import finds it again."""
    with _asking(address, library) as server:
        channel = server.lookup(channel_id)
        folder = server.fetch_database(channel_id, channel["version"],
                                       kolibri_remote.work_folder(library, channel_id))
        return channel, kolibri_topics(str(folder), channel_id, video)


def lan_update_preview(address: str, channel_id: str, library: lib.Library, video: str = "low") -> dict:
    """:func:`kolibri_update_preview` from a Kolibri server. Raises :class:`LanProblem`."""
    with _asking(address, library) as server:
        return kolibri_update_preview(library, address, channel_id, server=server, video=video)


# --- A LAN channel's database, fetched in the background for the topics and update pages ---
#
# A Khan Academy channel's database is tens to hundreds of MB: over a shared Wi-Fi that is
# minutes, far longer than a page should wait (and a timeout would lose it all). It is
# fetched as a task; the page follows it and shows the topics, or the update's changes, once
# it is there. The database stays in the library's work folder, where the import that follows
# finds it (so it is not downloaded twice), until that import has used it or nobody has for
# LAN_DB_KEEP seconds.

LAN_PURPOSES = ("topics", "update")
LAN_FETCH_REUSE = 600.0     # a finished fetch shown again rather than asked anew (a quick back-and-forth)
LAN_TASK_KEEP = 3600.0      # a finished fetch's page, kept this long
LAN_DB_KEEP = 6 * 3600.0    # a fetched database nobody used, kept this long


def lan_database(address: str, channel_id: str, library: lib.Library, progress=None, found=None) -> dict:
    """Fetch a server's channel database into the library's work folder (or find it there, that
    version); returns the channel, also given to ``found`` before the download. ``progress(received,
    total)``. Raises :class:`LanProblem`."""
    with _asking(address, library) as server:
        try:
            channel = server.lookup(channel_id)
        except lib.PackNotFound:
            if server.info() is None:  # not "no such channel": no Kolibri at all
                raise LanProblem("not_kolibri") from None
            raise
        if found is not None:
            found(channel)
        folder = server.fetch_database(channel_id, channel["version"],
                                       kolibri_remote.work_folder(library, channel_id), progress=progress)
    # Used now: its time on the box counts from here.
    os.utime(folder / "content" / "databases" / f"{channel_id}.sqlite3")
    return channel


def lan_fetch(jobs: JobRunner, library: lib.Library, address: str, channel_id: str, purpose: str,
              owner: str, label: str = "") -> Job:
    """Start fetching a channel's database for its topics or its update's changes, or join the
    same fetch under way or just finished. ``owner`` (a coordinator) may follow it; ``label``
    names the channel until the server's answer does."""
    if purpose not in LAN_PURPOSES:
        raise ValueError(purpose)
    sweep_lan_databases(jobs, library)

    def work(job: Job) -> dict:
        def progress(received: int, total: int) -> None:
            if job.cancelled:
                raise TaskStopped
            job.done, job.total = received, total

        try:
            job.step = "download"
            lan_database(address, channel_id, library, progress=progress,
                         found=lambda channel: setattr(job, "label", channel["name"]))
            job.step = "read"
            if purpose == "topics":
                channel, topics = lan_topics(address, channel_id, library, jobs.video)
                return {"channel": channel, "topics": topics}
            return {"preview": lan_update_preview(address, channel_id, library, jobs.video)}
        except LanProblem as problem:
            raise TaskFailed(problem.reason) from None
        except lib.VersionConflict as exc:  # the box holds a newer version than offered
            raise TaskFailed(f"conflict: {exc.message}") from None

    def still_there(job: Job) -> bool:
        database = kolibri_remote.work_folder(library, channel_id) / "content" / "databases"
        return time.time() - job.finished < LAN_FETCH_REUSE and (database / f"{channel_id}.sqlite3").is_file()

    job = Job(id="", label=label or channel_id, source="", channel=channel_id, kind=purpose, owners=[owner])
    return jobs.submit_task(f"{purpose} {channel_id} {address}", job, work, reuse=still_there)


def lan_fetch_address(job: Job) -> str:
    """The server a fetch task asks (its key is ``purpose channel address``)."""
    return job.source.split(" ", 2)[2]


def sweep_lan_databases(jobs: JobRunner, library: lib.Library, keep: float = LAN_DB_KEEP,
                        now: float | None = None) -> list[str]:
    """Remove the channel databases fetched from the LAN that nobody has used for ``keep`` seconds
    (and what a stopped download left), and forget old fetch pages; returns the channels removed.

    An import removes the database it used; this is for those chosen from and never imported."""
    now = time.time() if now is None else now
    jobs.forget_tasks(LAN_TASK_KEEP, now)
    busy = jobs.busy_channels()
    removed = []
    for folder in kolibri_remote.work_folders(library):
        if folder.name in busy:
            continue
        try:
            last = max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.rglob("*"))])
        except OSError:
            continue
        if now - last > keep:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


def _read_folder_manifest(folder: Path) -> dict | None:
    try:
        with open(folder / "manifest.json", "rb") as f:
            return json.loads(f.read(16 * 2**20))
    except (OSError, ValueError):
        return None


def _read_zip_manifest(path: Path) -> dict | None:
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("manifest.json")
            if info.file_size > 64 * 2**20:
                return None
            return json.loads(zf.read(info))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None


def _describe(path: Path, manifest: dict | None) -> dict | None:
    if not isinstance(manifest, dict) or "id" not in manifest:
        return None
    return {"path": str(path), "id": str(manifest.get("id")), "title": str(manifest.get("title", "")),
            "version": manifest.get("version"), "language": manifest.get("language", "")}


# --- Packs served to other boxes ----------------------------------------------------------

bp = Blueprint("packs", __name__, url_prefix="/api/v1/packs")


def _pack_row(pack_id: str):
    row = get_db().execute("SELECT manifest, signature FROM content_packs WHERE id = ?",
                           [pack_id]).fetchone()
    if row is None:
        abort(404)
    return row


@bp.get("")
@allow(ANYONE)
def list_packs():
    rows = get_db().execute("SELECT id, version, title, language, total_size, node_count"
                            " FROM content_packs ORDER BY id").fetchall()
    keys = ("id", "version", "title", "language", "size", "nodes")
    return jsonify({"packs": [dict(zip(keys, r, strict=True)) for r in rows]})


@bp.get("/<pack_id>/manifest.json")
@allow(ANYONE)
def pack_manifest(pack_id: str):
    manifest = _pack_row(pack_id)[0]
    # The exact bytes that were imported: a signature over them stays valid.
    return current_app.response_class(lib.stored_manifest(manifest), mimetype="application/json")


@bp.get("/<pack_id>/signature.json")
@allow(ANYONE)
def pack_signature(pack_id: str):
    signature = _pack_row(pack_id)[1]
    if not signature:
        abort(404)
    return current_app.response_class(bytes(signature), mimetype="application/json")


@bp.get("/<pack_id>/files/<sha256>")
@allow(ANYONE)
def pack_file(pack_id: str, sha256: str):
    found = get_db().execute("SELECT 1 FROM content_node_files WHERE pack_id = ? AND sha256 = ?"
                             " LIMIT 1", [pack_id, sha256]).fetchone()
    library = current_app.extensions["passerelle.library"]
    path = library.blob_path(sha256) if found else None
    if path is None or not path.is_file():
        abort(404)
    # Range lets a box resume a blob after a dropped connection.
    return send_file(path, mimetype="application/octet-stream", conditional=True, etag=sha256)


def init_app(app: Flask) -> None:
    app.extensions["passerelle.jobs"] = JobRunner(
        app.extensions["passerelle.library"],
        on_error=lambda exc: app.logger.exception("import job failed", exc_info=exc),
        video=app.config["SETTINGS"]["kolibri_video"])
    # What an earlier run fetched and nobody imported, once it has waited long enough.
    sweep_lan_databases(app.extensions["passerelle.jobs"], app.extensions["passerelle.library"])
    app.register_blueprint(bp)
