"""Articles and exercise prompts: Markdown to safe HTML.

markdown-it-py (CommonMark) with raw HTML switched off, so a pack can format
text but never inject markup or scripts; links to other hosts are shown but
not followed (the box has no internet, and a protocol-relative ``//host``
counts as another host); images given as ``sha256:<hex>`` are
the pack's own blobs, served at ``/files/<hex>``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markupsafe import Markup

_SHA = re.compile(r"^sha256:([0-9a-f]{64})$")
_TABS_AND_NEWLINES = re.compile(r"[\t\n\r]")
_SPACES_AROUND = re.compile(r"^[\x00-\x20]+|[\x00-\x20]+$")
_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": True}).enable("table")


def _rewrite(tokens) -> None:
    for token in tokens:
        if token.children:
            _rewrite(token.children)
        if token.type == "image":
            src = token.attrGet("src") or ""
            found = _SHA.match(src)
            token.attrSet("src", f"/files/{found.group(1)}" if found else "")
            token.attrSet("loading", "lazy")
        elif token.type == "link_open":
            href = token.attrGet("href") or ""
            found = _SHA.match(href)
            if found:
                token.attrSet("href", f"/files/{found.group(1)}")
            elif not _on_this_box(href):
                # An outside address: readable as text, not a dead link on an offline box.
                token.attrSet("href", "#")
                token.attrSet("data-outside", href)


def _on_this_box(href: str) -> bool:
    """A path on the box (``/learn/x``) or a fragment (``#part``), read as a browser reads it.

    Browsers drop tabs and newlines anywhere in an address, trim spaces and control
    characters around it, and treat ``\\`` as ``/``: ``//host``, ``/\\host`` and
    ``/<tab>/host`` all leave the box, as does anything with a scheme.
    """
    # markdown-it has percent-encoded the address; it is judged decoded too, so that a
    # page on the box that decodes a path (a redirect) cannot be led off it either.
    return all(_local(form) for form in (href, unquote(href)))


def _local(href: str) -> bool:
    cleaned = _SPACES_AROUND.sub("", _TABS_AND_NEWLINES.sub("", href)).replace("\\", "/")
    if cleaned.startswith("#"):
        return True
    return cleaned.startswith("/") and not cleaned.startswith("//")


def render_markdown(text: str) -> Markup:
    # Articles are read again and again, and parsing one was half its page's time: keep
    # the last ones (bounded: 64 texts of at most 64 KB, a few MB at worst).
    return _cached(text) if len(text or "") <= 65536 else _render(text)


@lru_cache(maxsize=64)
def _cached(text: str) -> Markup:
    return _render(text)


def _render(text: str) -> Markup:
    tokens = _md.parse(text or "")
    _rewrite(tokens)
    return Markup(_md.renderer.render(tokens, _md.options, {}))  # noqa: S704 - html is off
