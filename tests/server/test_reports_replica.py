"""A hub's reports read from its read replica (``reports_database_url``): a real standby."""

from __future__ import annotations

import re
import time

import pytest
from passerelle.server import db as dbmod
from passerelle.server import records
from passerelle.server.app import create_app
from passerelle.server.errors import ConfigError
from passerelle.server.people import accounts

PASSWORD = "une phrase assez longue pour un coordinateur"


def caught_up(primary_url: str, standby_url: str) -> None:
    """Wait until the standby has replayed everything the primary wrote so far."""
    import psycopg

    with psycopg.connect(primary_url, autocommit=True) as conn:
        # The insert position: the test cluster commits without waiting for the WAL's flush
        # (synchronous_commit off), and a standby receives only what was flushed.
        lsn = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
    deadline = time.monotonic() + 120
    with psycopg.connect(standby_url, autocommit=True) as conn:
        while conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [lsn]).fetchone()[0] \
                is not True:
            assert time.monotonic() < deadline, "the standby never caught up"
            time.sleep(0.05)


def replay(standby_url: str, paused: bool) -> None:
    import psycopg

    with psycopg.connect(standby_url, autocommit=True) as conn:
        if not paused:
            conn.execute("SELECT pg_wal_replay_resume()")
            return
        # A pause is only asked for: replay goes on until the standby says it has stopped.
        conn.execute("SELECT pg_wal_replay_pause()")
        deadline = time.monotonic() + 120
        while conn.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()[0] != "paused":
            assert time.monotonic() < deadline, "the standby never paused"
            time.sleep(0.05)


def answer(db, learner: str, n: int) -> None:
    for i in range(n):
        records.event(db, learner, {"pack_id": "p", "node_id": f"n{i}", "type": "progress",
                                    "progress": 1.0, "seconds": 600})


def test_the_impact_report_and_exports_read_the_replica(tmp_path, postgresql_replicated, runner):
    primary, standby = postgresql_replicated
    primary.admin("CREATE DATABASE hub")
    hub, replica = primary.url("hub"), standby.url("hub")
    dbmod.prepare(hub)
    db = dbmod.connect(hub)
    accounts.setup(db, org_name="Programme", languages=["fr", "en"], signin_mode="pin",
                   profile_fields={}, display_name="Cora", username="cora", password=PASSWORD)
    amina = accounts.create_user(db, role="learner", display_name="Amina", pin="4821",
                                 avatar="fox")
    answer(db, amina, 3)
    caught_up(hub, replica)

    home = tmp_path / "hub"
    app = create_app({"home": home, "database_url": hub, "reports_database_url": replica,
                      "TESTING": True})
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    page = client.get("/signin/staff").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert client.post("/signin/staff", data={"csrf_token": token, "username": "cora",
                                              "password": PASSWORD}).status_code == 302

    def completions() -> str:
        csv = client.get("/manage/reports.csv").get_data(as_text=True)
        return next(line for line in csv.splitlines() if line.startswith('"summary";"all";""'
                                                                          ';"resources_completed"'))

    before = completions()
    assert before.endswith(';"3"')
    # The standby stops replaying: what the primary records now is not on the replica, and
    # the report, its CSV, the exports and the command line all read the replica.
    replay(replica, paused=True)
    try:
        bart = accounts.create_user(db, role="learner", display_name="Bart", pin="1234",
                                    avatar="owl")
        answer(db, bart, 2)
        assert completions() == before
        assert client.get("/manage/reports").status_code == 200
        exported = client.get("/manage/exports/progress.csv").get_data(as_text=True)
        assert amina in exported and bart not in exported
        home_toml = home / "passerelle.toml"
        home_toml.write_text(f'database_url = "{hub}"\nreports_database_url = "{replica}"\n')
        printed = runner("--home", str(home), "report", "progress", home=False)
        assert printed.exit_code == 0, (printed.stdout, printed.stderr)
        assert amina in printed.stdout and bart not in printed.stdout
        # The people pages and what boxes sync read the primary: Bart is there.
        assert "Bart" in client.get("/manage/people").get_data(as_text=True)
    finally:
        replay(replica, paused=False)
    caught_up(hub, replica)
    assert completions().endswith(';"5"')
    db.close()


def test_a_replica_needs_a_hub_on_postgresql(tmp_path):
    with pytest.raises(ConfigError, match="reports_database_url"):
        create_app({"home": tmp_path / "box",
                    "reports_database_url": "postgresql://reports@replica/hub"})
