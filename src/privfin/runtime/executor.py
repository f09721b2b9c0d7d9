"""Executor interface for heavy per-party work (curve operations, encryption, histograms).

Protocols call :func:`get_executor` and use ``map`` / ``map_chunks``; the default is a
local process pool sized to the machine's cores. Another engine (e.g. Ray) can be
plugged in with :func:`set_executor` without touching protocol code. Work functions
must be importable top-level functions, and their arguments plain data.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor as _FuturesExecutor
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")


class Executor(ABC):
    """Runs independent tasks, possibly in parallel."""

    @property
    @abstractmethod
    def n_workers(self) -> int: ...

    @abstractmethod
    def map(self, fn: Callable[..., R], *iterables: Iterable[Any]) -> list[R]:
        """``[fn(*args) for args in zip(*iterables)]``, in order."""

    def map_chunks(self, fn: Callable[..., R], items: Sequence[Any] | np.ndarray, *args: Any,
                   min_chunk: int = 1) -> list[R]:
        """Split ``items`` into about one chunk per worker, apply ``fn(chunk, *args)``.

        Returns the per-chunk results in order; the caller concatenates them.
        """
        n = len(items)
        if n == 0:
            return []
        parts = max(1, min(self.n_workers * 2 if n >= 4 * min_chunk * self.n_workers else self.n_workers,
                           n // max(min_chunk, 1) or 1))
        bounds = np.linspace(0, n, parts + 1).astype(int)
        chunks = [items[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        if len(chunks) == 1:
            return [fn(chunks[0], *args)]
        return self.map(fn, chunks, *[[a] * len(chunks) for a in args])

    def shutdown(self) -> None:
        """Release workers (no-op by default)."""


class SerialExecutor(Executor):
    """Runs everything in the calling process (small inputs, tests, debugging)."""

    @property
    def n_workers(self) -> int:
        return 1

    def map(self, fn: Callable[..., R], *iterables: Iterable[Any]) -> list[R]:
        return [fn(*args) for args in zip(*iterables)]


class LocalProcessExecutor(Executor):
    """A process pool on this machine; started lazily, one worker per core by default."""

    def __init__(self, n_workers: int | None = None) -> None:
        self._n = n_workers or os.cpu_count() or 1
        self._pool: _FuturesExecutor | None = None
        self._lock = threading.Lock()

    @property
    def n_workers(self) -> int:
        return self._n

    def _get_pool(self) -> _FuturesExecutor:
        with self._lock:
            if self._pool is None:
                # forkserver: safe beside gRPC's threads, cheaper than spawn for repeated use
                ctx = multiprocessing.get_context("forkserver")
                self._pool = ProcessPoolExecutor(max_workers=self._n, mp_context=ctx)
            return self._pool

    def map(self, fn: Callable[..., R], *iterables: Iterable[Any]) -> list[R]:
        args = list(zip(*iterables))
        if self._n == 1 or len(args) <= 1:
            return [fn(*a) for a in args]
        return list(self._get_pool().map(fn, *zip(*args)))

    def shutdown(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None


_current: Executor | None = None
_current_lock = threading.Lock()


def get_executor() -> Executor:
    """The executor protocols should use (a local process pool unless set otherwise)."""
    global _current
    with _current_lock:
        if _current is None:
            n = os.environ.get("PRIVFIN_WORKERS")
            _current = SerialExecutor() if n == "1" else LocalProcessExecutor(int(n) if n else None)
        return _current


def set_executor(executor: Executor) -> Executor | None:
    """Install ``executor`` for this process; returns the previous one (not shut down)."""
    global _current
    with _current_lock:
        old, _current = _current, executor
        return old


@atexit.register
def _shutdown_at_exit() -> None:
    if _current is not None:
        _current.shutdown()
