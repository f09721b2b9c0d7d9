"""Local binning: quantile / width / categorical / missing bin / minimum bin size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from privfin.errors import DataError
from privfin.features.binning import Binner


def _counts(col: np.ndarray) -> np.ndarray:
    return np.bincount(col.astype(int))


def test_quantile_equal_frequency_and_right_closed():
    x = np.arange(1000, dtype=float)
    b = Binner("quantile", 10).fit(pd.DataFrame({"x": x}))
    idx = b.transform(pd.DataFrame({"x": x}))[:, 0]
    assert b.n_bins_.tolist() == [10] and (_counts(idx) == 100).all()
    e = b.bins_["x"].edges
    # right-closed: a value equal to an edge falls in the lower interval
    out = b.transform(pd.DataFrame({"x": [e[0], np.nextafter(e[0], np.inf), -1e9, 1e9]}))[:, 0]
    assert out.tolist() == [0, 1, 0, 9]
    assert idx.dtype == np.uint8


def test_width_and_min_bin_merge():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 990), [50.0] * 10])  # outliers make almost-empty width bins
    b = Binner("width", 10, min_bin_frac=0.05).fit(pd.DataFrame({"x": x}))
    c = b.bins_["x"].counts
    assert c.sum() == 1000 and c.min() >= 50 and b.min_count_ == 50
    idx = b.transform(pd.DataFrame({"x": x}))[:, 0]
    assert (_counts(idx) == c).all()


def test_missing_bin_separate_or_merged():
    x = np.arange(100, dtype=float)
    x[:20] = np.nan
    b = Binner("quantile", 4).fit(pd.DataFrame({"x": x}))
    cb = b.bins_["x"]
    assert cb.missing_bin == cb.n_bins - 1 and cb.counts[-1] == 20
    x2 = np.arange(100, dtype=float)
    x2[:2] = np.nan  # below 5% -> joins the smallest bin
    cb2 = Binner("quantile", 4).fit(pd.DataFrame({"x": x2})).bins_["x"]
    assert cb2.missing_bin is not None and cb2.missing_bin < cb2.n_bins and cb2.counts.sum() == 100
    assert cb2.counts.min() >= 5
    # no missing at fit: missing at transform goes to the largest bin
    b3 = Binner("quantile", 4).fit(pd.DataFrame({"x": np.arange(100.0)}))
    assert b3.transform(pd.DataFrame({"x": [np.nan]}))[0, 0] == b3.bins_["x"].default_bin


def test_categorical_rare_grouped_and_unseen():
    s = ["a"] * 50 + ["b"] * 30 + ["c"] * 10 + ["d"] * 3 + ["e"] * 3 + [None] * 4
    b = Binner(min_bin_frac=0.05).fit(pd.DataFrame({"k": s}))
    cb = b.bins_["k"]
    assert cb.kind == "categorical"
    # d and e (3 each, < 5) grouped into "other" (6 rows); missing (4 < 5) joins the smallest bin
    assert cb.categories["d"] == cb.categories["e"] == cb.other_bin
    assert cb.counts.sum() == 100 and cb.counts.min() >= 5
    idx = b.transform(pd.DataFrame({"k": ["a", "zzz", None]}))[:, 0]
    assert idx[0] == cb.categories["a"] and idx[1] == cb.other_bin and idx[2] == cb.missing_bin


def test_categorical_forced_and_discrete_numeric():
    df = pd.DataFrame({"code": [1, 2, 3, 1, 2, 3] * 20, "flag": [0] * 100 + [1] * 20})
    b = Binner(categorical=["code"]).fit(df)
    assert b.bins_["code"].kind == "categorical" and b.n_bins_[0] == 3
    assert b.bins_["flag"].kind == "numeric" and b.n_bins_[1] == 2  # quantile edges collapse
    assert (np.bincount(b.transform(df)[:, 1]) == [100, 20]).all()


def test_bad_inputs():
    with pytest.raises(ValueError):
        Binner("chimerge")
    with pytest.raises(DataError):
        Binner().transform(pd.DataFrame({"x": [1.0]}))
    b = Binner().fit(pd.DataFrame({"x": [1.0, 2.0]}))
    with pytest.raises(DataError):
        b.transform(pd.DataFrame({"y": [1.0]}))
