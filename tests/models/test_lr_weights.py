"""Class weights in vertical federated LR: oracle (one and two passive parties), transcript
leak test of the weighted protocol, ledger kinds, parameter checks."""

from __future__ import annotations

import numpy as np
import pytest

from privfin.errors import DataError
from privfin.evaluation.metrics import auc
from privfin.models.logistic import LRParams, sample_weights, train_reference
from privfin.transport.base import Kind
from privfin.transport.memory import MemoryNetwork

from test_hetero_lr import KEY, _data, _f64, _fx, _i64, _leak_run, _run, _windows


def _imbalanced(n: int, dims: tuple[int, ...], seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Features and labels with about 20% positives (so balanced weights differ from 1)."""
    mats, _ = _data(n=n, dims=dims, seed=seed)
    rng = np.random.default_rng(seed + 100)
    w = rng.normal(size=sum(dims))
    z = np.hstack(mats) @ w + rng.logistic(size=n)
    return mats, (z > np.quantile(z, 0.8)).astype(int)


# ------------------------------------------------------------------------------------------ oracle

def test_sample_weights_follow_sklearn() -> None:
    y = np.array([0, 0, 0, 1])
    bal = sample_weights(y, LRParams(class_weight="balanced"))
    assert np.allclose(bal, [4 / 6, 4 / 6, 4 / 6, 2.0], atol=2 ** -9, rtol=0)  # n / (2 n_c), to 1/256
    assert np.all(bal * 256 == np.rint(bal * 256))                           # exactly representable
    assert np.allclose(sample_weights(y, LRParams(class_weight={"1": 3})), [1, 1, 1, 3])
    assert LRParams(class_weight={"0": 0.5, 1: 2}).class_weight == {0: 0.5, 1: 2.0}
    assert sample_weights(y, LRParams()) is None
    for bad in ("auto", {2: 1.0}, {1: 0.0}, {1: float("nan")}, {1: 5000.0}, [1.0, 2.0]):
        with pytest.raises(DataError, match="class_weight"):
            LRParams(class_weight=bad)


def test_oracle_weights_change_the_model() -> None:
    mats, y = _imbalanced(300, (3, 2), 3)
    X = np.hstack(mats)
    base = LRParams(epochs=2, batch_size=50)
    w0, b0 = train_reference(X, y, base)
    w1, b1 = train_reference(X, y, LRParams(epochs=2, batch_size=50, class_weight={0: 1.0, 1: 1.0}))
    assert np.allclose(w0, w1) and b0 == b1                                  # unit weights: unchanged
    wb, bb = train_reference(X, y, LRParams(epochs=2, batch_size=50, class_weight="balanced"))
    assert np.max(np.abs(wb - w0)) > 1e-2 and bb > b0                         # positives count more


@pytest.mark.parametrize(("dims", "cw", "icpt"), [((4, 3), "balanced", True), ((3, 2, 2), "balanced", True),
                                                  ((3, 2, 2), {0: 0.7, 1: 2.5}, True), ((4, 3), {1: 4.0}, False)],
                         ids=["one-passive", "two-passives", "two-passives-dict", "no-intercept"])
def test_weighted_matches_the_oracle(dims: tuple[int, ...], cw, icpt: bool, serial_executor: None) -> None:
    mats, y = _imbalanced(360, dims, 11)
    hp = {"epochs": 3, "batch_size": 64, "learning_rate": 0.2, "l2": 0.01, "decay": 0.5, "fit_intercept": icpt}
    params = LRParams(class_weight=cw, **hp, **KEY)
    out, _ = _run(mats, y, params)
    X = np.hstack(mats)
    w, b = train_reference(X, y, params)
    wu, bu = train_reference(X, y, LRParams(**hp))
    names = ["bank"] + [f"p{i}" for i in range(1, len(mats))]
    w_fed = np.concatenate([out[n].coef for n in names])
    assert np.max(np.abs(w - wu)) > 1e-2                       # the weights matter here
    assert np.max(np.abs(w_fed - w)) < 1e-4                    # same fixed-point tolerance as unweighted
    assert (out["bank"].intercept or 0.0) == pytest.approx(b, abs=1e-4)
    assert abs(auc(y, X @ w_fed + (out["bank"].intercept or 0.0)) - auc(y, X @ w + b)) < 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("passives", [1, 2])
def test_weighted_oracle_on_default_credit_subset(passives: int, fate_dir, serial_executor: None) -> None:
    from privfin.bench.lr import load_party, passive_columns
    rows = 2500
    parts = ["bank", *passive_columns(passives)]
    loaded = [load_party(fate_dir, p, passives, rows) for p in parts]
    ytr, yte = loaded[0][2], loaded[0][3]
    params = LRParams(epochs=2, batch_size=256, learning_rate=0.1, class_weight="balanced", **KEY)
    out, _ = _run([x[0] for x in loaded], ytr, params)
    w, b = train_reference(np.hstack([x[0] for x in loaded]), ytr, params)
    Xte = np.hstack([x[1] for x in loaded])
    names = ["bank"] + [f"p{i}" for i in range(1, len(parts))]
    w_fed = np.concatenate([out[n].coef for n in names])
    assert np.max(np.abs(w_fed - w)) < 1e-4
    assert abs(auc(yte, Xte @ w_fed + out["bank"].intercept) - auc(yte, Xte @ w + b)) < 0.002


# ------------------------------------------------------------------------------------------ leak test

def _weighted_secrets(traces: dict, mats: list[np.ndarray], y: np.ndarray, f: int) -> tuple[set[bytes], set[bytes]]:
    """(bank's weight secrets, joint weighted secrets): per-sample weights (float, 2^-8 and 2^-16
    fixed point), the masks ``rho'_p`` of the weighted rows, weighted residuals, weighted
    features and weighted partial predictors."""
    sw, rho = traces["bank"]["w"], traces["bank"]["rho"]
    bank = _f64(sw) | _fx(sw, f) | _fx(sw, 8) | _f64(sw * y) | set().union(*(_i64(r) for r in rho.values()))
    joint: set[bytes] = set()
    for i, nm in enumerate(["bank", "p1", "p2"][1:len(mats)], 1):
        joint |= _fx(mats[i] * sw[:, None], f) | _fx((mats[i] * sw[:, None]).T, f) | _fx(mats[i] * sw[:, None], f + 8)
    for t, idx in enumerate(traces["bank"]["idx"]):
        z = sum(traces[nm]["z"][t] for nm in traces)
        d = sw[idx] * (0.25 * z + 0.5 - y[idx])
        joint |= _f64(d) | _fx(d, f) | _fx(4 * d, f) | _fx(sw[idx] * traces["bank"]["z"][t], f)
        for nm in list(traces)[1:]:                              # X_p^T (w z_q), per pair, as opened
            for i, p in enumerate(list(traces)[1:], 1):
                joint |= _fx(mats[i][idx].T @ (sw[idx] * traces[nm]["z"][t]), 2 * f + 8)
    return bank, joint


def test_weighted_transcript_has_no_secret_in_the_clear(serial_executor: None) -> None:
    hits, traces, net = _leak_run(class_weight="balanced", extra=_weighted_secrets)
    assert hits == {"bank": 0, "p1": 0, "p2": 0}
    rho = traces["bank"]["rho"]
    assert set(rho) == {"p1", "p2"} and all(r.dtype == np.uint64 and r.shape[0] == 240 for r in rho.values())
    assert len(np.unique(traces["bank"]["w"])) == 2


def test_weighted_leak_test_catches_a_clear_weight(serial_executor: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Control: a variant sending the encoded per-sample weights next to its ciphertexts is caught."""
    import privfin.models.hetero_lr as hlr
    real = hlr._cts_payload
    state: dict = {}
    real_weigh = hlr._weigh_rows

    def weigh(encx, lay, pk, W, params):
        state["w"] = np.asarray(W, dtype=np.int64)  # the encoded weights round(w 2^16)
        return real_weigh(encx, lay, pk, W, params)

    monkeypatch.setattr(hlr, "_weigh_rows", weigh)
    monkeypatch.setattr(hlr, "_cts_payload",
                        lambda vals, pk: dict(real(vals, pk), leak=state.get("w", np.zeros(1))[:64]))
    hits, _, _ = _leak_run(class_weight="balanced", extra=_weighted_secrets)
    assert hits["p1"] > 0 and hits["p2"] > 0


def test_weighted_ledger_kinds(serial_executor: None) -> None:
    mats, y = _imbalanced(120, (2, 2, 1), 4)
    _, net = _run(mats, y, LRParams(epochs=1, batch_size=60, class_weight="balanced", **KEY))
    got = {p: {(e.tag, e.kind) for e in led} for p, led in net.ledgers.items()}
    assert got["bank"] == {("lr/hello", Kind.PLAINTEXT), ("lr/encx", Kind.CIPHERTEXT), ("lr/cross", Kind.CIPHERTEXT),
                           ("lr/corr", Kind.CIPHERTEXT)}
    base = {("lr/setup", Kind.PLAINTEXT), ("lr/encx", Kind.CIPHERTEXT), ("lr/grad", Kind.CIPHERTEXT),
            ("lr/encw", Kind.CIPHERTEXT), ("lr/encr", Kind.CIPHERTEXT)}
    assert got["p1"] == base and got["p2"] == base | {("lr/train/seed", Kind.SHARE)}
    # passive parties' rows go to the bank only; everything of the weighting comes from the bank
    assert {e.sender for e in net.ledgers["p1"] if e.tag != "lr/train/seed"} == {"bank"}
    assert len(net.messages(kind=Kind.PLAINTEXT)) == 4


def test_weighted_bad_input(serial_executor: None) -> None:
    mats, y = _imbalanced(100, (2, 2), 5)
    with pytest.raises(DataError, match="standardize"):  # weighted features out of range
        _run([mats[0] * 100, mats[1]], y, LRParams(epochs=1, batch_size=50, class_weight={1: 1000.0}, **KEY))
    net = MemoryNetwork(("bank", "gov"))
    from privfin.errors import ProtocolError
    from privfin.models.hetero_lr import lr_active, lr_passive
    from privfin.transport.memory import run_parties
    pa = LRParams(epochs=1, batch_size=50, class_weight="balanced", **KEY)
    pp = LRParams(epochs=1, batch_size=50, **KEY)
    with pytest.raises(ProtocolError, match="different LR parameters"):
        run_parties(net, {"bank": lambda c: lr_active(c, mats[0], y, pa),
                          "gov": lambda c: lr_passive(c, mats[1], pp)}, timeout=30)


def test_pipeline_lr_step_class_weight_table(tmp_path, serial_executor: None) -> None:
    """The ``lr`` step reads ``class_weight`` as a TOML table with string keys; the bank's model
    equals the weighted oracle on the same split."""
    import pandas as pd

    from lr_steps import run_lr_step

    from privfin.pipeline import holdout_mask

    rng = np.random.default_rng(3)
    n = 400
    ids = np.array([f"c{i}" for i in range(n)], dtype=object)
    F = {"bank": pd.DataFrame(rng.normal(size=(n, 2)), columns=["a0", "a1"]),
         "p1": pd.DataFrame(rng.normal(size=(n, 2)), columns=["b0", "b1"])}
    y = (F["bank"]["a0"] - F["p1"]["b1"] + rng.logistic(size=n) > 1.2).astype(np.int64).to_numpy()
    lr_params = {"features": "standardized", "epochs": 3, "batch_size": 64, "learning_rate": 0.3,
                 "key_bits": 1024, "allow_insecure_keys": True, "class_weight": {"0": 1.0, "1": 3.0}}
    net, ctxs = run_lr_step(tmp_path, ids, F, y, lr_params)
    test = holdout_mask(ids, 30)
    Xs = [(F[p].to_numpy() - F[p].to_numpy()[~test].mean(0)) / F[p].to_numpy()[~test].std(0) for p in ("bank", "p1")]
    lp = LRParams(epochs=3, batch_size=64, learning_rate=0.3, class_weight={0: 1.0, 1: 3.0})
    w, b = train_reference(np.hstack(Xs)[~test], y[~test], lp)
    coef = np.r_[ctxs["bank"].state["lr"].coef, ctxs["p1"].state["lr"].coef]
    assert np.max(np.abs(coef - w)) < 1e-4 and ctxs["bank"].state["lr"].intercept == pytest.approx(b, abs=1e-4)
    assert any(e.tag == "lr/corr" for e in net.ledgers["bank"])
