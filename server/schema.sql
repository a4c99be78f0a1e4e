-- Generated from the migrations by `make docs`; do not edit by hand.

CREATE TRIGGER guest_days_fold AFTER INSERT ON ops
        WHEN NEW.kind = 'event' AND NEW.entity = 'guest'
        BEGIN
            INSERT INTO guest_days (day, guest, pack_id, views, seconds)
            VALUES (coalesce(date(json_extract(NEW.payload, '$.day')), date(CAST(substr(NEW.version, 1, 13) AS INTEGER) / 1000, 'unixepoch')), NEW.subject, coalesce(json_extract(NEW.payload, '$.pack_id'), ''), 1, 0)
            ON CONFLICT (day, guest, pack_id) DO UPDATE SET views = views + 1;
            INSERT INTO guest_days (day, guest, pack_id, views, seconds)
            SELECT coalesce(date(json_extract(NEW.payload, '$.day')), date(CAST(substr(NEW.version, 1, 13) AS INTEGER) / 1000, 'unixepoch')), NEW.subject, coalesce(json_extract(NEW.payload, '$.seconds_pack_id'), ''),
                   0, max(0, min(1800, coalesce(CAST(json_extract(NEW.payload, '$.seconds') AS INTEGER), 0)))
            WHERE max(0, min(1800, coalesce(CAST(json_extract(NEW.payload, '$.seconds') AS INTEGER), 0))) > 0
            ON CONFLICT (day, guest, pack_id) DO UPDATE SET seconds = seconds + excluded.seconds;
        END;

CREATE TABLE "_sqlite_migrations" (
   "id" INTEGER PRIMARY KEY,
   "migration_set" TEXT,
   "name" TEXT,
   "applied_at" TEXT
);

CREATE TABLE activity_days (
            day TEXT NOT NULL,
            learner_uuid TEXT NOT NULL,
            pack_id TEXT NOT NULL,
            events INTEGER NOT NULL,
            seconds INTEGER NOT NULL,
            PRIMARY KEY (day, learner_uuid, pack_id)
        ) WITHOUT ROWID;

CREATE TABLE activity_months (
            month TEXT NOT NULL,
            learner_uuid TEXT NOT NULL,
            pack_id TEXT NOT NULL,
            events INTEGER NOT NULL,
            seconds INTEGER NOT NULL,
            PRIMARY KEY (month, learner_uuid, pack_id)
        ) WITHOUT ROWID;

CREATE TABLE activity_years (
            year TEXT NOT NULL,
            learner_uuid TEXT NOT NULL,
            pack_id TEXT NOT NULL,
            events INTEGER NOT NULL,
            seconds INTEGER NOT NULL,
            PRIMARY KEY (year, learner_uuid, pack_id)
        ) WITHOUT ROWID;

CREATE TABLE assignments (uuid TEXT PRIMARY KEY, version TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, lesson_uuid TEXT, class_uuid TEXT,
                   target TEXT, open INTEGER, created_by TEXT, created_at TEXT);

CREATE TABLE attendance (uuid TEXT PRIMARY KEY, version TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, session_uuid TEXT, learner_uuid TEXT, present INTEGER);

CREATE TABLE bookmarks (uuid TEXT PRIMARY KEY, version TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, learner_uuid TEXT, pack_id TEXT,
                   node_id TEXT, created_at TEXT);

CREATE TABLE class_sessions (uuid TEXT PRIMARY KEY, version TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,
            class_uuid TEXT, date TEXT, place TEXT, partner TEXT, topic TEXT,
            opened_by TEXT, closed INTEGER);

CREATE TABLE classes (uuid TEXT PRIMARY KEY, version TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, name TEXT, description TEXT, created_at TEXT, site TEXT);

CREATE TABLE content_blobs (
            sha256 TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            added_at TEXT NOT NULL
        );

CREATE TABLE content_node_files (
            pack_id TEXT NOT NULL,
            node_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            mime TEXT NOT NULL,
            role TEXT NOT NULL,
            lang TEXT,
            PRIMARY KEY (pack_id, node_id, position),
            FOREIGN KEY (pack_id, node_id) REFERENCES content_nodes(pack_id, node_id) ON DELETE CASCADE
        );

CREATE TABLE content_nodes (
            pack_id TEXT NOT NULL REFERENCES content_packs(id) ON DELETE CASCADE,
            node_id TEXT NOT NULL,
            parent_id TEXT,
            kind TEXT NOT NULL,
            title TEXT NOT NULL,
            language TEXT,
            position INTEGER NOT NULL,
            sort_order INTEGER,
            data TEXT NOT NULL,
            PRIMARY KEY (pack_id, node_id)
        );

CREATE TABLE content_packs (
            id TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            title TEXT NOT NULL,
            language TEXT NOT NULL,
            publisher TEXT NOT NULL,
            license TEXT NOT NULL,
            created TEXT NOT NULL,
            manifest BLOB NOT NULL,
            manifest_sha256 TEXT NOT NULL,
            signature BLOB,
            signer TEXT,
            node_count INTEGER NOT NULL,
            total_size INTEGER NOT NULL,
            installed_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );

CREATE TABLE content_zims (
            uuid TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            title TEXT NOT NULL,
            description TEXT NOT NULL,
            language TEXT NOT NULL,
            creator TEXT NOT NULL,
            publisher TEXT NOT NULL,
            date TEXT NOT NULL,
            tags TEXT NOT NULL,
            path TEXT NOT NULL,
            parts INTEGER NOT NULL,
            copied INTEGER NOT NULL DEFAULT 0,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            checksum TEXT NOT NULL,
            verified_at TEXT,
            article_count INTEGER NOT NULL,
            media_count INTEGER NOT NULL,
            main_path TEXT,
            has_fulltext INTEGER NOT NULL,
            has_title_index INTEGER NOT NULL,
            illustration BLOB,
            hidden INTEGER NOT NULL DEFAULT 0,
            added_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );

CREATE TABLE device_history (
            device_id TEXT NOT NULL,
            retired_at TEXT NOT NULL,
            reason TEXT NOT NULL
        );

CREATE TABLE group_members (uuid TEXT PRIMARY KEY, version TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, group_uuid TEXT, learner_uuid TEXT);

CREATE TABLE groups (uuid TEXT PRIMARY KEY, version TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, class_uuid TEXT, name TEXT);

CREATE TABLE guest_days (
            day TEXT NOT NULL,
            guest TEXT NOT NULL,
            pack_id TEXT NOT NULL,
            views INTEGER NOT NULL,
            seconds INTEGER NOT NULL,
            PRIMARY KEY (day, guest, pack_id)
        ) WITHOUT ROWID;

CREATE TABLE heads (
            origin TEXT PRIMARY KEY,
            max_seq INTEGER NOT NULL
        ) WITHOUT ROWID;

CREATE TABLE lessons (uuid TEXT PRIMARY KEY, version TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, title TEXT, description TEXT, items TEXT,
                   created_by TEXT, created_at TEXT);

CREATE TABLE memberships (uuid TEXT PRIMARY KEY, version TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, class_uuid TEXT, user_uuid TEXT, role TEXT);

CREATE TABLE meta (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );

CREATE TABLE missed_questions (
            learner_uuid TEXT NOT NULL,
            pack_id TEXT NOT NULL,
            node_id TEXT NOT NULL,
            question_id TEXT NOT NULL,
            wrong INTEGER NOT NULL,
            seen_values TEXT,
            seen_version TEXT,
            PRIMARY KEY (learner_uuid, pack_id, node_id, question_id)
        ) WITHOUT ROWID;

CREATE TABLE op_signatures (
            origin TEXT NOT NULL,
            seq INTEGER NOT NULL,
            signature BLOB NOT NULL,
            PRIMARY KEY (origin, seq)
        ) WITHOUT ROWID;

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
        ) WITHOUT ROWID;

CREATE TABLE organisations (uuid TEXT PRIMARY KEY, version TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,
            name TEXT, languages TEXT, signin_mode TEXT, profile_fields TEXT, encrypt_bundles INTEGER, learners_edit_profile INTEGER, learners_change_secret INTEGER);

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
        );

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
            last_version TEXT NOT NULL, recent TEXT, solved TEXT,
            PRIMARY KEY (learner_uuid, pack_id, node_id)
        ) WITHOUT ROWID;

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
        ) WITHOUT ROWID;

CREATE TABLE quiz_runs (uuid TEXT PRIMARY KEY, version TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, quiz_uuid TEXT, title TEXT, sections TEXT,
                   shuffle INTEGER, attempts INTEGER, class_uuid TEXT, target TEXT, open INTEGER,
                   created_by TEXT, created_at TEXT);

CREATE TABLE quizzes (uuid TEXT PRIMARY KEY, version TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, title TEXT, sections TEXT, shuffle INTEGER,
                   created_by TEXT, created_at TEXT);

CREATE TABLE signin_failures (
            key TEXT NOT NULL,
            at REAL NOT NULL
        );

CREATE TABLE signins (
            id TEXT PRIMARY KEY,
            user_uuid TEXT NOT NULL,
            stamp TEXT NOT NULL,
            started_at REAL NOT NULL
        ) WITHOUT ROWID;

CREATE TABLE sites (uuid TEXT PRIMARY KEY, version TEXT NOT NULL,
                            deleted INTEGER NOT NULL DEFAULT 0, name TEXT);

CREATE TABLE sync_devices (
            device_id TEXT PRIMARY KEY,
            public_key TEXT NOT NULL,
            organisation TEXT,
            label TEXT,
            paired_at TEXT NOT NULL,
            revoked_at TEXT
        , vouched_by TEXT, anchor INTEGER NOT NULL DEFAULT 0, site TEXT);

CREATE TABLE "sync_log" (
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
        );

CREATE TABLE sync_nonces (
            nonce TEXT PRIMARY KEY,
            expires_ms INTEGER NOT NULL
        );

CREATE TABLE sync_pair_codes (
            key BLOB PRIMARY KEY,
            created_at TEXT NOT NULL,
            expires_ms INTEGER NOT NULL,
            failures INTEGER NOT NULL DEFAULT 0,
            used_at TEXT,
            used_by TEXT
        );

CREATE TABLE sync_peers (
            device_id TEXT PRIMARY KEY,
            vector TEXT NOT NULL,
            seen_at TEXT NOT NULL
        , url TEXT, last_ok_at TEXT, last_error TEXT, last_error_at TEXT, version TEXT, devices_version TEXT);

CREATE TABLE users (uuid TEXT PRIMARY KEY, version TEXT NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,
            role TEXT, display_name TEXT, username TEXT, password_hash TEXT, pin_hash TEXT,
            picture_hash TEXT, avatar TEXT, language TEXT, profile TEXT, consent TEXT,
            created_at TEXT, site TEXT);

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
        );

CREATE INDEX assignments_class ON assignments (class_uuid) WHERE deleted = 0;

CREATE INDEX attendance_learner ON attendance (learner_uuid);

CREATE INDEX attendance_session ON attendance (session_uuid);

CREATE INDEX bookmarks_learner ON bookmarks (learner_uuid, created_at) WHERE deleted = 0;

CREATE INDEX class_sessions_class ON class_sessions (class_uuid, date);

CREATE INDEX class_sessions_date ON class_sessions (date) WHERE deleted = 0;

CREATE INDEX classes_site ON classes (site) WHERE site IS NOT NULL;

CREATE INDEX content_node_files_sha256 ON content_node_files (sha256);

CREATE INDEX content_nodes_parent ON content_nodes (pack_id, parent_id);

CREATE INDEX group_members_group ON group_members (group_uuid) WHERE deleted = 0;

CREATE INDEX groups_class ON groups (class_uuid) WHERE deleted = 0;

CREATE UNIQUE INDEX "idx__sqlite_migrations_migration_set_name"
    ON "_sqlite_migrations" ("migration_set", "name");

CREATE INDEX memberships_class ON memberships (class_uuid) WHERE deleted = 0;

CREATE INDEX memberships_user ON memberships (user_uuid) WHERE deleted = 0;

CREATE INDEX ops_event_id ON ops (event_id) WHERE event_id IS NOT NULL;

CREATE INDEX ops_subject ON ops (entity, subject, version);

CREATE INDEX progress_completed ON progress (completed_version) WHERE completed_version IS NOT NULL;

CREATE INDEX progress_node ON progress (pack_id, node_id);

CREATE INDEX quiz_runs_class ON quiz_runs (class_uuid) WHERE deleted = 0;

CREATE INDEX signin_failures_key ON signin_failures (key, at);

CREATE INDEX signins_started ON signins (started_at);

CREATE INDEX signins_user ON signins (user_uuid);

CREATE INDEX sync_log_at ON sync_log (at);

CREATE INDEX sync_nonces_expires ON sync_nonces (expires_ms);

CREATE INDEX users_name ON users (display_name COLLATE NOCASE, uuid) WHERE deleted = 0;

CREATE INDEX users_role ON users (role, display_name) WHERE deleted = 0;

CREATE INDEX users_role_name ON users (role, display_name COLLATE NOCASE, uuid) WHERE deleted = 0;

CREATE INDEX users_site ON users (site) WHERE site IS NOT NULL;

CREATE INDEX users_username ON users (username) WHERE deleted = 0;
