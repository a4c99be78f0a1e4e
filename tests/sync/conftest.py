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

from tests.conftest import db_url_of

# Tables that must end identical on every box (folded state, the log and its signatures).
SYNCED_TABLES = ["organisations", "users", "classes", "memberships", "class_sessions", "attendance",
                 "progress", "ops", "op_signatures"]

@dataclass
class Box:
    name: str
    home: Path
    db: object
    device: str
    location: str = ""  # the database: a file path or a postgresql:// URL

    @property
    def public_key(self) -> str:
        return syncmod.identity(self.db, self.home)["public_key"]

    def close(self) -> None:
        self.db.close()


def new_box(template, root: Path, name: str, device: str | None = None) -> Box:
    """A box with a migrated database: ``template`` is the SQLite template file, or a
    ``Databases`` factory (tests on both engines) that makes one."""
    home = root / name
    home.mkdir(parents=True)
    if isinstance(template, Path):
        shutil.copy(template, home / "passerelle.db")
        location = str(home / "passerelle.db")
    else:
        location = template.url(name)
    db = dbmod.connect(location)
    device = device or f"dev-{name}"
    db.execute("UPDATE meta SET value = ? WHERE key = 'device_id'", [device])
    db.conn.commit()
    syncmod.device_key(db, home)
    return Box(name, home, db, device, location)


def trust_all(boxes: list[Box]) -> None:
    keys = {b.device: b.public_key for b in boxes}
    for box in boxes:
        for other in boxes:
            if other is not box:
                syncmod.trust(box.db, other.device, keys[other.device], label=other.name)


@pytest.fixture
def make_boxes(databases, tmp_path):
    """Boxes whose databases are on the engine of ``engine``: these tests run on both."""
    made: list[Box] = []

    def make(n: int, trusted: bool = True, root: Path | None = None) -> list[Box]:
        boxes = [new_box(databases, root or tmp_path, f"box{len(made) + i}") for i in range(n)]
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
    """One exchange src → dst as the HTTP transport's push does (changes_for_peer, then the
    receiver's apply_received)."""
    total = syncmod.ApplyResult(vector=syncmod.vector(dst.db))
    for batch in syncmod.changes_for_peer(src.db, syncmod.vector(dst.db), max_ops, home=src.home):
        total.add(syncmod.apply_received(dst.db, batch.ops, [], syncmod.trusted_keys(dst.db),
                                         revoked=syncmod.revoked_devices(dst.db), **kw))
    return total


@pytest.fixture
def sync_cli():
    """Runs `passerelle --home HOME sync ...` through the real entry point, the group registered."""
    from passerelle.server.cli.base import cli, main
    from passerelle.server.cli.sync import sync

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


# --- Sync over HTTP: a hub served by `passerelle serve`, boxes that pair and sync with it ---------

class CuttingProxy:
    """A tiny TCP proxy on 127.0.0.1 that cuts every connection once ``cut_after`` bytes went
    one way ("down": peer → box, "up": box → peer), as a pulled cable would."""

    def __init__(self, target_port: int, cut_after: int, direction: str = "down"):
        import socket
        import threading

        self.target_port, self.cut_after, self.direction = target_port, cut_after, direction
        self.passed = 0
        self.cut = False
        self._lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            pair = (client, upstream)
            threading.Thread(target=self._pump, args=(client, upstream, "up", pair), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, "down", pair), daemon=True).start()

    def _pump(self, src, dst, direction: str, pair) -> None:
        import socket

        try:
            while True:
                data = src.recv(16384)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                if direction == self.direction:
                    with self._lock:
                        room = self.cut_after - self.passed
                        self.passed += len(data)
                    if room < len(data):
                        if room > 0:
                            dst.sendall(data[:room])
                        self.cut = True
                        self._close(pair)
                        return
                dst.sendall(data)
        except OSError:
            self._close(pair)

    @staticmethod
    def _close(pair) -> None:
        import socket

        for s in pair:  # shutdown first: it wakes the other pump's recv and sends the FIN
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def http_kit(box, server_factory, template_db, tmp_path):
    """A set-up hub served over loopback (`kit.hub`), new boxes (`kit.new`), pairing and sync."""
    from types import SimpleNamespace

    from passerelle.server.sync import client as sync_client

    opened: list = []

    def location(home: Path) -> str:  # a hub's records may be on PostgreSQL
        return db_url_of(home) or str(home / "passerelle.db")

    def hub_db():
        db = dbmod.connect(location(box.home))
        opened.append(db)
        return db

    def code(home: Path | None = None, **kw) -> str:
        db = dbmod.connect(location(home or box.home))
        try:
            return syncmod.make_pairing_code(db, home or box.home, **kw)["code"]
        finally:
            db.close()

    def new(name: str) -> Box:
        made = new_box(template_db, tmp_path / "boxes", name)
        opened.append(made.db)
        return made

    def factory(b: Box):
        return lambda: dbmod.connect(b.home / "passerelle.db")

    def pair(b: Box, url: str | None = None, **kw):
        return sync_client.pair(b.db, b.home, url or kit.hub.url, code(), label=b.name, **kw)

    def sync(b: Box, url: str | None = None, **kw):
        kw.setdefault("timeout", 20)
        return sync_client.sync_once(factory(b), b.home, url, **kw)

    proxies: list[CuttingProxy] = []

    def proxy(cut_after: int, direction: str = "down", port: int | None = None) -> CuttingProxy:
        made = CuttingProxy(port or kit.hub.port, cut_after, direction)
        proxies.append(made)
        return made

    kit = SimpleNamespace(hub=server_factory(), hub_home=box.home, hub_db=hub_db, code=code,
                          new=new, factory=factory, pair=pair, sync=sync, proxy=proxy,
                          start=server_factory, dump=dump)
    yield kit
    for p in proxies:
        p.close()
    for db in opened:
        db.close()


def many_ops(db, n: int, who: str = "learner-1", prefix: str = "e") -> None:
    """``n`` progress events in one transaction, through records' own write path."""
    with records.write_tx(db):
        for i in range(n):
            op = records._new_op(db, "event", "progress", who, {
                "event_id": f"{prefix}-{i}", "pack_id": "pack", "node_id": f"n{i % 50}",
                "type": "answer", "correct": i % 3 == 0, "seconds": 20})
            records.apply(db, op)


@pytest.fixture
def write_many():
    return many_ops
