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
from markdown_it.token import Token
from markupsafe import Markup

_SHA = re.compile(r"^sha256:([0-9a-f]{64})$")
# A sum or an equation ("33 + 6 + 2 = 41"): numbers joined by operators. Shown as a
# left-to-right isolate, so that in right-to-left text it does not read backwards.
_NUMBER = r"\d+(?:[.,]\d+)*"
_MATHS = re.compile(_NUMBER + r"(?:\s*[-+−×÷*/=<>≤≥]\s*\(?" + _NUMBER + r"\)?)+")
_TABS_AND_NEWLINES = re.compile(r"[\t\n\r]")
_SPACES_AROUND = re.compile(r"^[\x00-\x20]+|[\x00-\x20]+$")
_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": True}).enable("table")


def _isolate_maths(children: list) -> list:
    out = []
    for token in children:
        if token.type != "text" or not _MATHS.search(token.content):
            out.append(token)
            continue
        pos = 0
        for found in _MATHS.finditer(token.content):
            out.append(_text(token, token.content[pos:found.start()]))
            out.append(_html(token, '<bdi dir="ltr">'))
            out.append(_text(token, found.group()))
            out.append(_html(token, "</bdi>"))
            pos = found.end()
        out.append(_text(token, token.content[pos:]))
    return out


def _text(like, content: str):
    token = Token("text", "", 0)
    token.content, token.level = content, like.level
    return token


def _html(like, markup: str):
    # Rendered as is: only these two fixed tags, never text of the pack.
    token = Token("html_inline", "", 0)
    token.content, token.level = markup, like.level
    return token


def _rewrite(tokens, image_size=None) -> None:
    for token in tokens:
        if token.children:
            _rewrite(token.children, image_size)
            token.children = _isolate_maths(token.children)
        if token.type == "image":
            src = token.attrGet("src") or ""
            found = _SHA.match(src)
            token.attrSet("src", f"/files/{found.group(1)}" if found else "")
            token.attrSet("loading", "lazy")
            size = image_size(found.group(1)) if found and image_size else None
            if size:  # the page keeps its place while the image loads
                token.attrSet("width", str(size[0]))
                token.attrSet("height", str(size[1]))
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


def render_markdown(text: str, image_size=None) -> Markup:
    """``image_size``: sha256 -> (width, height) or None, to give images their size. A
    blob's size never changes, so the rendering is kept by text and by that function."""
    # Articles are read again and again, and parsing one was half its page's time: keep
    # the last ones (bounded: 64 texts of at most 64 KB, a few MB at worst). Short texts
    # (a question's prompt, hint or explanation) have a larger cache of their own: with a
    # class answering, each learner's generated question is rendered when it is shown and
    # again with its feedback, and 64 places were too few for 30 tablets.
    size = len(text or "")
    if size <= SHORT_TEXT:
        return _cached_short(text, image_size)
    if size <= 65536:
        return _cached(text, image_size)
    return _render(text, image_size)


SHORT_TEXT = 1024  # 2,048 of them: at most a few MB, a few hundred KB in practice


@lru_cache(maxsize=2048)
def _cached_short(text: str, image_size) -> Markup:
    return _render(text, image_size)


@lru_cache(maxsize=64)
def _cached(text: str, image_size) -> Markup:
    return _render(text, image_size)


def _render(text: str, image_size=None) -> Markup:
    tokens = _md.parse(text or "")
    _rewrite(tokens, image_size)
    return Markup(_md.renderer.render(tokens, _md.options, {}))  # noqa: S704 - html is off
