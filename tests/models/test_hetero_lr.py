"""Vertical federated LR: oracle, transcript leak test, ledger kinds, bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from privfin.errors import DataError, ProtocolError
from privfin.models.hetero_lr import HeteroLogisticRegression, lr_active, lr_passive
from privfin.evaluation.metrics import auc
from privfin.models.logistic import LRParams, train_reference
from privfin.transport.base import Kind
from privfin.transport.memory import MemoryNetwork, run_parties

KEY = {"key_bits": 1024, "allow_insecure": True}


def _data(n: int = 400, dims: tuple[int, ...] = (4, 3), seed: int = 1) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    mats = [rng.normal(size=(n, k)) for k in dims]
    w = rng.normal(size=sum(dims))
    y = (np.hstack(mats) @ w + rng.logistic(size=n) > 0).astype(int)
    return mats, y


def _run(mats: list[np.ndarray], y: np.ndarray, params: LRParams, traces: dict | None = None
         ) -> tuple[dict, MemoryNetwork]:
    names = ["bank"] + [f"p{i}" for i in range(1, len(mats))]
    net = MemoryNetwork(tuple(names))
    tr = traces if traces is not None else {}
    for nm in names:
        tr.setdefault(nm, {})
    def passive(i: int, nm: str):
        return lambda c: lr_passive(c, mats[i], params, active="bank", trace=tr[nm])

    roles = {"bank": lambda c: lr_active(c, mats[0], y, params, passives=names[1:], trace=tr["bank"])}
    for i, nm in enumerate(names[1:], 1):
        roles[nm] = passive(i, nm)
    return run_parties(net, roles, timeout=120), net


@pytest.mark.parametrize(("dims", "l1"), [((4, 3), 0.0), ((3, 2, 2), 0.0), ((4, 3), 0.05)],
                         ids=["one-passive", "two-passives", "one-passive-l1"])
def test_matches_the_centralized_oracle(dims: tuple[int, ...], l1: float, serial_executor: None) -> None:
    mats, y = _data(dims=dims)
    params = LRParams(epochs=3, batch_size=64, learning_rate=0.2, l2=0.01, l1=l1, decay=0.5, **KEY)
    out, _ = _run(mats, y, params)
    w, b = train_reference(np.hstack(mats), y, params)
    names = ["bank"] + [f"p{i}" for i in range(1, len(mats))]
    w_fed = np.concatenate([out[n].coef for n in names])
    # fixed point with 16 fractional bits: the only difference from the float oracle
    assert np.max(np.abs(w_fed - w)) < 1e-4
    assert out["bank"].intercept == pytest.approx(b, abs=1e-4)
    assert all(out[n].intercept is None for n in names[1:])
    assert [len(out[n].coef) for n in names] == list(dims)
    X = np.hstack(mats)
    assert abs(auc(y, X @ w_fed + out["bank"].intercept) - auc(y, X @ w + b)) < 1e-3


def test_estimator_wrapper(serial_executor: None) -> None:
    mats, y = _data(n=200)
    params = LRParams(epochs=1, batch_size=100, **KEY)
    net = MemoryNetwork(("bank", "gov"))
    out = run_parties(net, {
        "bank": lambda c: HeteroLogisticRegression(c, "active", params).fit(mats[0], y),
        "gov": lambda c: HeteroLogisticRegression(c, "passive", params).fit(mats[1]),
    })
    w, b = train_reference(np.hstack(mats), y, params)
    assert np.allclose(np.r_[out["bank"].coef_, out["gov"].coef_], w, atol=1e-4)
    assert out["bank"].intercept_ == pytest.approx(b, abs=1e-4) and out["gov"].intercept_ is None
    assert out["gov"].partial_score(mats[1]).shape == (200,)


@pytest.mark.slow
def test_oracle_on_default_credit_subset(fate_dir, serial_executor: None) -> None:
    from privfin.bench.lr import load_party
    rows = 2500
    a_tr, a_te, ytr, yte = load_party(fate_dir, "bank", 2, rows)
    p1_tr, p1_te, _, _ = load_party(fate_dir, "provider1", 2, rows)
    p2_tr, p2_te, _, _ = load_party(fate_dir, "provider2", 2, rows)
    params = LRParams(epochs=2, batch_size=256, learning_rate=0.1, **KEY)
    out, _ = _run([a_tr, p1_tr, p2_tr], ytr, params)
    w, b = train_reference(np.hstack([a_tr, p1_tr, p2_tr]), ytr, params)
    Xte = np.hstack([a_te, p1_te, p2_te])
    w_fed = np.concatenate([out[n].coef for n in ("bank", "p1", "p2")])
    assert np.max(np.abs(w_fed - w)) < 1e-4
    assert abs(auc(yte, Xte @ w_fed + out["bank"].intercept) - auc(yte, Xte @ w + b)) < 0.002


# ------------------------------------------------------------------------------------------ leak test

def _informative(b: bytes) -> bool:
    """Skip low-entropy patterns (0, small ints, sign fill): at least 3 bytes per 8 (4 per 16)
    other than 0x00/0xFF."""
    return sum(1 for c in b if c not in (0, 255)) >= (3 if len(b) == 8 else 4)


def _as_u64(v: np.ndarray) -> np.ndarray:
    return np.ravel(np.asarray(v)).astype(np.int64).view(np.uint64) if np.asarray(v).dtype.kind == "i" \
        else np.ravel(np.asarray(v)).astype(np.uint64)


def _pats(arr: np.ndarray) -> set[bytes]:
    """8-byte encodings of every value, and 16-byte encodings of consecutive pairs (a vector
    sent as an array shows its values side by side; pairs are found even for small values)."""
    a = np.ravel(arr)
    raw = a.tobytes()
    out = {raw[i:i + 8] for i in range(0, len(raw), 8) if _informative(raw[i:i + 8])}
    out |= {raw[i:i + 16] for i in range(0, len(raw) - 8, 8) if _informative(raw[i:i + 16])}
    return out


def _f64(v: np.ndarray) -> set[bytes]:
    return _pats(np.asarray(v, dtype="<f8"))


def _i64(v: np.ndarray) -> set[bytes]:
    return _pats(_as_u64(v).astype("<u8"))


def _fx(v: np.ndarray, bits: int) -> set[bytes]:
    return _i64(np.rint(np.ldexp(np.asarray(v, dtype=np.float64), bits)).astype(np.int64))


def _windows(wire: bytes) -> set[bytes]:
    return {wire[i:i + 8] for i in range(len(wire) - 7)} | {wire[i:i + 16] for i in range(len(wire) - 15)}


def _secret_views(X: np.ndarray, f: int) -> set[bytes]:
    """A feature matrix as sent in any obvious form: float64, fixed point, offset fixed point,
    row-major and column-major."""
    q = np.rint(np.ldexp(X, f)).astype(np.int64)
    out: set[bytes] = set()
    for M in (X, X.T):
        out |= _f64(M)
    for M in (q, q.T, q + (1 << 23), (q + (1 << 23)).T):
        out |= _i64(M)
    return out


def _leak_hits(seed: int = 7) -> dict[str, int]:
    """Train three parties; count, per receiver, the secret patterns found in its wire bytes."""
    return _leak_run(seed)[0]


def _leak_run(seed: int = 7, class_weight: Any = None, extra: Callable | None = None
              ) -> tuple[dict[str, int], dict, MemoryNetwork]:
    """:func:`_leak_hits` with class weights; ``extra(traces, mats, y, f)`` returns more
    ``(bank secrets, joint secrets)``. Returns the hits, the parties' traces and the network."""
    mats, y = _data(n=240, dims=(3, 2, 2), seed=seed)
    f = 16
    params = LRParams(epochs=2, batch_size=48, learning_rate=0.3, class_weight=class_weight, **KEY)
    traces: dict = {}
    _, net = _run(mats, y, params, traces)
    names = ["bank", "p1", "p2"]

    secrets: dict[str, set[bytes]] = {nm: set() for nm in names}  # owner -> patterns only the owner may see
    joint: set[bytes] = set()                                      # nobody may see these
    for i, nm in enumerate(names):
        secrets[nm] |= _secret_views(mats[i], f)
        for z, zq, g in zip(traces[nm]["z"], traces[nm]["zq"], traces[nm]["grad"]):
            # own partial predictors and own gradients (sum form, ring form, 4x ring form)
            secrets[nm] |= _f64(z) | _i64(zq) | _f64(g) | _fx(g, 2 * f) | _fx(4 * g, 2 * f)
        if "U" in traces[nm]:  # class weights: a passive party's masked weighted rows
            secrets[nm] |= _i64(traces[nm]["U"]) | _i64(traces[nm]["U"].T)
    if extra is not None:
        more_bank, more_joint = extra(traces, mats, y, f)
        secrets["bank"] |= more_bank
        joint |= more_joint
    for t, idx in enumerate(traces["bank"]["idx"]):
        z = sum(traces[nm]["z"][t] for nm in names)
        zq = sum(traces[nm]["zq"][t] for nm in names)           # exactly the ring value of z
        d = 0.25 * z + 0.5 - y[idx]
        dq = zq + np.rint(np.ldexp(2.0 - 4.0 * y[idx], f)).astype(np.int64).view(np.uint64)  # d' = 4d
        m = len(idx)
        joint |= _f64(z) | _i64(zq) | _f64(d) | _fx(d, f) | _i64(dq) | _f64(4 * d)
        for i, nm in enumerate(names):                           # full gradients, in every scaling
            g = mats[i][idx].T @ d
            joint |= _f64(g) | _f64(g / m) | _fx(g, 2 * f) | _fx(g / m, f)
    labels = [y[:32].astype(np.float64).tobytes(), y[:32].astype(np.int64).tobytes(),
              y[:64].astype(np.uint8).tobytes(), (2.0 - 4.0 * y[:16]).tobytes()]
    assert len(joint) > 1000 and all(len(s) > 1000 for s in secrets.values())

    hits: dict[str, int] = {}
    for recv in names:
        wire = b"".join(r.wire for r in net.messages(receiver=recv))
        win = _windows(wire)
        forbidden = joint | set().union(*(secrets[o] for o in names if o != recv))
        hits[recv] = len(forbidden & win)
        if recv != "bank":
            hits[recv] += sum(lab in wire for lab in labels)
        # the search has teeth: a value planted in a copy of the wire is found
        planted = next(iter(joint))
        assert planted in _windows(wire[:100] + planted + wire[100:200])
    return hits, traces, net


def test_transcript_has_no_secret_in_the_clear(serial_executor: None) -> None:
    assert _leak_hits() == {"bank": 0, "p1": 0, "p2": 0}
    # small per-sample values are searched too, as pairs of neighbours in an array
    assert len(_i64(np.array([6168, -2268, 4825]))) == 2


def test_leak_test_catches_a_clear_partial_predictor(serial_executor: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Control: a variant that also sends its multi-exponentiation exponents (its offset
    partial linear predictors) next to the cross-term ciphertexts is caught at the bank."""
    import threading

    import privfin.models.hetero_lr as hlr
    local = threading.local()
    real_plan, real_payload = hlr.multiexp_plan, hlr._cts_payload
    off = 1 << (LRParams().z_bits - 1)

    def plan(e):
        local.e = np.array(e, dtype=np.int64) - off
        return real_plan(e)

    def payload(vals, pk):
        return dict(real_payload(vals, pk), leak=local.e.view(np.uint64))

    monkeypatch.setattr(hlr, "multiexp_plan", plan)
    monkeypatch.setattr(hlr, "_cts_payload", payload)
    assert _leak_hits()["bank"] > 0


def test_ledger_kinds_as_documented(serial_executor: None) -> None:
    mats, y = _data(n=120, dims=(2, 2, 1))
    params = LRParams(epochs=1, batch_size=60, **KEY)
    _, net = _run(mats, y, params)
    got = {p: {(e.tag, e.kind, e.step) for e in led} for p, led in net.ledgers.items()}
    assert got["bank"] == {("lr/hello", Kind.PLAINTEXT, "lr/setup"), ("lr/encx", Kind.CIPHERTEXT, "lr/setup"),
                           ("lr/cross", Kind.CIPHERTEXT, "lr/train")}
    base = {("lr/setup", Kind.PLAINTEXT, "lr/setup"), ("lr/encx", Kind.CIPHERTEXT, "lr/setup"),
            ("lr/grad", Kind.CIPHERTEXT, "lr/train")}
    assert got["p1"] == base  # p1 < p2: p1 draws the pair's mask seed and sends it
    assert got["p2"] == base | {("lr/train/seed", Kind.SHARE, "lr/setup")}
    senders = {(e.sender, e.tag) for e in net.ledgers["p1"]}
    assert ("p2", "lr/encx") in senders and ("p2", "lr/grad") not in senders
    assert not any(e.tag.endswith("/seed") for e in net.ledgers["bank"])
    # plaintext messages are the set-up only: 2 hellos + 2 setups
    assert len(net.messages(kind=Kind.PLAINTEXT)) == 4


# ------------------------------------------------------------------------------------------ bad input

def test_mismatched_row_counts(serial_executor: None) -> None:
    mats, y = _data(n=100)
    with pytest.raises(DataError, match="row counts differ"):
        _run([mats[0], mats[1][:90]], y, LRParams(epochs=1, batch_size=50, **KEY))


def test_non_binary_labels(serial_executor: None) -> None:
    mats, y = _data(n=100)
    y = y.copy()
    y[3] = 2
    with pytest.raises(DataError, match="binary"):
        _run(mats, y, LRParams(epochs=1, batch_size=50, **KEY))


def test_features_out_of_range_or_nan(serial_executor: None) -> None:
    mats, y = _data(n=100)
    big = mats[1].copy()
    big[0, 0] = 1e6
    with pytest.raises(DataError, match="standardize"):
        _run([mats[0], big], y, LRParams(epochs=1, batch_size=50, **KEY))
    nan = mats[0].copy()
    nan[1, 1] = np.nan
    with pytest.raises(DataError, match="NaN"):
        _run([nan, mats[1]], y, LRParams(epochs=1, batch_size=50, **KEY))
    with pytest.raises(DataError, match="at least one feature"):
        _run([mats[0], mats[1][:, :0]], y, LRParams(epochs=1, batch_size=50, **KEY))


def test_parameter_mismatch_and_small_keys(serial_executor: None) -> None:
    mats, y = _data(n=100)
    net = MemoryNetwork(("bank", "gov"))
    pa, pp = LRParams(epochs=1, batch_size=50, **KEY), LRParams(epochs=2, batch_size=50, **KEY)
    with pytest.raises(ProtocolError, match="different LR parameters"):
        run_parties(net, {"bank": lambda c: lr_active(c, mats[0], y, pa),
                          "gov": lambda c: lr_passive(c, mats[1], pp)}, timeout=30)
    from privfin.errors import CryptoError
    with pytest.raises(CryptoError, match="2048"):
        _run(mats, y, LRParams(epochs=1, batch_size=50, key_bits=1024))


def test_convergence_tolerance_stops_like_the_oracle(serial_executor: None) -> None:
    mats, y = _data(n=300, dims=(2, 2, 1), seed=5)
    params = LRParams(epochs=30, batch_size=100, learning_rate=0.3, tol=2e-3, **KEY)
    info: dict = {}
    w, b = train_reference(np.hstack(mats), y, params, info)
    assert np.isfinite(b)
    assert 2 <= info["epochs_run"] < 30
    out, net = _run(mats, y, params)
    assert {m.epochs_run for m in out.values()} == {info["epochs_run"]}
    assert np.max(np.abs(np.concatenate([out[n].coef for n in ("bank", "p1", "p2")]) - w)) < 1e-4
    kinds = {(e.tag, e.kind) for p in net.ledgers for e in net.ledgers[p] if e.tag in ("lr/converged", "lr/stop")}
    assert kinds == {("lr/converged", Kind.AGGREGATE), ("lr/stop", Kind.PLAINTEXT)}


@pytest.mark.parametrize(("metric", "dims"), [("loss", (3, 2)), ("auc", (2, 2, 2))], ids=["loss-1p", "auc-2p"])
def test_early_stopping_matches_the_oracle(metric: str, dims: tuple[int, ...], serial_executor: None) -> None:
    """Early stopping on a validation split: same stopping epoch, same kept (best) model as
    the oracle; the validation scores reach the bank only through masked federated prediction."""
    mats, y = _data(n=500, dims=dims, seed=9)
    tr, va = np.arange(350), np.arange(350, 500)
    # a large rate with decay 0 oscillates: the metric stops improving early
    params = LRParams(epochs=25, batch_size=50, learning_rate=1.5, early_stopping=metric, patience=2,
                      min_delta=1e-4, **KEY)
    info: dict = {}
    w, b = train_reference(np.hstack(mats)[tr], y[tr], params, info, X_val=np.hstack(mats)[va], y_val=y[va])
    assert info["epochs_run"] < 25 and info["best_epoch"] == info["epochs_run"] - 1 - params.patience
    names = ["bank"] + [f"p{i}" for i in range(1, len(mats))]
    net = MemoryNetwork(tuple(names))

    def passive(i: int):
        return lambda c: lr_passive(c, mats[i][tr], params, active="bank", X_val=mats[i][va])

    roles = {"bank": lambda c: lr_active(c, mats[0][tr], y[tr], params, passives=names[1:], X_val=mats[0][va],
                                         y_val=y[va])}
    roles.update({nm: passive(i) for i, nm in enumerate(names[1:], 1)})
    out = run_parties(net, roles, timeout=120)
    assert {m.epochs_run for m in out.values()} == {info["epochs_run"]}
    assert out["bank"].best_epoch == info["best_epoch"]
    assert np.allclose(out["bank"].val_scores, info["val_scores"], atol=1e-3)
    assert np.max(np.abs(np.concatenate([out[n].coef for n in names]) - w)) < 1e-4
    assert out["bank"].intercept == pytest.approx(b, abs=1e-4)
    kinds = {(e.tag, e.kind) for p in net.ledgers for e in net.ledgers[p] if e.tag.startswith("lr/val")}
    masked = Kind.SHARE if len(names) > 2 else Kind.PLAINTEXT
    assert ("lr/val/rep", masked) in kinds and all(t != "lr/val/seed" or k == Kind.SHARE for t, k in kinds)
    assert not any(e.tag == "lr/val/seed" for e in net.ledgers["bank"])


def test_early_stopping_bad_input(serial_executor: None) -> None:
    mats, y = _data(n=100)
    es = LRParams(epochs=2, batch_size=50, early_stopping="loss", **KEY)
    with pytest.raises(DataError, match="validation"):
        train_reference(np.hstack(mats), y, es)
    with pytest.raises(DataError, match="early_stopping"):
        train_reference(np.hstack(mats), y, LRParams(), X_val=np.hstack(mats), y_val=y)
    with pytest.raises(DataError):
        LRParams(early_stopping="f1")
    net = MemoryNetwork(("bank", "gov"))
    with pytest.raises(DataError, match="validation"):  # the passive party split differently
        run_parties(net, {"bank": lambda c: lr_active(c, mats[0], y, es, X_val=mats[0][:20], y_val=y[:20]),
                          "gov": lambda c: lr_passive(c, mats[1], es, X_val=mats[1][:30])}, timeout=30)


def test_linear_predictor_out_of_range_stops_cleanly(serial_executor: None) -> None:
    """A diverging model (huge learning rate) is stopped with a DataError naming z_bits,
    never a silently wrong gradient."""
    mats, y = _data(n=200)
    with pytest.raises(DataError, match="z_bits"):
        _run(mats, y, LRParams(epochs=5, batch_size=50, learning_rate=500.0, **KEY))
