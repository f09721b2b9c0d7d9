"""Federated WOE/IV: per-bin label sums of every party's features from encrypted labels.

Roles (one function each, taking only that party's own data):

- :func:`woe_active` ``(chan, y, X_own_bins, params)`` at the label holder (the bank);
- :func:`woe_passive` ``(chan, X_own_bins, params)`` at every feature holder.

``X_own_bins`` is the party's own bin-index matrix (rows aligned across parties by PSI, e.g.
from :class:`privfin.features.binning.Binner`); the edges and category maps never leave it.

Protocol
--------
1. The active party makes a fresh key pair (Okamoto–Uchiyama 2048 by default, Paillier as an
   option) and sends every passive party the public key and the job's parameters.
2. It encrypts its 0/1 labels **once**, in chunks of ``chunk_rows``, and streams the same
   ciphertexts to every passive party (so passive work overlaps with encryption).
3. A passive party multiplies, per feature and bin, the ciphertexts of its rows: the
   homomorphic sum of the labels in that bin. The work goes through the executor, split by rows;
   inside a task the bin sums of ``k`` features at a time come from one pass over the rows
   into the cells of their joint bins, then marginalized (about ``1/k`` of the multiplications of
   one pass per feature; only the marginals ever leave the task). It packs many bin sums per
   ciphertext, re-randomizes every packed ciphertext with a fresh encryption of zero, and returns
   them with its plaintext per-bin row counts, keyed by anonymous aliases (``gov.f000``, ...) and
   bin indices.
4. The active party decrypts, checks the counts (every bin at least the minimum size, events
   between 0 and the bin's rows, each feature's bins summing to all rows and all events) and
   computes WOE, IV, AUC and KS (:mod:`privfin.features.woe`) for every feature of every party,
   its own in the clear.
5. Only if the job says so (``share_woe``), it sends each passive party the WOE of that party's
   own bins, and the passive party WOE-transforms its features locally.

Security
--------
Semi-honest parties; the key pair is generated per run and held by the label holder only.

- **Active party** learns, for every passive feature under an alias: the number of bins, the
  rows per bin and the events per bin (every bin at least ``min_count`` rows, checked on both
  sides), in the passive party's bin order. It never receives edges, category maps, feature
  names, raw values or which bin a row is in: the returned ciphertexts are re-randomized, so
  even the randomness of its own label encryptions does not link a sum to its rows.
- **Passive party** receives only the public key, the run's parameters and ciphertexts of the
  labels (ledger kind ``ciphertext``) — nothing about them in the clear. With ``share_woe`` it
  also receives the WOE of its own bins (kind ``aggregate``); together with its bin sizes this
  reveals its per-bin event counts and the overall event rate — that is what sharing WOE means,
  and why the active party refuses to share WOE of a bin below the minimum size.
- Passive parties learn nothing about each other (each gets only its own WOE).
- **OU caveat** (see :mod:`privfin.crypto.ou`): OU is broken by chosen-ciphertext decryption.
  Here the key holder decrypts ciphertexts a passive party chose, but returns nothing raw: only
  WOE values and only after the consistency checks above, which a ciphertext not built from the
  labels fails except with negligible probability. Against a malicious passive party use
  ``scheme = "paillier"``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from gmpy2 import mpz

from privfin.crypto import EncryptedVector, Packer, keygen, recv_key_setup
from privfin.errors import CryptoError, DataError, ProtocolError
from privfin.features.binning import check_bin_matrix
from privfin.features.woe import BinStats, bin_stats, counts_by_bin
from privfin.runtime.executor import get_executor
from privfin.transport.base import Channel, Kind

_ONE = mpz(1)
TAG_SETUP, TAG_LABELS, TAG_SUMS, TAG_WOE = "woe/setup", "woe/labels", "woe/bin_sums", "woe/woe"


@dataclass(frozen=True)
class WoeParams:
    """Parameters of one run; both sides must agree on ``share_woe`` and the minimum bin size."""

    scheme: str = "ou"                 # "ou" | "paillier"
    key_bits: int = 2048
    allow_insecure: bool = False       # keys below 2048 bits (tests only)
    share_woe: bool = False            # send each passive party the WOE of its own bins
    min_bin_frac: float = 0.05         # minimum rows per bin, share of all rows
    min_bin_count: int | None = None   # ... or an absolute count (overrides min_bin_frac)
    chunk_rows: int | None = None      # label ciphertexts per message (None: auto, see chunk_for)
    group_cells: int | None = None     # joint-bin cells per pass (None: rows per task / 8)

    def chunk_for(self, n_rows: int) -> int:
        """Rows per label message: 8192 up to 65536 rows, else a third of the rows (at most 65536),
        so that the passive party's tasks are large enough for 3-feature joint passes."""
        if self.chunk_rows is not None:
            return max(1, int(self.chunk_rows))
        return 8192 if n_rows <= 65536 else min(65536, -(-n_rows // 3))

    def min_count(self, n_rows: int) -> int:
        if self.min_bin_count is not None:
            return max(1, int(self.min_bin_count))
        return max(1, math.ceil(self.min_bin_frac * n_rows))


@dataclass
class FeatureWoe:
    """Statistics of one feature as the active party knows it."""

    party: str
    feature: str          # own name at the active party, alias for passive features
    stats: BinStats


@dataclass
class WoeResult:
    """Result at the active party: every feature of every party."""

    features: dict[str, FeatureWoe]
    own_woe: dict[str, np.ndarray]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def iv(self) -> dict[str, float]:
        return {k: f.stats.iv for k, f in self.features.items()}

    def summary(self) -> pd.DataFrame:
        """One row per feature: party, feature, bins, IV, AUC, KS."""
        return pd.DataFrame([{"party": f.party, "feature": k, "bins": len(f.stats.woe), "iv": f.stats.iv,
                              "auc": f.stats.auc, "ks": f.stats.ks} for k, f in self.features.items()])

    def table(self) -> pd.DataFrame:
        """One row per feature and bin (the WOE/IV table)."""
        rows = []
        for k, f in self.features.items():
            s = f.stats
            for b in range(len(s.woe)):
                rows.append({"party": f.party, "feature": k, "bin": b, "count": int(s.totals[b]),
                             "events": int(s.events[b]), "non_events": int(s.totals[b] - s.events[b]),
                             "woe": float(s.woe[b]), "iv_bin": float(s.iv_bins[b]), "iv": s.iv,
                             "auc": s.auc, "ks": s.ks})
        return pd.DataFrame(rows)


@dataclass
class PassiveWoeResult:
    """Result at a passive party: its aliases and, if shared, the WOE of its own bins."""

    aliases: list[str]
    woe: list[np.ndarray] | None
    timings: dict[str, float] = field(default_factory=dict)

    def transform(self, X_own_bins: np.ndarray) -> np.ndarray:
        """WOE-transform the party's own bin matrix (needs ``share_woe``)."""
        if self.woe is None:
            raise ProtocolError("the active party did not share WOE values in this run (share_woe = false)")
        X = np.asarray(X_own_bins)
        return np.column_stack([w[X[:, j].astype(np.int64)] for j, w in enumerate(self.woe)]) if self.woe else \
            np.empty((len(X), 0))


# ------------------------------------------------------------------------------ helpers

def _bin_counts(X: np.ndarray, n_bins: np.ndarray) -> list[np.ndarray]:
    return [np.bincount(X[:, j].astype(np.int64), minlength=int(n_bins[j])) for j in range(X.shape[1])]


def plan_groups(n_bins: np.ndarray | list[int], max_cells: int) -> list[list[int]]:
    """Consecutive features whose joint bins have at most ``max_cells`` cells."""
    groups: list[list[int]] = []
    cur: list[int] = []
    cells = 1
    for j, k in enumerate(int(v) for v in n_bins):
        if cur and cells * k > max_cells:
            groups.append(cur)
            cur, cells = [], 1
        cur.append(j)
        cells *= max(k, 1)
    if cur:
        groups.append(cur)
    return groups


def _bin_products_chunk(ct: np.ndarray, modulus: int, bins: np.ndarray, n_bins: list[int],
                        max_cells: int) -> bytes:
    """Executor task: per feature and bin, the product of this row block's ciphertexts.

    ``ct`` is ``(m, width)`` big-endian ciphertext bytes, ``bins`` the ``(m, d)`` bin indices.
    Returns ``sum(n_bins)`` products, fixed-width big-endian, feature by feature.
    """
    M = mpz(modulus)
    width = ct.shape[1]
    raw = ct.tobytes()
    from_bytes = mpz.from_bytes
    cts = [from_bytes(raw[i:i + width], "big") for i in range(0, len(raw), width)]
    if any(c <= 0 or c >= M for c in cts):
        raise ProtocolError("label ciphertexts hold values outside (0, modulus)")
    res: list[list[mpz]] = [[] for _ in n_bins]
    for g in plan_groups(n_bins, max_cells):
        cell = np.zeros(len(cts), dtype=np.int64)
        for f in g:
            cell = cell * n_bins[f] + bins[:, f]
        ncell = int(np.prod([n_bins[f] for f in g]))
        acc = [_ONE] * ncell
        for c, x in zip(cell.tolist(), cts):
            acc[c] = acc[c] * x % M
        if len(g) == 1:
            res[g[0]] = acc
            continue
        used = np.unique(cell)
        ul = used.tolist()
        stride = ncell
        for f in g:
            stride //= n_bins[f]
            per = [_ONE] * n_bins[f]
            for c, b in zip(ul, ((used // stride) % n_bins[f]).tolist()):
                per[b] = per[b] * acc[c] % M
            res[f] = per
    return b"".join(v.to_bytes(width, "big") for per in res for v in per)


# ------------------------------------------------------------------------------ active

def woe_active(chan: Channel, y: np.ndarray, X_own_bins: np.ndarray, params: WoeParams | None = None, *,
               feature_names: list[str] | None = None, passive: list[str] | None = None) -> WoeResult:
    """Label holder: WOE/IV/AUC/KS of its own and every passive party's features."""
    p = params or WoeParams()
    t0 = time.perf_counter()
    tm: dict[str, float] = {}
    yy = np.asarray(y)
    if yy.ndim != 1 or (yy.size and not set(np.unique(yy).tolist()) <= {0, 1}):
        raise DataError("labels must be a 1-D array of 0 and 1")
    n = len(yy)
    X, own_nb = check_bin_matrix(X_own_bins, n)
    names = list(feature_names) if feature_names is not None else [f"x{j}" for j in range(X.shape[1])]
    if len(names) != X.shape[1]:
        raise DataError("feature_names must name every column of the bin matrix")
    peers = list(passive) if passive is not None else list(chan.peers)
    min_count = p.min_count(n)
    P = int(yy.sum())
    if P == 0 or P == n:
        raise DataError("WOE needs both events and non-events (the label is constant)")

    pk, sk = keygen(p.scheme, p.key_bits, allow_insecure=p.allow_insecure)
    tm["keygen_s"] = time.perf_counter() - t0
    chunk = p.chunk_for(n)
    n_chunks = max(1, -(-n // chunk))
    setup = {"key": pk.to_bytes(), "n_rows": n, "chunk_rows": chunk, "n_chunks": n_chunks,
             "share_woe": bool(p.share_woe), "min_count": min_count}
    chan.broadcast(TAG_SETUP, setup, kind=Kind.PLAINTEXT, to=peers)
    t1 = time.perf_counter()
    ylab = yy.astype(np.int64)
    for k in range(n_chunks):
        ev = pk.encrypt(ylab[k * chunk:(k + 1) * chunk])
        chan.broadcast(TAG_LABELS, ev.to_wire(), kind=Kind.CIPHERTEXT, to=peers)
    tm["encrypt_send_s"] = time.perf_counter() - t1

    features: dict[str, FeatureWoe] = {}
    own_woe: dict[str, np.ndarray] = {}
    for j, nm in enumerate(names):
        ev_c, tot = counts_by_bin(X[:, j], yy, int(own_nb[j]))
        st = bin_stats(ev_c, tot)
        features[nm] = FeatureWoe(chan.party, nm, st)
        own_woe[nm] = st.woe

    t2 = time.perf_counter()
    for peer in peers:
        msg = chan.recv(peer, TAG_SUMS, expect=dict)
        t3 = time.perf_counter()
        tm[f"wait_{peer}_s"] = t3 - t2
        per = _decode_sums(sk, pk, peer, msg, n, P, min_count)
        tm[f"decrypt_{peer}_s"] = time.perf_counter() - t3
        woes = []
        for alias, (ev_c, tot) in per.items():
            if alias in features:
                raise ProtocolError(f"'{peer}' sent feature alias {alias!r} twice or clashing with another")
            st = bin_stats(ev_c, tot)
            features[alias] = FeatureWoe(peer, alias, st)
            woes.append(st.woe)
        if p.share_woe:
            chan.send(peer, TAG_WOE, {"woe": woes}, kind=Kind.AGGREGATE)
        t2 = time.perf_counter()
    tm["total_s"] = time.perf_counter() - t0
    return WoeResult(features, own_woe, tm)


def _decode_sums(sk: Any, pk: Any, peer: str, msg: dict[str, Any], n: int, P: int,
                 min_count: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    try:
        aliases = [str(a) for a in msg["aliases"]]
        nb = [int(v) for v in msg["n_bins"]]
        counts = np.asarray(msg["counts"], dtype=np.int64)
        packer = Packer.for_key(pk, int(msg["value_bits"]), int(msg["headroom_bits"]))
        ev = EncryptedVector.from_wire(pk, msg["packed"])
    except (KeyError, TypeError, ValueError, CryptoError) as exc:
        raise ProtocolError(f"malformed bin sums from '{peer}': {exc}") from exc
    total = sum(nb)
    if packer.value_bits != 1 or packer.headroom_bits < int(n).bit_length():
        raise ProtocolError(f"packed bin sums from '{peer}' have slots too small for {n} rows")
    if len(aliases) != len(nb) or counts.shape != (total,) or any(k < 1 for k in nb):
        raise ProtocolError(f"bin sums from '{peer}' do not match their layout")
    if packer.slot_bits > 64 or ev.size != -(-total // packer.slots):
        raise ProtocolError(f"packed bin sums from '{peer}' have an unexpected size")
    if total and int(counts.min()) < min_count:
        raise ProtocolError(f"'{peer}' sent a bin with fewer than the minimum {min_count} rows")
    try:
        events = packer.unpack_flat(sk.decrypt_raw(ev), total).astype(np.int64)
    except CryptoError as exc:  # e.g. a plaintext outside the packed layout: not sums of labels
        raise ProtocolError(f"bin sums from '{peer}' do not decrypt to packed counts") from exc
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    off = 0
    for a, k in zip(aliases, nb):
        e, t = events[off:off + k], counts[off:off + k]
        off += k
        if int(t.sum()) != n or int(e.sum()) != P or np.any(e > t):
            raise ProtocolError(f"bin sums from '{peer}' are inconsistent with the labels (feature {a!r})")
        out[a] = (e, t)
    return out


# ------------------------------------------------------------------------------ passive

def woe_passive(chan: Channel, X_own_bins: np.ndarray, params: WoeParams | None = None, *,
                active: str | None = None, alias_prefix: str | None = None) -> PassiveWoeResult:
    """Feature holder: homomorphic per-bin label sums of its own features, sent to ``active``."""
    p = params or WoeParams()
    t0 = time.perf_counter()
    tm: dict[str, float] = {}
    X, nb = check_bin_matrix(X_own_bins)
    n, d = X.shape
    min_count = p.min_count(n)
    counts = _bin_counts(X, nb)
    if d and min(int(c.min()) for c in counts) < min_count:
        raise DataError(f"a bin has fewer than the minimum {min_count} rows; merge bins before running WOE")
    act = active or chan.peers[0]
    setup, pk = recv_key_setup(chan, act, TAG_SETUP, n, p.allow_insecure)
    if bool(setup["share_woe"]) != p.share_woe or int(setup["min_count"]) != min_count:
        raise ProtocolError("share_woe / minimum bin size differ between the parties' parameters")
    chunk, n_chunks = int(setup["chunk_rows"]), int(setup["n_chunks"])
    if chunk < 1 or n_chunks != max(1, -(-n // chunk)):
        raise ProtocolError("chunking announced by the active party does not match the row count")
    M = int(pk.modulus)
    width = pk.ciphertext_bytes
    ex = get_executor()
    nbl = [int(v) for v in nb]
    acc: list[mpz] | None = None
    t_wait = 0.0
    t1 = time.perf_counter()
    for k in range(n_chunks):
        tw = time.perf_counter()
        msg = chan.recv(act, TAG_LABELS, expect=dict)
        t_wait += time.perf_counter() - tw
        a, b = k * chunk, min(n, (k + 1) * chunk)
        ct = np.asarray(msg.get("ct"))
        if (msg.get("scheme") != pk.scheme or msg.get("key") != pk.fingerprint or int(msg.get("frac_bits", -1)) != 0
                or ct.dtype != np.uint8 or ct.shape != (b - a, width)):
            raise ProtocolError("label ciphertexts do not match the announced key or chunk")
        if d == 0:
            continue
        m = b - a
        parts = max(1, min(ex.n_workers, m // 256))
        bounds = np.linspace(0, m, parts + 1).astype(int)
        cells = p.group_cells or max(4, (m // parts) // 8)
        blocks = [(ct[s:e], X[a + s:a + e]) for s, e in zip(bounds[:-1], bounds[1:])]
        blobs = ex.map(_bin_products_chunk, [c for c, _ in blocks], [M] * parts, [x for _, x in blocks],
                       [nbl] * parts, [cells] * parts) if parts > 1 else \
            [_bin_products_chunk(blocks[0][0], M, blocks[0][1], nbl, cells)]
        for blob in blobs:
            vals = [mpz.from_bytes(blob[i:i + width], "big") for i in range(0, len(blob), width)]
            acc = vals if acc is None else [x * v % M for x, v in zip(acc, vals)]
    tm["bin_sums_s"] = time.perf_counter() - t1 - t_wait
    tm["wait_labels_s"] = t_wait

    t2 = time.perf_counter()
    prefix = alias_prefix if alias_prefix is not None else chan.party
    aliases = [f"{prefix}.f{j:03d}" for j in range(d)]
    headroom = max(1, int(n).bit_length())
    packer = Packer.for_key(pk, 1, headroom)
    sums = EncryptedVector(pk, np.fromiter(acc or [], dtype=object, count=len(acc or [])), 0,
                           weight=max((int(c.max()) for c in counts), default=1))
    packed = packer.pack_encrypted(sums).rerandomize() if d else packer.pack_encrypted(sums)
    chan.send(act, TAG_SUMS, {"aliases": aliases, "n_bins": nbl,
                              "counts": np.concatenate(counts).astype(np.int64) if d else np.zeros(0, np.int64),
                              "value_bits": 1, "headroom_bits": headroom, "packed": packed.to_wire()},
              kind=Kind.AGGREGATE)
    tm["pack_send_s"] = time.perf_counter() - t2
    woe = None
    if p.share_woe:
        got = chan.recv(act, TAG_WOE, expect=dict)
        woe = [np.asarray(w, dtype=np.float64) for w in got["woe"]]
        if len(woe) != d or any(len(w) != k for w, k in zip(woe, nbl)):
            raise ProtocolError("WOE values from the active party do not match this party's bins")
    tm["total_s"] = time.perf_counter() - t0
    return PassiveWoeResult(aliases, woe, tm)


__all__ = ["FeatureWoe", "PassiveWoeResult", "WoeParams", "WoeResult", "plan_groups", "woe_active", "woe_passive"]
