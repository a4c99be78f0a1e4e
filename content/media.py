"""Which media types a pack may declare, and how the box may hand each one to a browser.

A pack's declared type is a claim, not a fact: its bytes may be anything. So the
box never lets that claim decide whether something runs. At import a type is
normalised (lower case, no parameters, common aliases folded) and must be one of
:data:`ALLOWED`; the catalog keeps the normalised type. When a blob is served,
:func:`delivery` picks the answer from that allow-list alone:

- ``inline``: types a browser only ever decodes as media or shows as text
  (raster images, audio, video, WebVTT, plain text, PDF). Served as exactly that
  type; with ``X-Content-Type-Options: nosniff`` the browser never reinterprets
  the bytes as a page or a script, whatever they really are.
- ``sandboxed``: SVG. An ``<img>`` never runs its scripts, so articles can show
  it, but opened on its own it is a document: it is served in a sandbox that
  runs no script at all.
- ``download``: everything else (HTML, XML, JavaScript, CSS, zips, unknown or
  legacy types): ``application/octet-stream`` as an attachment, in the same
  sandbox. A browser refuses it as a script or a stylesheet and never renders it
  as a page with the box's origin.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"})
SVG = "image/svg+xml"
VIDEO = frozenset({"video/mp4", "video/webm", "video/ogg"})
AUDIO = frozenset({"audio/mpeg", "audio/ogg", "audio/opus", "audio/mp4", "audio/wav", "audio/flac",
                   "audio/webm", "audio/aac"})
TEXT = frozenset({"text/plain", "text/vtt", "text/markdown"})
PDF = "application/pdf"
ZIP = "application/zip"  # html5 apps: served only member by member, in their sandbox (/apps)
EPUB = "application/epub+zip"  # books: the same, their chapters shown one at a time
ALLOWED = IMAGES | VIDEO | AUDIO | TEXT | {SVG, PDF, ZIP, EPUB}
# Types an image role (thumbnail, poster, image in an article) may have.
PICTURES = IMAGES | {SVG}
OCTET_STREAM = "application/octet-stream"

# Other names the same formats go by (older tools, Windows, web servers).
ALIASES = {
    "image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png",
    "audio/mp3": "audio/mpeg", "audio/x-mp3": "audio/mpeg", "audio/x-mpeg": "audio/mpeg",
    "audio/x-wav": "audio/wav", "audio/wave": "audio/wav", "audio/vnd.wave": "audio/wav",
    "audio/x-flac": "audio/flac", "audio/x-m4a": "audio/mp4", "audio/m4a": "audio/mp4",
    "audio/x-aac": "audio/aac", "video/x-m4v": "video/mp4", "application/ogg": "audio/ogg",
    "text/x-markdown": "text/markdown", "application/x-pdf": "application/pdf",
    "application/x-zip-compressed": "application/zip", "application/x-zip": "application/zip",
}


def normalise(declared: str | None) -> str:
    """``"Text/Markdown; charset=UTF-8"`` → ``"text/markdown"``; aliases folded; never None."""
    essence = str(declared or "").split(";", 1)[0].strip().lower()
    return ALIASES.get(essence, essence)


def allowed(declared: str | None) -> bool:
    return normalise(declared) in ALLOWED


@dataclass(frozen=True)
class Delivery:
    """How one blob is handed to a browser."""

    content_type: str   # the Content-Type header: from the allow-list, never the pack's string
    sandbox: bool       # served under a sandbox policy that runs no script
    attachment: bool    # Content-Disposition: attachment (downloaded, never shown as a page)


def delivery(declared: str | None) -> Delivery:
    """The answer for a blob whose catalog type is ``declared`` (see the module's docstring)."""
    mime = normalise(declared)
    if mime in IMAGES or mime in VIDEO or mime in AUDIO or mime == PDF:
        # Sandbox policies stop Chromium's PDF viewer, and media elements ignore them.
        return Delivery(mime, sandbox=False, attachment=False)
    if mime in TEXT:
        return Delivery(mime, sandbox=True, attachment=False)
    if mime == SVG:
        return Delivery(mime, sandbox=True, attachment=False)
    return Delivery(OCTET_STREAM, sandbox=True, attachment=True)
