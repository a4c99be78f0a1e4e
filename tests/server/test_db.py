"""The database: migrations, pragmas, device id, damage, backup and restore while serving."""

import json
import os
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from passerelle.server import db as dbmod
from passerelle.server.docs import schema_sql
from passerelle.server.errors import DatabaseProblem, ExitStatus
from passerelle.server.migrations import MIGRATIONS, all_sets

REPO = Path(__file__).resolve().parents[2]


def test_schema_file_matches_what_the_migrations_produce():
    assert (REPO / "server" / "schema.sql").read_text(encoding="utf-8") == schema_sql(), \
        "the migrations and server/schema.sql disagree: run `make docs` and review the diff"


def test_migrate_command_is_idempotent(runner, home):
    first = runner("migrate")
    second = runner("migrate")
    assert first.exit_code == second.exit_code == 0
    latest = MIGRATIONS._migrations[-1].name
    assert f"schema {latest}" in second.stdout
    conn = sqlite3.connect(home / "passerelle.db")
    count = conn.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0]
    assert count == sum(len(s._migrations) for s in all_sets())


def test_connections_use_wal_foreign_keys_and_a_busy_timeout(app):
    with app.app_context():
        conn = dbmod.get_db()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_requests_reuse_pooled_connections_one_request_at_a_time(app):
    def meanwhile(found: list):
        with app.test_request_context():
            found.append(dbmod.get_db())

    with app.test_request_context():
        first = dbmod.get_db()
        assert dbmod.get_db() is first
        found: list = []
        thread = threading.Thread(target=meanwhile, args=(found,))  # a request at the same time
        thread.start()
        thread.join()
        assert found[0] is not first
    with app.test_request_context():  # the next request reuses it, still open
        assert dbmod.get_db() is first
        assert first.execute("SELECT 1").fetchone() == (1,)


def test_outside_a_request_a_connection_is_closed_with_its_context(app):
    with app.app_context():
        db = dbmod.get_db()
    with pytest.raises(sqlite3.ProgrammingError):
        db.execute("SELECT 1")


def test_a_request_never_inherits_a_half_done_transaction(app, home):
    with app.test_request_context():
        db = dbmod.get_db()
        db.conn.execute("BEGIN IMMEDIATE")
        db.conn.execute("INSERT INTO meta (key, value) VALUES ('half-done', 'x')")
        # the request ends without committing (an exception, a forgotten commit)
    with app.test_request_context():
        again = dbmod.get_db()
        assert again is db
        assert not again.conn.in_transaction
        assert again.execute("SELECT 1 FROM meta WHERE key = 'half-done'").fetchone() is None
    other = sqlite3.connect(home / "passerelle.db", timeout=1)  # the write lock was released
    with other:
        other.execute("INSERT INTO meta (key, value) VALUES ('next-writer', 'y')")
    other.close()


def test_a_cursor_left_unread_does_not_show_the_next_request_old_data(app, home):
    kept = []
    with app.test_request_context():
        db = dbmod.get_db()
        cursor = db.execute("SELECT key FROM meta")  # several rows, only one read: a snapshot
        cursor.fetchone()
        kept.append(cursor)  # outlives the request (a traceback, a cache...)
    other = sqlite3.connect(home / "passerelle.db", timeout=1)
    with other:
        other.execute("INSERT INTO meta (key, value) VALUES ('written-meanwhile', 'z')")
    other.close()
    with app.test_request_context():
        assert dbmod.get_db() is db
        assert db.execute("SELECT value FROM meta WHERE key = 'written-meanwhile'").fetchone() == ("z",)


def test_two_boxes_in_one_process_never_share_a_connection(app, tmp_path):
    from passerelle.server.app import create_app

    other = create_app({"home": tmp_path / "other-box", "TESTING": True})
    with app.test_request_context():
        mine = dbmod.get_db()
        mine_id = mine.execute("SELECT value FROM meta WHERE key = 'device_id'").fetchone()
    with other.test_request_context():
        theirs = dbmod.get_db()
        assert theirs is not mine
        assert theirs.execute("SELECT value FROM meta WHERE key = 'device_id'").fetchone() != mine_id


def test_device_id_is_made_once_and_stays(client, home):
    from passerelle.server.app import create_app

    first = client.get("/api/v1/health").get_json()["device_id"]
    again = create_app({"home": home, "TESTING": True}).test_client().get("/api/v1/health")
    assert again.get_json()["device_id"] == first
    assert len(first) == 36


def test_uuids_for_records_that_leave_the_box():
    ids = {dbmod.new_uuid() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) == 36 and i[14] == "4" for i in ids)


def damage(path: Path) -> None:
    """Overwrite the middle of the file, as a bad SD card or a torn write would."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2 if size > 8192 else 4096)
        f.write(os.urandom(4096))


def fill(path: Path, rows: int = 2000) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE IF NOT EXISTS filler (n INTEGER, blob TEXT)")
    conn.executemany("INSERT INTO filler VALUES (?, ?)", [(i, "x" * 200) for i in range(rows)])
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def test_a_damaged_database_gives_a_clear_message_and_the_recovery_command(runner, home):
    assert runner("migrate").exit_code == 0
    assert runner("backup").exit_code == 0
    fill(home / "passerelle.db")
    damage(home / "passerelle.db")
    result = runner("serve", "--port", "1")
    assert result.exit_code == ExitStatus.DATABASE
    assert "Traceback" not in result.stderr
    assert "is damaged" in result.stderr
    assert "passerelle restore " + str(home / "backups") in result.stderr


def test_a_file_that_is_not_a_database_is_reported_not_crashed_on(home):
    home.mkdir()
    (home / "passerelle.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseProblem, match="is damaged .*no backup was found"):
        dbmod.prepare(home / "passerelle.db")


def test_backup_and_restore_round_trip(runner, home, tmp_path):
    runner("migrate")
    conn = sqlite3.connect(home / "passerelle.db")
    conn.execute("INSERT INTO meta VALUES ('note', 'before')")
    conn.commit()
    result = runner("backup", str(tmp_path / "snap.db"))
    assert result.exit_code == 0 and (tmp_path / "snap.db").exists()
    conn.execute("UPDATE meta SET value = 'after' WHERE key = 'note'")
    conn.commit()
    old_device = conn.execute("SELECT value FROM meta WHERE key='device_id'").fetchone()[0]
    conn.close()

    result = runner("restore", str(tmp_path / "snap.db"), "--yes")
    assert result.exit_code == 0, result.stderr
    assert "previous database kept as" in result.stdout
    conn = sqlite3.connect(home / "passerelle.db")
    assert conn.execute("SELECT value FROM meta WHERE key='note'").fetchone()[0] == "before"
    new_device = conn.execute("SELECT value FROM meta WHERE key='device_id'").fetchone()[0]
    assert new_device != old_device
    assert conn.execute("SELECT device_id FROM device_history").fetchone()[0] == old_device
    safety = list((home / "backups").glob("*.pre-restore.db"))
    assert len(safety) == 1
    assert sqlite3.connect(safety[0]).execute(
        "SELECT value FROM meta WHERE key='note'").fetchone()[0] == "after"


@pytest.mark.parametrize("content, message", [
    (b"garbage" * 1000, "is not a SQLite database"),
    (None, "is not a Passerelle database"),
])
def test_restore_refuses_foreign_files_and_changes_nothing(runner, home, tmp_path, content, message):
    runner("migrate")
    before = (home / "passerelle.db").read_bytes()
    candidate = tmp_path / "candidate.db"
    if content is None:
        sqlite3.connect(candidate).execute("CREATE TABLE other (x)").connection.commit()
    else:
        candidate.write_bytes(content)
    result = runner("restore", str(candidate), "--yes")
    assert result.exit_code == ExitStatus.DATABASE
    assert message in result.stderr
    assert (home / "passerelle.db").read_bytes() == before
    assert not list((home / "backups").glob("*"))


def test_restore_refuses_a_damaged_backup(runner, home, tmp_path):
    runner("migrate")
    runner("backup", str(tmp_path / "snap.db"))
    fill(tmp_path / "snap.db", 5000)
    damage(tmp_path / "snap.db")
    result = runner("restore", str(tmp_path / "snap.db"), "--yes")
    assert result.exit_code == ExitStatus.DATABASE
    assert "damaged" in result.stderr


def test_backup_while_serving_and_writing_is_consistent(live_server, home, tmp_path):
    """A writer commits numbered rows while learners' requests and a backup run: the
    backup holds an unbroken prefix of the rows and passes the full integrity check."""
    stop = threading.Event()
    written = []

    def writer():
        conn = sqlite3.connect(home / "passerelle.db", timeout=10)
        conn.execute("CREATE TABLE IF NOT EXISTS progress_probe (n INTEGER PRIMARY KEY, pad TEXT)")
        n = 0
        while not stop.is_set():
            with conn:
                conn.execute("INSERT INTO progress_probe VALUES (?, ?)", (n, "p" * 500))
            written.append(n)
            n += 1
        conn.close()

    def reader():
        while not stop.is_set():
            assert live_server.get("/api/v1/health").status == 200

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    backups = []
    for i in range(3):
        dest = tmp_path / f"while-serving-{i}.db"
        result = subprocess.run(
            [str(Path(os.sys.executable).with_name("passerelle")), "--home", str(home), "backup", str(dest)],
            check=False, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        backups.append(dest)
        time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert len(written) > 50
    for dest in backups:
        conn = sqlite3.connect(dest)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        numbers = [r[0] for r in conn.execute("SELECT n FROM progress_probe ORDER BY n")]
        assert numbers == list(range(len(numbers)))  # a prefix: no torn transaction
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_restore_while_serving(live_server, home, tmp_path):
    runner_env = {**os.environ}
    exe = str(Path(os.sys.executable).with_name("passerelle"))
    before = json.load(live_server.get("/api/v1/health"))["device_id"]
    subprocess.run([exe, "--home", str(home), "backup", str(tmp_path / "snap.db")], check=True,
                   env=runner_env, capture_output=True)
    result = subprocess.run([exe, "--home", str(home), "restore", str(tmp_path / "snap.db"), "--yes"],
                            check=False, env=runner_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    after = json.load(live_server.get("/api/v1/health"))
    assert after["status"] == "ok"
    assert after["device_id"] != before


def test_migrations_keep_their_shipped_names_and_their_run_order():
    # Boxes record applied migrations by name and run the rest in definition order. Numbers may
    # be out of order (m0004 runs after m0006, whose table it uses); names must never repeat,
    # and a new migration is always appended at the end.
    names = [m.name for m in MIGRATIONS._migrations]
    assert len(names) == len(set(names))
    assert names.index("m0004_report_indexes") == names.index("m0006_sync") + 1
    numbered = [n for n in names if n != "m0004_report_indexes"]
    assert numbered == sorted(numbered)
