"""Sites in sync: a box receives its own site's operations and the organisation-wide ones.

The sending side chooses (``changes_for_site``); the receiving box keeps the
per-origin contiguity of its vector with *skips*. See docs/sync.md, "Sites".

- **Which site an operation belongs to** is judged when it is sent, from the
  sender's current tables (:func:`op_sites`): a learner's record, events and
  bookmarks follow the learner's home site; a class and everything hanging off
  it (memberships, sessions, attendance, groups, assignments) follow the
  class's site; the organisation, staff, lessons, sites and anything unknown are
  organisation-wide, as is anything whose site is empty. Because it is judged
  at send time, a learner's whole history follows them when they move.
- **Skips**: a run of an origin's operations that is not the receiver's travels
  as one line ``{"skip": [origin, first, last]}`` instead of the operations. The
  receiver records it as one placeholder row in ``ops`` at ``seq = last``
  (entity ``~skip``, unsigned), so ``max(seq)`` per origin — its vector — means
  "holds every operation up to here that belongs to this box", and the
  contiguity check of ``apply_batch`` works unchanged. Only the box's anchor
  (its hub) is believed about skips; a placeholder has no signature, so a box
  never relays past it (``changes_for`` stops there), and a box of the same site
  completes the rest from the hub.
- **Moves**: when the hub sends a box the put that brings a learner (or a class)
  into its site, it first sends every operation of that learner the box was
  skipped before (below its vector); so does a box sending to a peer of its site
  (:func:`changes_for_peer`), which may hear of the move from it first. They travel as ordinary signed op lines;
  the receiver recognises them as below its vector and absent, and applies them
  without the contiguity check (:func:`apply_received`). The put that takes a
  learner away is sent to the old site's box too, so it knows the learner left.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import sqlite_utils
from passerelle.server import records
from passerelle.server.sync.ops import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_OPS,
    SKIP_ENTITY,
    ApplyResult,
    Batch,
    SignedOp,
    SyncRefused,
    Verifier,
    apply_batch,
    changes_for,
    first_forged,
    make_verifier,
)

ORG_WIDE_ENTITIES = {"organisation", "lesson", "site"}
# Entities that hang off a class, and the payload field naming it.
CLASS_FIELD = {"membership": "class_uuid", "class_session": "class_uuid", "group": "class_uuid",
               "assignment": "class_uuid"}
_CHUNK = 500  # uuids per IN (...) lookup
# Entities whose site is found through a payload field (the others by their subject).
BY_PAYLOAD = {"bookmark", "attendance", "group_member", *CLASS_FIELD}


@dataclass
class SiteBatch(Batch):
    """A batch for a box of one site: its operations, and the runs of other sites' skipped."""

    skips: list[tuple[str, int, int]] = field(default_factory=list)

    def lines(self) -> bytes:
        skip_lines = "".join(json.dumps({"skip": list(s)}, separators=(",", ":")) + "\n"
                             for s in self.skips)
        return super().lines() + skip_lines.encode()


def parse_lines(lines: Iterable[bytes | str]) -> tuple[list[SignedOp], list[tuple[str, int, int]]]:
    """Op lines and skip lines of a batch (a batch without skips parses as before)."""
    ops: list[SignedOp] = []
    skips: list[tuple[str, int, int]] = []
    for line in lines:
        if not line.strip():
            continue
        if line.lstrip()[:8] in (b'{"skip":', '{"skip":'):
            try:
                origin, first, last = json.loads(line)["skip"]
                if not (isinstance(origin, str) and isinstance(first, int)
                        and isinstance(last, int) and 1 <= first <= last):
                    raise ValueError
            except (ValueError, TypeError, KeyError):
                raise SyncRefused("a batch holds a malformed skip line") from None
            skips.append((origin, first, last))
        else:
            ops.append(SignedOp.from_line(line))
    return ops, skips


# --- Which site an operation belongs to -------------------------------------------------

def _lookup(db, sql: str, keys: set[str]) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    keys = [k for k in keys if isinstance(k, str)]
    for i in range(0, len(keys), _CHUNK):
        chunk = keys[i:i + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        found.update(db.execute(sql.format(marks=marks), chunk).fetchall())
    return found


def op_sites(db: sqlite_utils.Database, rows: list[tuple[str, str, dict]]) -> list[str | None]:
    """The site of each ``(entity, subject, payload)`` as this box's tables say now (None:
    organisation-wide). A few lookups per call, whatever the number of rows."""
    learners, classes, sessions, groups = set(), set(), set(), set()
    for entity, subject, payload in rows:
        if entity in ("user", "progress"):
            learners.add(subject)
        elif entity == "bookmark":
            learners.add(payload.get("learner_uuid"))
        elif entity == "class":
            classes.add(subject)
        elif entity in CLASS_FIELD:
            classes.add(payload.get(CLASS_FIELD[entity]))
        elif entity == "attendance":
            sessions.add(payload.get("session_uuid"))
        elif entity == "group_member":
            groups.add(payload.get("group_uuid"))
    session_class = _lookup(db, "SELECT uuid, class_uuid FROM class_sessions WHERE uuid IN ({marks})",
                            sessions)
    group_class = _lookup(db, "SELECT uuid, class_uuid FROM groups WHERE uuid IN ({marks})", groups)
    classes |= {c for c in (*session_class.values(), *group_class.values()) if c}
    learner_site = _lookup(db, "SELECT uuid, site FROM users WHERE role = 'learner'"
                               " AND uuid IN ({marks})", learners)
    class_site = _lookup(db, "SELECT uuid, site FROM classes WHERE uuid IN ({marks})", classes)
    sites: list[str | None] = []
    for entity, subject, payload in rows:
        if entity in ("user", "progress"):
            site = learner_site.get(subject)
        elif entity == "bookmark":
            site = learner_site.get(payload.get("learner_uuid"))
        elif entity == "class":
            site = class_site.get(subject)
        elif entity in CLASS_FIELD:
            site = class_site.get(payload.get(CLASS_FIELD[entity]))
        elif entity == "attendance":
            site = class_site.get(session_class.get(payload.get("session_uuid")))
        elif entity == "group_member":
            site = class_site.get(group_class.get(payload.get("group_uuid")))
        else:
            site = None
        sites.append(site or None)
    return sites


def _previous_site(db, entity: str, subject: str, version: str) -> tuple[bool, str | None]:
    """(whether there was an earlier put, the site it gave) for a record, before ``version``."""
    row = db.execute("SELECT payload FROM ops WHERE entity = ? AND subject = ? AND version < ?"
                     " AND kind = 'put' ORDER BY version DESC LIMIT 1",
                     [entity, subject, version]).fetchone()
    if row is None:
        return False, None
    return True, json.loads(row[0]).get("site") or None


def _related(db, entity: str, subject: str) -> list[tuple[str, str]]:
    """(entity, subject) of the records that follow a learner or a class to its site."""
    if entity == "user":
        found = [("user", subject), ("progress", subject)]
        found += [("bookmark", u) for (u,) in db.execute(
            "SELECT uuid FROM bookmarks WHERE learner_uuid = ?", [subject])]
        return found
    found = [("class", subject)]
    for child, table in (("membership", "memberships"), ("class_session", "class_sessions"),
                         ("group", "groups"), ("assignment", "assignments")):
        found += [(child, u) for (u,) in db.execute(
            f"SELECT uuid FROM {table} WHERE class_uuid = ?", [subject])]
    found += [("attendance", u) for (u,) in db.execute(
        "SELECT a.uuid FROM attendance a JOIN class_sessions s ON s.uuid = a.session_uuid"
        " WHERE s.class_uuid = ?", [subject])]
    found += [("group_member", u) for (u,) in db.execute(
        "SELECT m.uuid FROM group_members m JOIN groups g ON g.uuid = m.group_uuid"
        " WHERE g.class_uuid = ?", [subject])]
    return found


def _backfill(db, entity: str, subject: str, since: Mapping[str, int]) -> list[SignedOp]:
    """The signed ops of a record and what follows it that a box at ``since`` may have been
    skipped (at or below its vector)."""
    found = []
    for rel_entity, rel_subject in _related(db, entity, subject):
        for origin, seq, version, kind, ent, subj, payload, signature in db.execute(
                "SELECT o.origin, o.seq, o.version, o.kind, o.entity, o.subject, o.payload,"
                " s.signature FROM ops o JOIN op_signatures s ON s.origin = o.origin AND s.seq = o.seq"
                " WHERE o.entity = ? AND o.subject = ?", [rel_entity, rel_subject]):
            if seq <= since.get(origin, 0):
                found.append(SignedOp(origin, seq, version, kind, ent, subj, bytes(signature),
                                      payload_text=payload))
    return sorted(found, key=lambda s: (s.origin, s.seq))


# --- Sending: the ops of one site, skips for the rest -----------------------------------

def changes_for_site(db: sqlite_utils.Database, their_vector: Mapping[str, int] | None,
                     site: str | None, max_ops: int = DEFAULT_MAX_OPS,
                     max_bytes: int = DEFAULT_MAX_BYTES, *, home=None) -> Iterator[Batch]:
    """What a box of ``site`` lacks, as :func:`changes_for`, with other sites' ops as skips.

    ``site`` None (the hub, a box with no site): exactly :func:`changes_for`.
    """
    if site is None:
        yield from changes_for(db, their_vector, max_ops, max_bytes, home=home)
        return
    since = dict(their_vector or {})
    out = SiteBatch([], 0)
    pending: dict[str, list[int]] = {}  # origin → [first, last] of the run being skipped

    def flush(origin: str) -> None:
        run = pending.pop(origin, None)
        if run:
            out.skips.append((origin, run[0], run[1]))
            out.nbytes += 80

    def full() -> bool:
        return len(out.ops) + len(out.skips) >= max_ops or out.nbytes >= max_bytes

    for batch in changes_for(db, their_vector, max_ops, max_bytes, home=home):
        # Only the few entities judged by a payload field have theirs parsed: decoding every
        # learning event's JSON was most of the hub's time choosing a box's operations.
        sites = op_sites(db, [(s.entity, s.subject, s.payload if s.entity in BY_PAYLOAD else {})
                              for s in batch.ops])
        for op, op_site in zip(batch.ops, sites, strict=True):
            keep = op_site is None or op_site == site
            if not keep and op.kind == "put" and op.entity in ("user", "class"):
                # A learner or class leaving this site: the box is told, then hears no more.
                had, before = _previous_site(db, op.entity, op.subject, op.version)
                keep = had and before == site and op.payload.get("site") != site
            if not keep:
                run = pending.get(op.origin)
                if run and run[1] == op.seq - 1:
                    run[1] = op.seq
                else:
                    flush(op.origin)
                    pending[op.origin] = [op.seq, op.seq]
                continue
            for origin in list(pending):
                if origin <= op.origin:
                    flush(origin)
            if (op.kind == "put" and op.entity in ("user", "class")
                    and op.payload.get("site") == site):
                had, before = _previous_site(db, op.entity, op.subject, op.version)
                if had and before != site:  # arriving: what the box was skipped of it first
                    for old in _backfill(db, op.entity, op.subject, since):
                        out.ops.append(old)
                        out.nbytes += len(old.payload_text) + 300
                        if full():
                            yield out
                            out = SiteBatch([], 0)
            out.ops.append(op)
            out.nbytes += len(op.payload_text) + len(op.subject) + 200
            if full():
                yield out
                out = SiteBatch([], 0)
    for origin in list(pending):
        flush(origin)
    if out.ops or out.skips:
        yield out


def changes_for_peer(db: sqlite_utils.Database, their_vector: Mapping[str, int] | None,
                     max_ops: int = DEFAULT_MAX_OPS, max_bytes: int = DEFAULT_MAX_BYTES, *,
                     home=None) -> Iterator[Batch]:
    """What a box of the same site lacks (:func:`changes_for`), from a box: the put that
    brought a learner or a class into the site comes after what the peer may have been
    skipped of it, as from the hub. A peer that heard of the move from this box first would
    otherwise never receive the learner's history: its hub sends that history only with the
    put, which the peer then already holds."""
    since = dict(their_vector or {})
    for batch in changes_for(db, their_vector, max_ops, max_bytes, home=home):
        ops: list[SignedOp] = []
        for op in batch.ops:
            if op.kind == "put" and op.entity in ("user", "class") and op.payload.get("site"):
                had, before = _previous_site(db, op.entity, op.subject, op.version)
                if had and before != op.payload.get("site"):
                    ops.extend(_backfill(db, op.entity, op.subject, since))
            ops.append(op)
        batch.ops = ops
        yield batch


# --- Receiving: skips from the anchor, ops the box was skipped before -------------------

def apply_received(db: sqlite_utils.Database, ops: list[SignedOp], skips: list[tuple[str, int, int]],
                   trusted_keys: Mapping[str, bytes], now_ms: int | None = None, *,
                   revoked: Iterable[str] = (), from_anchor: bool = False) -> ApplyResult:
    """Apply a batch that may hold skips and moved learners' older ops.

    Ops below this box's vector and absent here (a learner who moved in) are verified and
    applied first, outside the contiguity rule; the rest go through :func:`apply_batch`,
    with the skips if the batch comes from this box's hub (else a skip is ignored, and
    what follows it waits as a gap).
    """
    revoked = set(revoked)
    earlier, rest = [], []
    tops: dict[str, int] = {}
    for op in ops:
        if op.origin not in tops:
            tops[op.origin] = db.execute("SELECT coalesce(max(seq), 0) FROM ops WHERE origin = ?",
                                         [op.origin]).fetchone()[0]
        here = db.execute("SELECT entity FROM ops WHERE origin = ? AND seq = ?",
                          [op.origin, op.seq]).fetchone() if op.seq <= tops[op.origin] else ()
        if here is None or here == (SKIP_ENTITY,):
            earlier.append(op)
        else:
            rest.append(op)
    applied = 0
    if earlier:
        verifiers: dict[str, Verifier] = {}
        checked = []
        for op in earlier:
            key = trusted_keys.get(op.origin)
            if key is None or op.origin in revoked:  # as apply_batch: nothing of a revoked device
                continue
            if op.origin not in verifiers:
                verifiers[op.origin] = make_verifier(key)
            checked.append(op)
        forged = first_forged([(op, verifiers[op.origin]) for op in checked])
        if forged is not None:
            raise SyncRefused(f"operation {forged.origin}:{forged.seq} is not signed by device "
                              f"{forged.origin}; nothing of this batch was applied")
        with records.write_tx(db):
            for op in checked:
                # A placeholder may stand at this very seq (the last of a skipped run): the
                # real op takes its place, and the vector stays the same; the rest of the run
                # keeps a placeholder of its own.
                held = db.execute("SELECT payload FROM ops WHERE origin = ? AND seq = ? AND entity = ?",
                                  [op.origin, op.seq, SKIP_ENTITY]).fetchone()
                if held is not None:
                    db.execute("DELETE FROM ops WHERE origin = ? AND seq = ? AND entity = ?",
                               [op.origin, op.seq, SKIP_ENTITY])
                    _still_skipped(db, op.origin, json.loads(held[0])["first"], op.seq)
                if records.apply(db, op.op):
                    applied += 1
                    db.execute("INSERT INTO op_signatures (origin, seq, signature) VALUES (?, ?, ?)"
                               " ON CONFLICT (origin, seq) DO NOTHING",
                               [op.origin, op.seq, op.signature])
    result = apply_batch(db, rest, trusted_keys, now_ms, revoked=revoked,
                         skips=skips if from_anchor else None)
    result.applied += applied
    return result


def _still_skipped(db, origin: str, first: int, taken: int) -> None:
    """The skipped run ``first..taken`` lost its placeholder to the real op at ``taken``: the
    seqs before it stay covered by a placeholder at the highest of them that holds no op
    (those above it hold ops of learners who moved in), or by nothing if all hold one."""
    from passerelle.server.sync.ops import record_skip

    held = {r[0] for r in db.execute("SELECT seq FROM ops WHERE origin = ? AND seq >= ? AND seq < ?",
                                     [origin, first, taken])}
    free = next((seq for seq in range(taken - 1, first - 1, -1) if seq not in held), None)
    if free is not None:
        record_skip(db, origin, first, free)


# --- Which site each device is at (kept on the hub, told to each box) -------------------

def device_site(db: sqlite_utils.Database, device_id: str) -> str | None:
    row = db.execute("SELECT site FROM sync_devices WHERE device_id = ?", [device_id]).fetchone()
    return row[0] if row and row[0] else None


def assign_site(db: sqlite_utils.Database, device_id: str, site_uuid: str | None) -> None:
    """Put a paired box in a site (None: takes everything, as before sites)."""
    from passerelle.server.errors import NotFound

    with records.write_tx(db):
        if db.execute("UPDATE sync_devices SET site = ? WHERE device_id = ?",
                      [site_uuid, device_id]).rowcount == 0:
            raise NotFound(f"no paired device {device_id}")


def is_anchor(db: sqlite_utils.Database, device_id: str | None) -> bool:
    """Whether ``device_id`` is the hub this box paired with (believed about skips and sites)."""
    row = db.execute("SELECT anchor FROM sync_devices WHERE device_id = ? AND revoked_at IS NULL",
                     [device_id]).fetchone()
    return bool(row and row[0])


# --- Pruning: a learner who left this box's site leaves this box ------------------------

# The tables that hold something of a learner, and the column naming them. What hangs off a
# class (memberships, attendance, groups) is found through the operations instead (below),
# since a deleted record's row no longer names anyone.
LEARNER_COLUMNS = {"users": "uuid", "progress": "learner_uuid",
                   "missed_questions": "learner_uuid", "quiz_answers": "learner_uuid",
                   "activity_days": "learner_uuid", "activity_months": "learner_uuid",
                   "activity_years": "learner_uuid",
                   "bookmarks": "learner_uuid", "memberships": "user_uuid",
                   "attendance": "learner_uuid", "group_members": "learner_uuid",
                   "signins": "user_uuid"}
# Records that name a learner in a payload field: the learner's own (bookmarks) and their
# places in classes (memberships, attendance, groups).
NAMING_FIELD = {"bookmark": "learner_uuid", "membership": "user_uuid",
                "attendance": "learner_uuid", "group_member": "learner_uuid"}


@dataclass
class Pruned:
    learners: list[str] = field(default_factory=list)   # pruned now
    waiting: list[str] = field(default_factory=list)    # left, but the hub lacks some of their ops
    ops: int = 0


def departed(db: sqlite_utils.Database) -> list[str]:
    """Learners whose record says they belong to another site than this box's."""
    from passerelle.server.people import sites

    mine = sites.this_site(db)
    if mine is None:  # the hub, or a box that takes everything
        return []
    return [u for (u,) in db.execute(
        "SELECT uuid FROM users WHERE role = 'learner' AND site IS NOT NULL AND site <> ?"
        " ORDER BY uuid", [mine])]


def _learner_ops(db, learner: str) -> tuple[list[tuple[str, int]], dict[str, list[str]]]:
    """(origin, seq) of every real operation about a learner, and the records naming them."""
    naming: dict[str, list[str]] = {}
    for entity, fld in NAMING_FIELD.items():
        naming[entity] = [s for (s,) in db.execute(
            f"SELECT DISTINCT subject FROM ops WHERE entity = ? AND json_extract(payload, '$.{fld}')"
            " = ?", [entity, learner])]
    found = db.execute("SELECT origin, seq FROM ops WHERE entity IN ('user', 'progress')"
                       " AND subject = ?", [learner]).fetchall()
    for entity, subjects in naming.items():
        for i in range(0, len(subjects), _CHUNK):
            chunk = subjects[i:i + _CHUNK]
            found += db.execute(f"SELECT origin, seq FROM ops WHERE entity = ? AND subject IN"
                                f" ({', '.join('?' * len(chunk))})", [entity, *chunk]).fetchall()
    return sorted(set(map(tuple, found))), naming


def prune_departed(db: sqlite_utils.Database, hub_vector: Mapping[str, int]) -> Pruned:
    """Take off this box the learners who moved to another site, once the hub holds them.

    ``hub_vector`` is what this box's hub acknowledged holding. A learner is pruned only when
    every operation about them here is at or below it (their records and progress are then
    safe on the hub, which sends them to their new site); otherwise they wait for a later
    sync. Their operations become placeholders, as a skipped run does (one row per run of
    consecutive seqs, so the vector stays contiguous and nothing is asked for again), their
    signatures go, and so do the rows folded from them: record, progress, exercise state,
    bookmarks, places in classes, daily activity, open sign-ins.
    """
    result = Pruned()
    for learner in departed(db):
        ops, naming = _learner_ops(db, learner)
        if any(seq > hub_vector.get(origin, 0) for origin, seq in ops):
            result.waiting.append(learner)
            continue
        with records.write_tx(db):
            _replace_by_placeholders(db, ops)
            for table, column in LEARNER_COLUMNS.items():
                db.execute(f"DELETE FROM {table} WHERE {column} = ?", [learner])
            db.execute("DELETE FROM signin_failures WHERE key = ?", [f"user:{learner}"])
            for entity, subjects in naming.items():
                table = records.TABLES[entity]
                for i in range(0, len(subjects), _CHUNK):
                    chunk = subjects[i:i + _CHUNK]
                    db.execute(f"DELETE FROM {table} WHERE uuid IN ({', '.join('?' * len(chunk))})",
                               chunk)
        result.learners.append(learner)
        result.ops += len(ops)
    return result


def _replace_by_placeholders(db, ops: list[tuple[str, int]]) -> None:
    """Real operations out, a placeholder per run of consecutive seqs in (joined to the
    placeholders on either side, so runs do not multiply)."""
    from passerelle.server.sync.ops import record_skip

    runs: list[list] = []
    for origin, seq in ops:  # sorted
        if runs and runs[-1][0] == origin and runs[-1][2] == seq - 1:
            runs[-1][2] = seq
        else:
            runs.append([origin, seq, seq])
    db.conn.executemany("DELETE FROM ops WHERE origin = ? AND seq = ?", ops)
    db.conn.executemany("DELETE FROM op_signatures WHERE origin = ? AND seq = ?", ops)
    for origin, first, last in runs:
        before = db.execute("SELECT payload FROM ops WHERE origin = ? AND seq = ? AND entity = ?",
                            [origin, first - 1, SKIP_ENTITY]).fetchone()
        if before is not None:  # a run ends right before this one: they become one
            db.execute("DELETE FROM ops WHERE origin = ? AND seq = ?", [origin, first - 1])
            first = json.loads(before[0])["first"]
        after = db.execute("SELECT seq, entity, payload FROM ops WHERE origin = ? AND seq > ?"
                           " ORDER BY seq LIMIT 1", [origin, last]).fetchone()
        if after is not None and after[1] == SKIP_ENTITY and json.loads(after[2])["first"] == last + 1:
            db.execute("UPDATE ops SET payload = ? WHERE origin = ? AND seq = ?",
                       [json.dumps({"first": first}), origin, after[0]])
        else:
            record_skip(db, origin, first, last)
