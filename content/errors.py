"""The library's exceptions: precise classes so that callers (the CLI, the API) can map them.

Every message is written for the person holding the USB stick: it names the
pack, the node or the file, and what is wrong with it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a pack, with where it is (``nodes[12].files[0].sha256``)."""

    location: str
    message: str
    severity: str = "error"  # "error" refuses the pack; "warning" is reported only

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message

    def as_dict(self) -> dict:
        return {"location": self.location, "message": self.message, "severity": self.severity}


class ContentError(Exception):
    """Base of every error raised by ``passerelle.content``."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _summary(what: str, problems: list[Problem], shown: int = 5) -> str:
    errors = [p for p in problems if p.severity == "error"] or problems
    head = "; ".join(str(p) for p in errors[:shown])
    more = f" (and {len(errors) - shown} more)" if len(errors) > shown else ""
    return f"{what}: {head}{more}"


class InvalidPack(ContentError):
    """The manifest or the layout is wrong: not JSON, fails the schema, a cycle, a missing blob…"""

    def __init__(self, problems: list[Problem], what: str = "invalid pack"):
        self.problems = list(problems)
        super().__init__(_summary(what, self.problems))


class UnsafePack(InvalidPack):
    """The container itself is hostile: path traversal, symlink, device file, zip bomb."""

    def __init__(self, problems: list[Problem], what: str = "unsafe pack refused"):
        super().__init__(problems, what)


class BlobMismatch(ContentError):
    """A blob's bytes do not match the hash or size the manifest declares."""

    def __init__(self, sha256: str, message: str):
        self.sha256 = sha256
        self.detail = message
        super().__init__(f"files/{sha256}: {message}")


class NotEnoughSpace(ContentError):
    """The disk cannot hold the blobs the import must copy (both figures are in the message)."""

    def __init__(self, needed: int, free: int, where: str = ""):
        self.needed = needed
        self.free = free
        place = f" on {where}" if where else ""
        super().__init__(
            f"not enough space{place}: the import needs {human_size(needed)} "
            f"but only {human_size(free)} is free"
        )


class VersionConflict(ContentError):
    """A lower version than the installed one (refused unless forced)."""

    def __init__(self, pack_id: str, installed: int, offered: int, message: str | None = None):
        self.pack_id, self.installed, self.offered = pack_id, installed, offered
        super().__init__(message or (
            f"pack {pack_id!r}: version {offered} is older than the installed version "
            f"{installed}; use --force to downgrade"
        ))

    @classmethod
    def same_version(cls, pack_id: str, version: int) -> VersionConflict:
        return cls(pack_id, version, version, (
            f"pack {pack_id!r}: version {version} is already installed with a different manifest; "
            "a changed pack needs a higher version (or use --force to replace it)"))


class FrontMatterError(ContentError):
    """A Markdown file's front matter is not a YAML mapping."""


class SignatureError(ContentError):
    """Missing, malformed or wrong signature, or a publisher key this box does not trust."""


class PackNotFound(ContentError):
    """No pack with that id is installed, or no pack at that path/URL."""


class LibraryBusy(ContentError):
    """Another process is importing, removing or verifying content right now."""


class SourceUnavailable(ContentError):
    """The source (a USB stick, another box) stopped answering mid-import; retrying resumes."""


def human_size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover
