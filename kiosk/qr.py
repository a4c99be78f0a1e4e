"""QR codes drawn on the box, as inline SVG: a phone's camera opens the box's address
without anyone typing it, and no image is fetched from anywhere (segno, pure Python)."""

from __future__ import annotations

import segno
from markupsafe import Markup


def qr_svg(text: str, title: str) -> Markup:
    """An inline SVG of ``text``; ``title`` is what a screen reader says."""
    code = segno.make(text, error="m")
    # segno escapes the title; the drawing scales with CSS (class "qr").
    return Markup(code.svg_inline(scale=6, border=2, title=title, svgclass="qr",
                                  omitsize=True, dark="#000", light="#fff"))
