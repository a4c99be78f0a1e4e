"""The facilitator's grid: a class of 30 learners x 40 resources on a box holding 200,000 events.

Usage:
  .venv/bin/python bench/grid_bench.py                        # 300 learners in 10 classes of 30
  .venv/bin/python bench/grid_bench.py --learners 30 --classes 1   # all 200,000 events in the class
  .venv/bin/python bench/grid_bench.py --home /tmp/grid --keep     # build once, measure again

The box is built as bench/accounts_bench.py builds it (its ``build``: people, classes,
memberships through ``records.put``; weekly sessions, attendance and EVENTS events in bulk,
folded with the fold's rules, on 3 synthetic packs of 40 resources). Then the first class's
facilitator assigns a lesson of the 40 resources of one pack to the class.

Measured, REQUESTS times each, one at a time:
- through a real ``passerelle serve`` on 127.0.0.1, signed in through the staff form:
  ``GET /manage/classes/<uuid>/grid`` (the page) and ``GET /api/v1/classes/<uuid>/grid``;
- in the bench's own process (the Flask test client, no HTTP): the same two requests, with
  every SQL statement SQLite runs counted (``sqlite3.Connection.set_trace_callback`` on the
  app's connections), to show whether a request's statements grow with the grid's size.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _box import Server  # noqa: E402
from accounts_bench import PACKS, build  # noqa: E402
from kolibri_bench import Tablet, cpu_tree_s, pct  # noqa: E402

STAFF_PASSWORD = "bench facilitator passphrase"  # accounts_bench's facilitators
GZIP = {"Accept-Encoding": "gzip"}  # as a browser asks: the server compresses pages and JSON


def assign_lesson(home: Path, class_uuid: str, facilitator: str, items: int) -> dict:
    from passerelle.server.app import create_app
    from passerelle.server.db import get_db
    from passerelle.server.learning import lessons

    app = create_app({"home": home})
    with app.app_context():
        db = get_db()
        pack = PACKS[0][0]
        nodes = [r[0] for r in db.execute(
            "SELECT node_id FROM content_nodes WHERE pack_id = ? AND kind != 'topic'"
            " ORDER BY position LIMIT ?", [pack, items]).fetchall()]
        lesson = lessons.create_lesson(db, "Bench lesson", [{"pack_id": pack, "node_id": n}
                                                            for n in nodes], facilitator)
        lessons.assign(db, lesson, class_uuid, facilitator)
        username = db.execute("SELECT username FROM users WHERE uuid = ?", [facilitator]).fetchone()[0]
        events = db.execute("SELECT count(*) FROM ops WHERE kind = 'event'").fetchone()[0]
        members = db.execute("SELECT user_uuid FROM memberships WHERE class_uuid = ? AND role ="
                             " 'learner' AND deleted = 0", [class_uuid]).fetchall()
        marks = ",".join("?" * len(members))
        in_class = db.execute(f"SELECT count(*) FROM ops WHERE entity = 'progress' AND subject IN"
                              f" ({marks})", [m[0] for m in members]).fetchone()[0]
    return {"username": username, "events": events, "class_events": in_class,
            "learners": len(members), "items": len(nodes)}


def staff_tablet(url: str, username: str) -> Tablet:
    tablet = Tablet(url)
    html = tablet.request("GET", "/signin/staff").decode()
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    tablet.request("POST", "/signin/staff", form={"csrf_token": token, "username": username,
                                                  "password": STAFF_PASSWORD}, expect=302)
    return tablet


def served(home: Path, class_uuid: str, username: str, requests: int) -> dict:
    server = Server(home)
    try:
        tablet = staff_tablet(server.url, username)
        out = {}
        for label, path in (("page", f"/manage/classes/{class_uuid}/grid"),
                            ("api", f"/api/v1/classes/{class_uuid}/grid")):
            for _ in range(5):  # warm-up
                body = tablet.request("GET", path, headers=GZIP)
            times = []
            cpu0 = cpu_tree_s(server.proc.pid)
            for _ in range(requests):
                t0 = time.perf_counter()
                body = tablet.request("GET", path, headers=GZIP)
                times.append(time.perf_counter() - t0)
            cpu = cpu_tree_s(server.proc.pid) - cpu0
            out[label] = {"p50": pct(times, 50), "p95": pct(times, 95), "max": max(times),
                          "cpu_ms": cpu * 1000 / requests, "bytes": len(body)}  # as sent: gzip
        tablet.close()
        return out
    finally:
        server.stop()


def shape(sql: str) -> str:
    """A statement without its values (the trace gives them expanded), to group alike ones."""
    sql = re.sub(r"'(?:[^']|'')*'", "?", " ".join(sql.split()))
    return re.sub(r"\b\d+(\.\d+)?\b", "?", sql)[:90]


def statements(home: Path, class_uuid: str, username: str) -> dict:
    """SQL statements each request runs, counted on the app's own connections."""
    from passerelle.server import db as dbmod
    from passerelle.server.app import create_app

    seen: list[str] = []
    connect = dbmod.connect

    def traced(*args, **kwargs):
        db = connect(*args, **kwargs)
        db.conn.set_trace_callback(seen.append)
        return db

    dbmod.connect = traced
    try:
        app = create_app({"home": home})
        client = app.test_client()
        html = client.get("/signin/staff").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        client.post("/signin/staff", data={"csrf_token": token, "username": username,
                                           "password": STAFF_PASSWORD})
        out = {}
        for label, path in (("page", f"/manage/classes/{class_uuid}/grid"),
                            ("api", f"/api/v1/classes/{class_uuid}/grid")):
            client.get(path)
            seen.clear()
            response = client.get(path)
            if response.status_code != 200:
                raise SystemExit(f"{path}: {response.status_code}")
            shapes = Counter(shape(s) for s in seen)
            out[label] = {"count": len(seen), "top": shapes.most_common(3)}
        return out
    finally:
        dbmod.connect = connect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--learners", type=int, default=300)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--items", type=int, default=40, help="resources in the class's lesson")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--home", help="build here (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="passerelle-grid-"))
    home.mkdir(parents=True, exist_ok=True)
    try:
        marker = home / "grid-class"
        if marker.exists():
            class_uuid, username = marker.read_text().split()
            print(f"reusing the box in {home}")
        else:
            t0 = time.perf_counter()
            built = build(home, args.learners, args.classes, args.events, fold=False)
            class_uuid, _members, facilitator = built["classes"][0]
            info = assign_lesson(home, class_uuid, facilitator, args.items)
            username = info["username"]
            marker.write_text(f"{class_uuid} {username}")
            print(f"built in {time.perf_counter() - t0:.0f} s: {info['events']} events on the box,"
                  f" {info['class_events']} of them by the class's {info['learners']} learners;"
                  f" a lesson of {info['items']} resources assigned to the class")
        counted = statements(home, class_uuid, username)
        for label, c in counted.items():
            print(f"  {label}: {c['count']} SQL statements per request; most frequent: "
                  + "; ".join(f"{n} x {s}" for s, n in c["top"]))
        for r in range(args.rounds):
            got = served(home, class_uuid, username, args.requests)
            for label, g in got.items():
                print(f"  round {r + 1}, {label:4}: p50 {g['p50'] * 1000:.1f} ms, p95 "
                      f"{g['p95'] * 1000:.1f} ms, max {g['max'] * 1000:.1f} ms, server CPU "
                      f"{g['cpu_ms']:.1f} ms per request, {g['bytes']:,} bytes gzip (n={args.requests})",
                      flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"box kept in {home}")


if __name__ == "__main__":
    main()
