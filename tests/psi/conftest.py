"""PSI tests run the curve work in-process (small sets); one test uses the process pool."""

from __future__ import annotations

import pytest

from privfin.runtime.executor import SerialExecutor, set_executor


@pytest.fixture(autouse=True)
def _serial_executor():
    """PSI unit tests run the curve work in-process (small sets); one test uses the pool."""
    old = set_executor(SerialExecutor())
    yield
    if old is not None:
        set_executor(old)
