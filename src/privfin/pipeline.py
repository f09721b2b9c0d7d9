"""The built-in pipeline steps, each a thin adapter from a job step to a protocol.

Every job starts with ``load``. The other steps are named in ``job.toml``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from privfin.errors import ProtocolError
from privfin.runtime.inputs import load_party_table
from privfin.runtime.steps import StepContext, step
from privfin.transport.base import Kind


@step("load")
def load(ctx: StepContext, params: dict[str, Any]) -> None:
    """Load and check this party's own input; nothing is sent.

    Duplicate ids are an error here unless a ``psi`` step follows: its id policy
    (normalization, checksums, ``duplicates = "error" | "dedupe"``) then decides.
    """
    has_psi = any(s.name == "psi" for s in ctx.spec.steps)
    table = load_party_table(ctx.spec, ctx.party, ctx.data_dir, check_duplicates=not has_psi)
    ctx.state["table"] = table
    ctx.metric("rows", table.n_rows)
    ctx.metric("features", int(table.features.shape[1]))
    if table.label is not None:
        ctx.metric("positive_rate", round(float(table.label.mean()), 6))


@step("transfer")
def transfer(ctx: StepContext, params: dict[str, Any]) -> None:
    """Network diagnostic: the active party sends random filler to every passive party.

    Parameters: ``size_mb`` per message (default 1), ``rounds`` (default 1), ``pause_s``
    between rounds (default 0). Each receiver answers with the byte count it got.

    Security: the filler is fresh random bytes; receivers learn nothing about any data.
    """
    size_mb = ctx.param(params, "size_mb", (int, float), 1)
    rounds = ctx.param(params, "rounds", int, 1)
    pause = ctx.param(params, "pause_s", (int, float), 0)
    n = int(size_mb * (1 << 20))
    start = time.perf_counter()
    for r in range(rounds):
        if ctx.is_active:
            filler = np.frombuffer(np.random.default_rng().bytes(n), dtype=np.uint8)
            ctx.chan.broadcast("transfer/filler", filler, kind=Kind.PLAINTEXT, to=ctx.passive)
            got = ctx.chan.gather("transfer/ack", frm=ctx.passive)
            short = [p for p, v in got.items() if v != n]
            if short:
                raise ProtocolError(f"'{short[0]}' acknowledged a wrong byte count")
        else:
            data = ctx.chan.recv(ctx.active, "transfer/filler", expect=np.ndarray)
            ctx.chan.send(ctx.active, "transfer/ack", int(data.nbytes), kind=Kind.AGGREGATE)
        ctx.progress(r + 1, rounds)
        if pause:
            time.sleep(pause)
    if ctx.is_active:
        wall = time.perf_counter() - start - pause * rounds
        ctx.metric("mb_per_s", round(size_mb * rounds * len(ctx.passive) / max(wall, 1e-9), 1))


@step("psi")
def psi_step(ctx: StepContext, params: dict[str, Any]) -> None:
    """Align the parties' rows with PSI: KKRT (OT-based) for two parties revealing rows, ECDH
    otherwise (two-party size-only, leader-based for three or more).

    Parameters: ``protocol`` ("auto" | "kkrt" | "ecdh"; "auto" as above), ``reveal`` ("rows" |
    "size_only"), ``to`` (parties that learn the result; default all), ``leader``
    (multi-party), and the id policy: ``strip``, ``nfkc``, ``case``
    ("upper" | "lower" | "keep"), ``checksum`` ("resident_id" | "credit_code" |
    "resident_id_or_credit_code"), ``on_invalid`` ("error" | "skip"), ``duplicates``
    ("error" | "dedupe").

    With ``reveal = "rows"`` every party named in ``to`` continues with its own rows of the
    intersection, in the order common to all parties, and stores them as the ``aligned``
    artifact. Metric ``protocol``: the one that ran. Security: see :mod:`privfin.psi.kkrt`
    and :mod:`privfin.psi.protocol`.
    """
    from privfin.psi import IdPolicy, PsiParams, psi
    from privfin.psi.protocol import protocol_for

    policy_keys = {"strip": bool, "nfkc": bool, "case": str, "checksum": str, "on_invalid": str, "duplicates": str}
    policy = IdPolicy(**{k: ctx.param(params, k, t, None) for k, t in policy_keys.items() if k in params})
    to = ctx.param(params, "to", list, None)
    reveal = ctx.param(params, "reveal", str, "rows", choices=("rows", "size_only"))
    pp = PsiParams(reveal=reveal, to=tuple(to) if to else None, leader=ctx.param(params, "leader", str, None),
                   policy=policy, protocol=ctx.param(params, "protocol", str, "auto", choices=("auto", "kkrt", "ecdh")))
    table = ctx.state["table"]
    ctx.metric("protocol", protocol_for(pp, len(ctx.chan.peers) + 1))
    res = psi(ctx.chan, table.ids, pp)
    h = res.hygiene
    ctx.metric("input_ids", h.n_input)
    ctx.metric("used_ids", h.n_used)
    if h.n_invalid:
        ctx.metric("invalid_ids_skipped", h.n_invalid)
    if h.n_duplicates:
        ctx.metric("duplicate_ids_dropped", h.n_duplicates)
    if res.size is not None:
        ctx.metric("intersection", res.size)
    if res.indices is not None:
        aligned = table.take(res.indices)
        ctx.state["table"] = aligned
        frame = aligned.features.copy()
        frame.insert(0, ctx.spec.parties[ctx.party].id_column, aligned.ids)
        if aligned.label is not None:
            frame[ctx.spec.parties[ctx.party].label_column] = aligned.label
        ctx.save_table("aligned", frame)
    else:
        ctx.state.pop("table", None)  # nothing aligned here: later steps must not use unaligned rows


# ------------------------------------------------------------------------------ features (issue 5)

def _binning_params(ctx: StepContext, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "method": ctx.param(params, "method", str, "quantile", choices=("quantile", "width")),
        "n_bins": ctx.param(params, "bins", int, 10),
        "min_bin_frac": float(ctx.param(params, "min_bin_frac", (int, float), 0.05)),
        "categorical": [str(c) for c in ctx.param(params, "categorical", list, [])],
    }


def _aligned_table(ctx: StepContext) -> Any:
    names = [s.name for s in ctx.spec.steps]
    here = names.index(ctx.step_name) if ctx.step_name in names else len(names)
    if "psi" not in names[:here]:
        from privfin.errors import ConfigError

        raise ConfigError(f"step '{ctx.step_name}' needs the rows aligned by a 'psi' step before it",
                          key=f"steps.{ctx.step_name}", file=ctx.spec.file)
    table = ctx.state.get("table")
    if table is None:
        raise ProtocolError(f"step '{ctx.step_name}' has no aligned rows at this party (psi reveal = size_only?)")
    return table


@step("binning")
def binning_step(ctx: StepContext, params: dict[str, Any]) -> None:
    """Each party bins its own aligned features; nothing is sent.

    Parameters: ``method`` ("quantile" | "width"), ``bins`` (default 10), ``min_bin_frac``
    (default 0.05), ``categorical`` (columns to treat as categories). Puts the bin indices in
    ``ctx.state["binning"]`` for the ``woe`` step and later model steps; the edges stay in this
    party's own ``bins`` artifact.
    """
    from privfin.features.binning import Binner

    bp = _binning_params(ctx, params)
    table = _aligned_table(ctx)
    binner = Binner(bp["method"], bp["n_bins"], min_bin_frac=bp["min_bin_frac"], categorical=bp["categorical"])
    X = binner.fit_transform(table.features)
    names = [str(c) for c in table.features.columns]
    ctx.state["binning"] = {"binner": binner, "bins": X, "names": names}
    ctx.save_table("bins", _bins_table(binner, names))
    ctx.metric("features_binned", len(names))


def _bins_table(binner: Any, names: list[str]) -> Any:
    """One row per feature and bin: label (this party's own edges / categories) and rows."""
    import pandas as pd

    rows = [{"feature": nm, "bin": b, "label": lab, "count": int(binner.bins_[nm].counts[b])}
            for nm in names for b, lab in enumerate(binner.bin_labels(nm))]
    return pd.DataFrame(rows, columns=["feature", "bin", "label", "count"])


def _optimal_bins(ctx: StepContext, params: dict[str, Any], wp: Any) -> Any:
    """``woe`` with ``optimal = true``: fine bins, label-aware merging, local re-binning.

    Replaces ``ctx.state["binning"]`` with this party's coarse binner and bins (saved as its own
    ``optimal_bins`` artifact) and returns the protocol's result. See :mod:`privfin.features.optbin`.
    """
    from privfin.errors import ConfigError
    from privfin.features.optbin import OptBinParams, optbin_active, optbin_passive

    bp = _binning_params(ctx, params)
    try:
        op = OptBinParams(fine_bins=ctx.param(params, "fine_bins", int, 20),
                          fine_min_frac=float(ctx.param(params, "fine_min_frac", (int, float), 0.01)),
                          max_bins=bp["n_bins"], min_bin_frac=bp["min_bin_frac"],
                          method=ctx.param(params, "merge", str, "chimerge", choices=("chimerge", "monotonic")),
                          chi_threshold=ctx.param(params, "chi_threshold", (int, float), None))
    except ValueError as exc:
        raise ConfigError(str(exc), key=f"steps.{ctx.step_name}", file=ctx.spec.file) from exc
    table = _aligned_table(ctx)
    fine = op.fine_binner(bp["method"], bp["categorical"]).fit(table.features)
    Xf = fine.transform(table.features)
    if ctx.is_active:
        res = optbin_active(ctx.chan, table.label, fine, Xf, op, wp, passive=list(ctx.passive))
    else:
        res = optbin_passive(ctx.chan, fine, Xf, op, wp, active=ctx.active)
    names = [str(c) for c in table.features.columns]
    ctx.state["binning"] = {"binner": res.binner, "bins": res.bins, "names": names}
    ctx.save_table("optimal_bins", _bins_table(res.binner, names))
    return res


@step("woe")
def woe_step(ctx: StepContext, params: dict[str, Any]) -> None:
    """WOE/IV/AUC/KS of every feature of every party from encrypted labels (after ``psi``).

    Parameters: those of ``binning`` (used when no ``binning`` step ran before), ``scheme``
    ("ou" | "paillier", default "ou"), ``key_bits`` (default 2048), ``allow_insecure_keys``
    (tests only), ``share_woe`` (default false: passive parties receive the WOE of their own bins
    and WOE-transform locally), ``chunk_rows``. ``optimal = true``: label-aware optimal binning
    (:mod:`privfin.features.optbin`) from ``fine_bins`` (default 20) fine bins of at least
    ``fine_min_frac`` (0.01) of the rows, merged by ``merge`` ("chimerge" | "monotonic") and an
    optional ``chi_threshold`` into at most ``bins`` bins of at least ``min_bin_frac`` of the rows.

    The active party records ``iv.<feature>`` metrics (passive features under aliases such as
    ``gov.f003``) and the ``woe_iv`` table; every party puts ``ctx.state["woe"]`` = its bin
    indices, feature names (aliases for its own features as the active party sees them) and,
    where known, its WOE-transformed features. Security: see :mod:`privfin.features.federated`.
    """
    import pandas as pd

    from privfin.features.federated import WoeParams, woe_active, woe_passive

    wp = WoeParams(
        scheme=ctx.param(params, "scheme", str, "ou", choices=("ou", "paillier")),
        key_bits=ctx.param(params, "key_bits", int, 2048),
        allow_insecure=ctx.param(params, "allow_insecure_keys", bool, False),
        share_woe=ctx.param(params, "share_woe", bool, False),
        min_bin_frac=float(ctx.param(params, "min_bin_frac", (int, float), 0.05)),
        chunk_rows=ctx.param(params, "chunk_rows", int, None),
    )
    opt = _optimal_bins(ctx, params, wp) if ctx.param(params, "optimal", bool, False) else None
    if "binning" not in ctx.state:
        binning_step(ctx, params)
    b = ctx.state["binning"]
    X, names = b["bins"], b["names"]
    if ctx.is_active:
        table = ctx.state["table"]
        res = opt.woe if opt is not None else woe_active(ctx.chan, table.label, X, wp, feature_names=names,
                                                         passive=list(ctx.passive))
        for k, iv in res.iv.items():
            ctx.metric(f"iv.{k}", round(float(iv), 6))
        ctx.metric("features", len(res.features))
        ctx.save_table("woe_iv", res.table())
        woe_frame = pd.DataFrame({nm: res.own_woe[nm][X[:, j].astype(np.int64)] for j, nm in enumerate(names)})
        ctx.state["woe"] = {"bins": X, "names": names, "woe": woe_frame, "result": res}
    else:
        pres = opt.woe if opt is not None else woe_passive(ctx.chan, X, wp, active=ctx.active)
        woe_frame = None
        if pres.woe is not None:
            woe_frame = pd.DataFrame(pres.transform(X), columns=names)
        ctx.state["woe"] = {"bins": X, "names": names, "aliases": pres.aliases, "woe": woe_frame}


def _corr_input(ctx: StepContext, on: str) -> Any:
    """This party's columns for the correlation, in its ``woe`` feature order: raw numeric values
    (+-inf as missing; a non-numeric column is all-missing, so it has no correlations), or its
    WOE-coded features (``on = "woe"``; passive parties need ``share_woe``)."""
    import pandas as pd

    from privfin.errors import ConfigError

    w = ctx.state["woe"]
    if on == "woe":
        if w.get("woe") is None:
            raise ConfigError("corr_on = \"woe\" needs share_woe = true in the woe step",
                              key=f"steps.{ctx.step_name}.corr_on", file=ctx.spec.file)
        return w["woe"][w["names"]].to_numpy(dtype=np.float64)
    frame = ctx.state["table"].features[w["names"]]
    cols = [pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            if pd.api.types.is_numeric_dtype(frame[c]) else np.full(len(frame), np.nan) for c in frame.columns]
    X = np.column_stack(cols) if cols else np.empty((len(frame), 0))
    return np.where(np.isinf(X), np.nan, X)


@step("screen")
def screen_step(ctx: StepContext, params: dict[str, Any]) -> None:
    """Feature screening and the selection report (after ``woe``).

    Parameters: the policy (:class:`privfin.features.screening.SelectionPolicy`): ``max_missing``
    (0.95), ``min_iv`` (0.02), ``max_corr`` (0.7), ``top_k`` (none), ``corr_candidates`` (none);
    ``correlation`` (default true: cross-party Pearson correlation, :mod:`privfin.features.correlation`,
    on ``corr_on`` = "raw" (default) | "woe" values, with Paillier keys of ``key_bits`` (2048;
    ``allow_insecure_keys`` for tests)) of the features that survive the univariate rules (missing
    rate, IV) only -- with ``corr_candidates = K`` of the bank's survivors and only the top K
    passive survivors by IV (pooled over the passive parties); the other passive survivors are
    dropped ("not among the top K passive features by IV"), since the cost is about one
    CPU-second per passive candidate at 100k rows, while up to 31 bank columns share one
    ciphertext; without a bank survivor the bank's best feature by IV is correlated as a
    carrier, not read); ``reveal_names`` (parties that allow
    their feature names in the report; default none: aliases); ``restrict`` (default true: later
    steps use only the kept features).

    The active party stores the ``selection`` table (:class:`privfin.features.report.SelectionReport`;
    one row per feature, ``corr_partner`` empty for features outside the correlation;
    ``privfin jobs report``) and metrics ``kept`` / ``dropped`` / ``corr_candidates`` (features
    correlated).
    Security: see :mod:`privfin.features.screening` and :mod:`privfin.features.correlation`; with
    the correlation, the bank tells each passive party which of its own aliases to correlate (a
    list of its own aliases, ``screen/candidates``), so a passive party learns which of its
    features survived the univariate screen (and the top-K cut) before it learns the kept ones;
    the bank learns the passive candidates' correlations under those aliases.
    """
    from privfin.errors import ConfigError
    from privfin.features.report import SelectionReport
    from privfin.features.screening import SelectionPolicy, screen_active, screen_passive

    w = ctx.state.get("woe")
    if not w or w.get("names") is None:
        raise ConfigError("the screen step needs a woe step before it", key=f"steps.{ctx.step_name}",
                          file=ctx.spec.file)
    k_corr = ctx.param(params, "corr_candidates", int, None)
    if k_corr is not None and k_corr < 1:
        raise ConfigError("corr_candidates must be at least 1", key=f"steps.{ctx.step_name}.corr_candidates",
                          file=ctx.spec.file)
    policy = SelectionPolicy(max_missing=float(ctx.param(params, "max_missing", (int, float), 0.95)),
                             min_iv=float(ctx.param(params, "min_iv", (int, float), 0.02)),
                             max_corr=float(ctx.param(params, "max_corr", (int, float), 0.7)),
                             top_k=ctx.param(params, "top_k", int, None), corr_candidates=k_corr)
    reveal = ctx.party in [str(p) for p in ctx.param(params, "reveal_names", list, [])]
    frame = ctx.state["table"].features[w["names"]]
    correlate = None
    if ctx.param(params, "correlation", bool, True):
        correlate = _screen_correlate(ctx, params)
    if ctx.is_active:
        table = screen_active(ctx.chan, w["result"], frame, policy, passive=list(ctx.passive), correlate=correlate)
        if correlate is not None:
            ctx.metric("corr_candidates", int(table.attrs.get("corr_candidates", 0)))
        report = SelectionReport(table)
        ctx.save_table("selection", report.frame)
        ctx.metric("kept", len(report.kept))
        ctx.metric("dropped", len(report.frame) - len(report.kept))
        ctx.state["screen"] = report
        keep = [k for k in report.kept if k in set(w["names"])]
    else:
        keep = screen_passive(ctx.chan, frame, w["aliases"], active=ctx.active, reveal_names=reveal,
                              correlate=correlate)
    if ctx.param(params, "restrict", bool, True):
        _restrict_woe(ctx, keep)


def _screen_correlate(ctx: StepContext, params: dict[str, Any]) -> Any:
    """The ``correlate`` callback of :func:`~privfin.features.screening.screen_active` /
    ``screen_passive`` for this party: the cross-party correlation over the given candidates only
    (columns of :func:`_corr_input`; a passive party's columns under its own woe aliases)."""
    import pandas as pd

    from privfin.features.correlation import pearson_active, pearson_passive, plain_corr

    w = ctx.state["woe"]
    Xc = _corr_input(ctx, ctx.param(params, "corr_on", str, "raw", choices=("raw", "woe")))
    opts = {"key_bits": ctx.param(params, "key_bits", int, 2048),
            "allow_insecure": ctx.param(params, "allow_insecure_keys", bool, False)}
    if ctx.is_active:
        col = {k: j for j, k in enumerate(w["names"])}

        def correlate_active(cands: dict[str, list[str]]) -> Any:
            own = cands[ctx.party]
            X = Xc[:, [col[k] for k in own]]
            peers = [p for p in ctx.passive if cands.get(p)]
            if not peers:  # nothing of a passive party to correlate: the bank's own block
                return pd.DataFrame(plain_corr(X), index=own, columns=own)
            return pearson_active(ctx.chan, X, own, passives=peers, **opts)

        return correlate_active
    pos = {a: j for j, a in enumerate(w["aliases"])}

    def correlate_passive(aliases: list[str]) -> None:
        pearson_passive(ctx.chan, Xc[:, [pos[a] for a in aliases]], aliases, active=ctx.active, reveal_names=True,
                        **opts)

    return correlate_passive


def holdout_mask(ids: np.ndarray, percent: int = 30) -> np.ndarray:
    """Public split rule every party computes alike on its aligned ids: MD5 of the id's text mod 100."""
    import hashlib

    return np.array([int(hashlib.md5(str(i).encode()).hexdigest(), 16) % 100 < percent for i in ids], dtype=bool)


def _model_matrix(ctx: StepContext, source: str, train: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """This party's numeric design matrix: its WOE-transformed features, or its numeric
    features standardized with means/stds of its own training rows (missing -> mean)."""
    from privfin.errors import ConfigError

    if source == "woe":
        woe = (ctx.state.get("woe") or {}).get("woe")
        if woe is None:
            raise ConfigError("features = \"woe\" needs a woe step before (with share_woe = true for passive "
                              "parties)", key=f"steps.{ctx.step_name}.features", file=ctx.spec.file)
        return woe.to_numpy(dtype=np.float64), list(woe.columns)
    frame = ctx.state["table"].features
    num = frame.select_dtypes("number")
    X = num.to_numpy(dtype=np.float64)
    mean = np.nanmean(X[train], axis=0)
    mean = np.where(np.isnan(mean), 0.0, mean)
    X = np.where(np.isnan(X), mean, X)
    std = X[train].std(axis=0)
    return (X - mean) / np.where(std > 0, std, 1.0), list(num.columns)


@step("lr")
def lr_step(ctx: StepContext, params: dict[str, Any]) -> None:
    """Vertical logistic regression on the aligned rows, then holdout evaluation at the bank.

    Parameters: ``features`` ("woe" — needs a ``woe`` step with ``share_woe = true`` — or
    "standardized"), ``epochs`` (10), ``batch_size`` (1024), ``learning_rate`` (0.1), ``l2``
    (0), ``holdout_percent`` (30; rows whose id's MD5 is below it mod 100), ``key_bits``,
    ``early_stopping`` ("loss", "auc" or "none") with ``patience`` (2) on the validation rows
    (``validation_percent``, default 10: the next band of the same MD5 rule, taken out of training),
    ``class_weight`` ("balanced" or a table ``{"0" = 1.0, "1" = 3.0}``; default none),
    ``calibrate`` (false): Platt scaling on the validation rows (taken out of training as for
    early stopping) — the bank fits ``logit P(y=1) = alpha + beta z`` on their joint linear
    predictors and every party multiplies its coefficients by ``beta`` (the bank's intercept
    becomes ``alpha + beta b``), so the model's log-odds, and the scorecard's points and odds,
    are on the scale of the data (the t1-approximated training shrinks them; ranking, AUC and
    KS are unchanged). Every party keeps its own coefficients (artifact ``lr_model``). The bank
    also trains the same algorithm on its own features only (calibrated the same way) and
    reports both models' holdout AUC and KS.

    Security: training as in :mod:`privfin.models.hetero_lr`. Evaluation: the holdout is
    scored by federated batch prediction (:class:`~privfin.models.hetero_lr.FederatedPredictor`,
    messages ``lr/predict/*``): the bank learns the total linear predictor of each holdout row;
    with two or more passive parties their parts are masked (only the sum is learned), with one
    the total reveals its part. The bank keeps the holdout scores in
    ``ctx.state["scores"]`` (``"lr"``: federated, ``"bank_only"``), aligned with the holdout rows.
    With ``calibrate`` the validation rows are scored in the same prediction session (the bank
    learns their total linear predictors, as for the holdout) and the bank sends every passive
    party ``beta`` (``lr/calibrate``, ``AGGREGATE``: one number fitted on the validation rows).
    """
    from privfin.models.hetero_lr import FederatedPredictor, lr_active, lr_passive, predict_passive
    from privfin.evaluation.metrics import auc, ks
    from privfin.models.logistic import LRParams, train_reference

    table = _aligned_table(ctx)
    source = ctx.param(params, "features", str, "woe" if (ctx.state.get("woe") or {}).get("woe") is not None
                       else "standardized", choices=("woe", "standardized"))
    es = ctx.param(params, "early_stopping", str, "none", choices=("none", "loss", "auc"))
    lp = LRParams(epochs=ctx.param(params, "epochs", int, 10), batch_size=ctx.param(params, "batch_size", int, 1024),
                  learning_rate=float(ctx.param(params, "learning_rate", (int, float), 0.1)),
                  l2=float(ctx.param(params, "l2", (int, float), 0.0)), key_bits=ctx.param(params, "key_bits", int, 2048),
                  allow_insecure=ctx.param(params, "allow_insecure_keys", bool, False),
                  early_stopping=None if es == "none" else es, patience=ctx.param(params, "patience", int, 2),
                  class_weight=ctx.param(params, "class_weight", (str, dict), None))
    calibrate = ctx.param(params, "calibrate", bool, False)
    hp = ctx.param(params, "holdout_percent", int, 30)
    test = holdout_mask(table.ids, hp)
    val = (holdout_mask(table.ids, hp + ctx.param(params, "validation_percent", int, 10)) & ~test
           if lp.early_stopping or calibrate else np.zeros_like(test))
    X, names = _model_matrix(ctx, source, ~test)
    train = ~test & ~val
    Xv = X[val] if lp.early_stopping else None
    scored = test | val if calibrate else test  # rows scored jointly after training, in table order
    if ctx.is_active:
        yv = table.label[val] if lp.early_stopping else None
        model = lr_active(ctx.chan, X[train], table.label[train], lp, passives=ctx.passive, X_val=Xv, y_val=yv)
        if model.best_epoch is not None:
            ctx.metric("best_epoch", model.best_epoch)
        with FederatedPredictor(ctx.chan, ctx.passive, table.ids[scored], {"lr": model.scorer(X[scored])}) as fp:
            z = fp.predict(rows=np.arange(int(scored.sum())))
        coef, b = train_reference(X[train], table.label[train], lp, X_val=Xv, y_val=yv)
        score, bank_score = z[test[scored]], X[test] @ coef + b
        if calibrate:
            fit = _platt(table.label[val], z[val[scored]])
            ctx.chan.broadcast("lr/calibrate", {"beta": fit.coef}, kind=Kind.AGGREGATE, to=ctx.passive)
            model = model.calibrated(fit.coef, fit.intercept)
            score = fit.intercept + fit.coef * score
            own = _platt(table.label[val], X[val] @ coef + b)
            bank_score = own.intercept + own.coef * bank_score
            ctx.metric("calibration_slope", round(fit.coef, 6))
            ctx.metric("calibration_intercept", round(fit.intercept, 6))
        ctx.state.setdefault("scores", {}).update({"lr": score, "bank_only": bank_score})
        y = table.label[test]
        m = {"auc_federated": auc(y, score), "ks_federated": ks(y, score),
             "auc_bank_only": auc(y, bank_score), "ks_bank_only": ks(y, bank_score)}
        for k, v in m.items():
            ctx.metric(k, round(float(v), 6))
        ctx.metric("auc_change_pct", round(100 * (m["auc_federated"] / m["auc_bank_only"] - 1), 2))
        ctx.metric("ks_change_pct", round(100 * (m["ks_federated"] / m["ks_bank_only"] - 1), 2))
        ctx.metric("train_rows", int(train.sum()))
        ctx.metric("holdout_rows", int(test.sum()))
        if val.any():
            ctx.metric("validation_rows", int(val.sum()))
    else:
        model = lr_passive(ctx.chan, X[train], lp, active=ctx.active, X_val=Xv)
        predict_passive(ctx.chan, ctx.active, table.ids[scored], {"lr": model.scorer(X[scored])},
                        passives=ctx.passive)
        if calibrate:
            beta = ctx.chan.recv(ctx.active, "lr/calibrate", expect=dict).get("beta")
            if not isinstance(beta, float) or not 0.0 < beta < 1e6:
                raise ProtocolError(f"'lr/calibrate' from '{ctx.active}': expected a positive slope, got {beta!r}")
            model = model.calibrated(beta)
    import pandas as pd

    rows = [{"feature": n, "coef": float(c)} for n, c in zip(names, model.coef)]
    if model.intercept is not None:
        rows.append({"feature": "(intercept)", "coef": float(model.intercept)})
    ctx.save_table("lr_model", pd.DataFrame(rows), kind="model")
    ctx.state["lr"] = model


def _platt(y: np.ndarray, z: np.ndarray) -> Any:
    """Platt scaling ``logit P(y=1) = intercept + coef * z`` by maximum likelihood; refuses a
    fit that would not keep the ranking (slope not positive) or cannot be made."""
    from privfin.errors import DataError
    from privfin.features.screening import univariate_lr

    fit = univariate_lr(np.asarray(y, np.float64), np.ones(len(z)), z)
    if not fit.coef > 0:  # NaN included
        raise DataError(f"calibration needs validation rows of both classes whose scores rank them (slope "
                        f"{fit.coef:g}); enlarge validation_percent or set calibrate = false")
    return fit


@step("boost")
def boost_step(ctx: StepContext, params: dict[str, Any]) -> None:
    """SecureBoost on the aligned, binned rows (training split), then holdout evaluation at the bank.

    Parameters: ``trees`` (30), ``depth`` (3), ``learning_rate`` (0.3), ``reg_lambda`` (1.0),
    ``gamma`` (0), ``min_child_weight`` (1), ``subsample`` / ``colsample_bytree`` (1.0) and their
    public ``seed`` (0), ``early_stopping_rounds`` (0: off; else on the validation rows,
    ``validation_percent`` (10): the next band of the same MD5 rule, taken out of training), ``bins`` (32; used only when no ``binning``/``woe``
    step ran before), ``holdout_percent`` (30), ``scheme`` ("ou" | "paillier"), ``key_bits``,
    ``allow_insecure_keys`` (tests only). Every party saves only its own part of the model
    (artifact ``boost_model``, JSON, see :class:`~privfin.models.secureboost.ActiveModel` /
    :class:`~privfin.models.secureboost.PassiveModel`). The bank records holdout AUC/KS and split
    counts per party, and keeps the holdout margins in ``ctx.state["scores"]["boost"]`` and those
    of the same algorithm on its own bins alone (plaintext, at the bank) in ``["bank_only_boost"]``.

    Security: training and federated prediction as in :mod:`privfin.models.secureboost`: the bank
    learns every node's instance space and, per holdout row and tree, the leaves reachable under
    each passive party's own splits; passive parties learn instance spaces, never labels,
    gradients, leaf weights or scores.
    """
    from privfin.evaluation.metrics import auc, ks
    from privfin.models.secureboost import (
        SBParams,
        SBPredictor,
        fit_plain,
        predict_margin,
        sb_active,
        sb_passive,
        sb_serve,
    )
    from privfin.runtime.store import Artifact

    table = _aligned_table(ctx)
    b = ctx.state.get("binning") or ctx.state.get("woe")
    if b is None:
        binning_step(ctx, {"bins": ctx.param(params, "bins", int, 32), "min_bin_frac": 0.0})
        b = ctx.state["binning"]
    X = np.asarray(b["bins"], dtype=np.int64)
    sp = SBParams(n_trees=ctx.param(params, "trees", int, 30), max_depth=ctx.param(params, "depth", int, 3),
                  learning_rate=float(ctx.param(params, "learning_rate", (int, float), 0.3)),
                  reg_lambda=float(ctx.param(params, "reg_lambda", (int, float), 1.0)),
                  gamma=float(ctx.param(params, "gamma", (int, float), 0.0)),
                  min_child_weight=float(ctx.param(params, "min_child_weight", (int, float), 1.0)),
                  subsample=float(ctx.param(params, "subsample", (int, float), 1.0)),
                  colsample_bytree=float(ctx.param(params, "colsample_bytree", (int, float), 1.0)),
                  seed=ctx.param(params, "seed", int, 0),
                  early_stopping_rounds=ctx.param(params, "early_stopping_rounds", int, 0),
                  scheme=ctx.param(params, "scheme", str, "ou", choices=("ou", "paillier")),
                  key_bits=ctx.param(params, "key_bits", int, 2048),
                  allow_insecure=ctx.param(params, "allow_insecure_keys", bool, False))
    sp.check()
    hp = ctx.param(params, "holdout_percent", int, 30)
    test = holdout_mask(table.ids, hp)
    val = (holdout_mask(table.ids, hp + ctx.param(params, "validation_percent", int, 10)) & ~test
           if sp.early_stopping_rounds else np.zeros_like(test))
    train = ~test & ~val
    if ctx.is_active:
        valid = (X[val], table.label[val]) if sp.early_stopping_rounds else None
        model: Any = sb_active(ctx.chan, X[train], table.label[train], sp, passive=list(ctx.passive), valid=valid)
        with SBPredictor(ctx.chan, model) as pr:
            score = pr.predict_margin(X[test])
        ctx.state.setdefault("scores", {})["boost"] = score
        # the bank-only counterpart: the same algorithm and parameters on the bank's own bins
        own_trees, _ = fit_plain([X[train]], table.label[train], sp,
                                 valid=None if valid is None else ([valid[0]], valid[1]))
        ctx.state["scores"]["bank_only_boost"] = predict_margin(own_trees, [X[test]], sp.base_margin)
        y = table.label[test]
        ctx.metric("auc_federated", round(float(auc(y, score)), 6))
        ctx.metric("ks_federated", round(float(ks(y, score)), 6))
        for party, imp in model.importance().items():
            ctx.metric(f"splits.{party}", int(imp["splits"]))
        ctx.metric("train_rows", int(train.sum()))
        ctx.metric("holdout_rows", int(test.sum()))
    else:
        model = sb_passive(ctx.chan, X[train], sp, active=ctx.active,
                           bins_valid=X[val] if sp.early_stopping_rounds else None)
        sb_serve(ctx.chan, model, X[test], active=ctx.active)
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    path = ctx.workdir / "boost_model.json"
    model.save(path)
    ctx.artifacts.append(Artifact(ctx.step_name, "boost_model", "model", str(path), path.stat().st_size))
    ctx.state["boost"] = model


@step("scorecard")
def scorecard_step(ctx: StepContext, params: dict[str, Any]) -> None:
    """Each party turns its own coefficients and its own WOE per bin into its points table.

    Parameters: ``base_score`` (600), ``pdo`` (20), ``base_odds`` (50, i.e. 50:1 good:bad at
    the base score), ``digits`` (0: whole points). Needs a ``woe`` step with ``share_woe = true``
    and an ``lr`` step on WOE features before it. Every party saves its own card as the
    ``scorecard`` artifact (kind ``model``) and keeps it in ``ctx.state["scorecard"]``; the base
    points (from the intercept) are in the active party's card. Conventions and rounding:
    :mod:`privfin.models.scorecard`.

    Security: no messages — nothing is sent in this step. Each party's points table (its
    features, bins, WOE, coefficients and points) stays with it. Assembling a customer's total
    score across parties happens at prediction time (later work, issue 6 item 4).
    """
    from privfin.errors import ConfigError
    from privfin.models.scorecard import Scorecard, ScorecardParams, woe_per_bin

    def need(msg: str) -> ConfigError:
        return ConfigError(msg, key=f"steps.{ctx.step_name}", file=ctx.spec.file)

    try:
        sp = ScorecardParams(base_score=float(ctx.param(params, "base_score", (int, float), 600)),
                             pdo=float(ctx.param(params, "pdo", (int, float), 20)),
                             base_odds=float(ctx.param(params, "base_odds", (int, float), 50)),
                             digits=ctx.param(params, "digits", int, 0))
    except ValueError as e:
        raise ConfigError(str(e), key=f"steps.{ctx.step_name}", file=ctx.spec.file) from e
    woe = ctx.state.get("woe") or {}
    model = ctx.state.get("lr")
    if woe.get("woe") is None or model is None:
        raise need("the scorecard step needs a woe step (share_woe = true) and an lr step before it")
    lr_params = next((s.params for s in ctx.spec.steps if s.name == "lr"), {})
    frame = woe["woe"]
    names = [str(c) for c in frame.columns]
    if lr_params.get("features", "woe") != "woe" or len(model.coef) != len(names):
        raise need("the scorecard step needs the lr step trained on WOE features (features = \"woe\")")
    bins = np.asarray(woe["bins"])
    binning = ctx.state.get("binning") or {}
    binner = binning.get("binner")
    res = woe.get("result")
    tables, labels = [], []
    for j, nm in enumerate(names):
        n_bins = int(binner.bins_[nm].n_bins) if binner is not None and nm in binner.bins_ else None
        if res is not None and nm in res.own_woe:
            tables.append(np.asarray(res.own_woe[nm], dtype=np.float64))
        else:
            tables.append(woe_per_bin(bins[:, j], frame[nm].to_numpy(), n_bins))
        lab = binner.bin_labels(nm) if binner is not None and nm in binner.bins_ else []
        labels.append(lab if len(lab) == len(tables[-1]) else [str(b) for b in range(len(tables[-1]))])
    card = Scorecard.build(ctx.party, names, model.coef, tables, sp,
                           intercept=model.intercept if ctx.is_active else None, labels=labels)
    ctx.state["scorecard"] = card
    ctx.save_table("scorecard", card.table(), kind="model")
    ctx.metric("features", len(names))
    if card.base_points is not None:
        ctx.metric("base_points", card.base_points)


@step("evaluate")
def evaluate_step(ctx: StepContext, params: dict[str, Any]) -> None:
    """At the bank: every model's holdout scores side by side, each federated model beside
    its bank-only counterpart (:data:`privfin.evaluation.metrics.BANK_ONLY`).

    Parameters: ``holdout_percent`` (30; must be the model steps' own). Needs an ``lr`` and/or
    ``boost`` step before. Metrics per model: ``<model>.auc``, ``.ks``, ``.gini``,
    ``.top10_rate`` and, for a federated model, ``.auc_change_pct`` / ``.ks_change_pct``
    against its bank-only model (:func:`privfin.evaluation.metrics.compare`). The labels and
    scores are saved as the ``holdout_scores`` artifact for the report.

    Security: no messages. The bank uses only the holdout scores it already holds (see the
    ``lr`` and ``boost`` steps); the artifact stays in its own job store. Passive parties do
    nothing in this step.
    """
    import pandas as pd

    from privfin.errors import ConfigError
    from privfin.evaluation.metrics import BANK_ONLY, compare, evaluate

    if not ctx.is_active:
        return
    scores = ctx.state.get("scores") or {}
    if not scores:
        raise ConfigError("the evaluate step needs an lr or boost step before it", key=f"steps.{ctx.step_name}",
                          file=ctx.spec.file)
    table = _aligned_table(ctx)
    y = table.label[holdout_mask(table.ids, ctx.param(params, "holdout_percent", int, 30))]
    frame: dict[str, np.ndarray] = {"y": np.asarray(y)}
    evals = {}
    for name, s in scores.items():
        s = np.asarray(s, dtype=np.float64)
        if s.shape != y.shape:
            raise ConfigError(f"the {name} scores cover {len(s)} rows but the holdout has {len(y)}: use the model "
                              "steps' holdout_percent", key=f"steps.{ctx.step_name}.holdout_percent", file=ctx.spec.file)
        frame[name] = s
        evals[name] = ev = evaluate(y, s, name)
        for k in ("auc", "ks", "gini", "top10_rate"):
            ctx.metric(f"{name}.{k}", round(float(getattr(ev, k)), 6))
    for fed, base in BANK_ONLY.items():
        if fed in evals and base in evals:
            c = compare(evals[base], evals[fed])
            ctx.metric(f"{fed}.auc_change_pct", round(c["auc_change_pct"], 2))
            ctx.metric(f"{fed}.ks_change_pct", round(c["ks_change_pct"], 2))
    ctx.metric("holdout_rows", int(len(y)))
    ctx.save_table("holdout_scores", pd.DataFrame(frame))


# ------------------------------------------------------------------------------ marketing (issue 8)

def _restrict_woe(ctx: StepContext, keep: list[str]) -> None:
    """Keep only the named features in this party's ``woe`` state (bins, names, WOE frame)."""
    w = ctx.state["woe"]
    wanted = set(keep)
    idx = [j for j, nm in enumerate(w["names"]) if nm in wanted]
    w["names"] = [w["names"][j] for j in idx]
    w["bins"] = np.asarray(w["bins"])[:, idx]
    if w.get("woe") is not None:
        w["woe"] = w["woe"][w["names"]]
    if w.get("aliases") is not None:
        w["aliases"] = [w["aliases"][j] for j in idx]


def _decorrelate(ctx: StepContext, ranked: list[str], max_corr: float) -> list[str]:
    """``ranked`` (own feature names, best first) without any feature whose WOE values correlate
    with a better retained one by more than ``max_corr`` (|r|; constant columns count as 0)."""
    if not ranked:
        return []
    frame = (ctx.state.get("woe") or {}).get("woe")
    if frame is None:
        from privfin.errors import ConfigError

        raise ConfigError("iv_select with max_corr needs share_woe = true in the woe step",
                          key=f"steps.{ctx.step_name}.max_corr", file=ctx.spec.file)
    X = frame[ranked].to_numpy(dtype=np.float64)
    X = X - X.mean(axis=0)
    norm = np.sqrt((X * X).sum(axis=0))
    Z = X / np.where(norm > 0, norm, 1.0)
    kept: list[int] = []
    for j in range(len(ranked)):
        if not kept or np.max(np.abs(Z[:, kept].T @ Z[:, j])) <= max_corr:
            kept.append(j)
    return [ranked[j] for j in kept]


@step("iv_select")
def iv_select_step(ctx: StepContext, params: dict[str, Any]) -> None:
    """Short list by information value (stand-in until a full ``screen`` step is wired).

    Parameters: ``top_k`` (default 20): passive parties' features kept, pooled, by IV;
    ``own_top_k`` (default ``top_k``): the bank's own features kept, by IV, chosen apart so the
    bank-only baseline of a later ``lr`` step gets the bank's best own short list; ``min_iv``
    (default 0.02): no feature below it is kept; ``max_corr`` (default none): redundancy filter
    inside each passive party, see below; ``candidates`` (default: all). Needs a ``woe``
    step before; after a ``screen`` step it chooses among the features that screening kept. The
    bank ranks every candidate's IV (passive ones under their aliases) and tells each passive
    party which of its aliases are kept; every party then restricts its ``woe`` state, so a later
    ``lr`` step trains on the short list. Metrics at the bank: ``kept.own``, ``kept.<party>``.

    With ``max_corr``: the bank first sends each passive party its share of the pooled top
    ``candidates`` aliases (IV >= ``min_iv``), in descending IV order (``select/candidates``); the passive party
    walks that list and drops every feature whose WOE values (its own aligned rows, in the clear
    at home; needs ``share_woe = true``) correlate with an already retained one by more than
    ``max_corr`` in absolute value, and returns the retained aliases (``select/survivors``); the
    bank keeps the pooled top ``top_k`` of the survivors. The bank's own features are filtered
    the same way among themselves (no cross-party correlation is computed).

    Security: the bank learns nothing new from the IVs (it computed them in ``woe``); with
    ``max_corr`` it learns which candidates a passive party found redundant (pairs above
    ``max_corr``, no coefficient). Each passive party learns which of its own features were kept
    (``select/keep``, plaintext): that they rank among the passive features' top ``top_k`` by IV
    and, with ``max_corr``, the IV order of its candidates; nothing about the bank's features.
    """
    if (ctx.state.get("woe") or {}).get("names") is None:
        from privfin.errors import ConfigError

        raise ConfigError("the iv_select step needs a woe step before it", key=f"steps.{ctx.step_name}",
                          file=ctx.spec.file)
    top_k = ctx.param(params, "top_k", int, 20)
    own_top_k = ctx.param(params, "own_top_k", int, top_k)
    min_iv = float(ctx.param(params, "min_iv", (int, float), 0.02))
    max_corr = ctx.param(params, "max_corr", (int, float), None)
    n_cand = ctx.param(params, "candidates", int, None)
    if ctx.is_active:
        res = ctx.state["woe"]["result"]
        screened = ctx.state.get("screen")
        allowed = set(ctx.state["woe"]["names"]) | {k for k, f in res.features.items() if f.party != ctx.party}
        if screened is not None:
            allowed &= set(ctx.state["woe"]["names"]) | set(screened.kept)
        ranked = [k for k, f in sorted(res.features.items(), key=lambda kv: (-kv[1].stats.iv, kv[0]))
                  if f.stats.iv >= min_iv and k in allowed]
        own = [k for k in ranked if res.features[k].party == ctx.party]
        kept = [k for k in ranked if res.features[k].party != ctx.party]
        if max_corr is not None:
            own = _decorrelate(ctx, own, float(max_corr))
            cand = kept if n_cand is None else kept[:n_cand]
            for p in ctx.passive:
                ctx.chan.send(p, "select/candidates", [k for k in cand if res.features[k].party == p],
                              kind=Kind.PLAINTEXT)
            got = ctx.chan.gather("select/survivors", frm=ctx.passive, expect=list)
            survivors = {(p, str(a)) for p, lst in got.items() for a in lst}
            if any(a not in set(cand) or res.features[a].party != p for p, a in survivors):
                raise ProtocolError("a passive party returned a feature that was not its candidate")
            kept = [k for k in cand if (res.features[k].party, k) in survivors]
        own, kept = own[:own_top_k], kept[:top_k]
        for p in ctx.passive:
            aliases = [k for k in kept if res.features[k].party == p]
            ctx.chan.send(p, "select/keep", aliases, kind=Kind.PLAINTEXT)
            ctx.metric(f"kept.{p}", len(aliases))
        _restrict_woe(ctx, own)
        ctx.metric("kept.own", len(own))
    else:
        w = ctx.state["woe"]
        by_alias = dict(zip(w["aliases"], w["names"]))  # features still in the woe state
        if max_corr is not None:
            cand = [str(a) for a in ctx.chan.recv(ctx.active, "select/candidates", expect=list)]
            if any(a not in by_alias for a in cand):
                raise ProtocolError(f"'{ctx.active}' sent unknown feature aliases")
            names = _decorrelate(ctx, [by_alias[a] for a in cand], float(max_corr))
            ctx.chan.send(ctx.active, "select/survivors", [a for a in cand if by_alias[a] in set(names)],
                          kind=Kind.PLAINTEXT)
        aliases = [str(a) for a in ctx.chan.recv(ctx.active, "select/keep", expect=list)]
        unknown = [a for a in aliases if a not in by_alias]
        if unknown:
            raise ProtocolError(f"'{ctx.active}' selected {len(unknown)} unknown feature aliases")
        _restrict_woe(ctx, [by_alias[a] for a in aliases])
        ctx.metric("kept", len(aliases))


@step("score_prospects")
def score_prospects_step(ctx: StepContext, params: dict[str, Any]) -> None:
    """Each passive party scores its prospects and sends the bank the ids of the top-ranked ones.

    Prospects are the passive party's own rows outside the intersection (e.g. enterprises the
    bank does not serve yet). The passive party bins them with its own binner, WOE-codes them
    with its own WOE tables and ranks them by its own part of the ``lr`` model (its
    coefficients times its WOE features: the bank's features and intercept are unknown for a
    prospect and taken as constant). Parameters: exactly one of ``top_k`` (ids per passive
    party) or ``top_percent`` (of its prospects, rounded up). Needs ``woe`` (``share_woe =
    true``) and ``lr`` (``features = "woe"``) steps before. The bank stores the ids as the
    ``prospects`` artifact (``party``, ``id``). If the ``lr`` step left holdout scores in
    ``ctx.state["scores"]``, the bank also records ``top_<p>pct_rate_<model>`` (response rate of
    its holdout customers in the top ``top_percent``) and ``holdout_base_rate``.

    Security: one message, ``prospects/top_ids`` (plaintext), passive -> bank: the ids of the
    selected prospects in sorted order (no scores, no ranks). The bank learns those ids -- the
    disclosure the job grants -- and, with ``top_percent``, the passive party's number of
    prospects to within rounding. The passive party learns nothing new (nothing is sent to it).
    """
    import math

    import pandas as pd

    from privfin.errors import ConfigError
    from privfin.models.scorecard import woe_per_bin

    top_k = ctx.param(params, "top_k", int, None)
    top_pct = ctx.param(params, "top_percent", (int, float), None)
    if (top_k is None) == (top_pct is None) or (top_k is not None and top_k < 1) or \
            (top_pct is not None and not 0 < top_pct <= 100):
        raise ConfigError("score_prospects needs exactly one of top_k (>= 1) or top_percent (0-100]",
                          key=f"steps.{ctx.step_name}", file=ctx.spec.file)
    woe, model = ctx.state.get("woe") or {}, ctx.state.get("lr")
    if woe.get("woe") is None or model is None or len(model.coef) != woe["woe"].shape[1]:
        raise ConfigError("score_prospects needs a woe step (share_woe = true) and an lr step on WOE features "
                          "before it", key=f"steps.{ctx.step_name}", file=ctx.spec.file)
    if ctx.is_active:
        got = ctx.chan.gather("prospects/top_ids", frm=ctx.passive, expect=np.ndarray)
        frame = pd.concat([pd.DataFrame({"party": p, "id": ids.astype(str)}) for p, ids in got.items()],
                          ignore_index=True)
        ctx.save_table("prospects", frame)
        for p, ids in got.items():
            ctx.metric(f"prospects.{p}", len(ids))
        scores = ctx.state.get("scores") or {}
        if scores and top_pct is not None:
            from privfin.evaluation.metrics import response_rate_top

            table = ctx.state["table"]
            lr_params = next((s.params for s in ctx.spec.steps if s.name == "lr"), {})
            y = table.label[holdout_mask(table.ids, int(lr_params.get("holdout_percent", 30)))]
            ctx.metric("holdout_base_rate", round(float(y.mean()), 6))
            for name, s in scores.items():
                if isinstance(s, np.ndarray) and s.shape == y.shape:
                    ctx.metric(f"top_{top_pct:g}pct_rate_{name}", round(response_rate_top(y, s, float(top_pct)), 6))
        return
    from privfin.runtime.inputs import load_party_table

    full = load_party_table(ctx.spec, ctx.party, ctx.data_dir, check_duplicates=False)
    ids = full.ids
    first = ~pd.Series(ids).duplicated().to_numpy()
    prospect = first & ~pd.Series(ids).isin(set(ctx.state["table"].ids)).to_numpy()
    names = [str(c) for c in woe["woe"].columns]
    binner = ctx.state["binning"]["binner"]
    cols = [list(woe["names"]).index(nm) for nm in names]
    P = binner.transform(full.features.loc[prospect])  # every column the binner was fitted on
    all_names = list(ctx.state["binning"]["names"])
    X = np.empty((int(prospect.sum()), len(names)))
    for j, (nm, c) in enumerate(zip(names, cols)):
        table = woe_per_bin(np.asarray(woe["bins"])[:, c], woe["woe"][nm].to_numpy(), int(binner.bins_[nm].n_bins))
        X[:, j] = table[P[:, all_names.index(nm)].astype(np.int64)]
    score = X @ np.asarray(model.coef, dtype=np.float64)
    n = len(score)
    k = min(n, top_k if top_k is not None else math.ceil(n * float(top_pct) / 100 - 1e-9))
    top = np.argsort(-score, kind="stable")[:k]
    chosen = np.sort(ids[prospect][top].astype(str))
    ctx.chan.send(ctx.active, "prospects/top_ids", chosen, kind=Kind.PLAINTEXT)
    ctx.save_table("prospect_scores", pd.DataFrame({"id": ids[prospect], "score": score}))
    ctx.metric("prospects", n)
    ctx.metric("sent", int(k))
