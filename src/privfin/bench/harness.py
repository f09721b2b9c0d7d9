"""Run one function per party, each in its own process, over loopback gRPC with mutual TLS.

Benchmarks use it so that every party's work, serialization and network cost is real and
measured: each child starts a :class:`~privfin.transport.grpc.GrpcNode`, waits for its
peers, runs ``fn(chan, **kwargs)`` (``fn`` named as ``"module:function"``, privfin's own
code only) and reports one JSON line: the function's result, its wall time, bytes sent
and received, and the process's peak RSS.
"""

from __future__ import annotations

import importlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from privfin.config import PartyConfig
from privfin.errors import JobError
from privfin.runtime.launcher import write_deployment
from privfin.transport.grpc import GrpcNode


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its finished children, MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def _child(cfg_path: str, fn_name: str, kwargs_json: str) -> None:
    mod, _, attr = fn_name.partition(":")
    if not mod.startswith("privfin."):
        raise SystemExit("only privfin's own functions can be run")
    fn = getattr(importlib.import_module(mod), attr)
    cfg = PartyConfig.load(cfg_path)
    node = GrpcNode(cfg.name, cfg.listen, cfg.peers, cfg.tls).start()
    try:
        node.wait_for_peers(timeout=120)
        chan = node.channel("bench", timeout=cfg.timeout_s)
        chan.broadcast("bench/ready", True)
        chan.gather("bench/ready")
        t0 = time.perf_counter()
        result = fn(chan, **json.loads(kwargs_json))
        wall = time.perf_counter() - t0
        chan.broadcast("bench/done", True)
        chan.gather("bench/done")
        print(json.dumps({"result": result, "wall_s": wall, "bytes_sent": chan.bytes_sent,
                          "bytes_received": chan.bytes_received, "peak_rss_mb": peak_rss_mb()}), flush=True)
    finally:
        time.sleep(0.2)
        node.stop()


def run_processes(fns: dict[str, str], kwargs: dict[str, dict[str, Any]] | None = None, *,
                  timeout: float = 3600.0, workdir: Path | None = None) -> dict[str, dict[str, Any]]:
    """Run ``fns[party]`` in one process per party; returns each party's report."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="privfin-bench-"))
    configs = write_deployment(workdir, list(fns), timeout_s=timeout)
    procs = {p: subprocess.Popen([sys.executable, "-m", "privfin.bench.harness", str(configs[p]), fn,
                                  json.dumps((kwargs or {}).get(p, {}))],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for p, fn in fns.items()}
    reports: dict[str, dict[str, Any]] = {}
    try:
        for p, proc in procs.items():
            out, errtext = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise JobError(f"benchmark party '{p}' failed (exit {proc.returncode}):\n{errtext[-3000:]}")
            reports[p] = json.loads(out.strip().splitlines()[-1])
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    return reports


if __name__ == "__main__":
    _child(*sys.argv[1:4])
