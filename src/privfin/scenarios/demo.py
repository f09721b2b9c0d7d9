"""The local demo: a bank and a government data center, each its own process, on loopback TLS.

It grows with the protocols: it runs every step of the risk-scorecard pipeline that exists.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privfin.config import PartyConfig
from privfin.errors import ConfigError
from privfin.runtime.launcher import PartyProcesses, submit, wait_job, write_deployment
from privfin.runtime.steps import STEPS
from privfin.scenarios import synth

BANK, GOV = "bank", "gov"
FATE_GUEST, FATE_HOST = "default_credit_hetero_guest.csv", "default_credit_hetero_host.csv"

# The risk-scorecard pipeline in order; steps not implemented yet are skipped.
PIPELINE: list[tuple[str, dict[str, Any]]] = [
    ("psi", {}),
    ("woe", {"share_woe": True}),
    ("lr", {}),
    ("scorecard", {}),
]


@dataclass(frozen=True)
class DemoResult:
    job_id: str
    status: dict[str, Any]
    exit_codes: dict[str, int]
    workdir: Path
    bank_store: Path


def _job_toml(bank_input: Path, gov_input: Path, steps: list[tuple[str, dict[str, Any]]]) -> str:
    lines = ['[job]', 'name = "risk-scorecard-demo"', '',
             f'[parties.{BANK}]', 'role = "active"', f'input = "{bank_input}"', 'id_column = "id"',
             'label_column = "y"', '', f'[parties.{GOV}]', 'role = "passive"', f'input = "{gov_input}"',
             'id_column = "id"', '']
    for name, params in steps:
        lines += ["[[steps]]", f'name = "{name}"'] + [f"{k} = {json.dumps(v)}" for k, v in params.items()] + [""]
    return "\n".join(lines)


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
             timeout_s: float = 120.0, on_status: Any = None) -> DemoResult:
    """Run the pipeline with every party its own process; returns the bank's final job record."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="privfin-demo-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    bank_in, gov_in = prepare(workdir, data_dir, rows, seed)
    configs = write_deployment(workdir, [BANK, GOV], timeout_s=timeout_s)
    steps = [(n, p) for n, p in PIPELINE if n in STEPS]
    job_file = workdir / "job.toml"
    job_file.write_text(_job_toml(bank_in, gov_in, steps))
    bank_cfg = PartyConfig.load(configs[BANK])
    with PartyProcesses(configs, exit_after=1) as procs:
        procs.wait_ready()
        job_id = submit(bank_cfg, job_file)
        status = wait_job(bank_cfg, job_id, on_status=on_status)
        codes = procs.wait(timeout=timeout_s)
    return DemoResult(job_id, status, codes, workdir, bank_cfg.job_store)
