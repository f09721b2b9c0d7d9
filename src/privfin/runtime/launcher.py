"""Local deployments: every party its own OS process on loopback with mutual TLS.

Used by ``privfin demo``, the benchmarks and the multi-process tests. A real deployment
runs ``privfin party serve`` on each institution's machine instead.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from privfin.config import JobSpec, PartyConfig
from privfin.errors import JobError, PeerLostError, PrivfinError, RemoteError
from privfin.runtime.party import control_node, job_record
from privfin.runtime.store import JobStore
from privfin.transport import tls


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on loopback."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def write_deployment(workdir: Path, parties: list[str], *, timeout_s: float = 120.0,
                     data_dirs: dict[str, Path] | None = None) -> dict[str, Path]:
    """Create a CA, party certificates and one ``party.toml`` per party under ``workdir``."""
    workdir = Path(workdir).resolve()
    certs = workdir / "certs"
    if not (certs / tls.CA_CERT).exists():
        tls.init_ca(certs)
    ports = dict(zip(parties, free_ports(len(parties))))
    configs = {}
    for p in parties:
        if not (certs / f"{p}.crt").exists():
            tls.issue(certs, p)
        pdir = workdir / p
        data = (data_dirs or {}).get(p, pdir / "data")
        Path(data).mkdir(parents=True, exist_ok=True)
        peers = "\n".join(f'{q} = "127.0.0.1:{ports[q]}"' for q in parties if q != p)
        text = (f'[party]\nname = "{p}"\nlisten = "127.0.0.1:{ports[p]}"\ndata_dir = "{data}"\n'
                f'job_store = "{pdir / "jobs.sqlite"}"\ntimeout_s = {timeout_s}\n\n'
                f'[tls]\nca = "{certs / tls.CA_CERT}"\ncert = "{certs / (p + ".crt")}"\n'
                f'key = "{certs / (p + ".key")}"\n\n[peers]\n{peers}\n')
        pdir.mkdir(parents=True, exist_ok=True)
        (pdir / "party.toml").write_text(text)
        configs[p] = pdir / "party.toml"
    return configs


@dataclass
class PartyProcesses:
    """Party processes started from configs; stopping kills any still running (no orphans)."""

    configs: dict[str, Path]
    exit_after: int | None = 1
    log_dir: Path | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self) -> PartyProcesses:
        for name, cfg in self.configs.items():
            cmd = [sys.executable, "-m", "privfin", "party", "serve", "--config", str(cfg), "--parent-pid",
                   str(os.getpid())]
            if self.exit_after is not None:
                cmd += ["--exit-after", str(self.exit_after)]
            log = open((self.log_dir or cfg.parent) / "party.log", "wb")
            self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
            log.close()
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every party answers its operator; raise if one exits first."""
        deadline = time.monotonic() + timeout
        for name, cfg in self.configs.items():
            node = control_node(PartyConfig.load(cfg))
            try:
                while True:
                    if self.procs[name].poll() is not None:
                        raise JobError(f"party '{name}' exited at start-up:\n{self.log(name)[-2000:]}")
                    try:
                        node.ping(name, timeout=2.0)
                        break
                    except PrivfinError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.1)
            finally:
                node.stop()

    def log(self, name: str) -> str:
        path = (self.log_dir or self.configs[name].parent) / "party.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait(self, timeout: float) -> dict[str, int]:
        """Wait for every process to exit; kill those still running after ``timeout``."""
        deadline = time.monotonic() + timeout
        codes = {}
        for name, p in self.procs.items():
            try:
                codes[name] = p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                codes[name] = p.wait()
        return codes

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def __enter__(self) -> PartyProcesses:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def submit(cfg: PartyConfig, job_file: Path) -> str:
    """Submit ``job_file`` at the party of ``cfg``; returns the job id."""
    spec = JobSpec.load(job_file)
    node = control_node(cfg)
    try:
        return str(node.call(cfg.name, "job.submit", {"spec": spec.text, "file": str(job_file)}, timeout=60.0)["job"])
    except RemoteError as exc:
        raise JobError(exc.detail) from exc
    except PeerLostError as exc:
        raise JobError(f"cannot reach party '{cfg.name}' at {cfg.listen}: is `privfin party serve --config "
                       f"{cfg.file}` running?") from exc
    finally:
        node.stop()


def _stored_status(cfg: PartyConfig, job_id: str) -> dict[str, Any]:
    store = JobStore(cfg.job_store)
    try:
        job = store.job(job_id)
    finally:
        store.close()
    if job is None or job["status"] not in ("succeeded", "failed"):
        raise PeerLostError(cfg.name, f"the party stopped before job {job_id} ended")
    return job_record(job)


def wait_job(cfg: PartyConfig, job_id: str, on_status: Callable[[dict[str, Any]], None] | None = None,
             poll: float = 0.3, timeout: float | None = None) -> dict[str, Any]:
    """Poll the job's status at the party of ``cfg`` until it ends; returns the final record."""
    node = control_node(cfg)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            try:
                status = node.call(cfg.name, "job.status", {"job": job_id}, timeout=10.0, grace=5.0)
            except PeerLostError:
                # the party process has stopped (e.g. --exit-after): its job store has the outcome
                status = _stored_status(cfg, job_id)
            if on_status:
                on_status(status)
            if status["status"] in ("succeeded", "failed"):
                return status
            if deadline is not None and time.monotonic() > deadline:
                raise JobError(f"job {job_id} still {status['status']} after {timeout:g} s")
            time.sleep(poll)
    finally:
        node.stop()
