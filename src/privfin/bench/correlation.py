"""Benchmark of cross-party Pearson correlation (:mod:`privfin.features.correlation`).

Two parties as processes over loopback gRPC with mutual TLS (:mod:`privfin.bench.harness`),
each with its own executor pool: the bank (active, ``a_cols`` features) and the government side
(passive, ``p_cols`` features), on generated data (:mod:`privfin.scenarios.synth`, ``rows``
enterprises held by both, mixed types and missing values; string columns enter as category
codes). Each party sorts its rows by id (the PSI output stand-in). The measured region
(``wall_s``) covers standardizing, key generation, encryption, the passive party's
multi-exponentiations, decryption and assembly; data generation and process start-up are
outside it. ``cpu_s`` sums both parties' processes and pool workers. With ``check`` the bank
also recomputes the correlation of the joined data in the clear (outside the measured region)
and reports the largest absolute difference.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from privfin.bench.features import load_tables
from privfin.bench.harness import Timed, run_processes, warm_pool
from privfin.features.correlation import pearson_active, pearson_passive, plain_corr
from privfin.transport.base import Channel

PARTIES = ("bank", "gov")


def numeric_features(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """The first ``k`` feature columns (not ``id``/``y``), strings as category codes (NaN kept)."""
    cols = [c for c in df.columns if c not in ("id", "y")]
    if k > len(cols):
        raise ValueError(f"asked for {k} feature columns, the table has {len(cols)}")
    out = {}
    for c in cols[:k]:
        s = df[c]
        if pd.api.types.is_numeric_dtype(s):
            out[c] = s.astype(np.float64)
        else:
            codes = pd.Series(pd.factorize(s)[0], index=s.index).astype(np.float64)
            out[c] = codes.where(codes >= 0)
    return pd.DataFrame(out)


def _tables(rows: int, a_cols: int, p_cols: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from privfin.scenarios import synth

    feats = min(max(p_cols, len(synth.GOV_BASE_FEATURES)), synth.MAX_GOV_FEATURES)
    bank, gov = load_tables(None, rows, feats, seed)
    # the bank has 13 feature columns (12 numeric, 1 categorical); wider asks take government
    # columns beyond the passive party's share (a stand-in for more bank data)
    if a_cols > 13:
        extra = numeric_features(gov, min(feats, p_cols + a_cols - 13)).iloc[:, p_cols:]
        bank = pd.concat([bank, extra.add_prefix("bank_")], axis=1)
    return numeric_features(bank, a_cols), numeric_features(gov, p_cols)


def party_fn(chan: Channel, timed: Timed, role: str, rows: int, a_cols: int, p_cols: int, key_bits: int,
             seed: int, check: bool) -> dict[str, Any]:
    """Body of one party process (run by the harness)."""
    bank, gov = _tables(rows, a_cols, p_cols, seed)
    own = bank if role == "active" else gov
    X, names = own.to_numpy(), list(own.columns)
    opts = {"key_bits": key_bits, "allow_insecure": key_bits < 2048}
    warm_pool()
    out: dict[str, Any] = {}
    with timed:
        t0 = time.perf_counter()
        if role == "active":
            df = pearson_active(chan, X, names, **opts)
            out["timings"] = df.attrs["timings"]
        else:
            pearson_passive(chan, X, names, **opts)
        out["party_s"] = round(time.perf_counter() - t0, 3)
    if role == "active":
        out["shape"] = list(df.shape)
        if check:
            oracle = plain_corr(np.hstack([bank.to_numpy(), gov.to_numpy()]))
            got = df.to_numpy()
            out["nan_match"] = bool(np.array_equal(np.isnan(got), np.isnan(oracle)))
            out["max_abs_diff"] = float(np.nanmax(np.abs(got - oracle)))
    return out


def bench_correlation(rows: int, a_cols: int, p_cols: int, *, key_bits: int = 2048, seed: int = 0,
                      check: bool = True, timeout: float = 7200.0) -> dict[str, Any]:
    """Run both parties as processes; one JSON-able summary (wall, CPU, bytes, breakdown)."""
    kw = {"rows": rows, "a_cols": a_cols, "p_cols": p_cols, "key_bits": key_bits, "seed": seed, "check": check}
    fn = "privfin.bench.correlation:party_fn"
    rep = run_processes({p: fn for p in PARTIES},
                        {"bank": {"role": "active", **kw}, "gov": {"role": "passive", **kw}}, timeout=timeout)
    bank, gov = rep["bank"], rep["gov"]
    wall = max(bank["t_end"], gov["t_end"]) - min(bank["t_start"], gov["t_start"])
    return {
        "bench": "correlation", "rows": rows, "a_cols": a_cols, "p_cols": p_cols, "key_bits": key_bits,
        "wall_s": round(wall, 2), "cpu_s": round(bank["cpu_s"] + gov["cpu_s"], 2),
        "cpu_s_bank": round(bank["cpu_s"], 2), "cpu_s_gov": round(gov["cpu_s"], 2),
        "bytes_bank_to_gov": bank["bytes_sent"], "bytes_gov_to_bank": gov["bytes_sent"],
        "peak_rss_mb": {"bank": round(bank["peak_rss_mb"]), "gov": round(gov["peak_rss_mb"])},
        "bank_timings": bank["result"].get("timings"),
        "max_abs_diff": bank["result"].get("max_abs_diff"), "nan_match": bank["result"].get("nan_match"),
        "machine_busy_s": rep["_machine"]["busy_s"], "cores": rep["_machine"]["cores"],
    }

