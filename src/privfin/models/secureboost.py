"""SecureBoost training (vertical federated gradient boosting, logloss), any number of passive parties.

Roles (one function each, taking only that party's own data):

- :func:`sb_active` ``(chan, bins_own, y, params)`` at the label holder (the bank);
- :func:`sb_passive` ``(chan, bins_own, params)`` at every feature holder.

Federated prediction: :class:`SBPredictor` at the active party (batch over an aligned set, or by
id), :func:`sb_serve` at every passive party. Each party saves only its own part of the model
(:meth:`ActiveModel.save` / :meth:`PassiveModel.save`, JSON with a format version).

``bins_own`` is the party's own bin-index matrix (rows aligned by PSI, e.g. from
:class:`privfin.features.binning.Binner`); a split candidate is "bin <= b" for a bin
boundary ``b``. Bin edges never leave their owner.

The plain math lives here too (:func:`grad_hess`, :func:`quantize`, :func:`split_gains`,
:func:`leaf_weight`) together with :func:`fit_plain`, a centralized reference implementation of
exactly the same algorithm on the joined bins: the oracle the tests compare against.

Algorithm
---------
XGBoost-style second-order boosting for logloss, margin starting at ``base_margin``:
``g = sigmoid(m) - y``, ``h = sigmoid(m)(1 - sigmoid(m))``; both are rounded to the fixed-point
grid ``2^-frac_bits`` (the same rounding in the reference, so histogram sums are exact integers
on both sides and the federated trees equal the reference bit for bit). For a node with sums
``G, H``, a split into ``(GL, HL), (GR, HR)`` has gain
``0.5 * (GL^2/(HL+lambda) + GR^2/(HR+lambda) - G^2/(H+lambda)) - gamma``; it is allowed only if
both sides have rows, ``HL, HR >= min_child_weight`` and the gain is > 0. The best candidate over
all parties wins (ties: the first in (party, feature, bin) order). Leaves get
``-learning_rate * G / (H + lambda)``. Trees grow level-wise to ``max_depth``.

Options: ``subsample`` (per tree a uniform row sample, drawn by the active party from the public
``seed``: sums, histograms, gains and leaf weights use the sampled rows, every training row
still follows the tree to its leaf), ``colsample_bytree`` (per tree each party draws its own
features from the public seed and its party number; a passive party offers candidates of those
only), early stopping (``early_stopping_rounds`` with a validation set: logloss of the validation
margins after every tree; the model keeps the trees up to the best loss), feature importance
(:meth:`ActiveModel.importance`: split count and gain per party; :meth:`PassiveModel.importance`:
split count per own feature). :func:`fit_plain` implements all of them the same way.

Protocol
--------
1. The active party makes a key pair (Okamoto–Uchiyama by default) and sends every passive party
   the public key and the shape of the job (rows, fixed-point layout).
2. Per tree it encrypts, per (sampled) row, ``(g, h, 1)`` offset-encoded into one packed plaintext
   (:class:`~privfin.crypto.packing.Packer`, :class:`~privfin.crypto.packing.OffsetEncoder`) and
   sends the same ciphertexts to every passive party, once per tree. The encryptions of zero that
   randomize them are made ahead by a background thread while the active party waits for
   histograms, so only ``g^m`` (over the executor) is on the critical path.
3. Per level, for each pair of sibling nodes it asks every passive party for the histograms of the
   *smaller* sibling only (the node's row indices go with the request); the larger sibling's
   histogram is the parent's minus the smaller one, computed by the active party on decrypted
   integers. A passive party computes per (feature, bin) the homomorphic sum of its rows' packed
   ciphertexts (skipping each feature's fullest bin, recovered as the node total minus the
   others), turns them into cumulative ("bin <= b") sums, keeps only real candidates (not the
   last bin of a feature), orders them by a fresh secret permutation per tree, folds several
   candidates into one ciphertext (:meth:`Packer.pack_encrypted`), re-randomizes and returns them.
4. The active party decrypts, checks the ranges (counts within the node, hessians non-negative),
   finds the best split over its own features (in the clear) and every passive party's candidates,
   and tells the owner only "node, candidate number k". The owner maps ``k`` to its private
   ``(feature, bin)`` — among equal-partition bins of that feature, the smallest, so ties resolve
   as in the reference — stores it, and returns which of the node's rows go left.
5. The active party computes leaf weights and updates its margins (it knows every leaf's rows).
6. With a validation set, after every tree each passive party returns, per validation row, the
   bitmask of that tree's leaf positions reachable under its own splits (as in prediction).

Prediction: for a batch (an aligned set, row ``i`` the same id everywhere) or a list of ids, each
passive party returns per row and tree a bitmask over the ``2^depth`` leaf positions of the
complete tree: the positions reachable when its own splits are applied and every other split is
let through both ways (:func:`reachable_masks`). The active party ANDs them with its own; exactly
the one leaf on the row's path remains.

Security
--------
Semi-honest parties; the key pair is made per run and only the active party holds it.

- **Active party** learns, for every node of every tree, its instance space (which rows reach it:
  the standard SecureBoost disclosure) and, for every passive candidate of the nodes it asks
  about, the aggregate sums of g, h and the row count left of the candidate (kind ``aggregate``),
  in a per-tree secret order. It never receives bin edges, thresholds, feature names, raw values,
  or which bin a row is in. Residual: the cumulative counts of the same candidate across the
  nodes of one tree are linked (needed for sibling subtraction), so with many nodes the active
  party could group candidates by monotonicity and guess how a passive feature orders the rows
  inside a tree; the partitions it receives reveal the same kind of information anyway.
- **Passive party** receives the public key, parameters, ciphertexts of ``(g, h, 1)`` (kind
  ``ciphertext``), and in the clear the row indices of the nodes it is asked about and of the
  nodes it splits (instance spaces, kind ``plaintext``), plus the numbers of its own winning
  candidates. It never sees a gradient, hessian, label, leaf weight, or another party's split.
  Instance spaces of a tree do leak something about the labels through the shape of the tree
  (e.g. which of its own bins were split on); this is the disclosure standard SecureBoost makes.
- **Sampling**: the row sample and each party's feature sample come from the public seed; the
  passive party learns the row sample (it would from the node rows anyway) and the active party
  learns how many candidates each passive party offers per tree.
- **Validation and prediction** (kind ``plaintext``): per row and tree, the active party learns
  which leaves are reachable under each passive party's own splits, i.e. the passive party's
  decision at every one of its nodes not cut off by its own higher decisions -- slightly more
  than the row's path (standard SecureBoost reveals the path). It learns no threshold, feature
  or value. A passive party learns the size of the batch, or the ids asked for (single-id
  prediction), never a score or leaf weight. Early stopping reveals the stopping round to the
  passive parties (they drop the later trees).
- **OU caveat** (see :mod:`privfin.crypto.ou`): the key holder decrypts ciphertexts a passive
  party chose but never returns a raw decryption; it returns only a candidate number and node
  row sets it already had. Against a malicious passive party use ``scheme = "paillier"``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import gmpy2
import numpy as np
from gmpy2 import mpz

from privfin.crypto import EncryptedVector, OffsetEncoder, Packer, ZeroPool, keygen, recv_key_setup
from privfin.crypto._he import obj_array
from privfin.errors import CryptoError, DataError, ProtocolError
from privfin.features.binning import check_bin_matrix
from privfin.runtime.executor import get_executor
from privfin.transport.base import Channel, Kind

TAG_SETUP, TAG_GH, TAG_CMD, TAG_HIST, TAG_PART = "sb/setup", "sb/gh", "sb/cmd", "sb/hist", "sb/part"
TAG_VALID = "sb/valid"
LEAF = -1


# ============================================================================== parameters

@dataclass(frozen=True)
class SBParams:
    n_trees: int = 10
    max_depth: int = 3
    learning_rate: float = 0.3
    reg_lambda: float = 1.0
    gamma: float = 0.0
    min_child_weight: float = 1.0
    base_margin: float = 0.0
    frac_bits: int = 24               # fixed-point precision of g and h
    scheme: str = "ou"
    key_bits: int = 2048
    allow_insecure: bool = False      # keys below 2048 bits (tests only)
    subsample: float = 1.0            # share of training rows per tree (public seed)
    colsample_bytree: float = 1.0     # share of each party's own features per tree
    seed: int = 0                     # public seed of both samplings
    early_stopping_rounds: int = 0    # 0: off; else stop after this many trees without a better validation loss

    def check(self) -> None:
        if self.n_trees < 1 or self.max_depth < 1:
            raise DataError("n_trees and max_depth must be >= 1")
        if not self.learning_rate > 0 or self.reg_lambda < 0 or self.gamma < 0 or self.min_child_weight < 0:
            raise DataError("learning_rate must be > 0; reg_lambda, gamma, min_child_weight >= 0")
        if not 8 <= self.frac_bits <= 40:
            raise DataError("frac_bits must be in 8..40")
        if not (0 < self.subsample <= 1 and 0 < self.colsample_bytree <= 1) or self.early_stopping_rounds < 0:
            raise DataError("subsample and colsample_bytree must be in (0, 1]; early_stopping_rounds >= 0")


def row_sample(n: int, params: SBParams, tree: int) -> np.ndarray | None:
    """Sorted training rows of ``tree`` (uniform without replacement, from the public seed), or
    ``None`` for all rows."""
    if params.subsample >= 1.0:
        return None
    k = max(1, round(params.subsample * n))
    return np.sort(np.random.default_rng([params.seed, 1, tree]).choice(n, k, replace=False))


def col_sample(d: int, params: SBParams, tree: int, party: int) -> np.ndarray:
    """Sorted own features party number ``party`` (0 = active) uses in ``tree``; each party draws its
    own locally from the public seed."""
    if params.colsample_bytree >= 1.0 or d == 0:
        return np.arange(d)
    k = max(1, round(params.colsample_bytree * d))
    return np.sort(np.random.default_rng([params.seed, 2, tree, party]).choice(d, k, replace=False))


# ============================================================================== plain math

def sigmoid(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m >= 0, 1.0 / (1.0 + np.exp(-np.abs(m))), np.exp(-np.abs(m)) / (1.0 + np.exp(-np.abs(m))))


def grad_hess(y: np.ndarray, margin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and hessian of logloss with respect to the margin."""
    p = sigmoid(margin)
    return p - np.asarray(y, dtype=np.float64), p * (1.0 - p)


def encoder_for(params: SBParams) -> OffsetEncoder:
    """Offset encoder of g in [-1, 1] and h in [0, 1/4] (one bound for both slots)."""
    return OffsetEncoder(1.0, params.frac_bits)


def quantize(x: np.ndarray, params: SBParams) -> np.ndarray:
    """g or h as integers on the ``2^-frac_bits`` grid, the same rounding as the encryption."""
    enc = encoder_for(params)
    return enc.encode(x) - enc.offset


def split_gains(GL: np.ndarray, HL: np.ndarray, CL: np.ndarray, G: int, H: int, C: int,
                params: SBParams) -> np.ndarray:
    """Gains of candidates from integer (fixed-point) left sums and node totals; -inf if invalid."""
    s = float(1 << params.frac_bits)
    GL_i, HL_i, CL_i = (np.asarray(a, dtype=np.int64) for a in (GL, HL, CL))
    GR_i, HR_i, CR_i = G - GL_i, H - HL_i, C - CL_i
    gl, hl, gr, hr = GL_i / s, HL_i / s, GR_i / s, HR_i / s
    g, h, lam = G / s, H / s, params.reg_lambda
    gain = 0.5 * (gl * gl / (hl + lam) + gr * gr / (hr + lam) - g * g / (h + lam)) - params.gamma
    ok = (CL_i >= 1) & (CR_i >= 1) & (hl >= params.min_child_weight) & (hr >= params.min_child_weight) & (gain > 0)
    return np.where(ok, gain, -np.inf)


def leaf_weight(G: int, H: int, params: SBParams) -> float:
    s = float(1 << params.frac_bits)
    return -params.learning_rate * (G / s) / (H / s + params.reg_lambda)


def _cum_candidates(hist: np.ndarray, n_bins: list[int]) -> np.ndarray:
    """Per-bin sums ``(sum(n_bins), ...)`` -> cumulative sums of candidates "bin <= b", b < last."""
    out, off = [], 0
    for k in n_bins:
        if k > 1:
            out.append(np.cumsum(hist[off:off + k - 1], axis=0))
        off += k
    return np.concatenate(out) if out else np.zeros((0,) + hist.shape[1:], dtype=np.int64)


def _candidate_index(n_bins: list[int]) -> list[tuple[int, int]]:
    return [(j, b) for j, k in enumerate(n_bins) for b in range(k - 1)]


def _canonical_bin(col: np.ndarray, b: int) -> int:
    """Smallest bin giving the same partition of these rows as "bin <= b"."""
    left = col[col <= b]
    return int(left.max()) if left.size else b


# ============================================================================== models

@dataclass
class Tree:
    """Nodes by heap id (root 0, children 2i+1, 2i+2). ``split[i] = (party, ref)``; for the active
    party's own splits and in plain trees ``ref = (feature, bin)``; for passive splits in the active
    party's tree ``ref`` is ``None`` (the owner holds it)."""

    split: dict[int, tuple[int, tuple[int, int] | None]] = field(default_factory=dict)
    leaf: dict[int, float] = field(default_factory=dict)
    gain: dict[int, float] = field(default_factory=dict)


@dataclass
class ActiveModel:
    trees: list[Tree]
    parties: list[str]                 # index 0 = the active party itself
    base_margin: float
    train_margin: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    valid_loss: list[float] = field(default_factory=list)   # per tree, when a validation set was given

    @property
    def depth(self) -> int:
        """Depth of the deepest leaf (the prediction masks cover ``2**depth`` positions)."""
        return max((_node_depth(nid) for t in self.trees for nid in t.leaf), default=0)

    def to_dict(self) -> dict[str, Any]:
        """This party's part only: tree structure with (party, split id), own splits' (feature, bin),
        leaf weights and gains. Passive splits are stored as ``None`` (the owner keeps them)."""
        return {"format": ACTIVE_FORMAT, "version": MODEL_VERSION, "parties": list(self.parties),
                "base_margin": float(self.base_margin),
                "trees": [{"split": [[int(n), int(pi), None if ref is None else [int(ref[0]), int(ref[1])]]
                                     for n, (pi, ref) in sorted(t.split.items())],
                           "leaf": [[int(n), float(w)] for n, w in sorted(t.leaf.items())],
                           "gain": [[int(n), float(g)] for n, g in sorted(t.gain.items())]} for t in self.trees]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActiveModel:
        _check_format(d, ACTIVE_FORMAT)
        try:
            trees = [Tree({int(n): (int(pi), None if ref is None else (int(ref[0]), int(ref[1])))
                           for n, pi, ref in t["split"]},
                          {int(n): float(w) for n, w in t["leaf"]}, {int(n): float(g) for n, g in t["gain"]})
                     for t in d["trees"]]
            model = cls(trees, [str(p) for p in d["parties"]], float(d["base_margin"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed SecureBoost model: {exc}") from exc
        for t in trees:
            _check_tree(t, len(model.parties))
        return model

    def save(self, path: str | Path) -> None:
        _save_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> ActiveModel:
        return cls.from_dict(_load_json(path))

    def importance(self) -> dict[str, dict[str, float]]:
        """Split count and total gain per party."""
        out = {p: {"splits": 0, "gain": 0.0} for p in self.parties}
        for t in self.trees:
            for nid, (pi, _) in t.split.items():
                out[self.parties[pi]]["splits"] += 1
                out[self.parties[pi]]["gain"] += t.gain[nid]
        return out


@dataclass
class PassiveModel:
    splits: dict[tuple[int, int], tuple[int, int]]   # (tree, node) -> private (feature, bin)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """This party's part only: its split id ``(tree, node)`` -> ``(feature, threshold bin)`` table."""
        return {"format": PASSIVE_FORMAT, "version": MODEL_VERSION,
                "splits": [[int(t), int(n), int(j), int(b)] for (t, n), (j, b) in sorted(self.splits.items())]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PassiveModel:
        _check_format(d, PASSIVE_FORMAT)
        try:
            return cls({(int(t), int(n)): (int(j), int(b)) for t, n, j, b in d["splits"]})
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed SecureBoost model: {exc}") from exc

    def save(self, path: str | Path) -> None:
        _save_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> PassiveModel:
        return cls.from_dict(_load_json(path))

    def importance(self, feature_names: list[str] | None = None) -> dict[str, int]:
        """Split count per own feature (the gains stay with the active party)."""
        out: dict[str, int] = {}
        for j, _ in self.splits.values():
            k = feature_names[j] if feature_names else str(j)
            out[k] = out.get(k, 0) + 1
        return out


ACTIVE_FORMAT, PASSIVE_FORMAT, MODEL_VERSION = "privfin.secureboost.active", "privfin.secureboost.passive", 1


def _check_format(d: Any, fmt: str) -> None:
    if not isinstance(d, dict) or d.get("format") != fmt:
        raise DataError(f"not a {fmt} model file")
    if d.get("version") != MODEL_VERSION:
        raise DataError(f"{fmt} model format version {d.get('version')!r} is not supported (need {MODEL_VERSION})")


def _check_tree(t: Tree, n_parties: int) -> None:
    """Every node is a split with two children or a leaf, reachable from the root."""
    stack, seen = [0], 0
    while stack:
        nid = stack.pop()
        seen += 1
        if nid in t.split:
            if not 0 <= t.split[nid][0] < n_parties or nid in t.leaf:
                raise DataError(f"bad split node {nid}")
            stack += [2 * nid + 1, 2 * nid + 2]
        elif nid not in t.leaf:
            raise DataError(f"tree node {nid} is neither a split nor a leaf")
    if seen != len(t.split) + len(t.leaf):
        raise DataError("tree has unreachable nodes")


def _save_json(path: str | Path, d: dict[str, Any]) -> None:
    import json

    Path(path).write_text(json.dumps(d, indent=1))


def _load_json(path: str | Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read SecureBoost model {path}: {exc}") from exc


def predict_margin(trees: list[Tree], bins_by_party: list[np.ndarray], base_margin: float) -> np.ndarray:
    """Margins of plain trees (every split ref known) on the parties' bin matrices."""
    n = bins_by_party[0].shape[0]
    out = np.full(n, base_margin, dtype=np.float64)
    for t in trees:
        node = np.zeros(n, dtype=np.int64)
        for _ in range(64):
            done = True
            for nid, (pi, ref) in t.split.items():
                sel = node == nid
                if not sel.any():
                    continue
                done = False
                j, b = ref  # type: ignore[misc]
                go_left = bins_by_party[pi][sel, j] <= b
                node[sel] = np.where(go_left, 2 * nid + 1, 2 * nid + 2)
            if done:
                break
        out += np.array([t.leaf[i] for i in node.tolist()])
    return out


def assemble(active: ActiveModel, passives: dict[str, PassiveModel]) -> list[Tree]:
    """Plain trees from every party's part. For tests and audits only: it needs every party's
    private splits in one place, which the protocol never does."""
    out = []
    for ti, t in enumerate(active.trees):
        pt = Tree(dict(t.split), dict(t.leaf), dict(t.gain))
        for nid, (pi, ref) in t.split.items():
            if pi > 0:
                pt.split[nid] = (pi, passives[active.parties[pi]].splits[(ti, nid)])
        out.append(pt)
    return out


# ============================================================================== reference

def fit_plain(bins_by_party: list[np.ndarray], y: np.ndarray, params: SBParams,
              valid: tuple[list[np.ndarray], np.ndarray] | None = None) -> tuple[list[Tree], np.ndarray]:
    """Centralized reference: the same algorithm on the joined bins (party 0 = active), with the
    same row/feature subsampling and early stopping on ``valid = (bins by party, labels)``."""
    params.check()
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    nbs = [[int(v) + 1 for v in (B.max(axis=0) if B.size else [])] for B in bins_by_party]
    margin = np.full(n, params.base_margin)
    vmargin = None if valid is None else np.full(len(valid[1]), params.base_margin)
    best: tuple[float, int, np.ndarray] = (np.inf, 0, margin.copy())
    trees = []
    for ti in range(params.n_trees):
        g, h = grad_hess(y, margin)
        gq, hq = quantize(g, params), quantize(h, params)
        in_s = np.zeros(n, dtype=bool)
        sample = row_sample(n, params, ti)
        in_s[np.arange(n) if sample is None else sample] = True
        cols = [col_sample(B.shape[1], params, ti, pi) for pi, B in enumerate(bins_by_party)]
        t = Tree()
        open_nodes = {0: np.arange(n)}
        for depth in range(params.max_depth + 1):
            nxt = {}
            for nid, rows in open_nodes.items():
                sr = rows[in_s[rows]]
                G, H, C = int(gq[sr].sum()), int(hq[sr].sum()), len(sr)
                best_split: tuple[float, Any] = (-np.inf, None)
                if depth < params.max_depth:
                    for pi, B in enumerate(bins_by_party):
                        c = cols[pi]
                        gains, cand = _party_gains(B[sr][:, c], gq[sr], hq[sr], [nbs[pi][j] for j in c], G, H, C,
                                                   params)
                        if gains.size:
                            k = int(np.argmax(gains))
                            if gains[k] > best_split[0]:
                                best_split = (float(gains[k]), (pi, (int(c[cand[k][0]]), cand[k][1])))
                if best_split[1] is None:
                    t.leaf[nid] = leaf_weight(G, H, params)
                    margin[rows] += t.leaf[nid]
                    continue
                pi, (j, b) = best_split[1]
                t.split[nid] = (pi, (j, b))
                t.gain[nid] = best_split[0]
                left = bins_by_party[pi][rows, j] <= b
                nxt[2 * nid + 1], nxt[2 * nid + 2] = rows[left], rows[~left]
            open_nodes = nxt
        trees.append(t)
        if valid is not None and vmargin is not None:
            vmargin += predict_margin([t], valid[0], 0.0)
            loss = logloss(valid[1], vmargin)
            if loss < best[0]:
                best = (loss, ti + 1, margin.copy())
            elif params.early_stopping_rounds and ti + 1 - best[1] >= params.early_stopping_rounds:
                break
    if valid is not None and params.early_stopping_rounds and best[1] < len(trees):
        return trees[:best[1]], best[2]
    return trees, margin


def _party_gains(Bn: np.ndarray, gq: np.ndarray, hq: np.ndarray, n_bins: list[int], G: int, H: int, C: int,
                 params: SBParams) -> tuple[np.ndarray, list[tuple[int, int]]]:
    hist = _int_hist(Bn, gq, hq, n_bins)
    cum = _cum_candidates(hist, n_bins)
    return split_gains(cum[:, 0], cum[:, 1], cum[:, 2], G, H, C, params), _candidate_index(n_bins)


def _int_hist(Bn: np.ndarray, gq: np.ndarray, hq: np.ndarray, n_bins: list[int]) -> np.ndarray:
    """Exact integer per-(feature, bin) sums of g, h and counts: ``(sum(n_bins), 3)``."""
    parts = []
    for j, k in enumerate(n_bins):
        col = Bn[:, j].astype(np.int64)
        out = np.zeros((k, 3), dtype=np.int64)
        np.add.at(out[:, 0], col, gq)
        np.add.at(out[:, 1], col, hq)
        np.add.at(out[:, 2], col, 1)
        parts.append(out)
    return np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.int64)


# ============================================================================== helpers

def _check_bins(X: Any, n: int | None = None) -> tuple[np.ndarray, list[int]]:
    X, n_bins = check_bin_matrix(X, n)
    return X.astype(np.int64), [max(1, int(v)) for v in n_bins]


def _layout(pk: Any, params: SBParams, n: int) -> tuple[OffsetEncoder, Packer, Packer]:
    enc = encoder_for(params)
    inner = Packer(enc.value_bits, max(1, int(n).bit_length()), pk.max_int.bit_length() - 1)
    if inner.slots < 3:
        raise ProtocolError("the key's plaintext is too small for a packed (g, h, count) triple")
    outer = Packer(3 * inner.slot_bits, 0, pk.max_int.bit_length() - 1)
    return enc, inner, outer


def _encrypt_packed(pk: Any, inner: Packer, values: np.ndarray, zeros: ZeroPool) -> EncryptedVector:
    """``inner.encrypt(pk, values)`` with the randomness taken from ``zeros``; for OU, ``G^m`` by
    slot tables (:class:`~privfin.crypto.packing.SlotPowers`)."""
    vals = np.asarray(values, dtype=np.int64)
    if vals.size and (vals.min() < 0 or int(vals.max()).bit_length() > inner.value_bits):
        raise ProtocolError("packed values out of range")
    return inner.encrypt(pk, vals, zeros=zeros, slot_tables=True)

# ============================================================================== active

def sb_active(chan: Channel, bins_own: Any, y: Any, params: SBParams | None = None, *,
              passive: list[str] | None = None, valid: tuple[Any, Any] | None = None) -> ActiveModel:
    """Label holder: trains the boosted trees; returns its part of the model.

    ``valid = (own bins, labels)`` of a validation set aligned with every passive party's
    ``bins_valid``: its logloss is tracked per tree (from federated masks, as in prediction) and,
    with ``early_stopping_rounds``, training stops and the model keeps the best number of trees."""
    p = params or SBParams()
    p.check()
    t0 = time.perf_counter()
    tm: dict[str, float] = {"encrypt_s": 0.0, "decrypt_s": 0.0, "wait_s": 0.0}
    yy = _check_labels(y)
    n = len(yy)
    X, own_nb = _check_bins(bins_own, n)
    peers = list(passive) if passive is not None else list(chan.peers)
    parties = [chan.party] + peers
    vx, vy = (None, None) if valid is None else (_check_bins(valid[0])[0], _check_labels(valid[1]))
    if vx is not None and vx.shape[0] != len(vy):
        raise DataError("validation bins and labels differ in length")
    pk, sk = keygen(p.scheme, p.key_bits, allow_insecure=p.allow_insecure)
    enc, inner, outer = _layout(pk, p, n)
    for qi, q in enumerate(peers, start=1):
        chan.send(q, TAG_SETUP, {"key": pk.to_bytes(), "n_rows": n, "n_trees": p.n_trees, "frac_bits": p.frac_bits,
                                 "index": qi}, kind=Kind.PLAINTEXT)
    margin = np.full(n, p.base_margin)
    trees: list[Tree] = []
    hist_v: list[float] = []
    best = (np.inf, 0, margin.copy())          # (validation loss, trees, training margin)
    vmargin = None if vx is None else np.full(vx.shape[0], p.base_margin)
    zeros = pk.zero_pool(2 * n, name="sb-zeros")
    try:
        for ti in range(p.n_trees):
            g, h = grad_hess(yy, margin)
            gq, hq = quantize(g, p), quantize(h, p)
            sample = row_sample(n, p, ti)
            srows = np.arange(n) if sample is None else sample
            plain = np.column_stack([gq[srows] + enc.offset, hq[srows] + enc.offset, np.ones(len(srows), np.int64)])
            starts = range(0, len(srows), GH_CHUNK_ROWS)
            chan.broadcast(TAG_CMD, {"op": "tree", "tree": ti, "sample": sample, "chunks": len(starts)}, to=peers)
            for a in starts:  # in chunks: passive parties sum the root's histograms while the next is encrypted
                te = time.perf_counter()
                ev = _encrypt_packed(pk, inner, plain[a:a + GH_CHUNK_ROWS], zeros)
                tm["encrypt_s"] += time.perf_counter() - te
                wire = ev.to_wire()
                with zeros.idle():  # sending is I/O: make randomness meanwhile
                    chan.broadcast(TAG_GH, wire, kind=Kind.CIPHERTEXT, to=peers)
            in_s = np.zeros(n, dtype=bool)
            in_s[srows] = True
            own_cols = col_sample(X.shape[1], p, ti, 0)
            t, leaf_rows = _grow_tree(chan, peers, X, own_nb, own_cols, gq, hq, in_s, p, sk, pk, (enc, inner, outer),
                                      zeros, tm)
            for nid, rows in leaf_rows.items():
                margin[rows] += t.leaf[nid]
            trees.append(t)
            if vmargin is not None:
                vmargin += _valid_tree_values(chan, peers, t, ti, vx, p.max_depth)
                loss = logloss(vy, vmargin)
                hist_v.append(loss)
                if loss < best[0]:
                    best = (loss, ti + 1, margin.copy())
                elif p.early_stopping_rounds and ti + 1 - best[1] >= p.early_stopping_rounds:
                    break
        keep = best[1] if (vmargin is not None and p.early_stopping_rounds) else len(trees)
        chan.broadcast(TAG_CMD, {"op": "done", "n_trees": keep}, to=peers)
    finally:
        zeros.close()
    if keep < len(trees):
        trees, margin = trees[:keep], best[2]
    tm["zeros_made_ahead"] = float(zeros.made_ahead)
    tm["total_s"] = time.perf_counter() - t0
    return ActiveModel(trees, parties, p.base_margin, margin, tm, valid_loss=hist_v)


def _check_labels(y: Any) -> np.ndarray:
    yy = np.asarray(y)
    if yy.ndim != 1 or (yy.size and not set(np.unique(yy).tolist()) <= {0, 1}):
        raise DataError("labels must be a 1-D array of 0 and 1")
    return yy


def logloss(y: np.ndarray, margin: np.ndarray) -> float:
    """Mean logistic loss of margins (numerically stable)."""
    m = np.asarray(margin, dtype=np.float64)
    return float(np.mean(np.logaddexp(0.0, m) - np.asarray(y, dtype=np.float64) * m))


def _grow_tree(chan: Channel, peers: list[str], X: np.ndarray, own_nb: list[int], own_cols: np.ndarray,
               gq: np.ndarray, hq: np.ndarray, in_s: np.ndarray, p: SBParams, sk: Any, pk: Any,
               layout: tuple[OffsetEncoder, Packer, Packer], zeros: ZeroPool, tm: dict[str, float]
               ) -> tuple[Tree, dict[int, np.ndarray]]:
    """One tree, level by level, and all training rows of each leaf. Nodes hold all their rows;
    histograms, sums and split checks use the sampled ones (``in_s``)."""
    n = len(gq)
    t = Tree()
    leaf_rows: dict[int, np.ndarray] = {}
    open_nodes: dict[int, np.ndarray] = {0: np.arange(n)}
    hists: dict[str, dict[int, np.ndarray]] = {q: {} for q in peers}
    n_cand: dict[str, int] = {}
    sub_nb = [own_nb[j] for j in own_cols]
    for depth in range(p.max_depth + 1):
        nxt: dict[int, np.ndarray] = {}
        can_split = depth < p.max_depth
        srows = {nid: rows[in_s[rows]] for nid, rows in open_nodes.items()}
        if can_split and peers:
            ask = _nodes_to_ask(srows)
            chan.broadcast(TAG_CMD, {"op": "hist", "nodes": [int(i) for i in ask],
                                     "rows": [srows[i].astype(np.int64) for i in ask]}, to=peers)
            counts = {nid: len(r) for nid, r in srows.items()}
            for q in peers:
                tw = time.perf_counter()
                with zeros.idle():
                    msg = chan.recv(q, TAG_HIST, expect=dict)
                tm["wait_s"] += time.perf_counter() - tw
                td = time.perf_counter()
                hists[q].update(_decode_hist(sk, pk, q, msg, ask, counts, *layout, n_cand))
                tm["decrypt_s"] += time.perf_counter() - td
                for nid in open_nodes:
                    if nid not in hists[q]:  # sibling by subtraction
                        sib = nid + 1 if nid % 2 == 1 else nid - 1
                        hists[q][nid] = hists[q][(nid - 1) // 2] - hists[q][sib]
        for nid in sorted(open_nodes):
            rows, sr = open_nodes[nid], srows[nid]
            G, H, C = int(gq[sr].sum()), int(hq[sr].sum()), len(sr)
            best: tuple[float, Any] = (-np.inf, None)
            if can_split:
                gains, cand = _party_gains(X[sr][:, own_cols], gq[sr], hq[sr], sub_nb, G, H, C, p)
                if gains.size and gains.max() > best[0]:
                    k = int(np.argmax(gains))
                    best = (float(gains[k]), (0, (int(own_cols[cand[k][0]]), cand[k][1])))
                for qi, q in enumerate(peers, start=1):
                    cum = hists[q][nid]
                    if cum.shape[0] == 0:
                        continue
                    gains = split_gains(cum[:, 0], cum[:, 1], cum[:, 2], G, H, C, p)
                    k = int(np.argmax(gains))
                    if gains[k] > best[0]:
                        best = (float(gains[k]), (qi, k))
            if best[1] is None:
                t.leaf[nid] = leaf_weight(G, H, p)
                leaf_rows[nid] = rows
                continue
            pi, ref = best[1]
            t.gain[nid] = best[0]
            if pi == 0:
                j, b = ref
                t.split[nid] = (0, (j, b))
                left = X[rows, j] <= b
            else:
                q = peers[pi - 1]
                t.split[nid] = (pi, None)
                chan.send(q, TAG_CMD, {"op": "split", "node": int(nid), "cand": int(ref), "rows": rows.astype(np.int64)})
                with zeros.idle():
                    left = np.asarray(chan.recv(q, TAG_PART, expect=dict)["left"], dtype=bool)
                ls = left[in_s[rows]] if left.shape == rows.shape else None
                if ls is None or not ls.any() or ls.all():
                    raise ProtocolError(f"partition from '{q}' does not fit node {nid}")
                # the decrypted count must match the partition the owner returned
                if int(ls.sum()) != int(hists[q][nid][ref, 2]):
                    raise ProtocolError(f"partition from '{q}' disagrees with its histogram")
            nxt[2 * nid + 1], nxt[2 * nid + 2] = rows[left], rows[~left]
        for q in peers:  # parents are no longer needed
            hists[q] = {k: v for k, v in hists[q].items() if k in nxt or k in open_nodes}
        open_nodes = nxt
        if not open_nodes:
            break
    return t, leaf_rows


def _valid_tree_values(chan: Channel, peers: list[str], t: Tree, ti: int, vx: np.ndarray, depth: int) -> np.ndarray:
    """Leaf weights of the newest tree for the validation rows, from the parties' reachability masks."""
    own = {(0, nid): ref for nid, (pi, ref) in t.split.items() if pi == 0}
    mask = reachable_masks(own, vx, 1, depth)
    chan.broadcast(TAG_CMD, {"op": "valid", "tree": ti, "depth": depth, "n_rows": vx.shape[0]}, to=peers)
    for q in peers:
        mask &= _unpack_mask(chan.recv(q, TAG_VALID, expect=dict).get("mask"), q, vx.shape[0], 1, depth)
    return _leaf_values([t], depth, mask)[:, 0]


def _nodes_to_ask(open_nodes: dict[int, np.ndarray]) -> list[int]:
    """Root, or the smaller child of each sibling pair (the other comes by subtraction)."""
    if 0 in open_nodes:
        return [0]
    ask = []
    for nid in sorted(open_nodes):
        if nid % 2 == 1:
            sib = nid + 1
            ask.append(nid if len(open_nodes[nid]) <= len(open_nodes[sib]) else sib)
    return ask


def _decode_hist(sk: Any, pk: Any, peer: str, msg: dict[str, Any], ask: list[int], counts: dict[int, int],
                 enc: OffsetEncoder, inner: Packer, outer: Packer, n_cand: dict[str, int]) -> dict[int, np.ndarray]:
    try:
        m = int(msg["n_cand"])
        ev = EncryptedVector.from_wire(pk, msg["packed"])
    except (KeyError, TypeError, ValueError, CryptoError) as exc:
        raise ProtocolError(f"malformed histograms from '{peer}': {exc}") from exc
    if n_cand.setdefault(peer, m) != m or m < 0:
        raise ProtocolError(f"'{peer}' changed its number of split candidates")
    per_node = -(-m // outer.slots) if m else 0
    if ev.size != per_node * len(ask):
        raise ProtocolError(f"histograms from '{peer}' have an unexpected size")
    if m == 0:
        return {nid: np.zeros((0, 3), dtype=np.int64) for nid in ask}
    try:
        raw = sk.decrypt_raw(ev)
        out = {}
        for i, nid in enumerate(ask):
            cells = outer.unpack_flat(raw[i * per_node:(i + 1) * per_node], m)
            trip = inner.unpack([int(c) for c in cells], 3).astype(np.int64)
            C = trip[:, 2]
            G = trip[:, 0] - C * enc.offset
            H = trip[:, 1] - C * enc.offset
            cnt = counts[nid]
            if np.any(C < 0) or np.any(C > cnt) or np.any(H < 0) or np.any(np.abs(G) > C * enc.offset):
                raise ProtocolError(f"histograms from '{peer}' are out of range for node {nid}")
            out[nid] = np.column_stack([G, H, C])
    except CryptoError as exc:
        raise ProtocolError(f"histograms from '{peer}' do not decrypt to packed sums") from exc
    return out


# ============================================================================== passive

def sb_passive(chan: Channel, bins_own: Any, params: SBParams | None = None, *, active: str | None = None,
               bins_valid: Any = None) -> PassiveModel:
    """Feature holder: answers histogram, split and validation requests; keeps its thresholds.

    ``bins_valid``: its own bins of the validation set (aligned with the active party's), when
    the active party tracks a validation loss."""
    p = params or SBParams()
    t0 = time.perf_counter()
    tm: dict[str, float] = {"hist_s": 0.0}
    X, nb = _check_bins(bins_own)
    vx = None if bins_valid is None else _check_bins(bins_valid)[0]
    n = X.shape[0]
    act = active or chan.peers[0]
    setup, pk = recv_key_setup(chan, act, TAG_SETUP, n, p.allow_insecure)
    if int(setup["frac_bits"]) != p.frac_bits:
        raise ProtocolError("frac_bits differ between the parties' parameters")
    index = int(setup.get("index", 1))
    _, inner, outer = _layout(pk, p, n)
    M, width = pk.modulus, pk.ciphertext_bytes
    splits: dict[tuple[int, int], tuple[int, int]] = {}
    cts_full: np.ndarray | None = None
    srows = np.arange(n)
    sub_nb: list[int] = []
    root: tuple[list[list[mpz]], mpz] = ([], mpz(1))
    root_skip: list[int] = []
    in_s = np.ones(n, dtype=bool)
    cand: list[tuple[int, int]] = []
    cols = np.arange(X.shape[1])
    perm = np.zeros(0, dtype=np.int64)
    tree = -1
    while True:
        cmd = chan.recv(act, TAG_CMD, expect=dict)
        op = cmd.get("op")
        if op == "done":
            keep = int(cmd.get("n_trees", tree + 1))
            splits = {k: v for k, v in splits.items() if k[0] < keep}
            break
        if op == "tree":
            tree = int(cmd["tree"])
            sample = None if cmd.get("sample") is None else _rows(cmd["sample"], n)
            in_s = np.ones(n, dtype=bool)
            if sample is not None:
                in_s[:] = False
                in_s[sample] = True
            srows = np.flatnonzero(in_s)
            cols = col_sample(X.shape[1], p, tree, index)
            sub_nb = [nb[j] for j in cols]
            cand = [(int(cols[jj]), b) for jj, b in _candidate_index(sub_nb)]
            perm = np.array(_secret_permutation(len(cand)), dtype=np.int64)
            cts_full = np.full(n, mpz(1), dtype=object)  # unsampled rows are never summed
            root_skip = _fullest_bins(X[srows][:, cols], sub_nb)
            parts, got = [], 0
            th = time.perf_counter()
            for _ in range(int(cmd.get("chunks", 1))):
                ev = EncryptedVector.from_wire(pk, chan.recv(act, TAG_GH, expect=dict))
                r = srows[got:got + ev.size]
                if ev.ndim != 1 or ev.frac_bits != 0 or len(r) != ev.size:
                    raise ProtocolError("gradient ciphertexts do not match this party's rows")
                cts = ev.ciphertexts.tolist()
                cts_full[r] = ev.ciphertexts
                got += ev.size
                parts.append(_bin_products_par(cts, X[r][:, cols], sub_nb, root_skip, M, width))
            if got != len(srows) or got > inner.capacity:
                raise ProtocolError("gradient ciphertexts do not match this party's rows")
            root = _merge_products(parts, M)
            tm["hist_s"] += time.perf_counter() - th
        elif op == "hist":
            if cts_full is None:
                raise ProtocolError("histogram request before any gradients")
            th = time.perf_counter()
            m = len(cand)
            packed_parts = []
            for nid, rows in zip(cmd["nodes"], cmd["rows"]):
                r = _rows(rows, n)
                if not in_s[r].all():
                    raise ProtocolError("histogram rows outside this tree's sample")
                if int(nid) == 0 and len(r) == len(srows):
                    per, total, skip = root[0], root[1], root_skip
                else:
                    skip = _fullest_bins(X[r][:, cols], sub_nb)
                    per, total = _bin_products_par(cts_full[r].tolist(), X[r][:, cols], sub_nb, skip, M, width)
                cum = _cum_from_products(per, total, sub_nb, skip, M)
                if m:
                    part = EncryptedVector(pk, obj_array([cum[i] for i in perm.tolist()], (m,)), 0, weight=1)
                    packed_parts.append(outer.pack_encrypted(part))
            if packed_parts:
                packed = EncryptedVector.concatenate(packed_parts).rerandomize()
            else:
                packed = EncryptedVector(pk, np.zeros(0, dtype=object), 0)
            tm["hist_s"] += time.perf_counter() - th
            chan.send(act, TAG_HIST, {"n_cand": m, "packed": packed.to_wire()}, kind=Kind.AGGREGATE)
        elif op == "split":
            k = int(cmd["cand"])
            if not 0 <= k < len(cand):
                raise ProtocolError("split candidate out of range")
            r = _rows(cmd["rows"], n)
            j, b = cand[int(perm[k])]
            b = _canonical_bin(X[r[in_s[r]], j], b)
            splits[(tree, int(cmd["node"]))] = (j, b)
            chan.send(act, TAG_PART, {"left": X[r, j] <= b}, kind=Kind.PLAINTEXT)
        elif op == "valid":
            if vx is None or int(cmd.get("n_rows", -1)) != vx.shape[0]:
                raise ProtocolError("validation requested but this party's validation rows do not match")
            depth = int(cmd["depth"])
            if not 0 <= depth <= MAX_PRED_DEPTH or int(cmd["tree"]) != tree:
                raise ProtocolError("validation request out of range")
            own = {(0, nid): ref for (t, nid), ref in splits.items() if t == tree}
            chan.send(act, TAG_VALID, {"mask": np.packbits(reachable_masks(own, vx, 1, depth), axis=2)},
                      kind=Kind.PLAINTEXT)
        else:
            raise ProtocolError(f"unknown command {op!r} from the active party")
    tm["total_s"] = time.perf_counter() - t0
    return PassiveModel(splits, tm)


def _rows(rows: Any, n: int) -> np.ndarray:
    r = np.asarray(rows)
    if r.ndim != 1 or (r.size and (r.dtype.kind not in "iu" or int(r.min()) < 0 or int(r.max()) >= n)):
        raise ProtocolError("node row indices out of range")
    return r.astype(np.int64)


def _secret_permutation(m: int) -> list[int]:
    idx = list(range(m))
    for i in range(m - 1, 0, -1):  # Fisher–Yates with a CSPRNG
        j = secrets.randbelow(i + 1)
        idx[i], idx[j] = idx[j], idx[i]
    return idx


HIST_PARALLEL_ROWS = 4096   # node rows from which per-bin products are spread over the executor
GH_CHUNK_ROWS = 4096        # rows per gradient message (streamed: the root histogram starts on the first)


def _fullest_bins(Bn: np.ndarray, nb: list[int]) -> list[int]:
    """Per feature the bin with most rows (its rows are skipped; see :func:`_cum_from_products`)."""
    return [int(np.argmax(np.bincount(Bn[:, j], minlength=k))) if Bn.shape[0] else k - 1
            for j, k in enumerate(nb)]


def _bin_products(cts: list[mpz], Bn: np.ndarray, nb: list[int], skip: list[int], M: Any
                  ) -> tuple[list[list[mpz]], mpz]:
    """Per feature and bin the product of the rows' ciphertexts (rows in ``skip[j]`` left out;
    features with one bin skipped), and the product of all rows."""
    one = mpz(1)
    total = one
    for c in cts:
        total = total * c % M
    out: list[list[mpz]] = []
    for j, k in enumerate(nb):
        acc = [one] * k
        if k > 1:
            L = skip[j]
            for b, c in zip(Bn[:, j].tolist(), cts):
                if b != L:
                    acc[b] = acc[b] * c % M
        out.append(acc)
    return out, total


def _bin_products_blob(blob: bytes, width: int, Bn: np.ndarray, nb: list[int], skip: list[int], M: Any) -> bytes:
    """Executor task: :func:`_bin_products` on fixed-width big-endian ciphertexts, same encoding back."""
    cts = [mpz.from_bytes(blob[i:i + width], "big") for i in range(0, len(blob), width)]
    per, total = _bin_products(cts, Bn, nb, skip, M)
    return b"".join(c.to_bytes(width, "big") for c in [total, *(c for acc in per for c in acc)])


def _merge_products(parts: list[tuple[list[list[mpz]], mpz]], M: Any) -> tuple[list[list[mpz]], mpz]:
    per, total = parts[0]
    for p2, t2 in parts[1:]:
        per = [[a * b % M for a, b in zip(x, y)] for x, y in zip(per, p2)]
        total = total * t2 % M
    return per, total


def _bin_products_par(cts: list[mpz], Bn: np.ndarray, nb: list[int], skip: list[int], M: Any, width: int
                      ) -> tuple[list[list[mpz]], mpz]:
    """:func:`_bin_products`, over the executor's workers for large nodes."""
    ex = get_executor()
    n = len(cts)
    if n < HIST_PARALLEL_ROWS or ex.n_workers <= 1:
        return _bin_products(cts, Bn, nb, skip, M)
    spans = list(pairwise(np.linspace(0, n, ex.n_workers + 1).astype(int).tolist()))
    blobs = [b"".join(c.to_bytes(width, "big") for c in cts[a:b]) for a, b in spans]
    slices = [Bn[a:b] for a, b in spans]
    k = len(blobs)
    parts = []
    for out in ex.map(_bin_products_blob, blobs, [width] * k, slices, [nb] * k, [skip] * k, [M] * k):
        vals = [mpz.from_bytes(out[i:i + width], "big") for i in range(0, len(out), width)]
        per, off = [], 1
        for kk in nb:
            per.append(vals[off:off + kk])
            off += kk
        parts.append((per, vals[0]))
    return _merge_products(parts, M)


def _cum_from_products(per: list[list[mpz]], total: mpz, nb: list[int], skip: list[int], M: Any) -> list[mpz]:
    """Encrypted cumulative sums "bin <= b" of every candidate (feature order, last bin dropped).

    Bins below a feature's skipped fullest bin ``L`` are prefix products; for ``b >= L`` the sum
    is the node total minus the bins above ``b`` (the same plaintexts, so decryption sees no
    difference). Skipping saves the fullest bins' rows on skewed features."""
    out: list[mpz] = []
    for j, k in enumerate(nb):
        if k <= 1:
            continue
        L, acc = skip[j], mpz(1)
        for b in range(min(L, k - 1)):
            acc = acc * per[j][b] % M
            out.append(acc)
        if L < k - 1:
            sfx, above = mpz(1), []
            for b in range(k - 2, L - 1, -1):  # bins above b, for b = k-2 .. L
                sfx = sfx * per[j][b + 1] % M
                above.append(sfx)
            out.extend(total * gmpy2.invert(a, M) % M for a in reversed(above))
    return out


# ============================================================================== prediction

TAG_PRED = "sb/pred"
MAX_PRED_DEPTH = 12


def _node_depth(nid: int) -> int:
    return (int(nid) + 1).bit_length() - 1


def _span(nid: int, depth: int) -> tuple[int, int]:
    """Positions ``[lo, hi)`` at level ``depth`` of the complete tree under node ``nid``."""
    d = _node_depth(nid)
    w = 1 << (depth - d)
    i = int(nid) - ((1 << d) - 1)
    return i * w, (i + 1) * w


def reachable_masks(splits: dict[tuple[int, int], tuple[int, int]], bins: np.ndarray, n_trees: int,
                    depth: int) -> np.ndarray:
    """``(rows, n_trees, 2**depth)`` bools: the positions at level ``depth`` of each (complete) tree a
    row can reach when only these splits are applied (every other party's split lets it go both ways)."""
    out = np.ones((bins.shape[0], n_trees, 1 << depth), dtype=bool)
    for (t, nid), (j, b) in splits.items():
        if not 0 <= t < n_trees or _node_depth(nid) >= depth:
            raise ProtocolError(f"split ({t}, {nid}) does not fit {n_trees} trees of depth {depth}")
        lo, hi = _span(nid, depth)
        mid = (lo + hi) // 2
        left = bins[:, j] <= b
        out[left, t, mid:hi] = False
        out[~left, t, lo:mid] = False
    return out


def _unpack_mask(packed: Any, peer: str, n: int, T: int, depth: int) -> np.ndarray:
    P = 1 << depth
    arr = np.asarray(packed)
    if arr.dtype != np.uint8 or arr.shape != (n, T, -(-P // 8)):
        raise ProtocolError(f"reachability masks from '{peer}' have shape {arr.shape}, expected ({n}, {T}, {-(-P // 8)})")
    return np.unpackbits(arr, axis=2, count=P).astype(bool)


def _leaf_values(trees: list[Tree], depth: int, mask: np.ndarray) -> np.ndarray:
    """``(rows, trees)`` leaf weights from the intersected masks; checks that one leaf is left."""
    T, P = len(trees), 1 << depth
    leaf_w, leaf_id = np.zeros((T, P)), np.zeros((T, P), dtype=np.int64)
    for ti, t in enumerate(trees):
        for nid, w in t.leaf.items():
            lo, hi = _span(nid, depth)
            leaf_w[ti, lo:hi], leaf_id[ti, lo:hi] = w, nid
    first = np.argmax(mask, axis=2)
    last = P - 1 - np.argmax(mask[:, :, ::-1], axis=2)
    ti = np.arange(T)[None, :]
    if not mask.any(axis=2).all() or np.any(leaf_id[ti, first] != leaf_id[ti, last]):
        raise ProtocolError("reachability masks do not single out one leaf per tree")
    return leaf_w[ti, first]


class SBPredictor:
    """The active party's side of federated prediction, batch (:meth:`predict_margin`) and by id
    (:meth:`predict_ids`); every passive party runs :func:`sb_serve` meanwhile.

    Per request each passive party returns, per row and tree, the bitmask of the leaf positions
    reachable under its *own* splits (:func:`reachable_masks`, packed bits); the active party
    intersects them with its own and reads the one leaf left. See the module's Security section.
    """

    def __init__(self, chan: Channel, model: ActiveModel, *, timeout: float | None = None, tag: str = TAG_PRED) -> None:
        from privfin.models.serving import Client

        self.model = model
        self.depth = model.depth
        if self.depth > MAX_PRED_DEPTH:
            raise DataError(f"trees deeper than {MAX_PRED_DEPTH} are not supported by federated prediction")
        self.peers = list(model.parties[1:])
        self.client = Client(chan, self.peers, tag=tag, timeout=timeout) if self.peers else None
        self._own = {(ti, nid): ref for ti, t in enumerate(model.trees) for nid, (pi, ref) in t.split.items()
                     if pi == 0}

    def _combine(self, bins_own: Any, body: dict[str, Any]) -> np.ndarray:
        X, _ = _check_bins(bins_own)
        n, T = X.shape[0], len(self.model.trees)
        mask = reachable_masks(self._own, X, T, self.depth)
        if self.client is not None:
            body = dict(body, depth=self.depth, n_trees=T)
            for q, rep in self.client.ask(body).items():
                mask &= _unpack_mask(rep.get("mask"), q, n, T, self.depth)
        return self.model.base_margin + _leaf_values(self.model.trees, self.depth, mask).sum(axis=1)

    def predict_margin(self, bins_own: Any) -> np.ndarray:
        """Margins of an aligned set: row ``i`` of ``bins_own`` is row ``i`` of every passive party's
        serving set."""
        return self._combine(bins_own, {"n_rows": int(np.shape(bins_own)[0])})

    def predict_ids(self, ids: Any, bins_own: Any) -> np.ndarray:
        """Margins of the given ids (``bins_own``: the active party's own bins of those ids, in order);
        every passive party looks the ids up in its serving table."""
        ids = [str(i) for i in ids]
        if len(ids) != np.shape(bins_own)[0]:
            raise DataError("one row of own bins per id is needed")
        return self._combine(bins_own, {"ids": ids})

    def predict_proba(self, bins_own: Any) -> np.ndarray:
        return sigmoid(self.predict_margin(bins_own))

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def __enter__(self) -> SBPredictor:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sb_serve(chan: Channel, model: PassiveModel, bins_own: Any, ids: Any = None, *, active: str | None = None,
             tag: str = TAG_PRED, idle_timeout: float | None = None) -> int:
    """A passive party answers prediction requests on its serving set (``bins_own``, aligned with the
    active party's for batch requests; ``ids`` names its rows for requests by id) until the active
    party closes; returns the number of requests answered."""
    from privfin.models.serving import Reply, serve

    X, _ = _check_bins(bins_own)
    index = {str(v): i for i, v in enumerate(ids)} if ids is not None else None
    act = active or chan.peers[0]

    def handle(body: dict[str, Any]) -> Reply:
        try:
            depth, T = int(body["depth"]), int(body["n_trees"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed prediction request: {exc}") from exc
        if not 0 <= depth <= MAX_PRED_DEPTH or T < 1:
            raise ProtocolError("prediction request out of range")
        if "ids" in body:
            if index is None:
                raise DataError("this party serves no ids")
            try:
                rows = np.array([index[str(i)] for i in body["ids"]], dtype=np.int64)
            except KeyError as exc:
                raise DataError("unknown id") from exc
        elif int(body.get("n_rows", -1)) == X.shape[0]:
            rows = np.arange(X.shape[0])
        else:
            raise DataError("the prediction sets are not aligned (row counts differ)")
        mask = reachable_masks(model.splits, X[rows], T, depth)
        return Reply({"mask": np.packbits(mask, axis=2)}, kind=Kind.PLAINTEXT)

    return serve(chan, act, handle, tag=tag, idle_timeout=idle_timeout)


__all__ = ["ActiveModel", "PassiveModel", "SBParams", "SBPredictor", "Tree", "assemble", "col_sample", "fit_plain",
           "grad_hess", "leaf_weight", "logloss", "predict_margin", "quantize", "reachable_masks", "row_sample",
           "sb_active", "sb_passive", "sb_serve", "sigmoid", "split_gains"]
