"""Text extraction helpers used when a pack is imported."""

import io

import pytest
from passerelle.search_index import (
    extract_html_text,
    extract_pdf_text,
    extract_vtt_text,
)


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF showing ``text`` (xref offsets computed, Helvetica)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
         b"/Resources << /Font << /F1 5 0 R >> >> >>"),
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(f"{i} 0 obj\n".encode() + obj + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for off in offsets:
        out.write(f"{off:010d} 00000 n \n".encode())
    out.write(f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
              .encode())
    return out.getvalue()


def test_pdf_text_from_bytes_path_and_file(tmp_path):
    data = minimal_pdf("Strong passwords are long")
    assert "Strong passwords are long" in extract_pdf_text(data)
    path = tmp_path / "doc.pdf"
    path.write_bytes(data)
    assert "passwords" in extract_pdf_text(path)
    assert "passwords" in extract_pdf_text(str(path))
    with open(path, "rb") as f:
        assert "passwords" in extract_pdf_text(f)


def test_pdf_max_chars():
    assert len(extract_pdf_text(minimal_pdf("a long sentence " * 5), max_chars=10)) <= 10


@pytest.mark.parametrize("data", [b"", b"not a pdf at all", b"%PDF-1.4\n1 0 obj <<",
                                  minimal_pdf("cut in the middle")[:150], bytes(range(256)) * 4])
def test_broken_pdf_never_raises(data, tmp_path):
    assert isinstance(extract_pdf_text(data), str)


def test_missing_pdf_file_gives_empty_text(tmp_path):
    assert extract_pdf_text(tmp_path / "missing.pdf") == ""


def test_html_text_skips_scripts_and_styles():
    html = """<html><head><title>Fractions game</title><style>p{color:red}</style></head>
    <body><h1>Halves &amp; quarters</h1><script>var secret = 1;</script>
    <p>Drag the <b>slices</b>.</p><img src="x.png" alt="A pizza"></body></html>"""
    text = extract_html_text(html)
    assert "Fractions game" in text
    assert "Halves & quarters" in text
    assert "Drag the slices." in text
    assert "A pizza" in text
    assert "secret" not in text and "color" not in text


def test_html_text_survives_broken_markup():
    assert "hello" in extract_html_text("<p>hello <b>unclosed <script>x")
    assert extract_html_text("") == ""


def test_vtt_text():
    vtt = """WEBVTT
Kind: captions

NOTE made by hand

1
00:00:01.000 --> 00:00:03.000 align:start
<v Amina>Choose a <c.yellow>long</c> password.

00:00:03.000 --> 00:00:05.000
Choose a long password.
Four words &amp; more.
"""
    text = extract_vtt_text(vtt)
    assert text == "Choose a long password.\nFour words & more."


def test_vtt_text_tolerates_garbage():
    assert extract_vtt_text("") == ""
    assert isinstance(extract_vtt_text("-->\n\n\x00\n"), str)


def test_markdown_articles_are_indexed_as_the_text_a_reader_sees():
    from passerelle.search_index import extract_markdown_text

    text = extract_markdown_text("## Les étapes\n\nUn mot de passe **court** est vite trouvé.\n\n"
                                 "![Un cadenas fermé](img/padlock.svg)\n\n- Faible : *P@ss1*\n"
                                 "Voir [le site](https://example.org/).")
    assert "Les étapes" in text and "Un mot de passe court est vite trouvé." in text
    assert "Un cadenas fermé" in text and "Faible : P@ss1" in text and "Voir le site." in text
    for raw in ("**", "##", "![", "](", "padlock.svg", "example.org", "- Faible"):
        assert raw not in text


def test_pdf_pages_past_the_cap_are_not_read():
    data = minimal_pdf("Strong passwords are long")
    assert extract_pdf_text(data, max_pages=0) == ""
    assert "passwords" in extract_pdf_text(data, max_pages=1)
    # Twice, so the second font reuses the shared encoding table (a copy: edits do not leak).
    assert "passwords" in extract_pdf_text(data)
