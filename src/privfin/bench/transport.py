"""``privfin bench transport``: raw channel throughput between two party processes.

The receiver is a child process; the sender is this process. Both are
:class:`~privfin.transport.grpc.GrpcNode` endpoints on loopback with mutual TLS, exactly
as in a deployment. The array travels as one message (streamed in chunks).
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from privfin.config import PartyConfig
from privfin.runtime.launcher import write_deployment
from privfin.transport.base import Kind
from privfin.transport.grpc import GrpcNode


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _node(cfg_path: Path) -> GrpcNode:
    cfg = PartyConfig.load(cfg_path)
    return GrpcNode(cfg.name, cfg.listen, cfg.peers, cfg.tls).start()


def receiver(cfg_path: Path, repeat: int) -> None:
    """The receiving party: takes ``repeat`` arrays, acknowledges each, reports its peak RSS."""
    node = _node(cfg_path)
    chan = node.channel("bench-transport", timeout=600)
    try:
        for _ in range(repeat):
            arr = chan.recv("sender", "bench/array")
            chan.send("sender", "bench/ack", int(arr.nbytes), kind=Kind.AGGREGATE)
            del arr
        chan.send("sender", "bench/rss", _rss_mb(), kind=Kind.AGGREGATE)
        chan.recv("sender", "bench/bye")
    finally:
        node.stop()


def run_transport_bench(size_mb: int = 256, repeat: int = 3, workdir: Path | None = None) -> dict[str, Any]:
    """Send a ``size_mb`` MiB array ``repeat`` times; median throughput and peak RSS."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="privfin-bench-"))
    configs = write_deployment(workdir, ["sender", "receiver"])
    child = subprocess.Popen([sys.executable, "-m", "privfin.bench.transport", str(configs["receiver"]), str(repeat)])
    node = _node(configs["sender"])
    try:
        node.wait_for_peers(timeout=60)
        chan = node.channel("bench-transport", timeout=600)
        arr = np.empty(size_mb << 20, dtype=np.uint8)
        arr[::4096] = 7  # touch every page so the sender's RSS is real
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            chan.send("receiver", "bench/array", arr, kind=Kind.PLAINTEXT)
            if chan.recv("receiver", "bench/ack") != arr.nbytes:
                raise RuntimeError("receiver got a different size")
            times.append(time.perf_counter() - t0)
        rss_receiver = float(chan.recv("receiver", "bench/rss"))
        chan.send("receiver", "bench/bye", 0)
        child.wait(60)
    finally:
        node.stop()
        if child.poll() is None:
            child.kill()
    med = statistics.median(times)
    return {"bench": "transport", "size_mb": size_mb, "repeat": repeat, "mb_per_s": round(size_mb / med, 1),
            "seconds": [round(t, 3) for t in times], "peak_rss_mb": round(max(_rss_mb(), rss_receiver), 1),
            "rss_sender_mb": round(_rss_mb(), 1), "rss_receiver_mb": round(rss_receiver, 1),
            "chunk_bytes": node.chunk_size, "tls": "mutual, ECDSA P-256 certificates"}


if __name__ == "__main__":
    receiver(Path(sys.argv[1]), int(sys.argv[2]))
