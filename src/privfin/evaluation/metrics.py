"""Binary-classifier evaluation at the label holder (numpy only).

Every function takes the true 0/1 labels ``y`` and a score where *higher means more
likely positive* (e.g. a default probability). Scorecard points, where higher means
*safer*, are passed negated. Inputs are checked: labels must be 0/1, scores finite and
of the same length; metrics that need both classes raise :class:`DataError`.

Ties are handled without depending on row order: the ROC curve has one point per
distinct score (so :func:`auc` equals scikit-learn's ``roc_auc_score``), and cut-offs
that fall inside a run of equal scores (top k%, deciles) count that run's events
pro rata — the expectation under a random order of the tied rows.

Security: these functions run locally at the party that holds the labels; nothing is
sent. What the report shows of them (aggregate metrics and curves) is what the design
allows the label holder to learn.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from privfin.errors import DataError
from privfin.models.logistic import check_labels

#: Proportion substituted for an empty bin in :func:`population_stability_index`.
PSI_EPSILON = 1e-4


# ------------------------------------------------------------------------------ input checks
def check_scores(score: Any, n: int | None = None, what: str = "score") -> np.ndarray:
    """Scores as a finite 1-d float64 array (of length ``n`` when given)."""
    s = np.asarray(score)
    if s.ndim != 1:
        raise DataError(f"{what} must be a 1-d array (got shape {s.shape})")
    if s.dtype.kind not in "biuf":
        raise DataError(f"{what} must be numeric (got dtype {s.dtype})")
    s = s.astype(np.float64)
    if len(s) == 0:
        raise DataError(f"{what} is empty")
    if not np.all(np.isfinite(s)):
        raise DataError(f"{what} has NaN or infinite values")
    if n is not None and len(s) != n:
        raise DataError(f"{what} has {len(s)} values but there are {n} labels")
    return s


def _check(y: Any, score: Any, both_classes: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    yy = check_labels(y)
    s = check_scores(score, len(yy))
    if both_classes is not None:
        pos = yy.sum()
        if pos == 0 or pos == len(yy):
            raise DataError(f"{both_classes} needs both classes in y (got only {int(yy[0])}s)")
    return yy, s


def _ranked(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores sorted by descending score (stable)."""
    order = np.argsort(-s, kind="mergesort")
    return y[order], s[order]


# ------------------------------------------------------------------------------ ROC, AUC, KS, Gini
def roc_curve(y: Any, score: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)``: one point per distinct score, from (0, 0) to (1, 1).

    ``thresholds[i]`` is the score at or above which rows are called positive at point
    ``i``; the first point has threshold ``+inf`` (nobody called positive).
    """
    yy, s = _check(y, score, "the ROC curve")
    ys, ss = _ranked(yy, s)
    last = np.r_[ss[1:] != ss[:-1], True]  # end of each run of equal scores
    tp = np.cumsum(ys)[last]
    fp = np.cumsum(1.0 - ys)[last]
    tpr = np.r_[0.0, tp / tp[-1]]
    fpr = np.r_[0.0, fp / fp[-1]]
    return fpr, tpr, np.r_[np.inf, ss[last]]


def _area(fpr: np.ndarray, tpr: np.ndarray) -> float:
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2.0)


def auc(y: Any, score: Any) -> float:
    """Area under the ROC curve; tied scores count one half (as scikit-learn's ``roc_auc_score``)."""
    fpr, tpr, _ = roc_curve(y, score)
    return _area(fpr, tpr)


def ks(y: Any, score: Any) -> float:
    """Kolmogorov–Smirnov statistic: max |TPR − FPR| over all thresholds."""
    fpr, tpr, _ = roc_curve(y, score)
    return float(np.max(np.abs(tpr - fpr)))


def gini(y: Any, score: Any) -> float:
    """Gini coefficient (accuracy ratio) = 2·AUC − 1."""
    return 2.0 * auc(y, score) - 1.0


def ks_curve(y: Any, score: Any) -> pd.DataFrame:
    """Cumulative shares of positives and negatives by share of the population called positive.

    Columns ``population`` (share of rows with score >= threshold), ``tpr``, ``fpr``,
    ``gap`` = tpr − fpr and ``threshold``; the KS statistic is ``gap.abs().max()``.
    """
    yy, _ = _check(y, score, "the KS curve")
    fpr, tpr, thr = roc_curve(yy, score)
    pos = yy.sum()
    population = (tpr * pos + fpr * (len(yy) - pos)) / len(yy)
    return pd.DataFrame({"population": population, "tpr": tpr, "fpr": fpr, "gap": tpr - fpr, "threshold": thr})


# ------------------------------------------------------------------------------ ranking: top k%, deciles
def _cum_events_at(ys: np.ndarray, ss: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Expected events among the top ``k`` rows (ys, ss sorted by descending score), a tied
    run cut by the boundary contributing pro rata."""
    n = len(ys)
    k = np.asarray(k, dtype=np.int64)
    cum = np.r_[0.0, np.cumsum(ys)]
    starts = np.r_[0, np.flatnonzero(ss[1:] != ss[:-1]) + 1]
    ends = np.r_[starts[1:], n]
    run = np.searchsorted(starts, np.clip(k - 1, 0, n - 1), side="right") - 1  # run holding row k-1
    a, b = starts[run], ends[run]
    out = cum[a] + (cum[b] - cum[a]) * (k - a) / (b - a)
    return np.where(k <= 0, 0.0, out)


def _top_count(n: int, pct: float) -> int:
    if not 0 < pct <= 100:
        raise DataError(f"pct must be in (0, 100] (got {pct})")
    return max(1, int(np.ceil(n * pct / 100.0 - 1e-9)))


def response_rate_top(y: Any, score: Any, pct: float = 10.0) -> float:
    """Share of positives among the top ``pct`` percent of rows by score (ceil of n·pct/100 rows)."""
    yy, s = _check(y, score)
    ys, ss = _ranked(yy, s)
    k = _top_count(len(yy), pct)
    return float(_cum_events_at(ys, ss, np.array([k]))[0] / k)


def lift_table(y: Any, score: Any, n_bins: int = 10) -> pd.DataFrame:
    """Lift and gain table by score group (deciles by default), highest scores first.

    Groups have sizes as equal as possible (``np.array_split`` of the ranked rows). Columns:
    ``group`` (1 = top), ``rows``, ``events``, ``event_rate``, ``lift`` (event rate / overall
    rate), ``cum_rows``, ``cum_events``, ``cum_event_rate``, ``cum_lift``, ``gain`` (share of
    all events captured so far), ``cum_population``, ``min_score``, ``max_score``. Events of a
    tied run split by a group boundary are shared pro rata, so values may be fractional.
    """
    yy, s = _check(y, score, "the lift table")
    n = len(yy)
    if not 1 <= n_bins <= n:
        raise DataError(f"n_bins must be between 1 and the number of rows ({n}); got {n_bins}")
    ys, ss = _ranked(yy, s)
    sizes = np.array([len(c) for c in np.array_split(np.arange(n), n_bins)])
    cum_rows = np.cumsum(sizes)
    cum_events = _cum_events_at(ys, ss, cum_rows)
    events = np.diff(np.r_[0.0, cum_events])
    rate = yy.mean()
    lo = ss[cum_rows - 1]
    hi = ss[cum_rows - sizes]
    return pd.DataFrame({
        "group": np.arange(1, n_bins + 1), "rows": sizes, "events": events, "event_rate": events / sizes,
        "lift": events / sizes / rate, "cum_rows": cum_rows, "cum_events": cum_events,
        "cum_event_rate": cum_events / cum_rows, "cum_lift": cum_events / cum_rows / rate,
        "gain": cum_events / cum_events[-1], "cum_population": cum_rows / n, "min_score": lo, "max_score": hi,
    })


# ------------------------------------------------------------------------------ at a threshold
@dataclass(frozen=True)
class ThresholdMetrics:
    """Confusion counts and rates when rows with ``score >= threshold`` are called positive.

    ``precision`` is NaN when nobody is called positive.
    """

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def precision(self) -> float:
        called = self.tp + self.fp
        return self.tp / called if called else float("nan")

    @property
    def recall(self) -> float:
        pos = self.tp + self.fn
        return self.tp / pos if pos else float("nan")

    @property
    def accuracy(self) -> float:
        return (self.tp + self.tn) / (self.tp + self.fp + self.tn + self.fn)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r > 0 else float("nan")

    def matrix(self) -> np.ndarray:
        """``[[tn, fp], [fn, tp]]`` (scikit-learn's ``confusion_matrix`` layout)."""
        return np.array([[self.tn, self.fp], [self.fn, self.tp]], dtype=np.int64)

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "precision": self.precision, "recall": self.recall, "accuracy": self.accuracy,
                "f1": self.f1}


def at_threshold(y: Any, score: Any, threshold: float) -> ThresholdMetrics:
    """Confusion matrix, precision and recall when ``score >= threshold`` is called positive."""
    yy, s = _check(y, score)
    if not np.isfinite(threshold):
        raise DataError("threshold must be finite")
    called = s >= threshold
    pos = yy == 1.0
    tp = int(np.sum(called & pos))
    fp = int(np.sum(called & ~pos))
    fn = int(np.sum(~called & pos))
    return ThresholdMetrics(float(threshold), tp, fp, len(yy) - tp - fp - fn, fn)


def confusion_matrix(y: Any, score: Any, threshold: float) -> np.ndarray:
    """``[[tn, fp], [fn, tp]]`` at ``threshold`` (see :func:`at_threshold`)."""
    return at_threshold(y, score, threshold).matrix()


def precision_recall(y: Any, score: Any, threshold: float) -> tuple[float, float]:
    """``(precision, recall)`` at ``threshold`` (see :func:`at_threshold`)."""
    m = at_threshold(y, score, threshold)
    return m.precision, m.recall


# ------------------------------------------------------------------------------ stability, bands
def quantile_edges(expected: Any, n_bins: int = 10) -> np.ndarray:
    """Interior bin edges at the i/n quantiles of ``expected`` (numpy's linear interpolation),
    duplicates merged."""
    e = check_scores(expected, what="expected")
    if n_bins < 2:
        raise DataError(f"n_bins must be >= 2 (got {n_bins})")
    q = np.quantile(e, np.arange(1, n_bins) / n_bins)  # i/n exactly (linspace can be 1 ulp off)
    return np.unique(q)


def stability_table(expected: Any, actual: Any, n_bins: int = 10, eps: float = PSI_EPSILON) -> pd.DataFrame:
    """Per-bin shares of two score distributions and their PSI terms.

    Bins: ``(-inf, e1), [e1, e2), ..., [ek, inf)`` with ``e1..ek`` the distinct interior
    quantiles of ``expected`` (:func:`quantile_edges`). A bin's term is
    ``(a - e) * ln(a / e)`` with ``a``, ``e`` its shares in ``actual`` and ``expected``, each
    share replaced by ``eps`` (default :data:`PSI_EPSILON` = 1e-4) where the bin is empty.
    """
    e = check_scores(expected, what="expected")
    a = check_scores(actual, what="actual")
    if not 0 < eps < 1:
        raise DataError(f"eps must be in (0, 1) (got {eps})")
    edges = quantile_edges(e, n_bins)
    ce = np.bincount(np.searchsorted(edges, e, side="right"), minlength=len(edges) + 1)
    ca = np.bincount(np.searchsorted(edges, a, side="right"), minlength=len(edges) + 1)
    pe = np.where(ce > 0, ce / len(e), eps)
    pa = np.where(ca > 0, ca / len(a), eps)
    return pd.DataFrame({"lower": np.r_[-np.inf, edges], "upper": np.r_[edges, np.inf], "expected_n": ce,
                         "actual_n": ca, "expected_share": pe, "actual_share": pa,
                         "psi": (pa - pe) * np.log(pa / pe)})


def population_stability_index(expected: Any, actual: Any, n_bins: int = 10, eps: float = PSI_EPSILON) -> float:
    """Population stability index of ``actual`` against ``expected`` (see :func:`stability_table`).

    Rule of thumb: < 0.1 stable, 0.1–0.25 some shift, > 0.25 a significant shift.
    """
    return float(stability_table(expected, actual, n_bins, eps)["psi"].sum())


def score_bands(score: Any, y: Any = None, bands: int | Sequence[float] = 10) -> pd.DataFrame:
    """Distribution of scores by band: rows, share and (with ``y``) events and event rate.

    ``bands`` is a number of equal-width bands over the score range, or increasing band edges
    (e.g. scorecard points ``[300, 500, 550, 600, 650, 850]``); bands are ``[lo, hi)``, the
    last one closed, and scores outside the edges are counted in the first or last band.
    """
    s = check_scores(score)
    yy = check_labels(y) if y is not None else None
    if yy is not None and len(yy) != len(s):
        raise DataError(f"score has {len(s)} values but there are {len(yy)} labels")
    if isinstance(bands, (int, np.integer)):
        if bands < 1:
            raise DataError(f"bands must be >= 1 (got {bands})")
        lo, hi = float(s.min()), float(s.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, int(bands) + 1)
    else:
        edges = np.asarray(bands, dtype=np.float64)
        if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0) or not np.all(np.isfinite(edges)):
            raise DataError("bands must be a number or at least two increasing finite edges")
    idx = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, len(edges) - 2)
    count = np.bincount(idx, minlength=len(edges) - 1)
    out = pd.DataFrame({"band": [f"[{a:.4g}, {b:.4g}{']' if i == len(edges) - 2 else ')'}"
                                 for i, (a, b) in enumerate(itertools.pairwise(edges))],
                        "lower": edges[:-1], "upper": edges[1:], "rows": count, "share": count / len(s)})
    if yy is not None:
        ev = np.bincount(idx, weights=yy, minlength=len(edges) - 1).round().astype(np.int64)
        out["events"] = ev
        with np.errstate(invalid="ignore", divide="ignore"):
            out["event_rate"] = np.where(count > 0, ev / np.maximum(count, 1), np.nan)
    return out


# ------------------------------------------------------------------------------ summaries, comparison
@dataclass(frozen=True)
class ModelEval:
    """Headline metrics of one model on one evaluation set."""

    name: str
    rows: int
    positives: int
    auc: float
    ks: float
    gini: float
    top10_rate: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate(y: Any, score: Any, name: str = "model") -> ModelEval:
    """AUC, KS, Gini and the top-decile response rate of one score."""
    yy, s = _check(y, score, "evaluation")
    fpr, tpr, _ = roc_curve(yy, s)
    a = _area(fpr, tpr)
    return ModelEval(name, len(yy), int(yy.sum()), a, float(np.max(np.abs(tpr - fpr))), 2 * a - 1,
                     response_rate_top(yy, s, 10.0))


def _auc_ks(m: ModelEval | Mapping[str, Any]) -> tuple[float, float]:
    if isinstance(m, ModelEval):
        return m.auc, m.ks
    try:
        return float(m["auc"]), float(m["ks"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError("compare() needs a ModelEval or a mapping with 'auc' and 'ks'") from exc


def compare(bank_only: ModelEval | Mapping[str, Any], federated: ModelEval | Mapping[str, Any]) -> dict[str, float]:
    """Relative change of AUC and KS from the bank-only to the federated model.

    Returns ``auc_bank_only``, ``auc_federated``, ``auc_change_pct`` = 100·(fed/bank − 1), and
    the same for ``ks``; a change is NaN when the bank-only value is 0.
    """
    (ab, kb), (af, kf) = _auc_ks(bank_only), _auc_ks(federated)

    def pct(new: float, old: float) -> float:
        return 100.0 * (new / old - 1.0) if old else float("nan")

    return {"auc_bank_only": ab, "auc_federated": af, "auc_change_pct": pct(af, ab),
            "ks_bank_only": kb, "ks_federated": kf, "ks_change_pct": pct(kf, kb)}


#: Each federated model's bank-only counterpart (same algorithm, split and parameters), by the
#: model names the pipeline's steps use.
BANK_ONLY: dict[str, str] = {"lr": "bank_only", "boost": "bank_only_boost"}


def metrics_frame(evals: Sequence[ModelEval], baseline: str | Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per model; with ``baseline`` also the relative change of AUC and KS (column
    ``vs``: the model compared against).

    ``baseline`` is one model name (every model against it), or a mapping from model to its own
    baseline (e.g. :data:`BANK_ONLY`); models without one get no change.
    """
    if not evals:
        raise DataError("no models to tabulate")
    df = pd.DataFrame([e.as_dict() for e in evals])
    if baseline is None:
        return df
    by_name = {e.name: e for e in evals}
    if isinstance(baseline, str):
        if baseline not in by_name:
            raise DataError(f"baseline model {baseline!r} is not among {list(by_name)}")
        pairs = {e.name: baseline for e in evals}
    else:
        missing = sorted({b for m, b in baseline.items() if m in by_name and b not in by_name})
        if missing:
            raise DataError(f"baseline models {missing} are not among {list(by_name)}")
        pairs = {m: b for m, b in baseline.items() if m in by_name}
    ch = [compare(by_name[pairs[e.name]], e) if e.name in pairs else None for e in evals]
    df["vs"] = [pairs.get(e.name, "") for e in evals]
    df["auc_change_pct"] = [c["auc_change_pct"] if c else np.nan for c in ch]
    df["ks_change_pct"] = [c["ks_change_pct"] if c else np.nan for c in ch]
    return df


__all__ = ["BANK_ONLY", "PSI_EPSILON", "ModelEval", "ThresholdMetrics", "at_threshold", "auc", "check_scores", "compare",
           "confusion_matrix", "evaluate", "gini", "ks", "ks_curve", "lift_table", "metrics_frame",
           "population_stability_index", "precision_recall", "quantile_edges", "response_rate_top", "roc_curve",
           "score_bands", "stability_table"]
