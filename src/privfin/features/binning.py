"""Local binning of one party's own features (nothing here touches the network).

:class:`Binner` turns every column of a party's table into small bin indices:

- ``method="quantile"`` (equal frequency, the default) or ``"width"`` (equal width) for numeric
  columns: inner edges, right-closed intervals ``(-inf, e1], (e1, e2], ..., (ek, inf)``;
  quantile edges that coincide are dropped, so discrete columns get fewer bins;
- categorical columns (object / string / category dtype, or named in ``categorical``): one bin
  per category in order of decreasing frequency, at most ``n_bins`` of them; rarer categories and
  categories below the minimum bin size are grouped into one "other" bin;
- a separate **missing-value bin** (NaN / None / NA, and +-inf in numeric columns), the last
  index of the column;
- a **minimum bin size** ``min_count = max(1, ceil(min_bin_frac * n_rows))`` (default 5% of rows)
  enforced by merging: the smallest interval is merged into its smaller neighbour until every
  interval has ``min_count`` rows; a too-small "other" group joins the smallest category bin; a
  missing-value group below ``min_count`` joins the smallest other bin (then a missing value is
  mapped there).

Bin indices are ``0 .. n_bins_[j] - 1`` per column (``uint8`` when every column has fewer than
256 bins, else ``uint16``). The edges and the category map (attributes ``bins_``) are the
owner's private data: protocols send only indices and per-bin aggregates.

``transform`` of new data uses the learned rules: a value above the last edge goes to the last
interval, an unseen category to the "other" bin (or, without one, to the column's largest bin),
a missing value to the missing-value bin (or, when the training data had none, to the largest bin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from privfin.errors import DataError

Method = Literal["quantile", "width"]


@dataclass
class ColumnBins:
    """Learned binning of one column (private to its owner)."""

    name: str
    kind: Literal["numeric", "categorical"]
    n_bins: int
    counts: np.ndarray                       # rows per bin at fit time
    edges: np.ndarray | None = None          # numeric: inner edges, right-closed intervals
    categories: dict[Any, int] = field(default_factory=dict)  # categorical: value -> bin
    other_bin: int | None = None             # categorical: bin of rare / unseen categories
    missing_bin: int | None = None           # bin of missing values (None: none at fit time)
    default_bin: int = 0                     # fallback (largest bin) for unseen / missing values

    def describe(self) -> list[str]:
        """Human-readable label of every bin (for the owner's own reports only)."""
        labels = [""] * self.n_bins
        if self.kind == "numeric":
            e = [] if self.edges is None else [float(v) for v in self.edges]
            n_int = 0 if self.edges is None else len(e) + 1
            bounds = [-math.inf, *e, math.inf]
            for i in range(n_int):
                labels[i] = f"({bounds[i]:.6g}, {bounds[i + 1]:.6g}]"
        else:
            groups: dict[int, list[str]] = {}
            for cat, b in self.categories.items():
                groups.setdefault(b, []).append(str(cat))
            for b, cats in groups.items():
                labels[b] = "{" + ", ".join(sorted(cats)) + "}"
            if self.other_bin is not None:
                labels[self.other_bin] = (labels[self.other_bin] + " + other").strip(" +") or "other"
        if self.missing_bin is not None:
            labels[self.missing_bin] = (labels[self.missing_bin] + " + missing").strip(" +") or "missing"
        return labels


def _min_count(n: int, min_bin_frac: float, min_bin_count: int | None) -> int:
    if min_bin_count is not None:
        return max(1, int(min_bin_count))
    return max(1, math.ceil(min_bin_frac * n))


def _merge_intervals(edges: np.ndarray, counts: np.ndarray, min_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge the smallest interval into its smaller neighbour until all hold ``min_count`` rows."""
    edges, counts = list(edges), list(int(c) for c in counts)
    while len(counts) > 1:
        i = int(np.argmin(counts))
        if counts[i] >= min_count:
            break
        if i == 0:
            j = 1
        elif i == len(counts) - 1:
            j = i - 1
        else:
            j = i - 1 if counts[i - 1] <= counts[i + 1] else i + 1
        lo = min(i, j)
        counts[lo] += counts[lo + 1]
        del counts[lo + 1]
        del edges[lo]  # the edge between intervals lo and lo+1
    return np.asarray(edges, dtype=np.float64), np.asarray(counts, dtype=np.int64)


def _is_categorical(s: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s))


class Binner:
    """Bin every column of a table; scikit-learn style (``fit`` / ``transform``).

    Parameters: ``method`` ("quantile" | "width") for numeric columns, ``n_bins`` (target number
    of intervals / most categories kept), ``min_bin_frac`` (minimum rows per bin as a share of the
    fitted rows, default 0.05) or an absolute ``min_bin_count``, ``categorical`` (columns to treat
    as categorical whatever their dtype).

    Learned attributes: ``feature_names_in_``, ``n_rows_``, ``min_count_``, ``bins_`` (name ->
    :class:`ColumnBins`, private), ``n_bins_`` (bins per column, int array).
    """

    def __init__(self, method: Method = "quantile", n_bins: int = 10, *, min_bin_frac: float = 0.05,
                 min_bin_count: int | None = None, categorical: list[str] | tuple[str, ...] = ()) -> None:
        if method not in ("quantile", "width"):
            raise ValueError(f"method must be 'quantile' or 'width' (got {method!r})")
        if not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
            raise ValueError(f"n_bins must be a positive integer (got {n_bins!r})")
        if not 0.0 <= float(min_bin_frac) < 1.0:
            raise ValueError(f"min_bin_frac must be in [0, 1) (got {min_bin_frac!r})")
        self.method = method
        self.n_bins = int(n_bins)
        self.min_bin_frac = float(min_bin_frac)
        self.min_bin_count = min_bin_count
        self.categorical = tuple(categorical)

    # ---------------------------------------------------------------- fit
    def fit(self, X: pd.DataFrame | np.ndarray) -> Binner:
        df = _frame(X)
        n = len(df)
        if n == 0:
            raise DataError("cannot fit a Binner on zero rows")
        self.n_rows_ = n
        self.min_count_ = _min_count(n, self.min_bin_frac, self.min_bin_count)
        self.feature_names_in_ = np.asarray([str(c) for c in df.columns], dtype=object)
        self.bins_: dict[str, ColumnBins] = {}
        for col in df.columns:
            s = df[col]
            if str(col) in self.categorical or _is_categorical(s):
                cb = self._fit_categorical(str(col), s)
            else:
                cb = self._fit_numeric(str(col), s)
            self.bins_[str(col)] = cb
        self.n_bins_ = np.array([self.bins_[c].n_bins for c in self.feature_names_in_], dtype=np.int64)
        return self

    def _fit_numeric(self, name: str, s: pd.Series) -> ColumnBins:
        x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        miss = ~np.isfinite(x) if np.isinf(x).any() else np.isnan(x)
        v = x[~miss]
        if v.size:
            lo, hi = float(v.min()), float(v.max())
            if self.method == "quantile":
                edges = np.quantile(v, np.linspace(0.0, 1.0, self.n_bins + 1)[1:-1])
            else:
                edges = np.linspace(lo, hi, self.n_bins + 1)[1:-1] if hi > lo else np.empty(0)
            edges = np.unique(edges)
            edges = edges[edges < hi]  # (hi, inf) would be empty
            counts = np.bincount(np.searchsorted(edges, v, side="left"), minlength=len(edges) + 1)
            edges, counts = _merge_intervals(edges, counts, self.min_count_)
        else:
            edges, counts = None, np.empty(0, dtype=np.int64)  # only missing values: no intervals
        return self._with_missing(ColumnBins(name, "numeric", len(counts), counts, edges=edges), int(miss.sum()))

    def _fit_categorical(self, name: str, s: pd.Series) -> ColumnBins:
        miss = s.isna().to_numpy()
        vc = s[~miss].astype(object).value_counts(sort=False)
        order = sorted(vc.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
        keep = [(c, int(k)) for c, k in order if k >= self.min_count_][: self.n_bins]
        rest = [(c, int(k)) for c, k in order if (c, int(k)) not in keep]
        cats = {c: i for i, (c, _) in enumerate(keep)}
        counts = [k for _, k in keep]
        other = None
        n_rest = sum(k for _, k in rest)
        if rest:
            if n_rest >= self.min_count_ or not counts:
                other = len(counts)
                counts.append(n_rest)
            else:  # too few for a bin of their own: join the smallest category bin
                other = int(np.argmin(counts))
                counts[other] += n_rest
            for c, _ in rest:
                cats[c] = other
        cb = ColumnBins(name, "categorical", len(counts), np.asarray(counts, dtype=np.int64),
                        categories=cats, other_bin=other)
        return self._with_missing(cb, int(miss.sum()))

    def _with_missing(self, cb: ColumnBins, n_miss: int) -> ColumnBins:
        counts = list(int(c) for c in cb.counts)
        if n_miss and (n_miss >= self.min_count_ or not counts):
            cb.missing_bin = len(counts)
            counts.append(n_miss)
        elif n_miss:
            cb.missing_bin = int(np.argmin(counts))
            counts[cb.missing_bin] += n_miss
        cb.counts = np.asarray(counts, dtype=np.int64)
        cb.n_bins = len(counts)
        cb.default_bin = int(np.argmax(counts)) if counts else 0
        return cb

    # ---------------------------------------------------------------- transform
    def _check_fitted(self) -> None:
        if not hasattr(self, "bins_"):
            raise DataError("this Binner is not fitted yet; call fit first")

    def transform(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Bin indices, shape ``(n_rows, n_features)``, ``uint8`` (``uint16`` with >= 256 bins)."""
        self._check_fitted()
        df = _frame(X)
        names = [str(c) for c in df.columns]
        if names != list(self.feature_names_in_):
            raise DataError("transform needs the columns the Binner was fitted on, in the same order")
        dtype = np.uint8 if int(self.n_bins_.max(initial=1)) < 256 else np.uint16
        out = np.empty((len(df), len(names)), dtype=dtype)
        for j, name in enumerate(names):
            out[:, j] = self._transform_column(self.bins_[name], df.iloc[:, j])
        return out

    def fit_transform(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        return self.fit(X).transform(X)

    @staticmethod
    def _transform_column(cb: ColumnBins, s: pd.Series) -> np.ndarray:
        miss_bin = cb.default_bin if cb.missing_bin is None else cb.missing_bin
        if cb.kind == "numeric":
            x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            miss = ~np.isfinite(x) if np.isinf(x).any() else np.isnan(x)
            if cb.edges is None:  # only missing values at fit time: one bin for everything
                return np.full(len(x), miss_bin, dtype=np.int64)
            b = np.searchsorted(cb.edges, np.where(miss, 0.0, x), side="left").astype(np.int64)
            b[miss] = miss_bin
            return b
        miss = s.isna().to_numpy()
        fallback = cb.other_bin if cb.other_bin is not None else cb.default_bin
        b = s.astype(object).map(lambda v: cb.categories.get(v, fallback)).to_numpy()
        b = np.where(miss, miss_bin, b).astype(np.int64)
        return b

    def bin_labels(self, name: str) -> list[str]:
        """Labels of one column's bins (private to the owner)."""
        self._check_fitted()
        return self.bins_[name].describe()


def _frame(X: pd.DataFrame | np.ndarray) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    arr = np.asarray(X)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise DataError(f"expected a 2-D table (got shape {arr.shape})")
    return pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])


__all__ = ["Binner", "ColumnBins"]


def check_bin_matrix(X: Any, n_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Check a (rows, features) matrix of bin indices, as the federated protocols receive it.

    Returns the matrix (dtype unchanged) and the bins per feature (``max + 1``; 0 without rows).
    """
    X = np.asarray(X)
    if X.ndim != 2:
        raise DataError(f"bin indices must be a 2-D array (rows, features), got shape {X.shape}")
    if X.size and (X.dtype.kind not in "iu" or int(X.min()) < 0):
        raise DataError("bin indices must be non-negative integers")
    if n_rows is not None and X.shape[0] != n_rows:
        raise DataError(f"bin indices have {X.shape[0]} rows, the labels {n_rows}")
    n_bins = (X.max(axis=0).astype(np.int64) + 1) if X.shape[0] else np.zeros(X.shape[1], dtype=np.int64)
    return X, n_bins
