"""The plain math (the oracle) against independent computations."""

from __future__ import annotations

import numpy as np
import pytest

from privfin.errors import DataError
from privfin.features.woe import SMOOTHING, auc_ks, bin_stats, counts_by_bin, woe_iv


def test_woe_iv_by_hand_with_smoothing():
    events = np.array([10, 0, 30])
    totals = np.array([100, 50, 60])
    woe, ivb, iv = woe_iv(events, totals)
    P, N = 40.0, 170.0
    e = np.array([10, 0 + SMOOTHING, 30]); n = np.array([90, 50 + SMOOTHING, 30])
    want = np.log((e / P) / (n / N))
    assert np.allclose(woe, want, rtol=0, atol=1e-15)
    assert iv == pytest.approx(float(((e / P - n / N) * want).sum()), abs=1e-15)


def test_auc_ks_match_sklearn_on_rows():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    bins = rng.integers(0, 7, 5000)
    y = (rng.random(5000) < 0.1 + 0.05 * bins).astype(int)
    y[bins == 3] = 0  # a bin without events: smoothing path
    ev, tot = counts_by_bin(bins, y)
    st = bin_stats(ev, tot)
    score = st.woe[bins]
    assert st.auc == pytest.approx(sk.roc_auc_score(y, score), abs=1e-12)
    fpr, tpr, _ = sk.roc_curve(y, score)
    assert st.ks == pytest.approx(float(np.max(tpr - fpr)), abs=1e-12)


def test_ties_between_bins():
    auc, ks = auc_ks(np.array([5, 5]), np.array([10, 10]), np.array([0.0, 0.0]))
    assert auc == 0.5 and ks == 0.0


def test_constant_label_is_an_error():
    with pytest.raises(DataError):
        woe_iv(np.array([0, 0]), np.array([3, 4]))
    with pytest.raises(DataError):
        woe_iv(np.array([5, 0]), np.array([3, 4]))
