"""``privfin bench ss``: a two-process secret-shared ``(N x D) @ (D x 1)`` product.

Two party processes (``p0``, ``p1``) over loopback gRPC with mutual TLS (the harness).
``p0`` owns ``X`` (N x D), ``p1`` owns ``w`` (D), both synthetic (standard normal / uniform
values from a public seed: benchmark data, not secrets). Phases, each started after a barrier
so that no party's clock includes waiting for the other to finish the previous phase:

- ``setup``: each owner deals its input as shares (``X1`` to ``p1``, ``w0`` to ``p0``);
- ``offline``: Paillier key exchange and the two-party HE matrix triple
  (:mod:`privfin.crypto.triples`), or, with ``triples="dealer"``, a third process deals it;
- ``online``: :func:`privfin.crypto.sharing.beaver_matmul` with truncation;
- ``reveal``: ``p0`` learns ``X @ w`` and compares it with numpy's float64 product.

Each phase reports its wall time (the slower party's), ``*_cpu_s`` (CPU seconds of both party
processes and their executor workers) and ``*_machine_busy_s`` (busy CPU seconds of the whole
machine over the phase: well above ``*_cpu_s`` means other work shared the cores, and then
``cpu_s / cores`` estimates the wall time on an idle machine). Bytes are summed over both
parties; in dealer mode the dealer's bytes count in ``bytes_sent`` only.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from privfin.bench.harness import Timed, machine_busy_s, run_processes, usage, warm_pool
from privfin.crypto import sharing
from privfin.crypto.triples import SIGMA, HETripleGenerator, dealer_triples, layout_info, recv_dealer_triple
from privfin.errors import ConfigError
from privfin.transport.base import Channel, Kind

PARTIES = ("p0", "p1")


def _data_x(rows: int, cols: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, cols))  # public benchmark data, not a secret


def _data_w(cols: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed + 1).uniform(-1.0, 1.0, cols)


def _barrier(chan: Channel, peer: str, name: str) -> None:
    chan.send(peer, f"bench/ss/{name}", True, kind=Kind.PLAINTEXT)
    chan.recv(peer, f"bench/ss/{name}")


def dealer(chan: Channel, timed: Timed, rows: int, cols: int) -> dict[str, Any]:
    """The optional third party of dealer mode: deals one matrix triple."""
    chan.gather("bench/ss/deal", frm=PARTIES)  # both parties reached their offline phase
    t = time.perf_counter()
    dealer_triples(chan, PARTIES, "matmul", (rows, cols))
    return {"deal_s": time.perf_counter() - t}


def party(chan: Channel, timed: Timed, index: int, rows: int, cols: int, key_bits: int, frac_bits: int, seed: int,
          triples: str = "he") -> dict[str, Any]:
    """One party of the benchmark (run by the harness in its own process).

    ``timed`` is not entered: the harness measures the whole call, and the phases are timed
    here, each after a barrier."""
    peer = PARTIES[1 - index]
    out: dict[str, Any] = {}

    warm_pool()  # process start-up is not protocol work
    cpu = {"cpu": usage()[0], "busy": machine_busy_s()}

    def phase(name: str, t0: float, b0: int) -> tuple[float, int]:
        t1 = time.perf_counter()
        c1, m1 = usage()[0], machine_busy_s()
        out[f"{name}_s"] = t1 - t0
        out[f"{name}_bytes"] = chan.bytes_sent - b0
        out[f"{name}_cpu_s"] = c1 - cpu["cpu"]
        out[f"{name}_machine_busy_s"] = m1 - cpu["busy"]
        _barrier(chan, peer, name)
        cpu["cpu"], cpu["busy"] = usage()[0], machine_busy_s()
        return time.perf_counter(), chan.bytes_sent

    _barrier(chan, peer, "start")
    t, b = time.perf_counter(), chan.bytes_sent
    if index == 0:
        X = _data_x(rows, cols, seed)
        xs = sharing.send_share(chan, peer, sharing.encode(X, frac_bits), tag="bench/x")
        ws = sharing.recv_share(chan, peer, (cols,), tag="bench/w")
        del X
    else:
        ws = sharing.send_share(chan, peer, sharing.encode(_data_w(cols, seed), frac_bits), tag="bench/w")
        xs = sharing.recv_share(chan, peer, (rows, cols), tag="bench/x")
    t, b = phase("setup", t, b)

    if triples == "dealer":
        chan.send("dealer", "bench/ss/deal", True, kind=Kind.PLAINTEXT)
        triple = recv_dealer_triple(chan, "dealer", index, "matmul", (rows, cols))
        out["offline_steps"] = {}
    else:
        gen = HETripleGenerator(chan, peer, index, key_bits=key_bits, allow_insecure=key_bits < 2048)
        triple = gen.matmul(rows, cols)
        out["offline_steps"] = {k: round(v, 3) for k, v in gen.timings.items()}
        if gen.keys is not None:
            out["layout"] = layout_info(gen.keys.public, cols)
    t, b = phase("offline", t, b)

    z = sharing.beaver_matmul(chan, peer, index, xs, ws, triple, frac_bits=frac_bits)
    t, b = phase("online", t, b)

    res = sharing.reveal(chan, peer, z, to="self" if index == 0 else "peer", tag="bench/z")
    t, b = phase("reveal", t, b)
    if index == 0:
        ref = _data_x(rows, cols, seed) @ _data_w(cols, seed)  # the oracle, outside the protocol
        got = sharing.decode(res, frac_bits)
        err = np.abs(got - ref)
        out["max_abs_error"] = float(err.max())
        out["mean_abs_error"] = float(err.mean())
        out["max_abs_value"] = float(np.abs(ref).max())
    return out


def run_ss_bench(rows: int = 100_000, cols: int = 50, *, key_bits: int = 2048,
                 frac_bits: int = sharing.DEFAULT_SS_FRAC_BITS, seed: int = 7, triples: str = "he") -> dict[str, Any]:
    """Run the benchmark; returns one JSON-able dict (phase times in seconds).

    ``triples="he"`` (default): two processes, triples from the two-party Paillier protocol.
    ``triples="dealer"``: a third process deals the triple (optional deployment mode)."""
    if triples not in ("he", "dealer"):
        raise ConfigError(f"triples must be 'he' or 'dealer' (got {triples!r})", key="triples")
    mod = __name__
    kw = {"rows": rows, "cols": cols, "key_bits": key_bits, "frac_bits": frac_bits, "seed": seed, "triples": triples}
    fns = {p: f"{mod}:party" for p in PARTIES}
    kwargs: dict[str, dict[str, Any]] = {p: dict(kw, index=i) for i, p in enumerate(PARTIES)}
    if triples == "dealer":
        fns["dealer"] = f"{mod}:dealer"
        kwargs["dealer"] = {"rows": rows, "cols": cols}
    rep = run_processes(fns, kwargs)
    rep.pop("_machine", None)
    r0, r1 = rep["p0"]["result"], rep["p1"]["result"]
    phases = ("setup", "offline", "online", "reveal")
    out: dict[str, Any] = {"bench": "ss", "rows": rows, "cols": cols, "triples": triples,
                           "key_bits": key_bits if triples == "he" else None,
                           "he_scheme": "paillier" if triples == "he" else None, "frac_bits": frac_bits,
                           "sigma_min": SIGMA,
                           "ring_bits": sharing.RING_BITS}
    for ph in phases:
        out[f"{ph}_s"] = round(max(r0[f"{ph}_s"], r1[f"{ph}_s"]), 3)
        out[f"{ph}_bytes"] = int(r0[f"{ph}_bytes"] + r1[f"{ph}_bytes"])
        out[f"{ph}_cpu_s"] = round(r0[f"{ph}_cpu_s"] + r1[f"{ph}_cpu_s"], 2)
        out[f"{ph}_machine_busy_s"] = round(max(r0[f"{ph}_machine_busy_s"], r1[f"{ph}_machine_busy_s"]), 2)
    out["offline_steps"] = {"p0": r0["offline_steps"], "p1": r1["offline_steps"]}
    if "layout" in r0:
        out["he_layout"] = r0["layout"]
    out["bytes_sent"] = int(sum(r["bytes_sent"] for r in rep.values()))
    out["peak_rss_mb"] = round(max(r["peak_rss_mb"] for r in rep.values()), 1)
    out["max_abs_error"] = r0["max_abs_error"]
    out["mean_abs_error"] = r0["mean_abs_error"]
    out["max_abs_value"] = r0["max_abs_value"]
    out["transport"] = "loopback gRPC, mutual TLS, one process per party"
    out["processes"] = len(rep)
    out["cores"] = os.cpu_count()
    if triples == "dealer":
        out["dealer_deal_s"] = round(rep["dealer"]["result"]["deal_s"], 3)
    return out
