"""Test helper: the pipeline's ``lr`` step at every party, on given aligned tables, in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from privfin.config import JobSpec, PartySpec, StepSpec
from privfin.pipeline import lr_step
from privfin.runtime.inputs import PartyTable
from privfin.runtime.steps import StepContext
from privfin.transport.memory import MemoryNetwork, run_parties


def run_lr_step(tmp_path: Path, ids: np.ndarray, F: dict[str, pd.DataFrame], y: np.ndarray,
                lr_params: dict[str, Any], timeout: float = 60) -> tuple[MemoryNetwork, dict[str, StepContext]]:
    """Run ``lr_step`` with ``lr_params`` at every party of ``F`` (``"bank"`` active with labels
    ``y``, the others passive), each starting from its rows ``F[p]`` under the shared ``ids``;
    returns the network (transcript) and every party's context."""
    parties = {p: PartySpec(p, "active", "b.csv", label_column="y") if p == "bank" else PartySpec(p, "passive", f"{p}.csv")
               for p in F}
    spec = JobSpec(name="t", parties=parties, steps=(StepSpec("psi", {}), StepSpec("lr", lr_params)), text="")
    net = MemoryNetwork(tuple(F))
    ctxs: dict[str, StepContext] = {}

    def role(p: str) -> Any:
        def run(c: Any) -> None:
            t = PartyTable(ids, F[p], y if p == "bank" else None, Path("x"))
            ctxs[p] = StepContext(party=p, job_id="j", spec=spec, chan=c, data_dir=tmp_path, workdir=tmp_path / p,
                                  state={"table": t}, step_name="lr")
            lr_step(ctxs[p], lr_params)
        return run

    run_parties(net, {p: role(p) for p in F}, timeout=timeout)
    return net, ctxs
