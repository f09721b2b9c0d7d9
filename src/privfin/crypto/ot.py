"""Oblivious transfer: DH base OTs and the KKRT16 OT extension (batched OPRF).

Base OT (:func:`base_ot_send` / :func:`base_ot_recv`): the "simplest OT" of Chou and
Orlandi (Latincrypt 2015) over the prime-order subgroup of edwards25519 (libsodium via
PyNaCl: ``crypto_scalarmult_ed25519*_noclamp``, ``crypto_core_ed25519_add/sub``)::

    S -> R  A = aG                                          a random scalar (mod l)
    R -> S  B_i = b_i G + c_i A                             b_i random, c_i the choice bit
    R       k_{c_i} = KDF(i, A, B_i, b_i A)
    S       k_0 = KDF(i, A, B_i, a B_i),  k_1 = KDF(i, A, B_i, a B_i - a A)

``KDF`` is BLAKE2b-128 with a personalization string, the caller's domain (job id) and the
OT index. Semi-honest security under CDH on edwards25519 with BLAKE2b as a random oracle:
``B_i`` is a uniform group element whatever ``c_i`` is (S learns nothing about ``c_i``), and
computing ``k_{1-c_i}`` needs ``a (B_i - A)`` resp. ``a B_i``, i.e. a CDH solution.

OT extension (KKRT16: Kolesnikov, Kumaresan, Rosulek, Trieu, CCS 2016), with the roles of
the base OTs reversed: the OPRF sender ``S`` is the base-OT receiver with ``W = 512`` random
choice bits ``s``; the OPRF receiver ``R`` is the base-OT sender with seed pairs ``(k_j^0,
k_j^1)``. For ``m`` instances with inputs ``r_i``, ``C`` a pseudorandom code and ``G`` the
PRG (AES-128-CTR keyed by a seed, zero IV)::

    R -> S  u^j = G(k_j^0) xor G(k_j^1) xor C(r)^j        column j of the m x W bit matrices
    R       t_i = row i of [G(k_j^0)]_j
    S       q_i = row i of [G(k_j^{s_j}) xor s_j u^j] = t_i xor (C(r_i) and s)
    OPRF    F_i(x) = H(i, q_i xor (C(x) and s));   R's output F_i(r_i) = H(i, t_i)

Parameters and argument: the code is ``C(x) = AES_K(d(x) xor tweak_j)``, ``j = 0..3``
(``W = 512`` bits, distinct tweaks for every ``j`` and caller tweak), ``K`` a random AES-128
key the OPRF sender picks and announces after the base OTs, ``d(x)`` a 128-bit digest of the
input; AES under a key both parties know is modelled as a random permutation (ideal
cipher), so code words of distinct inputs are independent uniform 512-bit strings (a
semi-honest receiver's inputs are fixed before it sees ``K``). For ``x != r_i`` the
sender's value differs from ``t_i`` by ``(C(x) xor C(r_i)) and s``; by Hoeffding the
Hamming distance of two such code words is below 128 with probability <= ``exp(-2 *
128^2 / 512) = e^-64 < 2^-92``, so with up to ``2^40`` compared pairs all of them have
distance >= 128 except with probability < ``2^-52``, and each such value hides >= 128
unknown bits of ``s``. KKRT16 picks widths of about 424-448 bits for 128-bit security at
these set sizes; ``W = 512`` (four AES blocks) exceeds them, and the bound above stands on its
own. ``H`` is BLAKE2b (a random oracle,
hence correlation robust) over ``(domain, i, row)``, truncated by the caller. Columns of
``u`` are one-time padded by ``G(k_j^{1-s_j})``, unknown to S, so ``u`` hides the
receiver's inputs. Randomness: seeds, scalars, choice bits and keys come from
``os.urandom``; the PRG is AES-CTR (AES-NI via ``cryptography``).

Bit conventions: a row of ``W`` bits is ``W/8`` bytes, bit ``j`` in byte ``j // 8`` at
LSB position ``j % 8`` (``np.packbits(..., bitorder="little")``); :func:`transpose_bits`
maps between row-major and column-major bit matrices with a vectorized 8x8 bit transpose.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from typing import Any, Final

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from nacl import bindings as sodium

from privfin.errors import CryptoError, ProtocolError
from privfin.transport.base import Channel, Kind

W: Final = 512  # code width in bits (= number of base OTs)
W_BYTES: Final = W // 8
SEED_BYTES: Final = 16
POINT_BYTES: Final = 32
_CODE_BLOCKS: Final = W_BYTES // 16


# -- base OT (Chou-Orlandi over edwards25519) -----------------------------------------------------


def _scalar() -> bytes:
    return sodium.crypto_core_ed25519_scalar_reduce(os.urandom(64))


def _kdf(dst: bytes, i: int, a: bytes, b: bytes, p: bytes) -> bytes:
    h = hashlib.blake2b(digest_size=SEED_BYTES, person=b"privfin-baseot1")
    h.update(len(dst).to_bytes(2, "little") + dst + i.to_bytes(4, "little") + a + b + p)
    return h.digest()


def _check_point(p: bytes, what: str) -> None:
    if len(p) != POINT_BYTES or not sodium.crypto_core_ed25519_is_valid_point(p):
        raise ProtocolError(f"{what}: not a valid edwards25519 point of the prime-order subgroup")


def base_ot_send(chan: Channel, peer: str, count: int, dst: bytes,
                 tag: str = "ot/base") -> tuple[np.ndarray, np.ndarray]:
    """Sender side of ``count`` base OTs with ``peer``: the two seed arrays ``(count, 16)`` uint8."""
    a = _scalar()
    big_a = sodium.crypto_scalarmult_ed25519_base_noclamp(a)
    chan.send(peer, f"{tag}/A", big_a, kind=Kind.PLAINTEXT)
    bs = chan.recv(peer, f"{tag}/B")
    if not isinstance(bs, np.ndarray) or bs.dtype != np.uint8 or bs.shape != (count, POINT_BYTES):
        raise ProtocolError(f"'{tag}/B' from '{peer}': expected a ({count}, {POINT_BYTES}) uint8 array")
    a_a = sodium.crypto_scalarmult_ed25519_noclamp(a, big_a)
    k0, k1 = [], []
    for i, row in enumerate(bs):
        b = row.tobytes()
        _check_point(b, f"'{tag}/B' from '{peer}'")
        ab = sodium.crypto_scalarmult_ed25519_noclamp(a, b)
        k0.append(_kdf(dst, i, big_a, b, ab))
        k1.append(_kdf(dst, i, big_a, b, sodium.crypto_core_ed25519_sub(ab, a_a)))
    return (np.frombuffer(b"".join(k0), np.uint8).reshape(count, SEED_BYTES),
            np.frombuffer(b"".join(k1), np.uint8).reshape(count, SEED_BYTES))


def base_ot_recv(chan: Channel, peer: str, choices: np.ndarray, dst: bytes, tag: str = "ot/base") -> np.ndarray:
    """Receiver side: for choice bits ``choices`` (bool array), the chosen seeds ``(n, 16)`` uint8."""
    big_a = chan.recv(peer, f"{tag}/A", expect=bytes)
    _check_point(big_a, f"'{tag}/A' from '{peer}'")
    bs, ks = [], []
    for i, c in enumerate(np.asarray(choices, bool).tolist()):
        b = _scalar()
        big_b = sodium.crypto_scalarmult_ed25519_base_noclamp(b)
        if c:
            big_b = sodium.crypto_core_ed25519_add(big_b, big_a)
        bs.append(big_b)
        ks.append(_kdf(dst, i, big_a, big_b, sodium.crypto_scalarmult_ed25519_noclamp(b, big_a)))
    n = len(bs)
    chan.send(peer, f"{tag}/B", np.frombuffer(b"".join(bs), np.uint8).reshape(n, POINT_BYTES), kind=Kind.CIPHERTEXT)
    return np.frombuffer(b"".join(ks), np.uint8).reshape(n, SEED_BYTES)


# -- bit matrices -----------------------------------------------------------------------------------

_T1, _T2, _T3 = np.uint64(0x00AA00AA00AA00AA), np.uint64(0x0000CCCC0000CCCC), np.uint64(0x00000000F0F0F0F0)
_S7, _S14, _S28 = np.uint64(7), np.uint64(14), np.uint64(28)


def transpose_bits(m: np.ndarray) -> np.ndarray:
    """Transpose a bit matrix: ``(R, C/8)`` uint8 (R rows of C bits, little bit order) to ``(C, R/8)``.

    ``R`` must be a multiple of 8. Works in 8x8 bit blocks held in uint64 words."""
    r, cb = m.shape
    if r % 8:
        raise ValueError("transpose_bits needs a row count that is a multiple of 8")
    x = m.reshape(r // 8, 8, cb).transpose(2, 0, 1).copy(order="C").view("<u8")[..., 0]  # own copy: edited in place
    # x[jb, g]: byte k = row 8g+k's byte jb; bit 8k+b <-> 8b+k is the 8x8 transpose (in place)
    t = np.empty_like(x)
    for shift, mask in ((_S7, _T1), (_S14, _T2), (_S28, _T3)):
        np.right_shift(x, shift, out=t)
        t ^= x
        t &= mask
        x ^= t
        t <<= shift
        x ^= t
    y = x.astype("<u8", copy=False).view(np.uint8).reshape(cb, r // 8, 8)
    return np.ascontiguousarray(y.transpose(0, 2, 1)).reshape(cb * 8, r // 8)


# -- code, PRG, hash ----------------------------------------------------------------------------------


def aes_ecb(key: bytes, data: bytes) -> bytes:
    """AES-ECB of whole 16-byte blocks under ``key`` (a PRP on each block)."""
    enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return enc.update(data) + enc.finalize()


def code_words(key: bytes, digests: np.ndarray, tweaks: np.ndarray) -> np.ndarray:
    """Pseudorandom code words ``(n, W/8)`` uint8 of inputs ``(digest, tweak)``.

    ``digests``: ``(n, 16)`` uint8; ``tweaks``: ``(n,)`` small ints (e.g. a hash index) mixed in
    so that one digest gives unrelated code words under different tweaks."""
    n = len(digests)
    blocks = np.repeat(digests.reshape(n, 1, 16), _CODE_BLOCKS, axis=1)
    tw = (np.asarray(tweaks, np.int64)[:, None] * _CODE_BLOCKS + np.arange(_CODE_BLOCKS) + 1).astype("<u4")
    blocks[:, :, 12:16] ^= tw.view(np.uint8).reshape(n, _CODE_BLOCKS, 4)
    return np.frombuffer(aes_ecb(key, blocks.tobytes()), np.uint8).reshape(n, W_BYTES)


class _Prg:
    """AES-128-CTR streams, one per seed, read column block by column block."""

    def __init__(self, seeds: np.ndarray) -> None:
        self._enc = [Cipher(algorithms.AES(s.tobytes()), modes.CTR(bytes(16))).encryptor() for s in seeds]

    def next(self, nbytes: int) -> np.ndarray:
        zero = bytes(nbytes)
        return np.frombuffer(b"".join(e.update(zero) for e in self._enc), np.uint8).reshape(len(self._enc), nbytes)


def hash_each(base: Any, items: Iterable[bytes | memoryview]) -> bytes:
    """The digests of ``base`` (a keyed/prefixed ``hashlib`` object, left unchanged) continued
    with each item, concatenated: one hash call per item (ids, rows, points)."""
    cp = base.copy

    def one(item: bytes | memoryview) -> bytes:
        h = cp()
        h.update(item)
        return h.digest()

    return b"".join(map(one, items))


def hash_rows(base: Any, rows: np.ndarray) -> np.ndarray:
    """:func:`hash_each` over the rows of a 2-d uint8 array: an ``S<digest_size>`` array."""
    raw = memoryview(np.ascontiguousarray(rows, np.uint8).reshape(-1))  # flat bytes, no copy
    w = rows.shape[1]
    return np.frombuffer(hash_each(base, (raw[i:i + w] for i in range(0, len(raw), w))), f"S{base.digest_size}")


def hash_rows_chunk(rows: np.ndarray, out_bytes: int, dst: bytes) -> np.ndarray:
    """``H(dst, row)`` for each row of a 2-d uint8 array: BLAKE2b truncated to ``out_bytes`` (``S`` array)."""
    base = hashlib.blake2b(digest_size=out_bytes, person=b"privfin-kkrt-H1")
    base.update(len(dst).to_bytes(2, "little") + dst)
    return hash_rows(base, rows)


def hash_input(bins: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``(n, 8 + W/8)`` uint8: the instance index (little-endian uint64) followed by the row."""
    idx = np.asarray(bins, "<u8").reshape(-1, 1).view(np.uint8)
    return np.concatenate([idx, rows], axis=1)


# -- OT extension ----------------------------------------------------------------------------------------


class OprfReceiver:
    """KKRT OPRF receiver (base-OT sender): feeds its inputs' code words block by block."""

    def __init__(self, seeds0: np.ndarray, seeds1: np.ndarray) -> None:
        if seeds0.shape != (W, SEED_BYTES) or seeds1.shape != (W, SEED_BYTES):
            raise CryptoError(f"KKRT needs {W} base OT seed pairs")
        self._g0, self._g1 = _Prg(seeds0), _Prg(seeds1)

    def step(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For the next ``b`` instances (``codes``: ``(b, W/8)``, b a multiple of 8): ``(u, t)``.

        ``u``: ``(W, b/8)`` uint8, the message for the sender; ``t``: ``(b, W/8)`` rows kept."""
        b = len(codes)
        g0 = self._g0.next(b // 8)
        u = g0 ^ self._g1.next(b // 8) ^ transpose_bits(codes)
        return u, transpose_bits(g0)


class OprfSender:
    """KKRT OPRF sender (base-OT receiver with secret choice bits ``s``)."""

    def __init__(self, choices: np.ndarray, seeds: np.ndarray) -> None:
        if choices.shape != (W,) or seeds.shape != (W, SEED_BYTES):
            raise CryptoError(f"KKRT needs {W} choice bits and {W} seeds")
        self._g = _Prg(seeds)
        self._sel = np.asarray(choices, bool)[:, None]
        self.mask = np.packbits(np.asarray(choices, np.uint8), bitorder="little")

    def step(self, u: np.ndarray) -> np.ndarray:
        """Rows ``q_i = t_i xor (C(r_i) and s)`` for the next ``8 u.shape[1]`` instances."""
        if u.dtype != np.uint8 or u.ndim != 2 or u.shape[0] != W:
            raise ProtocolError(f"OT extension message must be a ({W}, b) uint8 array")
        q = self._g.next(u.shape[1])
        q = q ^ np.where(self._sel, u, np.uint8(0))
        return transpose_bits(q)

    def encode(self, q_rows: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """``q_i xor (C(x) and s)``: equals the receiver's ``t_i`` exactly when ``x = r_i``."""
        return q_rows ^ (codes & self.mask)


__all__ = ["W", "W_BYTES", "SEED_BYTES", "aes_ecb", "base_ot_send", "base_ot_recv", "transpose_bits", "code_words",
           "hash_each", "hash_rows", "hash_rows_chunk", "hash_input", "OprfReceiver", "OprfSender"]
