"""Feature screening at the label holder: statistics per feature and a selection policy.

Statistics (one row per feature of every party, :func:`screen_stats`):

- ``missing_rate`` and ``unique_ratio`` (distinct non-missing values / rows) are computed by the
  owner on its own aligned rows (:func:`feature_profile`) and sent as two numbers per feature;
- ``iv``, ``auc``, ``ks`` from the per-bin counts (:mod:`privfin.features.woe`);
- a univariate logistic regression of the label on the WOE-coded feature, fitted exactly from
  the per-bin counts (:func:`univariate_lr`: Newton/IRLS on the grouped data, which has the
  likelihood of the row-level data), with its coefficient, standard error and Wald p-value.
  On a WOE-coded feature the fitted coefficient is 1 (the WOE is the bin's log-odds minus the
  overall log-odds) up to the smoothing of bins without events or non-events; the p-value and
  standard error are the informative part.

:class:`SelectionPolicy` then drops features (missing rate, IV, the weaker of each strongly
correlated pair, top k by IV) and gives a reason for each dropped one.

Protocol (:func:`screen_active` / :func:`screen_passive`), after the WOE (or optimal-binning) run:

1. each passive party sends, per alias, its features' missing rate and unique ratio and — only
   if its own job parameters allow it (``reveal_names``) — its feature names;
2. only with a cross-party correlation (``correlate`` given to both roles): the label holder
   applies the univariate rules (missing rate, IV) and tells each passive party which of its own
   aliases are correlation candidates (:meth:`SelectionPolicy.candidates`: its own survivors
   and at most ``corr_candidates`` passive ones, by IV), as a list in the passive party's
   own column order; every party then runs the correlation over its candidates only (the
   ``correlate`` callbacks, e.g. :mod:`privfin.features.correlation`). A passive party without
   candidates takes no part; a label holder without candidates correlates its best own feature
   by IV as a carrier (the cross-party protocol needs a column there; the policy reads none of
   its correlations);
3. the label holder builds the selection report and tells each passive party which of its own
   features were kept.

Security
--------
- **Label holder** learns, per passive feature (alias): its missing rate and number of distinct
  values (as a ratio to the rows) — two aggregates over all aligned rows —, and the feature's
  name only where its owner allows it. Everything else comes from the WOE protocol.
- **Passive party** learns which of its own features the policy kept (a list of its own
  aliases) and, with a correlation, before that which of its own features survived the
  univariate rules (and the ``corr_candidates`` cut): a set of its own aliases, not their IV
  order. Nothing about the labels beyond these two sets, nothing about other parties' features.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from privfin.errors import DataError, ProtocolError
from privfin.features.federated import WoeResult
from privfin.transport.base import Channel, Kind

TAG_PROFILE, TAG_KEPT, TAG_CANDIDATES = "screen/profile", "screen/kept", "screen/candidates"


# ------------------------------------------------------------------------------ per-feature math

def feature_profile(frame: pd.DataFrame) -> pd.DataFrame:
    """Missing rate and unique ratio of each column (missing: NaN/None/NA, +-inf in numeric columns)."""
    n = len(frame)
    rows = []
    for c in frame.columns:
        s = frame[c]
        miss = s.isna().to_numpy()
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            miss = ~np.isfinite(x)
        rows.append({"feature": str(c), "missing_rate": float(miss.mean()) if n else math.nan,
                     "unique_ratio": float(s[~miss].nunique()) / n if n else math.nan})
    return pd.DataFrame(rows, columns=["feature", "missing_rate", "unique_ratio"]).set_index("feature")


@dataclass(frozen=True)
class UnivariateLR:
    """``logit P(y=1) = intercept + coef * x`` fitted by maximum likelihood."""

    coef: float
    intercept: float
    se: float
    z: float
    p_value: float
    iterations: int


def univariate_lr(events: np.ndarray, totals: np.ndarray, x: np.ndarray, *, tol: float = 1e-12,
                  max_iter: int = 100) -> UnivariateLR:
    """Exact univariate logistic regression from grouped data (rows ``totals[b]`` with value ``x[b]``,
    ``events[b]`` of them with ``y = 1``): Newton/IRLS; SE from the inverse Fisher information;
    two-sided Wald p-value ``erfc(|z| / sqrt 2)``. NaN where the slope is not identified
    (fewer than two distinct values of ``x``)."""
    e = np.asarray(events, dtype=np.float64)
    t = np.asarray(totals, dtype=np.float64)
    xv = np.asarray(x, dtype=np.float64)
    if not (e.shape == t.shape == xv.shape) or e.ndim != 1:
        raise DataError("events, totals and x must be 1-D arrays of the same length")
    nan = UnivariateLR(math.nan, math.nan, math.nan, math.nan, math.nan, 0)
    used = t > 0
    if len(np.unique(xv[used])) < 2 or e.sum() in (0.0, t.sum()):
        return nan
    A = np.column_stack([np.ones_like(xv), xv])[used]
    e, t = e[used], t[used]
    beta = np.array([math.log(e.sum() / (t.sum() - e.sum())), 0.0])
    it = 0
    for it in range(1, max_iter + 1):
        p = 1.0 / (1.0 + np.exp(-(A @ beta)))
        H = A.T @ (A * (t * p * (1 - p))[:, None])
        try:
            step = np.linalg.solve(H, A.T @ (e - t * p))
        except np.linalg.LinAlgError:
            return nan
        beta = beta + step
        if np.max(np.abs(step)) < tol * (1 + np.max(np.abs(beta))):
            break
    p = 1.0 / (1.0 + np.exp(-(A @ beta)))
    H = A.T @ (A * (t * p * (1 - p))[:, None])
    try:
        cov = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return nan
    se = float(math.sqrt(cov[1, 1])) if cov[1, 1] > 0 else math.nan
    z = float(beta[1] / se) if se > 0 else math.nan
    return UnivariateLR(float(beta[1]), float(beta[0]), se, z, math.erfc(abs(z) / math.sqrt(2.0)), it)


STAT_COLUMNS = ["party", "feature", "bins", "iv", "auc", "ks", "missing_rate", "unique_ratio", "coef", "se",
                "p_value"]


def screen_stats(woe: WoeResult, profiles: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per feature of every party (keys of ``woe.features``: own names and aliases).

    ``profiles`` holds ``missing_rate`` / ``unique_ratio`` indexed by the same keys (missing
    rows give NaN)."""
    rows = []
    for k, f in woe.features.items():
        s = f.stats
        lr = univariate_lr(s.events, s.totals, s.woe)
        rows.append({"party": f.party, "feature": k, "bins": len(s.woe), "iv": s.iv, "auc": s.auc, "ks": s.ks,
                     "missing_rate": math.nan, "unique_ratio": math.nan, "coef": lr.coef, "se": lr.se,
                     "p_value": lr.p_value})
    df = pd.DataFrame(rows, columns=STAT_COLUMNS)
    if profiles is not None and len(df):
        for col in ("missing_rate", "unique_ratio"):
            df[col] = df["feature"].map(profiles[col]).astype(np.float64)
    return df


# ------------------------------------------------------------------------------ the policy

@dataclass(frozen=True)
class SelectionPolicy:
    """Which features to keep, applied in this order (each rule sees the survivors of the previous):

    1. drop ``missing_rate > max_missing``;
    2. drop ``iv < min_iv``;
    3. only with a correlation: the survivors are the *correlation candidates*; with
       ``corr_candidates = K`` and a ``label_holder``, its own survivors and only the top K other
       survivors by IV (pooled over the passive parties) are -- the cost of the correlation grows
       with the passive columns; up to 31 own columns share one ciphertext --, and the other
       passive survivors are dropped ("not among the top K passive features by IV"); without a
       ``label_holder`` the top K of all survivors are;
    4. by decreasing IV, drop a candidate whose ``|r|`` with an already kept feature exceeds
       ``max_corr`` (the weaker of each such pair);
    5. keep at most ``top_k`` by IV (``None``: no limit).

    A rule whose input is missing (NaN missing rate, no correlation) drops nothing. Correlations
    are read among the candidates only: ``corr_partner`` / ``corr_abs`` are the strongest other
    candidate of a candidate and empty for every other feature, so a correlation matrix over the
    candidates alone (:meth:`candidates`) gives the same table as one over every feature.
    """

    max_missing: float = 0.95
    min_iv: float = 0.02
    max_corr: float = 0.7
    top_k: int | None = None
    corr_candidates: int | None = None

    def __post_init__(self) -> None:
        if self.corr_candidates is not None and self.corr_candidates < 1:
            raise ValueError("corr_candidates must be at least 1 (or None: every survivor)")

    def _univariate(self, df: pd.DataFrame) -> list[str]:
        """Reasons of rules 1-2 per row ("" for a survivor)."""
        reason: list[str] = [""] * len(df)
        for i, (mr, iv) in enumerate(zip(df["missing_rate"], df["iv"])):
            if pd.notna(mr) and mr > self.max_missing:
                reason[i] = f"missing rate {mr:.3f} > {self.max_missing:g}"
            elif not iv >= self.min_iv:
                reason[i] = f"IV {iv:.4f} < {self.min_iv:g}"
        return reason

    def _ranked_survivors(self, df: pd.DataFrame, reason: list[str]) -> list[int]:
        return sorted((i for i in range(len(df)) if not reason[i]), key=lambda i: (-df.at[i, "iv"], i))

    def _split(self, df: pd.DataFrame, ranked: list[int], label_holder: str | None) -> tuple[list[int], list[int]]:
        """(candidates, cut) of the ranked survivors (rule 3)."""
        if self.corr_candidates is None:
            return ranked, []
        own = {i for i in ranked if label_holder is not None and df.at[i, "party"] == label_holder}
        keep = own | set([i for i in ranked if i not in own][:self.corr_candidates])
        return [i for i in ranked if i in keep], [i for i in ranked if i not in keep]

    def candidates(self, stats: pd.DataFrame, label_holder: str | None = None) -> list[str]:
        """Keys (``stats["feature"]``) to correlate, by decreasing IV: the survivors of rules 1-2,
        cut by ``corr_candidates`` (rule 3)."""
        df = stats.reset_index(drop=True)
        cand, _ = self._split(df, self._ranked_survivors(df, self._univariate(df)), label_holder)
        return [str(df.at[i, "feature"]) for i in cand]

    def apply(self, stats: pd.DataFrame, corr: pd.DataFrame | None = None, *,
              label_holder: str | None = None) -> pd.DataFrame:
        """``stats`` plus ``corr_partner``, ``corr_abs``, ``kept`` and ``reason`` (empty when kept)."""
        df = stats.copy().reset_index(drop=True)
        keys = df["feature"].tolist()
        reason = self._univariate(df)
        order = self._ranked_survivors(df, reason)
        if corr is not None:
            order, cut = self._split(df, order, label_holder)
            who = "passive features" if label_holder is not None else "features"
            for i in cut:
                reason[i] = f"not among the top {self.corr_candidates} {who} by IV (correlation candidates)"
        partner, rabs = _strongest_partners(keys, corr, order)
        df["corr_partner"] = partner
        df["corr_abs"] = rabs
        kept: list[int] = []
        for i in order:
            worst = None
            if corr is not None:
                for j in kept:
                    r = _corr_at(corr, keys[i], keys[j])
                    if r is not None and abs(r) > self.max_corr and (worst is None or abs(r) > worst[1]):
                        worst = (j, abs(r))
            if worst is not None:
                reason[i] = f"|r| {worst[1]:.3f} > {self.max_corr:g} with {keys[worst[0]]} (higher IV)"
            else:
                kept.append(i)
        if self.top_k is not None:
            for rank, i in enumerate(kept):
                if rank >= self.top_k:
                    reason[i] = f"not in the top {self.top_k} by IV"
        df["kept"] = [not r for r in reason]
        df["reason"] = reason
        return df


def _corr_at(corr: pd.DataFrame, a: str, b: str) -> float | None:
    if a not in corr.index or b not in corr.columns:
        return None
    v = float(corr.at[a, b])
    return None if math.isnan(v) else v


def _strongest_partners(keys: list[str], corr: pd.DataFrame | None,
                        among: list[int]) -> tuple[list[Any], list[float]]:
    """For each row in ``among``: its strongest correlated other row of ``among``."""
    partner: list[Any] = [None] * len(keys)
    rabs = [math.nan] * len(keys)
    if corr is None:
        return partner, rabs
    cand = [keys[j] for j in among]
    for i in among:
        a = keys[i]
        best = None
        for b in cand:
            if b == a:
                continue
            r = _corr_at(corr, a, b)
            if r is not None and (best is None or abs(r) > best[1]):
                best = (b, abs(r))
        if best is not None:
            partner[i], rabs[i] = best
    return partner, rabs


# ------------------------------------------------------------------------------ roles

Correlate = Callable[[dict[str, list[str]]], "pd.DataFrame | None"]


def screen_active(chan: Channel, woe: WoeResult, own_frame: pd.DataFrame, policy: SelectionPolicy | None = None,
                  corr: pd.DataFrame | None = None, *, passive: list[str] | None = None,
                  correlate: Correlate | None = None) -> pd.DataFrame:
    """Label holder: the selection table (see :class:`SelectionPolicy`) over every party's features.

    ``own_frame`` is this party's own aligned feature table (for its missing rates); ``corr`` an
    optional correlation matrix indexed by the same keys as ``woe.features``, or ``correlate``: a
    callback given the correlation candidates per party (``{party: keys}``, own party included;
    a party with an empty list takes no part) that runs the correlation and returns that matrix
    (or None); the passive parties then need ``correlate`` too; ``attrs["corr_candidates"]`` of
    the result then counts the candidates correlated. The returned frame has a ``name`` column:
    own names, passive names where their owner revealed them, else aliases.
    """
    pol = policy or SelectionPolicy()
    peers = list(passive) if passive is not None else list(chan.peers)
    prof = [feature_profile(own_frame)]
    names: dict[str, str] = {}
    for peer in peers:
        msg = chan.recv(peer, TAG_PROFILE, expect=dict)
        try:
            aliases = [str(a) for a in msg["aliases"]]
            mr = np.asarray(msg["missing_rate"], dtype=np.float64)
            ur = np.asarray(msg["unique_ratio"], dtype=np.float64)
            nm = msg.get("names")
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed feature profile from '{peer}': {exc}") from exc
        theirs = [k for k, f in woe.features.items() if f.party == peer]
        if aliases != theirs or mr.shape != (len(aliases),) or ur.shape != (len(aliases),):
            raise ProtocolError(f"the feature profile from '{peer}' does not match its features")
        if nm is not None:
            if len(nm) != len(aliases):
                raise ProtocolError(f"the feature names from '{peer}' do not match its features")
            names.update({a: str(n) for a, n in zip(aliases, nm)})
        prof.append(pd.DataFrame({"missing_rate": mr, "unique_ratio": ur}, index=pd.Index(aliases, name="feature")))
    stats = screen_stats(woe, pd.concat(prof))
    if correlate is not None:
        if corr is not None:
            raise DataError("give either corr or correlate, not both")
        cand = pol.candidates(stats, chan.party)
        per = {p: [k for k, f in woe.features.items() if f.party == p and k in set(cand)] for p in [chan.party, *peers]}
        own = [k for k, f in woe.features.items() if f.party == chan.party]
        if not per[chan.party] and own and any(per[p] for p in peers):
            # the cross-party protocol needs a column at the label holder: its best own feature
            # by IV is correlated too, as a carrier; the policy reads none of its correlations
            per[chan.party] = [max(own, key=lambda k: (woe.features[k].stats.iv, -own.index(k)))]
        if not per[chan.party]:
            per = {p: [] for p in per}
        for peer in peers:
            chan.send(peer, TAG_CANDIDATES, {"aliases": per[peer]}, kind=Kind.AGGREGATE)
        corr = correlate(per) if per[chan.party] else None
    table = pol.apply(stats, corr, label_holder=chan.party)
    if correlate is not None:
        table.attrs["corr_candidates"] = len(cand) if corr is not None else 0
    table.insert(2, "name", [names.get(k, k) for k in table["feature"]])
    table["corr_partner"] = [names.get(k, k) if isinstance(k, str) else None for k in table["corr_partner"]]
    for peer in peers:
        kept = table.loc[(table["party"] == peer) & table["kept"], "feature"].tolist()
        chan.send(peer, TAG_KEPT, {"kept": kept}, kind=Kind.AGGREGATE)
    return table


def screen_passive(chan: Channel, frame: pd.DataFrame, aliases: list[str], *, active: str | None = None,
                   reveal_names: bool = False, correlate: Callable[[list[str]], None] | None = None) -> list[str]:
    """Feature holder: send its profile (names only if ``reveal_names``); returns its kept feature names.

    ``correlate`` (when the label holder has one too): called with this party's correlation
    candidates (its own aliases, in its column order) unless there are none."""
    act = active or chan.peers[0]
    names = [str(c) for c in frame.columns]
    if len(aliases) != len(names):
        raise DataError("one alias per feature column is needed")
    prof = feature_profile(frame)
    msg: dict[str, Any] = {"aliases": list(aliases), "missing_rate": prof["missing_rate"].to_numpy(),
                           "unique_ratio": prof["unique_ratio"].to_numpy()}
    if reveal_names:
        msg["names"] = names
    chan.send(act, TAG_PROFILE, msg, kind=Kind.AGGREGATE)
    by_alias = dict(zip(aliases, names))
    if correlate is not None:
        cand = chan.recv(act, TAG_CANDIDATES, expect=dict).get("aliases")
        if (not isinstance(cand, list) or len(set(map(str, cand))) != len(cand)
                or any(str(a) not in by_alias for a in cand)):
            raise ProtocolError("the correlation candidates name a feature this party does not have")
        if cand:
            wanted = set(map(str, cand))
            correlate([a for a in aliases if a in wanted])
    got = chan.recv(act, TAG_KEPT, expect=dict)
    kept = [str(a) for a in got.get("kept", [])]
    if any(a not in by_alias for a in kept):
        raise ProtocolError("the kept-feature list names a feature this party does not have")
    return [by_alias[a] for a in kept]


__all__ = ["STAT_COLUMNS", "TAG_CANDIDATES", "Correlate", "SelectionPolicy", "UnivariateLR", "feature_profile", "screen_active", "screen_passive",
           "screen_stats", "univariate_lr"]
