"""Cross-party Pearson correlation of every pair of features, learnt by the active party only.

Roles (one function each, taking only that party's own data):

- :func:`pearson_active` ``(chan, X_own, names)`` at the active party: returns the full
  correlation matrix over all parties' features as a :class:`pandas.DataFrame`;
- :func:`pearson_passive` ``(chan, X_own, names)`` at every passive party: returns nothing.

Definition (the oracle is :func:`plain_corr`)
---------------------------------------------
Each column is **mean-imputed** (missing values, ``NaN``, replaced by the mean of the column's
observed values) and then standardized, ``z = (x - mean) / std`` with ``ddof = 0``; a missing
value therefore becomes ``z = 0``. The correlation of columns ``j`` and ``k`` is
``r_jk = sum_i z_ij z_ik / n`` -- exactly ``np.corrcoef`` of the mean-imputed columns. A
column with zero variance (constant, or entirely missing; standard deviation at most 1e-12 of
the column's largest magnitude) has **NaN** correlations with every column, itself included (as
``np.corrcoef`` gives); it is not an error. Infinite values,
non-numeric data or fewer than two rows raise :class:`~privfin.errors.DataError`.

Protocol
--------
Fixed point: ``q = round(z * 2^f)`` (``f = frac_bits``, 22 by default). With ``|z| <= sqrt(n)``
and ``mean |z| <= 1`` the error of a correlation is at most ``2^-f`` (2.4e-7), whatever the data.

1. Every party standardizes its own columns locally and computes its **own block**
   ``Z_k^T Z_k / n`` in the clear. A passive party sends the active party its row count, width,
   column names (aliases ``<party>.f000``, ... unless ``reveal_names``) and parameters
   (``corr/hello``), then its own block (``corr/local``, an aggregate).
2. The active party checks the row counts and parameters and sends the set-up (``corr/setup``):
   parties, widths, its public key, and for every pair of passive parties which one encrypts
   (the one with fewer columns).
3. **Active x passive block.** The active party (fresh Paillier key pair) encrypts its rows
   *packed*: one ciphertext holds ``S`` columns of one row (31 slots of 64 bits at 2048 bits for
   100,000 rows), each slot ``q + c`` (``c`` a public offset making it non-negative). It sends
   the same ciphertexts to every passive party (``corr/enc``). A passive party computes, per own
   column ``k`` and per ciphertext column ``t``, the multi-exponentiation
   ``prod_i Enc(row_i,t)^(q_ik)`` (windowed bucket method; negative exponents through one
   modular inversion): every slot ``j`` now holds ``sum_i (q_ij + c) q_ik``. It multiplies in a
   fresh encryption of the packed correction ``2^V - c * sum_i q_ik`` per used slot, which
   re-randomizes the ciphertext and leaves exactly ``S_jk + 2^V`` in every used slot and 0 in
   the others (``S_jk = sum_i q_ij q_ik``, ``|S_jk| < 2^V``, ``V = ceil(log2 n) + 2f + 1``), and
   returns it (``corr/cross``). The active party decrypts and reads ``r_jk = S_jk / (n 2^2f)``.
4. **Passive x passive block** (two or more passive parties). For a pair (``e``, ``v``), the
   encryptor ``e`` runs step 3's encryption under a fresh key pair of its own and sends the
   ciphertexts directly to ``v`` (``corr/pp/enc``). ``v`` evaluates as in step 3 but also adds
   a mask ``R`` per slot, uniform below ``2^(V + 1 + sigma)`` (slots widened accordingly), returns
   the ciphertexts to ``e`` (``corr/pp/res``) and sends ``R`` to the active party
   (``corr/pp/mask``). ``e`` decrypts ``Y = S + 2^V + R`` and sends it to the active party
   (``corr/pp/sum``), which computes ``S = Y - 2^V - R``.

Cost (n rows, active width a, passive width d, S slots): the active party makes ``n *
ceil(a/S)`` encryptions (with the private key's CRT fast path); each passive party makes
``d * ceil(a/S)`` multi-exponentiations of n bases with ``f + log2|z|``-bit exponents (about
``2n`` multiplications mod ``N^2`` each, spread over the executor) and ``d * ceil(a/S)``
encryptions; the active party decrypts ``d * ceil(a/S)`` ciphertexts. Traffic: ``n *
ceil(a/S)`` ciphertexts to every passive party and ``d * ceil(a/S)`` back. (Secret-shared
products from HE matrix triples cost more here: two cross terms, each about ``2 * d``
multi-exponentiations of n bases with 64-bit exponents, plus opening rounds.)

Security
--------
Semi-honest parties; Paillier with at least 2048-bit moduli (112-bit security; smaller keys only
with ``allow_insecure``, tests). Every key pair is fresh per run.

- **Active party learns** the correlation matrix over all parties' features -- aggregates over
  all rows, which is the output -- and with it the passive parties' row counts, widths, column
  aliases (or names, if revealed) and which of their columns have zero variance (NaN rows). It
  receives the passive parties' own blocks in the clear (``corr/local``, kind ``aggregate``),
  decrypts cross blocks whose used slots hold exactly ``S_jk + 2^V`` (the fixed-point numerator
  of the correlation; nothing else: every other slot is 0, and the fresh encryption of the
  correction hides how the ciphertext was computed, so even the randomness of its own
  encryptions does not link the result to rows), and for passive pairs ``Y`` and ``R`` whose
  difference is that numerator. It never receives a raw or standardized passive value. As with
  any correlation output, a column of its own that is an indicator of a few rows reveals the
  mean of each passive column over those rows; the output is inherently that.
- **Passive party learns** the set-up (parties, widths, the active party's public key) and
  ciphertexts under keys it does not hold (IND-CPA: nothing). As an encryptor of a passive pair
  it decrypts ``S + 2^V + R`` per slot with ``R`` uniform and ``sigma`` (40 by default) bits wider
  than ``S + 2^V``: within statistical distance ``2^-sigma`` per slot of a value independent of
  the data. Passive parties learn nothing of the correlation matrix, of the active party's
  columns or of each other's.
- **Collusion.** Active party with the encryptor of a passive pair: still only ``S``; with the
  evaluator: only ``S`` (it knows ``R``). Two passive parties together learn nothing beyond
  their own data (they see only ciphertexts under the active party's key and masked values).
- **Messages and ledger kinds.** ``corr/hello``, ``corr/setup``: ``plaintext`` (sizes, names or
  aliases, public keys, public parameters); ``corr/local``, ``corr/cross``: ``aggregate`` (the
  receiver holds the key of ``corr/cross``; what it learns is the documented block);
  ``corr/enc``, ``corr/pp/enc``: ``ciphertext``; ``corr/pp/res``, ``corr/pp/sum``,
  ``corr/pp/mask``: ``share`` (statistically masked, or the uniform mask itself).
- Randomness: Paillier randomizers per :mod:`privfin.crypto.paillier`, masks from ``os.urandom``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import gmpy2
import numpy as np
import pandas as pd
from gmpy2 import mpz

from privfin.crypto import paillier
from privfin.crypto._he import EncryptedVector, check_peer_key, key_from_spec, obj_array, slots_for, spec_of
from privfin.crypto.triples import encrypt_packed_chunk, parse_ciphertexts
from privfin.errors import DataError, ProtocolError
from privfin.runtime.executor import get_executor
from privfin.transport.base import Channel, Kind

TAG_HELLO, TAG_LOCAL, TAG_SETUP = "corr/hello", "corr/local", "corr/setup"
TAG_ENC, TAG_CROSS = "corr/enc", "corr/cross"
TAG_PP_ENC, TAG_PP_RES, TAG_PP_SUM, TAG_PP_MASK = "corr/pp/enc", "corr/pp/res", "corr/pp/sum", "corr/pp/mask"

_U64 = np.uint64


@dataclass(frozen=True)
class CorrParams:
    """Public parameters of a correlation run (every party must pass the same ones)."""

    frac_bits: int = 22         # fixed-point bits of standardized values: error <= 2^-frac_bits
    key_bits: int = 2048
    allow_insecure: bool = False
    sigma: int = 40             # statistical masking of passive-pair results
    cols_per_task: int = 8      # evaluator columns per executor task

    def __post_init__(self) -> None:
        if not 8 <= self.frac_bits <= 28:
            raise DataError(f"frac_bits must be in 8..28 (got {self.frac_bits})")
        if self.sigma < 40:
            raise DataError(f"sigma must be at least 40 (got {self.sigma})")
        if self.cols_per_task < 1:
            raise DataError(f"cols_per_task must be >= 1 (got {self.cols_per_task})")

    @classmethod
    def from_opts(cls, opts: dict[str, Any]) -> CorrParams:
        unknown = set(opts) - set(cls.__dataclass_fields__)
        if unknown:
            raise DataError(f"unknown correlation options {sorted(unknown)}")
        return cls(**opts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- plain math (the oracle)

def _as_float(X: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what}: features must be numeric") from exc
    if arr.ndim != 2:
        raise DataError(f"{what}: expected a 2-D feature matrix (got {arr.ndim}-D)")
    if np.isinf(arr).any():
        raise DataError(f"{what}: infinite values are not allowed (missing values must be NaN)")
    if arr.shape[0] < 2:
        raise DataError(f"{what}: need at least 2 rows (got {arr.shape[0]})")
    return arr


def standardize(X: Any, what: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """Mean-impute ``NaN`` and z-score every column (``ddof = 0``).

    Returns ``(Z, constant)``: zero-variance columns (``constant[j]``) become all zeros."""
    arr = _as_float(X, what)
    miss = np.isnan(arr)
    cnt = (~miss).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(cnt > 0, np.nansum(arr, axis=0) / np.maximum(cnt, 1), 0.0)
    filled = np.where(miss, mean, arr)
    centered = filled - filled.mean(axis=0)
    std = np.sqrt((centered * centered).mean(axis=0))
    scale = np.maximum(np.abs(filled).max(axis=0), 1.0)
    constant = std <= 1e-12 * scale
    Z = np.divide(centered, std, out=np.zeros_like(centered), where=~constant)
    return Z, constant


def _mask_constant(R: np.ndarray, const_rows: np.ndarray, const_cols: np.ndarray) -> np.ndarray:
    R = R.copy()
    R[const_rows, :] = np.nan
    R[:, const_cols] = np.nan
    return R


def plain_corr(X: Any) -> np.ndarray:
    """The oracle: Pearson correlation of the mean-imputed columns (NaN for zero variance)."""
    Z, const = standardize(X)
    return _mask_constant(Z.T @ Z / Z.shape[0], const, const)


# --------------------------------------------------------------------------- packed layout

@dataclass(frozen=True)
class _Layout:
    n: int
    frac_bits: int
    value_bits: int     # V: |S| < 2^V, a used slot decrypts to S + 2^V (+ R when masked)
    slot_bytes: int
    slots: int
    offset: int         # c: encrypted slot values are q + c in [0, 2c)
    mask_bits: int      # R < 2^mask_bits (0: no mask)

    @property
    def slot_bits(self) -> int:
        return 8 * self.slot_bytes

    def ncts(self, cols: int) -> int:
        return -(-cols // self.slots)


def _layout(pk: paillier.PaillierPublicKey, n: int, frac_bits: int, masked: bool, sigma: int) -> _Layout:
    v = math.ceil(math.log2(n)) + 2 * frac_bits + 1
    mask_bits = v + 1 + sigma if masked else 0
    need = (mask_bits + 1) if masked else (v + 1)
    slot_bytes = max(8, (need + 7) // 8)  # encrypt_packed_chunk writes 64-bit slot values
    offset = 1 << math.ceil(math.log2(math.sqrt(n) * 2.0 ** frac_bits + 2))
    if 2 * offset > 1 << min(63, 8 * slot_bytes):
        raise DataError(f"{n} rows at frac_bits={frac_bits} do not fit the packed layout")
    return _Layout(n, frac_bits, v, slot_bytes, slots_for(pk, slot_bytes), offset, mask_bits)


def _quantize(Z: np.ndarray, frac_bits: int) -> np.ndarray:
    return np.rint(np.ldexp(Z, frac_bits)).astype(np.int64)


# --------------------------------------------------------------------------- encryptor side

def _encrypt_rows(Zq: np.ndarray, lay: _Layout, sk: paillier.PaillierPrivateKey) -> np.ndarray:
    """Rows packed ``S`` columns per ciphertext (slot ``q + c``; padding 0), under our own key:
    ``uint8 (n * ncts, kb)``, row-major (row ``i``, ciphertext column ``t``)."""
    n, a = Zq.shape
    nc = lay.ncts(a)
    blocks = np.zeros((n, nc * lay.slots), dtype=np.int64)
    blocks[:, :a] = Zq + lay.offset
    blocks = blocks.astype(_U64).reshape(n * nc, 1, lay.slots)
    kb = sk.public_key.ciphertext_bytes
    blobs = get_executor().map_chunks(encrypt_packed_chunk, blocks, spec_of(sk), lay.slot_bytes, kb, min_chunk=256)
    return np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(n * nc, kb)


def _decrypt_slots(cts: np.ndarray, sk: paillier.PaillierPrivateKey, lay: _Layout, a: int, what: str) -> np.ndarray:
    """Decrypt result ciphertexts ``(k * ncts, kb)`` -> ``(k, a)`` object array of slot values,
    checking that unused slots and bits above them are zero and used slots fit their width."""
    pk = sk.public_key
    kb = pk.ciphertext_bytes
    raw = cts.tobytes()
    vals = [mpz.from_bytes(raw[i:i + kb], "big") for i in range(0, len(raw), kb)]
    if any(not 0 < v < pk.modulus for v in vals):
        raise ProtocolError(f"{what}: ciphertext outside (0, modulus)")
    res = sk.decrypt_raw(EncryptedVector(pk, obj_array(vals, (len(vals),))))
    nc = lay.ncts(a)
    s, mask = lay.slot_bits, (1 << lay.slot_bits) - 1
    out = np.empty((len(res) // nc, a), dtype=object)
    for r, v in enumerate(res):
        k, t = divmod(r, nc)
        used = min(lay.slots, a - t * lay.slots)
        if v >> (s * used):
            raise ProtocolError(f"{what}: a decrypted result has data outside its slots")
        for j in range(used):
            out[k, t * lay.slots + j] = (v >> (s * j)) & mask
    return out


def _numerators(slots: np.ndarray, lay: _Layout, masks: np.ndarray | None, what: str) -> np.ndarray:
    """Slot values (minus masks) -> float correlations ``S / (n 2^2f)``."""
    v = slots - (1 << lay.value_bits)
    if masks is not None:
        v = v - masks
    flat = v.ravel().tolist()
    lim = 1 << lay.value_bits
    if any(not -lim < int(x) < lim for x in flat):
        raise ProtocolError(f"{what}: a correlation numerator is out of range")
    den = float(lay.n) * 2.0 ** (2 * lay.frac_bits)
    return np.array([int(x) / den for x in flat], dtype=np.float64).reshape(v.shape)


# --------------------------------------------------------------------------- evaluator side

def _bucket_pow(bases: list[mpz], exps: np.ndarray, M: mpz) -> mpz:
    """``prod_i bases[i] ** exps[i] mod M`` for non-negative ``exps`` (Pippenger buckets: per
    window, multiply each base into the bucket of its digit, then combine buckets with running
    products; the window minimizes the multiplication count)."""
    if not len(bases):
        return mpz(1)
    top = int(exps.max()).bit_length()
    if top == 0:
        return mpz(1)
    best: tuple[int, int] | None = None
    for w in range(4, 17):
        nwin = -(-top // w)
        cost = sum(int(np.count_nonzero((exps >> (k * w)) & ((1 << w) - 1))) for k in range(nwin))
        cost += nwin * (2 << w) + (nwin - 1) * w
        if best is None or cost < best[0]:
            best = (cost, w)
    w = best[1]
    wmask = (1 << w) - 1
    nwin = -(-top // w)
    result = mpz(1)
    for k in range(nwin - 1, -1, -1):
        if k < nwin - 1:
            for _ in range(w):
                result = result * result % M
        d = (exps >> (k * w)) & wmask
        nz = np.flatnonzero(d)
        if not len(nz):
            continue
        order = nz[np.argsort(d[nz], kind="stable")]
        dig = d[order]
        vals, starts = np.unique(dig, return_index=True)
        ends = list(starts[1:]) + [len(order)]
        oidx = order.tolist()
        buckets: dict[int, mpz] = {}
        for v, lo, hi in zip(vals.tolist(), starts.tolist(), ends):
            acc = bases[oidx[lo]]
            for i in oidx[lo + 1:hi]:
                acc = acc * bases[i] % M
            buckets[v] = acc
        run, tot = mpz(1), mpz(1)
        started = False
        for v in range(int(vals[-1]), 0, -1):
            b = buckets.get(v)
            if b is not None:
                run = b if not started else run * b % M
                started = True
            if started:
                tot = tot * run % M
        result = result * tot % M
    return result


def signed_multiexp(bases: list[mpz], exps: np.ndarray, M: mpz) -> mpz:
    """``prod_i bases[i] ** exps[i] mod M`` for signed integer ``exps`` (one inversion)."""
    pos = np.flatnonzero(exps > 0)
    neg = np.flatnonzero(exps < 0)
    p = _bucket_pow([bases[i] for i in pos.tolist()], exps[pos], M)
    if not len(neg):
        return p
    q = _bucket_pow([bases[i] for i in neg.tolist()], -exps[neg], M)
    return p * gmpy2.invert(q, M) % M


def _eval_task(qcols: np.ndarray, blob: bytes, spec: tuple, nc: int, addends: list[int]) -> bytes:
    """Executor work: per column of ``qcols`` and ciphertext column ``t``, the signed
    multi-exponentiation of the encrypted rows times a fresh encryption of its addend."""
    pk = key_from_spec(spec)
    M, kb = pk.modulus, pk.ciphertext_bytes
    vals = [mpz.from_bytes(blob[i:i + kb], "big") for i in range(0, len(blob), kb)]
    per_t = [vals[t::nc] for t in range(nc)]
    enc = pk._encrypt_ints(addends)
    out = []
    for j in range(qcols.shape[1]):
        q = np.ascontiguousarray(qcols[:, j])
        for t in range(nc):
            out.append(signed_multiexp(per_t[t], q, M) * enc[j * nc + t] % M)
    return b"".join(c.to_bytes(kb, "big") for c in out)


def _evaluate(cts: np.ndarray, pk: paillier.PaillierPublicKey, lay: _Layout, a: int, Zq: np.ndarray,
              params: CorrParams) -> tuple[np.ndarray, np.ndarray | None]:
    """Our columns ``Zq`` (n, d) times the peer's encrypted rows (``a`` columns): ``(d * ncts, kb)``
    ciphertexts and, when the layout is masked, the masks ``R`` as an object array ``(d, a)``."""
    d = Zq.shape[1]
    nc = lay.ncts(a)
    s = lay.slot_bits
    sums = Zq.sum(axis=0, dtype=np.int64).tolist()
    masks = None
    if lay.mask_bits:
        nbytes = (lay.mask_bits + 7) // 8
        raw = os.urandom(d * a * nbytes)
        top = (1 << lay.mask_bits) - 1
        masks = np.array([int.from_bytes(raw[i:i + nbytes], "little") & top for i in range(0, len(raw), nbytes)],
                         dtype=object).reshape(d, a)
    addends = []
    for k in range(d):
        corr = (1 << lay.value_bits) - lay.offset * sums[k]
        for t in range(nc):
            v = 0
            for j in range(min(lay.slots, a - t * lay.slots)):
                slot = corr + (int(masks[k, t * lay.slots + j]) if masks is not None else 0)
                v += slot << (s * j)
            addends.append(v)
    blob = cts.tobytes()
    g = params.cols_per_task
    groups = [(k0, min(d, k0 + g)) for k0 in range(0, d, g)]
    ex = get_executor()
    parts = ex.map(_eval_task, [Zq[:, k0:k1] for k0, k1 in groups], [blob] * len(groups),
                   [spec_of(pk)] * len(groups), [nc] * len(groups), [addends[k0 * nc:k1 * nc] for k0, k1 in groups])
    res = np.frombuffer(b"".join(parts), dtype=np.uint8).reshape(d * nc, pk.ciphertext_bytes)
    return res, masks


# --------------------------------------------------------------------------- roles

def _tick(timings: dict[str, float], name: str, t0: float) -> float:
    t1 = time.perf_counter()
    timings[name] = timings.get(name, 0.0) + t1 - t0
    return t1


def _check_names(names: Sequence[str], d: int, what: str) -> list[str]:
    out = [str(v) for v in names]
    if len(out) != d:
        raise DataError(f"{what}: {len(out)} names for {d} columns")
    if len(set(out)) != d:
        raise DataError(f"{what}: column names must be unique")
    return out


def _ct_payload(pk: paillier.PaillierPublicKey, ct: np.ndarray) -> dict[str, Any]:
    return {"key": pk.fingerprint, "ct": ct}


def _pk_from(d: Any, what: str, params: CorrParams) -> paillier.PaillierPublicKey:
    if not isinstance(d, dict) or d.get("scheme") != "paillier":
        raise ProtocolError(f"{what}: expected a Paillier public key")
    pk = paillier.PaillierPublicKey.from_dict(d)
    check_peer_key(pk, what, params.allow_insecure)
    return pk


def _pair_roles(plist: Sequence[str], dims: dict[str, int]) -> list[tuple[str, str]]:
    """(encryptor, evaluator) for every pair of passive parties: the narrower one encrypts."""
    pairs = []
    for i, p in enumerate(plist):
        for q in plist[i + 1:]:
            pairs.append((p, q) if dims[p] <= dims[q] else (q, p))
    return pairs


def pearson_active(chan: Channel, X_own: Any, names: Sequence[str], *, passives: Sequence[str] | None = None,
                   **opts: Any) -> pd.DataFrame:
    """Active party: the correlation matrix over all parties' features (own names first, then
    every passive party's aliases or names in ``passives`` order). ``opts``: :class:`CorrParams`
    fields. ``result.attrs["timings"]`` holds seconds per step."""
    params = CorrParams.from_opts(opts)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    Z, const = standardize(X_own, "active features")
    n, a = Z.shape
    if a < 1:
        raise DataError("active features: need at least one column")
    own_names = _check_names(names, a, "active features")
    plist = list(chan.peers if passives is None else passives)
    if not plist:
        raise DataError("correlation needs at least one passive party")
    Zq = _quantize(Z, params.frac_bits)
    own_block = Z.T @ Z / n
    t = _tick(timings, "local", t)
    pk, sk = paillier.keygen(params.key_bits, allow_insecure=params.allow_insecure)
    lay = _layout(pk, n, params.frac_bits, False, params.sigma)
    t = _tick(timings, "keygen", t)
    with chan.stage("corr/setup"):
        hello = chan.gather(TAG_HELLO, plist, expect=dict)
        t = _tick(timings, "wait", t)
        dims: dict[str, int] = {}
        pnames: dict[str, list[str]] = {}
        for p, h in hello.items():
            if h.get("params") != params.to_dict():
                raise ProtocolError(f"passive party '{p}' runs different correlation parameters")
            if int(h.get("n", -1)) != n:
                raise DataError(f"row counts differ: active party has {n} rows, passive party '{p}' has "
                                f"{h.get('n')}; align the samples (PSI) first")
            dims[p] = int(h.get("d", 0))
            if dims[p] < 1:
                raise ProtocolError(f"passive party '{p}' announced no columns")
            pnames[p] = _check_names(h.get("names", []), dims[p], f"'{TAG_HELLO}' from '{p}'")
        all_names = own_names + [v for p in plist for v in pnames[p]]
        if len(set(all_names)) != len(all_names):
            raise ProtocolError("feature names or aliases clash across parties; use aliases")
        pairs = _pair_roles(plist, dims)
        chan.broadcast(TAG_SETUP, {"parties": plist, "dims": dims, "active_dim": a, "pk": pk.to_dict(),
                                   "pairs": [list(x) for x in pairs]}, to=plist)
    with chan.stage("corr/cross"):
        enc = _encrypt_rows(Zq, lay, sk)
        t = _tick(timings, "encrypt", t)
        chan.broadcast(TAG_ENC, _ct_payload(pk, enc), kind=Kind.CIPHERTEXT, to=plist)
        del enc
        locals_: dict[str, np.ndarray] = {}
        pconst: dict[str, np.ndarray] = {}
        for p in plist:
            blk = chan.recv(p, TAG_LOCAL, expect=dict)
            m, c = blk.get("corr"), blk.get("constant")
            if (not isinstance(m, np.ndarray) or m.shape != (dims[p], dims[p]) or not isinstance(c, np.ndarray)
                    or c.shape != (dims[p],)):
                raise ProtocolError(f"'{TAG_LOCAL}' from '{p}': expected a ({dims[p]}, {dims[p]}) block")
            locals_[p], pconst[p] = m.astype(np.float64), c.astype(bool)
        cross: dict[str, np.ndarray] = {}
        nc = lay.ncts(a)
        for p in plist:
            t = time.perf_counter()
            ct = parse_ciphertexts(chan.recv(p, TAG_CROSS), pk, dims[p] * nc, f"'{TAG_CROSS}' from '{p}'")
            t = _tick(timings, "wait", t)
            slots = _decrypt_slots(ct, sk, lay, a, f"'{TAG_CROSS}' from '{p}'")
            cross[p] = _numerators(slots, lay, None, f"'{TAG_CROSS}' from '{p}'").T  # (a, d_p)
            t = _tick(timings, "decrypt", t)
    pp: dict[tuple[str, str], np.ndarray] = {}
    with chan.stage("corr/pairs"):
        for e, v in pairs:
            t = time.perf_counter()
            Y = chan.recv(e, TAG_PP_SUM, expect=dict)
            R = chan.recv(v, TAG_PP_MASK, expect=dict)
            t = _tick(timings, "wait", t)
            elay = _layout_from_dict(Y.get("layout"), f"'{TAG_PP_SUM}' from '{e}'")
            Ys, Rs = _big_matrix(Y.get("values"), (dims[v], dims[e])), _big_matrix(R.get("values"), (dims[v], dims[e]))
            if Ys is None or Rs is None or R.get("layout") != Y.get("layout") or elay.n != n:
                raise ProtocolError(f"passive pair ({e}, {v}): malformed or inconsistent results")
            pp[(e, v)] = _numerators(Ys, elay, Rs, f"passive pair ({e}, {v})").T  # (d_e, d_v)
            t = _tick(timings, "decrypt", t)

    # assemble
    offs = {chan.party: 0}
    pos = a
    for p in plist:
        offs[p] = pos
        pos += dims[p]
    R_all = np.full((pos, pos), np.nan)
    R_all[:a, :a] = own_block
    for p in plist:
        o, dp = offs[p], dims[p]
        R_all[o:o + dp, o:o + dp] = locals_[p]
        R_all[:a, o:o + dp] = cross[p]
        R_all[o:o + dp, :a] = cross[p].T
    for (e, v), blk in pp.items():
        R_all[offs[e]:offs[e] + dims[e], offs[v]:offs[v] + dims[v]] = blk
        R_all[offs[v]:offs[v] + dims[v], offs[e]:offs[e] + dims[e]] = blk.T
    constant = np.concatenate([const] + [pconst[p] for p in plist])
    R_all = _mask_constant(R_all, constant, constant)
    df = pd.DataFrame(R_all, index=all_names, columns=all_names)
    df.attrs["timings"] = {k: round(v, 4) for k, v in timings.items()}
    df.attrs["owners"] = {nm: chan.party for nm in own_names} | {nm: p for p in plist for nm in pnames[p]}
    return df


def _layout_from_dict(d: Any, what: str) -> _Layout:
    try:
        return _Layout(**{k: int(d[k]) for k in _Layout.__dataclass_fields__})
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError(f"{what}: malformed layout") from exc


def _big_matrix(vals: Any, shape: tuple[int, int]) -> np.ndarray | None:
    """Big non-negative integers sent as a list of hex strings -> object array of ``shape``."""
    if not isinstance(vals, list) or len(vals) != shape[0] * shape[1]:
        return None
    try:
        out = [int(v, 16) for v in vals]
    except (TypeError, ValueError):
        return None
    if any(v < 0 for v in out):
        return None
    return np.array(out, dtype=object).reshape(shape)


def _hex(m: np.ndarray) -> list[str]:
    return [format(int(v), "x") for v in m.ravel().tolist()]


def pearson_passive(chan: Channel, X_own: Any, names: Sequence[str], *, active: str | None = None,
                    reveal_names: bool = False, alias_prefix: str | None = None, **opts: Any) -> None:
    """Passive party: takes part; learns nothing. Its columns appear at the active party as
    ``<alias_prefix or party>.f000``, ... or, with ``reveal_names``, as ``names``."""
    params = CorrParams.from_opts(opts)
    timings: dict[str, float] = {}
    Z, const = standardize(X_own, "passive features")
    n, d = Z.shape
    if d < 1:
        raise DataError("passive features: need at least one column")
    own_names = _check_names(names, d, "passive features")
    if active is None:
        if len(chan.peers) != 1:
            raise DataError("pearson_passive: name the active party (active=...) when there are several peers")
        active = chan.peers[0]
    prefix = alias_prefix if alias_prefix is not None else chan.party
    shown = own_names if reveal_names else [f"{prefix}.f{j:03d}" for j in range(d)]
    Zq = _quantize(Z, params.frac_bits)
    with chan.stage("corr/setup"):
        chan.send(active, TAG_HELLO, {"n": n, "d": d, "names": shown, "params": params.to_dict()})
        chan.send(active, TAG_LOCAL, {"corr": Z.T @ Z / n, "constant": const}, kind=Kind.AGGREGATE)
        setup = chan.recv(active, TAG_SETUP, expect=dict)
        try:
            plist = [str(p) for p in setup["parties"]]
            dims = {str(k): int(v) for k, v in setup["dims"].items()}
            pairs = [(str(e), str(v)) for e, v in setup["pairs"]]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProtocolError(f"'{TAG_SETUP}' from '{active}' is malformed: {exc}") from exc
        if chan.party not in plist or dims.get(chan.party) != d or pairs != _pair_roles(plist, dims):
            raise ProtocolError(f"'{TAG_SETUP}' from '{active}' does not match this party's hello")
        apk = _pk_from(setup.get("pk"), f"'{TAG_SETUP}' from '{active}'", params)
    # 1. encryptor duties of passive pairs (first, so that evaluators never wait on us)
    mine_enc = [(e, v) for e, v in pairs if e == chan.party]
    with chan.stage("corr/pairs"):
        if mine_enc:
            t = time.perf_counter()
            pk, sk = paillier.keygen(params.key_bits, allow_insecure=params.allow_insecure)
            play = _layout(pk, n, params.frac_bits, True, params.sigma)
            enc = _encrypt_rows(Zq, play, sk)
            _tick(timings, "encrypt", t)
            for _, v in mine_enc:
                chan.send(v, TAG_PP_ENC, {"pk": pk.to_dict(), **_ct_payload(pk, enc)}, kind=Kind.CIPHERTEXT)
            del enc
    # 2. evaluator for the active party
    with chan.stage("corr/cross"):
        msg = chan.recv(active, TAG_ENC, expect=dict)
        lay = _layout(apk, n, params.frac_bits, False, params.sigma)
        ct = msg.get("ct")
        if not isinstance(ct, np.ndarray) or ct.ndim != 2 or ct.shape[0] % n:
            raise ProtocolError(f"'{TAG_ENC}' from '{active}': expected n * k ciphertexts")
        nc = ct.shape[0] // n
        a = _active_width(setup, nc, lay)
        ct = parse_ciphertexts(msg, apk, n * nc, f"'{TAG_ENC}' from '{active}'")
        t = time.perf_counter()
        res, _ = _evaluate(ct, apk, lay, a, Zq, params)
        _tick(timings, "evaluate", t)
        chan.send(active, TAG_CROSS, _ct_payload(apk, res), kind=Kind.AGGREGATE)
        del ct, res
    # 3. evaluator of passive pairs, then 4. decryptor of our own pairs
    with chan.stage("corr/pairs"):
        for e, v in pairs:
            if v != chan.party:
                continue
            msg = chan.recv(e, TAG_PP_ENC, expect=dict)
            epk = _pk_from(msg.get("pk"), f"'{TAG_PP_ENC}' from '{e}'", params)
            de = dims[e]
            elay = _layout(epk, n, params.frac_bits, True, params.sigma)
            ct = parse_ciphertexts(msg, epk, n * elay.ncts(de), f"'{TAG_PP_ENC}' from '{e}'")
            t = time.perf_counter()
            res, masks = _evaluate(ct, epk, elay, de, Zq, params)
            _tick(timings, "evaluate", t)
            chan.send(e, TAG_PP_RES, _ct_payload(epk, res), kind=Kind.SHARE)
            chan.send(active, TAG_PP_MASK, {"layout": asdict(elay), "values": _hex(masks)}, kind=Kind.SHARE)
        for e, v in mine_enc:
            ct = parse_ciphertexts(chan.recv(v, TAG_PP_RES), pk, dims[v] * play.ncts(d), f"'{TAG_PP_RES}' from '{v}'")
            t = time.perf_counter()
            slots = _decrypt_slots(ct, sk, play, d, f"'{TAG_PP_RES}' from '{v}'")
            _tick(timings, "decrypt", t)
            chan.send(active, TAG_PP_SUM, {"layout": asdict(play), "values": _hex(slots)}, kind=Kind.SHARE)


def _active_width(setup: dict[str, Any], nc: int, lay: _Layout) -> int:
    a = setup.get("active_dim")
    if a is None:
        raise ProtocolError("set-up does not state the active party's width")
    a = int(a)
    if lay.ncts(a) != nc:
        raise ProtocolError("the active party's ciphertexts do not match its width")
    return a


class PearsonCorrelation:
    """scikit-learn-style wrapper over one party's role.

    >>> est = PearsonCorrelation(chan, role="active").fit(X_bank, names=bank_cols)
    >>> est.corr_            # DataFrame over all parties' features (active party only)
    """

    def __init__(self, chan: Channel, role: str, *, peers: Sequence[str] | None = None, active: str | None = None,
                 reveal_names: bool = False, **opts: Any) -> None:
        if role not in ("active", "passive"):
            raise DataError(f"role must be 'active' or 'passive' (got {role!r})")
        self.chan, self.role, self.peers, self.active = chan, role, peers, active
        self.reveal_names, self.opts = reveal_names, opts

    def fit(self, X: Any, y: Any = None, *, names: Sequence[str] | None = None) -> PearsonCorrelation:
        if isinstance(X, pd.DataFrame):
            names = list(X.columns) if names is None else names
            X = X.to_numpy(dtype=np.float64, na_value=np.nan)
        if names is None:
            names = [f"x{j}" for j in range(np.asarray(X).shape[1])]
        if self.role == "active":
            self.corr_ = pearson_active(self.chan, X, names, passives=self.peers, **self.opts)
        else:
            pearson_passive(self.chan, X, names, active=self.active, reveal_names=self.reveal_names, **self.opts)
            self.corr_ = None
        return self


__all__ = ["CorrParams", "PearsonCorrelation", "pearson_active", "pearson_passive", "plain_corr", "signed_multiexp",
           "standardize"]
