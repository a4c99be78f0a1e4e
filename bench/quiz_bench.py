"""A quiz report for a class of 40 learners over 30 questions.

Usage:
  .venv/bin/python bench/quiz_bench.py                      # 40 learners, 30 questions, 200 requests
  .venv/bin/python bench/quiz_bench.py --learners 40 --questions 30 --requests 500

The box: a pack of 3 exercises (single choice, numbers, generated sums) holding the questions,
one class of LEARNERS learners, a quiz of QUESTIONS questions in 3 sections started for the
class with 3 attempts allowed. Every learner submits 1 to 3 attempts (about 2 on average),
right or wrong at random, through ``quizzes.submit`` (the one event writer, as the quiz page
does): about 80 attempts, 2,400 answers.

Measured, REQUESTS times each, one at a time:
- in the bench's own process: ``quizzes.report`` (the service: answers and exercises read,
  scores, most missed) and ``quizzes.report_csv`` on it;
- through a real ``passerelle serve`` on 127.0.0.1, signed in as the class's facilitator:
  ``GET /manage/quiz-runs/<uuid>`` (the page, with the most missed questions rendered) and
  ``GET /manage/quiz-runs/<uuid>/report.csv``.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _box import Server  # noqa: E402
from kolibri_bench import Tablet, cpu_tree_s, pct  # noqa: E402

PASSWORD = "bench facilitator passphrase"


def make_pack(folder: Path, questions: int) -> Path:
    """A pack of 3 exercises sharing ``questions`` questions out (kinds in turn)."""
    (folder / "01-quiz").mkdir(parents=True)
    (folder / "pack.yaml").write_text(yaml.safe_dump({
        "id": "bench-quiz", "version": 1, "title": "Bench quiz", "description": "Questions.",
        "language": "fr", "license": "CC-BY-SA-4.0", "publisher": "bench"}), encoding="utf-8")
    (folder / "01-quiz" / "_topic.yaml").write_text(yaml.safe_dump({
        "id": "quiz", "title": "Questions", "description": "Questions."}), encoding="utf-8")
    per = -(-questions // 3)
    for e in range(3):
        made = []
        for i in range(per):
            kind = (e * per + i) % 3
            if kind == 0:
                made.append({"id": f"q{i}", "type": "single_choice",
                             "prompt": f"Question {e}.{i}: quelle est la bonne réponse ?",
                             "choices": ["Celle-ci", "Celle-là", "Aucune"], "answer": 0})
            elif kind == 1:
                made.append({"id": f"q{i}", "type": "numeric", "prompt": f"Combien font {i} + {e} ?",
                             "answer": i + e})
            else:
                made.append({"id": f"q{i}", "type": "generated", "prompt": "Combien font {a} + {b} ?",
                             "variables": {"a": {"min": 2, "max": 9}, "b": {"min": 2, "max": 9}},
                             "answer": "a + b"})
        (folder / "01-quiz" / f"0{e + 1}-ex{e}.exercise.yaml").write_text(yaml.safe_dump({
            "id": f"quiz/ex{e}", "title": f"Exercice {e + 1}", "mastery": {"model": "do_all"},
            "randomize": False, "questions": made}, allow_unicode=True), encoding="utf-8")
    return folder


def build(home: Path, n_learners: int, n_questions: int) -> dict:
    from passerelle.content import build_pack
    from passerelle.server.app import create_app
    from passerelle.server.db import get_db
    from passerelle.server.learning import quizzes
    from passerelle.server.people import accounts

    app = create_app({"home": home})
    with app.app_context(), app.test_request_context():
        db = get_db()
        accounts.setup(db, org_name="Bench", languages=["fr", "en"], signin_mode="pin",
                       profile_fields={}, display_name="Coordinator", username="coord",
                       password=PASSWORD)
        staff = accounts.create_user(db, role="facilitator", display_name="Facilitator",
                                     username="facilitator", password=PASSWORD)
        class_uuid = accounts.create_class(db, "Classe", facilitator_uuid=staff)
        learners = []
        for n in range(n_learners):
            uid = accounts.create_user(db, role="learner", display_name=f"Learner {n:02d}",
                                       pin="2468")
            accounts.add_member(db, class_uuid, uid)
            learners.append(uid)
        with tempfile.TemporaryDirectory() as tmp:
            built = build_pack(make_pack(Path(tmp) / "pack", n_questions), Path(tmp) / "p.zip",
                               created="2026-11-01T00:00:00Z")
            app.extensions["passerelle.library"].import_pack(built.path)
        keys = [q["key"] for q in quizzes.available(db)][:n_questions]
        third = -(-len(keys) // 3)
        sections = [{"title": f"Partie {s + 1}", "questions": keys[s * third:(s + 1) * third]}
                    for s in range(3)]
        quiz = quizzes.create_quiz(db, "Évaluation", sections, True, staff)
        run = quizzes.start(db, quiz, class_uuid, staff, attempts=3)
        listed = quizzes.items(quizzes.get_run(db, run))
        rng = random.Random(7)
        attempts = 0
        t0 = time.perf_counter()
        for uid in learners:
            skill = rng.random()
            for attempt in range(1, rng.randint(1, 3) + 1):
                quizzes.submit(db, run, uid, attempt, [
                    {"item": i["item"], "answer": "x", "correct": rng.random() < skill}
                    for i in listed])
                attempts += 1
        submit_s = time.perf_counter() - t0
        answers = db.execute("SELECT count(*) FROM quiz_answers").fetchone()[0]
    return {"run": run, "attempts": attempts, "answers": answers, "questions": len(listed),
            "learners": n_learners, "submit_ms": submit_s * 1000 / max(1, attempts)}


def in_process(home: Path, run: str, requests: int) -> dict:
    from passerelle.server.app import create_app
    from passerelle.server.db import get_db
    from passerelle.server.learning import quizzes

    app = create_app({"home": home})
    out = {}
    with app.app_context(), app.test_request_context():
        db = get_db()
        for label, work in (("report", lambda: quizzes.report(db, run)),
                            ("report + csv", lambda: quizzes.report_csv(quizzes.report(db, run)))):
            for _ in range(5):
                work()
            times, cpu = [], []
            for _ in range(requests):
                t0, c0 = time.perf_counter(), time.process_time()
                work()
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            # CPU time too: on a machine shared with other work, waiting inflates the latencies.
            out[label] = {"p50": pct(times, 50), "p95": pct(times, 95), "max": max(times),
                          "cpu_p50": pct(cpu, 50), "cpu_p95": pct(cpu, 95)}
    return out


def served(home: Path, run: str, requests: int) -> dict:
    server = Server(home)
    try:
        tablet = Tablet(server.url)
        html = tablet.request("GET", "/signin/staff").decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        tablet.request("POST", "/signin/staff", form={"csrf_token": token, "username": "facilitator",
                                                      "password": PASSWORD}, expect=302)
        out = {}
        for label, path in (("page", f"/manage/quiz-runs/{run}"),
                            ("csv", f"/manage/quiz-runs/{run}/report.csv")):
            for _ in range(5):
                body = tablet.request("GET", path)
            times = []
            cpu0 = cpu_tree_s(server.proc.pid)
            for _ in range(requests):
                t0 = time.perf_counter()
                body = tablet.request("GET", path)
                times.append(time.perf_counter() - t0)
            cpu = cpu_tree_s(server.proc.pid) - cpu0
            out[label] = {"p50": pct(times, 50), "p95": pct(times, 95), "max": max(times),
                          "cpu_ms": cpu * 1000 / requests, "bytes": len(body)}
        tablet.close()
        return out
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=40)
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "box"
        facts = build(home, args.learners, args.questions)
        print(f"{facts['learners']} learners, {facts['questions']} questions, {facts['attempts']}"
              f" attempts submitted ({facts['answers']} answers), "
              f"{facts['submit_ms']:.1f} ms per submitted attempt")
        for label, t in in_process(home, facts["run"], args.requests).items():
            print(f"service {label:14} p50 {t['p50'] * 1000:6.1f} ms  p95 {t['p95'] * 1000:6.1f} ms"
                  f"  max {t['max'] * 1000:6.1f} ms  cpu p50 {t['cpu_p50'] * 1000:.1f} ms,"
                  f" p95 {t['cpu_p95'] * 1000:.1f} ms")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        for label, t in served(home, facts["run"], args.requests).items():
            print(f"served  {label:14} p50 {t['p50'] * 1000:6.1f} ms  p95 {t['p95'] * 1000:6.1f} ms"
                  f"  max {t['max'] * 1000:6.1f} ms  cpu {t['cpu_ms']:.1f} ms/request"
                  f"  {t['bytes']:,} bytes")


if __name__ == "__main__":
    main()
