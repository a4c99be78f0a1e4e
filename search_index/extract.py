"""Plain text out of PDFs, HTML and WebVTT subtitles, for the ``body`` of a Document.

These run when a pack is imported, on files made by many different tools:
they return whatever text they can and never raise on bad input, because one
broken PDF must not stop a whole pack from being searchable.
"""

from __future__ import annotations

import html
import io
import logging
import os
import re
from functools import lru_cache
from html.parser import HTMLParser

log = logging.getLogger(__name__)

DEFAULT_MAX_CHARS = 200_000
# A long PDF is found by its first pages as well as by all of them, and each page costs
# parsing time at import: the text of later pages is not read.
DEFAULT_MAX_PAGES = 40
_SPACES_RE = re.compile(r"[ \t\r\f\v]+")
_BLANK_LINES_RE = re.compile(r"\n\s*\n+")


def _tidy(text: str) -> str:
    text = _SPACES_RE.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _BLANK_LINES_RE.sub("\n", text).strip()


def extract_pdf_text(source, max_chars: int = DEFAULT_MAX_CHARS, max_pages: int = DEFAULT_MAX_PAGES) -> str:
    """Text of a PDF (path, bytes or binary file object), up to ``max_chars`` and ``max_pages``.

    Pages that fail to parse are skipped; an unreadable file gives "".
    """
    try:
        from pypdf import PdfReader
    except ImportError:  # pragma: no cover - pypdf is a declared dependency
        return ""
    _share_pypdf_encodings()
    # pypdf logs every recoverable defect of a damaged PDF; they are expected here.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        if isinstance(source, (bytes, bytearray)):
            source = io.BytesIO(source)
        elif isinstance(source, (str, os.PathLike)):
            source = os.fspath(source)
        reader = PdfReader(source, strict=False)
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:  # noqa: BLE001 - any failure means "no text"
                return ""
        parts: list[str] = []
        total = 0
        for number, page in enumerate(reader.pages):
            if number >= max_pages:
                break
            try:
                text = page.extract_text() or ""
            except Exception:  # one bad page must not lose the others
                log.debug("skipping an unreadable PDF page", exc_info=True)
                continue
            parts.append(text)
            total += len(text)
            if total >= max_chars:
                break
        return _tidy("\n".join(parts))[:max_chars]
    except Exception:  # truncated, encrypted or not a PDF at all
        log.debug("unreadable PDF", exc_info=True)
        return ""


def _share_pypdf_encodings() -> None:
    """pypdf rebuilds the 256-entry WinAnsi table, decoding byte by byte, for every page it
    reads text from: a fifth of the text extraction time of a channel of short PDFs. The
    table never changes, so it is built once and each caller gets its own copy (a font's
    /Differences edit it). Only where this pypdf has the function under the names wrapped."""
    import importlib
    import sys

    if getattr(_share_pypdf_encodings, "done", False):
        return
    _share_pypdf_encodings.done = True
    try:
        codecs = importlib.import_module("pypdf._codecs")
    except ImportError:
        return
    build = getattr(codecs, "encoding_dict_from_named_encoding", None)
    if build is None:
        return
    tables: dict[str, dict] = {}

    def shared(name: str) -> dict:
        if name not in tables:
            tables[name] = build(name)
        return dict(tables[name])

    for name in ("pypdf._codecs", "pypdf._text_extraction._text_extractor", "pypdf.generic._font",
                 "pypdf.generic._appearance_stream"):
        try:
            module = sys.modules.get(name) or importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "encoding_dict_from_named_encoding", None) is build:
            module.encoding_dict_from_named_encoding = shared


class _TextParser(HTMLParser):
    SKIP = frozenset({"script", "style", "template", "noscript", "svg", "head"})
    BLOCK = frozenset({"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
             "tr", "td", "th", "section", "article", "header", "footer", "blockquote",
             "pre", "title", "table", "dd", "dt", "figcaption", "button", "label", "option"})
    VOID = frozenset({"br", "img", "input", "hr", "meta", "link", "area", "base", "col",
                      "embed", "source", "track", "wbr"})

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.in_title = False
        self.title = ""

    def handle_starttag(self, tag, attrs):
        if tag == "title":
            self.in_title = True
        if tag in self.SKIP and tag not in self.VOID:
            self.skipping += 1
            return
        if self.skipping:
            return
        if tag in self.BLOCK:
            self.parts.append("\n")
        # Image descriptions and tooltips are text a learner may look for.
        for name, value in attrs:
            if name in ("alt", "title", "aria-label") and value:
                self.parts.append(f" {value} ")

    def handle_endtag(self, tag):
        if tag == "title":
            self.in_title = False
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in self.BLOCK and not self.skipping:
            self.parts.append("\n")

    def handle_data(self, data):
        if self.in_title:
            self.title += data
        if not self.skipping:
            self.parts.append(data)


def extract_html_text(html_str: str, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Visible text of an HTML page (scripts and styles skipped, the <title> kept)."""
    if not html_str:
        return ""
    if isinstance(html_str, (bytes, bytearray)):
        html_str = html_str.decode("utf-8", "replace")
    parser = _TextParser()
    try:
        parser.feed(html_str)
        parser.close()
    except Exception:  # whatever was parsed before the error is kept
        log.debug("HTML parsing stopped early", exc_info=True)
    text = "".join(parser.parts)
    title = parser.title.strip()
    if title:
        text = title + "\n" + text
    return _tidy(text)[:max_chars]


_VTT_TIMING_RE = re.compile(r"-->")
_VTT_TAG_RE = re.compile(r"<[^>]*>")


def extract_vtt_text(vtt_str: str, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Spoken text of WebVTT subtitles: no header, cue ids, timings, notes or tags."""
    if not vtt_str:
        return ""
    if isinstance(vtt_str, (bytes, bytearray)):
        vtt_str = vtt_str.decode("utf-8-sig", "replace")
    vtt_str = vtt_str.lstrip("\ufeff")
    lines: list[str] = []
    skipping_block = False
    for block in re.split(r"\r?\n\s*\r?\n", vtt_str.replace("\r\n", "\n")):
        block_lines = [ln.strip() for ln in block.split("\n") if ln.strip()]
        if not block_lines:
            continue
        head = block_lines[0]
        if head.startswith(("WEBVTT", "NOTE", "STYLE", "REGION")):
            skipping_block = True
            # A header block may still hold a cue when blank lines are missing.
        else:
            skipping_block = False
        timing = next((i for i, ln in enumerate(block_lines) if _VTT_TIMING_RE.search(ln)), None)
        if timing is None:
            if skipping_block:
                continue
            text_lines = block_lines  # text without timing (sloppy files): keep it
        else:
            text_lines = block_lines[timing + 1:]
        for ln in text_lines:
            ln = html.unescape(_VTT_TAG_RE.sub("", ln)).strip()
            # Auto-generated subtitles repeat the previous line as the next cue rolls up.
            if ln and (not lines or lines[-1] != ln):
                lines.append(ln)
    return _tidy("\n".join(lines))[:max_chars]


def extract_markdown_text(source: str, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The words of a Markdown article as a reader sees them: no ``**``, ``##``, list marks,
    link targets or image addresses (an image keeps its description, which is text).

    markdown-it-py (CommonMark, as the pages render articles) rather than regular
    expressions: emphasis, nested lists and code spans have too many edge cases.
    """
    try:
        tokens = _markdown().parse(source or "")
    except ImportError:  # pragma: no cover - markdown-it-py is a declared dependency
        return _tidy(source or "")[:max_chars]
    except Exception:  # noqa: BLE001 - a damaged article is searched as it is
        return _tidy(source or "")[:max_chars]
    parts: list[str] = []
    for token in tokens:
        if token.type == "inline":
            parts.append(_inline_text(token.children or []))
        elif token.type in ("fence", "code_block"):
            parts.append(token.content)
    return _tidy("\n".join(p for p in parts if p))[:max_chars]


@lru_cache(maxsize=1)
def _markdown():
    """One parser for every call (building one costs as much as parsing a short text);
    ``parse`` keeps its state per call, so threads can share it."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table")


def _inline_text(children) -> str:
    out: list[str] = []
    for child in children:
        if child.type in ("text", "code_inline"):
            out.append(child.content)
        elif child.type == "image":
            out.append(_inline_text(child.children or []) or child.content)
        elif child.type in ("softbreak", "hardbreak"):
            out.append("\n")
    return "".join(out)
