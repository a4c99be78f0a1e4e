"""Learners answering exercises through the exercise player's own path; side by side with Kolibri 0.19.

Usage:
  .venv/bin/python bench/answers_bench.py                                   # Passerelle only
  .venv/bin/python bench/answers_bench.py --kolibri-venv /work/kolibri-venv \\
      --kolibri-channel ../shared/interop/kolibri/kolibri-test-channel/schema_5
  .venv/bin/python bench/answers_bench.py --tablets 30 --rounds 1 --no-history   # quick look

Passerelle: a box with the bundled library and learners with a PIN, served by a real
``passerelle serve`` on 127.0.0.1 (8 threads, no discovery, no background sync). Each tablet
is one keep-alive connection with its own cookies, signed in through the PIN form. It opens
the exercise (GET ``/practice/<pack>/<node>``), then answers ANSWERS questions:

- ``--path script`` (the default): as the page's script (``practice.js``) does, one request
  per answer: the question's fields as JSON to the form's ``data-check`` address with the
  page's CSRF token; the reply carries the feedback and the next question, which the
  script shows without another request.
- ``--path form``: as the page's forms post them without JavaScript: ``action=check`` with
  the answer (answered 302 to ``#feedback``), the feedback page the browser then loads,
  ``action=next`` (302) and the next question's page. "The answer POST" is the ``check``
  request; an answer *cycle* is all four requests.
- ``--path event``: the floor of the stack, not a way a learner answers: one answer event as
  JSON to ``POST /api/v1/progress`` (the resource pages' write path: session, CSRF, the
  event's checks, the group commit), and no page rendered in reply. What the script's answer
  costs above it is the check and the two renderings of the page's body.

Kolibri (``--kolibri-venv``): a throw-away Kolibri started as bench/kolibri_bench.py starts
it (loopback only, no ping, no zeroconf), a channel imported from disk (``kolibri manage
importchannel disk`` then ``importcontent disk``), learners without a password in a facility
that allows it. Each tablet signs in, opens the channel's first exercise as Kolibri's learn
page does (``POST /api/logger/trackprogress/`` with the node, its content and channel ids,
kind and mastery model), then answers as Kolibri's exercise renderer does: one
``PUT /api/logger/trackprogress/<session>/`` per new answer with the interaction, the time
spent and the progress towards mastery (Kolibri draws the next question in the browser: no
request). Kolibri's answers are counted in its ``logger_attemptlog`` table.

Two ways of answering "at once", for N tablets:
- ``together``: a barrier before each answer: the N learners press "Check" at the same
  instant, ANSWERS times (a class doing the same question at the facilitator's signal);
- ``back to back``: one barrier, then each tablet answers as fast as it can (the burst of
  bench/accounts_bench.py, which posted to /api/v1/progress instead).
Reported: p50 / p95 / max of the answer request, answers acknowledged per second (from the
first barrier to the last answer), server CPU per answer (user + system of the server's
whole process tree, from /proc: unchanged by other work on a shared machine, unlike
latencies), and answers acknowledged against answers stored.

History (``--history 5000``): one learner whose box holds 5,000 past answers on the
exercise (written with ``records.event`` before serving, folded as any answer is) and one
with none answer alternately, one request at a time: the answer POST must not grow with
history.
"""

from __future__ import annotations

import argparse
import html as htmlmod
import json
import os
import random
import re
import sqlite3
import sys
import tempfile
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _box import PIN, Server, SharedPortServers, prepare  # noqa: E402
from kolibri_bench import Kolibri, Tablet, cpu_tree_s, pct  # noqa: E402

EXERCISE = ("arithmetic-en", "addition-subtraction/practice-add")  # generated sums, 5 in a row
RIGHT = 0.7  # share of right answers (enough to reach mastery now and then)
ANSWER_EVENTS = ("SELECT count(*) FROM ops WHERE kind = 'event' AND entity = 'progress'"
                 " AND json_extract(payload, '$.type') = 'answer'")


def form(html: str, marker: str) -> tuple[str, dict]:
    """The page's last form whose tag carries ``marker``: (where it posts, its hidden fields)."""
    found = None
    for match in re.finditer(r"<form ([^>]*)>(.*?)</form>", html, re.S):
        if marker in match.group(1):
            found = match
    if found is None:
        raise RuntimeError(f"no form {marker!r} on the page")
    action = htmlmod.unescape(re.search(r'action="([^"]*)"', found.group(1)).group(1))
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', found.group(2)))
    return action.split("#")[0], fields


def follow(location: str | None) -> str:
    """The path a browser loads after a redirect (the fragment stays in the browser)."""
    return urllib.parse.urlsplit(location or "/")._replace(scheme="", netloc="", fragment="").geturl()


def answer_for(html: str, rng: random.Random) -> str:
    """A sum's right answer (the exercise's questions are all sums), or a wrong one."""
    prompt = re.search(r'<div class="prompt" id="prompt"[^>]*>(.*?)</div>', html, re.S)
    numbers = [int(n) for n in re.findall(r"\d+", re.sub(r"<[^>]+>", " ", prompt.group(1)))] \
        if prompt else []
    total = sum(numbers) if numbers else 1
    return str(total if rng.random() < RIGHT else total + 1)


# --- Passerelle -----------------------------------------------------------------------------

class Passerelle:
    name = "Passerelle"

    def __init__(self, tmp: Path, learners: int, history: int, path: str = "script",
                 processes: int = 1):
        self.home = tmp / "box"
        self.way = path
        self.processes = processes
        t0 = time.perf_counter()
        ids = prepare(self.home, learners=learners + (2 if history else 0))
        self.learners = ids["learners"][:learners]
        self.path = "/practice/{}/{}".format(*EXERCISE)
        self.server = None
        if history:
            self.veteran, self.newcomer = ids["learners"][-2:]
            self.seed(self.veteran, history)
        print(f"Passerelle box prepared in {time.perf_counter() - t0:.1f} s ({learners} learners"
              f"{f', one of them with {history} past answers' if history else ''})")

    def seed(self, learner: str, count: int) -> None:
        """``count`` past answers on the exercise, written and folded as the player writes them."""
        from passerelle.server import records
        from passerelle.server.app import create_app
        from passerelle.server.db import get_db

        app = create_app({"home": self.home})
        rng = random.Random(7)
        with app.app_context():
            db = get_db()
            questions = ["add-two-digit", "add-three-digit", "add-shopping"]
            with records.write_tx(db):
                for i in range(count):
                    correct = rng.random() < RIGHT
                    records.event(db, learner, {
                        "event_id": f"past-{learner[:8]}-{i}",
                        "pack_id": EXERCISE[0], "node_id": EXERCISE[1], "type": "answer",
                        "question_id": questions[i % 3], "answer": str(i), "correct": correct,
                        "progress": 0.2})
            stored = db.execute(ANSWER_EVENTS + " AND subject = ?", [learner]).fetchone()[0]
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if stored != count:
            raise SystemExit(f"seeded {stored} answers, not {count}")

    def start(self) -> None:
        self.server = (Server(self.home) if self.processes == 1
                       else SharedPortServers(self.home, processes=self.processes))
        self.url, self.pid = self.server.url, self.server.proc.pid

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def users(self, n: int) -> list[str]:
        return self.learners[:n]

    def sign_in(self, tablet: Tablet, user: str) -> None:
        path = f"/signin/learner/{user}"
        html = tablet.request("GET", path).decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        tablet.request("POST", path, form={"csrf_token": token, "secret": PIN}, expect=302)

    def open(self, tablet: Tablet, user: str) -> dict:
        html = tablet.request("GET", self.path).decode()
        token = re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)
        return {"html": html, "rng": random.Random(user), "token": token}

    @staticmethod
    def keep_practising(tablet: Tablet, html: str) -> str:
        more = re.search(r'<a class="button secondary" href="([^"]*more=1[^"]*)"', html)
        return tablet.request("GET", htmlmod.unescape(more.group(1))).decode()

    def answer(self, tablet: Tablet, state: dict) -> tuple[float, bool, float]:
        return {"script": self.answer_script, "form": self.answer_form,
                "event": self.answer_event}[self.way](tablet, state)

    def answer_event(self, tablet: Tablet, state: dict) -> tuple[float, bool, float]:
        """One answer event through the tablet JSON API, as a resource page sends its events."""
        state["n"] = state.get("n", 0) + 1
        event = {"event_id": f"bench-{state.setdefault('id', os.urandom(6).hex())}-{state['n']}", "pack_id": EXERCISE[0],
                 "node_id": EXERCISE[1], "type": "answer", "question_id": "add-two-digit",
                 "answer": answer_for(state["html"], state["rng"]), "correct": True}
        t0 = time.perf_counter()
        reply = json.loads(tablet.request("POST", "/api/v1/progress", {"events": [event]},
                                          headers={"X-CSRFToken": state["token"]}))
        posted = time.perf_counter() - t0
        return posted, reply.get("accepted") == 1, posted

    def answer_script(self, tablet: Tablet, state: dict) -> tuple[float, bool, float]:
        """One answer as the page's script sends it: one request; the next question comes in
        its reply. (seconds of the request, acknowledged, seconds of the cycle: the same)."""
        html = state["html"]
        if 'id="question"' not in html:  # opened after mastery: its "Keep practising" link
            html = self.keep_practising(tablet, html)
        url = htmlmod.unescape(re.search(r'data-check="([^"]+)"', html).group(1))
        attempt = re.search(r'name="attempt" value="([^"]*)"', html).group(1)
        body = {"attempt": attempt, "answer": {"answer": [answer_for(html, state["rng"])]}}
        t0 = time.perf_counter()
        reply = json.loads(tablet.request("POST", url, body,
                                          headers={"X-CSRFToken": state["token"]}))
        posted = time.perf_counter() - t0
        state["html"] = reply["next"]  # "Next question" or "Keep practising": no request
        return posted, "feedback" in reply, posted

    def answer_form(self, tablet: Tablet, state: dict) -> tuple[float, bool, float]:
        """One answer cycle, following the pages' own forms and redirects as a browser does:
        (seconds of the check POST, acknowledged, seconds of the cycle)."""
        html = state["html"]
        if 'id="question"' not in html:  # mastered: the page offers the way on, or more practice
            html = self.keep_practising(tablet, html)
        action, fields = form(html, 'id="question"')
        t0 = time.perf_counter()
        tablet.request("POST", action, form={**fields, "action": "check",
                                             "answer": answer_for(html, state["rng"])}, expect=302)
        posted = time.perf_counter() - t0
        ok = (tablet.location or "").endswith("#feedback")
        html = tablet.request("GET", follow(tablet.location)).decode()
        action, fields = form(html, 'class="practice-next"')
        tablet.request("POST", action, form={**fields, "action": "next"}, expect=302)
        state["html"] = tablet.request("GET", follow(tablet.location)).decode()
        return posted, ok, time.perf_counter() - t0

    def recorded(self) -> int:
        db = sqlite3.connect(self.home / "passerelle.db")
        try:
            return db.execute(ANSWER_EVENTS).fetchone()[0]
        finally:
            db.close()

    def recorded_of(self, learner: str) -> int:
        db = sqlite3.connect(self.home / "passerelle.db")
        try:
            return db.execute(ANSWER_EVENTS + " AND subject = ?", [learner]).fetchone()[0]
        finally:
            db.close()


# --- Kolibri --------------------------------------------------------------------------------

class KolibriSide:
    name = "Kolibri"

    def __init__(self, tmp: Path, learners: int, venv: str, channel_dir: Path):
        t0 = time.perf_counter()
        self.k = Kolibri(tmp, learners, venv, None, None, None, None, passwords=False)
        databases = sorted((channel_dir / "content" / "databases").glob("*.sqlite3"))
        if not databases:
            raise SystemExit(f"no channel database in {channel_dir}/content/databases")
        channel = databases[0].stem
        t1 = time.perf_counter()
        self.k.manage("importchannel", "disk", channel, str(channel_dir))
        self.k.manage("importcontent", "disk", channel, str(channel_dir))
        imported = time.perf_counter() - t1
        kdb = sqlite3.connect(self.k.home / "db.sqlite3")
        row = kdb.execute(
            "SELECT n.id, n.content_id, n.channel_id, n.title, n.available, a.mastery_model,"
            " a.assessment_item_ids FROM content_contentnode n JOIN content_assessmentmetadata a"
            " ON a.contentnode_id = n.id WHERE n.kind = 'exercise' AND n.channel_id = ?"
            " ORDER BY n.lft LIMIT 1", [channel]).fetchone()
        kdb.close()
        if row is None:
            raise SystemExit(f"channel {channel} has no exercise")
        node_id, content_id, channel_id, title, available, mastery, items = row
        mastery = json.loads(mastery or "{}")
        if not mastery.get("type"):
            # Kolibri's learn page takes the exercise's own mastery model; this channel's is
            # empty, so the one Passerelle's exercise uses: 5 right in a row.
            mastery = {"type": "num_correct_in_a_row_5"}
        self.start_body = {"node_id": node_id, "content_id": content_id, "channel_id": channel_id,
                           "kind": "exercise", "mastery_model": mastery}
        self.items = json.loads(items or "[]") or ["item"]
        print(f"Kolibri prepared in {time.perf_counter() - t0:.1f} s; channel {channel} imported"
              f" in {imported:.1f} s; exercise {title!r} ({node_id}, available={bool(available)},"
              f" mastery {mastery})")

    def start(self) -> None:
        self.k.start()
        self.url, self.pid = self.k.url, self.k.pid
        self.k.set_mode("none")

    def stop(self) -> None:
        self.k.stop()

    def users(self, n: int) -> list[str]:
        return self.k.users(n)

    def sign_in(self, tablet: Tablet, user: str) -> None:
        self.k.sign_in(tablet, user)

    def open(self, tablet: Tablet, user: str) -> dict:
        started = json.loads(tablet.request("POST", "/api/logger/trackprogress/", self.start_body))
        return {"session": started["session_id"], "rng": random.Random(user), "n": 0, "streak": 0,
                "progress": float(started.get("progress") or 0), "t": time.perf_counter()}

    def answer(self, tablet: Tablet, state: dict) -> tuple[float, bool, float]:
        correct = 1 if state["rng"].random() < RIGHT else 0
        state["streak"] = state["streak"] + 1 if correct else 0
        progress = max(state["progress"], min(1.0, state["streak"] / 5))
        now = time.perf_counter()
        body = {"time_spent_delta": round(now - state["t"], 3), "interactions": [{
            "item": self.items[state["n"] % len(self.items)], "correct": correct,
            "complete": bool(correct), "time_spent": round(now - state["t"], 3), "hinted": False,
            "error": False, "answer": {"input-number 1": {"currentValue": str(40 + correct)}},
            "simple_answer": str(40 + correct)}]}
        if progress > state["progress"]:
            body["progress_delta"] = round(progress - state["progress"], 3)
            state["progress"] = progress
        state["n"] += 1
        state["t"] = now
        t0 = time.perf_counter()
        reply = json.loads(tablet.request("PUT", f"/api/logger/trackprogress/{state['session']}/",
                                          body))
        posted = time.perf_counter() - t0
        return posted, bool(reply.get("attempts")), posted

    def recorded(self) -> int:
        db = sqlite3.connect(self.k.home / "db.sqlite3", timeout=60)
        try:
            return db.execute("SELECT count(*) FROM logger_attemptlog").fetchone()[0]
        finally:
            db.close()


# --- The run --------------------------------------------------------------------------------

def burst(side, n: int, answers: int, mode: str) -> dict:
    """N tablets signed in, exercise open; then ANSWERS answers each, `together` or back to back."""
    users = side.users(n)
    tablets = [Tablet(side.url, timeout=600) for _ in users]
    for tablet in tablets:
        tablet.retry_closed = True

    def ready(i: int) -> dict:
        side.sign_in(tablets[i], users[i])
        return side.open(tablets[i], users[i])

    with ThreadPoolExecutor(8) as pool:  # not timed: every tablet signed in, the exercise shown
        states = list(pool.map(ready, range(n)))
    before = side.recorded()
    start: dict = {}
    barrier = threading.Barrier(n, action=lambda: start.setdefault("t", time.perf_counter()))
    posts, cycles, acked, errors, ends = [], [], [], [], []
    lock = threading.Lock()

    def run(i: int) -> None:
        for k in range(answers):
            if k == 0 or mode == "together":
                barrier.wait()
            try:
                posted, ok, cycle = side.answer(tablets[i], states[i])
            except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue  # that answer is lost for the tablet; it goes on with the class
            with lock:
                posts.append(posted)
                cycles.append(cycle)
                acked.append(ok)
        with lock:
            ends.append(time.perf_counter())

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    cpu0 = cpu_tree_s(side.pid)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = cpu_tree_s(side.pid) - cpu0
    wall = (max(ends) if ends else time.perf_counter()) - start.get("t", time.perf_counter())
    retries = sum(t.retries for t in tablets)
    for tablet in tablets:
        tablet.close()
    stored, stable = -1, 0
    while stable < 2:  # anything still being written on the server
        time.sleep(0.5)
        now = side.recorded() - before
        stable, stored = (stable + 1, now) if now == stored else (0, now)
    ok = sum(acked)
    return {"n": n, "mode": mode, "sent": len(posts) + len(errors), "acked": ok, "stored": stored,
            "retries": retries,
            "errors": errors, "p50": pct(posts, 50), "p95": pct(posts, 95), "max": max(posts),
            "cycle_p95": pct(cycles, 95), "rate": ok / wall if wall > 0 else float("nan"),
            "cpu_ms": cpu * 1000 / max(1, ok), "load": os.getloadavg()[0]}


def show(side, r: dict) -> str:
    cycle = (f", answer cycle p95 {r['cycle_p95'] * 1000:.0f} ms"
             if getattr(side, "way", None) == "form" else "")
    lost = "none lost" if r["stored"] >= r["acked"] else f"{r['acked'] - r['stored']} LOST"
    return (f"  {side.name:10} {r['n']:3} tablets, {r['mode']:12}: answer request p50 "
            f"{r['p50'] * 1000:.0f} ms, p95 {r['p95'] * 1000:.0f} ms, max {r['max'] * 1000:.0f} ms"
            f"{cycle}; {r['rate']:.0f} answers/s; server CPU {r['cpu_ms']:.1f} ms per answer; "
            f"{r['sent']} sent, {r['acked']} acknowledged, {r['stored']} stored ({lost}); "
            f"resent on a new connection {r['retries']}; "
            f"errors {len(r['errors'])}{(' ' + r['errors'][0]) if r['errors'] else ''}; "
            f"load average {r['load']:.1f}")


def history(side: Passerelle, answers: int) -> dict:
    """The veteran (many past answers) and the newcomer (none) answer alternately, alone."""
    out = {}
    tablets = {}
    for who in ("newcomer", "veteran"):
        uid = getattr(side, who)
        tablets[who] = Tablet(side.url)
        side.sign_in(tablets[who], uid)
        out[who] = {"state": side.open(tablets[who], uid), "posts": [],
                    "past": side.recorded_of(uid)}
    for who in ("newcomer", "veteran"):  # warm-up, not counted: the first requests are slower
        for _ in range(3):
            side.answer(tablets[who], out[who]["state"])
    for _ in range(answers):
        for who in ("newcomer", "veteran"):
            posted, ok, _cycle = side.answer(tablets[who], out[who]["state"])
            if not ok:
                raise SystemExit(f"the {who}'s answer was not acknowledged")
            out[who]["posts"].append(posted)
    for who in out:
        tablets[who].close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tablets", default="30,200", help="tablets answering at once, e.g. 30,200")
    parser.add_argument("--answers", type=int, default=5, help="answers per tablet")
    parser.add_argument("--modes", default="together,back to back")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--history", type=int, default=5000,
                        help="past answers of the veteran learner (0: no history measure)")
    parser.add_argument("--no-history", dest="history", action="store_const", const=0)
    parser.add_argument("--history-answers", type=int, default=60,
                        help="answers of each of the two learners in the history measure")
    parser.add_argument("--path", choices=("script", "form", "event"), default="script",
                        help="Passerelle's tablets answer as the page's script does (one request"
                             " per answer), through the forms, as without JavaScript, or (the"
                             " stack's floor) as one JSON event to /api/v1/progress")
    parser.add_argument("--processes", type=int, default=1,
                        help="Passerelle served by this many processes sharing its port"
                             " (SO_REUSEPORT): a measure of what a second core would give, not"
                             " a way the box runs")
    parser.add_argument("--kolibri-venv", help="a virtualenv with kolibri 0.19 installed")
    parser.add_argument("--kolibri-channel", type=Path,
                        help="a channel folder (content/databases/<id>.sqlite3, content/storage)")
    args = parser.parse_args()
    tablets = sorted(int(x) for x in args.tablets.split(","))
    modes = [m.strip() for m in args.modes.split(",")]
    if args.kolibri_venv and not args.kolibri_channel:
        raise SystemExit("--kolibri-venv needs --kolibri-channel (Kolibri needs an exercise)")

    with tempfile.TemporaryDirectory(prefix="answers-bench-") as tmp:
        tmp = Path(tmp)
        sides = [Passerelle(tmp, max(tablets), args.history, args.path, args.processes)]
        if args.kolibri_venv:
            sides.append(KolibriSide(tmp, max(tablets), args.kolibri_venv,
                                     args.kolibri_channel.resolve()))
        results: dict = {}
        try:
            for r in range(args.rounds):
                print(f"round {r + 1}/{args.rounds}")
                for side in sides:
                    side.start()
                    try:
                        if r == 0 and args.history and isinstance(side, Passerelle):
                            h = history(side, args.history_answers)
                            for who, v in h.items():
                                print(f"  history: the {who} ({v['past']} past answers on the "
                                      f"exercise): answer POST p50 {pct(v['posts'], 50) * 1000:.1f}"
                                      f" ms, p95 {pct(v['posts'], 95) * 1000:.1f} ms "
                                      f"(n={len(v['posts'])}, one request at a time)")
                        for n in tablets:
                            for mode in modes:
                                res = burst(side, n, args.answers, mode)
                                results.setdefault((side.name, n, mode), []).append(res)
                                print(show(side, res), flush=True)
                    finally:
                        side.stop()
        finally:
            for side in sides:
                side.stop()
        print(f"\nmachine: {os.cpu_count()} cores, shared with other work; client and servers on"
              f" the same machine; Passerelle {args.processes} process(es) of 8 Waitress"
              f" threads, answering through its"
              f" {args.path}; Kolibri as it starts by default; load average now"
              f" {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print("\n| side | tablets | answering | answer request p50 / p95 (each round) | answers/s |"
              " server CPU per answer | sent / acknowledged / stored, failed | resent |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for (name, n, mode), runs in results.items():
            print(f"| {name} | {n} | {mode} | "
                  + "; ".join(f"{x['p50'] * 1000:.0f} / {x['p95'] * 1000:.0f} ms" for x in runs)
                  + " | " + ", ".join(f"{x['rate']:.0f}" for x in runs)
                  + " | " + ", ".join(f"{x['cpu_ms']:.1f} ms" for x in runs)
                  + " | " + " / ".join(str(sum(x[k] for x in runs)) for k in ("sent", "acked", "stored"))
                  + f", {sum(len(x['errors']) for x in runs)}"
                  + " | " + str(sum(x["retries"] for x in runs)) + " |")

if __name__ == "__main__":
    main()
