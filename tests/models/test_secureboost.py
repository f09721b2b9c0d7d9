"""SecureBoost training: oracle (plain reference, xgboost), leak test on the transcript, bad input."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from privfin.errors import CryptoError, DataError, ProtocolError
from privfin.features.binning import Binner
from privfin.models.secureboost import (
    SBParams,
    assemble,
    fit_plain,
    grad_hess,
    predict_margin,
    quantize,
    sb_active,
    sb_passive,
    sigmoid,
)
from privfin.transport.base import Kind
from privfin.transport.memory import MemoryNetwork, run_parties

PARAMS = SBParams(n_trees=3, max_depth=3, learning_rate=0.3, reg_lambda=1.0, min_child_weight=1.0,
                  scheme="ou", key_bits=768, allow_insecure=True)


def _data(n: int = 400, d: tuple[int, ...] = (2, 2, 2), n_bins: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, sum(d)))
    z = X @ rng.normal(size=sum(d)) + 0.5 * X[:, 0] * X[:, -1]
    y = (rng.random(n) < sigmoid(z)).astype(np.int64)
    B = np.column_stack([np.clip(np.searchsorted(np.quantile(X[:, j], np.linspace(0, 1, n_bins + 1)[1:-1]),
                                                 X[:, j], side="right"), 0, n_bins - 1) for j in range(X.shape[1])])
    parts, off = [], 0
    for k in d:
        parts.append(B[:, off:off + k].astype(np.int64))
        off += k
    return X, parts, y


def _passive(c, *, B, params):
    return sb_passive(c, B, params)


def _run(parts, y, params, names=None):
    names = names or ["bank"] + [f"p{i}" for i in range(1, len(parts))]
    net = MemoryNetwork(tuple(names))
    roles = {names[0]: lambda c: sb_active(c, parts[0], y, params)}
    for nm, B in zip(names[1:], parts[1:]):
        roles[nm] = functools.partial(_passive, B=B, params=params)
    res = run_parties(net, roles, timeout=120)
    return net, res, names


@pytest.mark.parametrize("n_parts", [2, 3])
def test_federated_equals_plain_reference(serial_executor, n_parts):
    _, parts, y = _data(d=(2,) * n_parts, seed=n_parts)
    _, res, names = _run(parts, y, PARAMS)
    act = res[names[0]]
    trees = assemble(act, {nm: res[nm] for nm in names[1:]})
    ref_trees, ref_margin = fit_plain(parts, y, PARAMS)
    for t, r in zip(trees, ref_trees):
        assert t.split == r.split
        assert t.leaf == r.leaf
    np.testing.assert_allclose(act.train_margin, ref_margin, atol=1e-12)
    np.testing.assert_allclose(predict_margin(trees, parts, PARAMS.base_margin), ref_margin, atol=1e-6)
    # passive splits were used and the model learned something
    assert any(pi > 0 for t in act.trees for pi, _ in t.split.values())
    imp = act.importance()
    assert set(imp) == set(names) and sum(v["splits"] for v in imp.values()) > 0
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(y, act.train_margin) > 0.7


def test_math_matches_logloss_derivatives():
    m = np.linspace(-5, 5, 11)
    y = (m > 0).astype(float)
    g, h = grad_hess(y, m)
    eps = 1e-6

    def loss(mm):
        return -(y * np.log(sigmoid(mm)) + (1 - y) * np.log(1 - sigmoid(mm)))

    np.testing.assert_allclose(g, (loss(m + eps) - loss(m - eps)) / (2 * eps), atol=1e-6)
    np.testing.assert_allclose(h, (grad_hess(y, m + eps)[0] - grad_hess(y, m - eps)[0]) / (2 * eps), atol=1e-6)
    assert quantize(np.array([0.5]), PARAMS)[0] == 1 << (PARAMS.frac_bits - 1)


def test_transcript_leaks_nothing_in_the_clear(serial_executor):
    X, parts, y = _data(n=200, d=(2, 2, 2), seed=7)
    params = SBParams(n_trees=2, max_depth=2, scheme="ou", key_bits=768, allow_insecure=True)
    net, res, names = _run(parts, y, params)
    act = res["bank"]
    # the gradients / hessians of the second tree (diverse values), as float64 and fixed-point ints
    trees = assemble(act, {nm: res[nm] for nm in names[1:]})
    g, h = grad_hess(y, predict_margin(trees[:1], parts, 0.0))
    needles: list[bytes] = []
    for arr in (g, h):
        needles += [arr[i].tobytes() for i in range(0, len(arr), 5)]
        needles += [int(v).to_bytes(8, "little", signed=True) for v in quantize(arr, params)[::5]]
        needles += [int(v).to_bytes(4, "little", signed=True) for v in quantize(arr, params)[::5]]
    # low-entropy needles (few non-zero bytes) would match row-index arrays by accident
    needles = [nd for nd in needles if sum(b != 0 for b in nd) >= 3]
    assert len(needles) > 50
    needles.append(np.asarray(y, dtype=np.int64).tobytes())
    needles.append(np.asarray(y, dtype=np.uint8).tobytes())
    needles.append(np.asarray(y, dtype=bool).tobytes())
    for B in parts:  # raw bins / values of every party (the columns as whole arrays)
        for j in range(B.shape[1]):
            needles.append(np.ascontiguousarray(B[:, j]).tobytes())
    for j in range(X.shape[1]):
        needles += [X[i, j].tobytes() for i in range(0, len(X), 13)]
    for rec in net.transcript:
        for nd in needles:
            assert nd not in rec.wire, f"clear value in '{rec.envelope.tag}' to {rec.envelope.receiver}"
    # passive parties receive only plaintext control data and ciphertexts
    for nm in names[1:]:
        kinds = {(e.tag, e.kind) for e in net.ledgers[nm]}
        assert kinds <= {("sb/setup", Kind.PLAINTEXT), ("sb/cmd", Kind.PLAINTEXT), ("sb/gh", Kind.CIPHERTEXT)}
        assert ("sb/gh", Kind.CIPHERTEXT) in kinds
    # the bank gets aggregates and partitions, never a passive party's (feature, bin)
    assert {e.tag for e in net.ledgers["bank"]} <= {"sb/hist", "sb/part"}
    for t in act.trees:
        for pi, ref in t.split.values():
            assert (pi == 0) == (ref is not None)
    # a passive party's command messages carry row ids and candidate numbers only
    for rec in net.messages(receiver="p1"):
        if rec.envelope.tag == "sb/cmd":
            assert b"leaf" not in rec.wire and b"gain" not in rec.wire


def test_bad_inputs(serial_executor):
    _, parts, y = _data(n=60, d=(1, 1))
    with pytest.raises(DataError):
        _run([parts[0], parts[1]], y * 2, PARAMS)
    with pytest.raises(ProtocolError):  # passive has a different row count
        _run([parts[0], parts[1][:-1]], y, PARAMS)
    with pytest.raises(CryptoError, match="2048"):  # passive refuses a short key without allow_insecure
        net = MemoryNetwork(("bank", "p1"))
        strict = SBParams(scheme="ou", key_bits=768, allow_insecure=False)
        run_parties(net, {"bank": lambda c: sb_active(c, parts[0], y, PARAMS),
                          "p1": lambda c: sb_passive(c, parts[1], strict)}, timeout=30)
    with pytest.raises(DataError):
        SBParams(max_depth=0).check()


def _xgb_auc(B_tr, y_tr, B_te, y_te, params, n_bins):
    xgb = pytest.importorskip("xgboost")
    from sklearn.metrics import roc_auc_score
    m = xgb.XGBClassifier(tree_method="hist", n_estimators=params.n_trees, max_depth=params.max_depth,
                          learning_rate=params.learning_rate, reg_lambda=params.reg_lambda, gamma=params.gamma,
                          min_child_weight=params.min_child_weight, max_bin=n_bins, base_score=0.5,
                          subsample=1.0, colsample_bytree=1.0)
    m.fit(B_tr, y_tr)
    return roc_auc_score(y_te, m.predict_proba(B_te)[:, 1])


def test_holdout_auc_close_to_xgboost(serial_executor):
    pytest.importorskip("xgboost")
    from sklearn.metrics import roc_auc_score
    _, parts, y = _data(n=600, d=(2, 3), n_bins=8, seed=11)
    tr = np.arange(len(y)) % 10 >= 3
    params = SBParams(n_trees=5, max_depth=3, learning_rate=0.3, reg_lambda=1.0, scheme="ou", key_bits=768,
                      allow_insecure=True)
    _, res, _ = _run([B[tr] for B in parts], y[tr], params)
    trees = assemble(res["bank"], {"p1": res["p1"]})
    auc = roc_auc_score(y[~tr], predict_margin(trees, [B[~tr] for B in parts], 0.0))
    B = np.column_stack(parts)
    assert abs(auc - _xgb_auc(B[tr], y[tr], B[~tr], y[~tr], params, 8)) < 0.005


def test_default_credit_plain_vs_federated(serial_executor, fate_dir):
    guest = pd.read_csv(fate_dir / "default_credit_hetero_guest.csv").head(1500)
    host = pd.read_csv(fate_dir / "default_credit_hetero_host.csv").set_index("id").loc[guest["id"]]
    y = guest["y"].to_numpy().astype(np.int64)
    Bg = Binner(n_bins=8, min_bin_frac=0.0).fit_transform(guest.drop(columns=["id", "y"])).astype(np.int64)
    Bh = Binner(n_bins=8, min_bin_frac=0.0).fit_transform(host.reset_index(drop=True)).astype(np.int64)
    params = SBParams(n_trees=2, max_depth=3, scheme="ou", key_bits=768, allow_insecure=True)
    _, res, _ = _run([Bg, Bh], y, params)
    trees = assemble(res["bank"], {"p1": res["p1"]})
    ref_trees, ref_margin = fit_plain([Bg, Bh], y, params)
    assert [t.split for t in trees] == [t.split for t in ref_trees]
    np.testing.assert_allclose(predict_margin(trees, [Bg, Bh], 0.0), ref_margin, atol=1e-6)


def test_default_credit_reference_matches_xgboost(fate_dir):
    """Issue 7 setup (MD5 holdout ~30%, 30 trees, depth 3, 32 bins, eta 0.3, lambda 0.1): the plain
    reference, which the federated run equals split for split, against xgboost on the same bins."""
    xgb = pytest.importorskip("xgboost")
    import hashlib

    from sklearn.metrics import roc_auc_score
    guest = pd.read_csv(fate_dir / "default_credit_hetero_guest.csv")
    host = pd.read_csv(fate_dir / "default_credit_hetero_host.csv").set_index("id").loc[guest["id"]]
    y = guest["y"].to_numpy().astype(np.int64)
    te = np.array([int(hashlib.md5(str(i).encode()).hexdigest(), 16) % 10 < 3 for i in guest["id"]])
    Bg = Binner(n_bins=32, min_bin_frac=0.0).fit_transform(guest.drop(columns=["id", "y"])).astype(np.int64)
    Bh = Binner(n_bins=32, min_bin_frac=0.0).fit_transform(host.reset_index(drop=True)).astype(np.int64)
    params = SBParams(n_trees=30, max_depth=3, learning_rate=0.3, reg_lambda=0.1)
    trees, _ = fit_plain([Bg[~te], Bh[~te]], y[~te], params)
    margin = predict_margin(trees, [Bg[te], Bh[te]], 0.0)
    B = np.column_stack([Bg, Bh])
    m = xgb.XGBClassifier(tree_method="hist", n_estimators=30, max_depth=3, learning_rate=0.3, reg_lambda=0.1,
                          max_bin=32, base_score=0.5).fit(B[~te], y[~te])
    assert abs(roc_auc_score(y[te], margin) - roc_auc_score(y[te], m.predict_proba(B[te])[:, 1])) < 0.005
    # same trees up to xgboost's float32 and our 2^-24 fixed point
    np.testing.assert_allclose(margin, m.predict(B[te], output_margin=True), atol=1e-4)


def _passive_v(c, *, B, Bv, params):
    return sb_passive(c, B, params, bins_valid=Bv)


def test_subsampling_and_early_stopping_equal_reference(serial_executor):
    from privfin.models.secureboost import col_sample, row_sample

    _, parts, y = _data(n=500, d=(2, 3, 2), seed=5)
    va = np.arange(len(y)) % 4 == 0
    tr_parts, va_parts = [B[~va] for B in parts], [B[va] for B in parts]
    params = SBParams(n_trees=14, max_depth=3, learning_rate=1.0, reg_lambda=0.1, subsample=0.7,
                      colsample_bytree=0.5, seed=9, early_stopping_rounds=2, scheme="ou", key_bits=768,
                      allow_insecure=True)
    names = ["bank", "p1", "p2"]
    net = MemoryNetwork(tuple(names))
    roles = {"bank": lambda c: sb_active(c, tr_parts[0], y[~va], params, valid=(va_parts[0], y[va]))}
    for nm, B, Bv in zip(names[1:], tr_parts[1:], va_parts[1:]):
        roles[nm] = functools.partial(_passive_v, B=B, Bv=Bv, params=params)
    res = run_parties(net, roles, timeout=120)
    act = res["bank"]
    ref_trees, ref_margin = fit_plain(tr_parts, y[~va], params, valid=(va_parts, y[va]))
    assert 1 < len(ref_trees) < params.n_trees  # early stopping did stop
    trees = assemble(act, {nm: res[nm] for nm in names[1:]})
    assert len(trees) == len(ref_trees) and len(act.valid_loss) == len(ref_trees) + params.early_stopping_rounds
    for t, r in zip(trees, ref_trees):
        assert t.split == r.split and t.leaf == r.leaf
    np.testing.assert_allclose(act.train_margin, ref_margin, atol=1e-12)
    assert all(k[0] < len(trees) for nm in names[1:] for k in res[nm].splits)  # passives dropped later trees
    # the samplings are real: fewer rows per tree, different features per tree, and without them the trees differ
    n_tr = int((~va).sum())
    assert len(row_sample(n_tr, params, 0)) == round(0.7 * n_tr)
    assert len({tuple(col_sample(3, params, t, 1)) for t in range(6)}) > 1
    full, _ = fit_plain(tr_parts, y[~va], SBParams(n_trees=2, max_depth=3, learning_rate=1.0, reg_lambda=0.1))
    assert [t.split for t in full] != [t.split for t in ref_trees[:2]]
    # validation transcript: the passive parties see only the request, the bank only masks
    for nm in names[1:]:
        assert ("sb/valid", Kind.PLAINTEXT) in {(e.tag, e.kind) for e in net.ledgers["bank"] if e.sender == nm}


def test_streamed_chunks_and_parallel_histograms_equal_reference(monkeypatch):
    """Gradients in several messages and per-bin products over a 2-worker process pool."""
    from privfin.models import secureboost as sb
    from privfin.runtime.executor import LocalProcessExecutor, set_executor

    monkeypatch.setattr(sb, "GH_CHUNK_ROWS", 90)
    monkeypatch.setattr(sb, "HIST_PARALLEL_ROWS", 50)
    pool = LocalProcessExecutor(2)
    old = set_executor(pool)
    try:
        _, parts, y = _data(n=300, d=(2, 3), seed=13)
        params = SBParams(n_trees=2, max_depth=3, subsample=0.8, scheme="ou", key_bits=768, allow_insecure=True)
        net, res, _ = _run(parts, y, params)
    finally:
        set_executor(old)  # type: ignore[arg-type]
        pool.shutdown()
    assert sum(1 for r in net.messages(receiver="p1") if r.envelope.tag == "sb/gh") == 2 * 3  # 240 rows / 90
    trees = assemble(res["bank"], {"p1": res["p1"]})
    ref, _ = fit_plain(parts, y, params)
    assert [t.split for t in trees] == [t.split for t in ref]
    assert [t.leaf for t in trees] == [t.leaf for t in ref]
