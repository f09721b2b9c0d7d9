"""Federated LR prediction: batch and single-id, masked sums, scorecard points, leak test."""

from __future__ import annotations

import numpy as np
import pytest

from privfin.errors import ProtocolError, RemoteError
from privfin.models.hetero_lr import FederatedPredictor, LRPartyModel, PairwiseMasks, predict_passive
from privfin.models.scorecard import Scorecard, ScorecardParams
from privfin.transport.base import Kind
from privfin.transport.memory import MemoryNetwork, run_parties


def _models(n: int, dims: tuple[int, ...], seed: int = 5):
    rng = np.random.default_rng(seed)
    names = ["bank"] + [f"p{i}" for i in range(1, len(dims))]
    X = {nm: rng.normal(size=(n, d)) for nm, d in zip(names, dims)}
    models = {nm: LRPartyModel(nm, rng.normal(size=d), 0.3 if nm == "bank" else None) for nm, d in zip(names, dims)}
    ids = rng.permutation(np.arange(50_000, 50_000 + n))
    return names, X, models, ids


def _run(names, X, models, ids, ask, extra=None):
    net = MemoryNetwork(tuple(names))
    extra = extra or {}

    def bank(c):
        scorers = {"lr": models["bank"].scorer(X["bank"]), **extra.get("bank", {})}
        with FederatedPredictor(c, names[1:], ids, scorers, timeout=10) as fp:
            return ask(fp)

    def passive(nm):
        return lambda c: predict_passive(c, "bank", ids, {"lr": models[nm].scorer(X[nm]), **extra.get(nm, {})},
                                         passives=names[1:])

    roles = {"bank": bank, **{nm: passive(nm) for nm in names[1:]}}
    return run_parties(net, roles, timeout=30), net


@pytest.mark.parametrize("dims", [(3, 2), (3, 2, 4), (2, 1, 1, 3)], ids=["1-passive", "2-passives", "3-passives"])
def test_batch_and_single_id_match_the_joint_score(dims) -> None:
    names, X, models, ids = _models(300, dims)
    truth = sum(models[nm].partial_score(X[nm]) for nm in names)
    rows = np.arange(0, 300, 7)

    def ask(fp):
        return fp.predict(rows=rows), fp.predict(ids=[ids[42]]), fp.predict(ids=list(ids[[5, 9]])), \
            fp.predict_proba(rows=[0])

    out, net = _run(names, X, models, ids, ask)
    z, z1, z2, p0 = out["bank"]
    tol = len(names) * 2.0 ** -16
    assert np.max(np.abs(z - truth[rows])) < tol
    assert abs(z1[0] - truth[42]) < tol and np.max(np.abs(z2 - truth[[5, 9]])) < tol
    assert p0[0] == pytest.approx(1 / (1 + np.exp(-truth[0])), abs=1e-4)
    assert all(out[nm] == 4 for nm in names[1:])
    # the seeds travel only between passive parties; replies are SHARE iff there are >= 2 passives
    assert not any(r.envelope.tag == "lr/predict/seed" and "bank" in (r.envelope.sender, r.envelope.receiver)
                   for r in net.transcript)
    kinds = {e.kind for e in net.ledgers["bank"] if e.tag == "lr/predict/rep"}
    assert kinds == ({Kind.PLAINTEXT} if len(names) == 2 else {Kind.SHARE})


def test_masked_replies_hide_each_passive_part() -> None:
    """Leak test: with two passive parties, no passive partial score crosses in any form the
    bank could read (float64, fixed point), yet the replies sum to the passive total."""
    names, X, models, ids = _models(400, (3, 2, 2), seed=11)
    rows = np.arange(400)
    out, net = _run(names, X, models, ids, lambda fp: fp.predict(rows=rows))
    parts = {nm: models[nm].partial_score(X[nm]) for nm in names[1:]}
    reps = {r.envelope.sender: r.wire for r in net.messages(receiver="bank") if r.envelope.tag == "lr/predict/rep"}
    assert set(reps) == {"p1", "p2"}
    for nm, part in parts.items():
        fx = np.rint(np.ldexp(part, 16)).astype(np.int64).view(np.uint64)
        f64 = part.astype("<f8")
        for wire in reps.values():
            hits = sum(v.tobytes() in wire for v in fx[:100]) + sum(v.tobytes() in wire for v in f64[:100])
            assert hits == 0, f"partial score of {nm} visible to the bank"
    # the masks cancel: the total is right
    truth = sum(models[nm].partial_score(X[nm]) for nm in names)
    assert np.max(np.abs(out["bank"] - truth)) < 3 * 2.0 ** -16
    # a single reply is far from its party's part (masked, not just re-encoded)
    assert all(e.kind == Kind.SHARE for e in net.ledgers["bank"] if e.tag == "lr/predict/rep")


def test_scorecard_points_assembled_jointly() -> None:
    names, X, models, ids = _models(200, (2, 2, 1), seed=3)
    rng = np.random.default_rng(0)
    sp = ScorecardParams()
    cards, bins = {}, {}
    for nm in names:
        d = X[nm].shape[1]
        woe = [rng.normal(size=4) for _ in range(d)]
        cards[nm] = Scorecard.build(nm, [f"{nm}_f{j}" for j in range(d)], models[nm].coef, woe, sp,
                                    intercept=models[nm].intercept)
        bins[nm] = rng.integers(0, 4, size=(200, d))
    def points(c, B):
        return lambda r: c.score_partial(B[r]) + (c.base_points or 0.0)

    extra = {nm: {"points": points(cards[nm], bins[nm])} for nm in names}
    out, _ = _run(names, X, models, ids, lambda fp: fp.predict(ids=list(ids[:20]), what="points"), extra)
    truth = cards["bank"].base_points + sum(cards[nm].score_partial(bins[nm][:20]) for nm in names)
    assert np.allclose(out["bank"], truth, atol=1e-3)
    assert np.all(out["bank"] == np.round(out["bank"]))  # whole points stay whole


def test_bad_requests() -> None:
    names, X, models, ids = _models(50, (2, 2, 2))

    def ask(fp):
        with pytest.raises(RemoteError, match="DataError"):
            fp.client.ask({"nonce": 99, "what": "lr", "ids": ["not-an-aligned-id"]})
        with pytest.raises(RemoteError, match="ProtocolError"):  # nonce reuse would reuse masks
            fp.client.ask({"nonce": 99, "what": "lr", "rows": np.arange(3)})
        with pytest.raises(RemoteError, match="DataError"):
            fp.client.ask({"nonce": 100, "what": "lr", "rows": np.array([50])})
        with pytest.raises(Exception, match="aligned"):
            fp.predict(ids=["nope"])  # checked locally before anything is sent
        fp._nonce = 200
        return fp.predict(rows=[1, 2])

    out, _ = _run(names, X, models, ids, ask)
    truth = sum(models[nm].partial_score(X[nm]) for nm in names)
    assert np.allclose(out["bank"], truth[[1, 2]], atol=1e-4)


def test_pairwise_masks_cancel() -> None:
    seeds = {("a", "b"): b"1" * 32, ("a", "c"): b"2" * 32, ("b", "c"): b"3" * 32}
    def m(me):
        return PairwiseMasks(me, {q: s for (x, y), s in seeds.items() for q in (x, y) if me in (x, y) and q != me})
    total = sum(m(p).mask(7, 16) for p in "abc")
    assert not np.any(total) and np.any(m("a").mask(7, 16)) and np.any(m("a").mask(7, 16) != m("a").mask(8, 16))
    with pytest.raises(ProtocolError):
        run_parties(MemoryNetwork(("x", "y")), {"x": lambda c: c.send("y", "lr/predict/seed", b"short"),
                                                 "y": lambda c: PairwiseMasks.agree(c, ["x", "y"])}, timeout=5)


def test_pipeline_lr_step_scores_holdout_by_masked_prediction(tmp_path, serial_executor) -> None:
    """The ``lr`` step with two passive parties and early stopping: holdout scores reach the
    bank only as masked shares (no plaintext partial-score message), and land in
    ``ctx.state["scores"]`` aligned with the holdout rows."""
    import pandas as pd

    from lr_steps import run_lr_step

    from privfin.evaluation.metrics import auc
    from privfin.models.logistic import LRParams, train_reference
    from privfin.pipeline import holdout_mask

    rng = np.random.default_rng(2)
    n = 600
    ids = np.array([f"c{i}" for i in rng.permutation(n)], dtype=object)
    cols = {"bank": ["a0", "a1"], "p1": ["b0", "b1"], "p2": ["c0"]}
    F = {p: pd.DataFrame(rng.normal(size=(n, len(c))), columns=c) for p, c in cols.items()}
    z = F["bank"]["a0"] - F["p1"]["b1"] + 0.8 * F["p2"]["c0"]
    y = (z + rng.logistic(size=n) > 0).astype(np.int64).to_numpy()
    lr_params = {"features": "standardized", "epochs": 8, "batch_size": 64, "learning_rate": 0.3,
                 "key_bits": 1024, "allow_insecure_keys": True, "early_stopping": "loss", "patience": 2}
    net, ctxs = run_lr_step(tmp_path, ids, F, y, lr_params)
    test = holdout_mask(ids, 30)
    scores = ctxs["bank"].state["scores"]
    assert scores["lr"].shape == scores["bank_only"].shape == (int(test.sum()),)
    m = ctxs["bank"].metrics
    assert m[("lr", "auc_federated")] == pytest.approx(auc(y[test], scores["lr"]), abs=1e-6)
    assert m[("lr", "auc_federated")] > m[("lr", "auc_bank_only")]
    assert ("lr", "best_epoch") in m
    # the joint model equals the oracle with the same validation split and early stopping
    val = holdout_mask(ids, 40) & ~test
    train = ~test & ~val
    Xs = []
    for p in ("bank", "p1", "p2"):
        X = F[p].to_numpy()
        Xs.append((X - X[~test].mean(0)) / X[~test].std(0))
    X = np.hstack(Xs)
    lp = LRParams(epochs=8, batch_size=64, learning_rate=0.3, early_stopping="loss", patience=2)
    w, b = train_reference(X[train], y[train], lp, X_val=X[val], y_val=y[val])
    assert np.max(np.abs(scores["lr"] - (X[test] @ w + b))) < 1e-3
    tags = {(r.envelope.tag, r.envelope.kind) for r in net.messages(receiver="bank")}
    assert ("lr/predict/rep", Kind.SHARE) in tags and ("lr/val/rep", Kind.SHARE) in tags
    assert all(k != Kind.PLAINTEXT for t, k in tags if t.endswith("/rep"))


@pytest.mark.grpc
@pytest.mark.slow
def test_prediction_over_grpc_processes(tmp_path) -> None:
    """Train, then batch + single-id prediction between party processes over loopback
    gRPC/TLS (the benchmark path, two passive parties: masked replies)."""
    from test_lr_grpc import _write_files  # the default-credit layout on generated data

    from privfin.bench.lr import run_lr_bench

    _write_files(tmp_path)
    res = run_lr_bench(tmp_path, passives=2, key_bits=1024, epochs=1, batch_size=256, transport="grpc", predict=30)
    pr = res["predict"]
    assert pr["batch_rows"] == res["n_holdout"] and pr["single_id_requests"] == 30
    assert pr["auc_from_federated_predict"] == pytest.approx(res["auc"], abs=1e-4)
    assert 0 < pr["single_id_p50_ms"] <= pr["single_id_p99_ms"] <= pr["single_id_max_ms"]


def test_pipeline_lr_step_calibrate_is_platt_scaling_of_the_oracle(tmp_path, serial_executor) -> None:
    """``calibrate = true``: the joint model equals the oracle trained on the same rows, then
    Platt-scaled on the validation rows' joint scores; holdout ranking unchanged; the passive
    party receives only the slope (``lr/calibrate``, AGGREGATE)."""
    import pandas as pd
    from lr_steps import run_lr_step

    from privfin.evaluation.metrics import auc
    from privfin.features.screening import univariate_lr
    from privfin.models.logistic import LRParams, train_reference
    from privfin.pipeline import holdout_mask

    rng = np.random.default_rng(5)
    n = 800
    ids = np.array([f"c{i}" for i in range(n)], dtype=object)
    F = {"bank": pd.DataFrame(rng.normal(size=(n, 2)), columns=["a0", "a1"]),
         "p1": pd.DataFrame(rng.normal(size=(n, 2)), columns=["b0", "b1"])}
    y = (1.5 * F["bank"]["a0"] - 2.0 * F["p1"]["b1"] + rng.logistic(size=n) > 1.0).astype(np.int64).to_numpy()
    lr_params = {"features": "standardized", "epochs": 3, "batch_size": 64, "learning_rate": 0.3,
                 "key_bits": 1024, "allow_insecure_keys": True, "calibrate": True, "validation_percent": 15}
    net, ctxs = run_lr_step(tmp_path, ids, F, y, lr_params)

    test = holdout_mask(ids, 30)
    val = holdout_mask(ids, 45) & ~test
    train = ~test & ~val
    X = np.hstack([(F[p].to_numpy() - F[p].to_numpy()[~test].mean(0)) / F[p].to_numpy()[~test].std(0)
                   for p in ("bank", "p1")])
    w, b = train_reference(X[train], y[train], LRParams(epochs=3, batch_size=64, learning_rate=0.3))
    fit = univariate_lr(y[val].astype(float), np.ones(int(val.sum())), X[val] @ w + b)
    assert fit.coef > 1.2  # the t1 approximation shrinks the logistic coefficients
    coef = np.r_[ctxs["bank"].state["lr"].coef, ctxs["p1"].state["lr"].coef]
    assert np.max(np.abs(coef - fit.coef * w)) < 1e-3
    assert ctxs["bank"].state["lr"].intercept == pytest.approx(fit.intercept + fit.coef * b, abs=1e-3)
    m = ctxs["bank"].metrics
    assert m[("lr", "calibration_slope")] == pytest.approx(fit.coef, rel=1e-3)
    scores = ctxs["bank"].state["scores"]["lr"]  # calibrated holdout log-odds
    assert np.max(np.abs(scores - (fit.intercept + fit.coef * (X[test] @ w + b)))) < 1e-2
    assert m[("lr", "auc_federated")] == pytest.approx(auc(y[test], scores), abs=1e-6)
    got = [(r.envelope.tag, r.envelope.kind) for r in net.messages(receiver="p1") if r.envelope.tag == "lr/calibrate"]
    assert got == [("lr/calibrate", Kind.AGGREGATE)]
