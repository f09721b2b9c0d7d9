"""Run one function per party, each in its own process, over loopback gRPC with mutual TLS.

Benchmarks use it so that every party's work, serialization and network cost is real and
measured. Each child starts a :class:`~privfin.transport.grpc.GrpcNode`, waits for its
peers and runs ``fn(chan, timed, **kwargs)`` (``fn`` named ``"module:function"``, privfin's
own code only). ``timed`` is the measured region: ``with timed: ...`` first synchronizes
all parties, then records wall time and the CPU seconds of the party process and its
executor workers (if ``fn`` never enters it, the whole call is measured). Each child
reports one JSON line: the function's result, the timings, bytes sent and received, and
peak RSS (the process plus its executor workers).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from privfin.config import PartyConfig
from privfin.errors import JobError
from privfin.runtime.executor import LocalProcessExecutor, get_executor
from privfin.runtime.launcher import write_deployment
from privfin.transport.base import Channel
from privfin.transport.grpc import GrpcNode


def _proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS MiB) of one live process, from /proc (zeros if unavailable)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        hwm = 0.0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) / 1024
        return cpu, hwm
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine so far (all cores, from /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + (v[4] if len(v) > 4 else 0)
        return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return 0.0


def _pool_pids() -> list[int]:
    pool = getattr(get_executor(), "_pool", None)
    return list(getattr(pool, "_processes", None) or {})


def usage() -> tuple[float, float]:
    """CPU seconds and summed peak RSS (MiB) of this process and its executor workers."""
    stats = [_proc_stats(pid) for pid in [os.getpid(), *_pool_pids()]]
    return sum(c for c, _ in stats), sum(r for _, r in stats)


def warm_pool() -> None:
    """Start the executor's workers before timing (process start-up is not protocol work)."""
    ex = get_executor()
    if isinstance(ex, LocalProcessExecutor) and ex.n_workers > 1:
        ex.map(abs, range(ex.n_workers * 2))


class Timed:
    """The measured region of one party's benchmark; entering it synchronizes the parties."""

    def __init__(self, chan: Channel) -> None:
        self.chan = chan
        self.entered = False
        self.t_start = self.t_end = 0.0
        self.cpu_s = 0.0
        self._cpu0 = 0.0

    def __enter__(self) -> Timed:
        self.chan.broadcast("bench/ready", True)
        self.chan.gather("bench/ready")
        self.entered = True
        self._cpu0 = usage()[0]
        self.t_start = time.time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.t_end = time.time()
        self.cpu_s = usage()[0] - self._cpu0


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
        timed = Timed(chan)
        if "timed" not in fn.__code__.co_varnames[:fn.__code__.co_argcount]:
            raise SystemExit(f"{fn_name} must take (chan, timed, **kwargs)")
        whole = Timed(chan)
        with whole:
            result = fn(chan, timed, **json.loads(kwargs_json))
        t = timed if timed.entered else whole
        rss = usage()[1]
        chan.broadcast("bench/done", True)
        chan.gather("bench/done")
        print(json.dumps({"result": result, "wall_s": t.t_end - t.t_start, "t_start": t.t_start, "t_end": t.t_end,
                          "cpu_s": t.cpu_s, "bytes_sent": chan.bytes_sent, "bytes_received": chan.bytes_received,
                          "peak_rss_mb": rss}), flush=True)
    finally:
        time.sleep(0.2)
        node.stop()


def run_processes(fns: dict[str, str], kwargs: dict[str, dict[str, Any]] | None = None, *,
                  timeout: float = 7200.0, workdir: Path | None = None) -> dict[str, dict[str, Any]]:
    """Run ``fns[party]`` in one process per party; returns each party's report.

    The extra key ``"_machine"`` holds ``busy_s``: busy CPU seconds of the whole machine
    during the run (start-up included), to tell whether other work shared the cores.
    """
    workdir = Path(workdir or tempfile.mkdtemp(prefix="privfin-bench-"))
    configs = write_deployment(workdir, list(fns), timeout_s=timeout)
    busy0 = machine_busy_s()
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
    reports["_machine"] = {"busy_s": round(machine_busy_s() - busy0, 2), "cores": os.cpu_count()}
    return reports


if __name__ == "__main__":
    _child(*sys.argv[1:4])
