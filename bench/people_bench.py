"""The people page with thousands of people: server time for the first page, a search, a later
page and a class, and the same reads through the service alone.

Usage: .venv/bin/python bench/people_bench.py [--people 5000] [--classes 100] [--runs 200]

Builds a box in a temporary data home: a coordinator, PEOPLE learners with names of varied
scripts (Latin with and without accents, Arabic), CLASSES classes with the learners spread over
them. People and memberships are written through ``records.put`` (the real operation log and
fold) in one transaction, without PINs (hashing 5,000 PINs would only slow the set-up). Then
the coordinator, signed in through the real form, asks for each page RUNS times through the app
(Flask's test client: the whole request, templates included, without the network), and the
p50/p95 of each are printed. No network at all.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FIRST = ["Amina", "Hélène", "Jan", "Mohamed", "Sara", "Zoë", "Bart", "Chloé", "Fatou", "Lina",
         "Noah", "Élodie", "Yusuf", "محمد", "فاطمة", "Olga", "Piotr", "Ines", "Thomas", "Lotte"]
LAST = ["Dubois", "Janssens", "El Amrani", "Peeters", "Diallo", "Nowak", "Martin", "Maes",
        "Benali", "Claes", "Lambert", "Vermeulen", "العلوي", "Kowalski", "Durand"]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timed(action, runs: int) -> tuple[float, float, float, float]:
    """(p50, p95 of the wall-clock time; p50, p95 of the CPU time), in ms. The CPU time is this
    process's, which serves the request alone (one thread): on a busy machine it says what the
    request costs when the wall clock also counts the time spent waiting for a core."""
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        action()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return (statistics.median(wall), percentile(wall, 95), statistics.median(cpu),
            percentile(cpu, 95))


def build(home: Path, people: int, classes: int) -> None:
    from passerelle.server import records
    from passerelle.server.app import create_app
    from passerelle.server.db import get_db
    from passerelle.server.people import accounts

    rng = random.Random(7)
    app = create_app({"home": home})
    with app.app_context():
        db = get_db()
        accounts.setup(db, org_name="Bench", languages=["fr", "nl", "en", "ar"],
                       signin_mode="pin", profile_fields={}, display_name="Cora",
                       username="cora", password="coordinator passphrase")
        with records.write_tx(db):
            class_ids = [accounts.create_class(db, f"Groupe {i:03d}") for i in range(classes)]
            for i in range(people):
                uid = accounts.new_uuid()
                name = f"{rng.choice(FIRST)} {rng.choice(LAST)} {i}"
                records.put(db, "user", uid, {"role": "learner", "display_name": name,
                                              "avatar": accounts.AVATARS[i % 12],
                                              "created_at": records.now_iso()})
                accounts.add_member(db, class_ids[i % classes], uid)
        db.execute("PRAGMA optimize")


def measure(home: Path, runs: int) -> list[tuple]:
    from passerelle.server.app import create_app
    from passerelle.server.db import get_db
    from passerelle.server.people import directory

    app = create_app({"home": home})
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    html = client.get("/signin/staff").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
    response = client.post("/signin/staff", data={"csrf_token": token, "username": "cora",
                                                  "password": "coordinator passphrase"})
    assert response.status_code == 302, response.status_code
    first = client.get("/manage/people").get_data(as_text=True)
    after = re.search(r'after=([0-9a-f-]+)', first).group(1)
    with app.app_context():
        db = get_db()
        twentieth = directory.find(db)
        for _ in range(19):
            twentieth = directory.find(db, after=twentieth.next_after)
        later = twentieth.next_after
        some_class = db.execute("SELECT uuid FROM classes LIMIT 1").fetchone()[0]
    pages = {
        "first page": "/manage/people",
        "search 'helene' (accents folded)": "/manage/people?q=helene",
        "search 'محمد'": "/manage/people?q=%D9%85%D8%AD%D9%85%D8%AF",
        "search, no match": "/manage/people?q=zzzz",
        "second page": f"/manage/people?after={after}",
        "21st page": f"/manage/people?after={later}",
        "one class": f"/manage/people?class={some_class}",
    }
    results = []
    for name, path in pages.items():
        def ask(path=path):
            response = client.get(path)
            response.get_data()
            assert response.status_code == 200, (path, response.status_code)
        results.append((f"page: {name}", *timed(ask, runs)))
    with app.app_context():
        db = get_db()
        for name, kwargs in (("first page", {}), ("search 'helene'", {"text": "helene"}),
                             ("search, no match", {"text": "zzzz"})):
            results.append((f"service: {name}",
                            *timed(lambda kwargs=kwargs: directory.find(db, **kwargs), runs)))
        results.append(("export of everyone (CSV)",
                        *timed(lambda: client.get("/manage/people/export.csv").get_data(),
                               max(5, runs // 10))))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "box"
        start = time.perf_counter()
        build(home, args.people, args.classes)
        print(f"built a box with {args.people} learners in {args.classes} classes"
              f" in {time.perf_counter() - start:.1f} s")
        print(f"{'request':<40} {'wall p50':>9} {'wall p95':>9} {'CPU p50':>8} {'CPU p95':>8}"
              f"   (ms, {args.runs} runs each)")
        for name, p50, p95, cpu50, cpu95 in measure(home, args.runs):
            print(f"{name:<40} {p50:>9.1f} {p95:>9.1f} {cpu50:>8.1f} {cpu95:>8.1f}")
        print(f"load average while measuring: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
