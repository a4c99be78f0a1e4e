"""Boxes for the sync tests: each a data home with a copy of one migrated database and its key."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from passerelle.server import db as dbmod
from passerelle.server import records
from passerelle.server import sync as syncmod

# Tables that must end identical on every box (folded state, the log and its signatures).
SYNCED_TABLES = ["organisations", "users", "classes", "memberships", "class_sessions", "attendance",
                 "progress", "ops", "op_signatures"]

@dataclass
class Box:
    name: str
    home: Path
    db: object
    device: str

    @property
    def public_key(self) -> str:
        return syncmod.identity(self.db, self.home)["public_key"]

    def close(self) -> None:
        self.db.close()


def new_box(template: Path, root: Path, name: str, device: str | None = None) -> Box:
    home = root / name
    home.mkdir(parents=True)
    shutil.copy(template, home / "passerelle.db")
    db = dbmod.connect(home / "passerelle.db")
    device = device or f"dev-{name}"
    db.execute("UPDATE meta SET value = ? WHERE key = 'device_id'", [device])
    db.conn.commit()
    syncmod.device_key(db, home)
    return Box(name, home, db, device)


def trust_all(boxes: list[Box]) -> None:
    keys = {b.device: b.public_key for b in boxes}
    for box in boxes:
        for other in boxes:
            if other is not box:
                syncmod.trust(box.db, other.device, keys[other.device], label=other.name)


@pytest.fixture
def make_boxes(template_db, tmp_path):
    made: list[Box] = []

    def make(n: int, trusted: bool = True, root: Path | None = None) -> list[Box]:
        boxes = [new_box(template_db, root or tmp_path, f"box{len(made) + i}") for i in range(n)]
        made.extend(boxes)
        if trusted:
            trust_all(boxes)
        return boxes

    yield make
    for box in made:
        box.close()


def dump(db) -> dict:
    return {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in SYNCED_TABLES}


def direct(src: Box, dst: Box, max_ops: int = 1000, **kw) -> syncmod.ApplyResult:
    """One exchange src → dst over changes_for/apply_batch, as the HTTP transport will do."""
    total = syncmod.ApplyResult(vector=syncmod.vector(dst.db))
    for batch in syncmod.changes_for(src.db, syncmod.vector(dst.db), max_ops, home=src.home):
        total.add(syncmod.apply_batch(dst.db, batch.ops, syncmod.trusted_keys(dst.db),
                                      revoked=syncmod.revoked_devices(dst.db), **kw))
    return total


@pytest.fixture
def sync_cli():
    """Runs `passerelle --home HOME sync ...` through the real entry point, the group registered."""
    from passerelle.server.cli import cli, main
    from passerelle.server.cli_sync import sync

    added = "sync" not in cli.commands
    if added:
        cli.add_command(sync)

    def run(home: Path, *args: str):
        with CliRunner().isolation() as streams:
            code = main(["--home", str(home), "sync", *args])
        return int(code), streams[0].getvalue().decode(), streams[1].getvalue().decode()

    yield run
    if added:
        cli.commands.pop("sync", None)


__all__ = ["Box", "new_box", "trust_all", "dump", "direct", "records"]


@pytest.fixture
def kit():
    """The helpers above, for test modules (importlib mode cannot import conftest by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(dump=dump, direct=direct, new_box=new_box, trust_all=trust_all,
                           tables=SYNCED_TABLES)
