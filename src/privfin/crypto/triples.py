"""Beaver triples for :mod:`privfin.crypto.sharing`: a two-party protocol from Paillier (no
dealer), and an optional dealer mode for deployments with a third party.

Two-party matrix triples (``A``: n x d, ``B``: d x k, ``C = A @ B`` over ``Z_2^64``)
-------------------------------------------------------------------------------
Each party ``i`` draws its shares ``A_i``, ``B_i`` uniformly (CSPRNG) and owns a Paillier key
pair. ``C = A0@B0 + A1@B1 + A0@B1 + A1@B0``; the first two terms are local, each cross term
``A_i @ B_j`` is computed with ``i``'s key:

1. ``i`` packs its ``A_i`` *column-wise along n*: ciphertext ``(blk, col)`` holds the ``S``
   values ``A_i[blk*S + s, col]`` in slots of ``slot_bits`` bits (``S = 11`` for a 2048-bit
   key and d <= 64 with sigma = 40), encrypts them and sends the ``ceil(n/S) * d`` ciphertexts.
2. ``j`` computes, per block and output column ``t``, ``prod_col Enc(...)^(B_j[col, t])``:
   every slot now holds the integer ``sum_col A_i[row, col] * B_j[col, t] < d * 2^128``.
   All blocks share the same ``d`` exponents, so this is a multi-exponentiation with a fixed
   exponent set: a Bos–Coster program computed once and replayed per block (about 690
   multiplications mod ``n^2`` for d = 50 and 64-bit exponents, against about 3,800 for
   separate powers). ``j`` adds a
   fresh encryption of a packed mask ``R`` (each slot uniform below ``2^mask_bits``,
   ``mask_bits >= 128 + ceil(log2 d) + sigma``; slots are widened to share the whole
   plaintext: 184-bit slots and ``mask_bits = 183`` for d = 50 at 2048 bits), which also
   re-randomizes, and sends it back.
3. ``i`` decrypts (``ceil(n/S) * k`` decryptions), and keeps ``(A_i@B_j + R) mod 2^64``;
   ``j`` keeps ``-R mod 2^64``.

The rows are processed in rounds of :data:`CHUNK_ROWS` (steps 1–3 per round), which bounds
memory and message size. Work per party for n x d times d x k: ``ceil(n/S)*d`` encryptions, ``ceil(n/S)*k``
multi-exponentiations, ``ceil(n/S)*k`` decryptions; traffic ``ceil(n/S)*(d + k)`` ciphertexts
(512 bytes at 2048 bits) each way. The long side is encrypted *packed* because packing makes
one encryption and one exponentiation cover ``S`` rows; encrypting the short side (``B``)
instead would need ``n*d`` exponentiations with 64-bit exponents and no packing.

Elementwise triples (``c = a * b``) use one ciphertext per element (slots cannot be multiplied
by different scalars): ``i`` sends ``Enc(a_i)``, ``j`` returns ``Enc(a_i) ^ b_j * Enc(R)``.

Dealer mode (optional, **requires a third party trusted not to collude with either party**)
--------------------------------------------------------------------------------------------
:func:`dealer_triples` (run by the dealer) draws two 32-byte CSPRNG seeds; party 0 expands
``A0, B0, C0`` from its seed, party 1 ``A1, B1`` from its own and receives ``C1 = A@B - C0``.
Traffic is ``n * k`` ring elements plus two seeds.

Security
--------
- **Model.** Two parties, semi-honest, non-colluding; Paillier (DCR assumption) with at
  least 2048-bit moduli (112-bit security; see :mod:`privfin.crypto.paillier`). Keys are
  generated per :class:`HETripleGenerator` session; smaller keys only with
  ``allow_insecure=True`` (tests).
- **Evaluator ``j``** sees only ciphertexts under ``i``'s key (IND-CPA): nothing about
  ``A_i`` beyond its shape.
- **Key owner ``i``** decrypts ``v + R`` per slot, where ``v = sum_col A_i*B_j < 2^(128 +
  ceil(log2 d))`` and ``R`` is uniform on ``[0, 2^mask_bits)``: the statistical distance
  between ``v + R`` and ``R`` is at most ``2^-(mask_bits - 128 - ceil(log2 d))`` per slot, at
  most ``2^-sigma``. ``sigma`` is at least 40 (:data:`SIGMA`, the minimum the layout
  guarantees); widening the slots to fill the plaintext gives 49 for d = 50 at 2048 bits, so a
  100,000-row triple (100,000 slots) is within ``100000 * 2^-49 < 2^-32`` of the ideal view.
  Elementwise triples mask with about ``key_bits - 130`` bits. Slots carry one bit of headroom
  above ``mask_bits`` so ``v + R`` never carries into the next slot, and ``S * slot_bits``
  stays below the plaintext bound, so nothing wraps modulo ``n``: the triple is always
  correct; ``sigma`` bounds only what the key owner learns. The returned ciphertext includes
  a fresh encryption of ``R``, so it is a fresh Paillier ciphertext of its plaintext (it does
  not show how it was computed).
- **Resulting shares.** ``A_i``, ``B_i`` are uniform; ``C_i`` is uniform given the other
  party's view (it contains ``R`` or ``v + R`` reduced mod 2^64). Each party learns nothing of
  the other's shares beyond the statistical distance above. All randomness (shares, masks, Paillier randomizers, seeds) is from the OS
  CSPRNG or an AES-CTR stream keyed from it.
- **Messages.** Public keys: ``Kind.PLAINTEXT``; ciphertexts: ``Kind.CIPHERTEXT``; dealer
  seeds and ``C1``: ``Kind.SHARE``.
- **Dealer mode**: the dealer learns every triple (not the data: triples are independent of
  it); it must not collude with either party.
"""

from __future__ import annotations

import heapq
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gmpy2
import numpy as np
from gmpy2 import mpz

from privfin.crypto import paillier
from privfin.crypto._he import (
    EncryptedVector,
    HEPrivateKey,
    HEPublicKey,
    check_peer_key,
    obj_array,
    key_from_spec,
    slots_for,
    spec_of,
)
from privfin.crypto.sharing import RING_BITS, BeaverTriple, prg_ring, random_ring
from privfin.errors import CryptoError, ProtocolError
from privfin.runtime.executor import get_executor
from privfin.transport.base import Channel, Kind

SIGMA = 40
"""Minimum statistical security parameter of the HE masks (mask bits beyond the masked value's
range); the packed layout may give more (see :func:`layout_info`)."""

_U64 = np.uint64


# --------------------------------------------------------------------------- keys

@dataclass
class TripleKeys:
    """This party's Paillier key pair and the peer's public key."""

    public: HEPublicKey
    private: HEPrivateKey
    peer: HEPublicKey


def exchange_keys(chan: Channel, peer: str, *, key_bits: int = 2048, allow_insecure: bool = False,
                  tag: str = "triple/key") -> TripleKeys:
    """Generate our Paillier key pair, send the public key, receive the peer's."""
    pk, sk = paillier.keygen(key_bits, allow_insecure=allow_insecure)
    chan.send(peer, tag, pk.to_dict(), kind=Kind.PLAINTEXT)
    d = chan.recv(peer, tag, expect=dict)
    if d.get("scheme") != "paillier":
        raise ProtocolError(f"'{tag}' from '{peer}': expected a Paillier public key")
    peer_pk = paillier.PaillierPublicKey.from_dict(d)
    check_peer_key(peer_pk, f"peer '{peer}'", allow_insecure)
    return TripleKeys(pk, sk, peer_pk)


# --------------------------------------------------------------------------- layout

@dataclass(frozen=True)
class PackedLayout:
    mask_bits: int   # mask R < 2^mask_bits
    slot_bytes: int  # slot width (bytes); slot_bits = 8 * slot_bytes > mask_bits
    slots: int       # slots per plaintext


def _layout(pk: HEPublicKey, d: int, sigma: int) -> PackedLayout:
    """Slots for ``d``-term sums of 64 x 64-bit products masked with at least ``sigma`` bits.

    The slot count is the most that fits with ``sigma``; the slots are then widened to share
    the rest of the plaintext, and the mask takes all of a slot but its top bit, so the
    effective statistical parameter is ``mask_bits - 128 - ceil(log2 d) >= sigma`` (49 for
    d = 50 at 2048 bits)."""
    value_bits = 2 * RING_BITS + max(0, math.ceil(math.log2(max(d, 1))))
    plain_bits = pk.max_int.bit_length() - 1
    slots = slots_for(pk, (value_bits + sigma + 1 + 7) // 8)
    slot_bytes = plain_bits // (8 * slots)
    return PackedLayout(8 * slot_bytes - 1, slot_bytes, slots)


def layout_info(pk: HEPublicKey, d: int, sigma: int = SIGMA) -> dict[str, int]:
    """Public packing figures of matrix triples for key ``pk`` and ``d`` columns."""
    lay = _layout(pk, d, sigma)
    return {"slots": lay.slots, "slot_bits": 8 * lay.slot_bytes, "mask_bits": lay.mask_bits,
            "sigma_effective": lay.mask_bits - 2 * RING_BITS - max(0, math.ceil(math.log2(max(d, 1))))}


def _blocks(x: np.ndarray, slots: int) -> np.ndarray:
    """(n, d) uint64 -> (ceil(n/S), d, S): block b, column c holds rows b*S .. b*S+S-1."""
    n, d = x.shape
    nb = -(-n // slots)
    pad = np.zeros((nb * slots, d), dtype=_U64)
    pad[:n] = x
    return np.ascontiguousarray(pad.reshape(nb, slots, d).transpose(0, 2, 1))


def _pack_ints(vals: np.ndarray, slot_bytes: int) -> list[int]:
    """(..., S) uint64 -> one int per row of S slots (little-endian slots of slot_bytes)."""
    S = vals.shape[-1]
    flat = np.ascontiguousarray(vals.reshape(-1, S), dtype="<u8")
    buf = np.zeros((flat.shape[0], S, slot_bytes), dtype=np.uint8)
    buf[:, :, :8] = flat.view(np.uint8).reshape(flat.shape[0], S, 8)
    raw = buf.tobytes()
    L = S * slot_bytes
    return [int.from_bytes(raw[i:i + L], "little") for i in range(0, len(raw), L)]


def _pack_masks(count: int, layout: PackedLayout) -> tuple[list[int], np.ndarray]:
    """``count`` packed masks (each slot uniform below 2^mask_bits) and their low 64 bits."""
    S, sb, mb = layout.slots, layout.slot_bytes, layout.mask_bits
    raw = np.frombuffer(bytearray(os.urandom(count * S * sb)), dtype=np.uint8).reshape(count, S, sb)
    top = mb - 8 * (sb - 1)  # bits used in the top byte of a slot (0 < top <= 8)
    raw[:, :, sb - 1] &= (1 << top) - 1 if top < 8 else 0xFF
    low = raw[:, :, :8].copy().view("<u8").reshape(count, S).astype(_U64)
    data = raw.tobytes()
    L = S * sb
    return [int.from_bytes(data[i:i + L], "little") for i in range(0, len(data), L)], low


def unpack_low64(residues: Sequence[int], layout: PackedLayout, key_bytes: int) -> np.ndarray:
    """Decrypted packed plaintexts -> (len, S) low 64 bits of every slot."""
    S, sb = layout.slots, layout.slot_bytes
    L = S * sb
    buf = b"".join(int(r).to_bytes(key_bytes, "little") for r in residues)
    arr = np.frombuffer(buf, dtype=np.uint8).reshape(len(residues), key_bytes)
    if np.any(arr[:, L:]):
        raise CryptoError("triple generation: a packed result exceeds its slots (peer sent malformed data)")
    return np.ascontiguousarray(arr[:, :L]).reshape(len(residues), S, sb)[:, :, :8].copy().view("<u8").reshape(
        len(residues), S).astype(_U64)


# --------------------------------------------------------------------------- multi-exponentiation

def multiexp_plan(exps: Sequence[int]) -> tuple[list[tuple[int, int, int]], tuple[int, int] | None]:
    """Bos–Coster program for ``prod_i base_i ** exps[i]`` with a fixed exponent list.

    Repeatedly take the two largest exponents ``e1 >= e2`` (bases ``b1``, ``b2``) and use
    ``b1^e1 * b2^e2 = b1^(e1 mod e2) * (b2 * b1^q)^e2`` with ``q = e1 div e2``: one
    multiplication when ``q = 1`` (the usual case). When one exponent is left, a plain power
    finishes. The program depends only on the exponents, so it is computed once and replayed
    for every block of bases: about 690 multiplications for 50 random 64-bit exponents, against
    about 3,800 for 50 separate powers."""
    heap = [(-int(e), i) for i, e in enumerate(exps) if int(e)]
    heapq.heapify(heap)
    ops: list[tuple[int, int, int]] = []
    while len(heap) > 1:
        e1, i1 = heapq.heappop(heap)
        e2, i2 = heap[0]
        q, r = divmod(-e1, -e2)
        ops.append((i1, i2, q))  # base[i2] *= base[i1] ** q
        if r:
            heapq.heappush(heap, (-r, i1))
    last = (heap[0][1], -heap[0][0]) if heap else None
    return ops, last


def multiexp(bases: Sequence[mpz], plan: tuple[list[tuple[int, int, int]], tuple[int, int] | None], M: mpz) -> mpz:
    """Replay a :func:`multiexp_plan` program on ``bases`` modulo ``M``."""
    ops, last = plan
    b = list(bases)
    powmod = gmpy2.powmod
    for i1, i2, q in ops:
        b[i2] = b[i2] * (b[i1] if q == 1 else powmod(b[i1], q, M)) % M
    if last is None:
        return mpz(1)
    i, e = last
    return b[i] if e == 1 else powmod(b[i], e, M)


# --------------------------------------------------------------------------- executor work functions

def encrypt_packed_chunk(blocks: np.ndarray, priv_spec: tuple, slot_bytes: int, kb: int) -> bytes:
    """(nb, d, S) uint64 -> packed encryptions under our own key, big-endian blob (nb*d ciphertexts)."""
    sk = key_from_spec(priv_spec)
    ms = _pack_ints(blocks, slot_bytes)
    n, n2 = sk.public_key.n, sk.public_key.nsquare
    cts = [(n * m + 1) * z % n2 for m, z in zip(ms, sk.random_zeros(len(ms)))]  # owner-side CRT randomness
    return b"".join(c.to_bytes(kb, "big") for c in cts)


def _evaluate_chunk(cts: np.ndarray, exps: list[list[int]], spec: tuple, mask_bits: int, slot_bytes: int,
                    slots: int) -> tuple[bytes, np.ndarray]:
    """Per block: prod_col ct[blk, col]^exps[t][col] * Enc(R) for every output column t.

    ``cts``: (nb, d, kb) uint8 ciphertexts under the peer's key ``spec``. Returns the blob of
    (nb, k) result ciphertexts and the (nb, k, S) low 64 bits of the masks."""
    pk = key_from_spec(spec)
    M, kb = pk.modulus, pk.ciphertext_bytes
    nb, d, _ = cts.shape
    raw = cts.tobytes()
    from_bytes = mpz.from_bytes
    vals = [from_bytes(raw[i:i + kb], "big") for i in range(0, len(raw), kb)]
    for v in vals:
        if not 0 < v < M:
            raise CryptoError("triple generation: peer ciphertext outside (0, modulus)")
    plans = [multiexp_plan(col) for col in exps]
    k = len(exps)
    layout = PackedLayout(mask_bits, slot_bytes, slots)
    packed, low = _pack_masks(nb * k, layout)
    enc_r = pk._encrypt_ints(packed)
    out = []
    for b in range(nb):
        bases = vals[b * d:(b + 1) * d]
        for t in range(k):
            out.append(multiexp(bases, plans[t], M) * enc_r[b * k + t] % M)
    return b"".join(c.to_bytes(kb, "big") for c in out), low.reshape(nb, k, slots)


# --------------------------------------------------------------------------- two-party HE triples

def _timed(timings: dict[str, float] | None, name: str, t0: float) -> float:
    t1 = time.perf_counter()
    if timings is not None:
        timings[name] = timings.get(name, 0.0) + t1 - t0
    return t1


def parse_ciphertexts(payload: Any, pk: HEPublicKey, count: int, what: str) -> np.ndarray:
    """Check a ``{key, ct}`` payload: ``count`` fixed-width ciphertexts under ``pk``."""
    kb = pk.ciphertext_bytes
    if not isinstance(payload, dict) or payload.get("key") != pk.fingerprint:
        raise ProtocolError(f"{what}: expected ciphertexts under key {pk.fingerprint}")
    ct = payload.get("ct")
    if not isinstance(ct, np.ndarray) or ct.dtype != np.uint8 or ct.shape != (count, kb):
        got = f"{ct.dtype}{ct.shape}" if isinstance(ct, np.ndarray) else type(ct).__name__
        raise ProtocolError(f"{what}: expected uint8({count}, {kb}) ciphertexts, got {got}")
    return ct


CHUNK_ROWS = 22_528
"""Rows per protocol round of :func:`matmul_triple_he` (2,048 blocks of 11 rows at 2048 bits):
bounds the ciphertexts held in memory and sent per message (about 52 MB each way for d = 50)."""


def matmul_triple_he(chan: Channel, peer: str, party: int, n: int, d: int, k: int | None = None, *,
                     keys: TripleKeys, sigma: int = SIGMA, tag: str = "triple/mm", chunk_rows: int = CHUNK_ROWS,
                     timings: dict[str, float] | None = None) -> BeaverTriple:
    """This party's shares of a matrix triple ``A (n x d)``, ``B (d x k)``, ``C = A @ B``.

    ``k=None`` gives a vector ``B`` of shape ``(d,)`` and ``C`` of shape ``(n,)``. Both parties
    call it with the same shapes and ``chunk_rows`` (rows per round; the cross terms are
    computed round by round to bound memory); ``keys`` from :func:`exchange_keys`.
    ``timings`` (optional) accumulates seconds per step: ``encrypt``, ``evaluate``,
    ``decrypt``, ``wait``."""
    if party not in (0, 1):
        raise CryptoError(f"party index must be 0 or 1 (got {party})")
    if n < 1 or d < 1 or (k is not None and k < 1) or chunk_rows < 1:
        raise CryptoError(f"triple shapes must be positive (n={n}, d={d}, k={k}, chunk_rows={chunk_rows})")
    if not isinstance(keys.private, paillier.PaillierPrivateKey):
        raise CryptoError("HE triples need a Paillier key pair")
    kk = 1 if k is None else int(k)
    t = time.perf_counter()
    a = random_ring((n, d))
    b = random_ring((d, kk))
    c = a @ b
    own, theirs = _layout(keys.public, d, sigma), _layout(keys.peer, d, sigma)
    exps = [[int(v) for v in b[:, j].tolist()] for j in range(kk)]
    _timed(timings, "encrypt", t)
    for ci, r0 in enumerate(range(0, n, chunk_rows)):
        r1 = min(n, r0 + chunk_rows)
        _cross_round(chan, peer, keys, a[r0:r1], exps, c[r0:r1], own, theirs, f"{tag}/{ci}", timings)
    if k is None:
        return BeaverTriple(a, b.reshape(d), c.reshape(n), "matmul")
    return BeaverTriple(a, b, c, "matmul")


def _cross_round(chan: Channel, peer: str, keys: TripleKeys, a: np.ndarray, exps: list[list[int]], c: np.ndarray,
                 own: PackedLayout, theirs: PackedLayout, tag: str, timings: dict[str, float] | None) -> None:
    """Both cross terms for the rows of ``a``; adds this party's shares of them into ``c`` (a view)."""
    ex = get_executor()
    n, d = a.shape
    kk = len(exps)
    t = time.perf_counter()

    # 1. our A, packed and encrypted under our key
    blocks = _blocks(a, own.slots)
    nb_own = blocks.shape[0]
    blobs = ex.map_chunks(encrypt_packed_chunk, blocks, spec_of(keys.private), own.slot_bytes,
                          keys.public.ciphertext_bytes, min_chunk=16)
    ct = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(nb_own * d, keys.public.ciphertext_bytes)
    del blobs, blocks
    t = _timed(timings, "encrypt", t)
    chan.send(peer, f"{tag}/enc", {"key": keys.public.fingerprint, "ct": ct}, kind=Kind.CIPHERTEXT)
    del ct

    # 2. the peer's A, times our B, plus masks
    nb_peer = -(-n // theirs.slots)
    t = time.perf_counter()
    peer_ct = parse_ciphertexts(chan.recv(peer, f"{tag}/enc"), keys.peer, nb_peer * d, f"'{tag}/enc' from '{peer}'")
    t = _timed(timings, "wait", t)
    parts = ex.map_chunks(_evaluate_chunk, peer_ct.reshape(nb_peer, d, -1), exps, spec_of(keys.peer),
                          theirs.mask_bits, theirs.slot_bytes, theirs.slots, min_chunk=4)
    del peer_ct
    res = np.frombuffer(b"".join(p[0] for p in parts), dtype=np.uint8).reshape(nb_peer * kk, -1)
    low = np.concatenate([p[1] for p in parts])  # (nb_peer, k, S)
    # our share of the cross term A_peer @ B_ours is -R
    c -= low.transpose(0, 2, 1).reshape(nb_peer * theirs.slots, kk)[:n]
    t = _timed(timings, "evaluate", t)
    chan.send(peer, f"{tag}/res", {"key": keys.peer.fingerprint, "ct": res}, kind=Kind.CIPHERTEXT)

    # 3. our A @ their B + their R, decrypted
    t = time.perf_counter()
    back = parse_ciphertexts(chan.recv(peer, f"{tag}/res"), keys.public, nb_own * kk, f"'{tag}/res' from '{peer}'")
    t = _timed(timings, "wait", t)
    kb = keys.public.ciphertext_bytes
    raw = back.tobytes()
    M = keys.public.modulus
    vals = [mpz.from_bytes(raw[i:i + kb], "big") for i in range(0, len(raw), kb)]
    if any(not 0 < v < M for v in vals):
        raise CryptoError("triple generation: peer ciphertext outside (0, modulus)")
    residues = keys.private.decrypt_raw(EncryptedVector(keys.public, obj_array(vals, (len(vals),))))
    key_bytes = (int(keys.private.plaintext_modulus).bit_length() + 7) // 8
    mine = unpack_low64(residues, own, key_bytes).reshape(nb_own, kk, own.slots)
    c += mine.transpose(0, 2, 1).reshape(nb_own * own.slots, kk)[:n]
    _timed(timings, "decrypt", t)


def mul_triple_he(chan: Channel, peer: str, party: int, shape: int | Sequence[int], *, keys: TripleKeys,
                  sigma: int = SIGMA, tag: str = "triple/mul") -> BeaverTriple:
    """This party's shares of an elementwise triple ``c = a * b`` of ``shape`` (one ciphertext
    per element: meant for vectors, not for millions of elements)."""
    if party not in (0, 1):
        raise CryptoError(f"party index must be 0 or 1 (got {party})")
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    a, b = random_ring(shape), random_ring(shape)
    c = a * b
    m = a.size
    ev = keys.public.encrypt_ints([int(v) for v in a.ravel().tolist()])
    chan.send(peer, f"{tag}/enc", ev.to_wire(), kind=Kind.CIPHERTEXT)

    theirs = EncryptedVector.from_wire(keys.peer, chan.recv(peer, f"{tag}/enc", expect=dict))
    if theirs.shape != (m,) or theirs.frac_bits or theirs.capacity is not None:
        raise ProtocolError(f"'{tag}/enc' from '{peer}': expected {m} integer ciphertexts")
    # one value per plaintext: the mask can fill it (statistical parameter ~ plaintext bits - 128)
    mask_bits = keys.peer.max_int.bit_length() - 2
    if mask_bits < 2 * RING_BITS + sigma:
        raise CryptoError(f"a {keys.peer.key_bits}-bit key is too small for sigma={sigma}")
    r_mask, nb = (1 << mask_bits) - 1, (mask_bits + 7) // 8
    r_raw = os.urandom(m * nb)
    rs = [int.from_bytes(r_raw[i:i + nb], "little") & r_mask for i in range(0, m * nb, nb)]
    out = theirs.multiply(b.ravel()) + keys.peer.encrypt_ints(rs)
    out.weight = 1
    chan.send(peer, f"{tag}/res", out.to_wire(), kind=Kind.CIPHERTEXT)
    c -= np.array([r & 0xFFFFFFFFFFFFFFFF for r in rs], dtype=_U64).reshape(shape)

    back = EncryptedVector.from_wire(keys.public, chan.recv(peer, f"{tag}/res", expect=dict))
    if back.shape != (m,):
        raise ProtocolError(f"'{tag}/res' from '{peer}': expected {m} ciphertexts")
    res = keys.private.decrypt_raw(back)
    c += np.array([int(v) & 0xFFFFFFFFFFFFFFFF for v in res], dtype=_U64).reshape(shape)
    return BeaverTriple(a, b, c, "mul")


@dataclass
class HETripleGenerator:
    """Object API over the two-party HE protocol: exchanges keys once, then makes triples.

    Both parties create one (``party`` 0 and 1) and call the same methods in the same order."""

    chan: Channel
    peer: str
    party: int
    key_bits: int = 2048
    allow_insecure: bool = False
    sigma: int = SIGMA
    keys: TripleKeys | None = None
    timings: dict[str, float] = field(default_factory=dict)
    _n: int = 0

    def _ensure_keys(self) -> TripleKeys:
        if self.keys is None:
            t = time.perf_counter()
            self.keys = exchange_keys(self.chan, self.peer, key_bits=self.key_bits, allow_insecure=self.allow_insecure)
            self.timings["keygen"] = self.timings.get("keygen", 0.0) + time.perf_counter() - t
        return self.keys

    def matmul(self, n: int, d: int, k: int | None = None) -> BeaverTriple:
        keys = self._ensure_keys()
        self._n += 1
        return matmul_triple_he(self.chan, self.peer, self.party, n, d, k, keys=keys, sigma=self.sigma,
                                tag=f"triple/mm/{self._n}", timings=self.timings)

    def mul(self, shape: int | Sequence[int]) -> BeaverTriple:
        keys = self._ensure_keys()
        self._n += 1
        return mul_triple_he(self.chan, self.peer, self.party, shape, keys=keys, sigma=self.sigma,
                             tag=f"triple/mul/{self._n}")


# --------------------------------------------------------------------------- dealer mode

def _spec_shapes(kind: str, shape: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    if kind == "mul":
        s = tuple(int(v) for v in shape)
        return s, s, s
    if kind == "matmul":
        if len(shape) == 2:
            n, d = (int(v) for v in shape)
            return (n, d), (d,), (n,)
        n, d, k = (int(v) for v in shape)
        return (n, d), (d, k), (n, k)
    raise CryptoError(f"triple kind must be 'mul' or 'matmul' (got {kind!r})")


def _expand(seed: bytes, kind: str, shape: Sequence[int], with_c: bool) -> tuple[np.ndarray, ...]:
    sa, sb, sc = _spec_shapes(kind, shape)
    out = (prg_ring(seed, 1, sa), prg_ring(seed, 2, sb))
    return out + (prg_ring(seed, 3, sc),) if with_c else out


def dealer_triples(chan: Channel, parties: tuple[str, str], kind: str, shape: Sequence[int], *,
                   tag: str = "triple/dealer") -> None:
    """**Dealer role** (a third party): deal one triple of ``kind`` (``"mul"``: elementwise of
    ``shape``; ``"matmul"``: ``shape = (n, d)`` for a vector B or ``(n, d, k)``) to
    ``parties = (party0, party1)``. The dealer learns the triple, never the data."""
    s0, s1 = os.urandom(32), os.urandom(32)
    a0, b0, c0 = _expand(s0, kind, shape, True)
    a1, b1 = _expand(s1, kind, shape, False)
    a, b = a0 + a1, b0 + b1
    c = a * b if kind == "mul" else a @ b
    chan.send(parties[0], tag, {"seed": s0}, kind=Kind.SHARE)
    chan.send(parties[1], tag, {"seed": s1, "c": c - c0}, kind=Kind.SHARE)


def recv_dealer_triple(chan: Channel, dealer: str, party: int, kind: str, shape: Sequence[int], *,
                       tag: str = "triple/dealer") -> BeaverTriple:
    """**Party role** in dealer mode: this party's shares of the dealt triple."""
    if party not in (0, 1):
        raise CryptoError(f"party index must be 0 or 1 (got {party})")
    msg = chan.recv(dealer, tag, expect=dict)
    seed = msg.get("seed")
    if not isinstance(seed, bytes) or len(seed) != 32:
        raise ProtocolError(f"'{tag}' from '{dealer}': expected a 32-byte seed")
    if party == 0:
        a, b, c = _expand(seed, kind, shape, True)
    else:
        a, b = _expand(seed, kind, shape, False)
        c = msg.get("c")
        sc = _spec_shapes(kind, shape)[2]
        if not isinstance(c, np.ndarray) or c.dtype != _U64 or c.shape != sc:
            raise ProtocolError(f"'{tag}' from '{dealer}': expected a uint64 share of shape {sc}")
        c = c.copy()
    return BeaverTriple(a, b, c, kind)


__all__ = [
    "CHUNK_ROWS",
    "SIGMA",
    "HETripleGenerator",
    "TripleKeys",
    "dealer_triples",
    "exchange_keys",
    "layout_info",
    "matmul_triple_he",
    "mul_triple_he",
    "recv_dealer_triple",
]
