"""passerelle.content: packs of learning content, from a USB stick or another box to the kiosk.

Design
------
* **A pack** is a zip or a folder: ``manifest.json`` plus ``files/<sha256>`` for
  every blob (see ``docs/pack-format.md`` and ``schema/pack-v1.json``). Blobs are
  named by their hash, so a box verifies every byte it copies, copies only what
  it lacks, and shares one copy between packs.
* **Hostile input is the normal case**: a pack comes from a stranger's USB
  stick. Containers are inspected before anything is read (traversal,
  symlinks, devices, zip bombs), manifests are validated completely (schema,
  tree, limits), every blob is hashed while it is copied, expressions in
  exercises are evaluated by a whitelisting walker, never ``eval``.
* **Never corrupt a box**: an import copies missing blobs into a staging area
  on the same filesystem, moves them into the content-addressed store, then
  swaps the catalog in one SQLite transaction. Killed at any moment, the box
  shows the old pack or the new one, never a mix, and the next run resumes.
* **Bounded memory**: blobs stream in 1 MiB chunks whatever their size; only
  the manifest is held in memory, and its size is capped.
* **A library, not an application**: no Flask, no click, no server imports.
  Errors are :class:`ContentError` subclasses that the CLI and the API map to
  their own; the server learns about installs through listeners
  (``pack_installed``, ``pack_removed``), so search indexing stays outside.

Main entry points: :func:`check_pack`, :func:`read_pack`, :func:`build_pack`,
:class:`Library` (import, update, export, remove, verify, list), :class:`HttpSource`,
:func:`generate_keypair` / :func:`sign_pack`, and the exercise helpers
:func:`evaluate`, :func:`draw_variables`, :func:`render_generated`, :func:`check_answer`;
:class:`ZimLibrary` for Kiwix ZIM files, served in place (``zim.py``).
"""

from .build import build_pack, front_matter
from .check import check_pack
from .errors import (
                     BlobMismatch,
                     ContentError,
                     FrontMatterError,
                     InvalidPack,
                     LibraryBusy,
                     NotEnoughSpace,
                     PackNotFound,
                     Problem,
                     SignatureError,
                     SourceUnavailable,
                     UnsafePack,
                     VersionConflict,
)
from .exercise import (
                     ExpressionError,
                     check_answer,
                     draw_variables,
                     evaluate,
                     render_generated,
)
from .http import HttpSource
from .library import (
                     MIGRATIONS,
                     Diff,
                     ImportResult,
                     Library,
                     PackInfo,
                     VerifyReport,
                     diff,
                     stored_manifest,
)
from .manifest import DEFAULT_LIMITS, Limits, parse_manifest, schema, validate_manifest
from .packio import FolderSource, PackSource, ZipSource, open_source, read_pack
from .signing import KeyPair, generate_keypair, sign_pack, verify_signature
from .zim import InvalidZim, ZimLibrary, ZimNotFound, ZimUnsupported

__all__ = [
                     "DEFAULT_LIMITS",
                     "MIGRATIONS",
                     "BlobMismatch",
                     "ContentError",
                     "Diff",
                     "ExpressionError",
                     "FolderSource",
                     "InvalidZim",
                     "FrontMatterError",
                     "HttpSource",
                     "ImportResult",
                     "InvalidPack",
                     "KeyPair",
                     "Library",
                     "LibraryBusy",
                     "Limits",
                     "NotEnoughSpace",
                     "PackInfo",
                     "PackNotFound",
                     "PackSource",
                     "Problem",
                     "SignatureError",
                     "SourceUnavailable",
                     "UnsafePack",
                     "VerifyReport",
                     "VersionConflict",
                     "ZimLibrary",
                     "ZimNotFound",
                     "ZimUnsupported",
                     "stored_manifest",
                     "ZipSource",
                     "build_pack",
                     "check_answer",
                     "check_pack",
                     "diff",
                     "draw_variables",
                     "front_matter",
                     "evaluate",
                     "generate_keypair",
                     "open_source",
                     "parse_manifest",
                     "read_pack",
                     "render_generated",
                     "schema",
                     "sign_pack",
                     "validate_manifest",
                     "verify_signature",
]
