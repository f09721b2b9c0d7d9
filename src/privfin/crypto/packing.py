"""Packing many small non-negative integers into one plaintext ("decrypt once, unpack many").

A plaintext of ``plaintext_bits`` bits is cut into ``slots`` slots of ``slot_bits =
value_bits + headroom_bits`` bits; slot ``j`` holds ``v_j * 2^(j * slot_bits)``. Values are
non-negative and below ``2^value_bits`` (use :class:`OffsetEncoder` to map signed reals
there). Adding packed ciphertexts adds slot-wise, with no carries as long as every slot
stays below ``2^slot_bits``: ``capacity = floor((2^slot_bits - 1) / (2^value_bits - 1))``
unit-bounded terms (at least ``2^headroom_bits``).

The guard: an :class:`~privfin.crypto._he.EncryptedVector` made by :meth:`Packer.encrypt`
or :meth:`Packer.pack_encrypted` carries ``capacity`` and a ``weight`` (upper bound on the
number of terms summed into a slot, times any integer multipliers); every homomorphic
operation that could push a slot past its capacity raises :class:`EncodingOverflowError`
*before* computing. Packing a value of ``2^value_bits`` or more also raises.

Typical uses:

- gradient/hessian pairs: the label holder packs ``(g_i, h_i)`` per sample in one
  plaintext, halving encryptions; passive parties sum per bin; one decryption per bin.
- histogram bins before decryption: :meth:`Packer.pack_encrypted` folds ``slots``
  ciphertexts of bin sums into one (``c_0 * c_1^(2^s) * c_2^(2^2s) ...``), so the key holder
  decrypts ``slots`` times fewer ciphertexts and the link carries that many fewer bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gmpy2
import numpy as np
from gmpy2 import mpz

from privfin.crypto._he import (
    PARALLEL_MIN_EXP,
    EncryptedVector,
    HEPrivateKey,
    HEPublicKey,
    ZeroPool,
    _dispatch,
    key_from_spec,
    obj_array,
    spec_of,
)
from privfin.errors import CryptoError, EncodingOverflowError


class Packer:
    """Slot layout: ``value_bits`` per value plus ``headroom_bits`` for additions.

    ``plaintext_bits`` is the usable plaintext size; :meth:`for_key` takes it from a public key
    (``max_int`` bound: 2045 bits for Paillier-2048, 680 for OU-2048).
    """

    def __init__(self, value_bits: int, headroom_bits: int, plaintext_bits: int) -> None:
        if value_bits < 1 or headroom_bits < 0:
            raise CryptoError(f"value_bits must be >= 1 and headroom_bits >= 0 "
                              f"(got value_bits={value_bits}, headroom_bits={headroom_bits})")
        self.value_bits = value_bits
        self.headroom_bits = headroom_bits
        self.slot_bits = value_bits + headroom_bits
        self.plaintext_bits = plaintext_bits
        self.slots = plaintext_bits // self.slot_bits
        if self.slots < 1:
            raise CryptoError(f"slot of {self.slot_bits} bits does not fit a {plaintext_bits}-bit plaintext")
        self.capacity = ((1 << self.slot_bits) - 1) // ((1 << value_bits) - 1)

    @classmethod
    def for_key(cls, public_key: HEPublicKey, value_bits: int, headroom_bits: int) -> Packer:
        return cls(value_bits, headroom_bits, public_key.max_int.bit_length() - 1)

    def __repr__(self) -> str:
        return (f"Packer(value_bits={self.value_bits}, headroom_bits={self.headroom_bits}, "
                f"slots={self.slots}, capacity={self.capacity})")

    def _check_values(self, arr: np.ndarray) -> list[int]:
        if arr.dtype.kind not in "biuO":
            raise CryptoError(f"packing needs non-negative integers (got dtype {arr.dtype})")
        vals = [int(v) for v in arr.ravel().tolist()]
        if vals and (min(vals) < 0 or max(vals) >= (1 << self.value_bits)):
            raise EncodingOverflowError(f"packed values must lie in [0, 2^{self.value_bits}) "
                                        f"(value_bits={self.value_bits})")
        return vals

    def pack(self, values: Any) -> list[int]:
        """Pack rows of a 2-D integer array ``(n, k)`` with ``k <= slots``: one int per row."""
        arr = np.asarray(values)
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2 or arr.shape[1] > self.slots:
            raise CryptoError(f"pack needs shape (n, k) with k <= {self.slots} slots (got {arr.shape})")
        if arr.dtype.kind in "iu" and self.value_bits <= 64 and self.slot_bits % 8 == 0:
            return self._pack_bytes(arr)
        vals = self._check_values(arr)
        k, s = arr.shape[1], self.slot_bits
        out = []
        for i in range(arr.shape[0]):
            acc = 0
            for j in range(k - 1, -1, -1):
                acc = (acc << s) | vals[i * k + j]
            out.append(acc)
        return out

    def _pack_bytes(self, arr: np.ndarray) -> list[int]:
        """:meth:`pack` for byte-aligned slots and fixed-width integers, vectorized."""
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= (1 << self.value_bits)):
            raise EncodingOverflowError(f"packed values must lie in [0, 2^{self.value_bits}) "
                                        f"(value_bits={self.value_bits})")
        n, k = arr.shape
        sb = self.slot_bits // 8
        buf = np.zeros((n, k, max(sb, 8)), dtype=np.uint8)
        buf[:, :, :8] = np.ascontiguousarray(arr, dtype="<u8").view(np.uint8).reshape(n, k, 8)
        raw = buf[:, :, :sb].tobytes()
        row = k * sb
        return [int.from_bytes(raw[i:i + row], "little") for i in range(0, len(raw), row)]

    def unpack(self, packed: Sequence[int], k: int) -> np.ndarray:
        """Inverse of :meth:`pack` after homomorphic sums: ``(len(packed), k)`` slot values
        (int64 where they fit, else object)."""
        if not 1 <= k <= self.slots:
            raise CryptoError(f"k must be in 1..{self.slots} (got {k})")
        s, mask = self.slot_bits, (1 << self.slot_bits) - 1
        out = []
        for v in packed:
            v = int(v)
            if v >> (s * self.slots):
                raise EncodingOverflowError(f"packed plaintext exceeds {self.slots} slots of {s} bits")
            out.extend((v >> (j * s)) & mask for j in range(k))
        dtype: Any = np.int64 if s < 63 else object
        arr = np.array(out, dtype=dtype) if dtype is np.int64 else obj_array(out, (len(out),))
        return arr.reshape(len(packed), k)

    def encrypt(self, public_key: HEPublicKey, values: Any, *, zeros: ZeroPool | Sequence[mpz] | None = None,
                slot_tables: bool = False) -> EncryptedVector:
        """Pack rows of ``values`` (see :meth:`pack`) and encrypt them; result carries the guard.

        ``zeros``: encryptions of zero made ahead (a :class:`~privfin.crypto._he.ZeroPool` or a
        list, one per row), see :meth:`HEPublicKey.encrypt_ints`. ``slot_tables`` (OU only, for
        many rows): the plaintext part ``G^m`` comes from :class:`SlotPowers` tables aligned to
        the slots (built once per process and layout; columns that are all 1 are folded in as
        constants) instead of the key's generic table. Same ciphertexts either way."""
        if not (slot_tables and public_key.scheme == "ou"):
            ev = public_key.encrypt_ints(self.pack(values), zeros=zeros)
            ev.capacity = self.capacity
            return ev
        arr = np.asarray(values)
        if arr.ndim == 1:
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2 or arr.shape[1] > self.slots:
            raise CryptoError(f"pack needs shape (n, k) with k <= {self.slots} slots (got {arr.shape})")
        self._check_values(arr)
        if arr.shape[0] == 0:
            return EncryptedVector(public_key, obj_array([], (0,)), 0, capacity=self.capacity)
        k = arr.shape[1]
        const = tuple((j, 1) for j in range(k) if (arr[:, j] == 1).all())[:k - 1]  # keep one varying
        var = [j for j in range(k) if j not in dict(const)]
        layout = (self.slot_bits, self.value_bits, k, const)
        rows = [tuple(r) for r in arr[:, var].tolist()]
        gms = _dispatch(_slot_powers_chunk, rows, spec_of(public_key), layout, min_items=public_key.parallel_min,
                        width=public_key.ciphertext_bytes)
        cts = public_key.with_zeros(gms, public_key.random_zeros(len(gms)) if zeros is None else zeros)
        return EncryptedVector(public_key, obj_array(cts, (len(cts),)), 0, capacity=self.capacity)

    def decrypt(self, private_key: HEPrivateKey, ev: EncryptedVector, k: int) -> np.ndarray:
        """Decrypt packed ciphertexts and unpack ``k`` slots each -> ``(len(ev), k)``."""
        return self.unpack(private_key.decrypt_raw(ev), k)

    def pack_encrypted(self, ev: EncryptedVector) -> EncryptedVector:
        """Fold a 1-D vector of single-value ciphertexts into ``ceil(len/slots)`` packed ones.

        Every input element must hold a non-negative value below ``2^slot_bits`` (e.g. a sum
        of at most ``capacity`` values below ``2^value_bits``): pass ``ev`` with ``capacity``
        set, or one whose ``weight`` times ``2^value_bits`` fits a slot; otherwise this raises.
        Use :meth:`unpack_flat` after decryption.
        """
        if ev.ndim != 1:
            raise CryptoError(f"pack_encrypted needs a 1-D EncryptedVector (shape {ev.shape})")
        if ev.frac_bits:
            raise CryptoError("pack_encrypted needs integer (offset-encoded) ciphertexts, frac_bits=0")
        if ev.weight > self.capacity:
            raise EncodingOverflowError(f"packed slots hold at most {self.capacity} summed unit terms; "
                                        f"the input elements may hold up to {ev.weight}")
        cts = ev.ciphertexts.tolist()
        groups = [cts[i:i + self.slots] for i in range(0, len(cts), self.slots)]
        out = _dispatch(_fold_chunk, groups, ev.public_key.modulus, self.slot_bits,
                        min_items=max(1, PARALLEL_MIN_EXP // self.slots))
        return EncryptedVector(ev.public_key, obj_array(out, (len(out),)), 0, ev.weight, self.capacity)

    def unpack_flat(self, packed: Sequence[int], count: int) -> np.ndarray:
        """Slot values of :meth:`pack_encrypted` output, first ``count`` of them, 1-D."""
        return self.unpack(packed, self.slots).ravel()[:count]


class SlotPowers:
    """``G^m mod n`` (OU) for packed plaintexts ``m = sum_j v_j 2^(j*slot_bits)``, slot values
    below ``2^value_bits``, some slots constant (``const``: slot -> value).

    One table of ``2^window`` residues per ``window`` bits of each varying slot (aligned to the
    slot, so no digit straddles two values); the constant slots' power is folded into the first
    table. A row of two varying 26-bit values costs 3 multiplications instead of one per byte
    of ``m`` with the key's generic table. Memory: ``ceil(value_bits/window)`` tables per
    varying slot of ``2^window`` residues (13-bit windows, OU-2048: 2 MB per table).
    """

    def __init__(self, G: int, n: int, slot_bits: int, value_bits: int, n_slots: int,
                 const: dict[int, int] | None = None, window: int = 13) -> None:
        const = const or {}
        if not 1 <= window <= 16:
            raise CryptoError(f"window must be 1..16 bits (got {window})")
        if n_slots < 1 or any(not 0 <= j < n_slots for j in const):
            raise CryptoError(f"constant slots {sorted(const)} outside 0..{n_slots - 1}")
        G, n = mpz(G), mpz(n)
        self.n, self.window = n, window
        self.varying = [j for j in range(n_slots) if j not in const]
        if not self.varying:
            raise CryptoError("SlotPowers needs at least one varying slot")
        self.digits = -(-value_bits // window)
        self.value_bits = value_bits
        c = gmpy2.powmod(G, sum(v << (j * slot_bits) for j, v in const.items()), n)
        self.tables: list[list[mpz]] = []
        for j in self.varying:
            for d in range(self.digits):
                base = gmpy2.powmod(G, mpz(1) << (j * slot_bits + d * window), n)
                acc = c if not self.tables else mpz(1)
                row = [acc]
                for _ in range((1 << window) - 1):
                    acc = acc * base % n
                    row.append(acc)
                self.tables.append(row)

    def powers(self, values: Sequence[Sequence[int]]) -> list[mpz]:
        """``G^m`` for rows of the varying slots' values (in slot order), each below ``2^value_bits``."""
        n, w, mask, tabs = self.n, self.window, (1 << self.window) - 1, self.tables
        nv, lim = len(self.varying), 1 << self.value_bits
        out = []
        for vs in values:
            if len(vs) != nv:
                raise CryptoError(f"SlotPowers rows need {nv} varying values (got {len(vs)})")
            acc, t = None, 0
            for v in vs:
                if not 0 <= v < lim:
                    raise EncodingOverflowError(f"slot value outside [0, 2^{self.value_bits})")
                for _ in range(self.digits):
                    x = tabs[t][v & mask]
                    acc = x if acc is None else acc * x % n
                    v >>= w
                    t += 1
            out.append(acc)
        return out


_SLOT_POWERS: dict[tuple, SlotPowers] = {}


def _slot_powers_chunk(values: list[tuple[int, ...]], spec: tuple, layout: tuple[int, int, int, tuple]) -> list[mpz]:
    """Executor task: ``G^m`` of packed rows (tables built once per process, key and layout)."""
    key = (spec, layout)
    sp = _SLOT_POWERS.get(key)
    if sp is None:
        pk = key_from_spec(spec)
        _SLOT_POWERS.clear()
        sp = _SLOT_POWERS[key] = SlotPowers(pk.G, pk.n, layout[0], layout[1], layout[2], dict(layout[3]))
    return sp.powers(values)


def _fold_chunk(groups: Sequence[Sequence[mpz]], modulus: mpz, slot_bits: int) -> list[mpz]:
    """Horner: ``acc = acc^(2^s) * c_j`` from the top slot down (s squarings per slot)."""
    shift = mpz(1) << slot_bits
    out = []
    for g in groups:
        acc = g[-1]
        for c in reversed(g[:-1]):
            acc = gmpy2.powmod(acc, shift, modulus) * c % modulus
        out.append(acc)
    return out


class OffsetEncoder:
    """Signed reals in ``[-bound, bound]`` -> non-negative ints below ``2^value_bits``.

    ``encode(x) = round((x + bound) * 2^frac_bits)``; a slot sum of ``n_terms`` encoded
    values decodes as ``sum / 2^frac_bits - n_terms * bound``. Precision ``2^-frac_bits`` per
    term (rounding error at most half of it per term).
    """

    def __init__(self, bound: float, frac_bits: int) -> None:
        if not bound > 0 or not math.isfinite(bound):
            raise CryptoError("OffsetEncoder bound must be a positive finite number")
        self.bound = float(bound)
        self.frac_bits = int(frac_bits)
        self.offset = int(round(self.bound * (1 << self.frac_bits)))
        self.value_bits = (2 * self.offset).bit_length()

    def encode(self, x: Any) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise CryptoError("cannot encode NaN or infinity")
        if arr.size and float(np.max(np.abs(arr))) > self.bound:
            raise EncodingOverflowError(f"values must lie in [-bound, bound] (bound={self.bound})")
        out = np.rint(np.ldexp(arr, self.frac_bits)).astype(np.int64) + self.offset
        return np.clip(out, 0, 2 * self.offset)

    def decode(self, sums: Any, n_terms: Any) -> np.ndarray:
        s = np.asarray(sums)
        t = np.asarray(n_terms)
        num = s.astype(object) - t.astype(object) * self.offset
        return np.array([v / (1 << self.frac_bits) for v in np.ravel(num).tolist()],
                        dtype=np.float64).reshape(num.shape)
