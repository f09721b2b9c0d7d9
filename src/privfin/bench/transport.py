"""``privfin bench transport``: raw channel throughput between two party processes.

A sender and a receiver, each its own process with a gRPC endpoint on loopback and
mutual TLS, exactly as in a deployment. The array travels as one message, streamed in
chunks; the receiver acknowledges each one.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from privfin.bench.harness import Timed, run_processes
from privfin.errors import ProtocolError
from privfin.transport.base import Channel, Kind
from privfin.transport.grpc import DEFAULT_CHUNK


def sender(chan: Channel, timed: Timed, size_mb: int, repeat: int) -> dict[str, Any]:
    arr = np.empty(size_mb << 20, dtype=np.uint8)
    arr[::4096] = 7  # touch every page so the memory is really there
    times = []
    with timed:
        for _ in range(repeat):
            t0 = time.perf_counter()
            chan.send("receiver", "bench/array", arr, kind=Kind.PLAINTEXT)
            if chan.recv("receiver", "bench/ack") != arr.nbytes:
                raise ProtocolError("the receiver got a different size")
            times.append(time.perf_counter() - t0)
    return {"seconds": times}


def receiver(chan: Channel, timed: Timed, repeat: int) -> dict[str, Any]:
    with timed:
        for _ in range(repeat):
            arr = chan.recv("sender", "bench/array")
            chan.send("sender", "bench/ack", int(arr.nbytes), kind=Kind.AGGREGATE)
            del arr
    return {}


def run_transport_bench(size_mb: int = 256, repeat: int = 3) -> dict[str, Any]:
    """Send a ``size_mb`` MiB array ``repeat`` times; median throughput, peak RSS of both processes."""
    mod = __name__
    rep = run_processes({"sender": f"{mod}:sender", "receiver": f"{mod}:receiver"},
                        {"sender": {"size_mb": size_mb, "repeat": repeat}, "receiver": {"repeat": repeat}})
    times = rep["sender"]["result"]["seconds"]
    med = statistics.median(times)
    return {"bench": "transport", "size_mb": size_mb, "repeat": repeat, "mb_per_s": round(size_mb / med, 1),
            "seconds": [round(t, 3) for t in times],
            "peak_rss_mb": round(max(rep[p]["peak_rss_mb"] for p in ("sender", "receiver")), 1),
            "rss_sender_mb": round(rep["sender"]["peak_rss_mb"], 1),
            "rss_receiver_mb": round(rep["receiver"]["peak_rss_mb"], 1),
            "chunk_bytes": DEFAULT_CHUNK, "tls": "mutual, ECDSA P-256 certificates"}
