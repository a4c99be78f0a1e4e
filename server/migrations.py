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


def all_sets() -> list[Migrations]:
    """The server's migrations and each library's, applied in this order on every start."""
    from passerelle.content import MIGRATIONS as CONTENT

    return [MIGRATIONS, CONTENT]


def apply_all(db: Database) -> None:
    for migrations in all_sets():
        migrations.apply(db)


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


@MIGRATIONS()
def m0002_accounts(db: Database) -> None:
    # The operation log (see records.py): the source of truth for everything that syncs.
    db.execute("""
        CREATE TABLE ops (
            origin TEXT NOT NULL,
            seq INTEGER NOT NULL,
            version TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('put', 'delete', 'event')),
            entity TEXT NOT NULL,
            subject TEXT NOT NULL,
            payload TEXT NOT NULL,
            event_id TEXT,
            PRIMARY KEY (origin, seq)
        ) WITHOUT ROWID
    """)
    db.execute("CREATE INDEX ops_subject ON ops (entity, subject, version)")
    db.execute("CREATE INDEX ops_event_id ON ops (event_id) WHERE event_id IS NOT NULL")

    # Tables folded from the log. Every one: uuid, version (HLC + device), deleted (tombstone).
    versioned = "uuid TEXT PRIMARY KEY, version TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0"
    db.execute(f"""
        CREATE TABLE organisations ({versioned},
            name TEXT, languages TEXT, signin_mode TEXT, profile_fields TEXT)
    """)
    db.execute(f"""
        CREATE TABLE users ({versioned},
            role TEXT, display_name TEXT, username TEXT, password_hash TEXT, pin_hash TEXT,
            picture_hash TEXT, avatar TEXT, language TEXT, profile TEXT, consent TEXT,
            created_at TEXT)
    """)
    db.execute("CREATE INDEX users_username ON users (username) WHERE deleted = 0")
    db.execute("CREATE INDEX users_role ON users (role, display_name) WHERE deleted = 0")
    db.execute(f"""
        CREATE TABLE classes ({versioned}, name TEXT, description TEXT, created_at TEXT)
    """)
    db.execute(f"""
        CREATE TABLE memberships ({versioned}, class_uuid TEXT, user_uuid TEXT, role TEXT)
    """)
    db.execute("CREATE INDEX memberships_class ON memberships (class_uuid) WHERE deleted = 0")
    db.execute("CREATE INDEX memberships_user ON memberships (user_uuid) WHERE deleted = 0")
    db.execute(f"""
        CREATE TABLE class_sessions ({versioned},
            class_uuid TEXT, date TEXT, place TEXT, partner TEXT, topic TEXT,
            opened_by TEXT, closed INTEGER)
    """)
    db.execute("CREATE INDEX class_sessions_class ON class_sessions (class_uuid, date)")
    db.execute(f"""
        CREATE TABLE attendance ({versioned}, session_uuid TEXT, learner_uuid TEXT, present INTEGER)
    """)
    db.execute("CREATE INDEX attendance_session ON attendance (session_uuid)")
    db.execute("CREATE INDEX attendance_learner ON attendance (learner_uuid)")

    # Per learner and resource, merged from progress events (commutative rules).
    db.execute("""
        CREATE TABLE progress (
            learner_uuid TEXT NOT NULL,
            pack_id TEXT NOT NULL,
            node_id TEXT NOT NULL,
            progress REAL NOT NULL DEFAULT 0,
            completed_version TEXT,
            seconds INTEGER NOT NULL DEFAULT 0,
            answers INTEGER NOT NULL DEFAULT 0,
            correct INTEGER NOT NULL DEFAULT 0,
            position TEXT,
            position_version TEXT,
            first_version TEXT NOT NULL,
            last_version TEXT NOT NULL,
            PRIMARY KEY (learner_uuid, pack_id, node_id)
        ) WITHOUT ROWID
    """)
    db.execute("CREATE INDEX progress_node ON progress (pack_id, node_id)")

    # Local only, never synced: failed sign-ins, for rate limiting and lockout.
    db.execute("""
        CREATE TABLE signin_failures (
            key TEXT NOT NULL,
            at REAL NOT NULL
        )
    """)
    db.execute("CREATE INDEX signin_failures_key ON signin_failures (key, at)")


@MIGRATIONS()
def m0005_lessons(db: Database) -> None:
    # Groups inside classes, lessons (ordered resources from any pack) and their assignment.
    versioned = "uuid TEXT PRIMARY KEY, version TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0"
    db.execute(f"CREATE TABLE groups ({versioned}, class_uuid TEXT, name TEXT)")
    db.execute("CREATE INDEX groups_class ON groups (class_uuid) WHERE deleted = 0")
    db.execute(f"CREATE TABLE group_members ({versioned}, group_uuid TEXT, learner_uuid TEXT)")
    db.execute("CREATE INDEX group_members_group ON group_members (group_uuid) WHERE deleted = 0")
    db.execute(f"""CREATE TABLE lessons ({versioned}, title TEXT, description TEXT, items TEXT,
                   created_by TEXT, created_at TEXT)""")
    db.execute(f"""CREATE TABLE assignments ({versioned}, lesson_uuid TEXT, class_uuid TEXT,
                   target TEXT, open INTEGER, created_by TEXT, created_at TEXT)""")
    db.execute("CREATE INDEX assignments_class ON assignments (class_uuid) WHERE deleted = 0")
