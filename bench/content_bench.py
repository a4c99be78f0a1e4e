"""Content pipeline benchmark: import vs `cp -r`, update with 5% changed blobs, a 50,000-node pack.

Prints figures; never run by the tests. Each import runs in a child process so
that its peak RSS (resource.getrusage RUSAGE_CHILDREN) is the importer's alone.

    .venv/bin/python bench/content_bench.py --size-mb 1024 --files 5000 --nodes 50000
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, sqlite3, sys, time
import sqlite_utils
from passerelle.content import MIGRATIONS, Library
db_path, storage, tmp, pack = sys.argv[1:5]
def connect():
    return sqlite_utils.Database(sqlite3.connect(db_path, timeout=30))
db = connect(); db.execute("PRAGMA journal_mode = WAL"); MIGRATIONS.apply(db); db.close()
start = time.perf_counter()
result = Library(connect, storage, tmp).import_pack(pack)
print(json.dumps({"seconds": time.perf_counter() - start, "copied": result.bytes_copied,
                  "blobs_copied": result.blobs_copied, "status": result.status}))
"""


def make_pack(root: Path, size_mb: int, files: int, seed: bytes = b"") -> dict:
    (root / "files").mkdir(parents=True, exist_ok=True)
    per = max(1, size_mb * 1024 * 1024 // files)
    nodes = [{"id": "root", "parent": None, "kind": "topic", "title": "Bench", "files": []}]
    block = os.urandom(1024 * 1024)
    for i in range(files):
        head = f"{seed.decode()}{i}:".encode()
        data = head + (block * (per // len(block) + 1))[: per - len(head)]
        sha = hashlib.sha256(data).hexdigest()
        (root / "files" / sha).write_bytes(data)
        nodes.append({"id": f"doc{i}", "parent": "root", "kind": "document", "title": f"Doc {i}",
                      "files": [{"sha256": sha, "size": len(data), "mime": "application/pdf", "role": "main"}]})
    manifest = {"format": 1, "id": "bench-pack", "version": 1, "title": "Bench", "language": "en",
                "license": "CC0-1.0", "publisher": "bench", "created": "2026-01-01T00:00:00Z", "nodes": nodes}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def run_import(box: Path, pack: Path) -> dict:
    box.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    out = subprocess.run([sys.executable, "-c", CHILD, str(box / "db.sqlite"), str(box / "storage"),
                          str(box / "tmp"), str(pack)], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    result["peak_rss_mb"] = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    return result


def drop_caches_hint() -> None:
    subprocess.run(["sync"], check=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=1024)
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--nodes", type=int, default=50000)
    ap.add_argument("--dir", default=None, help="Work folder (default: a temp folder in the current disk).")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="content-bench-", dir=args.dir or ".")).resolve()
    try:
        pack = work / "pack"
        manifest = make_pack(pack, args.size_mb, args.files)
        total = sum(n["files"][0]["size"] for n in manifest["nodes"][1:])
        mb = total / 1e6
        drop_caches_hint()
        start = time.perf_counter()
        subprocess.run(["cp", "-r", str(pack / "files"), str(work / "cp-copy")], check=True)
        subprocess.run(["sync"], check=False)
        cp_s = time.perf_counter() - start
        box = work / "box"
        imp = run_import(box, pack)
        print(f"pack: {args.files} files, {mb:.0f} MB")
        print(f"cp -r + sync : {cp_s:7.2f} s  {mb / cp_s:8.1f} MB/s")
        print(f"import       : {imp['seconds']:7.2f} s  {mb / imp['seconds']:8.1f} MB/s   "
              f"(hash + fsync + catalog)  ratio import/cp = {imp['seconds'] / cp_s:.2f}x")
        print(f"import peak RSS: {imp['peak_rss_mb']:.0f} MB")

        # Update: 5% of the blobs change.
        changed = max(1, args.files // 20)
        m2 = json.loads((pack / "manifest.json").read_text())
        m2["version"] = 2
        new_bytes = 0
        for i in range(1, changed + 1):
            f = m2["nodes"][i]["files"][0]
            data = b"v2:" + (pack / "files" / f["sha256"]).read_bytes()
            sha = hashlib.sha256(data).hexdigest()
            (pack / "files" / sha).write_bytes(data)
            f.update(sha256=sha, size=len(data))
            new_bytes += len(data)
        (pack / "manifest.json").write_text(json.dumps(m2))
        upd = run_import(box, pack)
        print(f"update (5% = {changed} blobs changed): {upd['seconds']:.2f} s, copied "
              f"{upd['copied'] / 1e6:.1f} MB in {upd['blobs_copied']} blobs "
              f"(changed bytes: {new_bytes / 1e6:.1f} MB)")
        shutil.rmtree(pack)
        shutil.rmtree(box)

        # Many nodes.
        nodes_pack = work / "nodes"
        (nodes_pack / "files").mkdir(parents=True)
        blob = b"%PDF tiny"
        sha = hashlib.sha256(blob).hexdigest()
        (nodes_pack / "files" / sha).write_bytes(blob)
        nodes = [{"id": "root", "parent": None, "kind": "topic", "title": "Root", "files": []}]
        nodes += [{"id": f"n{i}", "parent": "root", "kind": "document", "title": f"Doc {i}",
                   "files": [{"sha256": sha, "size": len(blob), "mime": "application/pdf", "role": "main"}]}
                  for i in range(args.nodes)]
        (nodes_pack / "manifest.json").write_text(json.dumps({**manifest, "id": "nodes-pack", "nodes": nodes}))
        res = run_import(work / "box2", nodes_pack)
        print(f"import of {args.nodes} nodes: {res['seconds']:.2f} s, peak RSS {res['peak_rss_mb']:.0f} MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
