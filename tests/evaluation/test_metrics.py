"""Evaluation metrics against scikit-learn and direct (slow, obvious) computations."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import roc_auc_score

from privfin.errors import DataError
from privfin.evaluation import metrics as M


def direct_ks(y: np.ndarray, s: np.ndarray) -> float:
    """max |TPR - FPR| over every threshold t (called positive: score >= t), by brute force."""
    pos, neg = (y == 1).sum(), (y == 0).sum()
    best = 0.0
    for t in np.unique(s):
        called = s >= t
        best = max(best, abs((called & (y == 1)).sum() / pos - (called & (y == 0)).sum() / neg))
    return best


def direct_psi(e: np.ndarray, a: np.ndarray, n_bins: int, eps: float) -> float:
    """PSI with bins from e's quantiles, counted row by row in plain Python."""
    qs = sorted(set(np.quantile(e, [i / n_bins for i in range(1, n_bins)]).tolist()))
    edges = [-np.inf, *qs, np.inf]

    def shares(x: np.ndarray) -> list[float]:
        c = [0] * (len(edges) - 1)
        for v in x:
            for i in range(len(edges) - 1):
                if edges[i] <= v < edges[i + 1]:
                    c[i] += 1
                    break
        return [ci / len(x) if ci else eps for ci in c]

    pe, pa = shares(e), shares(a)
    return sum((x - y) * np.log(x / y) for x, y in zip(pa, pe))


def data(seed: int, n: int = 2000, decimals: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = rng.normal(size=n) + 0.8 * y
    return y, (np.round(s, decimals) if decimals is not None else s)


@pytest.mark.parametrize("decimals", [None, 1, 0])
def test_auc_matches_sklearn_with_and_without_ties(decimals):
    for seed in range(5):
        y, s = data(seed, decimals=decimals)
        assert abs(M.auc(y, s) - roc_auc_score(y, s)) < 1e-9
        assert abs(M.gini(y, s) - (2 * roc_auc_score(y, s) - 1)) < 1e-9


def test_auc_edge_cases():
    assert M.auc([0, 1], [0.1, 0.9]) == 1.0
    assert M.auc([0, 1], [0.9, 0.1]) == 0.0
    assert M.auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5  # all tied
    y = np.r_[np.zeros(99), 1]  # one positive, heavily imbalanced
    s = np.linspace(0, 1, 100)
    assert abs(M.auc(y, s) - roc_auc_score(y, s)) < 1e-12


def test_ks_matches_direct_computation():
    for seed, dec in [(0, None), (1, 1), (2, 0), (3, 2)]:
        y, s = data(seed, n=600, decimals=dec)
        assert abs(M.ks(y, s) - direct_ks(y, s)) < 1e-9
        curve = M.ks_curve(y, s)
        assert abs(curve["gap"].abs().max() - M.ks(y, s)) < 1e-12
        assert curve["population"].iloc[0] == 0.0 and curve["population"].iloc[-1] == pytest.approx(1.0)


def test_roc_curve_matches_sklearn():
    from sklearn.metrics import roc_curve

    y, s = data(7, decimals=1)
    fpr, tpr, thr = M.roc_curve(y, s)
    f2, t2, th2 = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, f2, atol=1e-12)
    np.testing.assert_allclose(tpr, t2, atol=1e-12)
    np.testing.assert_array_equal(thr[1:], th2[1:])


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(-5, 5)), min_size=2, max_size=60))
def test_auc_ks_properties(rows):
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows], dtype=float)
    if y.min() == y.max():
        with pytest.raises(DataError, match="both classes"):
            M.auc(y, s)
        return
    a = M.auc(y, s)
    assert abs(a - roc_auc_score(y, s)) < 1e-9
    assert abs(M.ks(y, s) - direct_ks(y, s)) < 1e-9
    assert abs(M.auc(y, -s) - (1 - a)) < 1e-9  # reversing the score mirrors the AUC
    assert abs(M.auc(y, 3 * s + 7) - a) < 1e-12  # invariant to monotone transforms


@pytest.mark.parametrize("y, s, match", [
    ([1, 1, 1], [0.1, 0.2, 0.3], "both classes"),
    ([0, 0], [0.1, 0.2], "both classes"),
    ([0, 1, 2], [0.1, 0.2, 0.3], "binary"),
    ([0, 1], [0.1, np.nan], "NaN"),
    ([0, 1], [0.1, np.inf], "NaN"),
    ([0, 1, 1], [0.1, 0.2], "3 labels"),
    ([], [], "empty"),
    ([[0, 1]], [[0.1, 0.2]], "1-d"),
    ([0, 1], ["a", "b"], "numeric"),
])
def test_bad_inputs_raise_clear_errors(y, s, match):
    with pytest.raises(DataError, match=match):
        M.auc(y, s)


def test_response_rate_top_and_tie_handling():
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 0])
    s = np.arange(10, 0, -1, dtype=float)
    assert M.response_rate_top(y, s, 10) == 1.0  # top 1 row
    assert M.response_rate_top(y, s, 30) == pytest.approx(2 / 3)
    assert M.response_rate_top(y, s, 100) == pytest.approx(0.3)
    # a tied run cut by the boundary counts pro rata: independent of row order
    y2 = np.array([1, 0, 0, 0, 1, 1])
    s2 = np.array([5.0, 3, 3, 3, 3, 1])
    r = M.response_rate_top(y2, s2, 50)  # 3 rows: the 5, and 2 of the four 3s (1 event among them)
    assert r == pytest.approx((1 + 2 * 1 / 4) / 3)
    perm = np.random.default_rng(0).permutation(6)
    assert M.response_rate_top(y2[perm], s2[perm], 50) == pytest.approx(r)
    with pytest.raises(DataError, match="pct"):
        M.response_rate_top(y, s, 0)


def test_lift_table_matches_direct_deciles():
    y, s = data(3, n=1000)  # continuous scores: no ties, so deciles are exact row sets
    t = M.lift_table(y, s)
    order = np.argsort(-s)
    groups = np.array_split(order, 10)
    rate = y.mean()
    for g, row in zip(groups, t.itertuples()):
        assert row.rows == len(g)
        assert row.events == pytest.approx(y[g].sum())
        assert row.lift == pytest.approx(y[g].mean() / rate)
        assert row.max_score == s[g].max() and row.min_score == s[g].min()
    assert t["gain"].iloc[-1] == pytest.approx(1.0)
    assert t["cum_lift"].iloc[-1] == pytest.approx(1.0)
    assert t["events"].sum() == pytest.approx(y.sum())
    assert t["lift"].iloc[0] > 1.2 > t["lift"].iloc[-1]  # an informative score
    assert M.response_rate_top(y, s, 10) == pytest.approx(t["event_rate"].iloc[0])
    with pytest.raises(DataError, match="n_bins"):
        M.lift_table([0, 1], [0.1, 0.2], n_bins=3)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 3)), min_size=10, max_size=50))
def test_lift_table_is_order_independent_under_ties(rows):
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows], dtype=float)
    if y.sum() == 0 or y.sum() == len(y):
        return
    t1 = M.lift_table(y, s)
    perm = np.random.default_rng(len(rows)).permutation(len(y))
    t2 = M.lift_table(y[perm], s[perm])
    np.testing.assert_allclose(t1["events"], t2["events"], atol=1e-9)
    assert t1["events"].sum() == pytest.approx(y.sum())
    assert (t1["events"] >= -1e-12).all() and (t1["events"] <= t1["rows"] + 1e-12).all()


def test_threshold_metrics_match_sklearn():
    y, s = data(5)
    for thr in (-1.0, 0.0, 0.4, 1.5):
        m = M.at_threshold(y, s, thr)
        np.testing.assert_array_equal(m.matrix(), sk_confusion(y, (s >= thr).astype(int), labels=[0, 1]))
        called = s >= thr
        assert m.precision == pytest.approx(y[called].mean())
        assert m.recall == pytest.approx(called[y == 1].mean())
        assert M.precision_recall(y, s, thr) == (m.precision, m.recall)
        np.testing.assert_array_equal(M.confusion_matrix(y, s, thr), m.matrix())
    none = M.at_threshold(y, s, 1e9)
    assert none.tp == none.fp == 0 and np.isnan(none.precision) and none.recall == 0.0


def test_psi_matches_direct_computation():
    rng = np.random.default_rng(11)
    e = rng.normal(size=3000)
    for a in (rng.normal(size=2000), rng.normal(0.3, 1.2, size=2500), np.round(rng.normal(size=1000), 1)):
        assert abs(M.population_stability_index(e, a) - direct_psi(e, a, 10, M.PSI_EPSILON)) < 1e-9
    # identical distributions: 0; an empty bin uses the stated epsilon
    assert M.population_stability_index(e, e) == 0.0
    a = e[e < np.quantile(e, 0.5)]  # the top half of the bins is empty in `actual`
    t = M.stability_table(e, a)
    assert (t.loc[t["actual_n"] == 0, "actual_share"] == M.PSI_EPSILON).all()
    assert M.population_stability_index(e, a) == pytest.approx(direct_psi(e, a, 10, M.PSI_EPSILON), abs=1e-9)
    assert M.population_stability_index(e, a) > 0.25


def test_psi_tied_expected_merges_edges():
    e = np.r_[np.zeros(800), np.arange(200.0)]  # 80% zeros: several quantiles coincide
    t = M.stability_table(e, e[::-1])
    assert len(t) < 10 and t["expected_n"].sum() == len(e)
    assert abs(M.population_stability_index(e, e + 0.5) - direct_psi(e, e + 0.5, 10, M.PSI_EPSILON)) < 1e-9
    with pytest.raises(DataError, match="n_bins"):
        M.population_stability_index(e, e, n_bins=1)


def test_score_bands():
    s = np.array([300, 420, 480, 510, 560, 590, 640, 700, 850], dtype=float)
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0])
    t = M.score_bands(s, y, bands=[300, 500, 600, 850])
    assert t["rows"].tolist() == [3, 3, 3]
    assert t["events"].tolist() == [2, 1, 0]
    assert t["band"].iloc[-1].endswith("]")  # last band closed: 850 counted
    assert t["share"].sum() == pytest.approx(1.0)
    eq = M.score_bands(s, bands=4)
    assert eq["rows"].sum() == len(s) and "events" not in eq
    with pytest.raises(DataError, match="increasing"):
        M.score_bands(s, bands=[500, 400])


def test_evaluate_and_compare():
    y, s = data(9)
    rng = np.random.default_rng(1)
    bank = M.evaluate(y, s + rng.normal(size=len(y)), "bank_only")
    fed = M.evaluate(y, s, "federated")
    assert fed.auc == pytest.approx(roc_auc_score(y, s))
    c = M.compare(bank, fed)
    assert c["auc_change_pct"] == pytest.approx(100 * (fed.auc / bank.auc - 1))
    assert c["ks_change_pct"] == pytest.approx(100 * (fed.ks / bank.ks - 1))
    assert c["auc_change_pct"] > 0
    assert M.compare({"auc": 0.7, "ks": 0.3}, {"auc": 0.77, "ks": 0.33})["auc_change_pct"] == pytest.approx(10.0)
    df = M.metrics_frame([bank, fed], baseline="bank_only")
    assert df["auc_change_pct"].iloc[0] == 0.0 and df["auc_change_pct"].iloc[1] == pytest.approx(c["auc_change_pct"])
    with pytest.raises(DataError, match="baseline"):
        M.metrics_frame([bank], baseline="nope")
    # each federated model against its own bank-only counterpart
    lr, boost, own_boost = (M.evaluate(y, s + rng.normal(scale=sc, size=len(y)), nm)
                            for nm, sc in (("lr", 0.3), ("boost", 0.2), ("bank_only_boost", 0.8)))
    df = M.metrics_frame([M.evaluate(y, bank_s := s + rng.normal(size=len(y)), "bank_only"), lr, boost, own_boost],
                         baseline=M.BANK_ONLY).set_index("name")
    assert df.loc["boost", "vs"] == "bank_only_boost" and df.loc["lr", "vs"] == "bank_only"
    assert df.loc["boost", "auc_change_pct"] == pytest.approx(M.compare(own_boost, boost)["auc_change_pct"])
    assert df.loc["lr", "ks_change_pct"] == pytest.approx(M.compare(M.evaluate(y, bank_s), lr)["ks_change_pct"])
    assert np.isnan(df.loc["bank_only", "auc_change_pct"])
    with pytest.raises(DataError, match="bank_only_boost"):
        M.metrics_frame([bank, boost], baseline=M.BANK_ONLY)
    with pytest.raises(DataError, match="'auc' and 'ks'"):
        M.compare({"auc": 0.7}, fed)


def test_metrics_on_real_default_credit(fate_dir):
    """On real default-credit data, one raw feature as the score (many ties): sklearn and brute force agree."""
    import pandas as pd

    g = pd.read_csv(fate_dir / "default_credit_hetero_guest.csv")
    y = g["y"].to_numpy()
    s = g.drop(columns=["id", "y"]).iloc[:, 0].to_numpy(dtype=float)  # one raw feature as a score (many ties)
    assert abs(M.auc(y, s) - roc_auc_score(y, s)) < 1e-9
    assert abs(M.ks(y, s) - direct_ks(y, s)) < 1e-9


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-20, 20), min_size=5, max_size=80), st.lists(st.integers(-25, 25), min_size=1, max_size=80),
       st.integers(2, 12))
def test_psi_property_matches_direct_and_is_nonnegative(e, a, n_bins):
    e, a = np.array(e, dtype=float), np.array(a, dtype=float)
    v = M.population_stability_index(e, a, n_bins)
    assert v >= 0.0
    assert abs(v - direct_psi(e, a, n_bins, M.PSI_EPSILON)) < 1e-9
    assert M.population_stability_index(e, e, n_bins) == 0.0
