"""The two engines: the same logical schema from the same migrations, and the seam between them."""

from __future__ import annotations

import ast
from pathlib import Path

from passerelle.server import db as dbmod
from passerelle.server import pg

REPO = Path(__file__).resolve().parents[2]
BOOKKEEPING = {"_sqlite_migrations", pg.MIGRATIONS_TABLE}
TYPES = {"INTEGER": "integer", "BIGINT": "integer", "TEXT": "text", "REAL": "real",
         "DOUBLE PRECISION": "real", "BLOB": "blob", "BYTEA": "blob"}


def sqlite_schema(db) -> dict:
    schema = {}
    tables = [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    for table in tables:
        if table in BOOKKEEPING:
            continue
        info = db.execute(f"PRAGMA table_info({table})").fetchall()
        columns = {name: (TYPES[kind.upper()], bool(notnull)) for _, name, kind, notnull, _, _ in info}
        pk = tuple(r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5]))
        indexes, uniques = {}, set()
        for _, name, unique, origin, partial in db.execute(f"PRAGMA index_list({table})"):
            cols = tuple(r[2] for r in db.execute(f"PRAGMA index_info({name})"))
            if origin == "c":
                indexes[name] = (cols, bool(unique), bool(partial))
            elif origin == "u":
                uniques.add(cols)
        schema[table] = {"columns": columns, "pk": pk, "indexes": indexes, "uniques": uniques}
    return schema


def postgres_schema(db) -> dict:
    raw = db.conn.raw
    schema = {}
    for table in db.table_names():  # a year partition of a summary is part of its table
        if table in BOOKKEEPING:
            continue
        columns = {name: (TYPES[kind.upper()], nullable == "NO") for name, kind, nullable in raw.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = %s", [table])}
        indexes, uniques, pk = {}, set(), ()
        for name, primary, unique, partial, constraint, cols in raw.execute(
                "SELECT ic.relname, i.indisprimary, i.indisunique, i.indpred IS NOT NULL,"
                " EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid),"
                # Each key as PostgreSQL writes it: a column, or lower(column) for SQLite's
                # COLLATE NOCASE, which SQLite's index_info names by its column.
                " array(SELECT regexp_replace(pg_get_indexdef(i.indexrelid, k.pos::int, true),"
                "                             '^lower\\((.*)\\)$|^\"(.*)\"$', '\\1\\2')"
                "       FROM unnest(i.indkey) WITH ORDINALITY k(n, pos) ORDER BY k.pos)"
                " FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
                " WHERE i.indrelid = %s::regclass", [table]):
            if primary:
                pk = tuple(cols)
            elif constraint:
                uniques.add(tuple(cols))
            else:
                indexes[name] = (tuple(cols), unique, partial)
        schema[table] = {"columns": columns, "pk": pk, "indexes": indexes, "uniques": uniques}
    return schema


def test_both_engines_reach_the_same_logical_schema(template_db, postgresql_url):
    lite = dbmod.connect(template_db)
    post = dbmod.connect(postgresql_url)
    try:
        ours, theirs = sqlite_schema(lite), postgres_schema(post)
    finally:
        lite.close()
        post.close()
    assert sorted(ours) == sorted(theirs)
    for table in ours:
        # SQLite lets a primary key column be NULL unless it says NOT NULL; PostgreSQL never
        # does: compare the columns' types, and NOT NULL outside the primary key.
        for side in (ours, theirs):
            side[table]["columns"] = {
                name: (kind, notnull if name not in side[table]["pk"] else True)
                for name, (kind, notnull) in side[table]["columns"].items()}
        assert ours[table] == theirs[table], table


def test_versions_and_ids_compare_bytewise_on_postgresql(postgresql_url):
    """HLC versions order the same on both engines (C collation, as SQLite's BINARY)."""
    db = dbmod.connect(postgresql_url)
    versions = ["1700000000000.00000.B-box", "1700000000000.00000.a-box", "1700000000000.00001.A",
                "1700000000000.00000.é", "1700000000000.00000._x"]
    for i, v in enumerate(versions):
        db.execute("INSERT INTO classes (uuid, version, deleted) VALUES (?, ?, 0)", [f"c{i}", v])
    ordered = [r[0] for r in db.execute("SELECT version FROM classes ORDER BY version")]
    db.close()
    assert ordered == sorted(versions, key=lambda s: s.encode())


def test_sqlite_spellings_are_translated_for_postgresql():
    t = pg.translate
    assert t("BEGIN IMMEDIATE") == "BEGIN"
    assert t("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)") == (
        "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT DO NOTHING")
    assert t("SELECT max(seq), max(a, b), min(x, max(y, z)) FROM t WHERE s LIKE 'a%?'") == (
        "SELECT max(seq), greatest(a, b), least(x, greatest(y, z)) FROM t WHERE s LIKE 'a%%?'")
    assert t("SELECT json_extract(payload, '$.pack_id') FROM ops") == (
        "SELECT (payload::jsonb #>> '{pack_id}') FROM ops")
    assert t("SELECT 1 FROM users t ORDER BY t.display_name COLLATE NOCASE") == (
        "SELECT 1 FROM users t ORDER BY lower(t.display_name)")


def test_only_the_postgresql_engine_imports_its_driver():
    """Boxes never load psycopg: it is imported by server/pg.py alone, which db.py imports lazily."""
    importers = []
    for path in REPO.glob("*/**/*.py"):
        if ".venv" in path.parts or path.parts[len(REPO.parts)] in {"tests", "bench", "build"}:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] in {"psycopg", "psycopg_pool"} for n in names):
                importers.append(str(path.relative_to(REPO)))
            if (any(n.endswith("server.pg") or n == "passerelle.server" and
                    any(a.name == "pg" for a in node.names) for n in names)
                    and node.col_offset == 0 and path.name != "pg.py"):
                importers.append(f"{path.relative_to(REPO)} (at module level)")
    assert sorted(set(importers)) == ["server/pg.py"]


def test_serve_with_database_runs_a_hub_on_postgresql(tmp_path, postgresql_url):
    """`passerelle serve --database postgresql://…`: records there, the device id from there."""
    import json
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.conftest import free_port

    home, port = tmp_path / "hub", free_port()
    passerelle = str(Path(sys.executable).with_name("passerelle"))
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PASSERELLE_DISCOVERY": "false",
           "PASSERELLE_SYNC_INTERVAL_MINUTES": "0"}
    proc = subprocess.Popen([passerelle, "--home", str(home), "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--threads", "2", "--database", postgresql_url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        body = None
        for _ in range(300):
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read())
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2) as r:
                    body = json.load(r)
                break
            except OSError:
                time.sleep(0.1)
        assert body is not None
        db = dbmod.connect(postgresql_url)
        assert body["device_id"] == dbmod.get_meta(db, "device_id")
        db.close()
        assert body["database"]["status"] == "ok"
        assert body["database"]["journal_mode"] == "postgresql"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_a_sqlite_hub_moves_to_postgresql_keeping_its_device_id(runner, home, postgresql_cluster):
    from passerelle.server import records
    from passerelle.server import sync as syncmod

    assert runner("migrate").exit_code == 0
    lite = dbmod.connect(home / "passerelle.db")
    device = records.device_id(lite)
    records.put(lite, "class", "c1", {"name": "Groupe A"})
    records.event(lite, "learner-1", {"pack_id": "p", "node_id": "n", "type": "progress",
                                      "progress": 0.5, "seconds": 60})
    syncmod.sign_pending(lite, home)
    vector, days = syncmod.vector(lite), lite.execute("SELECT * FROM activity_days").fetchall()
    lite.close()
    postgresql_cluster.admin("CREATE DATABASE moved")
    url = postgresql_cluster.url("moved")

    moved = runner("db", "move-to-postgres", url)
    assert moved.exit_code == 0, moved.stderr
    assert device in moved.stdout
    post = dbmod.connect(url)
    assert records.device_id(post) == device
    assert syncmod.vector(post) == vector
    assert post.execute("SELECT * FROM activity_days").fetchall() == days  # not counted twice
    assert records.load(post, "class", "c1")["name"] == "Groupe A"
    records.put(post, "class", "c2", {"name": "Groupe B"})  # numbering goes on after the moved ops
    assert syncmod.vector(post) == {device: vector[device] + 1}
    post.close()
    # The home now uses it, and backs it up with pg_dump.
    assert "database_url" in (home / "passerelle.toml").read_text()
    backup = runner("backup", str(home / "hub.pgdump"))
    assert backup.exit_code == 0, backup.stderr
    assert (home / "hub.pgdump").read_bytes()[:5] == b"PGDMP"
    assert runner("db", "move-to-postgres", url).exit_code != 0  # already moved


def test_a_hub_on_postgresql_keeps_its_zim_index_jobs_with_its_records(tmp_path, postgresql_url):
    # The ZIM catalogue stays in the home's SQLite file; the indexing jobs are server records,
    # read where the others are (a hub's background indexer once read them from SQLite).
    from passerelle.server import settings as settings_mod
    from passerelle.server.home import Home
    from passerelle.server.migrations import all_sets
    from passerelle.server.packs.zim import indexer_for

    home = Home(tmp_path / "hub").ensure()
    dbmod.prepare(home.db_path, sets=all_sets()[1:])
    settings = settings_mod.resolve(home.root, env={}, flags={"database_url": postgresql_url})
    indexer = indexer_for(home, settings)
    try:
        assert indexer.statuses() == {} and indexer.pending() == []
    finally:
        indexer.close()


def test_the_summaries_are_partitioned_by_year_on_postgresql(postgresql_url):
    from datetime import UTC, datetime

    from passerelle.server import partitions, records
    from passerelle.server.reports import impact

    db = dbmod.connect(postgresql_url)
    try:
        def parts(table):
            return sorted(r[0] for r in db.conn.raw.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = %s::regclass", [table]))

        year = datetime.now(UTC).year
        for table in partitions.SUMMARIES:
            assert parts(table) == [f"{table}_other", *(f"{table}_y{y}" for y in
                                                        range(year, year + 3))]
        assert "activity_days_other" not in db.table_names()
        # An event of a year without a partition lands in DEFAULT; a start moves it to its own.
        records.event(db, "learner-1", {"pack_id": "p", "node_id": "n", "type": "progress",
                                        "seconds": 30, "occurred_at": "2019-05-04T10:00:00+00:00"})
        records.event(db, "learner-1", {"pack_id": "p", "node_id": "n", "type": "progress",
                                        "seconds": 20, "occurred_at": f"{year}-01-02T10:00:00+00:00"})
        assert db.execute("SELECT day, seconds FROM activity_days_other").fetchall() == [
            ("2019-05-04", 30)]
        before = impact.impact(db, datetime(2019, 1, 1).date(), datetime(2019, 12, 31).date())
        assert partitions.ensure_summary_years(db) == ["activity_days_y2019",
                                                       "activity_months_y2019",
                                                       "activity_years_y2019"]
        assert db.execute("SELECT count(*) FROM activity_days_other").fetchone()[0] == 0
        assert db.execute("SELECT day, seconds FROM activity_days_y2019").fetchall() == [
            ("2019-05-04", 30)]
        assert db.execute(f"SELECT seconds FROM activity_months_y{year}").fetchall() == [(20,)]
        assert db.execute("SELECT year, seconds FROM activity_years_y2019").fetchall() == [
            ("2019", 30)]
        after = impact.impact(db, datetime(2019, 1, 1).date(), datetime(2019, 12, 31).date())
        assert (after.seconds, after.people) == (before.seconds, before.people) == (30, 1)
        assert partitions.ensure_summary_years(db) == []
    finally:
        db.close()
