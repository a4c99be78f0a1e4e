"""ImportSession.stage: small files written whole under their SHA-256, big ones through a
``.part``; nothing kept that does not match; storage left as it was after a failure."""

from __future__ import annotations

import hashlib
import io
import os

import pytest
from kolibri_channel import CHANNEL, standard
from passerelle.content import kolibri
from passerelle.content.errors import BlobMismatch
from passerelle.content.packio import CHUNK


def opener(data: bytes):
    def open_at(offset: int):
        return io.BytesIO(data[offset:])
    return open_at


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def staged_names(library) -> set[str]:
    return {p.name for p in library.staging.iterdir()} - {"keys"} if library.staging.exists() else set()


@pytest.mark.parametrize("size", [0, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5])
def test_a_file_is_staged_under_its_sha256_with_its_md5_checked(library, size):
    data = os.urandom(size)
    with library.session() as session:
        got = session.stage(opener(data), "kolibri-" + md5(data), expect={"md5": md5(data)})
        assert got == (sha(data), size)
        assert (library.staging / sha(data)).read_bytes() == data
        assert staged_names(library) == {sha(data)}  # no .part left
        # Its folder in storage is ready for the rename.
        assert library.blob_path(sha(data)).parent.is_dir()


@pytest.mark.parametrize("size", [1000, 2 * CHUNK + 3])
def test_a_file_whose_md5_does_not_match_leaves_nothing_staged(library, size):
    data = os.urandom(size)
    with library.session() as session:
        with pytest.raises(BlobMismatch, match="md5 is"):
            session.stage(opener(data), "kolibri-" + "0" * 32, expect={"md5": "0" * 32})
        assert staged_names(library) == set()


def test_a_leftover_under_the_same_name_is_replaced_whole(library):
    """An interrupted run may leave a half-written staged file under the blob's name."""
    data = os.urandom(5000)
    library.staging.mkdir(parents=True)
    (library.staging / sha(data)).write_bytes(data[:100])
    with library.session() as session:
        assert session.stage(opener(data), "kolibri-" + md5(data), expect={"md5": md5(data)}) == (sha(data), 5000)
    assert (library.staging / sha(data)).read_bytes() == data
    assert staged_names(library) == {sha(data)}


def test_a_small_file_over_the_limit_is_refused(library):
    data = os.urandom(5000)
    with library.session() as session:
        with pytest.raises(BlobMismatch, match="larger than the limit"):
            session.stage(opener(data), "kolibri-" + md5(data), limit=4000)
        assert staged_names(library) == set()


def test_a_conversion_that_fails_leaves_storage_as_it_was(tmp_path, library, box, monkeypatch):
    ex, _ids = standard(tmp_path / "k")
    ex.save()
    library.storage.mkdir(parents=True)
    before = box.snapshot()

    def boom(*a, **kw):
        raise RuntimeError("the conversion fails after staging")

    monkeypatch.setattr(kolibri, "_rfc3339", boom)  # called once every file is staged
    with pytest.raises(RuntimeError):
        kolibri.import_channel(library, ex.root, CHANNEL)
    assert box.snapshot() == before  # not even an empty storage folder
    monkeypatch.undo()
    done = kolibri.import_channel(library, ex.root, CHANNEL)  # the staged files are taken as they are
    assert done.result.status == "installed" and library.verify().ok
