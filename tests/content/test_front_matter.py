"""Front matter is read by its delimiter lines, never by splitting on "---" anywhere."""

from __future__ import annotations

import pytest
from passerelle.content import FrontMatterError, front_matter


@pytest.mark.parametrize(("text", "meta", "body"), [
    ("---\ntitle: a --- b\n---\nText\n", {"title": "a --- b"}, "Text\n"),
    ("---\ntitle: '---'\n---\n\nA\n\n---\n\nB\n", {"title": "---"}, "A\n\n---\n\nB\n"),
    ("---\n---\nOnly text\n", {}, "Only text\n"),
    ("No front matter\n---\nx: 1\n---\n", {}, "No front matter\n---\nx: 1\n---\n"),
    ("---\ntitle: never closed\n", {}, "---\ntitle: never closed\n"),
])
def test_front_matter(text, meta, body):
    assert front_matter(text) == (meta, body)


@pytest.mark.parametrize("text", ["---\ntitle: [unclosed\n---\nx", "---\n- a\n- b\n---\nx",
                                  "---\n!!python/object:os.system x\n---\n"])
def test_broken_front_matter_is_a_content_error(text):
    with pytest.raises(FrontMatterError):
        front_matter(text)
