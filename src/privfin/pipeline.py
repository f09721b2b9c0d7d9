"""The built-in pipeline steps, each a thin adapter from a job step to a protocol.

Every job starts with ``load``. The other steps are named in ``job.toml``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from privfin.errors import ProtocolError
from privfin.runtime.inputs import load_party_table
from privfin.runtime.steps import StepContext, step
from privfin.transport.base import Kind


@step("load")
def load(ctx: StepContext, params: dict[str, Any]) -> None:
    """Load and check this party's own input; nothing is sent."""
    table = load_party_table(ctx.spec, ctx.party, ctx.data_dir)
    ctx.state["table"] = table
    ctx.metric("rows", table.n_rows)
    ctx.metric("features", int(table.features.shape[1]))
    if table.label is not None:
        ctx.metric("positive_rate", round(float(table.label.mean()), 6))


@step("transfer")
def transfer(ctx: StepContext, params: dict[str, Any]) -> None:
    """Network diagnostic: the active party sends random filler to every passive party.

    Parameters: ``size_mb`` per message (default 1), ``rounds`` (default 1), ``pause_s``
    between rounds (default 0). Each receiver answers with the byte count it got.

    Security: the filler is fresh random bytes; receivers learn nothing about any data.
    """
    size_mb = ctx.param(params, "size_mb", (int, float), 1)
    rounds = ctx.param(params, "rounds", int, 1)
    pause = ctx.param(params, "pause_s", (int, float), 0)
    n = int(size_mb * (1 << 20))
    start = time.perf_counter()
    for r in range(rounds):
        if ctx.is_active:
            filler = np.frombuffer(np.random.default_rng().bytes(n), dtype=np.uint8)
            ctx.chan.broadcast("transfer/filler", filler, kind=Kind.PLAINTEXT, to=ctx.passive)
            got = ctx.chan.gather("transfer/ack", frm=ctx.passive)
            short = [p for p, v in got.items() if v != n]
            if short:
                raise ProtocolError(f"'{short[0]}' acknowledged a wrong byte count")
        else:
            data = ctx.chan.recv(ctx.active, "transfer/filler", expect=np.ndarray)
            ctx.chan.send(ctx.active, "transfer/ack", int(data.nbytes), kind=Kind.AGGREGATE)
        ctx.progress(r + 1, rounds)
        if pause:
            time.sleep(pause)
    if ctx.is_active:
        wall = time.perf_counter() - start - pause * rounds
        ctx.metric("mb_per_s", round(size_mb * rounds * len(ctx.passive) / max(wall, 1e-9), 1))
