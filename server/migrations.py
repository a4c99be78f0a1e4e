"""The schema, changed only by migrations (sqlite-utils ``Migrations``).

Rules: never edit a migration that has shipped; add a new one. Every record
that may leave the box has a ``uuid`` primary key (see ``db.new_uuid``).
``server/schema.sql`` is the schema these migrations produce; a test fails
when the two differ, so a change to one without the other is caught
(regenerate with ``make docs``).
"""

import json

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
def m0003_bookmarks(db: Database) -> None:
    # A learner's bookmarks (syncing records; uuid derived from learner, pack and node).
    versioned = "uuid TEXT PRIMARY KEY, version TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0"
    db.execute(f"""CREATE TABLE bookmarks ({versioned}, learner_uuid TEXT, pack_id TEXT,
                   node_id TEXT, created_at TEXT)""")
    db.execute("CREATE INDEX bookmarks_learner ON bookmarks (learner_uuid, created_at) WHERE deleted = 0")


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


@MIGRATIONS()
def m0006_sync(db: Database) -> None:
    # Sync (see server/sync/ and docs/sync.md). Local to each box: none of these tables syncs.
    # The devices whose operations this box accepts; a box always trusts itself.
    db.execute("""
        CREATE TABLE sync_devices (
            device_id TEXT PRIMARY KEY,
            public_key TEXT NOT NULL,
            organisation TEXT,
            label TEXT,
            paired_at TEXT NOT NULL,
            revoked_at TEXT
        )
    """)
    # The origin device's Ed25519 signature of each operation, kept so that relays can forward it.
    db.execute("""
        CREATE TABLE op_signatures (
            origin TEXT NOT NULL,
            seq INTEGER NOT NULL,
            signature BLOB NOT NULL,
            PRIMARY KEY (origin, seq)
        ) WITHOUT ROWID
    """)
    # What each peer said it holds (the vector in its last bundle), to export only what it lacks.
    db.execute("""
        CREATE TABLE sync_peers (
            device_id TEXT PRIMARY KEY,
            vector TEXT NOT NULL,
            seen_at TEXT NOT NULL
        )
    """)
    # One line per export or import, for `passerelle sync status` and the coordinator page.
    db.execute("""
        CREATE TABLE sync_log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('export', 'import')),
            peer TEXT,
            path TEXT,
            ops INTEGER NOT NULL DEFAULT 0,
            duplicates INTEGER NOT NULL DEFAULT 0,
            held INTEGER NOT NULL DEFAULT 0,
            ok INTEGER NOT NULL,
            message TEXT NOT NULL
        )
    """)


# Migrations run in the order they are defined here, not by number. This one is numbered 4 but
# must run after m0006 (it adds a trigger on ``ops``, which m0006 creates). Boxes record applied
# migrations by name, so renaming it would run it a second time on every box that has it.
@MIGRATIONS()
def m0004_report_indexes(db: Database) -> None:
    # Reports (server/reports/impact.py). Learning time per day, learner and pack, kept by a trigger on
    # every event inserted in the log (local or synced; an event already there inserts nothing,
    # so nothing counts twice): a year's report then reads this summary instead of parsing
    # millions of events (15 s for 2,000,000 events on a small box; see docs/benchmarks.md).
    # Days are UTC days of the event's version; seconds are clamped to 0..4 h, as the fold does.
    db.execute("""
        CREATE TABLE activity_days (
            day TEXT NOT NULL,
            learner_uuid TEXT NOT NULL,
            pack_id TEXT NOT NULL,
            events INTEGER NOT NULL,
            seconds INTEGER NOT NULL,
            PRIMARY KEY (day, learner_uuid, pack_id)
        ) WITHOUT ROWID
    """)
    day = "date(CAST(substr({v}, 1, 13) AS INTEGER) / 1000, 'unixepoch')"
    seconds = "max(0, min(14400, coalesce(CAST(json_extract({p}, '$.seconds') AS INTEGER), 0)))"
    pack = "coalesce(json_extract({p}, '$.pack_id'), '')"
    db.execute(f"""
        CREATE TRIGGER activity_days_fold AFTER INSERT ON ops
        WHEN NEW.kind = 'event' AND NEW.entity = 'progress'
        BEGIN
            INSERT INTO activity_days (day, learner_uuid, pack_id, events, seconds)
            VALUES ({day.format(v="NEW.version")}, NEW.subject, {pack.format(p="NEW.payload")}, 1,
                    {seconds.format(p="NEW.payload")})
            ON CONFLICT (day, learner_uuid, pack_id) DO UPDATE
            SET events = events + 1, seconds = seconds + excluded.seconds;
        END
    """)
    db.execute(f"""
        INSERT INTO activity_days (day, learner_uuid, pack_id, events, seconds)
        SELECT {day.format(v="version")}, subject, {pack.format(p="payload")}, count(*),
               sum({seconds.format(p="payload")})
        FROM ops WHERE kind = 'event' AND entity = 'progress' GROUP BY 1, 2, 3
    """)
    # Resources completed in a range; sessions held in a range.
    db.execute("CREATE INDEX progress_completed ON progress (completed_version)"
               " WHERE completed_version IS NOT NULL")
    db.execute("CREATE INDEX class_sessions_date ON class_sessions (date) WHERE deleted = 0")


@MIGRATIONS()
def m0007_sync_http(db: Database) -> None:
    # Sync over HTTP (server/sync/http.py, server/sync/client.py, docs/sync.md). Local, never synced.
    # Per peer: its address (the hub a box paired with is its default peer), last success, last error,
    # and the Passerelle version it runs (the hub's page of boxes shows which boxes need updating).
    for column in ("url", "last_ok_at", "last_error", "last_error_at", "version"):
        db.execute(f"ALTER TABLE sync_peers ADD COLUMN {column} TEXT")
    # Trust learned from a hub: the device that vouched for this one (NULL: trusted here directly),
    # and whether this box takes the device list a device sends (the hub it paired with).
    db.execute("ALTER TABLE sync_devices ADD COLUMN vouched_by TEXT")
    db.execute("ALTER TABLE sync_devices ADD COLUMN anchor INTEGER NOT NULL DEFAULT 0")
    # One-time pairing codes, stored only as the scrypt key derived from the code.
    db.execute("""
        CREATE TABLE sync_pair_codes (
            key BLOB PRIMARY KEY,
            created_at TEXT NOT NULL,
            expires_ms INTEGER NOT NULL,
            failures INTEGER NOT NULL DEFAULT 0,
            used_at TEXT,
            used_by TEXT
        )
    """)
    # sync_log gains the HTTP directions; SQLite cannot change a CHECK, so the table is rebuilt.
    db.execute("""
        CREATE TABLE sync_log_new (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            direction TEXT NOT NULL CHECK (direction IN ('export', 'import', 'sync', 'pair')),
            peer TEXT,
            path TEXT,
            ops INTEGER NOT NULL DEFAULT 0,
            duplicates INTEGER NOT NULL DEFAULT 0,
            held INTEGER NOT NULL DEFAULT 0,
            ok INTEGER NOT NULL,
            message TEXT NOT NULL
        )
    """)
    db.execute("INSERT INTO sync_log_new SELECT * FROM sync_log")
    db.execute("DROP TABLE sync_log")
    db.execute("ALTER TABLE sync_log_new RENAME TO sync_log")


@MIGRATIONS()
def m0008_encrypted_bundles(db: Database) -> None:
    # The organisation's choice that USB bundles be encrypted (1) or only signed (NULL/0). A
    # field of the organisation record, so it syncs: every box of the organisation follows it.
    db.execute("ALTER TABLE organisations ADD COLUMN encrypt_bundles INTEGER")


@MIGRATIONS()
def m0009_signins(db: Database) -> None:
    # Local only, never synced: who is signed in on this box. The cookie holds a random token;
    # this table holds its SHA-256, so signing out (or a changed secret, or a removed person)
    # ends the session even for a copy of the cookie. ``stamp`` fingerprints the person's role
    # and secrets at sign-in: a change made here or arriving by sync no longer matches it.
    db.execute("""
        CREATE TABLE signins (
            id TEXT PRIMARY KEY,
            user_uuid TEXT NOT NULL,
            stamp TEXT NOT NULL,
            started_at REAL NOT NULL
        ) WITHOUT ROWID
    """)
    db.execute("CREATE INDEX signins_user ON signins (user_uuid)")
    db.execute("CREATE INDEX signins_started ON signins (started_at)")


@MIGRATIONS()
def m0010_exercise_state(db: Database) -> None:
    # An exercise's state kept with its summary, by the fold (records._fold_answer): the newest
    # answers ([version, correct, question id], at most mastery.MAX_N) and the questions ever
    # answered correctly. Answering then reads one row instead of the learner's whole history.
    db.execute("ALTER TABLE progress ADD COLUMN recent TEXT")
    db.execute("ALTER TABLE progress ADD COLUMN solved TEXT")
    from passerelle.server.records import merge_answers

    state: dict[tuple, tuple[list, list]] = {}
    rows = db.execute(
        "SELECT subject, json_extract(payload, '$.pack_id'), json_extract(payload, '$.node_id'),"
        " version, json_extract(payload, '$.correct'), json_extract(payload, '$.question_id')"
        " FROM ops WHERE kind = 'event' AND entity = 'progress'"
        " AND json_extract(payload, '$.type') = 'answer' ORDER BY version")
    for learner, pack, node, version, correct, question in rows:
        recent, solved = state.setdefault((learner, pack, node), ([], []))
        merge_answers(recent, solved, version, bool(correct),
                      None if question is None else str(question))
    db.conn.executemany(
        "UPDATE progress SET recent = ?, solved = ? WHERE learner_uuid = ? AND pack_id = ?"
        " AND node_id = ?",
        ((json.dumps(r, separators=(",", ":")), json.dumps(s, separators=(",", ":")), *key)
         for key, (r, s) in state.items()))


@MIGRATIONS()
def m0011_activity_days_by_occurrence(db: Database) -> None:
    # Learning time is counted on the day it happened on the tablet (``occurred_at``, placed on
    # the box's clock when it arrived), not the day it reached the box: answers queued during a
    # Wi-Fi cut belong to the day they were given. Events without it keep their version's day.
    db.execute("DROP TRIGGER activity_days_fold")
    day = ("coalesce(date(json_extract({p}, '$.occurred_at')),"
           " date(CAST(substr({v}, 1, 13) AS INTEGER) / 1000, 'unixepoch'))")
    seconds = "max(0, min(14400, coalesce(CAST(json_extract({p}, '$.seconds') AS INTEGER), 0)))"
    pack = "coalesce(json_extract({p}, '$.pack_id'), '')"
    db.execute(f"""
        CREATE TRIGGER activity_days_fold AFTER INSERT ON ops
        WHEN NEW.kind = 'event' AND NEW.entity = 'progress'
        BEGIN
            INSERT INTO activity_days (day, learner_uuid, pack_id, events, seconds)
            VALUES ({day.format(v="NEW.version", p="NEW.payload")}, NEW.subject,
                    {pack.format(p="NEW.payload")}, 1, {seconds.format(p="NEW.payload")})
            ON CONFLICT (day, learner_uuid, pack_id) DO UPDATE
            SET events = events + 1, seconds = seconds + excluded.seconds;
        END
    """)
    db.execute("DELETE FROM activity_days")
    db.execute(f"""
        INSERT INTO activity_days (day, learner_uuid, pack_id, events, seconds)
        SELECT {day.format(v="version", p="payload")}, subject, {pack.format(p="payload")}, count(*),
               sum({seconds.format(p="payload")})
        FROM ops WHERE kind = 'event' AND entity = 'progress' GROUP BY 1, 2, 3
    """)


@MIGRATIONS()
def m0012_missed_questions(db: Database) -> None:
    # Wrong answers per learner, exercise and question ("" for answers that name no question),
    # counted by the fold (records._fold_answer): the facilitator's "most missed questions" add
    # up the class's rows instead of parsing every answer its learners ever gave (80 ms for
    # 20,000 events on a small box, growing with the log; see docs/benchmarks.md).
    db.execute("""
        CREATE TABLE missed_questions (
            learner_uuid TEXT NOT NULL,
            pack_id TEXT NOT NULL,
            node_id TEXT NOT NULL,
            question_id TEXT NOT NULL,
            wrong INTEGER NOT NULL,
            seen_values TEXT,
            seen_version TEXT,
            PRIMARY KEY (learner_uuid, pack_id, node_id, question_id)
        ) WITHOUT ROWID
    """)
    from collections import Counter

    from passerelle.server.records import missed_question

    counts: Counter = Counter()
    seen: dict = {}
    rows = db.execute(
        "SELECT subject, payload, version FROM ops WHERE kind = 'event' AND entity = 'progress'"
        " AND json_extract(payload, '$.type') = 'answer' AND json_extract(payload, '$.correct') = 0"
        " ORDER BY version")
    for learner, payload, version in rows:
        p = json.loads(payload)
        question = missed_question(p)
        if question is not None:
            key = (learner, p.get("pack_id"), p.get("node_id"), question)
            counts[key] += 1
            if p.get("values"):
                seen[key] = (json.dumps(p["values"], sort_keys=True, separators=(",", ":")), version)
    db.conn.executemany(
        "INSERT INTO missed_questions (learner_uuid, pack_id, node_id, question_id, wrong,"
        " seen_values, seen_version) VALUES (?, ?, ?, ?, ?, ?, ?)",
        ((*key, n, *seen.get(key, (None, None))) for key, n in counts.items()))


@MIGRATIONS()
def m0013_heads(db: Database) -> None:
    # The highest sequence number held per origin device: the version vector in one read, and
    # the row a writer locks to give its origin's next operation a number (records._next_seq,
    # sync.ops.apply_batch), so concurrent writers on a hub on PostgreSQL neither reuse a
    # number nor break an origin's contiguity. Kept by records.apply with every operation.
    db.execute("""
        CREATE TABLE heads (
            origin TEXT PRIMARY KEY,
            max_seq INTEGER NOT NULL
        ) WITHOUT ROWID
    """)
    db.execute("INSERT INTO heads (origin, max_seq) SELECT origin, max(seq) FROM ops GROUP BY origin")


@MIGRATIONS()
def m0017_sites(db: Database) -> None:
    # Sites (docs/sync.md, "Sites"): a box belongs to one site; learners and classes have a home
    # site. ``sites`` is a synced record like the others (organisation-wide: every box knows the
    # names). NULL site means organisation-wide: data made before sites keeps reaching every box.
    db.execute("""
        CREATE TABLE sites (uuid TEXT PRIMARY KEY, version TEXT NOT NULL,
                            deleted INTEGER NOT NULL DEFAULT 0, name TEXT)
    """)
    db.execute("ALTER TABLE users ADD COLUMN site TEXT")
    db.execute("ALTER TABLE classes ADD COLUMN site TEXT")
    db.execute("CREATE INDEX users_site ON users (site) WHERE site IS NOT NULL")
    db.execute("CREATE INDEX classes_site ON classes (site) WHERE site IS NOT NULL")
    # The site of each device, as the coordinator assigned it on the hub (local, never synced):
    # what the hub sends a box is chosen by it.
    db.execute("ALTER TABLE sync_devices ADD COLUMN site TEXT")


@MIGRATIONS()
def m0018_flat_sync(db: Database) -> None:
    # Used request nonces, in the database instead of one process's memory, so any number of
    # hub processes share them (server/sync/nonces.py). Local, never synced.
    db.execute("""
        CREATE TABLE sync_nonces (
            nonce TEXT PRIMARY KEY,
            expires_ms INTEGER NOT NULL
        )
    """)
    db.execute("CREATE INDEX sync_nonces_expires ON sync_nonces (expires_ms)")
    # sync_log is kept for a number of days (setting sync_log_days), not a number of rows.
    db.execute("CREATE INDEX sync_log_at ON sync_log (at)")
    # The version of the device list a box last took from its hub: the hub sends the list
    # again only when it changed.
    db.execute("ALTER TABLE sync_peers ADD COLUMN devices_version TEXT")


@MIGRATIONS()
def m0019_report_summaries(db: Database) -> None:
    # The impact report reads summaries only (server/reports/impact.py): activity_days (a day,
    # learner and pack) and now activity_months (a month, learner and pack), both kept by the
    # fold in Python (records.fold_activity), which works the same on every database engine.
    # The trigger that kept activity_days with json_extract goes.
    db.execute("DROP TRIGGER IF EXISTS activity_days_fold")
    db.execute("""
        CREATE TABLE activity_months (
            month TEXT NOT NULL,
            learner_uuid TEXT NOT NULL,
            pack_id TEXT NOT NULL,
            events INTEGER NOT NULL,
            seconds INTEGER NOT NULL,
            PRIMARY KEY (month, learner_uuid, pack_id)
        ) WITHOUT ROWID
    """)
    # Backfilled from the daily summary, which already holds every event of the log.
    db.execute("""
        INSERT INTO activity_months (month, learner_uuid, pack_id, events, seconds)
        SELECT substr(day, 1, 7), learner_uuid, pack_id, sum(events), sum(seconds)
        FROM activity_days GROUP BY substr(day, 1, 7), learner_uuid, pack_id
    """)


@MIGRATIONS()
def m0020_quizzes(db: Database) -> None:
    # Quizzes that assess (server/learning/quizzes.py): the quiz a facilitator makes, and each
    # time it is started for learners (a copy of its questions, so editing the quiz later
    # never changes what was answered). Both are records that sync.
    versioned = "uuid TEXT PRIMARY KEY, version TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0"
    db.execute(f"""CREATE TABLE quizzes ({versioned}, title TEXT, sections TEXT, shuffle INTEGER,
                   created_by TEXT, created_at TEXT)""")
    db.execute(f"""CREATE TABLE quiz_runs ({versioned}, quiz_uuid TEXT, title TEXT, sections TEXT,
                   shuffle INTEGER, attempts INTEGER, class_uuid TEXT, target TEXT, open INTEGER,
                   created_by TEXT, created_at TEXT)""")
    db.execute("CREATE INDEX quiz_runs_class ON quiz_runs (class_uuid) WHERE deleted = 0")
    # Each answer of each attempt, folded from the learners' answer events (records.
    # _fold_quiz_answer): a report reads a class's few hundred rows, never the log.
    db.execute("""
        CREATE TABLE quiz_answers (
            run_uuid TEXT NOT NULL,
            learner_uuid TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            item INTEGER NOT NULL,
            pack_id TEXT,
            node_id TEXT,
            question_id TEXT,
            correct INTEGER NOT NULL,
            answer TEXT,
            seen_values TEXT,
            version TEXT NOT NULL,
            PRIMARY KEY (run_uuid, learner_uuid, attempt, item)
        ) WITHOUT ROWID
    """)


@MIGRATIONS()
def m0022_people_at_scale(db: Database) -> None:
    # The people page pages through thousands of people by name (keyset paging): these let it
    # read one page in name order without sorting the whole table, with or without a role.
    db.execute("CREATE INDEX users_name ON users (display_name COLLATE NOCASE, uuid)"
               " WHERE deleted = 0")
    db.execute("CREATE INDEX users_role_name ON users (role, display_name COLLATE NOCASE, uuid)"
               " WHERE deleted = 0")
    # The organisation's choices about learners' own page (NULL: not allowed): whether they may
    # edit their own profile, and change their own PIN or pictures. Organisation fields sync,
    # so every box of the organisation follows them.
    db.execute("ALTER TABLE organisations ADD COLUMN learners_edit_profile INTEGER")
    db.execute("ALTER TABLE organisations ADD COLUMN learners_change_secret INTEGER")


@MIGRATIONS()
def m0023_guest_days(db: Database) -> None:
    # Drop-in use ("just look around", nobody signed in), for the impact report: page views and
    # time per UTC day, visitor and pack. A visitor is a random id of one day, made by the
    # browser's session (learning/guests.py): nothing names a person, and nothing links one
    # day's visit to another's. The views travel as "guest" events in the log, so every box
    # and the hub add up the same rows; a trigger folds them, as activity_days is kept.
    db.execute("""
        CREATE TABLE guest_days (
            day TEXT NOT NULL,
            guest TEXT NOT NULL,
            pack_id TEXT NOT NULL,
            views INTEGER NOT NULL,
            seconds INTEGER NOT NULL,
            PRIMARY KEY (day, guest, pack_id)
        ) WITHOUT ROWID
    """)
    # The day the box's clock gave the view, else its version's (the same but for a clock set back).
    day = ("coalesce(date(json_extract(NEW.payload, '$.day')),"
           " date(CAST(substr(NEW.version, 1, 13) AS INTEGER) / 1000, 'unixepoch'))")
    # Time is that of the page before this one (seen until this one opened), credited to its pack.
    seconds = ("max(0, min(1800, coalesce(CAST(json_extract(NEW.payload, '$.seconds') AS INTEGER),"
               " 0)))")
    db.execute(f"""
        CREATE TRIGGER guest_days_fold AFTER INSERT ON ops
        WHEN NEW.kind = 'event' AND NEW.entity = 'guest'
        BEGIN
            INSERT INTO guest_days (day, guest, pack_id, views, seconds)
            VALUES ({day}, NEW.subject, coalesce(json_extract(NEW.payload, '$.pack_id'), ''), 1, 0)
            ON CONFLICT (day, guest, pack_id) DO UPDATE SET views = views + 1;
            INSERT INTO guest_days (day, guest, pack_id, views, seconds)
            SELECT {day}, NEW.subject, coalesce(json_extract(NEW.payload, '$.seconds_pack_id'), ''),
                   0, {seconds}
            WHERE {seconds} > 0
            ON CONFLICT (day, guest, pack_id) DO UPDATE SET seconds = seconds + excluded.seconds;
        END
    """)


@MIGRATIONS()
def m0024_zim_index_jobs(db: Database) -> None:
    # The indexing of a ZIM without its own full-text index into the box's FTS5 search
    # (server/search/zim_index.py), one row per ZIM: where it stands, so that it resumes
    # after a restart or a power cut. `next_entry` is the first entry number not yet
    # indexed; the articles themselves are in the ZIM's own index file.
    db.execute("""
        CREATE TABLE zim_index_jobs (
            uuid TEXT PRIMARY KEY,
            state TEXT NOT NULL,
            next_entry INTEGER NOT NULL DEFAULT 0,
            entry_count INTEGER NOT NULL DEFAULT 0,
            indexed INTEGER NOT NULL DEFAULT 0,
            unreadable INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            started_at TEXT,
            updated_at TEXT NOT NULL
        )
    """)


@MIGRATIONS()
def m0027_pack_text_jobs(db: Database) -> None:
    # The text of a pack's documents (PDF, EPUB, html5 pages, exercise prompts and hints)
    # joins the search index after the import, in the background
    # (server/search/pack_text.py), one row per pack: `next_entry` is the first node
    # position not yet indexed, so that it resumes after a restart or a power cut.
    db.execute("""
        CREATE TABLE pack_text_jobs (
            pack_id TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            state TEXT NOT NULL,
            next_entry INTEGER NOT NULL DEFAULT 0,
            entry_count INTEGER NOT NULL DEFAULT 0,
            indexed INTEGER NOT NULL DEFAULT 0,
            unreadable INTEGER NOT NULL DEFAULT 0,
            error TEXT,
            started_at TEXT,
            updated_at TEXT NOT NULL
        )
    """)


@MIGRATIONS()
def m0029_summary_years(db: Database) -> None:
    # On PostgreSQL (a hub) the report summaries become partitioned by year (see its variant at
    # the end of this file). SQLite has no partitioning and a box holds a few years of one
    # place's activity: nothing changes here.
    pass


@MIGRATIONS()
def m0030_activity_years(db: Database) -> None:
    # A yearly summary beside the daily and monthly ones (a year, learner and pack), kept by the
    # same fold (records.fold_activity): a report over whole years reads one row per learner
    # and pack and year instead of grouping their months.
    db.execute("""
        CREATE TABLE activity_years (
            year TEXT NOT NULL,
            learner_uuid TEXT NOT NULL,
            pack_id TEXT NOT NULL,
            events INTEGER NOT NULL,
            seconds INTEGER NOT NULL,
            PRIMARY KEY (year, learner_uuid, pack_id)
        ) WITHOUT ROWID
    """)
    # Backfilled from the monthly summary, which already holds every event of the log.
    db.execute("""
        INSERT INTO activity_years (year, learner_uuid, pack_id, events, seconds)
        SELECT substr(month, 1, 4), learner_uuid, pack_id, sum(events), sum(seconds)
        FROM activity_months GROUP BY substr(month, 1, 4), learner_uuid, pack_id
    """)


# --- PostgreSQL ----------------------------------------------------------------------------
# A hub on PostgreSQL runs the same migration functions, their SQLite DDL translated
# (passerelle.server.pg.translate_ddl: types, keys, indexes). A migration written with what
# only SQLite has (a trigger, a backfill through SQLite's JSON or date functions) has a
# PostgreSQL variant here, registered under its name. The migrations before PostgreSQL
# support met an empty database there (a hub is created on PostgreSQL, or moved to it with
# `passerelle db move-to-postgres`, which copies the tables): their variants make the schema,
# with nothing to backfill.

POSTGRES_VARIANTS: dict = {}


def postgres_variant(name: str):
    def register(fn):
        POSTGRES_VARIANTS[name] = fn
        return fn
    return register


def _pg_day_and_seconds(most: int) -> str:
    """PL/pgSQL the PostgreSQL triggers share, with SQLite's rules: ``d`` (when the payload gave
    none that parses) is the UTC day of the operation's version; ``secs`` is the payload's
    ``seconds`` read as SQLite's CAST reads it (a number, or a string's leading integer),
    clamped to 0..``most``."""
    return r"""
            IF d IS NULL THEN
                d := to_char(to_timestamp(substr(NEW.version, 1, 13)::bigint / 1000)
                             AT TIME ZONE 'UTC', 'YYYY-MM-DD');
            END IF;
            IF jsonb_typeof(p -> 'seconds') = 'number' THEN
                secs := greatest(0, least(MOST, trunc((p ->> 'seconds')::numeric)));
            ELSIF jsonb_typeof(p -> 'seconds') = 'string'
                  AND p ->> 'seconds' ~ '^\s*[-+]?[0-9]+' THEN
                secs := greatest(0, least(MOST,
                                 substring(p ->> 'seconds' from '[-+]?[0-9]+')::numeric));
            END IF;
""".replace("MOST", str(most))


@postgres_variant("m0004_report_indexes")
def _pg_report_indexes(db) -> None:
    db.execute("""
        CREATE TABLE activity_days (
            day TEXT NOT NULL,
            learner_uuid TEXT NOT NULL,
            pack_id TEXT NOT NULL,
            events INTEGER NOT NULL,
            seconds INTEGER NOT NULL,
            PRIMARY KEY (day, learner_uuid, pack_id)
        )
    """)
    db.execute("CREATE INDEX progress_completed ON progress (completed_version)"
               " WHERE completed_version IS NOT NULL")
    db.execute("CREATE INDEX class_sessions_date ON class_sessions (date) WHERE deleted = 0")


@postgres_variant("m0010_exercise_state")
def _pg_exercise_state(db) -> None:
    db.execute("ALTER TABLE progress ADD COLUMN recent TEXT")
    db.execute("ALTER TABLE progress ADD COLUMN solved TEXT")


@postgres_variant("m0011_activity_days_by_occurrence")
def _pg_activity_days_by_occurrence(db) -> None:
    # The trigger of m0011 in PL/pgSQL, with SQLite's rules: the event's UTC day of
    # occurred_at (a malformed one falls back to the version's day), seconds clamped to 0..4 h
    # (a number, or the leading integer of a string, as SQLite's CAST takes it).
    db.conn.raw.execute(r"""
        CREATE FUNCTION activity_days_fold() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            p jsonb := NEW.payload::jsonb;
            d text;
            secs bigint := 0;
        BEGIN
            IF p ->> 'occurred_at' IS NOT NULL THEN
                BEGIN
                    d := to_char((p ->> 'occurred_at')::timestamptz AT TIME ZONE 'UTC', 'YYYY-MM-DD');
                EXCEPTION WHEN others THEN
                    d := NULL;
                END;
            END IF;
""" + _pg_day_and_seconds(14400) + r"""
            INSERT INTO activity_days (day, learner_uuid, pack_id, events, seconds)
            VALUES (d, NEW.subject, coalesce(p ->> 'pack_id', ''), 1, secs)
            ON CONFLICT (day, learner_uuid, pack_id) DO UPDATE
            SET events = activity_days.events + 1, seconds = activity_days.seconds + excluded.seconds;
            RETURN NULL;
        END $$
    """)
    db.conn.raw.execute("""
        CREATE TRIGGER activity_days_fold AFTER INSERT ON ops FOR EACH ROW
        WHEN (NEW.kind = 'event' AND NEW.entity = 'progress')
        EXECUTE FUNCTION activity_days_fold()
    """)


@postgres_variant("m0012_missed_questions")
def _pg_missed_questions(db) -> None:
    db.execute("""
        CREATE TABLE missed_questions (
            learner_uuid TEXT NOT NULL,
            pack_id TEXT NOT NULL,
            node_id TEXT NOT NULL,
            question_id TEXT NOT NULL,
            wrong INTEGER NOT NULL,
            seen_values TEXT,
            seen_version TEXT,
            PRIMARY KEY (learner_uuid, pack_id, node_id, question_id)
        )
    """)


@postgres_variant("m0023_guest_days")
def _pg_guest_days(db) -> None:
    # The table as on SQLite; its trigger in PL/pgSQL with the same rules: the day the box's
    # clock gave the view (a malformed one falls back to the version's day), the time of the
    # page before clamped to 0..30 minutes and credited to that page's pack.
    db.execute("""
        CREATE TABLE guest_days (
            day TEXT NOT NULL,
            guest TEXT NOT NULL,
            pack_id TEXT NOT NULL,
            views INTEGER NOT NULL,
            seconds INTEGER NOT NULL,
            PRIMARY KEY (day, guest, pack_id)
        ) WITHOUT ROWID
    """)
    db.conn.raw.execute(r"""
        CREATE FUNCTION guest_days_fold() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            p jsonb := NEW.payload::jsonb;
            d text;
            secs bigint := 0;
        BEGIN
            BEGIN
                d := to_char((p ->> 'day')::date, 'YYYY-MM-DD');
            EXCEPTION WHEN others THEN
                d := NULL;
            END;
""" + _pg_day_and_seconds(1800) + r"""
            INSERT INTO guest_days (day, guest, pack_id, views, seconds)
            VALUES (d, NEW.subject, coalesce(p ->> 'pack_id', ''), 1, 0)
            ON CONFLICT (day, guest, pack_id) DO UPDATE SET views = guest_days.views + 1;
            IF secs > 0 THEN
                INSERT INTO guest_days (day, guest, pack_id, views, seconds)
                VALUES (d, NEW.subject, coalesce(p ->> 'seconds_pack_id', ''), 0, secs)
                ON CONFLICT (day, guest, pack_id) DO UPDATE
                SET seconds = guest_days.seconds + excluded.seconds;
            END IF;
            RETURN NULL;
        END $$
    """)
    db.conn.raw.execute("""
        CREATE TRIGGER guest_days_fold AFTER INSERT ON ops FOR EACH ROW
        WHEN (NEW.kind = 'event' AND NEW.entity = 'guest')
        EXECUTE FUNCTION guest_days_fold()
    """)


@postgres_variant("m0029_summary_years")
def _pg_summary_years(db) -> None:
    # The report summaries partitioned by year (range of their day or month text: '2025' <=
    # '2025-03-01' < '2026' in bytewise order): a report over a year reads that year's
    # partition only, and a year no longer wanted goes with DROP TABLE instead of a DELETE of
    # millions of rows. A DEFAULT partition takes any row whose year has none yet, so the fold
    # never fails for want of one; partitions.ensure_summary_years makes the coming years' at
    # each start of the hub.
    from passerelle.server import partitions

    raw = db.conn.raw
    # The two summaries there were then (the later ones are made partitioned by their own
    # migrations).
    for table, key in (("activity_days", "day"), ("activity_months", "month")):
        raw.execute(f"ALTER TABLE {table} RENAME TO {table}_unpartitioned")
        raw.execute(f"ALTER INDEX {table}_pkey RENAME TO {table}_unpartitioned_pkey")
        raw.execute(f"""
            CREATE TABLE {table} (
                {key} TEXT COLLATE "C" NOT NULL,
                learner_uuid TEXT COLLATE "C" NOT NULL,
                pack_id TEXT COLLATE "C" NOT NULL,
                events BIGINT NOT NULL,
                seconds BIGINT NOT NULL,
                PRIMARY KEY ({key}, learner_uuid, pack_id)
            ) PARTITION BY RANGE ({key})
        """)
        raw.execute(f"CREATE TABLE {table}_other PARTITION OF {table} DEFAULT")
        years = {int(r[0]) for r in raw.execute(
            f"SELECT DISTINCT substr({key}, 1, 4) FROM {table}_unpartitioned"
            f" WHERE {key} ~ '^[0-9]{{4}}'")}
        for year in sorted(years):
            partitions.add_year(db, table, year)
        raw.execute(f"INSERT INTO {table} SELECT * FROM {table}_unpartitioned")
        raw.execute(f"DROP TABLE {table}_unpartitioned")
    partitions.ensure_summary_years(db)


@postgres_variant("m0030_activity_years")
def _pg_activity_years(db) -> None:
    # The yearly summary partitioned by year from the start, as the others are (m0029), then
    # backfilled from the monthly one.
    from passerelle.server import partitions

    raw = db.conn.raw
    raw.execute("""
        CREATE TABLE activity_years (
            year TEXT COLLATE "C" NOT NULL,
            learner_uuid TEXT COLLATE "C" NOT NULL,
            pack_id TEXT COLLATE "C" NOT NULL,
            events BIGINT NOT NULL,
            seconds BIGINT NOT NULL,
            PRIMARY KEY (year, learner_uuid, pack_id)
        ) PARTITION BY RANGE (year)
    """)
    raw.execute("CREATE TABLE activity_years_other PARTITION OF activity_years DEFAULT")
    years = {int(r[0]) for r in raw.execute(
        "SELECT DISTINCT substr(month, 1, 4) FROM activity_months WHERE month ~ '^[0-9]{4}'")}
    for year in sorted(years):
        partitions.add_year(db, "activity_years", year)
    raw.execute("""
        INSERT INTO activity_years (year, learner_uuid, pack_id, events, seconds)
        SELECT substr(month, 1, 4), learner_uuid, pack_id, sum(events), sum(seconds)
        FROM activity_months GROUP BY substr(month, 1, 4), learner_uuid, pack_id
    """)
    partitions.ensure_summary_years(db)
