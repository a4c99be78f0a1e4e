"""Shared fixtures of the content tests (helpers live in ``packhelpers.py``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# --import-mode=importlib does not put test folders on sys.path; the helpers must be importable.
sys.path.insert(0, str(Path(__file__).parent))

from packhelpers import Box, write_source
from passerelle.content import Library


@pytest.fixture
def box(tmp_path: Path) -> Box:
    return Box(tmp_path / "box")


@pytest.fixture
def library(box: Box) -> Library:
    return box.library()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_source(tmp_path / "src")


@pytest.fixture(autouse=True)
def _reproducible(monkeypatch):
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    os.environ.pop("PASSERELLE_HOME", None)
