"""Packaging smoke test: the wheel holds what the box needs and runs from a fresh venv.

Nothing here imports the working tree: the server runs from a virtual environment
that has only the built wheel and its dependencies, as on a Pi.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import REPO, clean_env, run

pytestmark = pytest.mark.slow

# Data files that setup.cfg's package_data must carry: (source folder, glob, package folder).
DATA_FILES = [
    ("kiosk/templates", "**/*", "passerelle/kiosk/templates"),
    ("kiosk/static", "**/*", "passerelle/kiosk/static"),
    ("kiosk/translations", "**/*", "passerelle/kiosk/translations"),
    ("content/schema", "*.json", "passerelle/content/schema"),
    ("content/bundled", "**/*", "passerelle/content/bundled"),
    ("server", "*.sql", "passerelle/server"),
]


def source_data_files(source: Path) -> set[str]:
    expected = set()
    for folder, pattern, package in DATA_FILES:
        base = source / folder
        if not base.is_dir():
            continue
        for path in base.glob(pattern):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                expected.add(f"{package}/{path.relative_to(base).as_posix()}")
    return expected


def test_wheel_has_the_kiosk_and_content_data(wheel_names):
    for name in ("passerelle/kiosk/templates/base.html", "passerelle/kiosk/static/style.css",
                 "passerelle/server/cli/base.py"):
        assert name in wheel_names
    if (REPO / "content" / "schema" / "pack-v1.json").exists():
        assert "passerelle/content/schema/pack-v1.json" in wheel_names


def test_wheel_has_every_data_file_of_the_tree(source_copy, wheel_names):
    missing = sorted(source_data_files(source_copy) - wheel_names)
    assert not missing, f"files in the tree but not in the wheel: {missing[:20]}"


def test_wheel_has_compiled_translations(source_copy, wheel_names):
    """Each language with a .po catalog ships its compiled .mo (gettext reads only .mo)."""
    catalogs = sorted((source_copy / "kiosk" / "translations").glob("*/LC_MESSAGES/*.po"))
    for po in catalogs:
        relative = po.relative_to(source_copy / "kiosk" / "translations").with_suffix(".mo")
        assert f"passerelle/kiosk/translations/{relative.as_posix()}" in wheel_names


def test_wheel_has_only_the_package(wheel_names):
    tops = {name.split("/", 1)[0] for name in wheel_names}
    assert {t for t in tops if not t.endswith((".dist-info", ".data"))} == {"passerelle"}
    assert not [n for n in wheel_names if re.search(r"(^|/)(tests?|conftest\.py)(/|$)", n)]
    assert not [n for n in wheel_names if "__pycache__" in n or n.endswith(".pyc")]


def test_wheel_declares_the_console_script(wheel, wheel_names):
    import zipfile

    entry_points = next(n for n in wheel_names if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read(entry_points).decode()
    assert "passerelle = passerelle.server.cli:main" in text


def test_fresh_venv_runs_the_installed_copy(fresh_venv, wheel_version, tmp_path):
    proc = run([fresh_venv / "bin" / "passerelle", "--version"], env=clean_env(), cwd=tmp_path)
    assert proc.stdout.strip() == f"passerelle, version {wheel_version}"
    code = ("import passerelle.server, sys; print(passerelle.server.__file__); "
            "print(sys.flags.no_site, sys.prefix != sys.base_prefix)")
    proc = run([fresh_venv / "bin" / "python", "-c", code],
               env=clean_env(), cwd=tmp_path)
    module_file, flags = proc.stdout.splitlines()
    assert module_file.startswith(str(fresh_venv)), "imported from outside the fresh venv"
    assert flags == "0 True"
    cfg = (fresh_venv / "pyvenv.cfg").read_text()
    assert re.search(r"include-system-site-packages\s*=\s*false", cfg)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Starts the server with the kernel's "memory-deny-write-execute" switched on
# (prctl PR_SET_MDWE, Linux >= 6.3): what MemoryDenyWriteExecute=yes in the unit
# enforces with seccomp. Exits 77 where the kernel has no such switch.
MDWE_LAUNCHER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    print("no PR_SET_MDWE:", os.strerror(ctypes.get_errno()), file=sys.stderr)
    sys.exit(77)
os.execv(sys.argv[1], sys.argv[1:])
"""


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.parametrize("sandbox", ["plain", "memory-deny-write-execute"])
def test_server_from_the_wheel_serves_and_stops_on_sigterm(fresh_venv, wheel_version, tmp_path,
                                                          sandbox):
    home = tmp_path / "home"
    port = free_port()
    command = [str(fresh_venv / "bin" / "passerelle"), "--home", str(home), "serve",
               "--host", "127.0.0.1", "--port", str(port), "--threads", "2"]
    if sandbox != "plain":
        command = [sys.executable, "-c", MDWE_LAUNCHER] + command
    out_path, err_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(out_path, "w") as out, open(err_path, "w") as err:
        server = subprocess.Popen(command, stdout=out, stderr=err, cwd=tmp_path, env=clean_env())

    def output() -> str:
        return f"--- stdout\n{out_path.read_text()}\n--- stderr\n{err_path.read_text()}"

    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        health = None
        while time.monotonic() < deadline:
            if server.poll() is not None:
                if server.returncode == 77 and sandbox != "plain":
                    pytest.skip("this kernel has no PR_SET_MDWE (Linux < 6.3)")
                pytest.fail(f"the server exited {server.returncode} before answering\n{output()}")
            try:
                status, body = get(f"{base}/api/v1/health", timeout=2)
            except OSError:
                time.sleep(0.2)
                continue
            assert status == 200, body
            health = json.loads(body)
            break
        assert health is not None, f"no answer from {base} within 30 s\n{output()}"
        assert health["version"] == wheel_version
        assert isinstance(health["device_id"], str) and len(health["device_id"]) >= 8
        assert health["database"]["status"] == "ok"
        assert (home / "passerelle.db").exists() or any(home.glob("*.db"))

        # The kiosk renders from the packaged templates and serves the packaged stylesheet.
        status, page = get(f"{base}/")
        assert status == 200, page[:500]
        stylesheet = re.search(rb'href="(/static/[^"]+\.css)"', page)
        assert stylesheet, page[:1000]
        status, css = get(base + stylesheet.group(1).decode())
        assert status == 200 and css.strip()
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        try:
            returncode = server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
            pytest.fail(f"the server did not stop within 10 s of SIGTERM\n{output()}")
    assert returncode == 0, output()
    assert "stopped" in err_path.read_text(), output()
    assert f"http://127.0.0.1:{port}/" in out_path.read_text()
