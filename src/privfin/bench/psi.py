"""``privfin bench psi --size N --overlap F --json``: two-party PSI, both parties' work
(``--protocol auto``: KKRT, :mod:`privfin.psi.kkrt`; ``--protocol ecdh``: X25519 ECDH).

Each party's work is :func:`party_work` ``(chan, ids, params)``: it runs over any
:class:`~privfin.transport.base.Channel`. Transports:

* ``grpc`` (the acceptance setting): one OS process per party, loopback gRPC with mutual
  TLS (certificates made in a temp dir), each process with its own executor pool;
* ``memory``: both parties as threads of this process over the in-memory transport,
  sharing this process's executor pool.

Data: ids are distinct random 18-digit numeric strings (10^17..10^18), each set shuffled,
``round(overlap * size)`` common — the same construction as the peers' sets in
``shared/peers/bench/psi_scale_data.py``. The JSON has ``wall_s`` (from both parties
starting the protocol to the last one finishing; data generation and process start-up
excluded), ``cpu_s`` (CPU seconds of the party processes and their pool workers during the
protocol: on a shared machine, ``cpu_s / cores`` is what the wall time would be alone),
``machine_busy_s*`` (busy CPU seconds of the whole machine: if much above ``cpu_s``, other
work shared the cores), ``bytes_sent`` (both parties, payload bytes on the wire),
``peak_rss_mb`` (sum over the party processes and their pool workers of each one's peak RSS),
per-party phase timings, and a correctness check against Python's set intersection (and, for
``--csv`` runs, that both parties list the intersection in the same order).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from privfin.psi.protocol import PsiParams, protocol_for, psi
from privfin.bench.harness import Timed, machine_busy_s, run_processes, usage, warm_pool
from privfin.transport.base import Channel

PARTIES = ("alice", "bob")


# -- data ------------------------------------------------------------------------------------


def make_sets(size: int, overlap: float, seed: int = 20261129) -> tuple[list[str], list[str]]:
    """Two shuffled sets of ``size`` distinct 18-digit ids sharing ``round(overlap*size)``."""
    if size < 1 or not 0.0 <= overlap <= 1.0:
        raise ValueError("size must be >= 1 and overlap in [0, 1]")
    common = round(overlap * size)
    need = 2 * size - common
    rng = np.random.default_rng(seed)
    pool = np.empty(0, np.int64)
    while len(pool) < need:
        extra = rng.integers(10**17, 10**18, size=int((need - len(pool)) * 1.01) + 16, dtype=np.int64)
        pool = np.unique(np.concatenate([pool, extra]))
    pool = rng.permutation(pool)[:need]
    a = pool[:size]
    b = np.concatenate([a[:common], pool[size:]])
    a, b = rng.permutation(a), rng.permutation(b)
    return a.astype(str).tolist(), b.astype(str).tolist()


def read_id_csv(path: str | Path) -> list[str]:
    """Ids from a one-column CSV with header ``id`` (the peers' ``psi_<N>_{a,b}.csv`` files)."""
    with open(path, encoding="utf-8") as f:
        head = f.readline().strip()
        if head != "id":
            raise ValueError(f"{path}: expected a header line 'id'")
        return [line.rstrip("\n") for line in f if line.strip()]


def load_sets(size: int, overlap: float, seed: int, csv: tuple[str, str] | None) -> tuple[list[str], list[str]]:
    """The peers' CSV files if given, else :func:`make_sets`."""
    if csv:
        return read_id_csv(csv[0]), read_id_csv(csv[1])
    return make_sets(size, overlap, seed)


def expected_intersection(a: list[str], b: list[str]) -> set[str]:
    return set(a) & set(b)


# -- per-party work ------------------------------------------------------------------------------


def party_work(chan: Channel, ids: list[str], params: PsiParams | None = None) -> dict[str, Any]:
    """One party's PSI run over ``chan``; returns a JSON-able summary (no ids)."""
    t0 = time.perf_counter()
    res = psi(chan, ids, params)
    return {
        "party": chan.party,
        "wall_s": time.perf_counter() - t0,
        "size": res.size,
        "n_indices": None if res.indices is None else int(len(res.indices)),
        "timings": {k: round(v, 3) for k, v in res.timings.items()},
        "bytes_sent": chan.bytes_sent,
        "bytes_received": chan.bytes_received,
        "_indices": res.indices,
    }


# -- in-memory (threads) -----------------------------------------------------------------------------


def run_memory(size: int, overlap: float, params: PsiParams | None = None, seed: int = 20261129,
               check: bool = True, csv: tuple[str, str] | None = None) -> dict[str, Any]:
    """Both parties as threads over the in-memory transport (one shared executor pool)."""
    a, b = load_sets(size, overlap, seed, csv)
    data = dict(zip(PARTIES, (a, b)))
    out, wall, cpu, rss, busy = _run_threads(data, params, "bench-psi")
    res = _summary("memory", size, overlap, wall, cpu, rss, out, data, check)
    res["machine_busy_s"] = round(busy, 2)
    return res


def _run_threads(data: dict[str, list[str]], params: PsiParams | None, job_id: str
                 ) -> tuple[dict[str, dict[str, Any]], float, float, float, float]:
    """PSI with every party a thread over the in-memory transport, sharing this process's pool.

    Returns the per-party summaries, wall seconds, CPU seconds (this process and its workers),
    summed peak RSS (MiB) and busy CPU seconds of the whole machine."""
    from privfin.transport.memory import MemoryNetwork, run_parties

    warm_pool()
    net = MemoryNetwork(tuple(data))
    cpu0, _ = usage()
    busy0 = machine_busy_s()
    t0 = time.perf_counter()
    out = run_parties(net, {p: (lambda ch, p=p: party_work(ch, data[p], params)) for p in data},
                      job_id=job_id, timeout=3600)
    wall = time.perf_counter() - t0
    cpu1, rss = usage()
    return out, wall, cpu1 - cpu0, rss, machine_busy_s() - busy0


def run_memory_multi(size: int, overlap: float, n_parties: int = 3, params: PsiParams | None = None,
                     seed: int = 20261129) -> dict[str, Any]:
    """``n_parties`` parties (leader-based protocol) as threads over the in-memory transport.

    Every set has ``size`` ids; ``round(overlap*size)`` are common to all, the rest are
    unique to each party (so every pairwise intersection equals the full one's size).
    """
    names = ("bank", "gov", "telecom", "bank2", "bank3")[:n_parties]
    common = round(overlap * size)
    need = common + n_parties * (size - common)
    rng = np.random.default_rng(seed)
    pool = np.unique(rng.integers(10**17, 10**18, size=int(need * 1.01) + 16, dtype=np.int64))
    pool = rng.permutation(pool)[:need].astype(str)
    data = {}
    for i, p in enumerate(names):
        own = pool[common + i * (size - common): common + (i + 1) * (size - common)]
        data[p] = rng.permutation(np.concatenate([pool[:common], own])).tolist()
    out, wall, cpu, rss, busy = _run_threads(data, params, "bench-psi-mp")
    truth = set(pool[:common].tolist())
    seqs = [[data[p][i] for i in out[p]["_indices"]] for p in names]
    return {
        "bench": "psi-multi", "transport": "memory (parties as threads of one process)", "parties_n": n_parties,
        "size": size, "overlap": overlap, "wall_s": round(wall, 3), "cpu_s": round(cpu, 2),
        "machine_busy_s": round(busy, 2), "peak_rss_mb": round(rss, 1),
        "bytes_sent": int(sum(r["bytes_sent"] for r in out.values())), "intersection": out[names[0]]["size"],
        "correct": bool(set(seqs[0]) == truth and all(s == seqs[0] for s in seqs)),
        "parties": {p: {k: v for k, v in r.items() if not k.startswith("_")} for p, r in out.items()},
    }


# -- processes over gRPC/TLS ----------------------------------------------------------------------------


def grpc_party(chan: Channel, timed: Timed, index: int, size: int, overlap: float, seed: int, reveal: str,
               block: int, csv: list[str] | None = None, protocol: str = "auto") -> dict[str, Any]:
    """Body of one party process (run by the harness): own data, own executor pool."""
    ids = read_id_csv(csv[index]) if csv else make_sets(size, overlap, seed)[index]
    params = PsiParams(reveal=reveal, block=block, on_empty="allow", protocol=protocol)  # type: ignore[arg-type]
    warm_pool()
    with timed:
        summary = party_work(chan, ids, params)
    idx = summary.pop("_indices")
    summary["first_ids"] = [] if idx is None else [ids[i] for i in idx[:1000]]
    summary["order_digest"] = _order_digest(ids, idx)
    return summary


def _order_digest(ids: list[str], idx: np.ndarray | None) -> str | None:
    if idx is None:
        return None
    h = hashlib.sha256()
    for i in idx:
        h.update(ids[i].encode() + b"\n")
    return h.hexdigest()


def run_grpc(size: int, overlap: float, params: PsiParams, seed: int = 20261129,
             check: bool = True, csv: tuple[str, str] | None = None) -> dict[str, Any]:
    """Each party in its own process over loopback gRPC with mutual TLS."""
    common = {"size": size, "overlap": overlap, "seed": seed, "reveal": params.reveal, "block": params.block,
              "csv": list(csv) if csv else None, "protocol": params.protocol}
    rep = run_processes({p: f"{__name__}:grpc_party" for p in PARTIES},
                        {p: dict(common, index=i) for i, p in enumerate(PARTIES)})
    by = {p: rep[p] for p in PARTIES}
    first = by[PARTIES[0]]["result"]
    res: dict[str, Any] = {
        "bench": "psi", "transport": "grpc+mtls (loopback), one process per party", "size": size,
        "overlap": overlap, "wall_s": round(max(r["t_end"] for r in by.values()) - min(r["t_start"] for r in by.values()), 3),
        "bytes_sent": int(sum(r["bytes_sent"] for r in by.values())),
        "peak_rss_mb": round(sum(r["peak_rss_mb"] for r in by.values()), 1),
        "cpu_s": round(sum(r["cpu_s"] for r in by.values()), 2),
        "cores": rep["_machine"]["cores"], "intersection": first["size"],
        "machine_busy_s_incl_startup": rep["_machine"]["busy_s"],
        "parties": {p: {k: v for k, v in r["result"].items() if k not in ("first_ids", "order_digest")}
                    for p, r in by.items()},
    }
    if check:
        a, b = load_sets(size, overlap, seed, csv)
        truth = expected_intersection(a, b)
        same_order = first["order_digest"] == by[PARTIES[1]]["result"]["order_digest"]
        res["correct"] = bool(first["size"] == len(truth) and same_order
                              and all(x in truth for x in first["first_ids"]))
    return res


def _summary(transport: str, size: int, overlap: float, wall: float, cpu: float, rss: float,
             out: dict[str, dict[str, Any]], data: dict[str, list[str]], check: bool) -> dict[str, Any]:
    res: dict[str, Any] = {
        "bench": "psi", "transport": f"{transport} (parties as threads of one process)", "size": size,
        "overlap": overlap, "wall_s": round(wall, 3),
        "bytes_sent": int(sum(r["bytes_sent"] for r in out.values())),
        "peak_rss_mb": round(rss, 1), "cpu_s": round(cpu, 2), "cores": os.cpu_count(),
        "intersection": out[PARTIES[0]]["size"],
        "parties": {p: {k: v for k, v in r.items() if not k.startswith("_")} for p, r in out.items()},
    }
    if check:
        truth = expected_intersection(*data.values())
        seqs = [[data[p][i] for i in out[p]["_indices"]] for p in PARTIES]
        res["correct"] = bool(set(seqs[0]) == truth and seqs[0] == seqs[1])
    return res


def bench_psi(size: int, overlap: float, *, transport: str = "grpc", reveal: str = "rows",
              block: int = 1 << 17, seed: int = 20261129, check: bool = True,
              csv: tuple[str, str] | None = None, protocol: str = "auto") -> dict[str, Any]:
    """What ``privfin bench psi`` prints (as a dict). ``csv``: the two parties' id files;
    ``protocol``: auto, ecdh or kkrt (:class:`~privfin.psi.PsiParams`)."""
    params = PsiParams(reveal=reveal, block=block, on_empty="allow", protocol=protocol)  # type: ignore[arg-type]
    if transport == "grpc":
        res = run_grpc(size, overlap, params, seed, check, csv)
    elif transport == "memory":
        res = run_memory(size, overlap, params, seed, check, csv)
    else:
        raise ValueError(f"unknown transport {transport!r} (grpc or memory)")
    res["reveal"] = reveal
    res["protocol"] = protocol_for(params, 2)
    if csv:
        res["data"] = {"alice": str(csv[0]), "bob": str(csv[1])}
        res["size"] = len(read_id_csv(csv[0]))
        res["overlap"] = round(res["intersection"] / res["size"], 4) if res.get("intersection") is not None else None
    return res
