"""The schema, changed only by migrations (sqlite-utils ``Migrations``).

Rules: never edit a migration that has shipped; add a new one. Every record
that may leave the box has a ``uuid`` primary key (see ``db.new_uuid``).
``server/schema.sql`` is the schema these migrations produce; a test fails
when the two differ, so a change to one without the other is caught
(regenerate with ``make schema``).
"""

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("passerelle")


@MIGRATIONS()
def m0001_meta(db: Database) -> None:
    # Box-wide facts: device id, creation time, organisation settings later.
    db.execute("""
        CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )
    """)
    # Device ids this box used before (a restore retires the current one).
    db.execute("""
        CREATE TABLE device_history (
            device_id TEXT NOT NULL,
            retired_at TEXT NOT NULL,
            reason TEXT NOT NULL
        )
    """)
