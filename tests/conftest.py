"""Shared fixtures: paths to the shared real data and a serial executor."""

from __future__ import annotations

from pathlib import Path

import pytest

from privfin.runtime.executor import SerialExecutor, set_executor

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
FATE_DIR = SHARED_DATA / "fate"


@pytest.fixture
def fate_dir() -> Path:
    """The FATE-style real data; skips the test with a reason where ../shared is absent."""
    if not (FATE_DIR / "default_credit_hetero_guest.csv").exists():
        pytest.skip(f"real data not found at {FATE_DIR} (../shared/data is absent on this machine)")
    return FATE_DIR


@pytest.fixture
def serial_executor():
    """Run executor work in-process (keeps unit tests quick and deterministic)."""
    old = set_executor(SerialExecutor())
    yield
    if old is not None:
        set_executor(old)

