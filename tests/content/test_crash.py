"""kill -9 at any moment, a full disk, not enough space: the box stays consistent."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packhelpers import hand_pack, sha
from passerelle.content import NotEnoughSpace

HERE = Path(__file__).parent

KILLER = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, {here!r})
    from packhelpers import Box
    box = Box(__import__("pathlib").Path({root!r}))
    limit, label_to_kill = int(sys.argv[1]), sys.argv[2]
    def progress(done, total, label):
        if label == label_to_kill and done >= limit:
            os.kill(os.getpid(), signal.SIGKILL)
    box.library().import_pack({pack!r}, progress=progress)
""")


def _blobs(n: int, size: int) -> dict[str, bytes]:
    return {f"doc{i}": b"%PDF" + os.urandom(size) for i in range(n)}


@pytest.mark.parametrize("label,at", [("copy", 1), ("copy", 700_000), ("copy", 2_500_000), ("catalog", 0)])
def test_kill_during_import_then_rerun_completes(tmp_path, box, label, at):
    v1 = _blobs(3, 300_000)
    box.library().import_pack(hand_pack(tmp_path, "v1", v1))
    v2 = {**_blobs(4, 900_000), "doc0": v1["doc0"]}
    pack = hand_pack(tmp_path, "v2", v2, version=2)
    before = box.snapshot()
    script = KILLER.format(here=str(HERE), root=str(box.root), pack=str(pack))
    proc = subprocess.run([sys.executable, "-c", script, str(at), label], capture_output=True, timeout=60, check=False)
    assert proc.returncode == -9, proc.stderr.decode()
    # Killed: the catalog is exactly the old one.
    assert box.snapshot()["tables"] == before["tables"]
    library = box.library()
    assert library.get("hand-pack").version == 1
    # Rerun: completes, reusing what was already copied and verified.
    result = library.import_pack(pack)
    assert result.status == "updated"
    assert library.get("hand-pack").version == 2 and library.verify().ok
    assert box.leftovers() == []
    stored = {p.name for p in library.storage.rglob("*") if p.is_file()}
    assert stored == {sha(b) for b in v2.values()}
    assert library.gc() == 0  # nothing stray left either


def test_enospc_mid_copy_leaves_box_unchanged(tmp_path, box, library, monkeypatch):
    library.import_pack(hand_pack(tmp_path, "v1", {"a": b"%PDF a"}))
    before = box.snapshot()
    pack = hand_pack(tmp_path, "v2", _blobs(3, 2_000_000), version=2)
    real_open = open
    writes = {"n": 0}

    class Full:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            writes["n"] += 1
            if writes["n"] > 3:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return self.f.__exit__(*a)

    def fake_open(path, mode="r", *a, **kw):
        f = real_open(path, mode, *a, **kw)
        return Full(f) if str(path).endswith(".part") else f

    import passerelle.content.library as libmod
    monkeypatch.setattr(libmod, "open", fake_open, raising=False)
    with pytest.raises(NotEnoughSpace) as err:
        library.import_pack(pack)
    assert "needs" in str(err.value) and "free" in str(err.value)
    monkeypatch.undo()
    assert box.snapshot() == before
    assert box.leftovers() == []


def test_not_enough_space_checked_before_copying(tmp_path, box, library, monkeypatch):
    import shutil
    from collections import namedtuple

    before = box.snapshot()
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(NotEnoughSpace) as err:
        library.import_pack(hand_pack(tmp_path, "p", _blobs(2, 10_000)))
    message = str(err.value)
    assert "1000 B" in message and "MiB" in message  # both figures
    assert box.snapshot() == before
