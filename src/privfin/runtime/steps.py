"""Pipeline steps: the registry and the context a step runs in.

A step is a function ``fn(ctx, params)`` run by every party of a job, each in its own
process; it branches on ``ctx.role`` and calls the protocol's role function with the
party's own data and ``ctx.chan``. Steps pass results on through ``ctx.state`` (e.g. the
aligned table after PSI), report metrics with ``ctx.metric`` and outputs with
``ctx.save_table``. Metrics and artifacts become visible only if the whole job succeeds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from privfin.config import JobSpec
from privfin.errors import ConfigError
from privfin.runtime.store import Artifact
from privfin.transport.base import Channel

StepFn = Callable[["StepContext", dict[str, Any]], None]
STEPS: dict[str, StepFn] = {}


def step(name: str) -> Callable[[StepFn], StepFn]:
    """Register ``fn`` as pipeline step ``name``."""

    def deco(fn: StepFn) -> StepFn:
        STEPS[name] = fn
        return fn

    return deco


@dataclass
class Progress:
    """Live progress of the running step (read by ``privfin run`` while it waits)."""

    step: str = ""
    done: float = 0.0
    total: float = 0.0
    note: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {"step": self.step, "done": self.done, "total": self.total, "note": self.note}


@dataclass
class StepContext:
    """Everything a step may use at one party."""

    party: str
    job_id: str
    spec: JobSpec
    chan: Channel
    data_dir: Path
    workdir: Path
    state: dict[str, Any] = field(default_factory=dict)
    metrics: dict[tuple[str, str], Any] = field(default_factory=dict)
    artifacts: list[Artifact] = field(default_factory=list)
    progress_state: Progress = field(default_factory=Progress)
    step_name: str = ""

    @property
    def role(self) -> str:
        return self.spec.parties[self.party].role

    @property
    def is_active(self) -> bool:
        return self.role == "active"

    @property
    def active(self) -> str:
        return self.spec.active

    @property
    def passive(self) -> list[str]:
        return self.spec.passive

    @property
    def others(self) -> list[str]:
        return [p for p in self.spec.parties if p != self.party]

    def metric(self, key: str, value: Any) -> None:
        """Record a metric of the current step (JSON-able)."""
        self.metrics[(self.step_name, key)] = value

    def progress(self, done: float, total: float, note: str = "") -> None:
        with self.progress_state.lock:
            self.progress_state.done, self.progress_state.total, self.progress_state.note = done, total, note

    def save_table(self, name: str, df: pd.DataFrame, kind: str = "table") -> Path:
        """Write ``df`` as Parquet into the job's output folder and record it as an artifact."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        path = self.workdir / f"{name}.parquet"
        df.to_parquet(path, index=False)
        self.artifacts.append(Artifact(self.step_name, name, kind, str(path), path.stat().st_size))
        return path

    def param(self, params: dict[str, Any], key: str, typ: type | tuple[type, ...], default: Any,
              choices: tuple[Any, ...] | None = None) -> Any:
        """A step parameter, checked; errors name ``steps[i].key`` in the job file."""
        if key not in params:
            return default
        v = params[key]
        bad = not isinstance(v, typ) or (isinstance(v, bool) and typ in (int, float, (int, float)))
        if bad or (choices is not None and v not in choices):
            want = f"one of {choices}" if choices else (typ.__name__ if isinstance(typ, type) else str(typ))
            raise ConfigError(f"expected {want}, got {v!r}", key=f"steps.{self.step_name}.{key}", file=self.spec.file)
        return v


def run_in_memory(spec: JobSpec, data_dir: Path, timeout: float = 300.0) -> tuple[Any, dict[str, StepContext]]:
    """Run ``load`` and every step of ``spec``, every party a thread on the in-memory transport
    (tests and development; inputs relative to ``data_dir``, outputs under ``data_dir/<party>``).

    Returns the :class:`~privfin.transport.memory.MemoryNetwork` (its transcript) and each
    party's final context (state, metrics, artifacts). Nothing is written to a job store.
    """
    from privfin.config import StepSpec
    from privfin.transport.memory import MemoryNetwork, run_parties

    parties = tuple(spec.parties)
    net = MemoryNetwork(parties)

    def party(name: str) -> Callable[[Channel], StepContext]:
        def run(ch: Channel) -> StepContext:
            ctx = StepContext(name, "j", spec, ch, data_dir, data_dir / name)
            for st in [StepSpec("load"), *spec.steps]:
                ctx.step_name = st.name
                with ch.stage(st.name):
                    STEPS[st.name](ctx, st.params)
            return ctx
        return run

    return net, run_parties(net, {p: party(p) for p in parties}, timeout=timeout)
