"""ZIM files in the content library: added in place or copied, damaged ones refused, read, searched."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from passerelle.content import zim  # noqa: E402
from passerelle.content.zim import InvalidZim, ZimLibrary, ZimNotFound  # noqa: E402
from zimfixtures import damaged_copy, make_zim  # noqa: E402

pytestmark = pytest.mark.skipif(not zim.AVAILABLE, reason=zim.UNAVAILABLE_REASON)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    return make_zim(tmp_path_factory.mktemp("zim") / "wikipedia_fr_test.zim",
                    redirects={"MDP": "Mot_de_passe"})


@pytest.fixture
def zims(box) -> ZimLibrary:
    return ZimLibrary(box.connect, box.storage)


def rows(box) -> list:
    db = box.connect()
    try:
        return db.execute("SELECT * FROM content_zims").fetchall()
    finally:
        db.close()


def test_a_zim_is_served_in_place_with_its_metadata(zims, sample, box):
    result = zims.add(sample)
    assert result.status == "added" and result.verified  # small: checked byte for byte
    [info] = zims.list()
    assert (info.title, info.description, info.language, info.lang) == (
        "Wikipédia test", "Quelques articles", "fra", "fr")
    assert info.path == str(sample) and not info.copied and info.available
    assert info.size == sample.stat().st_size and len(info.checksum) == 32
    assert info.main_path == "Accueil" and info.has_fulltext and info.has_illustration
    assert zims.illustration(info.uuid).startswith(b"\x89PNG")
    assert not (box.storage / "zim").exists()  # nothing was copied or unpacked
    assert zims.add(sample).status == "already added"


def test_entries_are_read_and_redirects_followed(zims, sample):
    uuid = zims.add(sample).uuid
    item = zims.read(uuid, "Mot_de_passe")
    assert item.mimetype == "text/html" and b"phrase de passe" in bytes(item.content)
    assert zims.read(uuid, "MDP") == "Mot_de_passe"
    with pytest.raises(ZimNotFound):
        zims.read(uuid, "Nope")


def test_full_text_search_and_title_suggestions(zims, sample):
    uuid = zims.add(sample).uuid
    found = zims.search(uuid, "mot de passe")
    assert found.mode == "fulltext" and found.hits[0].path == "Mot_de_passe"
    assert zims.search(uuid, "clavier").hits[0].path == "Clavier"  # the title match leads
    assert [h.path for h in zims.suggest(uuid, "Cla")] == ["Clavier"]


def test_a_zim_without_full_text_index_is_searched_by_title(zims, tmp_path):
    uuid = zims.add(make_zim(tmp_path / "t.zim", fulltext=False)).uuid
    found = zims.search(uuid, "Clavier")
    assert found.mode == "title" and [h.title for h in found.hits] == ["Clavier"]


def test_a_missing_disk_makes_it_unavailable_never_deleted(zims, tmp_path):
    disk = tmp_path / "usb"
    path = make_zim(disk / "w.zim")
    uuid = zims.add(path).uuid
    moved = tmp_path / "unplugged"
    disk.rename(moved)
    [info] = zims.list()
    assert not info.available
    with pytest.raises(ZimNotFound, match="not connected"):
        zims.read(uuid, "Accueil")
    moved.rename(disk)  # the disk comes back
    assert zims.list()[0].available and zims.read(uuid, "Accueil").title == "Accueil"


def test_the_same_zim_under_another_mount_point_moves(zims, tmp_path):
    path = make_zim(tmp_path / "a" / "w.zim")
    uuid = zims.add(path).uuid
    (tmp_path / "a").rename(tmp_path / "b")
    result = zims.add(tmp_path / "b" / "w.zim")
    assert result.status == "moved" and len(zims.list()) == 1
    assert zims.get(uuid).path == str(tmp_path / "b" / "w.zim")


def test_copy_into_the_data_home_is_checked_while_copied(zims, sample, box):
    result = zims.add(sample, copy=True)
    info = zims.get(result.uuid)
    assert result.status == "copied" and result.verified and info.copied
    assert Path(info.path).parent == box.storage / "zim"
    assert not [p for p in (box.storage / "zim").iterdir() if p.name.endswith(".part")]
    assert zims.read(result.uuid, "Clavier").title == "Clavier"
    assert zims.remove(result.uuid) is True and not Path(info.path).exists()
    assert sample.exists()


def test_removing_an_external_zim_never_deletes_its_file(zims, sample):
    uuid = zims.add(sample).uuid
    assert zims.remove(uuid) is False and sample.exists() and zims.list() == []


def test_split_files_are_added_from_their_first_part(zims, sample, tmp_path):
    data = sample.read_bytes()
    third = len(data) // 3 + 1
    for i, suffix in enumerate(("aa", "ab", "ac")):
        (tmp_path / f"big.zim{suffix}").write_bytes(data[i * third:(i + 1) * third])
    result = zims.add(tmp_path / "big.zimaa")
    info = zims.get(result.uuid)
    assert info.parts == 3 and info.size == len(data) and info.path == str(tmp_path / "big.zim")
    assert zims.read(result.uuid, "Clavier").title == "Clavier"
    joined = zims.add(tmp_path / "big.zimaa", copy=True)  # --copy joins the parts
    assert Path(zims.get(joined.uuid).path).read_bytes() == data


def damaged(sample: Path, tmp_path: Path, how: str) -> Path:
    data = bytearray(sample.read_bytes())
    if how == "truncated":
        data = data[: len(data) * 2 // 3]
    elif how == "tail cut":
        data = data[:-10]
    elif how == "too small":
        data = data[:40]
    elif how == "bad magic":
        data[0:4] = b"PK\x03\x04"
    elif how == "bad version":
        data[4:6] = b"\x09\x00"
    elif how == "bit flip":
        data[len(data) // 2] ^= 0xFF
    elif how == "bad checksum":
        data[-1] ^= 0xFF
    path = tmp_path / f"{how.replace(' ', '-')}.zim"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("how, words", [
    ("truncated", "bad size or corrupted"), ("tail cut", "bad size or corrupted"),
    ("too small", "too small to contain a header"), ("bad magic", "Invalid magic number"),
    ("bad version", "Invalid version"), ("bit flip", "checksum does not match"),
    ("bad checksum", "checksum does not match"),
])
def test_each_kind_of_damage_is_refused_in_one_line_and_nothing_changes(zims, sample, box,
                                                                        tmp_path, how, words):
    path = damaged(sample, tmp_path, how)
    before = rows(box)
    with pytest.raises(InvalidZim, match=words) as caught:
        zims.add(path)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    with pytest.raises(InvalidZim):
        zims.add(path, copy=True)
    assert rows(box) == before
    assert not (box.storage / "zim").exists() or not list((box.storage / "zim").iterdir())


def test_a_big_file_is_not_read_whole_at_import_unless_asked(zims, sample, tmp_path, monkeypatch):
    path = damaged(sample, tmp_path, "bit flip")
    monkeypatch.setattr(zim, "FULL_CHECK_MAX", 1000)
    result = zims.add(path)
    assert not result.verified and "--verify" in result.warnings[0]
    zims.remove(result.uuid)
    with pytest.raises(InvalidZim, match="checksum"):
        zims.add(path, full_check=True)


def test_a_file_replaced_at_the_same_path_replaces_the_old_release(zims, tmp_path):
    path = tmp_path / "w.zim"
    first = zims.add(make_zim(path, title="Old")).uuid
    os.remove(path)
    second = zims.add(make_zim(path, title="New"))
    assert second.status == "replaced" and [z.uuid for z in zims.list()] == [second.uuid]
    assert second.uuid != first


def test_hiding(zims, sample):
    uuid = zims.add(sample).uuid
    zims.set_hidden(uuid, True)
    assert zims.list(include_hidden=False) == [] and zims.get(uuid).hidden
    zims.set_hidden(uuid, False)
    assert [z.uuid for z in zims.list(include_hidden=False)] == [uuid]


# --- walking the articles (for the box's own full-text index) ------------------------------

def test_articles_walks_html_articles_by_slices_and_skips_the_rest(zims, tmp_path):
    path = make_zim(tmp_path / "w.zim", fulltext=False, redirects={"MDP": "Mot_de_passe"},
                    extra={"logo.png": ("image/png", b"\x89PNG" + b"0" * 100)})
    uuid = zims.add(path).uuid
    total = zims.entry_count(uuid)
    seen, cursor = [], 0
    while cursor < total:
        found, cursor, unreadable = zims.articles(uuid, cursor, 2)
        assert unreadable == 0 and len(found) <= 2
        seen += found
    assert sorted(a.path for a in seen) == ["Accueil", "Clavier", "Courrier_électronique",
                                            "Mot_de_passe"]   # no redirect, no image
    [mdp] = [a for a in seen if a.path == "Mot_de_passe"]
    assert mdp.title == "Mot de passe" and "phrase de passe" in mdp.html
    assert zims.articles(uuid, total, 10) == ([], total, 0)
    assert "phrase de passe" in zims.article_html(uuid, "Mot_de_passe")
    assert zims.article_html(uuid, "logo.png") == "" and zims.article_html(uuid, "Nope") == ""
    assert all(len(a.html.encode()) <= 300 for a in zims.articles(uuid, 0, total, max_bytes=300)[0])


def test_a_damaged_cluster_is_refused_at_import_and_counted_when_walking(zims, tmp_path):
    import random

    rng = random.Random(1)
    articles = {f"P{i}": (f"Page {i}", "<p>" + " ".join(f"w{rng.randrange(10**5)}"
                                                         for _ in range(300)) + "</p>")
                for i in range(30)}
    path = make_zim(tmp_path / "big.zim", articles=articles, fulltext=False)
    damaged, unreadable = damaged_copy(path, tmp_path)
    # Checked at import (the MD5 over every byte): refused in one line, nothing added.
    with pytest.raises(InvalidZim, match="checksum does not match"):
        zims.add(damaged)
    assert zims.list() == []
    # A file too big to check at import is added; walking it counts what cannot be read.
    uuid = zims.add(damaged, full_check=False).uuid
    found, cursor, bad = zims.articles(uuid, 0, 1000)
    assert bad == unreadable and len(found) + bad >= 30 and cursor == zims.entry_count(uuid)
