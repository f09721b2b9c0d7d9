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
    """Align the parties' rows with ECDH PSI (two-party, or leader-based for three or more).

    Parameters: ``reveal`` ("rows" | "size_only"), ``to`` (parties that learn the result;
    default all), ``leader`` (multi-party), and the id policy: ``strip``, ``nfkc``, ``case``
    ("upper" | "lower" | "keep"), ``checksum`` ("resident_id" | "credit_code" |
    "resident_id_or_credit_code"), ``on_invalid`` ("error" | "skip"), ``duplicates``
    ("error" | "dedupe").

    With ``reveal = "rows"`` every party named in ``to`` continues with its own rows of the
    intersection, in the order common to all parties, and stores them as the ``aligned``
    artifact. Security: see :mod:`privfin.psi.protocol`.
    """
    from privfin.psi import IdPolicy, PsiParams, psi

    policy_keys = {"strip": bool, "nfkc": bool, "case": str, "checksum": str, "on_invalid": str, "duplicates": str}
    policy = IdPolicy(**{k: ctx.param(params, k, t, None) for k, t in policy_keys.items() if k in params})
    to = ctx.param(params, "to", list, None)
    reveal = ctx.param(params, "reveal", str, "rows", choices=("rows", "size_only"))
    pp = PsiParams(reveal=reveal, to=tuple(to) if to else None, leader=ctx.param(params, "leader", str, None),
                   policy=policy)
    table = ctx.state["table"]
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
    import pandas as pd

    from privfin.features.binning import Binner

    bp = _binning_params(ctx, params)
    table = _aligned_table(ctx)
    binner = Binner(bp["method"], bp["n_bins"], min_bin_frac=bp["min_bin_frac"], categorical=bp["categorical"])
    X = binner.fit_transform(table.features)
    names = [str(c) for c in table.features.columns]
    ctx.state["binning"] = {"binner": binner, "bins": X, "names": names}
    rows = [{"feature": nm, "bin": b, "label": lab, "count": int(binner.bins_[nm].counts[b])}
            for nm in names for b, lab in enumerate(binner.bin_labels(nm))]
    ctx.save_table("bins", pd.DataFrame(rows, columns=["feature", "bin", "label", "count"]))
    ctx.metric("features_binned", len(names))


@step("woe")
def woe_step(ctx: StepContext, params: dict[str, Any]) -> None:
    """WOE/IV/AUC/KS of every feature of every party from encrypted labels (after ``psi``).

    Parameters: those of ``binning`` (used when no ``binning`` step ran before), ``scheme``
    ("ou" | "paillier", default "ou"), ``key_bits`` (default 2048), ``allow_insecure_keys``
    (tests only), ``share_woe`` (default false: passive parties receive the WOE of their own bins
    and WOE-transform locally), ``chunk_rows``.

    The active party records ``iv.<feature>`` metrics (passive features under aliases such as
    ``gov.f003``) and the ``woe_iv`` table; every party puts ``ctx.state["woe"]`` = its bin
    indices, feature names (aliases for its own features as the active party sees them) and,
    where known, its WOE-transformed features. Security: see :mod:`privfin.features.federated`.
    """
    import pandas as pd

    from privfin.features.federated import WoeParams, woe_active, woe_passive

    if "binning" not in ctx.state:
        binning_step(ctx, params)
    b = ctx.state["binning"]
    wp = WoeParams(
        scheme=ctx.param(params, "scheme", str, "ou", choices=("ou", "paillier")),
        key_bits=ctx.param(params, "key_bits", int, 2048),
        allow_insecure=ctx.param(params, "allow_insecure_keys", bool, False),
        share_woe=ctx.param(params, "share_woe", bool, False),
        min_bin_frac=float(ctx.param(params, "min_bin_frac", (int, float), 0.05)),
        chunk_rows=ctx.param(params, "chunk_rows", int, None),
    )
    X, names = b["bins"], b["names"]
    if ctx.is_active:
        table = ctx.state["table"]
        res = woe_active(ctx.chan, table.label, X, wp, feature_names=names, passive=list(ctx.passive))
        for k, iv in res.iv.items():
            ctx.metric(f"iv.{k}", round(float(iv), 6))
        ctx.metric("features", len(res.features))
        ctx.save_table("woe_iv", res.table())
        woe_frame = pd.DataFrame({nm: res.own_woe[nm][X[:, j].astype(np.int64)] for j, nm in enumerate(names)})
        ctx.state["woe"] = {"bins": X, "names": names, "woe": woe_frame, "result": res}
    else:
        pres = woe_passive(ctx.chan, X, wp, active=ctx.active)
        woe_frame = None
        if pres.woe is not None:
            woe_frame = pd.DataFrame(pres.transform(X), columns=names)
        ctx.state["woe"] = {"bins": X, "names": names, "aliases": pres.aliases, "woe": woe_frame}


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
    (0), ``holdout_percent`` (30; rows whose id's MD5 is below it mod 100), ``key_bits``.
    Every party keeps its own coefficients (artifact ``lr_model``). The bank also trains the
    same algorithm on its own features only and reports both models' holdout AUC and KS.

    Security: training as in :mod:`privfin.models.hetero_lr`. Evaluation: for the holdout
    rows each passive party sends the bank its partial scores (message ``lr/holdout_scores``,
    ledger kind ``plaintext``), so the bank learns them — with one passive party the total
    score alone would reveal them anyway. Masked sums across several passive parties belong
    to federated prediction (issue 6).
    """
    from privfin.models.hetero_lr import lr_active, lr_passive
    from privfin.models.logistic import LRParams, auc, ks, train_reference

    table = _aligned_table(ctx)
    source = ctx.param(params, "features", str, "woe" if (ctx.state.get("woe") or {}).get("woe") is not None
                       else "standardized", choices=("woe", "standardized"))
    lp = LRParams(epochs=ctx.param(params, "epochs", int, 10), batch_size=ctx.param(params, "batch_size", int, 1024),
                  learning_rate=float(ctx.param(params, "learning_rate", (int, float), 0.1)),
                  l2=float(ctx.param(params, "l2", (int, float), 0.0)), key_bits=ctx.param(params, "key_bits", int, 2048),
                  allow_insecure=ctx.param(params, "allow_insecure_keys", bool, False))
    test = holdout_mask(table.ids, ctx.param(params, "holdout_percent", int, 30))
    train = ~test
    X, names = _model_matrix(ctx, source, train)
    if ctx.is_active:
        model = lr_active(ctx.chan, X[train], table.label[train], lp, passives=ctx.passive)
        parts = ctx.chan.gather("lr/holdout_scores", frm=ctx.passive, expect=np.ndarray)
        score = model.partial_score(X[test]) + sum(parts.values())
        coef, b = train_reference(X[train], table.label[train], lp)
        bank_score = X[test] @ coef + b
        y = table.label[test]
        m = {"auc_federated": auc(y, score), "ks_federated": ks(y, score),
             "auc_bank_only": auc(y, bank_score), "ks_bank_only": ks(y, bank_score)}
        for k, v in m.items():
            ctx.metric(k, round(float(v), 6))
        ctx.metric("auc_change_pct", round(100 * (m["auc_federated"] / m["auc_bank_only"] - 1), 2))
        ctx.metric("ks_change_pct", round(100 * (m["ks_federated"] / m["ks_bank_only"] - 1), 2))
        ctx.metric("train_rows", int(train.sum()))
        ctx.metric("holdout_rows", int(test.sum()))
    else:
        model = lr_passive(ctx.chan, X[train], lp, active=ctx.active)
        ctx.chan.send(ctx.active, "lr/holdout_scores", model.partial_score(X[test]), kind=Kind.PLAINTEXT)
    import pandas as pd

    rows = [{"feature": n, "coef": float(c)} for n, c in zip(names, model.coef)]
    if model.intercept is not None:
        rows.append({"feature": "(intercept)", "coef": float(model.intercept)})
    ctx.save_table("lr_model", pd.DataFrame(rows), kind="model")
    ctx.state["lr"] = model


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
