"""The risk-scorecard demo: a bank and a government data center, each its own process, on
loopback TLS.

One job runs the whole pipeline (:data:`PIPELINE`): PSI -> binning and WOE/IV -> screening ->
vertical logistic regression and SecureBoost, each beside its bank-only counterpart ->
scorecard -> evaluation on the holdout; the bank's HTML report is written after the job
succeeds and stored in its job store.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privfin.errors import ConfigError
from privfin.runtime.steps import STEPS
from privfin.scenarios import synth
from privfin.scenarios.local import BANK, GOV, ScenarioResult, job_toml, run_local, write_report

FATE_GUEST, FATE_HOST = "default_credit_hetero_guest.csv", "default_credit_hetero_host.csv"

# The risk-scorecard pipeline in order.
PIPELINE: list[tuple[str, dict[str, Any]]] = [
    ("psi", {}),
    ("woe", {"share_woe": True}),
    ("screen", {}),
    ("lr", {"calibrate": True}),  # Platt-scaled on a validation band: scorecard points on the log-odds scale
    ("boost", {}),
    ("scorecard", {}),
    ("evaluate", {}),
]

__all__ = ["BANK", "GOV", "PIPELINE", "DemoResult", "prepare", "run_demo", "summary"]


@dataclass(frozen=True)
class DemoResult(ScenarioResult):
    """The run (job record, exit codes, configs), the wall time and the bank's report."""

    report: Path | None = None


def prepare(workdir: Path, data_dir: Path | None, rows: int, seed: int) -> tuple[Path, Path]:
    """Inputs of both parties: the real FATE split read in place, or generated data."""
    if data_dir is not None:
        data_dir = Path(data_dir).resolve()
        for f in (FATE_GUEST, FATE_HOST):
            if not (data_dir / f).is_file():
                raise ConfigError(f"expected {f} in the data dir", key="--data-dir", file=str(data_dir))
        return data_dir / FATE_GUEST, data_dir / FATE_HOST
    data = synth.generate(n_rows=rows, seed=seed)
    paths = synth.write(data, workdir / "generated")
    return Path(paths["bank"]).resolve(), Path(paths["gov"]).resolve()


def run_demo(workdir: Path | None = None, data_dir: Path | None = None, rows: int = 20000, seed: int = 0,
             timeout_s: float = 300.0, on_status: Any = None,
             steps: list[tuple[str, dict[str, Any]]] | None = None) -> DemoResult:
    """Run the pipeline with every party its own process; the bank's report if it succeeded."""
    t0 = time.perf_counter()
    workdir = Path(workdir or tempfile.mkdtemp(prefix="privfin-demo-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    bank_in, gov_in = prepare(workdir, data_dir, rows, seed)
    steps = [(n, p) for n, p in (steps if steps is not None else PIPELINE) if n in STEPS]
    run = run_local(workdir, job_toml("risk-scorecard-demo", bank_in, gov_in, steps, label="y"),
                    timeout_s=timeout_s, on_status=on_status)
    report = write_report(run) if run.status["status"] == "succeeded" else None
    return DemoResult(run, round(time.perf_counter() - t0, 2), report)


def summary(res: DemoResult) -> dict[str, Any]:
    """Bank-only against federated AUC/KS on the holdout (the ``evaluate`` step's metrics)."""
    m = res.metrics("evaluate")

    def pair(name: str) -> dict[str, float] | None:
        return {"auc": m[f"{name}.auc"], "ks": m[f"{name}.ks"]} if f"{name}.auc" in m else None

    out: dict[str, Any] = {"wall_s": res.wall_s, "status": res.status["status"], "bank_only": pair("bank_only"),
                           "federated": {"lr": pair("lr"), "boost": pair("boost")},
                           "bank_only_boost": pair("bank_only_boost")}
    if res.report is not None:
        out["report"] = str(res.report)
    return out
