"""Reading packs safely: zip files and folders (a mounted USB stick), behind one interface.

Opening a pack inspects the container *before* any byte is trusted: member
names (no ``..``, no absolute paths, no backslashes), file types (no symlinks,
devices or FIFOs, in a zip's Unix mode bits or on disk), duplicate or
overlapping zip members, declared sizes and compression ratios (zip bombs).
Blob streams are then read with a hard cap at the size the manifest declares,
so even a lying zip header cannot make the box write more than it expects.
Writing packs (``write_pack``) is deterministic: same blobs and manifest, same
bytes, so builds can be compared and cached.
"""

from __future__ import annotations

import errno
import io
import itertools
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

from .errors import (
    BlobMismatch,
    InvalidPack,
    PackNotFound,
    Problem,
    SourceUnavailable,
    UnsafePack,
)
from .manifest import DEFAULT_LIMITS, Limits

CHUNK = 1024 * 1024
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
BLOB_NAME = re.compile(r"^files/([0-9a-f]{64})$")
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
# Formats that are already compressed gain nothing from deflate; storing them
# keeps imports at disk speed.
_DEFLATE_MIME = ("text/", "application/json", "image/svg+xml", "application/xml")


class PackSource:
    """Where a pack comes from. Subclasses: ``ZipSource``, ``FolderSource``, ``HttpSource``."""

    description = "pack"
    problems: list[Problem]

    def manifest_bytes(self) -> bytes:
        raise NotImplementedError

    def signature_bytes(self) -> bytes | None:
        raise NotImplementedError

    def blob_size(self, sha256: str) -> int | None:
        """The blob's size as the container says, None if absent; ``...`` if unknown (HTTP)."""
        raise NotImplementedError

    def blob_names(self) -> set[str] | None:
        """Every blob the container holds, or None when it cannot be listed (HTTP)."""
        return None

    def open_blob(self, sha256: str, size: int) -> BinaryIO:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_source(where: str | os.PathLike | PackSource, limits: Limits = DEFAULT_LIMITS) -> PackSource:
    """A zip path, a folder path or an ``http(s)://`` URL, as a :class:`PackSource`.

    Raises :class:`UnsafePack` when the container is hostile, :class:`InvalidPack`
    when it is not a pack, :class:`PackNotFound` when nothing is there.
    """
    if isinstance(where, PackSource):
        return where
    text = os.fspath(where)
    if text.startswith(("http://", "https://")):
        from .http import HttpSource

        return HttpSource(text, limits=limits)
    path = Path(text)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise PackNotFound(f"{path}: no such file or folder") from None
    source: PackSource = FolderSource(path, limits) if stat.S_ISDIR(st.st_mode) else ZipSource(path, limits)
    errors = [p for p in source.problems if p.severity == "error"]
    if errors:
        source.close()
        raise UnsafePack(source.problems, f"{path}: unsafe pack refused")
    return source


def read_pack(where, limits: Limits = DEFAULT_LIMITS) -> PackSource:
    """Open a pack (zip or folder) safely; use as a context manager."""
    return open_source(where, limits)


def unsafe_member_name(name: str) -> str | None:
    """Why a member name is unsafe to use as a path, or None."""
    if not name or "\x00" in name:
        return "empty name or NUL byte"
    if "\\" in name:
        return "backslash in path"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    parts = name.rstrip("/").split("/")
    if any(part in ("..",) for part in parts):
        return "path traversal (..)"
    if any(part in ("", ".") for part in parts):
        return "empty or '.' path component"
    return None


def scan_zip(zf: zipfile.ZipFile, limits: Limits, label: str = "",
             max_members: int | None = None, max_total: int | None = None) -> list[Problem]:
    """Hostile-zip checks shared by packs and html5 apps."""
    problems: list[Problem] = []
    infos = zf.infolist()
    max_members = max_members or limits.max_zip_members
    max_total = max_total or limits.max_total_size
    if len(infos) > max_members:
        return [Problem(label or "zip", f"{len(infos)} members; the limit is {max_members}")]
    seen: set[str] = set()
    total = 0
    for info in infos:
        where = f"{label}{info.filename}"
        reason = unsafe_member_name(info.filename)
        if reason:
            problems.append(Problem(where, f"unsafe member name: {reason}"))
            continue
        if info.filename in seen:
            problems.append(Problem(where, "duplicate member name"))
        seen.add(info.filename)
        mode = info.external_attr >> 16
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            problems.append(Problem(where, "symbolic link in the zip"))
        elif kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            problems.append(Problem(where, "device file, FIFO or socket in the zip"))
        if info.flag_bits & 0x1:
            problems.append(Problem(where, "encrypted member"))
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            problems.append(Problem(where, f"unsupported compression method {info.compress_type}"))
        total += info.file_size
        if info.file_size > 0 and info.compress_size == 0:
            problems.append(Problem(where, "zip bomb: declared compressed size is 0"))
        elif info.file_size > CHUNK and info.file_size > limits.max_zip_ratio * info.compress_size:
            problems.append(Problem(where, f"zip bomb: expands {info.file_size // max(1, info.compress_size)} "
                                           f"times (limit {limits.max_zip_ratio})"))
    if total > max_total:
        problems.append(Problem(label or "zip", f"zip bomb: {total} bytes uncompressed; the limit is {max_total}"))
    # Overlapping members are how non-recursive zip bombs reuse one compressed
    # stream thousands of times; honest zips never overlap.
    ordered = sorted(infos, key=lambda i: i.header_offset)
    for a, b in itertools.pairwise(ordered):
        if a.header_offset + 30 + a.compress_size > b.header_offset:
            problems.append(Problem(f"{label}{b.filename}", "zip bomb: member overlaps another"))
            break
    return problems


class _Capped(io.RawIOBase):
    """Reads at most ``limit`` bytes of a stream, and turns decoding errors into BlobMismatch."""

    def __init__(self, raw: BinaryIO, limit: int, sha256: str):
        self.raw, self.left, self.sha256 = raw, limit, sha256

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self.left <= 0:
            return 0
        n = min(len(b), self.left)
        try:
            got = self.raw.readinto(memoryview(b)[:n])
        except (zipfile.BadZipFile, EOFError, zlib.error, ValueError) as exc:
            raise BlobMismatch(self.sha256, f"corrupt data in the pack ({exc})") from None
        except OSError as exc:
            if exc.errno in (errno.EIO, errno.ENODEV, errno.ENXIO, errno.ESTALE):
                raise SourceUnavailable(
                    f"the source stopped answering while reading files/{self.sha256}: {exc}") from None
            raise
        got = got or 0
        self.left -= got
        return got

    def close(self) -> None:
        try:
            self.raw.close()
        finally:
            super().close()


class ZipSource(PackSource):
    def __init__(self, path: Path, limits: Limits = DEFAULT_LIMITS):
        self.path, self.limits = Path(path), limits
        self.description = str(path)
        self.problems: list[Problem] = []
        self.members: dict[str, zipfile.ZipInfo] = {}
        try:
            self.zf = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
                raise
            raise InvalidPack([Problem(str(path), f"not a zip file, or a truncated one ({exc})")],
                              "not a pack") from None
        self.problems = scan_zip(self.zf, limits)
        for info in self.zf.infolist():
            name = info.filename
            if name in ("manifest.json", "signature.json", "files/") or unsafe_member_name(name):
                continue
            match = BLOB_NAME.match(name)
            if match:
                self.members[match.group(1)] = info
            elif not name.endswith("/"):
                self.problems.append(Problem(name, "unexpected file in the pack (ignored)", "warning"))

    def _read_small(self, name: str, limit: int) -> bytes | None:
        try:
            info = self.zf.getinfo(name)
        except KeyError:
            return None
        if info.file_size > limit:
            raise InvalidPack([Problem(name, f"larger than {limit} bytes")])
        try:
            with self.zf.open(info) as f:
                return f.read(limit + 1)[:limit + 1]
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise InvalidPack([Problem(name, f"corrupt in the zip ({exc})")]) from None

    def manifest_bytes(self) -> bytes:
        data = self._read_small("manifest.json", self.limits.max_manifest_bytes)
        if data is None:
            raise InvalidPack([Problem("manifest.json", "missing at the root of the zip")], "not a pack")
        return data

    def signature_bytes(self) -> bytes | None:
        return self._read_small("signature.json", 64 * 1024)

    def blob_size(self, sha256: str):
        info = self.members.get(sha256)
        return None if info is None else info.file_size

    def blob_names(self) -> set[str]:
        return set(self.members)

    def open_blob(self, sha256: str, size: int) -> BinaryIO:
        info = self.members.get(sha256)
        if info is None:
            raise InvalidPack([Problem(f"files/{sha256}", "missing from the pack")])
        try:
            raw = self.zf.open(info)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise BlobMismatch(sha256, f"corrupt entry in the zip ({exc})") from None
        # One byte more than declared, so that an over-long blob is noticed.
        return _Capped(raw, size + 1, sha256)

    def close(self) -> None:
        zf = getattr(self, "zf", None)
        if zf is not None:
            zf.close()


class FolderSource(PackSource):
    """A pack laid out as a folder: ``manifest.json`` and ``files/<sha256>``."""

    def __init__(self, path: Path, limits: Limits = DEFAULT_LIMITS):
        self.root, self.limits = Path(path), limits
        self.description = str(path)
        self.problems: list[Problem] = []
        self.sizes: dict[str, int] = {}
        for entry in os.scandir(self.root):
            if entry.name.startswith("."):
                continue  # .Trashes, ._manifest.json: litter from desktop systems, never read
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                self.problems.append(Problem(entry.name, "symbolic link in the pack folder"))
            elif not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                self.problems.append(Problem(entry.name, "device file, FIFO or socket in the pack folder"))
            elif entry.name not in ("manifest.json", "signature.json", "files"):
                self.problems.append(Problem(entry.name, "unexpected file in the pack (ignored)", "warning"))
        files = self.root / "files"
        try:
            fst = os.lstat(files)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(fst.st_mode):
            return  # already reported above
        for entry in os.scandir(files):
            st = entry.stat(follow_symlinks=False)
            where = f"files/{entry.name}"
            if stat.S_ISLNK(st.st_mode):
                self.problems.append(Problem(where, "symbolic link in the pack folder"))
            elif not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
                self.problems.append(Problem(where, "device file, FIFO or socket in the pack folder"))
            elif SHA_RE.match(entry.name) and stat.S_ISREG(st.st_mode):
                self.sizes[entry.name] = st.st_size
            elif not entry.name.startswith("."):
                self.problems.append(Problem(where, "unexpected file in the pack (ignored)", "warning"))

    def _open_regular(self, path: Path) -> int:
        # O_NOFOLLOW + fstat: the file checked is the file read, even if the stick changes.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise UnsafePack([Problem(str(path.relative_to(self.root)), "not a regular file")])
        return fd

    def _read_small(self, name: str, limit: int) -> bytes | None:
        try:
            fd = self._open_regular(self.root / name)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePack([Problem(name, "symbolic link in the pack folder")]) from None
            raise
        with os.fdopen(fd, "rb") as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise InvalidPack([Problem(name, f"larger than {limit} bytes")])
        return data

    def manifest_bytes(self) -> bytes:
        data = self._read_small("manifest.json", self.limits.max_manifest_bytes)
        if data is None:
            raise InvalidPack([Problem("manifest.json", f"missing in {self.root}")], "not a pack")
        return data

    def signature_bytes(self) -> bytes | None:
        return self._read_small("signature.json", 64 * 1024)

    def blob_size(self, sha256: str):
        return self.sizes.get(sha256)

    def blob_names(self) -> set[str]:
        return set(self.sizes)

    def open_blob(self, sha256: str, size: int) -> BinaryIO:
        try:
            fd = self._open_regular(self.root / "files" / sha256)
        except FileNotFoundError:
            raise InvalidPack([Problem(f"files/{sha256}", "missing from the pack")]) from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafePack([Problem(f"files/{sha256}", "symbolic link in the pack folder")]) from None
            raise
        return _Capped(os.fdopen(fd, "rb", buffering=0), size + 1, sha256)


# --- writing ----------------------------------------------------------------------------

BlobOpener = Callable[[], BinaryIO]


def _compression(mime: str) -> int:
    return zipfile.ZIP_DEFLATED if (mime or "").startswith(_DEFLATE_MIME) else zipfile.ZIP_STORED


def _zipinfo(name: str, compress: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    info.create_system = 3
    info.compress_type = compress
    return info


def write_pack(dest: Path, manifest: bytes, signature: bytes | None,
               blobs: Iterable[tuple[str, int, str, BlobOpener]], folder: bool = False,
               progress: Callable[[int, int, str], None] | None = None,
               verify: bool = True) -> Path:
    """Write a pack atomically: ``dest.partial`` first, renamed when complete.

    ``blobs``: ``(sha256, size, mime, opener)``; each is copied in 1 MiB chunks and
    (when ``verify``) re-hashed on the way, so a damaged store is never exported silently.
    Entries are sorted by name and carry fixed timestamps: the output is deterministic.
    """
    import hashlib
    import shutil

    dest = Path(dest)
    blobs = sorted(blobs, key=lambda b: b[0])
    total = sum(b[1] for b in blobs)
    done = 0
    partial = dest.with_name(dest.name + ".partial")
    if partial.is_dir():
        shutil.rmtree(partial)
    elif partial.exists():
        partial.unlink()
    buf = bytearray(CHUNK)
    view = memoryview(buf)

    def pump(src: BinaryIO, out, sha: str, size: int) -> None:
        nonlocal done
        h = hashlib.sha256()
        n_total = 0
        while True:
            n = src.readinto(buf)
            if not n:
                break
            h.update(view[:n])
            out.write(view[:n])
            n_total += n
            done += n
            if progress:
                progress(done, total, "export")
        if verify and (n_total != size or h.hexdigest() != sha):
            raise BlobMismatch(sha, "the stored copy is damaged; run `passerelle content verify`")

    try:
        if folder:
            (partial / "files").mkdir(parents=True)
            (partial / "manifest.json").write_bytes(manifest)
            if signature is not None:
                (partial / "signature.json").write_bytes(signature)
            for sha, size, _mime, opener in blobs:
                with opener() as src, open(partial / "files" / sha, "wb") as out:
                    pump(src, out, sha, size)
            _replace_tree(partial, dest)
        else:
            with zipfile.ZipFile(partial, "w", allowZip64=True) as zf:
                zf.writestr(_zipinfo("manifest.json", zipfile.ZIP_DEFLATED), manifest)
                if signature is not None:
                    zf.writestr(_zipinfo("signature.json", zipfile.ZIP_DEFLATED), signature)
                for sha, size, mime, opener in blobs:
                    info = _zipinfo(f"files/{sha}", _compression(mime))
                    info.file_size = size
                    with opener() as src, zf.open(info, "w", force_zip64=size > 2**31) as out:
                        pump(src, out, sha, size)
            with open(partial, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(partial, dest)
    except BaseException:
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        elif partial.exists():
            partial.unlink()
        raise
    return dest


def _replace_tree(partial: Path, dest: Path) -> None:
    import shutil

    if dest.exists():
        old = dest.with_name(dest.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dest, old)
        os.replace(partial, dest)
        shutil.rmtree(old)
    else:
        os.replace(partial, dest)
