"""``privfin bench psi-unbalanced`` and ``privfin bench query``: two party processes over gRPC/TLS.

Both benchmarks run one process per party (``client`` and ``server``) through
:func:`privfin.bench.harness.run_processes` and separate the phases:

* **offline** (one barrier-synchronized region): the server preprocesses its set / list under
  a fresh long-lived key and caches it on disk; the client downloads the table and caches it;
* **server reload**: the server loads its cache from disk again (what a restarted server does);
* **online** (``repeats`` rounds, each barrier-synchronized): one client batch per round
  (fresh ids each round, half of them in the large set / list), the table from the client's
  cache (loaded from disk inside the round), the OPRF exchange, matching / decryption.

Data: distinct 18-digit numeric ids; the large set / list draws from ``[1e17, 5e17)``, the
client's misses from ``[5e17, 1e18)``, so the truth is known by construction; list payloads
are JSON ``{"risk": ..., "date": ...}`` (about 40 bytes, padded to 64).

Returned keys (times in seconds, both parties summed unless noted): ``online_s`` median wall
of the online rounds (the acceptance figure; ``wall_s`` is the same number) and
``online_s_runs``; ``cpu_s`` median CPU seconds of one online round (party processes and their
pool workers); ``online_cpu_s_harness`` the harness's ``cpu_s`` of the whole online phase;
``offline_s`` / ``offline_cpu_s`` = ``preprocess_s`` (server, client idle) +
``table_transfer_s`` (both), each with its ``*_cpu_s``; ``server_reload_s``; ``bytes_sent``
(whole run), ``online_bytes_sent`` (median round), ``offline_bytes_sent``; ``peak_rss_mb``
(both processes and their workers); ``machine_busy_s_incl_startup`` (busy CPU seconds of the
whole machine: far above the parties' CPU means other work shared the cores); ``correct``.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from privfin.bench.harness import Timed, run_processes, warm_pool
from privfin.psi.query import prepare_list, query_client, query_server, query_sync
from privfin.psi.unbalanced import OprfKey, load_server_table, prepare_large_set, unbalanced_client
from privfin.psi.unbalanced import unbalanced_server, unbalanced_sync
from privfin.transport.base import Channel

PARTIES = ("client", "server")
RISKS = ("fraud-ring", "stolen-id", "mule-account", "court-enforced", "overdue-90d")


# -- data ------------------------------------------------------------------------------------------


def large_ids(n: int, seed: int) -> np.ndarray:
    """``n`` distinct 18-digit ids from ``[1e17, 5e17)`` (``U18`` array, shuffled)."""
    rng = np.random.default_rng(seed)
    pool = np.empty(0, np.int64)
    while len(pool) < n:
        extra = rng.integers(10**17, 5 * 10**17, size=int((n - len(pool)) * 1.01) + 16, dtype=np.int64)
        pool = np.unique(np.concatenate([pool, extra]))
    return rng.permutation(pool)[:n].astype(str)


def client_batch(large: np.ndarray, n: int, seed: int, round_: int) -> tuple[list[str], int]:
    """A batch of ``n`` ids, ``n // 2`` of them from ``large``; returns (ids, number of hits)."""
    rng = np.random.default_rng([seed, 7, round_])
    hits = min(n // 2, len(large))
    picked = large[rng.choice(len(large), size=hits, replace=False)]
    misses = np.unique(rng.integers(5 * 10**17, 10**18, size=int((n - hits) * 1.01) + 16, dtype=np.int64))
    misses = rng.permutation(misses)[:n - hits].astype(str)
    return rng.permutation(np.concatenate([picked, misses])).tolist(), hits


def payload_of(i: int) -> str:
    return f'{{"date":"2026-{i % 12 + 1:02d}-{i % 28 + 1:02d}","risk":"{RISKS[i % len(RISKS)]}"}}'


# -- per-party bodies (run by the harness in their own processes) -----------------------------------


def _phase(chan: Channel) -> tuple[Timed, int]:
    return Timed(chan), chan.bytes_sent


def _record(ph: Timed, b0: int, chan: Channel, **extra: Any) -> dict[str, Any]:
    return {"t_start": ph.t_start, "t_end": ph.t_end, "cpu_s": ph.cpu_s, "bytes_sent": chan.bytes_sent - b0, **extra}


def server_party(chan: Channel, timed: Timed, mode: str, small: int, large: int, seed: int, repeats: int,
                 cache_dir: str) -> dict[str, Any]:
    """Large-set / list holder: preprocess (offline), serve the sync, reload, serve the rounds."""
    ids = large_ids(large, seed)
    key = OprfKey.generate("bench-k1")
    kind = "unbalanced" if mode == "unbalanced" else "query"
    entries = [(x, payload_of(i)) for i, x in enumerate(ids.tolist())] if mode == "query" else None
    warm_pool()
    ph, b0 = _phase(chan)
    with ph:
        st = prepare_large_set(ids, key, cache_dir) if entries is None else prepare_list(entries, key, cache_dir)
    prep = _record(ph, b0, chan, cache_file_mb=st.path.stat().st_size / 2**20)
    ph, b0 = _phase(chan)
    with ph:
        (unbalanced_server if entries is None else query_server)(chan, st, key)
    offline = {"preprocess": prep, "transfer": _record(ph, b0, chan)}
    del st, entries
    t = time.perf_counter()
    st = load_server_table(cache_dir, kind, key)  # as a restarted server would
    reload_s = time.perf_counter() - t
    rounds = []
    with timed:
        for _ in range(repeats):
            ph, b0 = _phase(chan)
            with ph:
                rep = (unbalanced_server if mode == "unbalanced" else query_server)(chan, st, key)
            rounds.append(_record(ph, b0, chan, batch_size=rep.batch_size, table_sent=rep.table_sent,
                                  timings={k: round(v, 4) for k, v in rep.timings.items()}))
    return {"offline": offline, "reload_s": reload_s, "rounds": rounds}


def client_party(chan: Channel, timed: Timed, mode: str, small: int, large: int, seed: int, repeats: int,
                 cache_dir: str) -> dict[str, Any]:
    """Small-set holder / querier: sync the table (offline), then one batch per round."""
    big = large_ids(large, seed)  # only to draw batches whose truth is known
    batches = [client_batch(big, small, seed, r) for r in range(repeats)]
    expected = {}
    if mode == "query":
        pos = {x: i for i, x in enumerate(big.tolist())}
        expected = {r: {x: payload_of(pos[x]) for x in b if x in pos} for r, (b, _) in enumerate(batches)}
    del big
    warm_pool()
    ph, b0 = _phase(chan)
    with ph:
        pass  # the server preprocesses
    prep = _record(ph, b0, chan)
    ph, b0 = _phase(chan)
    with ph:
        table = (unbalanced_sync if mode == "unbalanced" else query_sync)(chan, cache_dir)
    offline = {"preprocess": prep, "transfer": _record(ph, b0, chan, n_table=len(table))}
    del table
    rounds = []
    correct = True
    with timed:
        for r, (ids, hits) in enumerate(batches):
            ph, b0 = _phase(chan)
            with ph:
                res = (unbalanced_client if mode == "unbalanced" else query_client)(chan, ids, cache_dir)
            if mode == "unbalanced":
                ok = res.size == hits and all(int(ids[i]) < 5 * 10**17 for i in res.indices)
            else:
                ok = res.size == hits and {ids[i]: p.decode() for i, p in res.payloads.items()} == expected[r]
            correct = correct and ok and res.table_cached
            rounds.append(_record(ph, b0, chan, hits=res.size, table_cached=res.table_cached,
                                  timings={k: round(v, 4) for k, v in res.timings.items()}))
    return {"offline": offline, "rounds": rounds, "correct": correct}


# -- drivers -----------------------------------------------------------------------------------------


def _span(parts: list[dict[str, Any]]) -> float:
    return max(p["t_end"] for p in parts) - min(p["t_start"] for p in parts)


def _run(mode: str, small: int, large: int, seed: int, repeats: int) -> dict[str, Any]:
    if small < 2 or large < 1 or repeats < 1:
        raise ValueError("need small >= 2, large >= 1 and repeats >= 1")
    tmp = Path(tempfile.mkdtemp(prefix="privfin-bench-unbalanced-"))
    try:
        common = {"mode": mode, "small": small, "large": large, "seed": seed, "repeats": repeats}
        rep = run_processes({p: f"{__name__}:{p}_party" for p in PARTIES},
                            {p: dict(common, cache_dir=str(tmp / p)) for p in PARTIES})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    cl, sv = rep["client"]["result"], rep["server"]["result"]
    rounds = list(zip(cl["rounds"], sv["rounds"]))
    online = [_span(list(pair)) for pair in rounds]
    cpu = [pair[0]["cpu_s"] + pair[1]["cpu_s"] for pair in rounds]
    obytes = [pair[0]["bytes_sent"] + pair[1]["bytes_sent"] for pair in rounds]
    prep = [cl["offline"]["preprocess"], sv["offline"]["preprocess"]]
    xfer = [cl["offline"]["transfer"], sv["offline"]["transfer"]]
    off = prep + xfer
    first_all = min(p["t_start"] for p in off)
    last_all = max(p["t_end"] for pair in rounds for p in pair)
    return {
        "transport": "grpc+mtls (loopback), one process per party",
        "wall_s": round(statistics.median(online), 3),
        "online_s": round(statistics.median(online), 3),
        "online_s_runs": [round(x, 3) for x in online],
        "cpu_s": round(statistics.median(cpu), 3),
        "online_cpu_s_runs": [round(x, 3) for x in cpu],
        "online_cpu_s_harness": round(rep["client"]["cpu_s"] + rep["server"]["cpu_s"], 2),
        "offline_s": round(_span(prep) + _span(xfer), 3),
        "offline_cpu_s": round(sum(p["cpu_s"] for p in off), 2),
        "preprocess_s": round(_span(prep), 3),
        "preprocess_cpu_s": round(sv["offline"]["preprocess"]["cpu_s"], 2),
        "table_transfer_s": round(_span(xfer), 3),
        "table_transfer_cpu_s": round(sum(p["cpu_s"] for p in xfer), 2),
        "server_reload_s": round(sv["reload_s"], 3),
        "server_cache_mb": round(sv["offline"]["preprocess"]["cache_file_mb"], 1),
        "run_wall_s": round(last_all - first_all, 3),
        "bytes_sent": int(rep["client"]["bytes_sent"] + rep["server"]["bytes_sent"]),
        "online_bytes_sent": int(statistics.median(obytes)),
        "offline_bytes_sent": int(sum(p["bytes_sent"] for p in off)),
        "peak_rss_mb": round(rep["client"]["peak_rss_mb"] + rep["server"]["peak_rss_mb"], 1),
        "cores": rep["_machine"]["cores"],
        "machine_busy_s_incl_startup": rep["_machine"]["busy_s"],
        "correct": bool(cl["correct"]),
        "parties": {"client": {"online_timings": [r["timings"] for r in cl["rounds"]]},
                    "server": {"online_timings": [r["timings"] for r in sv["rounds"]],
                               "batch_sizes": [r["batch_size"] for r in sv["rounds"]]}},
    }


def run_unbalanced_bench(small: int, large: int, *, repeats: int = 5, seed: int = 20261129) -> dict[str, Any]:
    """Unbalanced PSI, ``small`` client ids against a cached ``large`` set (what the CLI prints)."""
    res = _run("unbalanced", small, large, seed, repeats)
    hits = small // 2
    return {"bench": "psi-unbalanced", "small": small, "large": large, "repeats": repeats, "intersection": hits,
            **res}


def run_query_bench(queries: int, list_size: int, *, repeats: int = 5, seed: int = 20261129) -> dict[str, Any]:
    """Anonymous query, ``queries`` ids against a preprocessed ``list_size``-entry list."""
    res = _run("query", queries, list_size, seed, repeats)
    return {"bench": "query", "queries": queries, "list": list_size, "repeats": repeats, "hits": queries // 2,
            "payload_size": 64, **res}


__all__ = ["run_unbalanced_bench", "run_query_bench", "large_ids", "client_batch"]
