"""Vertical federated logistic regression: one active party (labels), any number of passive
parties, no third party.

Algorithm (identical to the oracle :func:`privfin.models.logistic.train_reference`):
mini-batch SGD on the t1 sigmoid approximation ``sigmoid(z) ~ 0.25 z + 0.5``, L2 and L1
(proximal) on the coefficients, learning rate ``lr / (1 + decay * epoch)``, intercept at the active party,
public batch order from a public seed, optional class weights (below).

Protocol
--------
Every party ``k`` holds its features ``X_k`` and its own weights ``w_k`` in plaintext (the
active party also ``b``), and a Paillier key pair. Fixed point: features and linear predictors
carry ``f = frac_bits`` fractional bits; gradients are opened in ``Z_2^64``.

Set-up (once). Passive parties send their row count, width, public key and parameters;
the active party checks them and sends every party the list of parties, widths and keys.
Every party encrypts its own feature matrix (the active party's with a column of ones
appended for the intercept) under its own key, row by row, packed: the values of one row,
offset to be non-negative (``x*2^f + 2^(feature_bits-1)``), in slots of
``64 + feature_bits + log2(batch) + 2 log2(parties-1) + sigma + 2`` bits (14 slots of 144
bits at 2048 bits with the defaults, for two or three parties), and sends the ciphertexts to every other party.

Per mini-batch (rows ``B`` from the public order), with ``d' = 4 (sigmoid_t1(z) - y) =
a + sum_p z_p`` where ``a = X_a[B] w_a + b + 2 - 4 y_B`` (active party) and ``z_p = X_p[B] w_p``
(passive party ``p``), all in fixed point (``f`` bits) and checked to satisfy
``|.| < 2^(z_bits - 1 - f)``:

1. Cross terms. Party ``j`` (active: ``e_j = a``; passive: ``e_j = z_j``) computes, for every
   other party ``k`` and per ciphertext column, ``prod_{i in B} Enc_k(row_i)^(e_j,i + c')``
   with ``c' = 2^(z_bits-1)`` (non-negative exponents of ``z_bits`` = 26 bits: a Bos–Coster
   multi-exponentiation about 2.4x cheaper than with 64-bit ring shares) — every slot now
   holds ``sum_i (x_ik + c)(e_j,i + c')`` over the integers — and multiplies in a fresh
   ``Enc_k(M)`` whose slots are ``2^64 R + (-c sum_i (e_j,i + c') + m_j mod 2^64)``, ``R``
   uniform of ``feature_bits + log2(batch) + log2(parties-1) + sigma`` bits, ``m_j`` = 0
   except on the cross terms of passive parties aimed at the active party when there are
   two or more passive parties: then ``m_j`` are pairwise-cancelling masks (seeds agreed
   between passive parties at set-up, ``lr/train/seed``; one AES-CTR stream per batch), so
   that only their sum opens. Passive parties send these to the active party; the active
   party multiplies the ones aimed at passive ``p`` with its own and sends ``p`` one
   product; it keeps the ones aimed at itself.
2. Party ``k`` decrypts: the low 64 bits of each slot are ``X_k[B]^T (d' - e_k) + (m_k c')
   sum_B x_k mod 2^64`` (``m_k`` contributions); subtracting the offset term and adding its
   local ``X_k[B]^T e_k`` gives ``X_k[B]^T d'`` (``2f`` fractional bits); divided by 4 this
   is its own batch gradient ``X_k[B]^T d``. It updates its own weights.

No value is ever sent as a share: each party's per-sample values only ever appear as
exponents applied to another party's ciphertexts, which a fresh encryption re-randomizes.

Class weights (``params.class_weight``, :func:`~privfin.models.logistic.sample_weights`): the
gradient becomes ``X_k[B]^T (w . d)`` with the per-row weight ``w_i`` of row ``i``'s class,
known to the active party only, rounded to ``2^-8`` (``WEIGHT_FRAC_BITS``; the oracle uses the
same values) and below ``2^MAX_WEIGHT_BITS``; ``W_i = w_i 2^8``. Changes to the protocol above:

- The active party encrypts its rows pre-weighted (``round(w_i x_a,i 2^f)``, intercept column
  ``w_i``): the passive parties' unchanged cross terms then give ``X_a^T (w . z_p)``, its local
  term is ``(w . X_a)^T a``. Its exponents towards passive parties are ``w . a``; those
  cross terms are raised to ``2^8`` (the scale of the weighted terms below) and their high
  masks get a public offset that keeps every slot positive.
- Set-up: for every passive ``p`` the active party turns each ``Enc_p(row_i)`` (received as
  today) into ``V_p,i = Enc_p(row_i)^(W_i) * Enc_p(K' - W_i c + r_i)``: every slot holds
  ``W_i x_p,ij + rho'_ij`` with ``rho' = K' + r`` (``K' = 2^(feature_bits-1+18)`` public,
  ``r`` uniform with ``sigma`` bits more than ``W x``; the fresh encryption re-randomizes). It
  sends every passive party all ``V_p`` (``lr/encw``) and ``Enc_a(rho'_p)`` rows under its
  own key (``lr/encr``). Passive parties send their encrypted rows to the active party only.
- Per batch every passive ``q`` sends, besides its cross term to the active party, for every
  passive ``p`` (itself included) ``A_qp = prod_B V_p,i^(z_q,i) * Enc_p(m)`` (signed exponents:
  ``V^-1`` for negative ``z``, inverses computed once) and ``B_qp = prod_B Enc_a(rho'_p,i)^(z_q,i
  + c') * Enc_a(2^64 R + m)``, ``m`` fresh uniform on ``Z_2^64`` (``lr/corr``). The active party
  decrypts ``B_qp`` (``rho'_p^T z_q + m`` after removing ``c' sum_B rho'_p``), multiplies every
  ``A_qp`` and ``Enc_p(-sum_q (rho'_p^T z_q + m))`` into ``p``'s ``lr/grad``. Party ``p``
  decrypts ``X_p^T (w . (a + sum_q z_q))`` at ``2f + 8`` fractional bits (the passive parties'
  direct cross terms to each other are no longer sent).
- Cost per batch: a passive party runs ``1 + 2 x passives`` multi-exponentiations instead of
  ``passives`` (independent: they run on the executor side by side); set-up: one short
  exponentiation, one fresh encryption under ``p``'s key and one under its own per row and
  passive party at the active party, one inversion per row and passive party at every
  passive party. (A design in which ``p`` decrypts masked weighted rows once and
  computes its own term locally needs ``n`` decryptions per passive party at set-up, about
  4 ms each: ~90 CPU-s on default-credit, against ~20 CPU-s for this one.)

With ``tol`` set, after each epoch every passive party sends the active party one bit (``did
none of my coefficients move by tol or more this epoch``, :func:`~privfin.models.logistic.converged`)
and the active party broadcasts the decision to stop (its own test and all the bits).

Communication per batch: a few ciphertexts (one per 14 columns) per party pair.
Computation per batch per party: one multi-exponentiation of ``|B|`` bases with 26-bit
exponents per ciphertext column of every other party, a few encryptions, decryptions.

Security
--------
- **Model.** Semi-honest parties; no third party. With several passive parties the active
  party must not collude with a passive party ``p`` (together they would learn
  ``X_p[B]^T z_q``, batch sums of another passive party's partial predictors weighted by
  ``p``'s features, and ``X_a[B]^T z_q`` by removing ``p``'s mask). Passive parties colluding
  among themselves learn nothing of the active party's values (they only ever hold
  ciphertexts under its key and their own gradients).
  Paillier with ``key_bits >= 2048`` (112-bit security); smaller keys only with
  ``allow_insecure`` (tests).
- **Active party learns**: the passive parties' row counts, widths and public keys;
  ciphertexts under passive keys (IND-CPA: nothing); and, decrypted, its own batch gradients
  ``X_a[B]^T d``: aggregates over the batch, which it needs to update its own weights. The
  intercept gradient ``sum_B d`` among them gives it the batch sum of the passive parties'
  partial predictors. With one passive party the decrypted cross term is its gradient minus
  its local term (nothing more); with several, each passive party's cross term carries a
  uniform mask on ``Z_2^64`` that cancels only in the product, so it learns only the sum. A
  decrypted slot is ``sum_j (v_j + 2^64 R_j)`` over the ``m = parties - 1`` contributions,
  ``v_j < 2^(z_bits + feature_bits + log2 batch)`` (plus the offset correction, below
  2^64) and each ``R_j`` uniform with at least ``log2 m + sigma`` bits more than
  ``v_j / 2^64``: beyond the low 64 bits (the gradient) the view is within statistical
  distance about ``2^-sigma`` per slot of one independent of the data.
- **Passive party ``p`` learns**: the parties, widths and keys; ciphertexts under other keys
  (nothing); and, decrypted, its own batch gradients ``X_p[B]^T d``. These are aggregates,
  but of its own choosing: a column that is an indicator of a small group of rows (a rare
  WOE bin, one-hot level) gives the residual sum of that group in the batch, as in every
  gradient-revealing vertical LR (FATE's hetero-LR included). Revealing only a masked
  update instead is left for later.
- **Class weights.** Passive parties learn nothing of ``w`` or ``y``: they receive only
  ciphertexts under the active party's key (``Enc_a(w . x_a)``, ``Enc_a(rho')``) and ``V_p``
  under passive keys; ``p`` could decrypt its own ``V_p``, whose slots ``W x + rho'`` are within
  statistical distance ``2^-sigma`` of independent of ``W`` (``r`` has ``sigma`` bits more), and
  the fresh encryption makes ``V_p`` unlinkable to ``p``'s own ``Enc_p(row_i)`` (a bare power
  would reveal ``W_i`` to ``p``, who knows its randomizer). It still decrypts only its own
  (weighted) batch gradient. The ``class_weight`` setting itself is public job configuration
  (as all of ``LRParams``): an explicit ``{0: w0, 1: w1}`` is known to everyone, ``"balanced"``
  weights (which reveal class counts) are computed and kept by the active party. The active
  party learns ``rho'_p[B]^T z_q + m`` (``m`` uniform on ``Z_2^64``; above bit 64 the mask
  ``R`` has ``sigma`` bits more than the sum), i.e. nothing beyond today's view; the ``A_qp``
  it relays are under ``p``'s key. Its own gradient is now the weighted one. In a decrypted
  weighted slot of ``p`` the active party's high mask (``sigma`` bits more than the signed
  terms above bit 64, plus the public offset) hides everything above the low 64 bits. With
  weights the numeric range of a passive party's weighted gradient is ``|X_p[B]^T (w . d')| <
  2^(63 - 2 frac_bits - 8)`` (2^23 by default).
- **Nobody learns** another party's features, labels, per-sample linear predictors,
  residuals or gradients in the clear, nor another party's coefficients. The training loss
  is not computed; early stopping (below) uses a validation split. Each party returns only
  its own coefficients.
- With ``tol``: one bit per epoch per passive party to the active party (``lr/converged``,
  ``AGGREGATE``: whether its own coefficients still move) and the stop decision back
  (``lr/stop``, ``PLAINTEXT``: ``{stop, improved}``); without ``tol`` and early stopping
  neither message exists.
- **Early stopping** (``params.early_stopping``, validation rows given to every party): after
  each epoch the active party scores the validation rows by federated batch prediction (below;
  messages ``lr/val/seed``, ``lr/val/req``, ``lr/val/rep``) with the current coefficients,
  computes the metric (log-loss or AUC) itself and broadcasts ``lr/stop`` ``{stop,
  improved}``; every party keeps its coefficients of the last improving epoch. The active
  party learns, per epoch, the total validation linear predictors -- exactly what prediction
  reveals (with one passive party: its partial predictors of the validation rows under the
  current coefficients); passive parties learn one "improved"/"stop" bit per epoch.
- Batch gradients over batches that differ in one row would reveal that row's term; the
  batches here are disjoint within an epoch (a public permutation), and a batch gradient is
  a sum over ``|B|`` rows.
- **Messages and ledger kinds.** ``lr/hello``, ``lr/setup``: ``PLAINTEXT`` (sizes, public keys,
  public parameters); ``lr/encx``, ``lr/cross``, ``lr/grad``: ``CIPHERTEXT``; between passive
  parties (two or more) ``lr/train/seed``: ``SHARE`` (a 32-byte mask seed); with ``tol``
  also ``lr/converged`` (``AGGREGATE``) and ``lr/stop`` (``PLAINTEXT``); with early stopping
  ``lr/val/*`` and ``lr/stop``; with class weights ``lr/encw``, ``lr/encr`` (active to
  passive, set-up) and ``lr/corr`` (passive to active, per batch), all ``CIPHERTEXT``.
  Nothing else is sent during training.
- **Federated prediction** (:class:`FederatedPredictor` at the active party,
  :func:`predict_passive` at each passive party, over :mod:`privfin.models.serving`). Set-up:
  every pair of passive parties agrees a 32-byte seed (``lr/predict/seed``, ``SHARE``, sent
  only between those two). A request (``lr/predict/req``, ``PLAINTEXT``) names a score
  (``"lr"``, ``"points"``...), a nonce and either aligned row positions or aligned ids; each
  passive party answers ``encode(z_p) + mask_p`` (``lr/predict/rep``) where the masks of all
  passive parties sum to zero (pairwise AES-CTR streams keyed by the seeds, one stream per
  nonce; a nonce that does not increase is refused, so no mask is used twice). The active
  party adds its own part and learns, per requested row, only the **total** score.
  With **two or more** passive parties each reply is uniform on ``Z_2^64`` (kind ``SHARE``)
  and the active party learns nothing of any single passive party's part beyond what the
  total implies; with **one** passive party there is no mask (kind ``PLAINTEXT``): the total
  minus the active party's own part *is* that passive party's partial score, which any
  prediction reveals. Collusion: the active party with all passive parties but one learns
  that one's part. **Passive parties learn** which aligned rows/ids are scored (the request
  is in the clear; the ids are the intersection, which they already know) and nothing
  else; an id outside the aligned set gets an error reply (the active party already knows
  the intersection, so that error reveals nothing). The same path assembles scorecard
  points (:mod:`privfin.models.scorecard`: each party scores its own bins).
- Randomness: slot masks ``R`` and mask seeds from ``os.urandom``, pairwise masks from
  :func:`privfin.crypto.sharing.prg_ring` (AES-CTR keyed by the seeds), Paillier randomizers per
  :mod:`privfin.crypto.paillier`.
- Numeric range: encoded features must satisfy ``|x| < 2^(feature_bits - 1 - frac_bits)``
  (128 by default; checked, :class:`~privfin.errors.DataError`); ``|X_B^T d'|`` must stay
  below ``2^(63 - 2 frac_bits)`` (2^31 by default; standardized or WOE features are far
  below); each party checks its own per-sample values ``a`` / ``z_p`` against
  ``2^(z_bits - 1 - frac_bits)`` (512 by default) and stops with a
  :class:`~privfin.errors.DataError` (never a wrong result) if one is out of range.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Self

import gmpy2
import numpy as np
from gmpy2 import mpz

from privfin.crypto import paillier
from privfin.crypto._he import EncryptedVector, check_peer_key, obj_array, slots_for
from privfin.crypto.packing import Packer
from privfin.crypto.sharing import decode as ring_decode
from privfin.crypto.sharing import encode as ring_encode
from privfin.crypto.sharing import prg_ring
from privfin.crypto.triples import (
    PackedLayout,
    multiexp,
    multiexp_plan,
    parse_ciphertexts,
    unpack_low64,
)
from privfin.errors import DataError, ProtocolError
from privfin.runtime.executor import get_executor
from privfin.models.logistic import (
    MAX_WEIGHT_BITS,
    WEIGHT_FRAC_BITS,
    EarlyStopping,
    LRParams,
    batches,
    check_features,
    check_labels,
    check_validation,
    converged,
    learning_rate_at,
    sample_weights,
    sgd_step,
    sigmoid,
)
from privfin.models.serving import Client, Reply, serve
from privfin.transport.base import Channel, Kind

_U64 = np.uint64
Scorer = Callable[[np.ndarray], np.ndarray]  # row positions -> one party's partial scores
_M64 = (1 << 64) - 1


@dataclass
class LRPartyModel:
    """What one party ends with: its own coefficients (and, at the active party, the intercept)."""

    party: str
    coef: np.ndarray
    intercept: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    epochs_run: int = 0
    best_epoch: int | None = None  # with early stopping (active party): the epoch kept
    val_scores: list[float] | None = None  # with early stopping (active party): metric per epoch

    def calibrated(self, slope: float, intercept: float = 0.0) -> LRPartyModel:
        """This party's part of the model ``intercept + slope * z`` (Platt scaling of the joint
        linear predictor ``z``): coefficients times ``slope``; at the active party the intercept
        becomes ``intercept + slope * b`` (a passive party passes no intercept)."""
        b = None if self.intercept is None else intercept + slope * self.intercept
        return replace(self, coef=self.coef * slope, intercept=b)

    def partial_score(self, X: np.ndarray) -> np.ndarray:
        """This party's own part of the linear predictor (plus the intercept at the active party)."""
        z = check_features(X) @ self.coef
        return z + (self.intercept or 0.0)

    def scorer(self, X: np.ndarray) -> Scorer:
        """``rows -> partial_score(X[rows])`` over this party's aligned rows ``X``, for
        :class:`FederatedPredictor` / :func:`predict_passive`."""
        Xc = check_features(X)
        if Xc.shape[1] != len(self.coef):
            raise DataError(f"expected {len(self.coef)} feature columns, got {Xc.shape[1]}")
        b = self.intercept or 0.0
        return lambda rows: Xc[rows] @ self.coef + b

    def to_dict(self) -> dict[str, Any]:
        return {"party": self.party, "coef": self.coef.tolist(), "intercept": self.intercept,
                "timings": dict(self.timings), "epochs_run": self.epochs_run, "best_epoch": self.best_epoch,
                "val_scores": self.val_scores}


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
    slots = slots_for(pk, slot_bytes)
    return PackLayout(slot_bytes, slots, -(-ncols // slots), ncols, rbits)


def weight_layout(pk: paillier.PaillierPublicKey, ncols: int, n_parties: int, params: LRParams) -> PackLayout:
    """Class weights: slots for a passive party's rows (and for the active party's masks
    ``rho'`` of them) whose values reach :func:`weighted_value_bits` bits, summed with
    ``z_bits`` exponents over a batch and over the passive parties: the high mask has ``sigma``
    bits more than such a sum above bit 64, plus room for the public offset of
    :func:`weight_high_offset` that keeps every slot positive when exponents are signed."""
    lb = max(0, math.ceil(math.log2(max(params.batch_size, 1))))
    lm = max(0, math.ceil(math.log2(max(n_parties - 1, 1))))
    rbits = weighted_value_bits(params) + params.z_bits + lb + lm - 64 + params.sigma + 1
    slot_bytes = (64 + rbits + lm + 3 + 7) // 8
    slots = slots_for(pk, slot_bytes)
    return PackLayout(slot_bytes, slots, -(-ncols // slots), ncols, rbits)


def weight_bits() -> int:
    """Public bound on the bits of an encoded class weight ``W = round(w 2^WEIGHT_FRAC_BITS)``."""
    return WEIGHT_FRAC_BITS + MAX_WEIGHT_BITS


def weighted_value_bits(params: LRParams) -> int:
    """Bits of a weighted row slot ``W x + rho'`` (``|W x| < K' = 2^(feature_bits - 1 +
    weight_bits)``, ``rho' = K' + r``, ``r < 2^(feature_bits + weight_bits + sigma)``)."""
    return params.feature_bits + weight_bits() + params.sigma + 1


def weight_high_offset(n_parties: int, params: LRParams) -> int:
    """Public offset of the active party's high mask in a passive party's weighted gradient
    slots: above the magnitude of the signed weighted terms divided by ``2^64``."""
    lb = max(0, math.ceil(math.log2(max(params.batch_size, 1))))
    lm = max(0, math.ceil(math.log2(max(n_parties - 1, 1))))
    return 1 << max(0, weighted_value_bits(params) + params.z_bits + lb + lm + 1 - 64)


def layouts(pks: dict[str, paillier.PaillierPublicKey], dims: dict[str, int], active: str, params: LRParams
            ) -> dict[str, PackLayout]:
    """Every party's row layout (``pks``: the active party first): :func:`pack_layout`; with
    class weights the passive parties' rows use :func:`weight_layout`."""
    if params.class_weight is None:
        return {k: pack_layout(pks[k], dims[k], len(pks), params) for k in pks}
    return {k: (pack_layout if k == active else weight_layout)(pks[k], dims[k], len(pks), params) for k in pks}


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
    c = feature_offset(params)
    return _encrypt_packed((xq + c).astype(_U64), lay, sk, _U64(c))


def _encrypt_packed(vals: np.ndarray, lay: PackLayout, sk: paillier.PaillierPrivateKey, pad: Any = _U64(0)
                    ) -> np.ndarray:
    """Rows of ``uint64`` slot values (unused slots ``pad``) packed and encrypted under our key."""
    n = vals.shape[0]
    blocks = np.full((n, lay.ncts * lay.slots), pad, dtype=_U64)
    blocks[:, :lay.ncols] = vals
    blocks = blocks.reshape(n * lay.ncts, lay.slots)
    packer = Packer(64, 8 * lay.slot_bytes - 64, sk.public_key.max_int.bit_length() - 1)
    ev = sk.encrypt_ints(packer.pack(blocks))   # owner-side CRT encryption, halves over the executor
    return np.asarray(ev.to_wire()["ct"])


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


def _mask_cts(pk: paillier.PaillierPublicKey, lay: PackLayout, corr: int, extra: np.ndarray | None = None,
              high: int = 0, random_high: bool = True) -> list[mpz]:
    """Fresh encryptions of packed masks: every slot ``2^64 (R + high) + (corr + extra[slot] mod
    2^64)``, ``R < 2^rbits`` uniform (``extra``: optional per-column ``uint64`` values;
    ``random_high=False``: ``R = 0``, for values only ever added to slots that carry a mask)."""
    nb = (lay.rbits + 7) // 8
    top = (1 << lay.rbits) - 1 if random_high else 0
    raw = os.urandom(lay.ncts * lay.slots * nb) if random_high else bytes(lay.ncts * lay.slots * nb)
    add = [0] * (lay.ncts * lay.slots)
    if extra is not None:
        add[:lay.ncols] = [int(v) for v in extra.tolist()]
    ints = []
    sb = 8 * lay.slot_bytes
    for t in range(lay.ncts):
        v = 0
        for s in range(lay.slots):
            o = (t * lay.slots + s) * nb
            r = (int.from_bytes(raw[o:o + nb], "little") & top) + high
            v |= ((r << 64) | ((corr + add[t * lay.slots + s]) & _M64)) << (sb * s)
        ints.append(v)
    return list(pk.encrypt_ints(ints).ciphertexts)


def _exponents(v: np.ndarray, params: LRParams, what: str) -> list[int]:
    """Signed fixed-point ring values as non-negative exponents ``v + 2^(z_bits - 1)``."""
    sv = v.view(np.int64)
    lim = 1 << (params.z_bits - 1)
    if sv.size and int(np.max(np.abs(sv))) >= lim:
        raise DataError(f"{what} out of range: |value| must stay below {lim / 2.0 ** params.frac_bits:g} "
                        f"(z_bits={params.z_bits}); lower the learning rate or standardize the features")
    return [x + lim for x in sv.tolist()]


def _offset_term(xq: np.ndarray, idx: np.ndarray, params: LRParams, contributors: int) -> np.ndarray:
    """``contributors * 2^(z_bits-1) * sum_B x mod 2^64``: what the exponent offsets add to a slot."""
    colsum = xq[idx].view(_U64).sum(axis=0, dtype=_U64)
    return colsum * _U64((contributors << (params.z_bits - 1)) & _M64)


def _cross(encx: list[mpz], lay: PackLayout, pk: paillier.PaillierPublicKey, idx: np.ndarray,
           plan: Any, esum: int, params: LRParams, extra: np.ndarray | None = None, offset: bool = True,
           shift: int = 0, high: int = 0) -> list[mpz]:
    """``prod_i Enc(row_i)^(e_i) * Enc(mask)`` per ciphertext column (exponents in ``plan``;
    ``extra``: per-column values added modulo 2^64, e.g. cancelling masks; ``offset``: the rows
    carry the feature offset, removed here; ``shift``: the product is raised to ``2^shift``
    before the mask; ``high``: public offset of the high mask, :func:`_mask_cts`)."""
    M = pk.modulus
    corr = ((-feature_offset(params) * esum) << shift) & _M64 if offset else 0
    masks = _mask_cts(pk, lay, corr, extra, high)
    out = []
    nc = lay.ncts
    for t in range(nc):
        bases = [encx[int(i) * nc + t] for i in idx]
        prod = multiexp(bases, plan, M)
        out.append((gmpy2.powmod(prod, 1 << shift, M) if shift else prod) * masks[t] % M)
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
    lays = layouts(pks, dims, next(iter(pks)), params)
    mine = _encrypt_rows(xq, lays[chan.party], sk, params)
    t = _tick(timings, "encrypt", t)
    chan.broadcast("lr/encx", {"key": sk.public_key.fingerprint, "ct": mine}, kind=Kind.CIPHERTEXT, to=others)
    n = xq.shape[0]
    encx = {p: _parse_cts(chan.recv(p, "lr/encx"), pks[p], n * lays[p].ncts, f"'lr/encx' from '{p}'")
            for p in others}
    return lays, encx, _tick(timings, "wait", t)


# --------------------------------------------------------------------------- class weights

def _encode_weighted(X: np.ndarray, sw: np.ndarray, params: LRParams) -> np.ndarray:
    """The active party's rows pre-weighted: ``round(w_i x_i 2^f)`` (and ``w_i`` for the intercept)."""
    Xw = np.hstack([X, np.ones((X.shape[0], 1))]) if params.fit_intercept else X
    return encode_features(Xw * sw[:, None], params, False)


def _weigh_rows(encx: list[mpz], lay: PackLayout, pk: paillier.PaillierPublicKey, W: list[int], params: LRParams
                ) -> tuple[list[mpz], np.ndarray]:
    """Active party, set-up: ``V_i = Enc_p(row_i)^(W_i) * Enc_p(K' - W_i c + r_i)`` for passive
    ``p``'s encrypted rows (``W_i = round(w_i 2^WEIGHT_FRAC_BITS)``): every slot then holds
    ``W_i x_ij + rho'_ij`` with ``rho' = K' + r``, ``r`` fresh, uniform on ``feature_bits +
    weight_bits + sigma`` bits (the fresh encryption also re-randomizes ``V_i``). Returns the
    ciphertexts and ``rho' mod 2^64`` (``uint64 (n, ncols)``)."""
    n, nc, S, sb = len(W), lay.ncts, lay.slots, 8 * lay.slot_bytes
    c, M = feature_offset(params), pk.modulus
    kb = params.feature_bits - 1 + weight_bits()
    rb = kb + 1 + params.sigma  # W x + K' < 2^(kb+1): sigma bits of statistical hiding
    nb, top, K = (rb + 7) // 8, (1 << rb) - 1, 1 << kb
    raw = os.urandom(n * nc * S * nb)
    out: list[mpz] = [mpz(0)] * (n * nc)
    Wa = np.asarray(W)
    ex = get_executor()
    for wv in sorted(set(W)):
        pos = [int(i) * nc + t for i in np.flatnonzero(Wa == wv) for t in range(nc)]
        chunks = [pos[j::ex.n_workers] for j in range(ex.n_workers)]
        for ch, vals in zip(chunks, ex.map(_pow_task, [[encx[k] for k in ch] for ch in chunks],
                                            [wv] * len(chunks), [M] * len(chunks))):
            for k, v in zip(ch, vals):
                out[k] = v
    ints, rho = [], []
    for i in range(n):
        wc = W[i] * c
        for t in range(nc):
            v = 0
            for sl in range(S):
                o = ((i * nc + t) * S + sl) * nb
                r = K + (int.from_bytes(raw[o:o + nb], "little") & top)
                v |= (r - wc) << (sb * sl)
                if t * S + sl < lay.ncols:
                    rho.append(r & _M64)
            ints.append(v)
    masks = pk.encrypt_ints(ints).ciphertexts
    return [a * m % M for a, m in zip(out, masks)], np.array(rho, dtype=_U64).reshape(n, lay.ncols)


def _column_bases(rows: list[mpz], lay: PackLayout, idx: np.ndarray, inv: list[mpz] | None = None,
                  sz: list[int] | None = None) -> list[list[mpz]]:
    """The batch's bases per ciphertext column; with ``inv``/``sz`` (signed exponents) the
    inverse row where ``z_i < 0``, so that no exponent offset (and no offset term) is needed."""
    nc = lay.ncts
    if inv is None or sz is None:
        return [[rows[int(i) * nc + t] for i in idx] for t in range(nc)]
    return [[(rows if z >= 0 else inv)[int(i) * nc + t] for i, z in zip(idx, sz)] for t in range(nc)]


def _pow_task(bases: list[mpz], e: int, M: mpz) -> list[mpz]:
    """Executor work: ``b^e mod M`` for every base."""
    return list(gmpy2.powmod_base_list(bases, e, M))


def _multiexp_task(bases: list[mpz], plan: Any, M: mpz) -> mpz:
    """Executor work: one :func:`~privfin.crypto.triples.multiexp`."""
    return multiexp(bases, plan, M)


def _setup_weights_active(chan: Channel, sk: paillier.PaillierPrivateKey, pks: dict[str, paillier.PaillierPublicKey],
                          dims: dict[str, int], lays: dict[str, PackLayout], encx: dict[str, list[mpz]],
                          sw: np.ndarray, plist: list[str], params: LRParams
                          ) -> tuple[dict[str, np.ndarray], dict[str, PackLayout]]:
    """Class-weight set-up at the active party: to every passive party ``lr/encw`` (``V_p`` of
    every passive ``p``, under ``p``'s key) and ``lr/encr`` (``Enc_a(rho'_p)`` rows under its own
    key). Returns ``rho' mod 2^64`` per passive party and the layouts of its rows."""
    W = [int(v) for v in np.rint(np.ldexp(sw, WEIGHT_FRAC_BITS)).astype(np.int64).tolist()]
    rho: dict[str, np.ndarray] = {}
    encw: dict[str, Any] = {}
    for p in plist:
        cts, rho[p] = _weigh_rows(encx[p], lays[p], pks[p], W, params)
        encw[p] = _cts_payload(cts, pks[p])
    chan.broadcast("lr/encw", encw, kind=Kind.CIPHERTEXT, to=plist)
    pk = sk.public_key
    rlays = {p: weight_layout(pk, dims[p], len(pks), params) for p in plist}
    encr = {p: {"key": pk.fingerprint, "ct": _encrypt_packed(rho[p], rlays[p], sk)} for p in plist}
    chan.broadcast("lr/encr", encr, kind=Kind.CIPHERTEXT, to=plist)
    return rho, rlays


def _setup_weights_passive(chan: Channel, pks: dict[str, paillier.PaillierPublicKey], dims: dict[str, int],
                           lays: dict[str, PackLayout], parties: list[str], n: int, params: LRParams
                           ) -> tuple[dict[str, list[mpz]], dict[str, list[mpz]], dict[str, list[mpz]],
                                      dict[str, PackLayout]]:
    """Class-weight set-up at a passive party: every passive party's ``V_q`` rows (and their
    inverses) and ``Enc_a(rho'_q)`` rows, with the layouts of the latter."""
    active, passives = parties[0], parties[1:]
    wmsg = chan.recv(active, "lr/encw", expect=dict)
    rmsg = chan.recv(active, "lr/encr", expect=dict)
    if set(wmsg) != set(passives) or set(rmsg) != set(passives):
        raise ProtocolError(f"'lr/encw'/'lr/encr' from '{active}': expected rows for {sorted(passives)}")
    V = {q: _parse_cts(wmsg[q], pks[q], n * lays[q].ncts, f"'lr/encw' from '{active}'") for q in passives}
    Vinv = {q: [gmpy2.invert(v, pks[q].modulus) for v in V[q]] for q in passives}
    rlays = {q: weight_layout(pks[active], dims[q], len(parties), params) for q in passives}
    encr = {q: _parse_cts(rmsg[q], pks[active], n * rlays[q].ncts, f"'lr/encr' from '{active}'") for q in passives}
    return V, Vinv, encr, rlays


def _weighted_terms(chan: Channel, pks: dict[str, paillier.PaillierPublicKey], lays: dict[str, PackLayout],
                    rlays: dict[str, PackLayout], encx: list[mpz], V: dict[str, list[mpz]],
                    Vinv: dict[str, list[mpz]], encr: dict[str, list[mpz]], idx: np.ndarray, zq: np.ndarray,
                    plan: Any, esum: int, tmask: np.ndarray, parties: list[str], params: LRParams) -> None:
    """Passive party ``q``, class weights, per batch: its cross term to the active party
    (``lr/cross``, on the pre-weighted rows ``encx``, masks ``tmask``) and, for every passive
    ``p`` (``q`` included), ``A_qp = prod_B V_p^(z_q) * Enc_p(m)`` (signed exponents) and ``B_qp
    = prod_B Enc_a(rho'_p)^(z_q + c') * Enc_a(2^64 R + m)``, ``m`` fresh and uniform on
    ``Z_2^64`` (``lr/corr``). The multi-exponentiations are independent: they run on the
    executor side by side."""
    active, passives = parties[0], parties[1:]
    sz = zq.view(np.int64).tolist()
    splan = multiexp_plan([abs(z) for z in sz])
    pka, Ma, la = pks[active], pks[active].modulus, lays[active]
    jobs: list[tuple[list[mpz], Any, mpz]] = [(bs, plan, Ma) for bs in _column_bases(encx, la, idx)]
    for p in passives:
        jobs += [(bs, splan, pks[p].modulus) for bs in _column_bases(V[p], lays[p], idx, Vinv[p], sz)]
        jobs += [(bs, plan, Ma) for bs in _column_bases(encr[p], rlays[p], idx)]
    prods = iter(get_executor().map(_multiexp_task, *zip(*jobs)))
    c = feature_offset(params)
    cross = [next(prods) * mk % Ma for mk in _mask_cts(pka, la, (-c * esum) & _M64, tmask)]
    chan.send(active, "lr/cross", {active: _cts_payload(cross, pka)}, kind=Kind.CIPHERTEXT)
    out: dict[str, Any] = {}
    for p in passives:
        m = np.frombuffer(os.urandom(8 * lays[p].ncols), dtype=_U64)
        M = pks[p].modulus
        a = [next(prods) * mk % M for mk in _mask_cts(pks[p], lays[p], 0, m, random_high=False)]
        b = [next(prods) * mk % Ma for mk in _mask_cts(pka, rlays[p], 0, m)]
        out[p] = {"a": _cts_payload(a, pks[p]), "b": _cts_payload(b, pka)}
    chan.send(active, "lr/corr", out, kind=Kind.CIPHERTEXT)


def _fold_weighted(chan: Channel, sk: paillier.PaillierPrivateKey, pks: dict[str, paillier.PaillierPublicKey],
                   lays: dict[str, PackLayout], rlays: dict[str, PackLayout], rho: dict[str, np.ndarray],
                   outs: dict[str, list[mpz]], idx: np.ndarray, plist: list[str], params: LRParams) -> None:
    """Active party, class weights, per batch: multiply every ``A_qp`` into ``outs[p]``,
    decrypt every ``B_qp`` (``rho'_p[B]^T z_q + m`` after removing ``c' sum_B rho'_p``) and
    multiply in ``Enc_p(-sum_q (rho'_p[B]^T z_q + m))``."""
    corrs = chan.gather("lr/corr", plist, expect=dict)
    pk = sk.public_key
    tot = {p: np.zeros(rlays[p].ncols, dtype=_U64) for p in plist}
    for q, msg in corrs.items():
        if set(msg) != set(plist):
            raise ProtocolError(f"'lr/corr' from '{q}': expected terms for {sorted(plist)}")
        for p in plist:
            try:
                a_raw, b_raw = msg[p]["a"], msg[p]["b"]
            except (KeyError, TypeError) as exc:
                raise ProtocolError(f"'lr/corr' from '{q}' is malformed: {exc}") from exc
            M = pks[p].modulus
            a = _parse_cts(a_raw, pks[p], lays[p].ncts, f"'lr/corr' from '{q}'")
            outs[p] = [x * y % M for x, y in zip(outs[p], a)]
            b = _parse_cts(b_raw, pk, rlays[p].ncts, f"'lr/corr' from '{q}'")
            tot[p] = tot[p] + _open_cross(b, sk, rlays[p]) - _offset_term(rho[p], idx, params, 1)
    for p in plist:
        M = pks[p].modulus
        fix = _mask_cts(pks[p], lays[p], 0, _U64(0) - tot[p], random_high=False)
        outs[p] = [x * y % M for x, y in zip(outs[p], fix)]


def _tick(timings: dict[str, float], name: str, t0: float) -> float:
    t1 = time.perf_counter()
    timings[name] = timings.get(name, 0.0) + t1 - t0
    return t1


# --------------------------------------------------------------------------- roles

def lr_active(chan: Channel, X_own: Any, y: Any, params: LRParams, *, passives: Sequence[str] | None = None,
              X_val: Any = None, y_val: Any = None, trace: dict[str, list] | None = None) -> LRPartyModel:
    """Active party (label holder): trains; returns its own coefficients and the intercept.

    ``passives``: the passive parties (default: every peer of ``chan``). ``X_val``/``y_val``:
    this party's validation rows and labels (with ``params.early_stopping``; every passive
    party passes its own features of the same rows in the same order). ``trace`` (tests
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
    Xv = check_validation(params, X_val, d)
    es = EarlyStopping(params, y_val) if Xv is not None else None
    if es is not None and es.y.shape[0] != Xv.shape[0]:
        raise DataError(f"validation: {Xv.shape[0]} feature rows, {es.y.shape[0]} labels")
    nv = -1 if Xv is None else Xv.shape[0]
    sw = sample_weights(yy, params)
    xq = encode_features(X, params, params.fit_intercept) if sw is None else _encode_weighted(X, sw, params)
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
            if int(h.get("n", -1)) != n or int(h.get("nv", -1)) != nv:
                raise DataError(f"row counts differ: active party has {n} training / {max(nv, 0)} validation rows, "
                                f"passive party '{p}' has {h.get('n')} / {max(int(h.get('nv', -1)), 0)}; align the "
                                "samples (PSI) and split them the same way first")
            ppk = paillier.PaillierPublicKey.from_dict(h["pk"])
            check_peer_key(ppk, f"passive party '{p}'", params.allow_insecure)
            pks[p], dims[p] = ppk, int(h["d"])
        setup = {"parties": [chan.party, *plist], "pks": {k: v.to_dict() for k, v in pks.items()}, "dims": dims}
        chan.broadcast("lr/setup", setup, to=plist)
        lays, encx, t = _exchange_rows(chan, xq, sk, pks, dims, plist, params, timings, t)
        my = lays[chan.party]
        rho: dict[str, np.ndarray] = {}
        rlays: dict[str, PackLayout] = {}
        if sw is not None:
            rho, rlays = _setup_weights_active(chan, sk, pks, dims, lays, encx, sw, plist, params)
            t = _tick(timings, "encrypt", t)
            if trace is not None:
                trace["w"], trace["rho"] = sw, rho
    # class weights: the cross terms to passive parties are raised to 2^WEIGHT_FRAC_BITS (their
    # weighted terms carry that scale) and keep their slots positive (signed weighted terms)
    shift = 0 if sw is None else WEIGHT_FRAC_BITS
    high = 0 if sw is None else weight_high_offset(len(pks), params)

    w = np.zeros(d)
    b = 0.0
    best = (w, b)
    f = params.frac_bits
    epochs_run = 0
    val = None
    if Xv is not None:
        val = FederatedPredictor(chan, plist, np.arange(nv), {"lr": lambda r: Xv[r] @ w + b}, tag=VAL_TAG)
    with chan.stage("lr/train"):
        for epoch in range(params.epochs):
            lr = learning_rate_at(params, epoch)
            before = np.r_[w, b]
            epochs_run += 1
            for idx in batches(n, params, epoch):
                m = len(idx)
                za = X[idx] @ w + b
                ra = za + 2.0 - 4.0 * yy[idx]
                s = ring_encode(ra, f)
                e = _exponents(s if sw is None else ring_encode(sw[idx] * ra, f), params,
                               "the active party's part of the residual")
                plan = multiexp_plan(e)
                esum = sum(e)
                t = _tick(timings, "local", t)
                outs = {p: _cross(encx[p], lays[p], pks[p], idx, plan, esum, params, shift=shift, high=high)
                        for p in plist}
                t = _tick(timings, "multiexp", t)
                crosses = chan.gather("lr/cross", plist, expect=dict)
                t = _tick(timings, "wait", t)
                for q, msg in crosses.items():
                    want = set(pks) - {q} if sw is None else {chan.party}
                    if set(msg) != want:
                        raise ProtocolError(f"'lr/cross' from '{q}': expected cross terms for {sorted(want)}")
                    for p, payload in msg.items():
                        vals = _parse_cts(payload, pks[p], lays[p].ncts, f"'lr/cross' from '{q}'")
                        M = pks[p].modulus
                        acc = outs.get(p, [mpz(1)] * lays[p].ncts)
                        outs[p] = [a * v % M for a, v in zip(acc, vals)]
                if sw is not None:
                    _fold_weighted(chan, sk, pks, lays, rlays, rho, outs, idx, plist, params)
                for p in plist:
                    chan.send(p, "lr/grad", _cts_payload(outs[p], pks[p]), kind=Kind.CIPHERTEXT)
                t = _tick(timings, "multiexp", t)
                g = (_open_cross(outs[chan.party], sk, my) + _local_term(xq, idx, s)
                     - _offset_term(xq, idx, params, len(plist)))
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
            if params.tol is None and es is None:
                continue
            stop = improved = False
            if params.tol is not None:
                flags = chan.gather("lr/converged", plist, expect=bool)
                stop = converged(before, np.r_[w, b], params) and all(flags.values())
            if es is not None and val is not None:
                improved, stop_es = es.update(epoch, val.predict(rows=np.arange(nv)))
                stop = stop or stop_es
                if improved:
                    best = (w.copy(), b)
            chan.broadcast("lr/stop", {"stop": stop, "improved": improved}, to=plist)
            t = _tick(timings, "wait", t)
            if stop:
                break
    if es is not None:
        w, b = best
    model = LRPartyModel(chan.party, w, b if params.fit_intercept else None, timings, epochs_run)
    if es is not None:
        model.best_epoch, model.val_scores = es.best_epoch, list(es.scores)
    return model


def lr_passive(chan: Channel, X_own: Any, params: LRParams, *, active: str | None = None, X_val: Any = None,
               trace: dict[str, list] | None = None) -> LRPartyModel:
    """Passive party (features only): trains; returns its own coefficients.

    ``active``: the active party's name (default: the only peer of ``chan``). ``X_val``: its
    features of the validation rows (with ``params.early_stopping``)."""
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
    Xv = check_validation(params, X_val, d)
    xq = encode_features(X, params, False)
    pk, sk = paillier.keygen(params.key_bits, allow_insecure=params.allow_insecure)
    t = _tick(timings, "keygen", t)

    with chan.stage("lr/setup"):
        chan.send(active, "lr/hello", {"n": n, "nv": -1 if Xv is None else Xv.shape[0], "d": d, "pk": pk.to_dict(),
                                       "params": params.to_dict()})
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
            check_peer_key(kpk, f"party '{k}'", params.allow_insecure)
        others = [p for p in parties if p != chan.party]
        weighted = params.class_weight is not None
        # with class weights the passive parties' rows go to the active party only
        lays, encx, t = _exchange_rows(chan, xq, sk, {k: pks[k] for k in parties}, dims,
                                       [active] if weighted else others, params, timings, t)
        my = lays[chan.party]
        V: dict[str, list[mpz]] = {}
        Vinv: dict[str, list[mpz]] = {}
        encr: dict[str, list[mpz]] = {}
        rlays: dict[str, PackLayout] = {}
        if weighted:
            V, Vinv, encr, rlays = _setup_weights_passive(chan, pks, dims, lays, parties, n, params)
            t = _tick(timings, "encrypt", t)
        tmask = PairwiseMasks.agree(chan, parties[1:], TRAIN_TAG)  # no messages with one passive party
        handler = None
        if Xv is not None:
            masks = PairwiseMasks.agree(chan, parties[1:], VAL_TAG)
            handler = prediction_handler(chan.party, np.arange(Xv.shape[0]), {"lr": lambda r: Xv[r] @ w}, masks,
                                         frac_bits=params.frac_bits)

    w = np.zeros(d)
    best = w
    f = params.frac_bits
    epochs_run = 0
    nonce = 0
    with chan.stage("lr/train"):
        for epoch in range(params.epochs):
            lr = learning_rate_at(params, epoch)
            before = w.copy()
            epochs_run += 1
            for idx in batches(n, params, epoch):
                m = len(idx)
                zp = X[idx] @ w
                zq = ring_encode(zp, f)
                e = _exponents(zq, params, f"the partial linear predictor of '{chan.party}'")
                plan = multiexp_plan(e)
                esum = sum(e)
                nonce += 1
                t = _tick(timings, "local", t)
                if not weighted:
                    out = {k: _cts_payload(_cross(encx[k], lays[k], pks[k], idx, plan, esum, params,
                                                  tmask.mask(nonce, lays[k].ncols) if k == active else None), pks[k])
                           for k in others}
                    chan.send(active, "lr/cross", out, kind=Kind.CIPHERTEXT)
                else:
                    _weighted_terms(chan, pks, lays, rlays, encx[active], V, Vinv, encr, idx, zq, plan, esum,
                                    tmask.mask(nonce, lays[active].ncols), parties, params)
                t = _tick(timings, "multiexp", t)
                back = _parse_cts(chan.recv(active, "lr/grad"), pk, my.ncts, f"'lr/grad' from '{active}'")
                t = _tick(timings, "wait", t)
                if not weighted:
                    g = (_open_cross(back, sk, my) + _local_term(xq, idx, zq)
                         - _offset_term(xq, idx, params, len(others)))
                    gsum = ring_decode(g, 2 * f) / 4.0
                else:  # everything at 2f + WEIGHT_FRAC_BITS fractional bits; only the active's offset
                    g = _open_cross(back, sk, my) - _offset_term(xq, idx, params, 1) * _U64(1 << WEIGHT_FRAC_BITS)
                    gsum = ring_decode(g, 2 * f + WEIGHT_FRAC_BITS) / 4.0
                t = _tick(timings, "decrypt", t)
                if trace is not None:
                    trace.setdefault("z", []).append(zp.copy())
                    trace.setdefault("zq", []).append(zq)
                    trace.setdefault("grad", []).append(gsum.copy())
                w = sgd_step(w, gsum, m, lr, params)
                t = _tick(timings, "local", t)
            if params.tol is None and handler is None:
                continue
            if params.tol is not None:
                chan.send(active, "lr/converged", converged(before, w, params), kind=Kind.AGGREGATE)
            if handler is not None:
                serve(chan, active, handler, tag=VAL_TAG, max_requests=1)
            dec = chan.recv(active, "lr/stop", expect=dict)
            if handler is not None and dec.get("improved"):
                best = w.copy()
            t = _tick(timings, "wait", t)
            if dec.get("stop"):
                break
    return LRPartyModel(chan.party, best if handler is not None else w, None, timings, epochs_run)


# --------------------------------------------------------------------------- federated prediction

PREDICT_TAG = "lr/predict"
VAL_TAG = "lr/val"  # early-stopping validation predictions during training
TRAIN_TAG = "lr/train"  # cancelling masks of the passive parties' cross terms for the active party


class PairwiseMasks:
    """One passive party's prediction masks: they cancel in the sum over all passive parties.

    Every pair of passive parties ``p < q`` (by name) shares a 32-byte seed; for request
    ``nonce`` party ``p`` adds ``PRG(seed_pq, nonce)`` and ``q`` subtracts it (``Z_2^64``).
    """

    def __init__(self, party: str, seeds: dict[str, bytes]) -> None:
        self.party, self.seeds = party, dict(seeds)

    @classmethod
    def agree(cls, chan: Channel, passives: Sequence[str], tag: str = PREDICT_TAG) -> PairwiseMasks:
        """Set-up among the passive parties: the smaller name of each pair draws the seed and
        sends it to the other (``TAG/seed``, kind ``SHARE``; never to the active party)."""
        me = chan.party
        seeds: dict[str, bytes] = {}
        for q in sorted(passives):
            if q == me:
                continue
            if me < q:
                seeds[q] = os.urandom(32)
                chan.send(q, f"{tag}/seed", seeds[q], kind=Kind.SHARE)
        for q in sorted(passives):
            if q < me:
                got = chan.recv(q, f"{tag}/seed", expect=bytes)
                if len(got) != 32:
                    raise ProtocolError(f"'{tag}/seed' from '{q}': expected 32 bytes")
                seeds[q] = got
        return cls(me, seeds)

    def mask(self, nonce: int, n: int) -> np.ndarray:
        """This party's mask for request ``nonce`` over ``n`` values (``uint64``)."""
        out = np.zeros(n, dtype=_U64)
        for q, seed in self.seeds.items():
            # one PRG label per request: the streams of distinct requests never overlap
            m = prg_ring(seed, int(nonce), n)
            out = out + m if self.party < q else out - m
        return out


def _id_index(ids: Any) -> dict[str, int]:
    keys = [str(i) for i in np.asarray(ids).ravel()]
    index = {k: i for i, k in enumerate(keys)}
    if len(index) != len(keys):
        raise DataError("prediction ids must be unique")
    return index


def _rows_of(body: dict[str, Any], index: dict[str, int], n: int, who: str) -> np.ndarray:
    """Row positions asked for, from ``rows`` (positions) or ``ids`` (aligned ids only)."""
    if "ids" in body:
        ids = body["ids"]
        if not isinstance(ids, list):
            raise ProtocolError(f"{who}: 'ids' must be a list")
        rows = [index.get(str(i), -1) for i in ids]
        if any(r < 0 for r in rows):
            raise DataError(f"{who}: id not among the aligned ids")
        return np.asarray(rows, dtype=np.int64)
    rows = body.get("rows")
    if not isinstance(rows, np.ndarray) or rows.ndim != 1 or rows.dtype.kind not in "iu":
        raise ProtocolError(f"{who}: 'rows' must be a 1-d integer array")
    if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= n):
        raise DataError(f"{who}: row position out of range 0..{n - 1}")
    return rows.astype(np.int64)


def prediction_handler(party: str, ids: Any, scorers: dict[str, Scorer], masks: PairwiseMasks, *,
                       frac_bits: int = 16) -> Callable[[dict[str, Any]], Reply]:
    """A passive party's :func:`~privfin.models.serving.serve` handler: masked partial scores.

    ``ids``: the aligned ids, row ``i`` of this party's data is ``ids[i]`` (only these are
    answered); ``scorers``: name (e.g. ``"lr"``, ``"points"``) -> rows -> this party's partial
    score of those rows."""
    index = _id_index(ids)
    n = len(index)
    last = [0]
    kind = Kind.SHARE if masks.seeds else Kind.PLAINTEXT

    def handle(body: dict[str, Any]) -> Reply:
        who = f"prediction request to '{party}'"
        nonce, what = body.get("nonce"), body.get("what")
        if not isinstance(nonce, int) or nonce <= last[0]:
            raise ProtocolError(f"{who}: nonce must increase")  # a reused nonce would reuse masks
        last[0] = nonce  # consumed even if the request is refused below
        if what not in scorers:
            raise DataError(f"{who}: unknown score {what!r}")
        rows = _rows_of(body, index, n, who)
        part = np.asarray(scorers[what](rows), dtype=np.float64)
        return Reply({"z": ring_encode(part, frac_bits) + masks.mask(nonce, len(rows))}, kind)

    return handle


def predict_passive(chan: Channel, active: str, ids: Any, scorers: dict[str, Scorer], *,
                    passives: Sequence[str] | None = None, frac_bits: int = 16, tag: str = PREDICT_TAG,
                    idle_timeout: float | None = None) -> int:
    """Passive party: agree masks with the other passive parties, then answer the active
    party's prediction requests until it closes (returns the number answered).

    ``passives``: every passive party of the job (default: every peer but ``active``)."""
    plist = [p for p in (passives if passives is not None else chan.peers) if p != active]
    if chan.party not in plist:
        plist.append(chan.party)
    masks = PairwiseMasks.agree(chan, plist, tag)
    return serve(chan, active, prediction_handler(chan.party, ids, scorers, masks, frac_bits=frac_bits),
                 tag=tag, idle_timeout=idle_timeout)


class FederatedPredictor:
    """Active party's side of federated prediction: total scores of aligned rows or ids.

    ``scorers``: name -> rows -> the active party's own part (with the intercept, or the
    scorecard's base points). Each request adds the passive parties' masked parts; the masks
    cancel in the sum, so with two or more passive parties only the total is learned.

    >>> with FederatedPredictor(chan, ["p1", "p2"], ids, {"lr": model.scorer(X)}) as fp:
    ...     z = fp.predict(rows=np.flatnonzero(holdout))       # batch
    ...     z1 = fp.predict(ids=["10042"])                     # one applicant
    """

    def __init__(self, chan: Channel, passives: Sequence[str], ids: Any, scorers: dict[str, Scorer], *,
                 frac_bits: int = 16, tag: str = PREDICT_TAG, timeout: float | None = None) -> None:
        self.client = Client(chan, passives, tag=tag, timeout=timeout)
        self.index = _id_index(ids)
        self.scorers, self.frac_bits = scorers, frac_bits
        self._nonce = 0

    def predict(self, *, rows: Any = None, ids: Sequence[Any] | None = None, what: str = "lr") -> np.ndarray:
        """Total score (linear predictor for ``"lr"``) of the given row positions or ids."""
        if (rows is None) == (ids is None):
            raise DataError("pass exactly one of rows= or ids=")
        if what not in self.scorers:
            raise DataError(f"unknown score {what!r} (have {sorted(self.scorers)})")
        self._nonce += 1
        body: dict[str, Any] = {"nonce": self._nonce, "what": what}
        if ids is not None:
            body["ids"] = [str(i) for i in ids]
        else:
            body["rows"] = np.asarray(rows, dtype=np.int64).ravel()
        r = _rows_of(body, self.index, len(self.index), "prediction request")
        total = ring_encode(np.asarray(self.scorers[what](r), dtype=np.float64), self.frac_bits)
        for p, rep in self.client.ask(body).items():
            z = rep.get("z")
            if not isinstance(z, np.ndarray) or z.dtype != _U64 or z.shape != (len(r),):
                raise ProtocolError(f"'{self.client.tag}/rep' from '{p}': expected uint64 ({len(r)},)")
            total = total + z
        return ring_decode(total, self.frac_bits)

    def predict_proba(self, **kw: Any) -> np.ndarray:
        """``sigmoid`` of the total linear predictor (default probability)."""
        return sigmoid(self.predict(**kw))

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.__exit__(*exc)


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

    def fit(self, X: Any, y: Any = None, *, X_val: Any = None, y_val: Any = None) -> HeteroLogisticRegression:
        """Train this party's role; ``X_val`` (and ``y_val`` at the active party) for early stopping."""
        if self.role == "active":
            if y is None:
                raise DataError("the active party must pass labels y")
            model = lr_active(self.chan, X, y, self.params, passives=self.peers, X_val=X_val, y_val=y_val)
        else:
            if y is not None or y_val is not None:
                raise DataError("a passive party has no labels (pass y=None)")
            model = lr_passive(self.chan, X, self.params, active=self.active, X_val=X_val)
        self.model_ = model
        self.coef_ = model.coef
        self.intercept_ = model.intercept
        return self

    def partial_score(self, X: Any) -> np.ndarray:
        """This party's own part of the linear predictor (never the joint score)."""
        return self.model_.partial_score(X)


__all__ = ["FederatedPredictor", "HeteroLogisticRegression", "LRPartyModel", "PackLayout", "PairwiseMasks",
           "encode_features", "lr_active", "lr_passive", "pack_layout", "predict_passive", "prediction_handler"]
