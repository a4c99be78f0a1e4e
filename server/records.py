"""The operation log: everything that may leave the box, as append-only operations.

Every change to data that syncs (people, classes, memberships, sessions,
attendance, progress, bookmarks...) is written as an *operation* in ``ops``, identified by
``(origin device id, sequence number)``, and then *folded* into the tables the
pages read. The fold is deterministic, so applying the same set of operations
in any order, any number of times, yields the same tables. The sync issue
exchanges these operations between boxes; nothing else needs to travel.

Three kinds of operation:

- ``put``: the full new state of a mutable record (a user, a class...). The
  record keeps the state of the operation with the highest version — a hybrid
  logical clock string followed by the device id, so the order is total and a
  box whose clock is wrong by days still orders its own writes correctly.
  The versions that lose stay in the log: :func:`history` lists them, so
  nothing is silently dropped.
- ``delete``: a tombstone, versioned like a put (a delete older than a later
  put loses).
- ``event``: an append-only learning event (progress). Events are merged into
  ``progress`` by commutative rules: maximum progress, sum of time spent,
  counts of answers, completed once any completion exists.

Writes go through :func:`write_tx`, a ``BEGIN IMMEDIATE`` transaction: under
WAL a deferred transaction that later tries to write fails at once with
SQLITE_BUSY when another writer got there first, which would lose a
learner's answer under load; an immediate one waits its turn.

A hub on PostgreSQL has many writers at once, so every write here is correct
without SQLite's single writer: an origin's next sequence number is taken
under a lock on its row of ``heads`` (held to the commit), the fold of a put
is one conditional upsert (the higher version wins inside the database, not
in a read-then-write), and the clock row is locked only by a writer that
needs it, last.

Tablets' progress batches go through :class:`GroupCommit`: the batches of
requests that arrive while one is being written wait, and are then written
together in one transaction (one lock, one fsync), each request answered
only once that transaction is committed.
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlite_utils
from passerelle.server import dialect
from passerelle.server.learning import mastery

# Tables that hold mutable, syncing records, and the columns of each that a put
# may set (besides uuid, version and deleted). Anything else in a payload is
# kept in the op but not in the table, so a newer box can add fields.
ENTITIES: dict[str, tuple[str, ...]] = {
    "organisation": ("name", "languages", "signin_mode", "profile_fields", "encrypt_bundles",
                     "learners_edit_profile", "learners_change_secret"),
    "user": ("role", "display_name", "username", "password_hash", "pin_hash",
             "picture_hash", "avatar", "language", "profile", "consent", "created_at", "site"),
    "class": ("name", "description", "created_at", "site"),
    "membership": ("class_uuid", "user_uuid", "role"),
    "class_session": ("class_uuid", "date", "place", "partner", "topic", "opened_by",
                      "closed"),
    "attendance": ("session_uuid", "learner_uuid", "present"),
    "group": ("class_uuid", "name"),
    "group_member": ("group_uuid", "learner_uuid"),
    "lesson": ("title", "description", "items", "created_by", "created_at"),
    "assignment": ("lesson_uuid", "class_uuid", "target", "open", "created_by", "created_at"),
    "bookmark": ("learner_uuid", "pack_id", "node_id", "created_at"),
    "quiz": ("title", "sections", "shuffle", "created_by", "created_at"),
    "quiz_run": ("quiz_uuid", "title", "sections", "shuffle", "attempts", "class_uuid", "target",
                 "open", "created_by", "created_at"),
    "site": ("name",),
}
TABLES = {"organisation": "organisations", "user": "users", "class": "classes",
          "membership": "memberships", "class_session": "class_sessions",
          "attendance": "attendance", "group": "groups", "group_member": "group_members",
          "lesson": "lessons", "assignment": "assignments",
          "bookmark": "bookmarks", "site": "sites"}
TABLES |= {"quiz": "quizzes", "quiz_run": "quiz_runs"}
JSON_COLUMNS = {"languages", "profile_fields", "profile", "consent", "items", "target"}
JSON_COLUMNS |= {"sections"}


@dataclass(frozen=True)
class Op:
    origin: str
    seq: int
    version: str
    kind: str      # put | delete | event
    entity: str
    subject: str   # the record's uuid, or the learner's uuid for a progress event
    payload: dict
    # The payload as canonical JSON when the caller already holds it (a verified op from sync).
    payload_text: str | None = field(default=None, compare=False, repr=False)

    def row(self) -> tuple:
        text = self.payload_text
        if text is None:
            text = json.dumps(self.payload, separators=(",", ":"), sort_keys=True)
        return (self.origin, self.seq, self.version, self.kind, self.entity, self.subject, text,
                self.payload.get("event_id"))


@contextmanager
def write_tx(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """A write transaction that takes the write lock up front (see the module docstring)."""
    conn = db.conn
    if conn.in_transaction:  # nested: the outer transaction already holds the lock
        yield db
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
        conn.execute("COMMIT")
    except BaseException:
        # Some errors (a full disk, an I/O error) end the transaction themselves, and
        # a failed COMMIT may leave it open: roll back only what is still there.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


# --- Hybrid logical clock ------------------------------------------------------------

def now_iso() -> str:
    """The box's clock as people's records carry it (UTC, to the second)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _format_version(ms: int, counter: int, device: str) -> str:
    # Fixed widths make the string order the clock order.
    return f"{ms:013d}.{counter:05d}.{device}"


def parse_version(version: str) -> tuple[int, int, str]:
    ms, counter, device = version.split(".", 2)
    return int(ms), int(counter), device


def _clock(db) -> tuple[int, int]:
    """The clock row, locked until the commit where rows lock (read it last in a transaction)."""
    row = db.execute("SELECT value FROM meta WHERE key = 'hlc'" + dialect.of(db).for_update
                     ).fetchone()
    return (0, 0) if row is None else tuple(map(int, row[0].split(".")))


def _set_clock(db, ms: int, counter: int) -> None:
    db.execute("INSERT INTO meta (key, value) VALUES ('hlc', ?)"
               " ON CONFLICT (key) DO UPDATE SET value = excluded.value", [f"{ms}.{counter}"])


def next_version(db: sqlite_utils.Database, device: str, now_ms: int | None = None) -> str:
    """A new version, later than every version this box has issued or seen (call in write_tx)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    last_ms, last_counter = _clock(db)
    if now_ms > last_ms:
        ms, counter = now_ms, 0
    else:  # the wall clock went back, or two writes in one millisecond
        ms, counter = last_ms, last_counter + 1
    _set_clock(db, ms, counter)
    return _format_version(ms, counter, device)


def observe_version(db: sqlite_utils.Database, version: str) -> None:
    """Move this box's clock past a version received from elsewhere (sync calls this, as the
    last write of its transaction: the clock row is the one every writer shares)."""
    ms, counter, _ = parse_version(version)
    if (ms, counter) > _clock(db):
        _set_clock(db, ms, counter)


# --- Writing operations ------------------------------------------------------------

def device_id(db: sqlite_utils.Database) -> str:
    return db.execute("SELECT value FROM meta WHERE key = 'device_id'").fetchone()[0]


def head(db: sqlite_utils.Database, origin: str, lock: bool = False) -> int:
    """The highest sequence number held of ``origin`` (0: none).

    ``lock`` (in a write transaction) makes the origin's row and locks it until the
    commit, so no other writer numbers or applies that origin's ops meanwhile. Lock
    several origins in sorted order: every writer then takes them in the same order.
    """
    if lock:
        db.execute("INSERT INTO heads (origin, max_seq) VALUES (?, 0) ON CONFLICT DO NOTHING",
                   [origin])
    row = db.execute("SELECT max_seq FROM heads WHERE origin = ?"
                     + (dialect.of(db).for_update if lock else ""), [origin]).fetchone()
    return row[0] if row else 0


def raise_head(db, origin: str, seq: int) -> None:
    d = dialect.of(db)
    db.execute("INSERT INTO heads (origin, max_seq) VALUES (?, ?) ON CONFLICT (origin)"
               f" DO UPDATE SET max_seq = {d.greatest('heads.max_seq', 'excluded.max_seq')}",
               [origin, seq])


def _new_op(db, kind: str, entity: str, subject: str, payload: dict) -> Op:
    origin = device_id(db)
    seq = head(db, origin, lock=True) + 1
    return Op(origin, seq, next_version(db, origin), kind, entity, subject, payload)


def put(db: sqlite_utils.Database, entity: str, uuid: str, fields: dict) -> Op:
    """Write the full new state of a mutable record."""
    if entity not in ENTITIES:
        raise ValueError(f"unknown entity {entity!r}")
    with write_tx(db):
        op = _new_op(db, "put", entity, uuid, fields)
        apply(db, op)
    return op


def put_changes(db: sqlite_utils.Database, entity: str, record: dict, changes: dict) -> Op:
    """Write ``record`` (as loaded) with ``changes``: a put always carries the whole state,
    so a partial update starts from every field the record has now."""
    state = {k: record.get(k) for k in ENTITIES[entity]}
    state.update({k: v for k, v in changes.items() if k in state})
    return put(db, entity, record["uuid"], state)


def delete(db: sqlite_utils.Database, entity: str, uuid: str) -> Op:
    """Leave a tombstone: the record disappears everywhere, its history stays."""
    with write_tx(db):
        op = _new_op(db, "delete", entity, uuid, {})
        apply(db, op)
    return op


def event(db: sqlite_utils.Database, learner_uuid: str, payload: dict,
          entity: str = "progress") -> Op | None:
    """Record a learning event; None when its ``event_id`` was already recorded here.

    ``entity`` "guest" is a visitor's anonymous page view (``learning/guests.py``): its
    subject is a random id of the day, not a person, and it is folded by a trigger.

    Tablets queue events while the box is unreachable and send them again: the
    ``event_id`` they make keeps a resent event from counting twice.
    """
    event_id = payload.get("event_id")
    if event_id and not db.conn.in_transaction and _recorded(db, event_id):
        # Resent (or a page opened again): a read says so without queueing for the write lock.
        return None
    with write_tx(db):
        if event_id and _recorded(db, event_id):
            return None
        op = _new_op(db, "event", entity, learner_uuid, payload)
        apply(db, op)
    return op


def _recorded(db, event_id: str) -> bool:
    return db.execute("SELECT 1 FROM ops WHERE event_id = ?", [event_id]).fetchone() is not None


class WriteFailed(RuntimeError):
    """A group of events could not be committed; none of them was recorded."""


class _Ticket:
    """One request's events waiting in a :class:`GroupCommit`."""

    __slots__ = ("learner", "events", "accepted", "error", "done", "wake")

    def __init__(self, learner: str, events: list[dict]):
        self.learner, self.events = learner, events
        self.accepted = 0
        self.error: BaseException | None = None
        self.done = False
        self.wake = threading.Event()


class GroupCommit:
    """Events of concurrent requests written in one transaction: one write lock, one fsync.

    Every commit waits for the disk (``synchronous = FULL``: the tablet drops
    an event from its queue once the box said 2xx, so an acknowledged event
    must survive a power cut). One transaction per request made a burst of
    answers queue for the lock one fsync at a time. Here the first request
    to arrive writes (it *leads*); the requests arriving meanwhile queue, and
    when the leader's transaction is committed the first of them leads the
    next transaction for all of them. No thread of its own, no delay added:
    a lone request is written at once.

    - :meth:`submit` returns only after the transaction holding the request's
      events is committed; it raises if they were not.
    - Each request's events are written inside a savepoint: a request whose
      events fail is rolled back alone and gets its error, the others of the
      transaction are committed. Validate before submitting.
    - ``event_id`` keeps its meaning: a resent event, even in the same
      transaction, is recorded once (:func:`event` checks inside it).
    """

    def __init__(self, max_events: int = 2000):
        self.max_events = max_events  # per transaction; a lone request may exceed it
        self._lock = threading.Lock()
        self._waiting: deque[_Ticket] = deque()
        self._leading = False
        self.transactions = 0  # counters for benchmarks and tests
        self.requests = 0

    def submit(self, db: sqlite_utils.Database, learner_uuid: str, events: list[dict]) -> int:
        """Record ``events`` of one learner, durably; the number that were new (not resent)."""
        ticket = _Ticket(learner_uuid, events)
        with self._lock:
            self._waiting.append(ticket)
            lead = not self._leading
            self._leading = True
        if not lead:
            ticket.wake.wait()  # woken when written, or when it is this request's turn to lead
        if not ticket.done:
            self._lead(db)
        if ticket.error is not None:
            if isinstance(ticket.error, WriteFailed):
                raise WriteFailed(str(ticket.error)) from ticket.error.__cause__
            raise ticket.error
        return ticket.accepted

    def _lead(self, db: sqlite_utils.Database) -> None:
        with self._lock:
            batch = [self._waiting.popleft()]
            count = len(batch[0].events)
            while self._waiting and count + len(self._waiting[0].events) <= self.max_events:
                batch.append(self._waiting.popleft())
                count += len(batch[-1].events)
        try:
            self._write(db, batch)
        finally:
            with self._lock:
                self.transactions += 1
                self.requests += len(batch)
                following = self._waiting[0] if self._waiting else None
                if following is None:
                    self._leading = False
            for ticket in batch:
                ticket.done = True
                ticket.wake.set()
            if following is not None:
                following.wake.set()  # not done: it leads the next transaction

    @staticmethod
    def _write(db: sqlite_utils.Database, batch: list[_Ticket]) -> None:
        conn = db.conn
        try:
            with write_tx(db):
                for ticket in batch:
                    conn.execute("SAVEPOINT request")
                    try:
                        ticket.accepted = sum(event(db, ticket.learner, e) is not None
                                              for e in ticket.events)
                    except Exception as exc:
                        if not conn.in_transaction:
                            raise  # SQLite ended the whole transaction: nothing is kept
                        conn.execute("ROLLBACK TO request")
                        ticket.accepted, ticket.error = 0, exc
                    conn.execute("RELEASE request")
        except BaseException as exc:
            failed = WriteFailed(f"the events were not recorded: {exc}")
            failed.__cause__ = exc
            for ticket in batch:
                ticket.accepted, ticket.error = 0, failed
            if not isinstance(exc, Exception):
                raise


# --- Folding operations into tables ---------------------------------------------------

def apply(db: sqlite_utils.Database, op: Op, heads: bool = True) -> bool:
    """Fold one operation into the tables; False when it was already applied (idempotent).

    ``heads=False``: the caller keeps the origin's row of ``heads`` itself (a batch sets it
    once per origin).
    """
    cursor = db.execute(
        "INSERT INTO ops (origin, seq, version, kind, entity, subject, payload, event_id)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", op.row())
    if cursor.rowcount == 0:
        return False
    if heads:
        raise_head(db, op.origin, op.seq)
    if op.kind == "event":
        if op.entity == "progress":  # "guest" views are added up by a trigger (m0023)
            _fold_event(db, op)
    else:
        _fold_record(db, op)
    return True


def apply_many(db: sqlite_utils.Database, ops: list[Op], heads: bool = True) -> list[Op]:
    """Fold many operations, as :func:`apply` one by one would; the ones that were new.

    The same rules, written a table at a time so a hub on PostgreSQL runs a few
    statements per batch instead of several per operation: the log takes the ops in
    one insert that says which were new; the fold's changes are first added up in
    Python, one row per key (the merges are commutative and associative, so merging
    the sum equals merging each event in turn), then written with one upsert per table:
    the newest op of each record, each exercise's summary, the wrong answers per
    question, the day's, the month's and the year's activity. Each exercise's state is read and
    written once for all of its answers.
    """
    new: list[Op] = []
    unique: list[Op] = []
    seen: set[tuple[str, int]] = set()
    for op in ops:
        if (op.origin, op.seq) not in seen:  # the same op twice in a batch folds once
            seen.add((op.origin, op.seq))
            unique.append(op)
    for start in range(0, len(unique), 5000):
        chunk = unique[start:start + 5000]
        inserted = {tuple(r) for r in write_rows(
            db, "ops", _OP_COLUMNS, [op.row() for op in chunk],
            "ON CONFLICT DO NOTHING RETURNING origin, seq")}
        new.extend(op for op in chunk if (op.origin, op.seq) in inserted)
    if heads:
        tops: dict[str, int] = {}
        for op in new:
            tops[op.origin] = max(op.seq, tops.get(op.origin, 0))
        for origin in sorted(tops):
            raise_head(db, origin, tops[origin])
    fold = _Fold()
    for op in new:
        if op.kind == "event":
            if op.entity == "progress":  # "guest" views are added up by a trigger (m0023)
                fold.event(op)
        elif op.entity in TABLES:  # an entity from a newer Passerelle: folded once upgraded
            fold.record(op)
    fold.write(db)
    return new


_OP_COLUMNS = ("origin", "seq", "version", "kind", "entity", "subject", "payload", "event_id")


def write_rows(db, table: str, columns: tuple[str, ...] | list[str], rows: list[tuple],
               tail: str = "", alias: str = "") -> list[tuple]:
    """``INSERT INTO table (columns) <rows> tail`` for many rows; the rows ``tail``'s
    RETURNING gives, if any.

    On PostgreSQL one statement for all the rows (:meth:`dialect.Dialect.rows_source`); on
    SQLite one statement per row (in the process, a statement costs no round trip). An
    upsert's rows must have distinct keys: PostgreSQL refuses to change a row twice in one
    statement.
    """
    if not rows:
        return []
    d = dialect.of(db)
    head = f"INSERT INTO {table}{f' AS {alias}' if alias else ''} ({', '.join(columns)})"
    sql = f"{head} {d.rows_source(table, columns)} {tail}".rstrip()
    returning = "RETURNING" in tail.upper()
    if d.rows_as_json:
        data = json.dumps([dict(zip(columns, row, strict=True)) for row in rows],
                          separators=(",", ":"), default=_bytea)
        cursor = db.execute(sql, [data])
        return cursor.fetchall() if returning else []
    if not returning:
        db.conn.executemany(sql, rows)
        return []
    return [r for row in rows for r in db.execute(sql, row).fetchall()]


def _bytea(value):
    if isinstance(value, bytes):
        return "\\x" + value.hex()  # bytea's text form
    raise TypeError(f"{type(value).__name__} is not a column value")


def _text(value) -> str | None:
    """A value bound to a TEXT key column, as SQLite stores it: keys that SQLite would store
    alike are added up as one row."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class _Fold:
    """A batch's changes to the folded tables, added up per key before they are written."""

    def __init__(self):
        self.records: dict[str, dict[str, Op]] = {}
        self.progress: dict[tuple, list] = {}
        self.missed: dict[tuple, list] = {}
        self.activity: dict[tuple, list] = {}
        self.answers: dict[tuple, list[Op]] = {}
        self.quiz: list[Op] = []

    def record(self, op: Op) -> None:
        # Only the newest version of a record in the batch can win: the others would lose to it.
        newest = self.records.setdefault(TABLES[op.entity], {})
        held = newest.get(op.subject)
        if held is None or held.version < op.version:
            newest[op.subject] = op

    def event(self, op: Op) -> None:
        """What :func:`_fold_event` does for one event, added to the batch's sums."""
        p = op.payload
        progress, completed, answered, correct, seconds = event_counts(op)
        day, pack = activity_day(op), p.get("pack_id")
        day_key = (day, op.subject, "" if pack is None else str(pack))
        row = self.activity.get(day_key)
        if row is None:
            self.activity[day_key] = [1, seconds]
        else:
            row[0] += 1
            row[1] += seconds
        if p.get("quiz"):
            self.quiz.append(op)
            return
        key = (op.subject, _text(pack), _text(p.get("node_id")))
        position = p.get("position")
        position_version = op.version if position is not None else None
        row = self.progress.get(key)
        if row is None:
            self.progress[key] = [progress, completed, seconds, answered, correct,
                                  _text(position), position_version, op.version, op.version]
        else:
            row[0] = max(row[0], progress)
            if completed is not None and (row[1] is None or completed < row[1]):
                row[1] = completed
            row[2] += seconds
            row[3] += answered
            row[4] += correct
            if position is not None and (row[6] is None or op.version > row[6]):
                row[5], row[6] = _text(position), op.version
            row[7] = min(row[7], op.version)
            row[8] = max(row[8], op.version)
        if p.get("type") == "answer":
            self.answers.setdefault(key, []).append(op)
            missed = missed_question(p)
            if missed is not None:
                values = p.get("values")
                seen = (json.dumps(values, sort_keys=True, separators=(",", ":"))
                        if values else None)
                seen_version = op.version if seen else None
                wrong = self.missed.get((*key, missed))
                if wrong is None:
                    self.missed[(*key, missed)] = [1, seen, seen_version]
                else:
                    wrong[0] += 1
                    if seen is not None and (wrong[2] is None or seen_version > wrong[2]):
                        wrong[1], wrong[2] = seen, seen_version

    def write(self, db) -> None:
        for table, newest in self.records.items():
            _write_records(db, table, list(newest.values()))
        write_rows(db, "progress", _PROGRESS_COLUMNS,
                   [(*key, *row) for key, row in self.progress.items()],
                   _PROGRESS_MERGE, alias="t")
        for op in self.quiz:  # rare (an assessed answer each): as one by one
            _fold_quiz_answer(db, op)
        write_rows(db, "missed_questions", _MISSED_COLUMNS,
                   [(*key, *row) for key, row in self.missed.items()], _MISSED_MERGE, alias="t")
        months: dict[tuple, list] = {}
        years: dict[tuple, list] = {}
        for (day, learner, pack), (events, seconds) in self.activity.items():
            for sums in (months.setdefault((day[:7], learner, pack), [0, 0]),
                         years.setdefault((day[:4], learner, pack), [0, 0])):
                sums[0] += events
                sums[1] += seconds
        for table, key, rows in (("activity_days", "day", self.activity),
                                 ("activity_months", "month", months),
                                 ("activity_years", "year", years)):
            write_rows(db, table, (key, "learner_uuid", "pack_id", "events", "seconds"),
                       [(*k, *v) for k, v in rows.items()],
                       f"ON CONFLICT ({key}, learner_uuid, pack_id) DO UPDATE SET"
                       f" events = t.events + excluded.events,"
                       f" seconds = t.seconds + excluded.seconds", alias="t")
        _write_answer_states(db, self.answers)


def _write_records(db, table: str, ops: list[Op]) -> None:
    """The newest op of each record, in one statement: the row keeps the higher version even
    when two writers fold puts of one record at once (a lower one stays in the log as
    history). Versions compare bytewise on both engines."""
    columns = ENTITIES[ops[0].entity]
    names = ["uuid", "version", "deleted", *columns]
    write_rows(db, table, names, [_record_row(op, columns) for op in ops],
               f"ON CONFLICT (uuid) DO UPDATE SET"
               f" {', '.join(f'{n} = excluded.{n}' for n in names[1:])}"
               f" WHERE {table}.version < excluded.version")


def _write_answer_states(db, answers: dict[tuple, list[Op]]) -> None:
    """Each exercise's state read once, merged with the batch's answers, written once (after
    the upsert of its summary, whose row lock keeps a concurrent writer of the same exercise
    waiting until this transaction ends)."""
    keys = list(answers)
    as_json = dialect.of(db).rows_as_json
    for start in range(0, len(keys), 5000 if as_json else 300):
        chunk = keys[start:start + (5000 if as_json else 300)]
        if as_json:  # one parameter (a long list of placeholders costs psycopg more to parse)
            rows = db.execute(
                "SELECT learner_uuid, pack_id, node_id, recent, solved FROM progress WHERE"
                " (learner_uuid, pack_id, node_id) IN (SELECT learner_uuid, pack_id, node_id"
                " FROM json_populate_recordset(NULL::progress, ?))",
                [json.dumps([dict(zip(_PROGRESS_COLUMNS[:3], key, strict=True))
                             for key in chunk])]).fetchall()
        else:
            rows = db.execute(
                "SELECT learner_uuid, pack_id, node_id, recent, solved FROM progress WHERE"
                " (learner_uuid, pack_id, node_id) IN"
                f" (VALUES {', '.join(['(?, ?, ?)'] * len(chunk))})",
                [v for key in chunk for v in key]).fetchall()
        state = {tuple(r[:3]): (json.loads(r[3] or "[]"), json.loads(r[4] or "[]")) for r in rows}
        updates = []
        for key in chunk:
            recent, solved = state.get(key, ([], []))
            for op in answers[key]:
                recent, solved = _merge_answer(recent, solved, op)
            updates.append((*key, json.dumps(recent, separators=(",", ":")),
                            json.dumps(solved, separators=(",", ":"))))
        # An upsert whose rows all exist (their summaries were just written): one statement.
        write_rows(db, "progress", (*_PROGRESS_COLUMNS[:3], "recent", "solved",
                                    "first_version", "last_version"),
                   [(*u, "", "") for u in updates],
                   "ON CONFLICT (learner_uuid, pack_id, node_id) DO UPDATE SET"
                   " recent = excluded.recent, solved = excluded.solved")


_PROGRESS_COLUMNS = ("learner_uuid", "pack_id", "node_id", "progress", "completed_version",
                     "seconds", "answers", "correct", "position", "position_version",
                     "first_version", "last_version")
# The merge of an event into its exercise's summary (and of a batch's sums: the same rules).
# position: the latest one by version wins (resume where the learner last was).
_PROGRESS_MERGE = """
        ON CONFLICT (learner_uuid, pack_id, node_id) DO UPDATE SET
            progress = max(t.progress, excluded.progress),
            completed_version = CASE
                WHEN t.completed_version IS NULL THEN excluded.completed_version
                WHEN excluded.completed_version IS NULL THEN t.completed_version
                ELSE min(t.completed_version, excluded.completed_version) END,
            seconds = t.seconds + excluded.seconds,
            answers = t.answers + excluded.answers,
            correct = t.correct + excluded.correct,
            position = CASE WHEN excluded.position IS NOT NULL
                             AND (t.position_version IS NULL OR excluded.position_version > t.position_version)
                            THEN excluded.position ELSE t.position END,
            position_version = CASE WHEN excluded.position IS NOT NULL
                             AND (t.position_version IS NULL OR excluded.position_version > t.position_version)
                            THEN excluded.position_version ELSE t.position_version END,
            first_version = min(t.first_version, excluded.first_version),
            last_version = max(t.last_version, excluded.last_version)
"""
_MISSED_COLUMNS = ("learner_uuid", "pack_id", "node_id", "question_id", "wrong", "seen_values",
                   "seen_version")
# The numbers a generated question showed, from the latest wrong answer by version (the same
# whatever order the answers arrive in), so the report shows what learners saw.
_MISSED_MERGE = (
    "ON CONFLICT (learner_uuid, pack_id, node_id, question_id) DO UPDATE SET"
    " wrong = t.wrong + excluded.wrong,"
    " seen_values = CASE WHEN excluded.seen_values IS NOT NULL AND (t.seen_version IS NULL"
    "   OR excluded.seen_version > t.seen_version) THEN excluded.seen_values ELSE t.seen_values END,"
    " seen_version = CASE WHEN excluded.seen_values IS NOT NULL AND (t.seen_version IS NULL"
    "   OR excluded.seen_version > t.seen_version) THEN excluded.seen_version ELSE t.seen_version END")


def _fold_record(db, op: Op) -> None:
    if op.entity in TABLES:  # an entity from a newer Passerelle: kept in the log, folded once upgraded
        _write_records(db, TABLES[op.entity], [op])


def _record_row(op: Op, columns: tuple[str, ...]) -> tuple:
    values = {c: None for c in columns}
    if op.kind == "put":
        for c in columns:
            if c in op.payload:
                value = op.payload[c]
                # sort_keys: the op travels as canonical JSON, so every box folds the same text
                if c in JSON_COLUMNS and value is not None:
                    value = json.dumps(value, sort_keys=True)
                elif isinstance(value, bool):
                    value = int(value)  # as SQLite stores it, and an INTEGER column takes it
                values[c] = value
    return (op.subject, op.version, 1 if op.kind == "delete" else 0, *(values[c] for c in columns))


def history(db: sqlite_utils.Database, entity: str, uuid: str) -> list[Op]:
    """Every version a record ever had, oldest first, including the ones that lost."""
    rows = db.execute(
        "SELECT origin, seq, version, kind, entity, subject, payload FROM ops"
        " WHERE entity = ? AND subject = ? ORDER BY version", [entity, uuid]).fetchall()
    return [Op(*r[:6], json.loads(r[6])) for r in rows]


# The longest time one event may add (a tablet left open all night adds 4 hours, not 12).
MAX_EVENT_SECONDS = 4 * 3600


def event_counts(op: Op) -> tuple[float, str | None, int, int, int]:
    """What one progress event adds to a summary: (progress, completed version, answers,
    correct, seconds), clamped. The fold below and the accounts benchmark both use it."""
    p = op.payload
    progress = max(0.0, min(1.0, float(p.get("progress") or 0)))
    completed = op.version if p.get("type") == "completed" or progress >= 1.0 else None
    answered = 1 if p.get("type") == "answer" else 0
    correct = 1 if answered and p.get("correct") else 0
    seconds = max(0, min(MAX_EVENT_SECONDS, int(p.get("seconds") or 0)))
    return progress, completed, answered, correct, seconds


def _fold_event(db, op: Op) -> None:
    """Commutative merge of one event into the learner's summaries (as a batch of one)."""
    fold = _Fold()
    fold.event(op)
    fold.write(db)


def activity_day(op: Op) -> str:
    """The UTC day an event counts on in reports: when it happened on the tablet
    (``occurred_at``), else the day of its version."""
    occurred = op.payload.get("occurred_at")
    if isinstance(occurred, str):
        try:
            moment = datetime.fromisoformat(occurred)
        except ValueError:
            moment = None
        if moment is not None:
            if moment.tzinfo is not None:
                moment = moment.astimezone(UTC)
            return moment.date().isoformat()
    return datetime.fromtimestamp(parse_version(op.version)[0] / 1000, UTC).date().isoformat()


def merge_answers(recent: list, solved: list, version: str, correct: bool,
                  question_id: str | None) -> tuple[list, list]:
    """One answer merged into an exercise's stored state: the newest answers by version, and
    the questions ever answered correctly. Commutative: any order of the same answers gives
    the same state, so boxes that sync fold to identical rows."""
    entry = [version, 1 if correct else 0, question_id]
    if entry not in recent:
        bisect.insort(recent, entry, key=lambda e: e[0])
        del recent[:-mastery.MAX_N]  # no rule looks further back than MAX_N answers
    if correct and question_id is not None and question_id not in solved:
        bisect.insort(solved, question_id)
    return recent, solved


def missed_question(payload: dict) -> str | None:
    """The question an answer missed, as ``missed_questions`` keys it ("" when the answer names
    none); None when the answer was not wrong (an answer that does not say is not counted)."""
    correct = payload.get("correct")
    if not isinstance(correct, (bool, int, float)) or correct != 0:
        return None
    question = payload.get("question_id")
    return "" if question is None else str(question)


def _merge_answer(recent: list, solved: list, op: Op) -> tuple[list, list]:
    p = op.payload
    question = p.get("question_id")
    return merge_answers(recent, solved, op.version, bool(p.get("correct")),
                         None if question is None else str(question))


def _fold_quiz_answer(db, op: Op) -> None:
    """One answer of one attempt at a quiz. Two boxes holding an answer for the same place
    (the same attempt made on both while apart) keep the one with the lower version, so every
    box folds the same row whatever order the answers arrive in."""
    p = op.payload
    if not all(isinstance(p.get(k), int) and not isinstance(p.get(k), bool)
               for k in ("attempt", "item")):
        return  # not an answer this box can place (kept in the log all the same)
    values = p.get("values")
    db.execute(
        "INSERT INTO quiz_answers (run_uuid, learner_uuid, attempt, item, pack_id, node_id,"
        " question_id, correct, answer, seen_values, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (run_uuid, learner_uuid, attempt, item) DO UPDATE SET"
        " pack_id = excluded.pack_id, node_id = excluded.node_id,"
        " question_id = excluded.question_id, correct = excluded.correct,"
        " answer = excluded.answer, seen_values = excluded.seen_values, version = excluded.version"
        " WHERE excluded.version < quiz_answers.version",
        [p["quiz"], op.subject, p.get("attempt"), p.get("item"), p.get("pack_id"), p.get("node_id"),
         p.get("question_id"), 1 if p.get("correct") else 0,
         json.dumps(p.get("answer"), separators=(",", ":")),
         json.dumps(values, sort_keys=True, separators=(",", ":")) if values else None, op.version])


def ops_since(db: sqlite_utils.Database, origin: str, after_seq: int, limit: int = 1000) -> list[Op]:
    rows = db.execute(
        "SELECT origin, seq, version, kind, entity, subject, payload FROM ops"
        " WHERE origin = ? AND seq > ? ORDER BY seq LIMIT ?", [origin, after_seq, limit]).fetchall()
    return [Op(*r[:6], json.loads(r[6])) for r in rows]


def version_vector(db: sqlite_utils.Database) -> dict[str, int]:
    """Highest sequence number held per origin device (what sync compares), in one read."""
    return dict(db.execute("SELECT origin, max_seq FROM heads WHERE max_seq > 0").fetchall())


def query(db: sqlite_utils.Database, entity: str, where: str = "", params=(),
          order: str = "", alias: str = "t", join: str = "") -> list[dict[str, Any]]:
    """Live (not deleted) records of one entity, in one query, JSON columns decoded."""
    sql = f"SELECT {alias}.* FROM {TABLES[entity]} {alias} {join} WHERE {alias}.deleted = 0"
    if where:
        sql += f" AND ({where})"
    if order:
        sql += f" ORDER BY {order}"
    cursor = db.execute(sql, list(params))
    names = [d[0] for d in cursor.description]
    return [_decode(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]


def load(db: sqlite_utils.Database, entity: str, uuid: str, include_deleted: bool = False
         ) -> dict[str, Any] | None:
    cursor = db.execute(f"SELECT * FROM {TABLES[entity]} WHERE uuid = ?", [uuid])
    row = cursor.fetchone()
    if row is None:
        return None
    record = _decode(dict(zip([d[0] for d in cursor.description], row, strict=True)))
    if record["deleted"] and not include_deleted:
        return None
    return record


def require(db: sqlite_utils.Database, entity: str, uuid: str, missing: str) -> dict[str, Any]:
    """A live record, or NotFound with the message a person would understand."""
    from passerelle.server.errors import NotFound

    record = load(db, entity, uuid)
    if record is None:
        raise NotFound(missing)
    return record


def _decode(record: dict[str, Any]) -> dict[str, Any]:
    for column in JSON_COLUMNS & record.keys():
        if record[column] is not None:
            record[column] = json.loads(record[column])
    return record


__all__ = ["Op", "write_tx", "put", "put_changes", "delete", "event", "GroupCommit", "WriteFailed", "apply", "load",
           "query", "require", "history", "ops_since", "version_vector", "head", "next_version",
           "observe_version", "parse_version"]
