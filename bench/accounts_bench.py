"""Accounts, reports and scale: builds a big box and prints figures.

Usage: .venv/bin/python bench/accounts_bench.py [--events 2000000] [--learners 5000]
           [--classes 100] [--answerers 200] [--answers 5] [--fold] [--home DIR] [--keep]

Builds a box with LEARNERS learners in CLASSES classes (one facilitator each, a session a week
for a year, about 70% attendance) and EVENTS progress events spread over the learners' session
days of the last 12 months, on 3 synthetic packs (fr, nl, ar; 5 modules of 8 resources).

How the data is written (documented in docs/benchmarks.md):
- people, classes, memberships: through ``records.put`` (the real operation log and fold),
  in one transaction; every learner shares one PIN hash (Argon2 5,000 times would take minutes);
- sessions, attendance and events (default): *bulk*: the ``ops`` rows exactly as
  ``records.Op.row()`` writes them, inserted with ``executemany`` (so the trigger of
  ``m0004_report_indexes`` keeps ``activity_days``), and the folded rows computed in Python
  with the rules of ``records._fold_record`` / ``records._fold_event`` (fresh records, max
  progress, first completion, summed seconds, answers, correct). A check at the end folds a
  sample of learners' events through ``records.apply`` in a scratch database and compares.
- ``--fold``: every session, attendance mark and event through ``records.apply`` instead
  (exact, much slower).

Then measures: a year's impact report, a class's learner list, a class's progress grid (learners
x resources of one pack), both exports, and ANSWERERS learners answering at once through the
real server (Waitress on 127.0.0.1, one thread and one session per learner, ANSWERS POSTs each):
every write counted afterwards, latency percentiles. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.cookiejar
import json
import os
import random
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from passerelle.server import db as dbmod
from passerelle.server import records
from passerelle.server.people import accounts
from passerelle.server.reports import impact as reports

PASSERELLE = str(Path(sys.executable).with_name("passerelle"))
PIN = "2468"
PACKS = (("bench-fr", "Numérique au quotidien", "fr"), ("bench-nl", "Digitaal in het dagelijks leven", "nl"),
         ("bench-ar", "الحياة الرقمية اليومية", "ar"))
MODULES, RESOURCES = 5, 8
KINDS = ("article", "video", "exercise", "html5")
TYPES = (("started", 10), ("progress", 30), ("answer", 40), ("completed", 8), ("time", 12))


def percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def ms_figures(values: list[float]) -> str:
    return (f"p50 {percentile(values, 50) * 1000:.1f} ms, p95 {percentile(values, 95) * 1000:.1f} ms,"
            f" max {max(values) * 1000:.1f} ms (n={len(values)})")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Building the box -------------------------------------------------------------------

def install_packs(db) -> dict[str, list[str]]:
    """Synthetic catalogue rows (no blobs: reports only read titles and languages)."""
    now = datetime.now(UTC).isoformat()
    resources: dict[str, list[str]] = {}
    for pack_id, title, language in PACKS:
        nodes = [(pack_id, "root", None, "topic", title, 0, None)]
        for m in range(MODULES):
            topic = f"m{m}"
            nodes.append((pack_id, topic, "root", "topic", f"{title} — module {m + 1}", len(nodes), m))
            for r in range(RESOURCES):
                nodes.append((pack_id, f"{topic}/r{r}", topic, KINDS[r % len(KINDS)],
                              f"Ressource {m + 1}.{r + 1}", len(nodes), r))
        resources[pack_id] = [n[1] for n in nodes if n[3] != "topic"]
        db.execute("INSERT INTO content_packs (id, version, title, language, publisher, license,"
                   " created, manifest, manifest_sha256, node_count, total_size, installed_at,"
                   " updated_at) VALUES (?, 1, ?, ?, 'bench', 'CC0-1.0', ?, x'7b7d', '', ?, 0, ?, ?)",
                   [pack_id, title, language, now, len(nodes), now, now])
        db.conn.executemany(
            "INSERT INTO content_nodes (pack_id, node_id, parent_id, kind, title, language, position,"
            " sort_order, data) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?)",
            [(*n, json.dumps({"id": n[1], "parent": n[2], "kind": n[3], "title": n[4]})) for n in nodes])
    return resources


class Writer:
    """Writes ops (and what the fold makes of them) in bulk, or through records.apply."""

    def __init__(self, db, fold: bool):
        self.db, self.fold = db, fold
        self.origin = records.device_id(db)
        self.seq = db.execute("SELECT coalesce(max(seq), 0) FROM ops WHERE origin = ?",
                              [self.origin]).fetchone()[0]
        self.ops: list[tuple] = []
        self.tables: dict[str, list[tuple]] = defaultdict(list)
        self.progress: dict[tuple, list] = {}
        self.max_ms = 0

    def _op(self, ms: int, kind: str, entity: str, subject: str, payload: dict) -> records.Op:
        self.seq += 1
        self.max_ms = max(self.max_ms, ms)
        return records.Op(self.origin, self.seq, f"{ms:013d}.00000.{self.origin}", kind, entity,
                          subject, payload)

    def put(self, ms: int, entity: str, uuid: str, fields: dict) -> None:
        op = self._op(ms, "put", entity, uuid, fields)
        if self.fold:
            records.apply(self.db, op)
            return
        self.ops.append(op.row())
        columns = records.ENTITIES[entity]
        values = [json.dumps(fields[c]) if c in records.JSON_COLUMNS and fields.get(c) is not None
                  else fields.get(c) for c in columns]
        self.tables[entity].append((uuid, op.version, 0, *values))

    def event(self, ms: int, learner: str, payload: dict) -> None:
        op = self._op(ms, "event", "progress", learner, payload)
        if self.fold:
            records.apply(self.db, op)
            return
        self.ops.append(op.row())
        fold_into(self.progress, op)

    def flush(self) -> None:
        if self.ops:
            self.db.conn.executemany("INSERT INTO ops (origin, seq, version, kind, entity, subject,"
                                     " payload, event_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", self.ops)
            self.ops = []
        for entity, rows in self.tables.items():
            names = ["uuid", "version", "deleted", *records.ENTITIES[entity]]
            self.db.conn.executemany(
                f"INSERT INTO {records.TABLES[entity]} ({', '.join(names)})"
                f" VALUES ({', '.join('?' * len(names))})", rows)
        self.tables = defaultdict(list)

    def flush_progress(self) -> None:
        # The exercise state the fold keeps, when this tree's schema has it: recent and solved
        # with each summary, wrong answers per question in missed_questions.
        have = {r[1] for r in self.db.execute("PRAGMA table_info(progress)").fetchall()}
        state = [c for c in STATE_COLUMNS if c in have]
        self.db.conn.executemany(
            "INSERT INTO progress (learner_uuid, pack_id, node_id, progress, completed_version,"
            " seconds, answers, correct, position, position_version, first_version, last_version"
            + "".join(f", {c}" for c in state) + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?"
            + ", ?" * len(state) + ")",
            [(*key, *v[:7], *(stored(c, v) for c in state)) for key, v in self.progress.items()])
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'missed_questions'").fetchone():
            self.db.conn.executemany(
                "INSERT INTO missed_questions (learner_uuid, pack_id, node_id, question_id, wrong)"
                " VALUES (?, ?, ?, ?, ?)", [(*key, question, n) for key, v in self.progress.items()
                                            for question, n in v[9].items()])
        self.progress = {}


STATE_COLUMNS = ("recent", "solved")


def stored(column: str, row: list) -> str | None:
    """A state column as the fold writes it: set once the exercise has answers."""
    if not row[3]:
        return None
    return json.dumps(row[7 + STATE_COLUMNS.index(column)], separators=(",", ":"))


def fold_into(progress: dict, op: records.Op) -> None:
    """records._fold_event's and _fold_answer's rules, in memory (positions are not generated by
    the bench)."""
    p = op.payload
    value, completed, answered, correct, seconds = records.event_counts(op)
    key = (op.subject, p.get("pack_id"), p.get("node_id"))
    row = progress.get(key)
    if row is None:
        progress[key] = row = [value, completed, seconds, answered, correct, op.version, op.version,
                               [], [], {}]
    else:
        row[0] = max(row[0], value)
        if completed is not None and (row[1] is None or completed < row[1]):
            row[1] = completed
        row[2] += seconds
        row[3] += answered
        row[4] += correct
        row[5] = min(row[5], op.version)
        row[6] = max(row[6], op.version)
    if p.get("type") == "answer" and hasattr(records, "merge_answers"):  # older trees: no state
        question = p.get("question_id")
        question = None if question is None else str(question)
        records.merge_answers(row[7], row[8], op.version, bool(p.get("correct")), question)
        missed = records.missed_question(p) if hasattr(records, "missed_question") else None
        if missed is not None:
            row[9][missed] = row[9].get(missed, 0) + 1


def build(home: Path, n_learners: int, n_classes: int, n_events: int, fold: bool) -> dict:
    random.seed(4)
    t0 = time.perf_counter()
    dbmod.prepare(home / "passerelle.db")
    db = dbmod.connect(home / "passerelle.db")
    db.execute("PRAGMA synchronous = NORMAL")  # building only; the server runs with FULL
    coordinator = accounts.setup(db, org_name="Campus numérique (bench)", languages=["fr", "nl", "ar"],
                                 signin_mode="pin", profile_fields={"gender": "funder", "age_band": "funder",
                                                                    "newcomer": "funder"},
                                 display_name="Coordinatrice", username="coord",
                                 password="bench coordinator passphrase")
    pin_hash = accounts.LEARNER_HASHER.hash(PIN)
    now_ms = int(time.time() * 1000)
    today = datetime.now(UTC).date()
    first_day = today - timedelta(days=364)
    learners: list[str] = []
    classes: list[tuple[str, list[str]]] = []
    with records.write_tx(db):
        resources = install_packs(db)
        for i in range(n_learners):
            uid = dbmod.new_uuid()
            profile = {}
            if random.random() < 0.9:
                profile["gender"] = random.choices(accounts.GENDERS, (45, 40, 3, 2))[0]
            if random.random() < 0.8:
                profile["age_band"] = random.choice(accounts.AGE_BANDS)
            if random.random() < 0.6:
                profile["newcomer"] = random.choice(("yes", "no"))
            records.put(db, "user", uid, {"role": "learner", "display_name": f"Apprenant·e {i:05d}",
                                          "pin_hash": pin_hash, "avatar": "fox", "profile": profile,
                                          "created_at": records.now_iso()})
            learners.append(uid)
        staff_hash = accounts.STAFF_HASHER.hash("bench facilitator passphrase")
        for c in range(n_classes):
            class_uuid, facilitator = dbmod.new_uuid(), dbmod.new_uuid()
            records.put(db, "user", facilitator, {"role": "facilitator", "display_name": f"Facilitateur {c}",
                                                  "username": f"fac{c}", "password_hash": staff_hash,
                                                  "created_at": records.now_iso()})
            records.put(db, "class", class_uuid, {"name": f"Groupe {c:03d}", "description": "",
                                                  "created_at": records.now_iso()})
            members = learners[c::n_classes]
            for uid in [facilitator, *members]:
                records.put(db, "membership", accounts.joined_uuid("membership", class_uuid, uid),
                            {"class_uuid": class_uuid, "user_uuid": uid,
                             "role": "facilitator" if uid == facilitator else "learner"})
            classes.append((class_uuid, members, facilitator))
    people_s = time.perf_counter() - t0

    # Sessions (weekly), attendance (~70%), events on the days each learner attended.
    t1 = time.perf_counter()
    writer = Writer(db, fold)
    per_learner = max(1, n_events // max(1, n_learners))
    written = 0
    db.execute("BEGIN IMMEDIATE")
    for c, (class_uuid, members, facilitator) in enumerate(classes):
        days = [first_day + timedelta(days=(c % 7) + 7 * w) for w in range(52)]
        days = [d for d in days if d <= today]
        attended: dict[str, list[date]] = defaultdict(list)
        for day in days:
            session = dbmod.new_uuid()
            ms = int(datetime(day.year, day.month, day.day, 8, tzinfo=UTC).timestamp() * 1000)
            writer.put(ms, "class_session", session, {
                "class_uuid": class_uuid, "date": day.isoformat(), "place": "Salle 1",
                "partner": "", "topic": "", "opened_by": facilitator, "closed": 0})
            for uid in members:
                present = random.random() < 0.7
                if present:
                    attended[uid].append(day)
                writer.put(ms + 1, "attendance", accounts.joined_uuid("attendance", session, uid),
                           {"session_uuid": session, "learner_uuid": uid, "present": 1 if present else 0})
        for uid in members:
            learner_days = attended[uid] or days[:1]
            pack_id = random.choice(PACKS)[0]
            nodes = resources[pack_id]
            cursor = 0
            count = per_learner if written + per_learner <= n_events else n_events - written
            for k in range(count):
                day = learner_days[k * len(learner_days) // max(1, count)]
                ms = int(datetime(day.year, day.month, day.day, 9, tzinfo=UTC).timestamp() * 1000)
                ms = min(now_ms - 1000, ms + k * 20_000 + random.randint(0, 9999))
                kind = random.choices([t for t, _ in TYPES], [w for _, w in TYPES])[0]
                node = nodes[cursor % len(nodes)]
                payload = {"event_id": f"bench-{uid[:8]}-{k}", "pack_id": pack_id, "node_id": node,
                           "type": kind, "seconds": random.randint(5, 240)}
                if kind == "answer":
                    payload.update(question_id=f"q{k % 5}", correct=random.random() < 0.7)
                elif kind == "progress":
                    payload["progress"] = round(random.random(), 2)
                elif kind == "completed":
                    payload["progress"] = 1
                    cursor += 1  # on to the next resource
                writer.event(ms, uid, payload)
            written += count
        if len(writer.ops) > 200_000:
            writer.flush()
    writer.flush()
    if not fold:
        writer.flush_progress()
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('hlc', ?)", [f"{writer.max_ms}.0"])
    # The ops written in bulk are this box's own: its next op must be numbered after them
    # (a put numbered from a stale head would be taken for one already applied).
    records.raise_head(db, writer.origin, writer.seq)
    db.execute("COMMIT")
    events_s = time.perf_counter() - t1
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("ANALYZE")
    db.close()
    return {"coordinator": coordinator, "classes": classes, "learners": learners,
            "packs": [p[0] for p in PACKS], "people_s": people_s, "events_s": events_s,
            "events": written}


def check_fold(db, learners: list[str], sample: int = 20) -> bool:
    """Fold a sample of learners' ops through records.apply in memory; compare with the box."""
    import sqlite_utils
    from passerelle.server.migrations import apply_all

    scratch = sqlite_utils.Database(memory=True)
    apply_all(scratch)
    ok = True
    for uid in random.sample(learners, min(sample, len(learners))):
        rows = db.execute("SELECT origin, seq, version, kind, entity, subject, payload FROM ops"
                          " WHERE entity = 'progress' AND subject = ?", [uid]).fetchall()
        for r in rows:
            records.apply(scratch, records.Op(*r[:6], json.loads(r[6])))
        have = {r[1] for r in db.execute("PRAGMA table_info(progress)").fetchall()}
        cols = ("pack_id, node_id, progress, completed_version, seconds, answers, correct,"
                " first_version, last_version" + "".join(f", {c}" for c in STATE_COLUMNS if c in have))
        want = scratch.execute(f"SELECT {cols} FROM progress WHERE learner_uuid = ? ORDER BY 1, 2",
                               [uid]).fetchall()
        got = db.execute(f"SELECT {cols} FROM progress WHERE learner_uuid = ? ORDER BY 1, 2",
                         [uid]).fetchall()
        ok &= want == got
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'missed_questions'").fetchone():
            missed = ("SELECT pack_id, node_id, question_id, wrong FROM missed_questions"
                      " WHERE learner_uuid = ? ORDER BY 1, 2, 3")
            ok &= scratch.execute(missed, [uid]).fetchall() == db.execute(missed, [uid]).fetchall()
    return ok


# --- Measures ---------------------------------------------------------------------------------

def load(home: Path) -> dict:
    """What `build` returns, read back from a kept box."""
    db = dbmod.connect(home / "passerelle.db")
    classes = []
    for (class_uuid,) in db.execute("SELECT uuid FROM classes WHERE deleted = 0 ORDER BY name").fetchall():
        members = [r[0] for r in db.execute(
            "SELECT user_uuid FROM memberships WHERE class_uuid = ? AND role = 'learner'"
            " AND deleted = 0", [class_uuid]).fetchall()]
        classes.append((class_uuid, members, None))
    learners = [r[0] for r in db.execute(
        "SELECT uuid FROM users WHERE role = 'learner' AND deleted = 0"
        " AND display_name LIKE 'Apprenant%' ORDER BY display_name").fetchall()]
    db.close()
    return {"classes": classes, "learners": learners, "packs": [p[0] for p in PACKS]}


def measure_queries(home: Path, built: dict, exports: bool = True) -> None:
    db = dbmod.connect(home / "passerelle.db")
    print(f"fold check (sample of learners re-folded through records.apply): "
          f"{'identical' if check_fold(db, built['learners']) else 'DIFFERENT'}")
    start, end = reports.date_range(None, None)
    times = []
    for _ in range(5):
        t = time.perf_counter()
        report = reports.impact(db, start, end)
        times.append(time.perf_counter() - t)
    print(f"impact report {start}..{end}: first {times[0]:.2f} s, then median "
          f"{statistics.median(times[1:]):.2f} s; {report.people} people, {report.sessions} sessions,"
          f" {report.attendances} attendances, {report.hours} h, {report.completed} completed")
    some = [c[0] for c in built["classes"][:10]]
    t = time.perf_counter()
    scoped = reports.impact(db, start, end, some)
    print(f"impact report restricted to 10 classes: {time.perf_counter() - t:.2f} s ({scoped.people} people)")
    lists, grids = [], []
    for _ in range(3):
        for class_uuid, _members, _f in built["classes"]:
            t = time.perf_counter()
            accounts.members(db, class_uuid)
            lists.append(time.perf_counter() - t)
            for pack_id in built["packs"]:
                t = time.perf_counter()
                reports.class_progress(db, class_uuid, pack_id)
                grids.append(time.perf_counter() - t)
    print(f"learner list of a class: {ms_figures(lists)}")
    print(f"progress grid of a class (learners x resources of one pack): {ms_figures(grids)}")
    if not exports:
        db.close()
        return
    before = rss_mb()
    t = time.perf_counter()
    rows = sum(chunk.count("\n") for chunk in reports.progress_csv(db)) - 1
    print(f"progress CSV export: {rows} rows in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    statements = sum(chunk.count("\n") for chunk in reports.xapi_statements(db))
    print(f"xAPI export: {statements} statements in {time.perf_counter() - t:.1f} s; peak RSS "
          f"{before:.0f} MB before the exports, {rss_mb():.0f} MB after")
    db.close()


def measure_answers(home: Path, built: dict, answerers: int, answers: int, threads: int,
                    pace: float) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    app_log = home / "logs" / "passerelle.log"
    log_start = app_log.stat().st_size if app_log.exists() else 0
    # The server's output goes to a file: a pipe nobody reads fills up (64 KB of log lines)
    # and blocks the server's main loop, which looks exactly like a server that stops answering.
    log = open(home / "bench-server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([PASSERELLE, "--home", str(home), "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--threads", str(threads)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/api/v1/health", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"server did not start; see {log.name}") from None
                time.sleep(0.1)
        people = built["learners"][:answerers]

        def sign_in(uid: str):
            jar = http.cookiejar.CookieJar()
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
            page = opener.open(f"{url}/signin/learner/{uid}", timeout=60).read().decode()
            token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
            opener.open(urllib.request.Request(
                f"{url}/signin/learner/{uid}", method="POST",
                data=urllib.parse.urlencode({"csrf_token": token, "secret": PIN}).encode()), timeout=60).read()
            page = opener.open(f"{url}/", timeout=60).read().decode()
            token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
            return opener, token

        t = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            sessions = list(pool.map(sign_in, people))
        print(f"{len(sessions)} learners signed in (PIN, Argon2) in {time.perf_counter() - t:.1f} s")
        runs = [("at once", 0.0)] + ([(f"every {pace:g} s", pace)] if pace else [])
        for label, spacing in runs:
            run_answers(url, home, sessions, answers, threads, label, spacing, proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    # The server logs how its progress writes were grouped when it stops (records.GroupCommit).
    with open(app_log, encoding="utf-8") as f:
        f.seek(log_start)
        grouped = [line.split("progress: ", 1)[1].strip() for line in f if "progress: " in line]
    if grouped:
        print(f"group commit over the whole run: {grouped[-1]}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (robust to a busy machine, unlike latencies)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_answers(url: str, home: Path, sessions: list, answers: int, threads: int, label: str,
                spacing: float, server_pid: int) -> None:
    """Every learner POSTs `answers` answers: back to back after a common start (spacing 0), or
    one every `spacing` seconds from a random start (a class answering at its own pace)."""
    cpu_before = cpu_seconds(server_pid)
    db = dbmod.connect(home / "passerelle.db")
    count = "SELECT count(*) FROM ops WHERE kind = 'event'"
    before = db.execute(count).fetchone()[0]
    barrier = threading.Barrier(len(sessions))
    latencies: list[float] = []
    failures: list[str] = []
    accepted: list[int] = []
    lock = threading.Lock()

    def answer(i: int):
        opener, token = sessions[i]
        barrier.wait()
        if spacing:
            time.sleep(random.random() * spacing)
        for k in range(answers):
            if spacing and k:
                time.sleep(spacing)
            body = json.dumps({"events": [{
                "event_id": f"load-{i}-{k}-{time.time_ns()}", "pack_id": "bench-fr",
                "node_id": "m0/r2", "type": "answer", "question_id": f"q{k}",
                "correct": k % 2 == 0, "seconds": 12}]}).encode()
            request = urllib.request.Request(url + "/api/v1/progress", data=body, method="POST",
                                             headers={"Content-Type": "application/json",
                                                      "X-CSRFToken": token})
            t0 = time.perf_counter()
            try:
                reply = json.loads(opener.open(request, timeout=120).read())
                ok = reply.get("accepted") == 1
            except OSError as exc:  # HTTPError (a 5xx) or a timeout
                ok, reply = False, getattr(exc, "code", None) or type(exc).__name__
            with lock:
                latencies.append(time.perf_counter() - t0)
                if ok:
                    accepted.append(i)
                else:
                    failures.append(str(reply))

    t = time.perf_counter()
    workers = [threading.Thread(target=answer, args=(i,)) for i in range(len(sessions))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    wall = time.perf_counter() - t
    after, stable = -1, 0
    while stable < 3:  # let requests a client gave up on finish on the server
        time.sleep(1)
        now = db.execute(count).fetchone()[0]
        stable, after = (stable + 1, now) if now == after else (0, now)
    db.close()
    sent = len(sessions) * answers
    cpu = cpu_seconds(server_pid) - cpu_before
    kinds = {k: failures.count(k) for k in set(failures)}
    print(f"{len(sessions)} learners answering {label} ({answers} POSTs each, server threads "
          f"{threads}): {ms_figures(latencies)}; {sent / wall:.0f} answers/s; {sent} sent,"
          f" {len(accepted)} accepted, {after - before} stored"
          f" ({'no accepted write lost' if after - before >= len(accepted) else 'ACCEPTED WRITES LOST'});"
          f" failed requests: {kinds or 0}; server CPU {cpu / sent * 1000:.2f} ms per answer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--learners", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--answerers", type=int, default=200)
    parser.add_argument("--answers", type=int, default=5)
    parser.add_argument("--pace", type=float, default=10.0,
                        help="seconds between a learner's answers in the paced run (0: no paced run)")
    parser.add_argument("--threads", type=int, default=8, help="server threads (the default setting)")
    parser.add_argument("--fold", action="store_true", help="write everything through records.apply")
    parser.add_argument("--home", help="build here (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the built box (reused when --home"
                        " names it again)")
    parser.add_argument("--only-answers", action="store_true", help="only the server measure")
    parser.add_argument("--exports", action=argparse.BooleanOptionalAction, default=True,
                        help="time both exports (the xAPI one takes minutes at 2,000,000 events)")
    args = parser.parse_args()
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="passerelle-accounts-"))
    home.mkdir(parents=True, exist_ok=True)
    try:
        if (home / "passerelle.db").exists():
            built = load(home)
            print(f"reusing the box in {home}")
        else:
            built = build(home, args.learners, args.classes, args.events, args.fold)
            print(f"built {args.learners} learners in {args.classes} classes in {built['people_s']:.1f} s;"
                  f" {built['events']} events ({'records.apply' if args.fold else 'bulk'}) with"
                  f" sessions and attendance in {built['events_s']:.1f} s")
        print(f"database {(home / 'passerelle.db').stat().st_size / 2**20:.0f} MB")
        if not args.only_answers:
            measure_queries(home, built, args.exports)
        measure_answers(home, built, args.answerers, args.answers, args.threads, args.pace)
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"box kept in {home}")
    print(f"cpu: {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
