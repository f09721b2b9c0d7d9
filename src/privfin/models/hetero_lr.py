"""Vertical federated logistic regression: one active party (labels), any number of passive
parties, no third party.

Algorithm (identical to the oracle :func:`privfin.models.logistic.train_reference`):
mini-batch SGD on the t1 sigmoid approximation ``sigmoid(z) ~ 0.25 z + 0.5``, L2 and L1
(proximal) on the coefficients, learning rate ``lr / (1 + decay * epoch)``, intercept at the active party,
public batch order from a public seed.

Protocol
--------
Every party ``k`` holds its features ``X_k`` and its own weights ``w_k`` in plaintext (the
active party also ``b``), and a Paillier key pair. Fixed point: features and linear predictors
carry ``f = frac_bits`` fractional bits; shares live in ``Z_2^64``.

Set-up (once). Passive parties send their row count, width, public key and parameters;
the active party checks them and sends every party the list of parties, widths and keys.
Every party encrypts its own feature matrix (the active party's with a column of ones
appended for the intercept) under its own key, row by row, packed: the values of one row,
offset to be non-negative (``x*2^f + 2^(feature_bits-1)``), in slots of
``64 + feature_bits + log2(batch) + 2 log2(parties-1) + sigma + 2`` bits (14 slots of 144
bits at 2048 bits with the defaults, for two or three parties), and sends the ciphertexts to every other party.

Per mini-batch (rows ``B`` from the public order):

1. Each passive party ``p`` computes ``z_p = X_p[B] w_p``, draws ``r_p`` uniform on
   ``Z_2^64`` (CSPRNG) and sends ``enc(z_p) - r_p`` to the active party. The active party
   sets ``s = enc(X_a[B] w_a + b + 2 - 4 y_B) + sum_p (enc(z_p) - r_p)``. Now
   ``d' = 4 (sigmoid_t1(z) - y) = s + sum_p r_p`` exists only as shares: ``s`` (active) and
   ``r_p`` (each passive); no truncation is needed (the factor 4 is removed after opening).
2. Cross terms. For every other party ``k``, party ``j`` with share ``e_j`` (``s`` or
   ``r_j``) computes, per ciphertext column, ``prod_{i in B} Enc_k(row_i)^(e_j,i)`` — every
   slot now holds ``sum_i (x_ik + c) e_j,i`` over the integers, a Bos–Coster
   multi-exponentiation with 64-bit exponents — and multiplies in a fresh ``Enc_k(M)`` whose
   slots are ``2^64 R + (-c sum_i e_j,i mod 2^64)``, ``R`` uniform of
   ``feature_bits + log2(batch) + log2(parties-1) + sigma`` bits. Passive parties send these to the active party;
   the active party multiplies the ones aimed at passive ``p`` with its own and sends ``p``
   one product; it keeps the ones aimed at itself.
3. Party ``k`` decrypts: the low 64 bits of each slot are ``X_k[B]^T (d' - e_k) mod 2^64``;
   adding its local ``X_k[B]^T e_k`` gives ``X_k[B]^T d'`` (``2f`` fractional bits); divided
   by 4 this is its own batch gradient ``X_k[B]^T d``. It updates its own weights.

With ``tol`` set, after each epoch every passive party sends the active party one bit (``did
none of my coefficients move by tol or more this epoch``, :func:`~privfin.models.logistic.converged`)
and the active party broadcasts the decision to stop (its own test and all the bits).

Communication per batch: ``8 |B|`` bytes of shares per passive party and a few ciphertexts
(one per 14 columns) per party pair. Computation per batch per party: one multi-exponentiation
of ``|B|`` bases per ciphertext column of every other party, a few encryptions, decryptions.

Security
--------
- **Model.** Semi-honest parties; no third party. The active party must not collude with any
  passive party (two shares of ``d'`` would open the residuals; with several passive parties,
  active + ``p`` would learn ``X_p[B]^T z_q``, batch sums of another passive party's partial
  predictors weighted by ``p``'s features). Passive
  parties colluding among themselves learn nothing of the active party's shares.
  Paillier with ``key_bits >= 2048`` (112-bit security); smaller keys only with
  ``allow_insecure`` (tests).
- **Active party learns**: the passive parties' row counts, widths and public keys; shares
  ``enc(z_p) - r_p`` (uniform on ``Z_2^64``: nothing); ciphertexts under passive keys
  (IND-CPA: nothing); and, decrypted, its own batch gradients ``X_a[B]^T d``: aggregates
  over the batch, which it needs to update its own weights. The intercept gradient
  ``sum_B d`` among them gives it the batch sum of the passive parties' partial predictors. A decrypted slot is ``sum_j (v_j + 2^64 R_j)`` over the
  ``m = parties - 1`` contributions, ``v_j < 2^(64 + feature_bits + log2 batch)`` (plus the
  offset correction, below 2^64) and each ``R_j`` uniform with ``log2 m + sigma`` bits more
  than ``v_j / 2^64``: beyond the low 64 bits (the gradient) the view is within statistical
  distance about ``2^-sigma`` per slot of one independent of the data.
- **Passive party ``p`` learns**: the parties, widths and keys; ciphertexts under other keys
  (nothing); and, decrypted, its own batch gradients ``X_p[B]^T d``. These are aggregates,
  but of its own choosing: a column that is an indicator of a small group of rows (a rare
  WOE bin, one-hot level) gives the residual sum of that group in the batch, as in every
  gradient-revealing vertical LR (FATE's hetero-LR included). Revealing only a masked
  update instead is left for later.
- **Nobody learns** another party's features, labels, per-sample linear predictors,
  residuals or gradients in the clear, nor another party's coefficients. The loss is not
  computed (no loss-based early stopping). Each party returns only its own coefficients.
- With ``tol``: one bit per epoch per passive party to the active party (``lr/converged``,
  ``AGGREGATE``: whether its own coefficients still move) and the stop decision back
  (``lr/stop``, ``PLAINTEXT``); without ``tol`` neither message exists.
- Batch gradients over batches that differ in one row would reveal that row's term; the
  batches here are disjoint within an epoch (a public permutation), and a batch gradient is
  a sum over ``|B|`` rows.
- **Messages and ledger kinds.** ``lr/hello``, ``lr/setup``: ``PLAINTEXT`` (sizes, public keys,
  public parameters); ``lr/encx``, ``lr/cross``, ``lr/grad``: ``CIPHERTEXT``; ``lr/zshare``:
  ``SHARE``; with ``tol`` also ``lr/converged`` (``AGGREGATE``) and ``lr/stop``
  (``PLAINTEXT``). Nothing else is sent.
- Randomness: shares from :func:`privfin.crypto.sharing.random_ring` (AES-CTR keyed from
  ``os.urandom``), masks from ``os.urandom``, Paillier randomizers per
  :mod:`privfin.crypto.paillier`.
- Numeric range: encoded features must satisfy ``|x| < 2^(feature_bits - 1 - frac_bits)``
  (128 by default; checked, :class:`~privfin.errors.DataError`); ``|X_B^T d'|`` must stay
  below ``2^(63 - 2 frac_bits)`` (2^31 by default; standardized or WOE features are far
  below).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gmpy2 import mpz

from privfin.crypto import paillier
from privfin.crypto._he import EncryptedVector, obj_array, spec_of
from privfin.crypto.sharing import decode as ring_decode
from privfin.crypto.sharing import encode as ring_encode
from privfin.crypto.sharing import random_ring
from privfin.crypto.triples import (
    PackedLayout,
    encrypt_packed_chunk,
    multiexp,
    multiexp_plan,
    parse_ciphertexts,
    unpack_low64,
)
from privfin.errors import CryptoError, DataError, ProtocolError
from privfin.models.logistic import (
    LRParams,
    batches,
    check_features,
    check_labels,
    converged,
    learning_rate_at,
    sgd_step,
)
from privfin.runtime.executor import get_executor
from privfin.transport.base import Channel, Kind

_U64 = np.uint64
_M64 = (1 << 64) - 1


@dataclass
class LRPartyModel:
    """What one party ends with: its own coefficients (and, at the active party, the intercept)."""

    party: str
    coef: np.ndarray
    intercept: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    epochs_run: int = 0

    def partial_score(self, X: np.ndarray) -> np.ndarray:
        """This party's own part of the linear predictor (plus the intercept at the active party)."""
        z = check_features(X) @ self.coef
        return z + (self.intercept or 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {"party": self.party, "coef": self.coef.tolist(), "intercept": self.intercept,
                "timings": dict(self.timings), "epochs_run": self.epochs_run}


# --------------------------------------------------------------------------- packing layout

@dataclass(frozen=True)
class PackLayout:
    """Public packing of one party's encrypted rows: ``slots`` per ciphertext of ``slot_bytes``."""

    slot_bytes: int
    slots: int
    ncts: int       # ciphertexts per row
    ncols: int      # encoded columns (features, plus the intercept column at the active party)
    rbits: int      # high mask bits: R < 2^rbits


def feature_offset(params: LRParams) -> int:
    """``c = 2^(feature_bits - 1)``: added to every encoded feature to make it non-negative."""
    return 1 << (params.feature_bits - 1)


def pack_layout(pk: paillier.PaillierPublicKey, ncols: int, n_parties: int, params: LRParams) -> PackLayout:
    """Slots for ``ncols`` columns under ``pk``, for sums of ``n_parties - 1`` masked cross terms."""
    lb = max(0, math.ceil(math.log2(max(params.batch_size, 1))))
    lm = max(0, math.ceil(math.log2(max(n_parties - 1, 1))))
    rbits = params.feature_bits + lb + lm + params.sigma
    slot_bits = 64 + rbits + lm + 2
    slot_bytes = (slot_bits + 7) // 8
    plain_bits = pk.max_int.bit_length() - 1
    slots = plain_bits // (8 * slot_bytes)
    if slots < 1:
        raise CryptoError(f"a {pk.key_bits}-bit key cannot hold one {8 * slot_bytes}-bit slot")
    return PackLayout(slot_bytes, slots, -(-ncols // slots), ncols, rbits)


def encode_features(X: np.ndarray, params: LRParams, intercept_column: bool) -> np.ndarray:
    """Signed fixed-point features (``int64``, ``frac_bits``), with a ones column if asked."""
    lim = 2.0 ** (params.feature_bits - 1 - params.frac_bits)
    if X.size and float(np.max(np.abs(X))) >= lim:
        raise DataError(f"features must satisfy |x| < {lim:g} (feature_bits={params.feature_bits}, "
                        f"frac_bits={params.frac_bits}); standardize or WOE-transform them first")
    q = np.rint(np.ldexp(X, params.frac_bits)).astype(np.int64)
    if intercept_column:
        q = np.hstack([q, np.full((X.shape[0], 1), 1 << params.frac_bits, dtype=np.int64)])
    return q


def _encrypt_rows(xq: np.ndarray, lay: PackLayout, sk: paillier.PaillierPrivateKey, params: LRParams) -> np.ndarray:
    """Rows packed (offset encoding) and encrypted under our key: ``uint8 (n * ncts, kb)``."""
    n = xq.shape[0]
    c = feature_offset(params)
    blocks = np.full((n, lay.ncts * lay.slots), c, dtype=np.int64)
    blocks[:, :lay.ncols] += xq
    blocks = blocks.astype(_U64).reshape(n, lay.ncts, lay.slots)
    kb = sk.public_key.ciphertext_bytes
    blobs = get_executor().map_chunks(encrypt_packed_chunk, blocks, spec_of(sk), lay.slot_bytes, kb, min_chunk=64)
    return np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(n * lay.ncts, kb)


def _parse_cts(payload: Any, pk: paillier.PaillierPublicKey, count: int, what: str) -> list[mpz]:
    kb = pk.ciphertext_bytes
    raw = parse_ciphertexts(payload, pk, count, what).tobytes()
    M = pk.modulus
    vals = [mpz.from_bytes(raw[i:i + kb], "big") for i in range(0, len(raw), kb)]
    if any(not 0 < v < M for v in vals):
        raise ProtocolError(f"{what}: ciphertext outside (0, modulus)")
    return vals


def _cts_payload(vals: Sequence[mpz], pk: paillier.PaillierPublicKey) -> dict[str, Any]:
    kb = pk.ciphertext_bytes
    blob = b"".join(int(v).to_bytes(kb, "big") for v in vals)
    return {"key": pk.fingerprint, "ct": np.frombuffer(blob, dtype=np.uint8).reshape(len(vals), kb)}


def _mask_cts(pk: paillier.PaillierPublicKey, lay: PackLayout, corr: int) -> list[mpz]:
    """Fresh encryptions of packed masks: every slot ``2^64 R + corr``, ``R < 2^rbits`` uniform."""
    nb = (lay.rbits + 7) // 8
    top = (1 << lay.rbits) - 1
    raw = os.urandom(lay.ncts * lay.slots * nb)
    ints = []
    sb = 8 * lay.slot_bytes
    for t in range(lay.ncts):
        v = 0
        for s in range(lay.slots):
            o = (t * lay.slots + s) * nb
            r = int.from_bytes(raw[o:o + nb], "little") & top
            v |= ((r << 64) | corr) << (sb * s)
        ints.append(v)
    return pk._encrypt_ints(ints)


def _cross(encx: list[mpz], lay: PackLayout, pk: paillier.PaillierPublicKey, idx: np.ndarray,
           plan: Any, esum: int, params: LRParams) -> list[mpz]:
    """``prod_i Enc(row_i)^(e_i) * Enc(mask)`` per ciphertext column (exponents in ``plan``)."""
    M = pk.modulus
    corr = (-feature_offset(params) * esum) & _M64
    masks = _mask_cts(pk, lay, corr)
    out = []
    nc = lay.ncts
    for t in range(nc):
        bases = [encx[int(i) * nc + t] for i in idx]
        out.append(multiexp(bases, plan, M) * masks[t] % M)
    return out


def _open_cross(cts: list[mpz], sk: paillier.PaillierPrivateKey, lay: PackLayout) -> np.ndarray:
    """Decrypt packed cross terms: the low 64 bits of each used slot (``uint64 (ncols,)``)."""
    pk = sk.public_key
    res = sk.decrypt_raw(EncryptedVector(pk, obj_array(cts, (len(cts),))))
    key_bytes = (int(sk.plaintext_modulus).bit_length() + 7) // 8
    low = unpack_low64(res, PackedLayout(0, lay.slot_bytes, lay.slots), key_bytes)
    return low.reshape(-1)[:lay.ncols]


def _local_term(xq: np.ndarray, idx: np.ndarray, e: np.ndarray) -> np.ndarray:
    """``X[B]^T e mod 2^64`` for signed fixed-point ``X`` and ring elements ``e``."""
    return xq[idx].view(_U64).T @ e


def _exchange_rows(chan: Channel, xq: np.ndarray, sk: paillier.PaillierPrivateKey,
                   pks: dict[str, paillier.PaillierPublicKey], dims: dict[str, int], others: list[str],
                   params: LRParams, timings: dict[str, float], t: float
                   ) -> tuple[dict[str, PackLayout], dict[str, list[mpz]], float]:
    """Set-up shared by every role: send this party's rows encrypted under its own key to
    every other party, receive theirs. Returns the packing layouts, the peers' encrypted
    rows and the updated timing mark."""
    lays = {k: pack_layout(pks[k], dims[k], len(pks), params) for k in pks}
    mine = _encrypt_rows(xq, lays[chan.party], sk, params)
    t = _tick(timings, "encrypt", t)
    chan.broadcast("lr/encx", {"key": sk.public_key.fingerprint, "ct": mine}, kind=Kind.CIPHERTEXT, to=others)
    n = xq.shape[0]
    encx = {p: _parse_cts(chan.recv(p, "lr/encx"), pks[p], n * lays[p].ncts, f"'lr/encx' from '{p}'")
            for p in others}
    return lays, encx, _tick(timings, "wait", t)


def _tick(timings: dict[str, float], name: str, t0: float) -> float:
    t1 = time.perf_counter()
    timings[name] = timings.get(name, 0.0) + t1 - t0
    return t1


# --------------------------------------------------------------------------- roles

def lr_active(chan: Channel, X_own: Any, y: Any, params: LRParams, *, passives: Sequence[str] | None = None,
              trace: dict[str, list] | None = None) -> LRPartyModel:
    """Active party (label holder): trains; returns its own coefficients and the intercept.

    ``passives``: the passive parties (default: every peer of ``chan``). ``trace`` (tests
    only): receives this party's own plaintext intermediates per batch."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    X = check_features(X_own, "active features")
    yy = check_labels(y)
    n, d = X.shape
    if yy.shape[0] != n:
        raise DataError(f"active party: features have {n} rows, labels {yy.shape[0]}")
    plist = list(chan.peers if passives is None else passives)
    if not plist:
        raise DataError("hetero LR needs at least one passive party")
    if d == 0 and not params.fit_intercept:
        raise DataError("the active party needs a feature column or an intercept")
    xq = encode_features(X, params, params.fit_intercept)
    pk, sk = paillier.keygen(params.key_bits, allow_insecure=params.allow_insecure)
    t = _tick(timings, "keygen", t)

    with chan.stage("lr/setup"):
        hello = chan.gather("lr/hello", plist, expect=dict)
        t = _tick(timings, "wait", t)
        pks: dict[str, paillier.PaillierPublicKey] = {chan.party: pk}
        dims: dict[str, int] = {chan.party: xq.shape[1]}
        for p, h in hello.items():
            if h.get("params") != params.to_dict():
                raise ProtocolError(f"passive party '{p}' runs different LR parameters")
            if int(h.get("n", -1)) != n:
                raise DataError(f"row counts differ: active party has {n} rows, passive party '{p}' has "
                                f"{h.get('n')}; align the samples (PSI) first")
            ppk = paillier.PaillierPublicKey.from_dict(h["pk"])
            if ppk.key_bits < 2048 and not params.allow_insecure:
                raise CryptoError(f"passive party '{p}' sent a {ppk.key_bits}-bit key; at least 2048 bits are required")
            pks[p], dims[p] = ppk, int(h["d"])
        setup = {"parties": [chan.party, *plist], "pks": {k: v.to_dict() for k, v in pks.items()}, "dims": dims}
        chan.broadcast("lr/setup", setup, to=plist)
        lays, encx, t = _exchange_rows(chan, xq, sk, pks, dims, plist, params, timings, t)
        my = lays[chan.party]

    w = np.zeros(d)
    b = 0.0
    f = params.frac_bits
    epochs_run = 0
    with chan.stage("lr/train"):
        for epoch in range(params.epochs):
            lr = learning_rate_at(params, epoch)
            before = np.r_[w, b]
            epochs_run += 1
            for idx in batches(n, params, epoch):
                m = len(idx)
                za = X[idx] @ w + b
                s = ring_encode(za + 2.0 - 4.0 * yy[idx], f)
                t = _tick(timings, "local", t)
                for p in plist:
                    zs = chan.recv(p, "lr/zshare")
                    if not isinstance(zs, np.ndarray) or zs.dtype != _U64 or zs.shape != (m,):
                        raise ProtocolError(f"'lr/zshare' from '{p}': expected uint64 ({m},)")
                    s = s + zs
                t = _tick(timings, "wait", t)
                plan = multiexp_plan([int(v) for v in s.tolist()])
                esum = int(s.sum(dtype=_U64))
                outs = {p: _cross(encx[p], lays[p], pks[p], idx, plan, esum, params) for p in plist}
                t = _tick(timings, "multiexp", t)
                crosses = chan.gather("lr/cross", plist, expect=dict)
                t = _tick(timings, "wait", t)
                for q, msg in crosses.items():
                    if set(msg) != set(pks) - {q}:
                        raise ProtocolError(f"'lr/cross' from '{q}': expected cross terms for {sorted(set(pks) - {q})}")
                    for p, payload in msg.items():
                        vals = _parse_cts(payload, pks[p], lays[p].ncts, f"'lr/cross' from '{q}'")
                        M = pks[p].modulus
                        acc = outs.get(p, [mpz(1)] * lays[p].ncts)
                        outs[p] = [a * v % M for a, v in zip(acc, vals)]
                for p in plist:
                    chan.send(p, "lr/grad", _cts_payload(outs[p], pks[p]), kind=Kind.CIPHERTEXT)
                t = _tick(timings, "multiexp", t)
                g = _open_cross(outs[chan.party], sk, my) + _local_term(xq, idx, s)
                t = _tick(timings, "decrypt", t)
                gsum = ring_decode(g, 2 * f) / 4.0
                if trace is not None:
                    trace.setdefault("z", []).append(za.copy())
                    trace.setdefault("zq", []).append(ring_encode(za, f))
                    trace.setdefault("grad", []).append(gsum.copy())
                    trace.setdefault("idx", []).append(idx.copy())
                w = sgd_step(w, gsum[:d], m, lr, params)
                if params.fit_intercept:
                    b = b - lr * float(gsum[d]) / m
                t = _tick(timings, "local", t)
            if params.tol is not None:
                flags = chan.gather("lr/converged", plist, expect=bool)
                stop = converged(before, np.r_[w, b], params) and all(flags.values())
                chan.broadcast("lr/stop", stop, to=plist)
                t = _tick(timings, "wait", t)
                if stop:
                    break
    return LRPartyModel(chan.party, w, b if params.fit_intercept else None, timings, epochs_run)


def lr_passive(chan: Channel, X_own: Any, params: LRParams, *, active: str | None = None,
               trace: dict[str, list] | None = None) -> LRPartyModel:
    """Passive party (features only): trains; returns its own coefficients.

    ``active``: the active party's name (default: the only peer of ``chan``)."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    X = check_features(X_own, "passive features")
    n, d = X.shape
    if active is None:
        if len(chan.peers) != 1:
            raise DataError("lr_passive: name the active party (active=...) when there are several peers")
        active = chan.peers[0]
    if d == 0:
        raise DataError("a passive party needs at least one feature column")
    xq = encode_features(X, params, False)
    pk, sk = paillier.keygen(params.key_bits, allow_insecure=params.allow_insecure)
    t = _tick(timings, "keygen", t)

    with chan.stage("lr/setup"):
        chan.send(active, "lr/hello", {"n": n, "d": d, "pk": pk.to_dict(), "params": params.to_dict()})
        setup = chan.recv(active, "lr/setup", expect=dict)
        t = _tick(timings, "wait", t)
        try:
            parties = [str(p) for p in setup["parties"]]
            pks = {str(k): paillier.PaillierPublicKey.from_dict(v) for k, v in setup["pks"].items()}
            dims = {str(k): int(v) for k, v in setup["dims"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProtocolError(f"'lr/setup' from '{active}' is malformed: {exc}") from exc
        if parties[0] != active or chan.party not in parties or pks.get(chan.party) != pk or dims.get(chan.party) != d:
            raise ProtocolError(f"'lr/setup' from '{active}' does not match this party's hello")
        for k, kpk in pks.items():
            if kpk.key_bits < 2048 and not params.allow_insecure:
                raise CryptoError(f"party '{k}' uses a {kpk.key_bits}-bit key; at least 2048 bits are required")
        others = [p for p in parties if p != chan.party]
        lays, encx, t = _exchange_rows(chan, xq, sk, {k: pks[k] for k in parties}, dims, others, params, timings, t)
        my = lays[chan.party]

    w = np.zeros(d)
    f = params.frac_bits
    epochs_run = 0
    with chan.stage("lr/train"):
        for epoch in range(params.epochs):
            lr = learning_rate_at(params, epoch)
            before = w.copy()
            epochs_run += 1
            for idx in batches(n, params, epoch):
                m = len(idx)
                zp = X[idx] @ w
                zq = ring_encode(zp, f)
                r = random_ring(m)
                chan.send(active, "lr/zshare", zq - r, kind=Kind.SHARE)
                t = _tick(timings, "local", t)
                plan = multiexp_plan([int(v) for v in r.tolist()])
                esum = int(r.sum(dtype=_U64))
                out = {k: _cts_payload(_cross(encx[k], lays[k], pks[k], idx, plan, esum, params), pks[k])
                       for k in others}
                chan.send(active, "lr/cross", out, kind=Kind.CIPHERTEXT)
                t = _tick(timings, "multiexp", t)
                back = _parse_cts(chan.recv(active, "lr/grad"), pk, my.ncts, f"'lr/grad' from '{active}'")
                t = _tick(timings, "wait", t)
                g = _open_cross(back, sk, my) + _local_term(xq, idx, r)
                t = _tick(timings, "decrypt", t)
                gsum = ring_decode(g, 2 * f) / 4.0
                if trace is not None:
                    trace.setdefault("z", []).append(zp.copy())
                    trace.setdefault("zq", []).append(zq)
                    trace.setdefault("grad", []).append(gsum.copy())
                w = sgd_step(w, gsum, m, lr, params)
                t = _tick(timings, "local", t)
            if params.tol is not None:
                chan.send(active, "lr/converged", converged(before, w, params), kind=Kind.AGGREGATE)
                if chan.recv(active, "lr/stop", expect=bool):
                    break
    return LRPartyModel(chan.party, w, None, timings, epochs_run)


# --------------------------------------------------------------------------- estimator

class HeteroLogisticRegression:
    """scikit-learn-style wrapper over one party's role.

    >>> est = HeteroLogisticRegression(chan, role="active", params=LRParams(epochs=5))
    >>> est.fit(X_bank, y)            # the provider runs .fit(X_provider) with role="passive"
    >>> est.coef_, est.intercept_
    """

    def __init__(self, chan: Channel, role: str, params: LRParams | None = None, *,
                 peers: Sequence[str] | None = None, active: str | None = None) -> None:
        if role not in ("active", "passive"):
            raise DataError(f"role must be 'active' or 'passive' (got {role!r})")
        self.chan, self.role, self.params = chan, role, params or LRParams()
        self.peers, self.active = peers, active

    def fit(self, X: Any, y: Any = None) -> HeteroLogisticRegression:
        if self.role == "active":
            if y is None:
                raise DataError("the active party must pass labels y")
            model = lr_active(self.chan, X, y, self.params, passives=self.peers)
        else:
            if y is not None:
                raise DataError("a passive party has no labels (pass y=None)")
            model = lr_passive(self.chan, X, self.params, active=self.active)
        self.model_ = model
        self.coef_ = model.coef
        self.intercept_ = model.intercept
        return self

    def partial_score(self, X: Any) -> np.ndarray:
        """This party's own part of the linear predictor (never the joint score)."""
        return self.model_.partial_score(X)


__all__ = ["HeteroLogisticRegression", "LRPartyModel", "PackLayout", "encode_features", "lr_active", "lr_passive",
           "pack_layout"]
