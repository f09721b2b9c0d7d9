"""``privfin bench boost``: SecureBoost on default-credit, parties as processes over gRPC/TLS.

Data (read in place): the FATE default-credit split (``default_credit_hetero_guest.csv``: id, y,
x0..x12 at the bank; ``default_credit_hetero_host.csv``: id, x0..x9 at the provider) in
``data_dir`` (default ``../shared/data/fate`` when present), else generated data
(:mod:`privfin.scenarios.synth`, all ids at both parties). Rows are sorted by id at each party;
holdout as in :mod:`privfin.bench.lr` (MD5 of the id's text < 3 mod 10). Each party bins its own
features (quantile, ``bins`` per feature) fitted on its own training rows. With ``passives = 2``
the provider's features are split between two passive parties.

Measured region, per party: key generation, training (:func:`~privfin.models.secureboost.sb_active`
/ :func:`~privfin.models.secureboost.sb_passive`) and federated batch prediction of the holdout
(:class:`~privfin.models.secureboost.SBPredictor` / :func:`~privfin.models.secureboost.sb_serve`).
After it, as a benchmark artefact only, the parties hand their model parts to the driver, which
checks that the federated holdout margins equal the assembled model's and reports AUC/KS of the
federated scores and of xgboost (``tree_method="hist"``, same parameters) on the joined bins.

``python -m privfin.bench.boost [--data-dir D] [--passives 1|2]`` prints the JSON object.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from privfin.bench.harness import Timed, run_processes, warm_pool
from privfin.bench.lr import ACTIVE, GUEST, HOST, default_data_dir, holdout_mask
from privfin.errors import DataError
from privfin.features.binning import Binner
from privfin.evaluation.metrics import auc, ks
from privfin.models.secureboost import (
    ActiveModel,
    PassiveModel,
    SBParams,
    SBPredictor,
    assemble,
    predict_margin,
    sb_active,
    sb_passive,
    sb_serve,
)
from privfin.transport.base import Channel


def _frames(data_dir: str | None, rows: int | None, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(bank, provider)`` frames (``id`` first, ``y`` at the bank), each sorted by id."""
    if data_dir:
        bank = pd.read_csv(Path(data_dir) / GUEST)
        prov = pd.read_csv(Path(data_dir) / HOST)
    else:
        from privfin.bench.features import load_tables

        bank, prov = load_tables(None, rows or 20000, 24, seed)
    bank = bank.sort_values("id", kind="mergesort").reset_index(drop=True)
    prov = prov.sort_values("id", kind="mergesort").reset_index(drop=True)
    if rows is not None:
        bank, prov = bank.iloc[:rows], prov.iloc[:rows]
    return bank, prov


def party_names(passives: int) -> list[str]:
    if passives == 1:
        return [ACTIVE, "provider"]
    if passives == 2:
        return [ACTIVE, "provider1", "provider2"]
    raise DataError(f"passives must be 1 or 2 (got {passives})")


def load_party(data_dir: str | None, party: str, passives: int = 1, rows: int | None = None, bins: int = 32,
               seed: int = 0) -> dict[str, Any]:
    """One party's own binned data: ``B_train``, ``B_holdout`` (and ``y_train``, ``y_holdout`` at the
    bank), binned with edges fitted on the party's own training rows."""
    bank, prov = _frames(data_dir, rows, seed)
    names = party_names(passives)
    if party == ACTIVE:
        df = bank
        cols = [c for c in df.columns if c not in ("id", "y")]
    else:
        df = prov
        all_cols = [c for c in df.columns if c != "id"]
        half = (len(all_cols) + 1) // 2
        cols = {1: {"provider": all_cols}, 2: {"provider1": all_cols[:half], "provider2": all_cols[half:]}}[
            passives][party]
    if party not in names:
        raise DataError(f"unknown party {party!r}")
    hold = holdout_mask(df["id"].to_numpy())
    binner = Binner("quantile", bins, min_bin_frac=0.0).fit(df.loc[~hold, cols])
    B = binner.transform(df[cols]).astype(np.int64)
    out: dict[str, Any] = {"B_train": B[~hold], "B_holdout": B[hold], "columns": cols}
    if party == ACTIVE:
        y = df["y"].to_numpy().astype(np.int64)
        out.update(y_train=y[~hold], y_holdout=y[hold])
    return out


def grpc_party(chan: Channel, timed: Timed, party: str, data_dir: str | None, params: dict[str, Any],
               passives: int = 1, rows: int | None = None, bins: int = 32, seed: int = 0) -> dict[str, Any]:
    """Body of one party process (run by the harness): train, then predict the holdout federatedly."""
    p = SBParams(**params)
    d = load_party(data_dir, party, passives, rows, bins, seed)
    names = party_names(passives)
    warm_pool()
    with timed:
        t0 = time.perf_counter()
        if party == ACTIVE:
            model = sb_active(chan, d["B_train"], d["y_train"], p, passive=names[1:])
            t1 = time.perf_counter()
            with SBPredictor(chan, model) as pred:
                margin = pred.predict_margin(d["B_holdout"])
        else:
            pmodel = sb_passive(chan, d["B_train"], p, active=ACTIVE)
            t1 = time.perf_counter()
            sb_serve(chan, pmodel, d["B_holdout"], active=ACTIVE)
        t2 = time.perf_counter()
    if party == ACTIVE:
        return {"model": model.to_dict(), "holdout_margin": margin.tolist(), "train_s": t1 - t0, "predict_s": t2 - t1,
                "timings": model.timings, "importance": model.importance()}
    return {"model": pmodel.to_dict(), "train_s": t1 - t0, "predict_s": t2 - t1, "timings": pmodel.timings}


def _xgb_margin(Btr: np.ndarray, ytr: np.ndarray, Bte: np.ndarray, p: SBParams, bins: int) -> np.ndarray | None:
    try:
        import xgboost as xgb
    except ImportError:
        return None
    m = xgb.XGBClassifier(tree_method="hist", n_estimators=p.n_trees, max_depth=p.max_depth,
                          learning_rate=p.learning_rate, reg_lambda=p.reg_lambda, gamma=p.gamma,
                          min_child_weight=p.min_child_weight, max_bin=bins, base_score=0.5, n_jobs=1)
    m.fit(Btr, ytr)
    return m.predict(Bte, output_margin=True)


def run_boost_bench(data_dir: str | Path | None = None, *, passives: int = 1, n_trees: int = 30, max_depth: int = 3,
                    bins: int = 32, learning_rate: float = 0.3, reg_lambda: float = 0.1, key_bits: int = 2048,
                    scheme: str = "ou", rows: int | None = None, seed: int = 0, generated: bool = False
                    ) -> dict[str, Any]:
    """One process per party over loopback gRPC/TLS; wall time, CPU, bytes, AUC/KS (JSON-ready).
    ``generated``: use generated data even where the default-credit files exist."""
    dd = None if generated else (Path(data_dir) if data_dir is not None else default_data_dir())
    if dd is not None and not ((dd / GUEST).exists() and (dd / HOST).exists()):
        raise DataError(f"default-credit data not found in {dd} (need {GUEST} and {HOST})")
    ds = str(dd) if dd is not None else None
    p = SBParams(n_trees=n_trees, max_depth=max_depth, learning_rate=learning_rate, reg_lambda=reg_lambda,
                 scheme=scheme, key_bits=key_bits, allow_insecure=key_bits < 2048)
    p.check()
    names = party_names(passives)
    common = {"data_dir": ds, "params": {k: getattr(p, k) for k in p.__dataclass_fields__}, "passives": passives,
              "rows": rows, "bins": bins, "seed": seed}
    rep = run_processes({q: "privfin.bench.boost:grpc_party" for q in names}, {q: dict(common, party=q) for q in names})
    by = {q: rep[q] for q in names}
    res: dict[str, Any] = {
        "bench": "boost", "protocol": "SecureBoost: packed OU (g, h, 1) per row, passive histograms with sibling "
        "subtraction, federated prediction by leaf masks", "data": ds or "generated (privfin.scenarios.synth)",
        "passives": passives, "n_trees": n_trees, "max_depth": max_depth, "bins": bins,
        "learning_rate": learning_rate, "reg_lambda": reg_lambda, "scheme": scheme, "key_bits": key_bits,
        "transport": "grpc+mtls (loopback), one process per party",
        "wall_s": round(max(r["t_end"] for r in by.values()) - min(r["t_start"] for r in by.values()), 3),
        "train_s": round(by[ACTIVE]["result"]["train_s"], 3), "predict_s": round(by[ACTIVE]["result"]["predict_s"], 3),
        "cpu_s": round(sum(r["cpu_s"] for r in by.values()), 2),
        "cpu_s_by_party": {q: round(r["cpu_s"], 2) for q, r in by.items()},
        "bytes_sent": int(sum(r["bytes_sent"] for r in by.values())),
        "peak_rss_mb": round(sum(r["peak_rss_mb"] for r in by.values()), 1),
        "cores": rep["_machine"]["cores"], "machine_busy_s_incl_startup": rep["_machine"]["busy_s"],
    }
    # ---- evaluation (driver side, after the measured region)
    data = {q: load_party(ds, q, passives, rows, bins, seed) for q in names}
    y_tr, y_te = data[ACTIVE]["y_train"], data[ACTIVE]["y_holdout"]
    margin = np.asarray(by[ACTIVE]["result"]["holdout_margin"])
    amodel = ActiveModel.from_dict(by[ACTIVE]["result"]["model"])
    pmodels = {q: PassiveModel.from_dict(by[q]["result"]["model"]) for q in names[1:]}
    trees = assemble(amodel, pmodels)
    assembled = predict_margin(trees, [data[q]["B_holdout"] for q in names], amodel.base_margin)
    res.update({"auc": round(auc(y_te, margin), 6), "ks": round(ks(y_te, margin), 6),
                "max_abs_margin_diff_vs_assembled": float(np.max(np.abs(margin - assembled)))})
    Btr = np.hstack([data[q]["B_train"] for q in names])
    Bte = np.hstack([data[q]["B_holdout"] for q in names])
    xm = _xgb_margin(Btr, y_tr, Bte, p, bins)
    if xm is not None:
        res.update({"auc_centralized": round(auc(y_te, xm), 6), "ks_centralized": round(ks(y_te, xm), 6),
                    "auc_diff": round(abs(auc(y_te, margin) - auc(y_te, xm)), 6)})
    res.update({"n_train": len(y_tr), "n_holdout": len(y_te),
                "features": {q: len(data[q]["columns"]) for q in names},
                "importance": by[ACTIVE]["result"]["importance"],
                "timings_s": {q: {k: round(v, 3) for k, v in by[q]["result"]["timings"].items()} for q in names}})
    return res


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir")
    ap.add_argument("--passives", type=int, default=1)
    ap.add_argument("--rows", type=int)
    ap.add_argument("--trees", type=int, default=30)
    ap.add_argument("--key-bits", type=int, default=2048)
    ap.add_argument("--generated", action="store_true")
    a = ap.parse_args()
    print(json.dumps(run_boost_bench(a.data_dir, passives=a.passives, rows=a.rows, n_trees=a.trees,
                                     key_bits=a.key_bits, generated=a.generated), indent=1))
