"""Fixtures for the packaging tests: one wheel, one wheelhouse and one fresh venv per session.

Building a wheel and making a virtual environment take seconds each on a Pi-class
machine, so the slow tests share them (session scope). The wheel is built from a
copy of the source tree, so that the build never writes into the working tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"
UNIT = PACKAGING / "passerelle.service"
SYSUSERS = PACKAGING / "passerelle.sysusers"
INSTALL_SH = PACKAGING / "install.sh"

# What a copy of the tree for building leaves out: environments, caches, VCS data.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc",
    ".pytest_cache", ".ruff_cache", ".hypothesis", "node_modules", "test-artifacts",
)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess: no PASSERELLE_* setting nor Python path leaks in."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PASSERELLE_") and k not in ("PYTHONPATH", "PYTHONHOME",
                                                              "VIRTUAL_ENV")}
    env.update(extra)
    return env


def run(cmd: list, *, timeout: float = 600, check: bool = True, **kw) -> subprocess.CompletedProcess:
    """Run a command, capture its output, and show it all if it fails."""
    proc = subprocess.run([str(c) for c in cmd], check=False, capture_output=True, text=True,
                          timeout=timeout, **kw)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}\n"
                    f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}", pytrace=False)
    return proc


@pytest.fixture(scope="session")
def source_copy(tmp_path_factory) -> Path:
    """The source tree as it is now, copied so that builds leave the working tree alone."""
    dest = tmp_path_factory.mktemp("source") / "passerelle"
    shutil.copytree(REPO, dest, ignore=_NOT_SOURCE, symlinks=True)
    return dest


@pytest.fixture(scope="session")
def wheel(source_copy, tmp_path_factory) -> Path:
    """The project's wheel, built like a release is (isolated build, no dependencies)."""
    out = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
         "-q", "-w", out, source_copy], env=clean_env(), cwd=out)
    wheels = list(out.glob("passerelle-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {out}, found {wheels}"
    return wheels[0]


@pytest.fixture(scope="session")
def wheel_names(wheel) -> set[str]:
    with zipfile.ZipFile(wheel) as zf:
        return set(zf.namelist())


@pytest.fixture(scope="session")
def wheelhouse(wheel, tmp_path_factory) -> Path:
    """The wheel and every dependency as wheels: what an offline box is installed from.

    Fetched once from the package registry (pip's cache makes reruns fast); every
    later install uses ``--no-index --find-links`` and needs no network.
    """
    out = tmp_path_factory.mktemp("wheelhouse")
    run([sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "-q",
         "-w", out, wheel], env=clean_env(), cwd=out)
    return out


@pytest.fixture(scope="session")
def fresh_venv(wheelhouse, tmp_path_factory) -> Path:
    """A new virtual environment (no system site-packages) with only the wheel installed."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    run([sys.executable, "-m", "venv", venv], env=clean_env())
    run([venv / "bin" / "python", "-m", "pip", "install", "--disable-pip-version-check", "-q",
         "--no-index", "--find-links", wheelhouse, "passerelle"], env=clean_env(), cwd=venv)
    return venv


@pytest.fixture(scope="session")
def wheel_version(wheel) -> str:
    # passerelle-0.1.0-py3-none-any.whl
    return wheel.name.split("-")[1]


@pytest.fixture(scope="session")
def debs(wheel, tmp_path_factory) -> tuple[Path, Path]:
    """``passerelle`` (amd64) and ``passerelle-hotspot``, built as ``make deb ARCH=amd64`` does."""
    out = tmp_path_factory.mktemp("debs")
    run([sys.executable, PACKAGING / "deb" / "build.py", "--arch", "amd64", "--out", out,
         "--wheel", wheel], env=clean_env(), timeout=900)
    (main,) = out.glob("passerelle_*_amd64.deb")
    (hotspot,) = out.glob("passerelle-hotspot_*_all.deb")
    return main, hotspot
