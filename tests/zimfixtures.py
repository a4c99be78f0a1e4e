"""Small real ZIM files for the tests, written by python-libzim's own ``Creator``.

The suite never needs ../shared: every ZIM a test opens is made here, with the
upstream writer, so the reader is checked against what Kiwix's tools produce.
"""

from __future__ import annotations

from pathlib import Path


def icon_48() -> bytes:
    """A 48x48 PNG (one colour), the size Kiwix shows in its library."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (48, 48), (30, 110, 160)).save(out, "PNG")
    return out.getvalue()


HOSTILE = """<!doctype html><html><head><meta charset="utf-8"><title>Hostile</title></head>
<body><h1>Hostile article</h1><p id="out">waiting</p>
<script>
var report = {};
try { report.cookie = document.cookie; } catch (e) { report.cookie = "blocked: " + e.name; }
try { report.storage = String(window.localStorage.length); } catch (e) { report.storage = "blocked: " + e.name; }
try { report.parent = String(window.parent.document.cookie); } catch (e) { report.parent = "blocked: " + e.name; }
fetch("/api/v1/me", {credentials: "include"}).then(function (r) { return r.text(); })
  .then(function (t) { report.api = t; }, function (e) { report.api = "blocked: " + e.name; })
  .then(function () { document.getElementById("out").textContent = JSON.stringify(report); });
</script></body></html>"""


def article(title: str, body: str) -> str:
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head>'
            f'<body><h1>{title}</h1>{body}</body></html>')


DEFAULT_ARTICLES = {
    "Mot_de_passe": ("Mot de passe", "<p>Un mot de passe protège un compte. Choisissez un mot de "
                                     "passe long, une phrase de passe.</p>"),
    "Courrier_électronique": ("Courrier électronique", '<p>Le courriel. Voir <a href="Mot_de_passe">'
                                                       "mot de passe</a>.</p>"),
    "Accueil": ("Accueil", '<p>Bienvenue. <a href="Mot_de_passe">Mot de passe</a>, '
                           '<a href="Courrier_électronique">courriel</a>.</p>'),
    "Clavier": ("Clavier", "<p>Le clavier sert à taper du texte.</p>"),
}


def make_zim(path: Path, *, title: str = "Wikipédia test", language: str = "fra",
             name: str = "wikipedia_fr_test", description: str = "Quelques articles",
             articles: dict[str, tuple[str, str]] | None = None, fulltext: bool = True,
             illustration: bool = True, main: str = "Accueil", extra: dict[str, tuple[str, bytes]] | None = None,
             redirects: dict[str, str] | None = None) -> Path:
    """Write a ZIM (new namespace layout) with a few HTML articles; returns its path.

    ``articles``: path -> (title, body HTML); ``extra``: path -> (mime, bytes) for
    other entries (images, a hostile page); ``redirects``: path -> target path.
    """
    from libzim.writer import Creator, Hint, Item, StringProvider

    class _Item(Item):
        def __init__(self, path, title, mime, content, front):
            super().__init__()
            self._path, self._title, self._mime, self._content, self._front = (
                path, title, mime, content, front)

        def get_path(self): return self._path
        def get_title(self): return self._title
        def get_mimetype(self): return self._mime
        def get_contentprovider(self): return StringProvider(self._content)
        def get_hints(self): return {Hint.FRONT_ARTICLE: self._front}

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    creator = Creator(str(path))
    if fulltext:
        creator.config_indexing(True, language)
    with creator:
        creator.set_mainpath(main)
        for key, value in (("Title", title), ("Description", description), ("Language", language),
                           ("Name", name), ("Creator", "Passerelle tests"),
                           ("Publisher", "Passerelle tests"), ("Date", "2026-01-01")):
            creator.add_metadata(key, value)
        if illustration:
            creator.add_illustration(48, icon_48())
        for entry_path, (entry_title, body) in (articles or DEFAULT_ARTICLES).items():
            creator.add_item(_Item(entry_path, entry_title, "text/html",
                                   article(entry_title, body), True))
        for entry_path, (mime, content) in (extra or {}).items():
            creator.add_item(_Item(entry_path, entry_path, mime, content, mime == "text/html"))
        for entry_path, target in (redirects or {}).items():
            creator.add_redirection(entry_path, entry_path, target, {Hint.FRONT_ARTICLE: False})
    return path


def damaged_copy(path: Path, tmp_path: Path) -> tuple[Path, int]:
    """A copy of the ZIM with one damaged cluster (found by trying): it opens, its header and
    directory are intact, and some of its entries cannot be read. (path, unreadable)."""
    from libzim.reader import Archive

    data = path.read_bytes()
    for offset in range(len(data) // 24, len(data) // 2, len(data) // 48):
        bad = bytearray(data)
        for i in range(offset, offset + 300):
            bad[i] ^= 0x5A
        copy = tmp_path / f"damaged-{offset}.zim"
        copy.write_bytes(bytes(bad))
        try:
            archive = Archive(str(copy))
        except RuntimeError:
            continue
        unreadable = 0
        for number in range(archive.entry_count):
            try:
                bytes(archive._get_entry_by_id(number).get_item().content)
            except RuntimeError:
                unreadable += 1
        if 0 < unreadable < archive.entry_count - 2:
            return copy, unreadable
    import pytest

    pytest.skip("no offset damaged only some clusters")
