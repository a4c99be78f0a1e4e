"""Articles and exercise prompts: Markdown to safe HTML.

markdown-it-py (CommonMark) with raw HTML switched off, so a pack can format
text but never inject markup or scripts; links to other hosts are shown but
not followed (the box has no internet); images given as ``sha256:<hex>`` are
the pack's own blobs, served at ``/files/<hex>``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from markdown_it import MarkdownIt
from markupsafe import Markup

_SHA = re.compile(r"^sha256:([0-9a-f]{64})$")
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
            elif not href.startswith(("/", "#")):
                # An outside address: readable as text, not a dead link on an offline box.
                token.attrSet("href", "#")
                token.attrSet("data-outside", href)


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
