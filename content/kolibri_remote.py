"""Importing a channel from a Kolibri server on the LAN, the way one Kolibri device imports from another.

Kolibri's public content API (Kolibri 0.19, ``kolibri/core/public/api_urls.py`` and
``kolibri/core/content/utils/paths.py``), all relative to the server's base URL:

- ``api/public/info/`` — ``{"application": "kolibri", "kolibri_version", "device_name", …}``;
- ``api/public/v1/channels`` and ``api/public/v1/channels/lookup/<id>`` — a JSON list of
  channels (``id``, ``name``, ``language``, ``version``, ``total_resource_count``,
  ``published_size``, ``icon_encoding``, …); lookup answers 404 for an unknown channel;
- ``content/databases/<id>.sqlite3`` — the channel's content database;
- ``content/storage/<a>/<b>/<md5>.<ext>`` — its files, served as static files with ``Range``.

The database is downloaded into the library's work folder (a small export folder of
its own), planned and converted exactly as one on a USB stick (:mod:`.kolibri`); the
files are streamed from the server straight into the library's staging area, md5 and
SHA-256 computed on the way (:class:`~passerelle.content.library.ImportSession`).

- **Only missing files are fetched**: files the installed version of the channel
  already holds are not asked for (each file entry keeps its md5).
- **Resumable**: a dropped connection is resumed with ``Range`` a few times; if the
  import still stops (the server went away, ``kill -9``), the files already fetched
  stay staged and are not fetched again, and a half-fetched file is continued from
  where it stopped.
- A file the server does not have (a device that imported only some topics answers
  404) leaves its resource out, reported like a missing file on a stick.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from . import kolibri
from .errors import ContentError, InvalidPack, PackNotFound, Problem, SourceUnavailable
from .http import HttpSource, ResumingStream
from .manifest import DEFAULT_LIMITS, Limits

MAX_DATABASE = 8 * 1024**3   # Khan Academy's biggest databases are a few hundred MB
MAX_LISTING = 16 * 1024**2


def is_url(text: str) -> bool:
    return str(text).startswith(("http://", "https://"))


class KolibriServer:
    """A Kolibri device's public content API."""

    def __init__(self, base_url: str, *, timeout: float = 30.0, retries: int = 5, retry_delay: float = 0.5,
                 limits: Limits = DEFAULT_LIMITS):
        self.http = HttpSource(base_url, timeout=timeout, retries=retries, retry_delay=retry_delay,
                               limits=limits, keep_alive=True)
        self.base = self.http.base

    def _json(self, path: str, required: bool = True):
        data = self.http.get_small(path, MAX_LISTING, required=False)
        if data is None:
            if required:
                raise PackNotFound(f"{self.base}/{path}: not found (is this a Kolibri server?)")
            return None
        try:
            return json.loads(data)
        except ValueError:
            raise InvalidPack([Problem(f"{self.base}/{path}", "not JSON")],
                              f"{self.base}: not a Kolibri server") from None

    def info(self) -> dict | None:
        """The device's description, or None when the URL is not a Kolibri server."""
        try:
            found = self._json("api/public/info/", required=False)
        except InvalidPack:
            return None
        return found if isinstance(found, dict) and found.get("application") == "kolibri" else None

    def channels(self) -> list[dict]:
        found = self._json("api/public/v1/channels")
        return [c for c in (_channel(x) for x in (found if isinstance(found, list) else [])) if c]

    def lookup(self, channel_id: str) -> dict:
        if not kolibri.HEX32.match(channel_id or ""):
            raise PackNotFound(f"{channel_id!r} is not a Kolibri channel id (32 hexadecimal characters)")
        found = self._json(f"api/public/v1/channels/lookup/{channel_id}", required=False)
        chosen = next((c for c in (_channel(x) for x in (found if isinstance(found, list) else []))
                       if c and c["id"] == channel_id), None)
        if chosen is None:
            raise PackNotFound(f"{self.base}: no channel {channel_id} on this Kolibri server")
        return chosen

    def fetch_database(self, channel_id: str, version: int, folder: Path,
                       progress: Callable[[int, int], None] | None = None) -> Path:
        """``folder`` becomes an export folder holding the channel's database (kept if already that version).

        ``progress(received, total)`` is told as bytes arrive (``total`` 0 while unknown); whatever
        it raises stops the download. A download the network cut short is kept beside the
        database (one per version) and the next call continues it with ``Range``: a database
        is hundreds of MB over a shared Wi-Fi.
        """
        databases = folder / "content" / "databases"
        target = databases / f"{channel_id}.sqlite3"
        if _has_version(target, version):
            return folder
        databases.mkdir(parents=True, exist_ok=True)
        # One download of a database at a time (a page's and an import's may ask together):
        # the second waits, then finds the database there.
        with _held(databases / f".{channel_id}.lock", progress):
            if _has_version(target, version):
                return folder
            return self._download_database(channel_id, version, folder, progress)

    def _download_database(self, channel_id: str, version: int, folder: Path,
                           progress: Callable[[int, int], None] | None) -> Path:
        databases = folder / "content" / "databases"
        target = databases / f"{channel_id}.sqlite3"
        part = databases / f".{channel_id}-{int(version)}.part"
        keep = False
        try:
            databases.mkdir(parents=True, exist_ok=True)  # (an import may have just removed it)
            offset = part.stat().st_size if part.is_file() else 0
            with open(part, "ab") as out, ResumingStream(
                    self.http, f"content/databases/{channel_id}.sqlite3", None, offset).open() as stream:
                copied = offset
                while True:
                    if progress is not None:
                        progress(copied, stream.end or 0)
                    chunk = stream.read(64 * 1024)  # small enough for progress on a slow Wi-Fi
                    if not chunk:
                        break
                    copied += len(chunk)
                    if copied > MAX_DATABASE:
                        raise InvalidPack([Problem(f"{channel_id}.sqlite3", "larger than 8 GiB")],
                                          f"{self.base}: refused channel database")
                    out.write(chunk)
            os.replace(part, target)
        except SourceUnavailable:
            keep = True  # the network's fault: what arrived is continued next time
            raise
        except InvalidPack as exc:
            if "missing on" in exc.message:
                raise PackNotFound(f"{self.base}: the database of channel {channel_id} is not served") from None
            raise
        finally:
            if not keep:
                part.unlink(missing_ok=True)
        return folder

    def files(self) -> RemoteFiles:
        return RemoteFiles(self.http)


class RemoteFiles:
    """A channel's files on a Kolibri server: ``content/storage/<a>/<b>/<md5>.<ext>``."""

    def __init__(self, http: HttpSource):
        self.http = http

    def opener(self, md5: str, ext: str) -> Callable[[int], BinaryIO]:
        kolibri.storage_path("", md5, ext)  # the same strict names as on disk
        path = f"content/storage/{md5[0]}/{md5[1]}/{md5}.{ext}"

        def open_at(offset: int) -> BinaryIO:
            try:
                return ResumingStream(self.http, path, None, offset).open()
            except InvalidPack:  # 404: this server does not hold the file
                raise FileNotFoundError(f"{self.http.base}/{path}") from None

        return open_at


def _has_version(database: Path, version: int) -> bool:
    if not database.is_file():
        return False
    try:
        with kolibri.ChannelDatabase(database) as db:
            return db.channel().version == version
    except InvalidPack:
        return False


@contextmanager
def _held(lock: Path, progress: Callable[[int, int], None] | None) -> Iterator[None]:
    """An exclusive lock on ``lock`` (threads and processes); ``progress`` is told while waiting,
    so that whoever waits may still stop."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if progress is not None:
                    progress(0, 0)
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)


def _channel(item) -> dict | None:
    """The fields shown and used, each checked (a listing is data from the network)."""
    if not isinstance(item, dict) or not kolibri.HEX32.match(str(item.get("id", ""))):
        return None

    def text(key: str, limit: int) -> str:
        value = item.get(key)
        return value.strip()[:limit] if isinstance(value, str) else ""

    def number(key: str) -> int:
        value = item.get(key)
        return value if isinstance(value, int) and value >= 0 else 0

    icon = text("icon_encoding", 200_000)
    return {"id": item["id"], "name": text("name", 500) or item["id"], "description": text("description", 2000),
            "language": text("language", 35) or "und", "version": number("version"),
            "resources": number("total_resource_count"), "size": number("published_size"),
            "thumbnail": icon if icon.startswith("data:image/") else ""}


def work_folder(library, channel_id: str) -> Path:
    return Path(library.work) / "kolibri" / channel_id


def work_folders(library) -> list[Path]:
    """The channels' work folders there are (their databases, fetched and not yet imported)."""
    root = Path(library.work) / "kolibri"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def import_channel(library, base_url: str, channel_id: str, topics: Iterable[str] | None = None, *,
                   video: str = "low", dry_run: bool = False, force: bool = False, progress=None,
                   server: KolibriServer | None = None) -> kolibri.ChannelImport:
    """Import one channel (or some of its topics) from a Kolibri server into ``library``.

    A dry run fetches only the channel's database (kept for the import that follows).
    """
    server = server or KolibriServer(base_url, limits=library.limits)
    channel = server.lookup(channel_id)
    folder = work_folder(library, channel_id)
    try:
        server.fetch_database(channel_id, channel["version"], folder)
    except (OSError, ContentError) as exc:
        if isinstance(exc, ContentError):
            raise
        raise SourceUnavailable(f"{server.base}: {exc}") from None
    done = kolibri.import_channel(library, folder, channel_id, topics, video=video, dry_run=dry_run, force=force,
                                  progress=progress, files=server.files())
    if not dry_run:
        shutil.rmtree(folder, ignore_errors=True)  # the database is in the pack now; the next update fetches anew
    return done
