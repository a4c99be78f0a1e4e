"""Importing one Kolibri channel from a disk: a real Kolibri 0.19 side by side with Passerelle.

Usage:
  .venv/bin/python bench/kolibri_import_bench.py --kolibri-venv /tmp/kolibri-venv        # 20,000 nodes, ~1 GB
  .venv/bin/python bench/kolibri_import_bench.py --kolibri-venv /tmp/kolibri-venv --scale 0.1   # quick: ~100 MB
  .venv/bin/python bench/kolibri_import_bench.py                                          # Passerelle only

Getting a Kolibri (outside this repository; nothing of it is committed):
  python3 -m venv /tmp/kolibri-venv && /tmp/kolibri-venv/bin/pip install kolibri==0.19.5

The channel is written with Kolibri's content-database schema (v5, the DDL in
tests/fixtures/kolibri/) as "Export to drive" lays it out: ``KOLIBRI_DATA/content/
databases/<id>.sqlite3`` and ``content/storage/<a>/<b>/<md5>.<ext>``. It has
``--nodes`` nodes (a root, 20 topics of 20 subtopics, resources under those) of every
kind both sides can show: low-resolution videos with thumbnails, PDFs, MP3s, HTML5
zips and Perseus exercises; file contents are random (incompressible), sized so the
whole channel is about ``--scale`` GB. Both sides read the same folder on the same
disk, in a fresh home each run, with the folder read once beforehand so neither
side starts with a cold page cache that the other warmed.

- Kolibri: ``kolibri manage importchannel disk ID DIR`` then ``kolibri manage
  importcontent disk ID DIR`` in a provisioned KOLIBRI_HOME (provisioning and
  Kolibri's first start-up migrations are not timed), telemetry and zeroconf off,
  proxies pointed at a dead local port so nothing leaves 127.0.0.1.
- Passerelle: ``passerelle content import DIR --channel ID``.
- With ``--lan``: the filled Kolibri is then served by ``kolibri start`` on 127.0.0.1 and
  Passerelle imports the channel from it, ``passerelle content import http://127.0.0.1:PORT/
  --channel ID``, through Kolibri's public content API.

Reported for each: wall time (and, for Passerelle, the time until the catalogue
commit, after which the channel is browsable; its full-text search index, which
Kolibri does not build, is written after that), CPU time of the process tree,
peak memory of the process tree (proportional set size of every process summed,
sampled every 50 ms: forked workers' shared pages count once; and the largest
single process's maximum RSS from the kernel), and the disk the import added
(content files plus databases).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _box import PASSERELLE, REPO, free_port, tree_pids  # noqa: E402
from kolibri_bench import kolibri_env, wait_for  # noqa: E402

SCHEMA = REPO / "tests" / "fixtures" / "kolibri" / "SCHEMA_content_db_5.sql"
CHANNEL = "be4c4be4c4be4c4be4c4be4c4be4c4be"


def hexid(seed: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, seed).hex


# --- the channel --------------------------------------------------------------------------------

def perseus(seed: int, rnd: random.Random) -> bytes:
    """A small exercise of 5 numeric questions, stored as Studio zips them."""
    buf = io.BytesIO()
    ids = [f"q{seed}x{i}" for i in range(5)]
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("exercise.json", json.dumps({"all_assessment_items": ids, "mastery_model": "m_of_n",
                                                 "m": 3, "n": 5, "randomize": True}))
        for qid in ids:
            a, b = rnd.randint(1, 99), rnd.randint(1, 99)
            zf.writestr(f"{qid}.json", json.dumps({
                "question": {"content": f"What is ${a} + {b}$? [[\u2603 numeric-input 1]]", "images": {},
                             "widgets": {"numeric-input 1": {"type": "numeric-input", "options": {"answers": [
                                 {"value": a + b, "status": "correct", "maxError": 0, "strict": False,
                                  "simplify": "required"}]}}}},
                "answerArea": {}, "hints": [{"content": f"${a} + {b} = {a + b}$", "images": {}, "widgets": {}}],
                "itemDataVersion": {"major": 0, "minor": 1}}))
    return buf.getvalue()


def pdf(n: int, rnd: random.Random, size: int) -> bytes:
    """A one-page PDF with a line of text and ``size`` bytes of image data (what makes real PDFs big)."""
    text = f"BT /F1 12 Tf 72 720 Td (Lesson {n}: reading and counting) Tj ET".encode()
    image = rnd.randbytes(size)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >>"
        b" /XObject << /Im1 6 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /XObject /Subtype /Image /Width 1 /Height 1 /ColorSpace /DeviceGray /BitsPerComponent 8"
        b" /Filter /DCTDecode /Length %d >>\nstream\n" % len(image) + image + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def html5(rnd: random.Random, size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("index.html", "<!doctype html><title>app</title><script src=app.js></script>")
        zf.writestr("app.js", rnd.randbytes(size))
    return buf.getvalue()


def build_channel(root: Path, nodes: int, scale: float, seed: int = 7) -> dict:
    """Write a KOLIBRI_DATA folder; returns what it holds."""
    rnd = random.Random(seed)
    db_dir = root / "content" / "databases"
    storage = root / "content" / "storage"
    db_dir.mkdir(parents=True)
    storage.mkdir(parents=True)
    conn = sqlite3.connect(db_dir / f"{CHANNEL}.sqlite3")
    conn.executescript(SCHEMA.read_text())
    conn.execute("INSERT INTO content_language VALUES ('en', 'en', NULL, 'English', 'ltr')")
    # The tree first (Kolibri needs MPTT lft/rght/level to find a topic's files).
    tree: dict[str | None, list[str]] = {None: [CHANNEL]}
    kind: dict[str, str] = {CHANNEL: "topic"}
    title: dict[str, str] = {CHANNEL: "Bench channel"}
    subtopics = []
    for t in range(20):
        topic = hexid(f"topic{t}")
        tree.setdefault(CHANNEL, []).append(topic)
        kind[topic], title[topic] = "topic", f"Topic {t}"
        for s in range(20):
            sub = hexid(f"topic{t}-{s}")
            tree.setdefault(topic, []).append(sub)
            kind[sub], title[sub] = "topic", f"Topic {t}.{s}"
            subtopics.append(sub)
    resources = max(0, nodes - 1 - 20 - len(subtopics))
    kinds = ["document"] * 13 + ["audio"] * 4 + ["exercise"] * 5 + ["html5"] * 2 + ["video"]
    for i in range(resources):
        node = hexid(f"resource{i}")
        tree.setdefault(subtopics[i % len(subtopics)], []).append(node)
        kind[node], title[node] = kinds[i % len(kinds)], f"Resource {i}"
    # Sizes: videos take about 3/4 of the bytes, as in real channels.
    n_video = sum(1 for k in kind.values() if k == "video")
    total = int(scale * 1024**3)
    video_size = int(total * 0.75 / max(1, n_video))
    small = int(total * 0.25 / max(1, resources - n_video))
    lft, rows, files, localfiles = 0, [], [], {}
    stats = {"nodes": 0, "files": 0, "bytes": 0}

    def add_file(node: str, preset: str, data: bytes, ext: str, thumbnail: bool = False) -> None:
        md5 = hashlib.md5(data).hexdigest()
        if md5 not in localfiles:
            localfiles[md5] = (md5, ext, True, len(data))
            target = storage / md5[0] / md5[1] / f"{md5}.{ext}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            stats["files"] += 1
            stats["bytes"] += len(data)
        files.append((hexid(node + preset), preset, thumbnail, thumbnail, 1, node, None, md5))

    def visit(node: str, parent: str | None, level: int, order: int) -> None:
        nonlocal lft
        lft += 1
        mine = lft
        for j, child in enumerate(tree.get(node, [])):
            visit(child, node, level + 1, j)
        lft += 1
        rows.append((node, "CC BY", None, title[node], False, hexid("content" + node), CHANNEL, "", float(order),
                     "Bench", "Bench", kind[node], True, "{}", None, None, None, None, None, None,
                     60 if kind[node] in ("video", "audio") else None, mine, lft, 1, level, "en", parent))
        stats["nodes"] += 1
        k = kind[node]
        jitter = rnd.uniform(0.5, 1.5)
        if k == "video":
            add_file(node, "low_res_video", rnd.randbytes(int(video_size * jitter)), "mp4")
            add_file(node, "video_thumbnail", rnd.randbytes(4000), "png", thumbnail=True)
        elif k == "document":
            add_file(node, "document", pdf(len(rows), rnd, int(small * jitter)), "pdf")
        elif k == "audio":
            add_file(node, "audio", b"ID3" + rnd.randbytes(int(small * jitter)), "mp3")
        elif k == "html5":
            add_file(node, "html5_zip", html5(rnd, int(small * jitter)), "zip")
        elif k == "exercise":
            add_file(node, "exercise", perseus(len(rows), rnd), "perseus")

    sys.setrecursionlimit(10_000)
    visit(CHANNEL, None, 0, 0)
    conn.executemany(f"INSERT INTO content_contentnode VALUES ({','.join('?' * 27)})", rows)
    conn.executemany("INSERT INTO content_localfile VALUES (?,?,?,?)", list(localfiles.values()))
    conn.executemany("INSERT INTO content_file VALUES (?,?,?,?,?,?,?,?)", files)
    conn.executemany("INSERT INTO content_assessmentmetadata VALUES (?,?,?,?,?,?,?)", [
        (hexid("am" + r[0]), "[]", 5, json.dumps({"type": "m_of_n", "m": 3, "n": 5}), True, False, r[0])
        for r in rows if r[11] == "exercise"])
    conn.execute(
        "INSERT INTO content_channelmetadata (id, name, description, tagline, author, version, thumbnail,"
        " last_updated, min_schema_version, root_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
        [CHANNEL, "Bench channel", "20,000 nodes for the import benchmark", None, "Bench", 1, "",
         None, "5", CHANNEL])
    conn.commit()
    conn.close()
    return stats


def warm(folder: Path) -> None:
    """Read every file once, so that both sides start with the same page cache."""
    buf = bytearray(1 << 20)
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb", buffering=0) as f:
                while f.readinto(buf):
                    pass


# --- measuring ---------------------------------------------------------------------------------

def du(*paths: Path) -> int:
    total = 0
    for p in paths:
        if p.is_file():
            total += p.stat().st_blocks * 512
        elif p.is_dir():
            for f in p.rglob("*"):
                if f.is_file() and not f.is_symlink():
                    total += f.stat().st_blocks * 512
    return total


def pss_tree_mb(root: int) -> float:
    """Proportional memory of a process and its children: a forked worker's pages shared with
    its parent count once, not once per process as with RSS."""
    total = 0
    for pid in tree_pids(root):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def run_measured(steps: list[list[str]], env: dict, log: Path, marker: str | None = None) -> dict:
    """Run commands one after the other; wall time, CPU and the process tree's peak memory.

    ``marker``: a text the last command prints at a point worth timing (the seconds until
    it appears are reported as ``seconds_to_marker``)."""
    peak = 0.0
    maxrss = 0.0
    cpu = 0.0
    marked = None
    ends, cpus, peaks = [], [], []
    t0 = time.perf_counter()
    for cmd in steps:
        out = open(log, "ab")  # noqa: SIM115 - closed below, after the reader
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=out)
        stop = threading.Event()

        def read(proc=proc, out=out) -> None:
            nonlocal marked
            for line in proc.stdout:
                if marked is None and marker and marker.encode() in line:
                    marked = time.perf_counter() - t0
                out.write(line)

        def sample(pid: int = proc.pid, stop: threading.Event = stop) -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, pss_tree_mb(pid))
                stop.wait(0.05)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        # The kernel's own figure for the largest process of this command (a check on the sampling).
        maxrss = max(maxrss, usage.ru_maxrss / 1024)
        cpu += usage.ru_utime + usage.ru_stime  # this command and every process it waited for
        stop.set()
        sampler.join()
        reader.join()
        out.close()
        if code:
            raise SystemExit(f"{' '.join(cmd)} failed ({code}); see {log}")
        ends.append(time.perf_counter() - t0)
        cpus.append(cpu - sum(cpus))
        peaks.append(peak)
    wall = time.perf_counter() - t0
    return {"seconds": wall, "cpu_seconds": cpu, "peak_tree_mb": peak, "max_child_rss_mb": maxrss,
            "seconds_to_marker": marked, "step_ends": ends, "step_cpu_seconds": cpus,
            "step_peak_tree_mb": peaks, "load": os.getloadavg()}


def passerelle_import(tmp: Path, data: Path) -> dict:
    home = tmp / "passerelle-home"
    env = {**os.environ, "PASSERELLE_HOME": str(home), "PASSERELLE_DISCOVERY": "false"}
    subprocess.run([PASSERELLE, "--home", str(home), "content", "list"], env=env, check=True,
                   stdout=subprocess.DEVNULL)  # migrations: not timed, as for Kolibri
    before = du(home)
    # --json: progress lines; "catalog" is the last one before the catalogue's COMMIT, after
    # which the channel is browsable; the search index of titles and descriptions is written
    # after it, and the import ends. The text inside the documents (PDF, html5, exercises) is
    # then indexed by `index text`, which is what a serving box does in the background.
    figures = run_measured([[PASSERELLE, "--home", str(home), "content", "import", str(data),
                             "--channel", CHANNEL, "--json"],
                            [PASSERELLE, "--home", str(home), "index", "text"]], env, tmp / "passerelle.log",
                           marker='"label": "catalog"')
    figures["usable_seconds"] = figures["step_ends"][0]
    figures["disk_bytes"] = du(home) - before
    return figures


def lan_import(tmp: Path, venv: str) -> dict:
    """Passerelle importing the channel from the Kolibri just filled, served by ``kolibri start`` on
    127.0.0.1, through Kolibri's public content API (what one Kolibri device imports from)."""
    env = kolibri_env(tmp / "kolibri-home")
    port, zip_port = free_port(), free_port()
    with open(tmp / "kolibri-serve.log", "ab") as log:
        proc = subprocess.Popen([str(Path(venv) / "bin" / "kolibri"), "start", "--foreground", "--port", str(port),
                                 "--zip-port", str(zip_port)], env=env, stdout=log, stderr=log,
                                start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(url + "/api/public/info/", proc, deadline_s=300)
        home = tmp / "passerelle-lan-home"
        penv = {**os.environ, "PASSERELLE_HOME": str(home), "PASSERELLE_DISCOVERY": "false"}
        subprocess.run([PASSERELLE, "--home", str(home), "content", "list"], env=penv, check=True,
                       stdout=subprocess.DEVNULL)
        figures = run_measured([[PASSERELLE, "--home", str(home), "content", "import", url + "/",
                                 "--channel", CHANNEL, "--json"]], penv, tmp / "passerelle-lan.log",
                               marker='"label": "catalog"')
        figures["disk_bytes"] = du(home)
        return figures
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def kolibri_import(tmp: Path, data: Path, venv: str) -> dict:
    home = tmp / "kolibri-home"
    env = kolibri_env(home)
    kolibri = str(Path(venv) / "bin" / "kolibri")
    t0 = time.perf_counter()
    with open(tmp / "kolibri.log", "ab") as log:
        subprocess.run([kolibri, "manage", "provisiondevice", "--facility", "Bench", "--superusername", "admin",
                        "--superuserpassword", "bench admin passphrase", "--preset", "formal",
                        "--language_id", "en", "--noinput"], env=env, check=True, stdout=log, stderr=log)
    print(f"  Kolibri provisioned in {time.perf_counter() - t0:.0f} s (not timed)")
    before = du(home)
    manage = [kolibri, "manage", "--skip-update"]
    figures = run_measured([manage + ["importchannel", "disk", CHANNEL, str(data)],
                            manage + ["importcontent", "disk", CHANNEL, str(data)]], env, tmp / "kolibri.log")
    figures["disk_bytes"] = du(home) - before
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kolibri-venv", help="a virtualenv with kolibri==0.19.5 installed")
    parser.add_argument("--nodes", type=int, default=20_000)
    parser.add_argument("--scale", type=float, default=1.0, help="GB of files in the channel (1.0: about 1 GB)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--data", help="a KOLIBRI_DATA folder this benchmark built before (--keep): not built again")
    parser.add_argument("--lan", action="store_true",
                        help="then serve the filled Kolibri and import from it over HTTP (needs --kolibri-venv)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kolibri-import-bench-"))
    try:
        t0 = time.perf_counter()
        if args.data:
            data = Path(args.data)
            stats = {"nodes": args.nodes, "files": sum(1 for p in (data / "content" / "storage").rglob("*.*")),
                     "bytes": du(data / "content" / "storage")}
        else:
            data = tmp / "KOLIBRI_DATA"
            stats = build_channel(data, args.nodes, args.scale)
        print(f"channel: {stats['nodes']} nodes, {stats['files']} files, {stats['bytes'] / 1e6:.0f} MB "
              f"(built in {time.perf_counter() - t0:.0f} s) in {data}")
        results = {}
        warm(data)
        results["Passerelle"] = passerelle_import(tmp, data)
        if args.kolibri_venv:
            warm(data)
            results["Kolibri 0.19"] = kolibri_import(tmp, data, args.kolibri_venv)
            if args.lan:
                results["Passerelle LAN"] = lan_import(tmp, args.kolibri_venv)
        print(f"\n{'':<14}{'time':>10}{'installed':>11}{'usable':>9}{'CPU':>10}{'peak tree PSS':>16}"
              f"{'max RSS':>10}{'disk added':>12}{'load':>16}")
        for name, r in results.items():
            installed = f"{r['seconds_to_marker']:.1f}s" if r.get("seconds_to_marker") else "-"
            usable = f"{r['usable_seconds']:.1f}s" if r.get("usable_seconds") else "-"
            print(f"{name:<14}{r['seconds']:>9.1f}s{installed:>11}{usable:>9}{r['cpu_seconds']:>9.1f}s"
                  f"{r['peak_tree_mb']:>13.0f} MB{r['max_child_rss_mb']:>7.0f} MB{r['disk_bytes'] / 1e6:>9.0f} MB"
                  f"  {' '.join(f'{x:.1f}' for x in r['load'])}")
        if "Kolibri 0.19" in results:
            k, p = results["Kolibri 0.19"]["seconds"], results["Passerelle"]
            print(f"Passerelle's import: {p['step_cpu_seconds'][0]:.1f}s CPU, peak {p['step_peak_tree_mb'][0]:.0f} MB; "
                  f"its documents' text: {p['step_cpu_seconds'][1]:.1f}s CPU")
            print(f"Passerelle is {k / p['usable_seconds']:.1f}x faster until usable, "
                  f"{k / p['seconds']:.1f}x until its documents' text is indexed too")
        print(json.dumps({"channel": stats, "results": results}))
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
