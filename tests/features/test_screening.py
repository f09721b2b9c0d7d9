"""Screening: per-bin AUC/KS/LR against sklearn on the WOE column, the policy, the profile exchange."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from privfin.errors import ProtocolError
from privfin.features import Binner, woe_active, woe_passive
from privfin.features.screening import (
    TAG_CANDIDATES,
    TAG_KEPT,
    TAG_PROFILE,
    SelectionPolicy,
    feature_profile,
    screen_active,
    screen_passive,
    screen_stats,
    univariate_lr,
)
from privfin.features.woe import counts_by_bin, plain_stats
from privfin.transport.base import Kind
from privfin.transport.memory import MemoryNetwork, run_parties

sk_metrics = pytest.importorskip("sklearn.metrics")
sk_lm = pytest.importorskip("sklearn.linear_model")


def _irls_rows(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plain row-level Newton fit of y ~ 1 + x (the central oracle): (beta, standard errors)."""
    A = np.column_stack([np.ones_like(x), x])
    b = np.zeros(2)
    for _ in range(100):
        p = 1 / (1 + np.exp(-A @ b))
        H = A.T @ (A * (p * (1 - p))[:, None])
        d = np.linalg.solve(H, A.T @ (y - p))
        b += d
        if np.abs(d).max() < 1e-13:
            break
    p = 1 / (1 + np.exp(-A @ b))
    H = A.T @ (A * (p * (1 - p))[:, None])
    return b, np.sqrt(np.diag(np.linalg.inv(H)))


def _check_against_rows(X: np.ndarray, y: np.ndarray, names: list[str]) -> int:
    stats = plain_stats(X, y, names)
    checked = 0
    for j, nm in enumerate(names):
        s = stats[nm]
        col = s.woe[X[:, j].astype(np.int64)]  # the WOE-coded column
        assert abs(sk_metrics.roc_auc_score(y, col) - s.auc) <= 1e-9, nm
        fpr, tpr, _ = sk_metrics.roc_curve(y, col)
        assert abs(np.max(tpr - fpr) - s.ks) <= 1e-9, nm
        lr = univariate_lr(s.events, s.totals, s.woe)
        if len(np.unique(col)) < 2:
            assert math.isnan(lr.coef)
            continue
        b, se = _irls_rows(col, y.astype(np.float64))
        assert abs(lr.coef - b[1]) <= 1e-8 and abs(lr.intercept - b[0]) <= 1e-8, nm
        assert abs(lr.se - se[1]) <= 1e-8 * max(1.0, se[1]), nm
        assert abs(lr.p_value - math.erfc(abs(b[1] / se[1]) / math.sqrt(2))) <= 1e-9, nm
        if j % 4 == 0:  # sklearn's unpenalized fit (C = inf), on some columns: it is slow at tight tolerances
            m = sk_lm.LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(col[:, None], y)
            assert abs(m.coef_[0, 0] - lr.coef) <= 1e-4 and abs(m.intercept_[0] - lr.intercept) <= 1e-4, nm
        checked += 1
    return checked


def test_stats_against_sklearn_generated(synth_pair):
    bank, gov = synth_pair
    y = bank["y"].to_numpy()
    raw = pd.concat([bank.drop(columns=["id", "y"]), gov.drop(columns=["id"])], axis=1)
    X = Binner().fit_transform(raw)
    assert _check_against_rows(X, y, list(raw.columns)) >= 30


@pytest.mark.slow
def test_stats_against_sklearn_default_credit(fate_dir):
    path = fate_dir / "UCI_Credit_Card.csv"
    if not path.exists():
        pytest.skip(f"{path} not found (../shared/data/fate is incomplete on this machine)")
    df = pd.read_csv(path)
    y = df["default.payment.next.month"].to_numpy()
    raw = df.drop(columns=["ID", "default.payment.next.month"])
    X = Binner().fit_transform(raw)
    assert _check_against_rows(X, y, list(raw.columns)) == 23


def test_univariate_lr_on_a_raw_grouped_feature():
    """Not just WOE (whose slope is 1 without smoothing): any per-bin value, e.g. a bin's midpoint."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 6, 5000).astype(np.float64)
    y = (rng.random(5000) < 1 / (1 + np.exp(-(-1.0 + 0.3 * x)))).astype(int)
    e, t = counts_by_bin(x.astype(int), y, 6)
    lr = univariate_lr(e, t, np.arange(6.0))
    b, se = _irls_rows(x, y.astype(np.float64))
    assert abs(lr.coef - b[1]) <= 1e-9 and abs(lr.se - se[1]) <= 1e-9 and lr.p_value < 1e-10
    assert math.isnan(univariate_lr(e, t, np.ones(6)).coef)  # constant feature: slope not identified


def test_feature_profile():
    df = pd.DataFrame({"a": [1.0, np.nan, np.inf, 2.0, 2.0], "b": ["x", None, "y", "y", "y"],
                       "c": [0, 0, 0, 0, 0]})
    p = feature_profile(df)
    assert p.loc["a"].tolist() == [0.4, 0.4] and p.loc["b"].tolist() == [0.2, 0.4] and p.loc["c"].tolist() == [0, 0.2]


def test_policy_rules_and_reasons():
    stats = pd.DataFrame({"party": ["bank"] * 3 + ["gov"] * 3, "feature": ["a", "b", "c", "gov.f000", "gov.f001",
                                                                           "gov.f002"],
                          "iv": [0.50, 0.01, 0.30, 0.40, 0.25, 0.20],
                          "missing_rate": [0.0, 0.0, 0.0, 0.0, 0.97, 0.1]})
    keys = stats["feature"].tolist()
    corr = pd.DataFrame(np.eye(6), index=keys, columns=keys)
    corr.loc["a", "gov.f000"] = corr.loc["gov.f000", "a"] = -0.8   # weaker: gov.f000 (IV 0.40 < 0.50)
    corr.loc["c", "gov.f002"] = corr.loc["gov.f002", "c"] = 0.65   # below 0.7: both stay
    out = SelectionPolicy().apply(stats, corr)
    r = dict(zip(out["feature"], out["reason"]))
    assert out["kept"].tolist() == [True, False, True, False, False, True]
    assert r["b"].startswith("IV 0.0100 < 0.02") and r["gov.f001"].startswith("missing rate 0.970")
    assert r["gov.f000"] == "|r| 0.800 > 0.7 with a (higher IV)"
    assert out.set_index("feature").loc["c", "corr_partner"] == "gov.f002"
    assert out.set_index("feature").loc["c", "corr_abs"] == pytest.approx(0.65)
    top = SelectionPolicy(top_k=2).apply(stats, corr)
    assert top.loc[top["kept"], "feature"].tolist() == ["a", "c"]
    assert dict(zip(top["feature"], top["reason"]))["gov.f002"] == "not in the top 2 by IV"
    nocorr = SelectionPolicy().apply(stats)  # no correlation: that rule drops nothing
    assert nocorr["kept"].sum() == 4 and nocorr["corr_partner"].isna().all()


def test_policy_correlation_candidates():
    stats = pd.DataFrame({"party": ["bank"] * 3 + ["gov"] * 3, "feature": ["a", "b", "c", "gov.f000", "gov.f001",
                                                                           "gov.f002"],
                          "iv": [0.50, 0.01, 0.30, 0.40, 0.25, 0.20],
                          "missing_rate": [0.0, 0.0, 0.0, 0.0, 0.97, 0.1]})
    keys = stats["feature"].tolist()
    corr = pd.DataFrame(np.eye(6), index=keys, columns=keys)
    corr.loc["a", "gov.f000"] = corr.loc["gov.f000", "a"] = -0.8
    corr.loc["a", "b"] = corr.loc["b", "a"] = 0.99          # b fails the IV rule: never a partner
    corr.loc["c", "gov.f002"] = corr.loc["gov.f002", "c"] = 0.9  # both outside the top 2
    assert SelectionPolicy().candidates(stats) == ["a", "gov.f000", "c", "gov.f002"]
    pol = SelectionPolicy(corr_candidates=2)
    cands = pol.candidates(stats)
    assert cands == ["a", "gov.f000"]
    out = pol.apply(stats, corr)
    r = dict(zip(out["feature"], out["reason"]))
    assert out.loc[out["kept"], "feature"].tolist() == ["a"]
    assert r["gov.f000"] == "|r| 0.800 > 0.7 with a (higher IV)"
    assert r["c"] == r["gov.f002"] == "not among the top 2 features by IV (correlation candidates)"
    assert r["b"].startswith("IV ") and r["gov.f001"].startswith("missing rate")
    assert [v if isinstance(v, str) else None for v in out["corr_partner"]] == ["gov.f000", None, None, "a", None,
                                                                                None]
    # a matrix over the candidates alone gives the same table as one over every feature
    pd.testing.assert_frame_equal(pol.apply(stats, corr.loc[cands, cands]), out)
    full = SelectionPolicy().apply(stats, corr)
    pd.testing.assert_frame_equal(full, SelectionPolicy().apply(stats, corr.loc[SelectionPolicy().candidates(stats),
                                                                                 SelectionPolicy().candidates(stats)]))
    assert dict(zip(full["feature"], full["reason"]))["gov.f002"].startswith("|r| 0.900")
    assert pd.isna(full.set_index("feature").loc["b", "corr_partner"])
    assert SelectionPolicy(corr_candidates=1).apply(stats)["kept"].sum() == 4  # no correlation: no cut
    # with the label holder named, its own survivors are always candidates; K counts passive ones
    one = SelectionPolicy(corr_candidates=1)
    assert one.candidates(stats, "bank") == ["a", "gov.f000", "c"]
    o1 = one.apply(stats, corr, label_holder="bank")
    assert dict(zip(o1["feature"], o1["reason"]))["gov.f002"] == ("not among the top 1 passive features by IV "
                                                                   "(correlation candidates)")
    assert o1.loc[o1["kept"], "feature"].tolist() == ["a", "c"]
    with pytest.raises(ValueError):
        SelectionPolicy(corr_candidates=0)


def test_screen_with_correlate_callbacks(synth_pair, small_params, serial_executor):
    bank, gov = synth_pair
    y = bank["y"].to_numpy()
    bank_raw, gov_raw = bank.drop(columns=["id", "y"]), gov.drop(columns=["id"])
    Xb, Xg = Binner().fit_transform(bank_raw), Binner().fit_transform(gov_raw)
    seen: dict[str, object] = {}
    policy = SelectionPolicy(corr_candidates=6)

    def bank_fn(ch):
        res = woe_active(ch, y, Xb, small_params, feature_names=list(bank_raw.columns))

        def correlate(per):
            seen["bank"] = per
            ks = [k for p in per.values() for k in p]
            return pd.DataFrame(np.eye(len(ks)), index=ks, columns=ks)

        return res, screen_active(ch, res, bank_raw, policy, correlate=correlate)

    def gov_fn(ch):
        r = woe_passive(ch, Xg, small_params)
        return screen_passive(ch, gov_raw, r.aliases, correlate=lambda a: seen.setdefault("gov", a))

    net = MemoryNetwork(("bank", "gov"))
    out = run_parties(net, {"bank": bank_fn, "gov": gov_fn}, timeout=120)
    res, table = out["bank"]
    stats = screen_stats(res, pd.concat([feature_profile(bank_raw), feature_profile(gov_raw).set_axis(
        [k for k, f in res.features.items() if f.party == "gov"])]))
    top = policy.candidates(stats, "bank")
    assert sum(k.startswith("gov.") for k in top) == 6 and set(bank_raw.columns) & set(top) and sorted(k for p in seen["bank"].values() for k in p) == sorted(top)
    assert seen["gov"] == [a for a in res.features if a in top and a.startswith("gov.")] == seen["bank"]["gov"]
    assert seen["gov"] and seen["bank"]["bank"]
    assert ("bank", TAG_CANDIDATES, Kind.AGGREGATE) in {(e.sender, e.tag, e.kind) for e in net.ledgers["gov"]}

    assert table.attrs["corr_candidates"] == len(top)

    # no candidate at the bank (its only feature is constant: IV 0): its best own feature is
    # correlated as a carrier, but the policy reads only the passive candidates' correlations
    noise = pd.DataFrame({"noise": np.zeros(len(y))})
    seen.clear()
    policy = SelectionPolicy(corr_candidates=3)

    def bank_noise(ch):
        res = woe_active(ch, y, Binner().fit_transform(noise), small_params, feature_names=["noise"])

        def correlate(per):
            seen["bank"] = per
            ks = [k for p in per.values() for k in p]
            return pd.DataFrame(np.full((len(ks), len(ks)), 0.9) + 0.1 * np.eye(len(ks)), index=ks, columns=ks)

        return res, screen_active(ch, res, noise, policy, correlate=correlate)

    out = run_parties(MemoryNetwork(("bank", "gov")), {"bank": bank_noise, "gov": gov_fn}, timeout=120)
    res, t3 = out["bank"]
    assert t3.set_index("feature").loc["noise", "reason"].startswith("IV ")
    assert seen["bank"]["bank"] == ["noise"] and len(seen["gov"]) == 3 == t3.attrs["corr_candidates"]
    assert seen["gov"] == seen["bank"]["gov"] and set(t3.loc[t3["corr_partner"].notna(), "corr_partner"]) <= set(seen["gov"])
    assert t3["reason"].str.startswith("|r| 0.900").sum() == 2  # the carrier dropped nothing

    # a candidate list naming a feature the passive party does not have is refused
    def bad_bank(ch):
        woe_active(ch, y, Xb, small_params)
        ch.recv("gov", TAG_PROFILE)
        ch.send("gov", TAG_CANDIDATES, {"aliases": ["acct_age_months"]}, kind=Kind.AGGREGATE)

    def gov_fn2(ch):
        r = woe_passive(ch, Xg, small_params)
        return screen_passive(ch, gov_raw, r.aliases, correlate=lambda a: None)

    with pytest.raises(ProtocolError, match="candidates"):
        run_parties(MemoryNetwork(("bank", "gov")), {"bank": bad_bank, "gov": gov_fn2}, timeout=60)


def _screen(bank_raw, gov_raw, y, small_params, *, reveal: bool, policy=None):
    Xb, Xg = Binner().fit_transform(bank_raw), Binner().fit_transform(gov_raw)
    names = list(bank_raw.columns)
    net = MemoryNetwork(("bank", "gov"))

    def bank(ch):
        res = woe_active(ch, y, Xb, small_params, feature_names=names)
        return res, screen_active(ch, res, bank_raw, policy)

    def gov(ch):
        r = woe_passive(ch, Xg, small_params)
        return screen_passive(ch, gov_raw, r.aliases, reveal_names=reveal)

    return net, run_parties(net, {"bank": bank, "gov": gov}, timeout=120), (Xb, Xg)


def test_screen_protocol_and_leaks(synth_pair, small_params, serial_executor):
    bank, gov = synth_pair
    y = bank["y"].to_numpy()
    bank_raw = bank.drop(columns=["id", "y"])
    gov_raw = gov.drop(columns=["id"]).rename(columns=lambda c: f"secret_{c}")
    net, out, (Xb, Xg) = _screen(bank_raw, gov_raw, y, small_params, reveal=False)
    res, table = out["bank"]
    aliases = [f"gov.f{j:03d}" for j in range(gov_raw.shape[1])]
    assert table["feature"].tolist() == list(bank_raw.columns) + aliases
    assert table["name"].tolist() == table["feature"].tolist()  # aliases only
    # the table equals the central computation on the joined data
    central = SelectionPolicy().apply(screen_stats(res, pd.concat([feature_profile(bank_raw),
                                                                   feature_profile(gov_raw).set_axis(aliases)])))
    pd.testing.assert_frame_equal(table.drop(columns=["name"]), central)
    prof = feature_profile(gov_raw)
    assert np.allclose(table["missing_rate"].to_numpy()[-len(aliases):], prof["missing_rate"].to_numpy())
    assert table["missing_rate"].to_numpy()[-len(aliases):].max() > 0
    joined = plain_stats(np.hstack([Xb, Xg]), y, list(bank_raw.columns) + aliases)
    assert np.allclose(table["auc"], [joined[k].auc for k in table["feature"]], atol=1e-12, rtol=0)
    kept_gov = out["gov"]
    assert kept_gov == [gov_raw.columns[aliases.index(a)] for a in table.loc[(table["party"] == "gov") & table["kept"],
                                                                              "feature"]]
    assert 0 < len(kept_gov) < gov_raw.shape[1]
    # ledgers: the bank got aggregates only; no passive name crossed
    assert [(e.tag, e.kind) for e in net.ledgers["bank"]] == [("woe/bin_sums", Kind.AGGREGATE),
                                                              (TAG_PROFILE, Kind.AGGREGATE)]
    assert ("bank", TAG_KEPT, Kind.AGGREGATE) in {(e.sender, e.tag, e.kind) for e in net.ledgers["gov"]}
    assert b"secret_" not in b"".join(r.wire for r in net.messages(receiver="bank"))

    # with the owner's consent, names appear in the report
    _, out2, _ = _screen(bank_raw, gov_raw, y, small_params, reveal=True)
    t2 = out2["bank"][1]
    assert t2["name"].tolist()[-len(aliases):] == list(gov_raw.columns)
    assert t2["feature"].tolist() == table["feature"].tolist()


def test_screen_refuses_a_mismatched_profile(synth_pair, small_params, serial_executor):
    bank, gov = synth_pair
    y = bank["y"].to_numpy()
    Xb, Xg = Binner().fit_transform(bank.drop(columns=["id", "y"])), Binner().fit_transform(gov.drop(columns=["id"]))
    net = MemoryNetwork(("bank", "gov"))

    def bank_fn(ch):
        return screen_active(ch, woe_active(ch, y, Xb, small_params), bank.drop(columns=["id", "y"]))

    def gov_fn(ch):
        r = woe_passive(ch, Xg, small_params)
        ch.send("bank", TAG_PROFILE, {"aliases": r.aliases[:-1], "missing_rate": np.zeros(len(r.aliases) - 1),
                                      "unique_ratio": np.zeros(len(r.aliases) - 1)}, kind=Kind.AGGREGATE)

    with pytest.raises(ProtocolError, match="profile"):
        run_parties(net, {"bank": bank_fn, "gov": gov_fn}, timeout=60)
