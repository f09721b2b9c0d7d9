"""SecureBoost training (vertical federated gradient boosting, logloss), any number of passive parties.

Roles (one function each, taking only that party's own data):

- :func:`sb_active` ``(chan, bins_own, y, params)`` at the label holder (the bank);
- :func:`sb_passive` ``(chan, bins_own, params)`` at every feature holder.

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

Protocol
--------
1. The active party makes a key pair (Okamoto–Uchiyama by default) and sends every passive party
   the public key and the shape of the job (rows, fixed-point layout).
2. Per tree it encrypts, per row, ``(g, h, 1)`` offset-encoded into one packed plaintext
   (:class:`~privfin.crypto.packing.Packer`, :class:`~privfin.crypto.packing.OffsetEncoder`) and
   sends the same ciphertexts to every passive party, once per tree.
3. Per level, for each pair of sibling nodes it asks every passive party for the histograms of the
   *smaller* sibling only (the node's row indices go with the request); the larger sibling's
   histogram is the parent's minus the smaller one, computed by the active party on decrypted
   integers. A passive party computes per (feature, bin) the homomorphic sum of its rows' packed
   ciphertexts, turns them into cumulative ("bin <= b") sums, keeps only real candidates (not the
   last bin of a feature), orders them by a fresh secret permutation per tree, folds several
   candidates into one ciphertext (:meth:`Packer.pack_encrypted`), re-randomizes and returns them.
4. The active party decrypts, checks the ranges (counts within the node, hessians non-negative),
   finds the best split over its own features (in the clear) and every passive party's candidates,
   and tells the owner only "node, candidate number k". The owner maps ``k`` to its private
   ``(feature, bin)`` — among equal-partition bins of that feature, the smallest, so ties resolve
   as in the reference — stores it, and returns which of the node's rows go left.
5. The active party computes leaf weights and updates its margins (it knows every leaf's rows).

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
- **OU caveat** (see :mod:`privfin.crypto.ou`): the key holder decrypts ciphertexts a passive
  party chose but never returns a raw decryption; it returns only a candidate number and node
  row sets it already had. Against a malicious passive party use ``scheme = "paillier"``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gmpy2 import mpz

from privfin.crypto import EncryptedVector, OffsetEncoder, Packer, keygen, load_public_key
from privfin.errors import CryptoError, DataError, ProtocolError
from privfin.features.binning import check_bin_matrix
from privfin.transport.base import Channel, Kind

TAG_SETUP, TAG_GH, TAG_CMD, TAG_HIST, TAG_PART = "sb/setup", "sb/gh", "sb/cmd", "sb/hist", "sb/part"
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

    def check(self) -> None:
        if self.n_trees < 1 or self.max_depth < 1:
            raise DataError("n_trees and max_depth must be >= 1")
        if not self.learning_rate > 0 or self.reg_lambda < 0 or self.gamma < 0 or self.min_child_weight < 0:
            raise DataError("learning_rate must be > 0; reg_lambda, gamma, min_child_weight >= 0")
        if not 8 <= self.frac_bits <= 40:
            raise DataError("frac_bits must be in 8..40")


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
    train_margin: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)

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

def fit_plain(bins_by_party: list[np.ndarray], y: np.ndarray, params: SBParams) -> tuple[list[Tree], np.ndarray]:
    """Centralized reference: the same algorithm on the joined bins (party 0 = active)."""
    params.check()
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    nbs = [[int(v) + 1 for v in (B.max(axis=0) if B.size else [])] for B in bins_by_party]
    margin = np.full(n, params.base_margin)
    trees = []
    for _ in range(params.n_trees):
        g, h = grad_hess(y, margin)
        gq, hq = quantize(g, params), quantize(h, params)
        t = Tree()
        open_nodes = {0: np.arange(n)}
        for depth in range(params.max_depth + 1):
            nxt = {}
            for nid, rows in open_nodes.items():
                G, H, C = int(gq[rows].sum()), int(hq[rows].sum()), len(rows)
                best = (-np.inf, None)
                if depth < params.max_depth:
                    for pi, B in enumerate(bins_by_party):
                        gains, cand = _party_gains(B[rows], gq[rows], hq[rows], nbs[pi], G, H, C, params)
                        if gains.size:
                            k = int(np.argmax(gains))
                            if gains[k] > best[0]:
                                best = (float(gains[k]), (pi, cand[k]))
                if best[1] is None:
                    t.leaf[nid] = leaf_weight(G, H, params)
                    margin[rows] += t.leaf[nid]
                    continue
                pi, (j, b) = best[1]
                t.split[nid] = (pi, (j, b))
                t.gain[nid] = best[0]
                left = bins_by_party[pi][rows, j] <= b
                nxt[2 * nid + 1], nxt[2 * nid + 2] = rows[left], rows[~left]
            open_nodes = nxt
        trees.append(t)
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


# ============================================================================== active

def sb_active(chan: Channel, bins_own: Any, y: Any, params: SBParams | None = None, *,
              passive: list[str] | None = None) -> ActiveModel:
    """Label holder: trains the boosted trees; returns its part of the model."""
    p = params or SBParams()
    p.check()
    t0 = time.perf_counter()
    tm: dict[str, float] = {"encrypt_s": 0.0, "decrypt_s": 0.0, "wait_s": 0.0}
    yy = np.asarray(y)
    if yy.ndim != 1 or (yy.size and not set(np.unique(yy).tolist()) <= {0, 1}):
        raise DataError("labels must be a 1-D array of 0 and 1")
    n = len(yy)
    X, own_nb = _check_bins(bins_own, n)
    peers = list(passive) if passive is not None else list(chan.peers)
    parties = [chan.party] + peers
    pk, sk = keygen(p.scheme, p.key_bits, allow_insecure=p.allow_insecure)
    enc, inner, outer = _layout(pk, p, n)
    chan.broadcast(TAG_SETUP, {"key": pk.to_bytes(), "n_rows": n, "n_trees": p.n_trees, "frac_bits": p.frac_bits},
                   kind=Kind.PLAINTEXT, to=peers)
    n_cand: dict[str, int] = {}
    margin = np.full(n, p.base_margin)
    trees: list[Tree] = []
    for ti in range(p.n_trees):
        g, h = grad_hess(yy, margin)
        gq, hq = quantize(g, p), quantize(h, p)
        te = time.perf_counter()
        ev = inner.encrypt(pk, np.column_stack([gq + enc.offset, hq + enc.offset, np.ones(n, dtype=np.int64)]))
        tm["encrypt_s"] += time.perf_counter() - te
        chan.broadcast(TAG_CMD, {"op": "tree", "tree": ti}, to=peers)
        chan.broadcast(TAG_GH, ev.to_wire(), kind=Kind.CIPHERTEXT, to=peers)
        t = Tree()
        open_nodes: dict[int, np.ndarray] = {0: np.arange(n)}
        hists: dict[str, dict[int, np.ndarray]] = {q: {} for q in peers}
        for depth in range(p.max_depth + 1):
            nxt: dict[int, np.ndarray] = {}
            can_split = depth < p.max_depth
            if can_split and peers:
                ask = _nodes_to_ask(open_nodes)
                cmd = {"op": "hist", "nodes": [int(i) for i in ask],
                       "rows": [open_nodes[i].astype(np.int64) for i in ask]}
                chan.broadcast(TAG_CMD, cmd, to=peers)
                for q in peers:
                    tw = time.perf_counter()
                    msg = chan.recv(q, TAG_HIST, expect=dict)
                    tm["wait_s"] += time.perf_counter() - tw
                    td = time.perf_counter()
                    got = _decode_hist(sk, pk, q, msg, ask, open_nodes, enc, inner, outer, n_cand)
                    tm["decrypt_s"] += time.perf_counter() - td
                    hists[q].update(got)
                    for nid in open_nodes:
                        if nid not in hists[q]:  # sibling by subtraction
                            sib = nid + 1 if nid % 2 == 1 else nid - 1
                            hists[q][nid] = hists[q][(nid - 1) // 2] - hists[q][sib]
            for nid in sorted(open_nodes):
                rows = open_nodes[nid]
                G, H, C = int(gq[rows].sum()), int(hq[rows].sum()), len(rows)
                best: tuple[float, Any] = (-np.inf, None)
                if can_split:
                    gains, cand = _party_gains(X[rows], gq[rows], hq[rows], own_nb, G, H, C, p)
                    if gains.size and gains.max() > best[0]:
                        k = int(np.argmax(gains))
                        best = (float(gains[k]), (0, cand[k]))
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
                    margin[rows] += t.leaf[nid]
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
                    chan.send(q, TAG_CMD, {"op": "split", "node": int(nid), "cand": int(ref),
                                           "rows": rows.astype(np.int64)})
                    left = np.asarray(chan.recv(q, TAG_PART, expect=dict)["left"], dtype=bool)
                    if left.shape != rows.shape or not left.any() or left.all():
                        raise ProtocolError(f"partition from '{q}' does not fit node {nid}")
                    # the decrypted count must match the partition the owner returned
                    if int(left.sum()) != int(hists[q][nid][ref, 2]):
                        raise ProtocolError(f"partition from '{q}' disagrees with its histogram")
                nxt[2 * nid + 1], nxt[2 * nid + 2] = rows[left], rows[~left]
            for q in peers:  # parents are no longer needed
                hists[q] = {k: v for k, v in hists[q].items() if k in nxt or k in open_nodes}
            open_nodes = nxt
            if not open_nodes:
                break
        trees.append(t)
    chan.broadcast(TAG_CMD, {"op": "done"}, to=peers)
    tm["total_s"] = time.perf_counter() - t0
    return ActiveModel(trees, parties, p.base_margin, margin, tm)


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


def _decode_hist(sk: Any, pk: Any, peer: str, msg: dict[str, Any], ask: list[int], open_nodes: dict[int, np.ndarray],
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
            cnt = len(open_nodes[nid])
            if np.any(C < 0) or np.any(C > cnt) or np.any(H < 0) or np.any(np.abs(G) > C * enc.offset):
                raise ProtocolError(f"histograms from '{peer}' are out of range for node {nid}")
            out[nid] = np.column_stack([G, H, C])
    except CryptoError as exc:
        raise ProtocolError(f"histograms from '{peer}' do not decrypt to packed sums") from exc
    return out


# ============================================================================== passive

def sb_passive(chan: Channel, bins_own: Any, params: SBParams | None = None, *,
               active: str | None = None) -> PassiveModel:
    """Feature holder: answers histogram and split requests; keeps its thresholds."""
    p = params or SBParams()
    t0 = time.perf_counter()
    tm: dict[str, float] = {"hist_s": 0.0}
    X, nb = _check_bins(bins_own)
    n = X.shape[0]
    act = active or chan.peers[0]
    setup = chan.recv(act, TAG_SETUP, expect=dict)
    pk = load_public_key(bytes(setup["key"]))
    if pk.key_bits < 2048 and not p.allow_insecure:
        raise ProtocolError(f"the active party's key has {pk.key_bits} bits (< 2048)")
    if int(setup["n_rows"]) != n:
        raise ProtocolError(f"the active party has {setup['n_rows']} rows, this party {n}: inputs not aligned")
    if int(setup["frac_bits"]) != p.frac_bits:
        raise ProtocolError("frac_bits differ between the parties' parameters")
    _, inner, outer = _layout(pk, p, n)
    cand = _candidate_index(nb)
    M = pk.modulus
    splits: dict[tuple[int, int], tuple[int, int]] = {}
    ev: EncryptedVector | None = None
    perm = np.arange(len(cand))
    tree = -1
    while True:
        cmd = chan.recv(act, TAG_CMD, expect=dict)
        op = cmd.get("op")
        if op == "done":
            break
        if op == "tree":
            tree = int(cmd["tree"])
            ev = EncryptedVector.from_wire(pk, chan.recv(act, TAG_GH, expect=dict))
            if ev.shape != (n,) or ev.frac_bits != 0:
                raise ProtocolError("gradient ciphertexts do not match this party's rows")
            ev.capacity = inner.capacity
            perm = np.array(_secret_permutation(len(cand)), dtype=np.int64)
        elif op == "hist":
            if ev is None:
                raise ProtocolError("histogram request before any gradients")
            th = time.perf_counter()
            cts: list[mpz] = []
            for rows in cmd["rows"]:
                r = _rows(rows, n)
                cum = _enc_cum_hist(ev[r], X[r], nb, M)
                cts.extend(cum[i] for i in perm.tolist())
            m = len(cand)
            packed_parts = []
            if m:
                for i in range(len(cmd["rows"])):
                    part = EncryptedVector(pk, np.array(cts[i * m:(i + 1) * m], dtype=object), 0, weight=1)
                    packed_parts.append(outer.pack_encrypted(part))
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
            b = _canonical_bin(X[r, j], b)
            splits[(tree, int(cmd["node"]))] = (j, b)
            chan.send(act, TAG_PART, {"left": X[r, j] <= b}, kind=Kind.PLAINTEXT)
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


def _enc_cum_hist(ev: EncryptedVector, Bn: np.ndarray, nb: list[int], M: Any) -> list[mpz]:
    """Encrypted cumulative sums "bin <= b" of every candidate (feature order, last bin dropped)."""
    out: list[mpz] = []
    for j, k in enumerate(nb):
        if k <= 1:
            continue
        per = ev.bincount(Bn[:, j], minlength=k).ciphertexts.tolist()
        acc = per[0]
        out.append(acc)
        for c in per[1:k - 1]:
            acc = acc * c % M
            out.append(acc)
    return out


__all__ = ["ActiveModel", "PassiveModel", "SBParams", "Tree", "assemble", "fit_plain", "grad_hess", "leaf_weight",
           "predict_margin", "quantize", "sb_active", "sb_passive", "sigmoid", "split_gains"]
