"""``privfin bench features``: federated binning + WOE/IV, both parties as processes.

Two parties over loopback gRPC with mutual TLS (:mod:`privfin.bench.harness`), each with its
own executor pool: the bank (active, labels) and the government side (passive).

Data:

- ``data_dir`` given: the FATE default-credit vertical split, ``default_credit_hetero_guest.csv``
  (id, y, x0..x12) at the bank and ``default_credit_hetero_host.csv`` (id, x0..x9) at the
  government, read in place; both hold the same ids;
- otherwise generated data (:mod:`privfin.scenarios.synth`): ``rows`` enterprises held by both
  (overlap 1), the bank's 13 features and ``features`` government features (24..408).

Each party sorts its rows by id (both hold the same id set, so this stands in for the PSI
output; PSI has its own benchmark). The measured region (``wall_s``, from both parties
starting to the last one finishing) covers each party binning its own features (quantile,
``bins`` bins, 5% minimum bin size), key generation, encryption and streaming of the labels,
the passive party's homomorphic bin sums, packing, decryption and the WOE/IV/AUC/KS of every
feature. Data loading and process start-up are outside it. ``cpu_s`` is the CPU time of both
party processes and their pool workers in that region (on a shared machine, ``cpu_s / cores``
is what the wall time would be alone). With ``check`` the driver recomputes the same bins and
the plaintext WOE/IV on the joined data and reports the largest difference.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from privfin.bench.harness import Timed, run_processes, warm_pool
from privfin.features.binning import Binner
from privfin.features.federated import WoeParams, woe_active, woe_passive
from privfin.features.woe import plain_stats
from privfin.transport.base import Channel

PARTIES = ("bank", "gov")
GUEST, HOST = "default_credit_hetero_guest.csv", "default_credit_hetero_host.csv"


def load_tables(data_dir: str | None, rows: int, features: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(bank, gov)`` frames with ``id`` (and ``y`` at the bank), each sorted by id."""
    if data_dir:
        bank = pd.read_csv(Path(data_dir) / GUEST, dtype={"id": str})
        gov = pd.read_csv(Path(data_dir) / HOST, dtype={"id": str})
    else:
        from privfin.scenarios import synth

        d = synth.generate(int(rows), seed=seed, overlap=1.0, n_gov_features=int(features))
        bank, gov = d.bank, d.gov
    return (bank.sort_values("id", kind="stable").reset_index(drop=True),
            gov.sort_values("id", kind="stable").reset_index(drop=True))


def party_fn(chan: Channel, timed: Timed, role: str, data_dir: str | None, rows: int, features: int, bins: int,
             scheme: str, key_bits: int, seed: int, chunk_rows: int | None) -> dict[str, Any]:
    """Body of one party process (run by the harness)."""
    bank, gov = load_tables(data_dir, rows, features, seed)
    own = bank if role == "active" else gov
    del bank, gov
    X = own.drop(columns=[c for c in ("id", "y") if c in own.columns])
    y = own["y"].to_numpy() if role == "active" else None
    params = WoeParams(scheme=scheme, key_bits=key_bits, chunk_rows=chunk_rows)
    warm_pool()
    with timed:
        t0 = time.perf_counter()
        Xb = Binner("quantile", bins).fit_transform(X)
        t_bin = time.perf_counter() - t0
        if role == "active":
            res = woe_active(chan, y, Xb, params, feature_names=[f"bank.{c}" for c in X.columns])
            out: dict[str, Any] = {"iv": res.iv, "timings": {k: round(v, 3) for k, v in res.timings.items()}}
        else:
            pres = woe_passive(chan, Xb, params)
            out = {"aliases": pres.aliases, "timings": {k: round(v, 3) for k, v in pres.timings.items()}}
    out["timings"]["binning_s"] = round(t_bin, 3)
    out["rows"], out["features"] = int(X.shape[0]), int(X.shape[1])
    return out


def _check(data_dir: str | None, rows: int, features: int, bins: int, seed: int, iv: dict[str, float]) -> float:
    """Largest |IV difference| between the federated result and the plaintext joined oracle."""
    bank, gov = load_tables(data_dir, rows, features, seed)
    y = bank["y"].to_numpy()
    Xb = Binner("quantile", bins).fit_transform(bank.drop(columns=["id", "y"]))
    Xg = Binner("quantile", bins).fit_transform(gov.drop(columns=["id"]))
    names = [f"bank.{c}" for c in bank.columns if c not in ("id", "y")] + [f"gov.f{j:03d}" for j in range(Xg.shape[1])]
    oracle = plain_stats(np.hstack([Xb, Xg]), y, names)
    return max(abs(oracle[k].iv - iv[k]) for k in names)


def run_once(data_dir: str | None, rows: int, features: int, bins: int, scheme: str, key_bits: int,
             seed: int, chunk_rows: int | None) -> dict[str, Any]:
    common = {"data_dir": data_dir, "rows": rows, "features": features, "bins": bins, "scheme": scheme,
              "key_bits": key_bits, "seed": seed, "chunk_rows": chunk_rows}
    rep = run_processes({p: "privfin.bench.features:party_fn" for p in PARTIES},
                        {"bank": dict(common, role="active"), "gov": dict(common, role="passive")})
    by = {p: rep[p] for p in PARTIES}
    return {
        "wall_s": round(max(r["t_end"] for r in by.values()) - min(r["t_start"] for r in by.values()), 3),
        "cpu_s": round(sum(r["cpu_s"] for r in by.values()), 2),
        "cpu_s_by_party": {p: round(r["cpu_s"], 2) for p, r in by.items()},
        "bytes_sent": int(sum(r["bytes_sent"] for r in by.values())),
        "peak_rss_mb": round(sum(r["peak_rss_mb"] for r in by.values()), 1),
        "machine_busy_s_incl_startup": rep["_machine"]["busy_s"],
        "cores": rep["_machine"]["cores"],
        "timings": {p: r["result"]["timings"] for p, r in by.items()},
        "features": {p: r["result"]["features"] for p, r in by.items()},
        "rows": by["bank"]["result"]["rows"],
        "iv": by["bank"]["result"]["iv"],
    }


def run_features_bench(data_dir: str | None = None, rows: int = 20000, features: int = 24, bins: int = 10,
                       scheme: str = "ou", *, key_bits: int = 2048, repeats: int = 1, seed: int = 0,
                       chunk_rows: int | None = None, check: bool = True) -> dict[str, Any]:
    """What ``privfin bench features`` prints (as a dict): medians over ``repeats`` runs."""
    runs = [run_once(data_dir, rows, features, bins, scheme, key_bits, seed, chunk_rows) for _ in range(repeats)]
    last = runs[-1]
    ivs = last.pop("iv")
    res: dict[str, Any] = {
        "bench": "features", "transport": "grpc+mtls (loopback), one process per party",
        "data": str(Path(data_dir) / GUEST) + " + " + HOST if data_dir else "generated (privfin.scenarios.synth)",
        "rows": last["rows"], "features": last["features"], "features_total": sum(last["features"].values()),
        "bins": bins, "method": "quantile", "min_bin_frac": 0.05, "scheme": scheme, "key_bits": key_bits,
        "chunk_rows": WoeParams(chunk_rows=chunk_rows).chunk_for(last["rows"]), "repeats": repeats,
        "wall_s": round(statistics.median(r["wall_s"] for r in runs), 3),
        "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 2),
        "wall_s_runs": [r["wall_s"] for r in runs], "cpu_s_runs": [r["cpu_s"] for r in runs],
        "last_run": last,
        "top_iv": sorted(((k, round(v, 4)) for k, v in ivs.items()), key=lambda kv: -kv[1])[:5],
    }
    if check:
        res["max_abs_iv_diff_vs_plaintext"] = _check(data_dir, rows, features, bins, seed, ivs)
    return res
