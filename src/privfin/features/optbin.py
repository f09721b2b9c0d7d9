"""Label-aware optimal binning (chi-merge, monotonic WOE) of every party's features.

Roles (one function each, taking only that party's own data):

- :func:`optbin_active` ``(chan, y, binner, X_fine, params)`` at the label holder;
- :func:`optbin_passive` ``(chan, binner, X_fine, params)`` at every feature holder.

``binner`` is the party's own :class:`~privfin.features.binning.Binner` fitted with *fine* bins
(e.g. 20 quantile bins, :meth:`OptBinParams.fine_binner`) and ``X_fine`` its bin indices on the
aligned rows. The merging itself, :func:`merge_bins`, is plain math on per-bin counts: the
oracle runs it centrally on the same fine bins' counts.

Protocol
--------
1. **Fine counts**: the federated WOE protocol (:func:`privfin.features.federated.woe_active` /
   :func:`~privfin.features.federated.woe_passive`, never WOE-sharing in this round) gives the
   label holder the rows and events of every fine bin of every feature; fine bins hold at least
   ``fine_min_frac`` of the rows (checked on both sides by that protocol).
2. **Layout**: each passive party sends, per feature alias, whether its fine bins are ordered
   intervals (numeric) or unordered groups (categorical), and the index of its separate
   missing-value bin, if any — nothing else (no edges, no categories, no names).
3. **Merging** at the label holder, on anonymous bin indices and counts only
   (:func:`merge_bins`): ordered bins merge only with neighbours; unordered bins are sorted by
   event rate first; the missing bin stays apart if it is large enough, else joins the group of
   the closest event rate. Bins below the minimum size (``min_bin_frac``, default 5% of rows) are
   merged first, then the adjacent pair of the lowest chi-square until at most ``max_bins``
   remain and (optionally) every pair differs with chi-square >= ``chi_threshold``; with
   ``method="monotonic"`` pairs that break a monotonic event rate are merged too.
4. **Merge map**: the label holder sends each passive party, per feature, the map fine bin ->
   coarse bin (and, with ``share_woe``, the WOE of the coarse bins). The passive party re-bins
   locally (:func:`coarsen`: its edges and categories merged accordingly) and checks that every
   coarse bin holds at least the minimum rows. The label holder computes the coarse
   WOE/IV/AUC/KS from the fine counts summed by the map (no second round of encryption).

Security
--------
Semi-honest parties; the key pair of step 1 is the label holder's, fresh per run.

- **Label holder** learns what the WOE protocol discloses for the *fine* bins (rows and events
  per fine bin, every fine bin at least ``fine_min_frac`` of the rows, under aliases), plus per
  feature whether it is numeric or categorical and which fine bin holds the missing values. It
  never receives edges, categories, names or raw values.
- **Passive party** receives what the WOE protocol sends (public key, label ciphertexts) and the
  merge map of its own features (kind ``aggregate``). The map depends on the labels: it tells
  which neighbouring fine bins have similar event rates (for categorical features, the order
  of its groups by event rate). With ``share_woe`` it also gets the WOE of its coarse bins (see
  :mod:`privfin.features.federated`). Passive parties learn nothing about each other.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from privfin.errors import DataError, ProtocolError
from privfin.features.binning import Binner, ColumnBins, check_bin_matrix
from privfin.features.federated import FeatureWoe, PassiveWoeResult, WoeParams, WoeResult, woe_active, woe_passive
from privfin.features.woe import bin_stats
from privfin.transport.base import Channel, Kind

TAG_LAYOUT, TAG_MAP = "optbin/layout", "optbin/map"

MergeMethod = Literal["chimerge", "monotonic"]


@dataclass(frozen=True)
class OptBinParams:
    """Optimal-binning parameters; both sides must agree on the fine and coarse minimum sizes."""

    fine_bins: int = 20                # fine quantile/width bins made by each owner
    fine_min_frac: float = 0.01        # minimum rows per fine bin (what the label holder sees)
    max_bins: int = 10                 # at most this many coarse bins (plus a separate missing bin)
    min_bin_frac: float = 0.05         # minimum rows per coarse bin, enforced on both sides
    method: MergeMethod = "chimerge"   # "monotonic": chi-merge, then force a monotonic event rate
    chi_threshold: float | None = None  # also merge pairs with chi-square below this

    def __post_init__(self) -> None:
        if self.method not in ("chimerge", "monotonic"):
            raise ValueError(f"method must be 'chimerge' or 'monotonic' (got {self.method!r})")
        if self.fine_bins < 2 or self.max_bins < 1:
            raise ValueError("fine_bins must be >= 2 and max_bins >= 1")
        if not 0.0 <= self.fine_min_frac <= self.min_bin_frac < 1.0:
            raise ValueError("need 0 <= fine_min_frac <= min_bin_frac < 1")

    def fine_binner(self, method: str = "quantile", categorical: list[str] | tuple[str, ...] = ()) -> Binner:
        """The owner's (unfitted) fine binner."""
        return Binner(method, self.fine_bins, min_bin_frac=self.fine_min_frac,  # type: ignore[arg-type]
                      categorical=categorical)

    def fine_woe(self, woe: WoeParams) -> WoeParams:
        """Parameters of the fine-count round: never shares WOE, fine minimum size."""
        return dataclasses.replace(woe, share_woe=False, min_bin_frac=self.fine_min_frac, min_bin_count=None)

    def coarse_min(self, n_rows: int) -> int:
        return WoeParams(min_bin_frac=self.min_bin_frac).min_count(n_rows)


# ------------------------------------------------------------------------------ the plain math

def _chi2(e: np.ndarray, t: np.ndarray) -> float:
    """Chi-square statistic of the 2 x 2 table of two bins (events / non-events)."""
    obs = np.array([[e[0], t[0] - e[0]], [e[1], t[1] - e[1]]], dtype=np.float64)
    tot = obs.sum()
    if tot <= 0:
        return 0.0
    exp = obs.sum(axis=1, keepdims=True) * obs.sum(axis=0, keepdims=True) / tot
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(exp > 0, (obs - exp) ** 2 / exp, 0.0)
    return float(terms.sum())


def merge_bins(events: np.ndarray, totals: np.ndarray, *, ordered: bool = True, missing_bin: int | None = None,
               max_bins: int = 10, min_count: int = 1, method: MergeMethod = "chimerge",
               chi_threshold: float | None = None) -> np.ndarray:
    """Map fine bin -> coarse bin from per-bin counts only (the label holder's merging, and the oracle).

    Coarse bins are numbered in merge order (ordered bins: increasing; unordered: by event rate);
    a separate missing bin, if kept apart, comes last. Deterministic: ties go to the lowest index.
    """
    ev = np.asarray(events, dtype=np.int64)
    tot = np.asarray(totals, dtype=np.int64)
    k = len(tot)
    if ev.shape != (k,) or np.any(ev < 0) or np.any(ev > tot) or np.any(tot < 0):
        raise DataError("per-bin events must lie between 0 and the bin's rows")
    if missing_bin is not None and not 0 <= missing_bin < k:
        raise DataError("missing_bin is not one of the bins")
    idx = [b for b in range(k) if b != missing_bin]
    rate = ev / np.maximum(tot, 1)
    if not ordered:
        idx.sort(key=lambda b: (rate[b], b))
    groups = [[b] for b in idx]
    ge = [int(ev[b]) for b in idx]
    gt = [int(tot[b]) for b in idx]

    def chi(i: int) -> float:
        return _chi2(np.array(ge[i:i + 2]), np.array(gt[i:i + 2]))

    def merge(i: int) -> None:  # groups i and i+1
        groups[i] += groups.pop(i + 1)
        ge[i] += ge.pop(i + 1)
        gt[i] += gt.pop(i + 1)

    while len(groups) > 1:
        small = [i for i in range(len(groups)) if gt[i] < min_count]
        if small:
            i = min(small, key=lambda j: (gt[j], j))
            if i == 0:
                merge(0)
            elif i == len(groups) - 1:
                merge(i - 1)
            else:
                merge(i - 1 if chi(i - 1) <= chi(i) else i)
            continue
        chis = [chi(i) for i in range(len(groups) - 1)]
        m = int(np.argmin(chis))
        if len(groups) > max_bins or (chi_threshold is not None and chis[m] < chi_threshold):
            merge(m)
            continue
        if method == "monotonic":
            r = np.array(ge) / np.array(gt)
            direction = 1.0 if r[-1] >= r[0] else -1.0
            bad = [i for i in range(len(groups) - 1) if (r[i + 1] - r[i]) * direction < 0]
            if bad:
                merge(min(bad, key=lambda i: (chis[i], i)))
                continue
        break

    out = np.empty(k, dtype=np.int64)
    for c, g in enumerate(groups):
        out[g] = c
    if missing_bin is not None:
        if tot[missing_bin] >= min_count or not groups:
            out[missing_bin] = len(groups)
        else:  # too small to stand alone: the group of the closest event rate
            r = np.array(ge) / np.maximum(np.array(gt), 1)
            out[missing_bin] = int(np.argmin(np.abs(r - rate[missing_bin])))
    return out


def column_layout(cb: ColumnBins) -> tuple[bool, int | None]:
    """``(ordered, separate missing bin or None)`` of one fitted column: what the label holder is told."""
    if cb.kind == "numeric":
        n_main = 0 if cb.edges is None else len(cb.edges) + 1
    else:
        n_main = (max(cb.categories.values()) + 1) if cb.categories else 0
        if cb.other_bin is not None:
            n_main = max(n_main, cb.other_bin + 1)
    sep = cb.missing_bin if cb.missing_bin is not None and cb.missing_bin >= n_main else None
    return cb.kind == "numeric", sep


def _coarsen_column(cb: ColumnBins, m: np.ndarray) -> ColumnBins:
    m = np.asarray(m, dtype=np.int64)
    n_coarse = int(m.max()) + 1 if len(m) else 0
    counts = np.bincount(m, weights=cb.counts, minlength=n_coarse).round().astype(np.int64)
    new = ColumnBins(cb.name, cb.kind, n_coarse, counts)
    if cb.kind == "numeric" and cb.edges is not None:
        n_int = len(cb.edges) + 1
        keep = [i for i in range(n_int - 1) if m[i] != m[i + 1]]
        if np.any(np.diff(m[:n_int]) < 0) or (n_int and (m[0] != 0 or len(keep) != int(m[n_int - 1]))):
            raise ProtocolError(f"the merge map of an ordered feature is not contiguous ({cb.name!r} at its owner)")
        new.edges = np.asarray(cb.edges, dtype=np.float64)[keep]
    elif cb.kind == "categorical":
        new.categories = {c: int(m[b]) for c, b in cb.categories.items()}
        new.other_bin = None if cb.other_bin is None else int(m[cb.other_bin])
    new.missing_bin = None if cb.missing_bin is None else int(m[cb.missing_bin])
    new.default_bin = int(np.argmax(counts)) if n_coarse else 0
    return new


def coarsen(binner: Binner, maps: list[np.ndarray]) -> Binner:
    """A copy of a fitted fine ``binner`` whose bins are merged by ``maps`` (one per column).

    ``coarsen(b, maps).transform(X)[:, j] == maps[j][b.transform(X)[:, j]]``.
    """
    names = [str(c) for c in binner.feature_names_in_]
    if len(maps) != len(names):
        raise ProtocolError("one merge map per feature is needed")
    out = copy.copy(binner)
    out.bins_ = {}
    for nm, m in zip(names, maps):
        cb = binner.bins_[nm]
        m = np.asarray(m, dtype=np.int64)
        if m.shape != (cb.n_bins,) or (len(m) and (m.min() < 0 or set(np.unique(m).tolist()) != set(range(m.max() + 1)))):
            raise ProtocolError("a merge map does not match this party's fine bins")
        out.bins_[nm] = _coarsen_column(cb, m)
    out.n_bins_ = np.array([out.bins_[c].n_bins for c in names], dtype=np.int64)
    return out


def _apply_maps(X_fine: np.ndarray, maps: list[np.ndarray]) -> np.ndarray:
    cols = [np.asarray(m, dtype=np.int64)[X_fine[:, j].astype(np.int64)] for j, m in enumerate(maps)]
    X = np.column_stack(cols) if cols else np.empty((len(X_fine), 0), dtype=np.int64)
    return X.astype(np.uint8 if X.size == 0 or X.max() < 255 else np.uint16)


def _merge_all(stats: list[tuple[np.ndarray, np.ndarray]], layouts: list[tuple[bool, int | None]], p: OptBinParams,
               min_count: int) -> list[np.ndarray]:
    return [merge_bins(e, t, ordered=o, missing_bin=mb, max_bins=p.max_bins, min_count=min_count,
                       method=p.method, chi_threshold=p.chi_threshold) for (e, t), (o, mb) in zip(stats, layouts)]


# ------------------------------------------------------------------------------ results

@dataclass
class OptBinResult:
    """At the label holder: coarse WOE/IV of every feature, the fine counts and the merge maps."""

    woe: WoeResult                      # coarse bins, every party's features (aliases for passive ones)
    fine: WoeResult                     # the fine-count round
    maps: dict[str, np.ndarray]         # feature / alias -> fine bin -> coarse bin
    binner: Binner                      # own coarse binner (private)
    bins: np.ndarray                    # own coarse bin indices
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class PassiveOptBinResult:
    """At a passive party: its coarse binner and bins, the maps, and the coarse WOE if shared."""

    aliases: list[str]
    maps: list[np.ndarray]
    binner: Binner
    bins: np.ndarray
    woe: PassiveWoeResult
    timings: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------------ roles

def optbin_active(chan: Channel, y: np.ndarray, binner: Binner, X_fine: np.ndarray, params: OptBinParams | None = None,
                  woe: WoeParams | None = None, *, passive: list[str] | None = None) -> OptBinResult:
    """Label holder: optimal bins of its own and every passive party's features (see module doc)."""
    p = params or OptBinParams()
    wp = woe or WoeParams()
    t0 = time.perf_counter()
    names = [str(c) for c in binner.feature_names_in_]
    peers = list(passive) if passive is not None else list(chan.peers)
    fine = woe_active(chan, y, X_fine, p.fine_woe(wp), feature_names=names, passive=peers)
    n = len(np.asarray(y))
    min_count = p.coarse_min(n)
    own_stats = [(fine.features[nm].stats.events, fine.features[nm].stats.totals) for nm in names]
    own_maps = _merge_all(own_stats, [column_layout(binner.bins_[nm]) for nm in names], p, min_count)
    maps: dict[str, np.ndarray] = dict(zip(names, own_maps))
    features: dict[str, FeatureWoe] = {}
    for nm, m in maps.items():
        features[nm] = FeatureWoe(chan.party, nm, _coarse_stats(fine.features[nm], m))
    own_binner = coarsen(binner, own_maps)
    X_own = _apply_maps(check_bin_matrix(X_fine, n)[0], own_maps)
    for peer in peers:
        msg = chan.recv(peer, TAG_LAYOUT, expect=dict)
        try:
            aliases = [str(a) for a in msg["aliases"]]
            ordered = [bool(v) for v in msg["ordered"]]
            missing = [int(v) for v in msg["missing_bin"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed bin layout from '{peer}': {exc}") from exc
        theirs = [a for a, f in fine.features.items() if f.party == peer]
        if aliases != theirs or len(ordered) != len(aliases) or len(missing) != len(aliases):
            raise ProtocolError(f"the bin layout from '{peer}' does not match its features")
        stats = [(fine.features[a].stats.events, fine.features[a].stats.totals) for a in aliases]
        if any(not -1 <= mb < len(t) for mb, (_, t) in zip(missing, stats)):
            raise ProtocolError(f"the bin layout from '{peer}' names a missing bin it does not have")
        pm = _merge_all(stats, [(o, None if mb < 0 else mb) for o, mb in zip(ordered, missing)], p, min_count)
        woes = []
        for a, m in zip(aliases, pm):
            maps[a] = m
            features[a] = FeatureWoe(peer, a, _coarse_stats(fine.features[a], m))
            woes.append(features[a].stats.woe)
        payload: dict[str, object] = {"maps": pm}
        if wp.share_woe:
            payload["woe"] = woes
        chan.send(peer, TAG_MAP, payload, kind=Kind.AGGREGATE)
    own_woe = {nm: features[nm].stats.woe for nm in names}
    tm = {"fine_s": fine.timings.get("total_s", 0.0), "total_s": time.perf_counter() - t0}
    return OptBinResult(WoeResult(features, own_woe, tm), fine, maps, own_binner, X_own, tm)


def _coarse_stats(f: FeatureWoe, m: np.ndarray):  # -> BinStats
    k = int(m.max()) + 1
    e = np.bincount(m, weights=f.stats.events, minlength=k).round().astype(np.int64)
    t = np.bincount(m, weights=f.stats.totals, minlength=k).round().astype(np.int64)
    return bin_stats(e, t)


def optbin_passive(chan: Channel, binner: Binner, X_fine: np.ndarray, params: OptBinParams | None = None,
                   woe: WoeParams | None = None, *, active: str | None = None,
                   alias_prefix: str | None = None) -> PassiveOptBinResult:
    """Feature holder: fine counts via the WOE protocol, then re-binning by the label holder's maps."""
    p = params or OptBinParams()
    wp = woe or WoeParams()
    t0 = time.perf_counter()
    act = active or chan.peers[0]
    names = [str(c) for c in binner.feature_names_in_]
    X, nb = check_bin_matrix(X_fine)
    if X.shape[1] != len(names) or any(int(k) > binner.bins_[nm].n_bins for k, nm in zip(nb, names)):
        raise DataError("X_fine must be the binner's bin indices of this party's features")
    fine = woe_passive(chan, X, p.fine_woe(wp), active=act, alias_prefix=alias_prefix)
    lay = [column_layout(binner.bins_[nm]) for nm in names]
    chan.send(act, TAG_LAYOUT, {"aliases": fine.aliases, "ordered": np.array([o for o, _ in lay], dtype=bool),
                                "missing_bin": np.array([-1 if mb is None else mb for _, mb in lay], dtype=np.int64)},
              kind=Kind.AGGREGATE)
    msg = chan.recv(act, TAG_MAP, expect=dict)
    try:
        maps = [np.asarray(m, dtype=np.int64) for m in msg["maps"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"malformed merge maps: {exc}") from exc
    if len(maps) != len(names):
        raise ProtocolError("the merge maps do not match this party's features")
    coarse = coarsen(binner, maps)  # checks every map against the fine bins
    Xc = _apply_maps(X, maps)
    min_count = p.coarse_min(len(X))
    for j, k in enumerate(coarse.n_bins_):
        if int(np.bincount(Xc[:, j].astype(np.int64), minlength=int(k)).min(initial=min_count)) < min_count:
            raise ProtocolError(f"the merge map of feature {fine.aliases[j]!r} leaves a bin below {min_count} rows")
    woe_vals = None
    if wp.share_woe:
        woe_vals = [np.asarray(w, dtype=np.float64) for w in msg.get("woe", [])]
        if len(woe_vals) != len(names) or any(len(w) != int(k) for w, k in zip(woe_vals, coarse.n_bins_)):
            raise ProtocolError("WOE values from the active party do not match this party's coarse bins")
    tm = {"total_s": time.perf_counter() - t0}
    return PassiveOptBinResult(fine.aliases, maps, coarse, Xc, PassiveWoeResult(fine.aliases, woe_vals, tm), tm)


__all__ = ["OptBinParams", "OptBinResult", "PassiveOptBinResult", "coarsen", "column_layout", "merge_bins",
           "optbin_active", "optbin_passive"]
