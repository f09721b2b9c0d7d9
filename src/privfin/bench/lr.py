"""``privfin bench lr``: vertical federated LR on default-credit, parties as processes.

Data (read in place, never copied): ``default_credit_hetero_guest.csv`` (id, y, x0..x12: the
bank) and ``default_credit_hetero_host.csv`` (id, x0..x9: the provider) in ``data_dir``
(default ``../shared/data/fate``). Both files hold the same ids (the PSI-aligned set); each
party sorts its rows by id. Holdout: rows whose id's decimal string has an MD5 digest
``< 3 mod 10`` (about 30%). Each party standardizes its own features with means/stds of its
own training rows.

Each party process trains with :func:`privfin.models.hetero_lr.lr_active` /
:func:`~privfin.models.hetero_lr.lr_passive` inside the measured region (key generation,
encryption of the feature matrices and all epochs; data loading is outside). After training,
each party hands its own coefficients to the benchmark driver (a benchmark artefact, not a
protocol step), which scores the holdout on the joined data, runs the centralized oracle
(:func:`privfin.models.logistic.train_reference`, same algorithm) and the bank-only model,
and reports AUC and KS of each.

With ``predict=N`` (CLI ``--predict N``) the trained parties then run federated prediction
(:class:`~privfin.models.hetero_lr.FederatedPredictor`): the whole holdout as one batch (its
AUC from the jointly assembled scores is reported) and ``N`` single-id requests, whose
latency percentiles are measured at the bank around each request (5 unmeasured warm-up
requests first).
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from privfin.bench.harness import Timed, run_processes, usage, warm_pool
from privfin.errors import DataError
from privfin.models.hetero_lr import FederatedPredictor, LRPartyModel, lr_active, lr_passive, predict_passive
from privfin.evaluation.metrics import auc, ks
from privfin.models.logistic import LRParams, standardize_fit, train_reference
from privfin.transport.base import Channel

GUEST = "default_credit_hetero_guest.csv"
HOST = "default_credit_hetero_host.csv"
ACTIVE = "bank"


def default_data_dir() -> Path | None:
    """``../shared/data/fate`` from the working directory or from the repository, if present."""
    for base in (Path.cwd().parent, Path(__file__).resolve().parents[3].parent):
        d = base / "shared" / "data" / "fate"
        if (d / GUEST).exists():
            return d
    return None


def holdout_mask(ids: np.ndarray) -> np.ndarray:
    """True for holdout rows: ``int(md5(str(id)).hexdigest(), 16) % 10 < 3``."""
    return np.array([int(hashlib.md5(str(i).encode()).hexdigest(), 16) % 10 < 3 for i in ids], dtype=bool)


def passive_columns(passives: int) -> dict[str, list[str]]:
    """The provider's features, whole (one passive party) or split in two halves (5/5)."""
    cols = [f"x{i}" for i in range(10)]
    if passives == 1:
        return {"provider": cols}
    if passives == 2:
        return {"provider1": cols[:5], "provider2": cols[5:]}
    raise DataError(f"passives must be 1 or 2 (got {passives})")


def load_party(data_dir: str | Path, party: str, passives: int = 1, rows: int | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """One party's own data: ``(X_train, X_holdout, y_train | None, y_holdout | None)``.

    ``X`` standardized with the party's own training means/stds; rows sorted by id, the first
    ``rows`` ids only if given. The active party's tuple carries labels; ``y_holdout`` is
    returned for the benchmark driver's evaluation."""
    d = Path(data_dir)
    if party == ACTIVE:
        df = pd.read_csv(d / GUEST)
        cols = [f"x{i}" for i in range(13)]
    else:
        df = pd.read_csv(d / HOST)
        cols = passive_columns(passives)[party]
    df = df.sort_values("id", kind="mergesort")
    if rows is not None:
        df = df.iloc[:rows]
    hold = holdout_mask(df["id"].to_numpy())
    X = df[cols].to_numpy(dtype=np.float64)
    mu, sd = standardize_fit(X[~hold])
    X = (X - mu) / sd
    y = df["y"].to_numpy() if "y" in df else None
    return X[~hold], X[hold], (None if y is None else y[~hold]), (None if y is None else y[hold])


def holdout_ids(data_dir: str | Path, party: str, rows: int | None = None) -> np.ndarray:
    """The holdout ids in this party's own file, sorted (the aligned order of :func:`load_party`)."""
    df = pd.read_csv(Path(data_dir) / (GUEST if party == ACTIVE else HOST), usecols=["id"])
    ids = np.sort(df["id"].to_numpy(), kind="mergesort")
    if rows is not None:
        ids = ids[:rows]
    return ids[holdout_mask(ids)]


def predict_party(chan: Channel, party: str, model: LRPartyModel, X_hold: np.ndarray, ids: np.ndarray,
                  passives: list[str], y_hold: np.ndarray | None, requests: int, warmup: int = 5) -> dict[str, Any]:
    """Federated prediction after training: the holdout as one batch, then ``requests``
    single-id requests (after ``warmup`` unmeasured ones), timed at the bank."""
    if party != ACTIVE:
        served = predict_passive(chan, ACTIVE, ids, {"lr": model.scorer(X_hold)}, passives=passives)
        return {"served": served}
    rng = np.random.default_rng(0)
    with FederatedPredictor(chan, passives, ids, {"lr": model.scorer(X_hold)}, timeout=60) as fp:
        t0 = time.perf_counter()
        z = fp.predict(rows=np.arange(len(ids)))
        batch_s = time.perf_counter() - t0
        lat = []
        for k, i in enumerate(rng.integers(0, len(ids), size=warmup + requests)):
            t0 = time.perf_counter()
            fp.predict(ids=[ids[i]])
            if k >= warmup:
                lat.append(1000 * (time.perf_counter() - t0))
    out: dict[str, Any] = {"batch_rows": len(ids), "batch_s": round(batch_s, 4),
                           "auc_from_federated_predict": round(auc(y_hold, z), 6), "single_id_requests": requests}
    if lat:
        out.update({f"single_id_{k}_ms": round(float(np.percentile(lat, q)), 2)
                    for k, q in (("p50", 50), ("p99", 99), ("max", 100))})
    return out


def grpc_party(chan: Channel, timed: Timed, party: str, data_dir: str, params: dict[str, Any], passives: int = 1,
               rows: int | None = None, predict: int = 0) -> dict[str, Any]:
    """Body of one party process (run by the harness): its own data, its own role. With
    ``predict > 0``, federated prediction follows training (outside the measured region)."""
    p = LRParams.from_dict(params)
    Xtr, Xte, ytr, yte = load_party(data_dir, party, passives, rows)
    warm_pool()
    plist = list(passive_columns(passives))
    with timed:
        if party == ACTIVE:
            model = lr_active(chan, Xtr, ytr, p, passives=plist)
        else:
            model = lr_passive(chan, Xtr, p, active=ACTIVE)
    res = model.to_dict()
    if predict > 0:
        res["predict"] = predict_party(chan, party, model, Xte, holdout_ids(data_dir, party, rows), plist, yte, predict)
    return res


def _evaluate(data_dir: str | Path, passives: int, params: LRParams, coefs: dict[str, dict[str, Any]],
              rows: int | None) -> dict[str, Any]:
    """Driver side: holdout AUC/KS of the federated model, the centralized oracle and bank-only."""
    parts = [ACTIVE, *passive_columns(passives)]
    loaded = {p: load_party(data_dir, p, passives, rows) for p in parts}
    ytr, yte = loaded[ACTIVE][2], loaded[ACTIVE][3]
    Xtr = np.hstack([loaded[p][0] for p in parts])
    Xte = np.hstack([loaded[p][1] for p in parts])
    score = sum(loaded[p][1] @ np.asarray(coefs[p]["coef"]) for p in parts) + float(coefs[ACTIVE]["intercept"] or 0.0)
    w, b = train_reference(Xtr, ytr, params)
    s_c = Xte @ w + b
    wb, bb = train_reference(loaded[ACTIVE][0], ytr, params)
    s_b = loaded[ACTIVE][1] @ wb + bb
    w_fed = np.concatenate([np.asarray(coefs[p]["coef"]) for p in parts])
    return {
        "auc": round(auc(yte, score), 6), "ks": round(ks(yte, score), 6),
        "auc_centralized": round(auc(yte, s_c), 6), "ks_centralized": round(ks(yte, s_c), 6),
        "auc_diff": round(abs(auc(yte, score) - auc(yte, s_c)), 6),
        "max_abs_coef_diff": float(np.max(np.abs(np.r_[w_fed - w, float(coefs[ACTIVE]["intercept"] or 0.0) - b]))),
        "auc_bank_only": round(auc(yte, s_b), 6), "ks_bank_only": round(ks(yte, s_b), 6),
        "n_train": len(ytr), "n_holdout": len(yte),
        "features": {p: int(loaded[p][0].shape[1]) for p in parts},
    }


def run_lr_bench(data_dir: str | Path | None = None, *, passives: int = 1, key_bits: int = 2048, epochs: int = 10,
                 batch_size: int = 1024, learning_rate: float = 0.1, l2: float = 0.0, transport: str = "grpc",
                 rows: int | None = None, predict: int = 0, class_weight: str | None = None) -> dict[str, Any]:
    """Train over ``transport`` (``"grpc"``: one process per party over loopback gRPC/TLS;
    ``"memory"``: threads of this process) and report wall time, AUCs, KS and bytes. With
    ``predict > 0`` (gRPC only) the parties then run federated prediction: the holdout as one
    batch and ``predict`` single-id requests, reported under ``"predict"`` (p50/p99 in ms).
    ``class_weight``: ``"balanced"`` trains with class weights (the oracle too)."""
    dd = Path(data_dir) if data_dir is not None else default_data_dir()
    if dd is None or not (dd / GUEST).exists() or not (dd / HOST).exists():
        raise DataError(f"default-credit data not found (looked for {GUEST} and {HOST} in "
                        f"{dd or '../shared/data/fate'}); pass data_dir")
    params = LRParams(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, l2=l2, key_bits=key_bits,
                      allow_insecure=key_bits < 2048, class_weight=class_weight)
    parties = [ACTIVE, *passive_columns(passives)]
    res: dict[str, Any] = {"bench": "lr", "protocol": "hetero LR, packed Paillier cross terms with private 26-bit exponents, "
                           "no third party", "passives": passives, "key_bits": key_bits, "epochs": epochs,
                           "batch_size": batch_size, "learning_rate": learning_rate, "l2": l2,
                           "class_weight": class_weight}
    if transport == "grpc":
        common = {"data_dir": str(dd), "params": params.to_dict(), "passives": passives, "rows": rows,
                  "predict": predict}
        rep = run_processes({p: "privfin.bench.lr:grpc_party" for p in parties},
                            {p: dict(common, party=p) for p in parties})
        by = {p: rep[p] for p in parties}
        coefs = {p: r["result"] for p, r in by.items()}
        res.update({
            "transport": "grpc+mtls (loopback), one process per party",
            "wall_s": round(max(r["t_end"] for r in by.values()) - min(r["t_start"] for r in by.values()), 3),
            "cpu_s": round(sum(r["cpu_s"] for r in by.values()), 2),
            "bytes_sent": int(sum(r["bytes_sent"] for r in by.values())),
            "peak_rss_mb": round(sum(r["peak_rss_mb"] for r in by.values()), 1),
            "cores": rep["_machine"]["cores"], "machine_busy_s_incl_startup": rep["_machine"]["busy_s"],
        })
    elif transport == "memory":
        from privfin.transport.memory import MemoryNetwork, run_parties
        data = {p: load_party(dd, p, passives, rows) for p in parties}
        net = MemoryNetwork(tuple(parties))
        def passive(q: str) -> Any:
            return lambda c: lr_passive(c, data[q][0], params, active=ACTIVE)

        roles = {ACTIVE: lambda c: lr_active(c, data[ACTIVE][0], data[ACTIVE][2], params, passives=parties[1:])}
        for p in parties[1:]:
            roles[p] = passive(p)
        cpu0, t0 = usage()[0], time.time()
        out = run_parties(net, roles, timeout=7200.0)
        wall = time.time() - t0
        coefs = {p: m.to_dict() for p, m in out.items()}
        res.update({"transport": "memory (parties as threads of one process)", "wall_s": round(wall, 3),
                    "cpu_s": round(usage()[0] - cpu0, 2),
                    "bytes_sent": int(sum(len(r.wire) for r in net.transcript)), "cores": os.cpu_count()})
    else:
        raise DataError(f"transport must be 'grpc' or 'memory' (got {transport!r})")
    res.update(_evaluate(dd, passives, params, coefs, rows))
    res["timings_s"] = {p: {k: round(v, 3) for k, v in coefs[p]["timings"].items()} for p in parties}
    if "predict" in coefs[ACTIVE]:
        res["predict"] = coefs[ACTIVE]["predict"]
    return res
