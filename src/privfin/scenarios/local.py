"""What the local scenarios share: a two-party job spec and running one job with every party
its own process on loopback TLS (certificates, configs and job stores under one workdir)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privfin.config import PartyConfig
from privfin.runtime.launcher import PartyProcesses, submit, wait_job, write_deployment

BANK, GOV = "bank", "gov"


def job_toml(name: str, bank_input: Path, gov_input: Path, steps: list[tuple[str, dict[str, Any]]], *,
             label: str, bank_features: list[str] | None = None) -> str:
    """A two-party job spec: the bank (active, ``label``, optional feature list) and the government."""
    lines = ["[job]", f"name = {json.dumps(name)}", "",
             f"[parties.{BANK}]", 'role = "active"', f"input = {json.dumps(str(bank_input))}", 'id_column = "id"',
             f"label_column = {json.dumps(label)}"]
    if bank_features is not None:
        lines.append(f"features = {json.dumps(list(bank_features))}")
    lines += ["", f"[parties.{GOV}]", 'role = "passive"', f"input = {json.dumps(str(gov_input))}",
              'id_column = "id"', ""]
    for step_name, params in steps:
        lines += ["[[steps]]", f'name = "{step_name}"'] + [f"{k} = {json.dumps(v)}" for k, v in params.items()] + [""]
    return "\n".join(lines)


@dataclass(frozen=True)
class LocalRun:
    """The bank's final job record and every party process's exit code."""

    job_id: str
    status: dict[str, Any]
    exit_codes: dict[str, int]
    workdir: Path
    configs: dict[str, PartyConfig]

    @property
    def bank_store(self) -> Path:
        return self.configs[BANK].job_store

    def metrics(self, step: str) -> dict[str, Any]:
        """The bank's metrics of one step, ``{key: value}``."""
        return {k: v for s, k, v in self.status.get("metrics", []) if s == step}


@dataclass(frozen=True)
class ScenarioResult:
    """A scenario's run and its wall time (data generation and report included)."""

    run: LocalRun
    wall_s: float

    job_id = property(lambda self: self.run.job_id)
    status = property(lambda self: self.run.status)
    exit_codes = property(lambda self: self.run.exit_codes)
    workdir = property(lambda self: self.run.workdir)
    bank_store = property(lambda self: self.run.bank_store)

    def metrics(self, step: str) -> dict[str, Any]:
        """The bank's metrics of one step, ``{key: value}``."""
        return self.run.metrics(step)


def run_local(workdir: Path, job_text: str, *, timeout_s: float, on_status: Any = None) -> LocalRun:
    """Start the bank and the government as processes, submit ``job_text`` at the bank, wait."""
    paths = write_deployment(workdir, [BANK, GOV], timeout_s=timeout_s)
    job_file = workdir / "job.toml"
    job_file.write_text(job_text)
    configs = {p: PartyConfig.load(f) for p, f in paths.items()}
    with PartyProcesses(paths, exit_after=1) as procs:
        procs.wait_ready()
        job_id = submit(configs[BANK], job_file)
        status = wait_job(configs[BANK], job_id, on_status=on_status)
        codes = procs.wait(timeout=timeout_s)
    return LocalRun(job_id, status, codes, workdir, configs)


def write_report(run: LocalRun) -> Path:
    """The bank's HTML report of a succeeded job, stored in its job store (artifact ``report``).

    The local deployment holds every party's job store, so the report's ledger section shows
    what each party received; in a real deployment each party builds its own.
    """
    from privfin.reports import write_job_report
    from privfin.runtime.store import JobStore

    stores = {p: JobStore(c.job_store) for p, c in run.configs.items()}
    try:
        return write_job_report(stores[BANK], run.job_id, BANK, ledger_stores=stores)
    finally:
        for st in stores.values():
            st.close()
