"""Shared machinery of the additively homomorphic schemes (Paillier, Okamoto–Uchiyama).

Both schemes have ciphertexts in a multiplicative group modulo a public ``modulus`` (``n^2``
for Paillier, ``n`` for OU): adding plaintexts is multiplying ciphertexts, multiplying a
plaintext by ``k`` is raising to ``k``. Everything that only needs that — the
:class:`EncryptedVector` API, the executor dispatch, the wire format, fixed-base tables,
prime generation — lives here; a scheme supplies encryption, trivial (randomness-free)
encodings of plaintexts and decryption.

Work functions handed to the executor are the module-level ``_*_chunk`` functions; they take
plain data (lists of ``mpz``/ints and a key *spec*: a tuple of ints and a name) and rebuild
(and cache, per process) the key and its fixed-base tables from the spec.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar, Self

import gmpy2
import numpy as np
from gmpy2 import mpz

from privfin.crypto.encoding import (
    DEFAULT_FRAC_BITS,
    decode_array,
    encode_array,
    ints_to_array,
    is_integer_input,
    to_signed,
)
from privfin.errors import CryptoError, EncodingOverflowError
from privfin.runtime.executor import get_executor

PARALLEL_MIN_EXP = 64
"""Vectors with at least this many exponentiation-class operations (encrypt, decrypt, scalar
multiply, dot) go through the executor; smaller ones stay in-process."""
PARALLEL_MIN_MUL = 20000
"""Same threshold for cheap multiplication-class operations (add, sum)."""

_ONE = mpz(1)


# --------------------------------------------------------------------------- parameters

def security_bits(modulus_bits: int) -> int:
    """Symmetric-equivalent strength of an RSA-type modulus (NIST SP 800-57 Part 1, Table 2)."""
    if modulus_bits >= 15360:
        return 256
    if modulus_bits >= 7680:
        return 192
    if modulus_bits >= 3072:
        return 128
    if modulus_bits >= 2048:
        return 112
    return 80


def check_key_size(n_bits: int, allow_insecure: bool) -> None:
    if n_bits < 2048 and not allow_insecure:
        raise CryptoError(f"key size n_bits={n_bits} is below 2048 (112-bit security); "
                          "pass allow_insecure=True only in tests")
    if n_bits < 256:
        raise CryptoError(f"key size n_bits={n_bits} is too small to work at all (minimum 256)")


def check_peer_key(pk: HEPublicKey, who: str, allow_insecure: bool) -> None:
    """Refuse another party's public key below 2048 bits unless ``allow_insecure`` (tests)."""
    if pk.key_bits < 2048 and not allow_insecure:
        raise CryptoError(f"{who} sent a {pk.key_bits}-bit key; at least 2048 bits are required")


def slots_for(pk: HEPublicKey, slot_bytes: int) -> int:
    """How many ``slot_bytes``-byte slots a packed non-negative plaintext under ``pk`` holds
    (at least one, else :class:`CryptoError`)."""
    slots = (pk.max_int.bit_length() - 1) // (8 * slot_bytes)
    if slots < 1:
        raise CryptoError(f"a {pk.key_bits}-bit key cannot hold one {8 * slot_bytes}-bit slot")
    return slots


def random_prime(bits: int, *, mod4_3: bool = False) -> mpz:
    """A random prime of exactly ``bits`` bits with its two top bits set (CSPRNG candidates).

    ``gmpy2.next_prime`` (GMP ``mpz_nextprime``) finds the next probable prime after a
    ``secrets``-random odd start (the incremental "PRIMEINC" search of Brandt–Damgård 1993,
    whose slight bias toward primes after long gaps is harmless); the result is re-checked
    with ``gmpy2.is_prime(p, 50)`` (GMP: Baillie–PSW plus Miller–Rabin rounds). With the two
    top bits set, the product of two such primes has exactly ``2 * bits`` bits.
    """
    while True:
        cand = mpz(secrets.randbits(bits)) | (mpz(3) << (bits - 2)) | 1
        p = gmpy2.next_prime(cand)
        if p.bit_length() != bits or (mod4_3 and p % 4 != 3):
            continue
        if gmpy2.is_prime(p, 50):
            return p


def fingerprint(*parts: int | str) -> str:
    """Short public identifier of a key (hex SHA-256 of its public parameters)."""
    h = hashlib.sha256()
    for v in parts:
        b = v.encode() if isinstance(v, str) else int(v).to_bytes((int(v).bit_length() + 8) // 8, "big")
        h.update(len(b).to_bytes(4, "big") + b)
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- fixed-base tables

class FixedBaseTable:
    """``base**e mod modulus`` for many exponents, with ``window``-bit digits precomputed.

    Row ``i`` holds ``base**(j * 2**(window*i))`` for ``j < 2**window``, so an exponent of
    ``D`` digits costs ``D - 1`` modular multiplications and no squarings. Rows are built
    lazily (``2**window`` multiplications each) up to the longest exponent seen. Memory:
    ``2**window`` residues per row (8-bit windows: 256; 12-bit: 4096).
    """

    __slots__ = ("base", "modulus", "rows", "window")

    def __init__(self, base: int, modulus: int, window: int = 8) -> None:
        if not 1 <= window <= 16:
            raise CryptoError(f"window must be 1..16 bits (got {window})")
        self.modulus = mpz(modulus)
        self.base = mpz(base) % self.modulus
        self.window = window
        self.rows: list[list[mpz]] = []

    def _extend(self, nrows: int) -> None:
        M, size = self.modulus, 1 << self.window
        b = self.base if not self.rows else self.rows[-1][size - 1] * self.rows[-1][1] % M
        while len(self.rows) < nrows:
            row = [_ONE] * size
            acc = _ONE
            for j in range(1, size):
                acc = acc * b % M
                row[j] = acc
            self.rows.append(row)
            b = acc * b % M  # base ** 2**(window*(i+1))

    def pow_digits_many(self, digits: Sequence[int], width: int) -> list[mpz]:
        """One power per run of ``width`` little-endian digits in ``digits`` (bytes or ints)."""
        if len(self.rows) < width:
            self._extend(width)
        rows, M = self.rows, self.modulus
        first, tail = rows[0], rows[1:width]
        out = []
        for off in range(0, len(digits), width):
            acc = first[digits[off]]
            for row, d in zip(tail, digits[off + 1:off + width]):
                acc = acc * row[d] % M
            out.append(acc)
        return out

    def pow(self, e: int) -> mpz:
        """``base**e mod modulus`` for ``e >= 0``."""
        e = int(e)
        if e == 0:
            return _ONE
        if self.window == 8:
            width = (e.bit_length() + 7) // 8
            return self.pow_digits_many(e.to_bytes(width, "little"), width)[0]
        w, mask = self.window, (1 << self.window) - 1
        width = -(-e.bit_length() // w)
        return self.pow_digits_many([(e >> (w * i)) & mask for i in range(width)], width)[0]

    def pow_random(self, count: int, nbits: int) -> list[mpz]:
        """``count`` powers with independent uniform exponents of ``ceil(nbits/window)*window``
        bits (digits drawn directly from ``os.urandom``)."""
        width = -(-nbits // self.window)
        if self.window == 8:
            return self.pow_digits_many(os.urandom(count * width), width)
        raw = np.frombuffer(os.urandom(2 * count * width), dtype=np.uint16)
        digits = (raw & ((1 << self.window) - 1)).tolist()
        return self.pow_digits_many(digits, width)


# --------------------------------------------------------------------------- keys

_KEY_TYPES: dict[str, Callable[[tuple], Any]] = {}
_KEY_CACHE: dict[tuple, Any] = {}


def register_key_type(name: str, factory: Callable[[tuple], Any]) -> None:
    _KEY_TYPES[name] = factory


def spec_of(key: Any) -> tuple:
    """``key.spec()``, remembering ``key`` itself so in-process work reuses its tables."""
    spec = key.spec()
    if spec not in _KEY_CACHE:
        if len(_KEY_CACHE) > 16:
            _KEY_CACHE.clear()
        _KEY_CACHE[spec] = key
    return spec


def key_from_spec(spec: tuple) -> Any:
    """Rebuild (once per process) a key from its plain-data spec; tables stay cached with it."""
    key = _KEY_CACHE.get(spec)
    if key is None:
        if len(_KEY_CACHE) > 16:
            _KEY_CACHE.clear()
        key = _KEY_CACHE[spec] = _KEY_TYPES[spec[0]](spec)
    return key


class HEPublicKey(ABC):
    """Public key of an additively homomorphic scheme; subclasses: Paillier, OU."""

    scheme: ClassVar[str]
    parallel_min: ClassVar[int] = PARALLEL_MIN_EXP   # encryptions worth sending to the executor
    plain_parallel_min: ClassVar[int] = PARALLEL_MIN_EXP  # same for randomness-free encodings
    modulus: mpz          # ciphertext modulus
    max_int: int          # public bound on |plaintext| (signed)
    key_bits: int

    # ---- scheme hooks
    @abstractmethod
    def spec(self) -> tuple:
        """Plain-data description (name, ints...) from which workers rebuild the key."""

    @abstractmethod
    def _encrypt_ints(self, ms: Sequence[int]) -> list[mpz]:
        """Encrypt signed ints (|m| <= max_int) with fresh randomness."""

    @abstractmethod
    def _plain_ints(self, ms: Sequence[int]) -> list[mpz]:
        """Randomness-free ciphertext encodings of signed ints (for adding plaintexts)."""

    @abstractmethod
    def random_zeros(self, count: int) -> list[mpz]:
        """``count`` fresh encryptions of zero, in-process (for re-randomization, or to make
        randomness ahead: see :class:`ZeroPool` and ``encrypt_ints(..., zeros=...)``)."""

    def fresh_zeros(self, count: int) -> list[mpz]:
        """:meth:`random_zeros` for large batches (chunked over the executor)."""
        if count < self.parallel_min:
            return self.random_zeros(count)
        return _dispatch(_zeros_chunk, [None] * count, spec_of(self), min_items=self.parallel_min,
                         width=self.ciphertext_bytes)

    @abstractmethod
    def to_dict(self) -> dict[str, Any]: ...

    # ---- shared
    @property
    def fingerprint(self) -> str:
        return fingerprint(*self.spec())

    @property
    def ciphertext_bytes(self) -> int:
        return (self.modulus.bit_length() + 7) // 8

    def __eq__(self, other: object) -> bool:
        return isinstance(other, HEPublicKey) and self.spec() == other.spec()

    def __hash__(self) -> int:
        return hash(self.spec())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_bits={self.key_bits}, fingerprint={self.fingerprint})"

    def to_bytes(self) -> bytes:
        return _dict_to_bytes(self.to_dict())

    def encrypt(self, x: Any, frac_bits: int | None = None) -> EncryptedVector:
        """Encrypt a scalar or array. Floats use fixed point (``frac_bits``, default 40);
        integers are exact (``frac_bits`` 0 unless given). Returns an :class:`EncryptedVector`."""
        if frac_bits is None:
            frac_bits = 0 if is_integer_input(x) else DEFAULT_FRAC_BITS
        vals, shape = encode_array(x, frac_bits, self.max_int)
        cts = _dispatch(_encrypt_chunk, vals, spec_of(self), min_items=self.parallel_min,
                        width=self.ciphertext_bytes)
        return EncryptedVector(self, obj_array(cts, shape), frac_bits)

    def encrypt_ints(self, ints: Sequence[int], zeros: ZeroPool | Sequence[mpz] | None = None) -> EncryptedVector:
        """Encrypt already-encoded signed ints (e.g. packed plaintexts) with ``frac_bits = 0``.

        ``zeros``: encryptions of zero made earlier (a :class:`ZeroPool`, or a list of
        :meth:`random_zeros` output with one element per int, each used once): then only the
        randomness-free encodings are computed now and multiplied in; same ciphertexts."""
        vals = [int(v) for v in ints]
        if vals and max(max(vals), -min(vals)) > self.max_int:
            raise EncodingOverflowError(f"plaintext exceeds the scheme bound max_int "
                                        f"(a {self.max_int.bit_length()}-bit bound)")
        if zeros is None:
            cts = _dispatch(_encrypt_chunk, vals, spec_of(self), min_items=self.parallel_min,
                            width=self.ciphertext_bytes)
        else:
            plain = _dispatch(_plain_chunk, vals, spec_of(self), min_items=self.plain_parallel_min,
                              width=self.ciphertext_bytes)
            cts = self.with_zeros(plain, zeros)
        return EncryptedVector(self, obj_array(cts, (len(vals),)), 0)

    def with_zeros(self, plain: Sequence[mpz], zeros: ZeroPool | Sequence[mpz]) -> list[mpz]:
        """Ciphertexts ``plain[i] * zero[i]``: randomness-free encodings (e.g. of packed rows)
        turned into fresh encryptions by encryptions of zero from ``zeros`` (each used once)."""
        if isinstance(zeros, ZeroPool):
            if zeros.public_key is not self and zeros.public_key != self:
                raise CryptoError(f"zero pool is for key {zeros.public_key.fingerprint}, not {self.fingerprint}")
            zs = zeros.take(len(plain))
        else:
            zs = list(zeros)
        if len(zs) != len(plain):
            raise CryptoError(f"need one encryption of zero per plaintext ({len(plain)}), got {len(zs)}")
        M = self.modulus
        return [a * z % M for a, z in zip(plain, zs)]

    def zero_pool(self, target: int, **kwargs: Any) -> ZeroPool:
        """A :class:`ZeroPool` for this key (``target`` zeros kept ready)."""
        return ZeroPool(self, target, **kwargs)


class HEPrivateKey(ABC):
    """Private key; ``public_key`` is the matching :class:`HEPublicKey`."""

    public_key: HEPublicKey
    plaintext_modulus: mpz   # n (Paillier) or p (OU); secret for OU

    @abstractmethod
    def spec(self) -> tuple: ...

    @abstractmethod
    def _decrypt_residues(self, cts: Sequence[mpz]) -> list[mpz]:
        """Plaintext residues in ``[0, plaintext_modulus)``."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]: ...

    def to_bytes(self) -> bytes:
        """Serialized private key (for this party's own key store only)."""
        return _dict_to_bytes(self.to_dict())

    def __repr__(self) -> str:  # never print the factors
        pk = self.public_key
        return f"{type(self).__name__}(key_bits={pk.key_bits}, fingerprint={pk.fingerprint})"

    def _check(self, ev: EncryptedVector) -> None:
        if not isinstance(ev, EncryptedVector):
            raise CryptoError(f"expected an EncryptedVector, got {type(ev).__name__}")
        if ev.public_key != self.public_key:
            raise CryptoError(f"ciphertext is under key {ev.public_key.fingerprint}, "
                              f"this private key is {self.public_key.fingerprint}")

    def decrypt_raw(self, ev: EncryptedVector) -> list[int]:
        """Flat list of plaintext residues in ``[0, plaintext_modulus)`` (e.g. packed slots)."""
        self._check(ev)
        cts = ev.ciphertexts.ravel().tolist()
        res = _dispatch(_decrypt_chunk, cts, spec_of(self), min_items=self.public_key.parallel_min,
                        width=(self.plaintext_modulus.bit_length() + 7) // 8)
        return [int(v) for v in res]

    def decrypt_int(self, ev: EncryptedVector) -> np.ndarray:
        """Signed integers (ignoring ``frac_bits``); int64 array if they fit, else object."""
        ints = to_signed(self.decrypt_raw(ev), int(self.plaintext_modulus), self.public_key.max_int)
        return ints_to_array(ints, ev.shape)

    def decrypt(self, ev: EncryptedVector) -> np.ndarray:
        """Plaintext values: float64 if ``ev.frac_bits > 0``, otherwise integers."""
        ints = to_signed(self.decrypt_raw(ev), int(self.plaintext_modulus), self.public_key.max_int)
        if ev.frac_bits:
            return decode_array(ints, ev.frac_bits, ev.shape)
        return ints_to_array(ints, ev.shape)


def _dict_to_bytes(d: dict[str, Any]) -> bytes:
    import json
    return json.dumps({k: (f"0x{v:x}" if isinstance(v, int) and not isinstance(v, bool) else v)
                       for k, v in d.items()}, sort_keys=True).encode()


def dict_from_bytes(data: bytes) -> dict[str, Any]:
    import json
    try:
        d = json.loads(data.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise CryptoError("key bytes are not a serialized privfin key") from exc
    return {k: (int(v, 16) if isinstance(v, str) and v.startswith("0x") else v) for k, v in d.items()}


def require_fields(d: dict[str, Any], scheme: str, kind: str, fields: Sequence[str]) -> None:
    if d.get("scheme") != scheme or d.get("kind") != kind:
        raise CryptoError(f"not a {scheme} {kind} key (scheme={d.get('scheme')!r}, kind={d.get('kind')!r})")
    missing = [f for f in fields if not isinstance(d.get(f), int)]
    if missing:
        raise CryptoError(f"{scheme} {kind} key is missing integer fields {missing}")


# --------------------------------------------------------------------------- dispatch + work functions

def _dispatch(fn: Callable[..., list], items: list, *args: Any, min_items: int, width: int = 0) -> list:
    """``fn(items, *args)`` in-process when small, else chunked over the executor.

    With ``width`` (bytes per result), workers return each chunk's big-integer results as one
    fixed-width big-endian blob, which crosses the process boundary faster than pickled mpz.
    """
    if len(items) < min_items:
        return fn(items, *args)
    ex = get_executor()
    if ex.n_workers <= 1:
        return fn(items, *args)
    out: list = []
    if width:
        from_bytes = mpz.from_bytes
        for blob in ex.map_chunks(_blob_chunk, items, fn, width, *args, min_chunk=max(1, min_items // 4)):
            out.extend(from_bytes(blob[i:i + width], "big") for i in range(0, len(blob), width))
        return out
    for part in ex.map_chunks(fn, items, *args, min_chunk=max(1, min_items // 4)):
        out.extend(part)
    return out


def _blob_chunk(items: Sequence[Any], fn: Callable[..., list], width: int, *args: Any) -> bytes:
    return b"".join(v.to_bytes(width, "big") for v in fn(items, *args))


def _encrypt_chunk(ms: Sequence[int], spec: tuple) -> list[mpz]:
    return key_from_spec(spec)._encrypt_ints(ms)


def _plain_chunk(ms: Sequence[int], spec: tuple) -> list[mpz]:
    return key_from_spec(spec)._plain_ints(ms)


def _zeros_chunk(items: Sequence[Any], spec: tuple) -> list[mpz]:
    return key_from_spec(spec).random_zeros(len(items))


def _decrypt_chunk(cts: Sequence[mpz], spec: tuple) -> list[mpz]:
    return key_from_spec(spec)._decrypt_residues(cts)


def _mul_chunk(pairs: Sequence[tuple[mpz, mpz]], modulus: mpz) -> list[mpz]:
    return [a * b % modulus for a, b in pairs]


def _pow_chunk(pairs: Sequence[tuple[mpz, int]], modulus: mpz) -> list[mpz]:
    powmod = gmpy2.powmod
    return [powmod(c, k, modulus) if k != 1 else c for c, k in pairs]


def _prod_chunk(cts: Sequence[mpz], modulus: mpz) -> list[mpz]:
    acc = _ONE
    for c in cts:
        acc = acc * c % modulus
    return [acc]


def _lincomb_chunk(rows: Sequence[tuple[mpz, tuple[int, ...]]], modulus: mpz) -> list[list[mpz]]:
    """Partial ``prod_i c_i ** w_ik`` over this chunk's rows, for every column ``k``."""
    powmod = gmpy2.powmod
    d = len(rows[0][1])
    acc = [_ONE] * d
    for c, ws in rows:
        inv = None
        for k, w in enumerate(ws):
            if w == 0:
                continue
            if w < 0:
                if inv is None:
                    inv = gmpy2.invert(c, modulus)
                t = powmod(inv, -w, modulus) if w != -1 else inv
            else:
                t = powmod(c, w, modulus) if w != 1 else c
            acc[k] = acc[k] * t % modulus
    return [acc]


def _bincount_chunk(pairs: Sequence[tuple[int, mpz]], modulus: mpz, nbins: int) -> list[list[mpz]]:
    """Partial per-bin products of this chunk's ``(bin, ciphertext)`` pairs."""
    acc: list[mpz] = [_ONE] * nbins
    for b, c in pairs:
        acc[b] = acc[b] * c % modulus
    return [acc]


def _rerandomize_chunk(cts: Sequence[mpz], spec: tuple) -> list[mpz]:
    key = key_from_spec(spec)
    M = key.modulus
    return [c * z % M for c, z in zip(cts, key.random_zeros(len(cts)))]


def obj_array(values: Sequence[Any], shape: tuple[int, ...]) -> np.ndarray:
    # np.fromiter: ``arr[:] = values`` probes every mpz for the sequence protocol (~1 us each)
    return np.fromiter(values, dtype=object, count=len(values)).reshape(shape)


# --------------------------------------------------------------------------- zero pool

class ZeroPool:
    """Encryptions of zero made ahead by a background thread, handed out by :meth:`take`.

    Encrypting then costs only the randomness-free encoding times a zero
    (``pk.encrypt_ints(ms, zeros=pool)``). With ``only_when_idle=True`` (default) the thread
    works only inside :meth:`idle` blocks, i.e. while the owner waits for I/O (sending,
    receiving), so it never competes with the owner's own computation; otherwise it fills
    the pool whenever it holds fewer than ``target``. Every zero is fresh randomness, handed
    out once. When the pool runs short, :meth:`take` makes the rest on the spot (over the
    executor for large shortfalls). Use as a context manager or call :meth:`close`.

    ``pk``: a public key, or a Paillier private key (its owner-side CRT zeros are about twice
    as cheap). Counters: ``made_ahead`` (zeros made by the thread), ``made_on_demand``.
    """

    def __init__(self, pk: HEPublicKey | HEPrivateKey, target: int, *, chunk: int = 64, only_when_idle: bool = True,
                 name: str = "he-zeros") -> None:
        if target < 0 or chunk < 1:
            raise CryptoError(f"ZeroPool needs target >= 0 and chunk >= 1 (got {target}, {chunk})")
        self.pk, self.target, self.chunk = pk, int(target), int(chunk)
        self.public_key: HEPublicKey = getattr(pk, "public_key", pk)
        self._buf: list[mpz] = []
        self._lock = threading.Lock()
        self._idle = threading.Event()
        if not only_when_idle:
            self._idle.set()
        self._always = not only_when_idle
        self._stop = threading.Event()
        self.made_ahead = 0
        self.made_on_demand = 0
        pk.random_zeros(1)  # build the key's tables before the thread shares them
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._idle.wait(0.1):
                continue
            with self._lock:
                need = self.target - len(self._buf)
            if need <= 0:
                self._stop.wait(0.005)
                continue
            z = self.pk.random_zeros(min(need, self.chunk))
            with self._lock:
                self._buf.extend(z)
                self.made_ahead += len(z)

    @property
    def available(self) -> int:
        with self._lock:
            return len(self._buf)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @contextmanager
    def idle(self) -> Iterator[None]:
        """Let the thread make zeros during this block (no-op with ``only_when_idle=False``)."""
        self._idle.set()
        try:
            yield
        finally:
            if not self._always:
                self._idle.clear()

    def take(self, k: int) -> list[mpz]:
        """``k`` encryptions of zero: from the pool first, the shortfall made now."""
        with self._lock:
            got, self._buf = self._buf[:k], self._buf[k:]
        if len(got) < k:
            short = k - len(got)
            self.made_on_demand += short
            got += self.pk.fresh_zeros(short)
        return got

    def close(self) -> None:
        """Stop the thread (waits for its current chunk) and drop unused zeros."""
        self._stop.set()
        self._idle.set()
        self._thread.join(timeout=10)
        with self._lock:
            self._buf = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- encrypted vector

class EncryptedVector:
    """An array of ciphertexts under one public key, numpy-like.

    Attributes: ``public_key``; ``ciphertexts`` (object ndarray of ``gmpy2.mpz``);
    ``frac_bits`` (fixed-point scale of the plaintexts); ``weight`` (upper bound on how many
    unit-size fresh plaintexts are summed into one element, used by the packing guard);
    ``capacity`` (``None``, or the most ``weight`` a packed slot can hold without overflow).

    Operations: ``+``/``-`` with ciphertexts or plaintexts (scalars or broadcastable arrays),
    ``*`` by plaintext scalars or arrays, ``sum``, ``bincount`` (per-bin sums),
    ``dot``/``@`` with plaintext matrices,
    indexing, ``reshape``, :meth:`concatenate`, :meth:`rerandomize`, and a compact wire form
    (:meth:`to_wire` / :meth:`from_wire`).
    """

    __array_ufunc__ = None  # numpy binary ops (ndarray @ ev, ndarray * ev) defer to our reflected methods

    def __init__(self, public_key: HEPublicKey, ciphertexts: np.ndarray, frac_bits: int = 0,
                 weight: int = 1, capacity: int | None = None) -> None:
        self.public_key = public_key
        self.ciphertexts = ciphertexts
        self.frac_bits = int(frac_bits)
        self.weight = int(weight)
        self.capacity = capacity
        self._guard(self.weight)

    # ---- basics
    @property
    def shape(self) -> tuple[int, ...]:
        return self.ciphertexts.shape

    @property
    def size(self) -> int:
        return int(self.ciphertexts.size)

    @property
    def ndim(self) -> int:
        return self.ciphertexts.ndim

    def __len__(self) -> int:
        return len(self.ciphertexts)

    def __repr__(self) -> str:
        return (f"EncryptedVector(scheme={self.public_key.scheme}, key={self.public_key.fingerprint}, "
                f"shape={self.shape}, frac_bits={self.frac_bits})")

    def _new(self, cts: np.ndarray, frac_bits: int | None = None, weight: int | None = None) -> EncryptedVector:
        return EncryptedVector(self.public_key, cts, self.frac_bits if frac_bits is None else frac_bits,
                               self.weight if weight is None else weight, self.capacity)

    def _guard(self, weight: int) -> None:
        if self.capacity is not None and weight > self.capacity:
            raise EncodingOverflowError(
                f"packed slots hold at most {self.capacity} summed unit terms (their headroom); "
                f"this operation could put {weight} in a slot")

    def __getitem__(self, idx: Any) -> EncryptedVector:
        sub = self.ciphertexts[idx]
        if not isinstance(sub, np.ndarray):
            sub = obj_array([sub], ())
        return self._new(sub)

    def reshape(self, *shape: Any) -> EncryptedVector:
        return self._new(self.ciphertexts.reshape(*shape))

    def ravel(self) -> EncryptedVector:
        return self._new(self.ciphertexts.ravel())

    @classmethod
    def concatenate(cls, parts: Sequence[EncryptedVector], axis: int = 0) -> EncryptedVector:
        if not parts:
            raise CryptoError("concatenate needs at least one EncryptedVector")
        first = parts[0]
        f = max(p.frac_bits for p in parts)
        aligned = [p._rescale(f) for p in parts]
        for p in aligned:
            first._same_key(p)
        cts = np.concatenate([p.ciphertexts for p in aligned], axis=axis)
        return EncryptedVector(first.public_key, cts, f, max(p.weight for p in aligned), first.capacity)

    def _same_key(self, other: EncryptedVector) -> None:
        if other.public_key is not self.public_key and other.public_key != self.public_key:
            raise CryptoError(f"ciphertexts under different keys ({self.public_key.fingerprint} "
                              f"vs {other.public_key.fingerprint})")

    # ---- internal elementwise helpers
    def _elementwise_mul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.shape != b.shape:
            a, b = np.broadcast_arrays(a, b)
        M = self.public_key.modulus
        al, bl = a.ravel().tolist(), b.ravel().tolist()
        if len(al) < PARALLEL_MIN_MUL or get_executor().n_workers <= 1:
            out = [x * y % M for x, y in zip(al, bl)]
        else:
            out = _dispatch(_mul_chunk, list(zip(al, bl)), M, min_items=PARALLEL_MIN_MUL,
                            width=self.public_key.ciphertext_bytes)
        return obj_array(out, a.shape)

    def _elementwise_pow(self, cts: np.ndarray, exps: np.ndarray) -> np.ndarray:
        cts, exps = np.broadcast_arrays(cts, exps)
        pairs = list(zip(cts.ravel().tolist(), [int(k) for k in exps.ravel().tolist()]))
        out = _dispatch(_pow_chunk, pairs, self.public_key.modulus, min_items=PARALLEL_MIN_EXP,
                        width=self.public_key.ciphertext_bytes)
        return obj_array(out, cts.shape)

    def _rescale(self, frac_bits: int) -> EncryptedVector:
        """Same values with ``frac_bits`` fractional bits (multiply by ``2**d``, d >= 0)."""
        d = frac_bits - self.frac_bits
        if d == 0:
            return self
        if d < 0:
            raise CryptoError("cannot reduce the fixed-point scale of ciphertexts homomorphically")
        w = self.weight << d
        self._guard(w)
        exps = np.full(self.shape, 1 << d, dtype=object)
        return self._new(self._elementwise_pow(self.ciphertexts, exps), frac_bits, w)

    def _plain_encoded(self, x: Any) -> tuple[np.ndarray, int]:
        """Plaintext -> (object array of randomness-free ciphertexts, frac_bits used)."""
        vals, shape = encode_array(x, self.frac_bits, self.public_key.max_int)
        return obj_array(self.public_key._plain_ints(vals), shape), self.frac_bits

    # ---- arithmetic
    def __add__(self, other: Any) -> EncryptedVector:
        if isinstance(other, EncryptedVector):
            self._same_key(other)
            f = max(self.frac_bits, other.frac_bits)
            a, b = self._rescale(f), other._rescale(f)
            w = a.weight + b.weight
            self._guard(w)
            return a._new(a._elementwise_mul(a.ciphertexts, b.ciphertexts), f, w)
        if is_integer_input(other) is False and self.frac_bits == 0 and self.capacity is None:
            # adding a float to an integer ciphertext: move to the default fixed-point scale
            return self._rescale(DEFAULT_FRAC_BITS) + other
        w = self.weight + 1
        self._guard(w)
        plain, _ = self._plain_encoded(other)
        return self._new(self._elementwise_mul(self.ciphertexts, plain), weight=w)

    __radd__ = __add__

    def __neg__(self) -> EncryptedVector:
        if self.capacity is not None:
            raise CryptoError("packed ciphertexts hold non-negative slots; negation is not allowed")
        M = self.public_key.modulus
        inv = [gmpy2.invert(c, M) for c in self.ciphertexts.ravel().tolist()]
        return self._new(obj_array(inv, self.shape))

    def __sub__(self, other: Any) -> EncryptedVector:
        if isinstance(other, EncryptedVector):
            return self + (-other)
        return self + (-np.asarray(other))

    def __rsub__(self, other: Any) -> EncryptedVector:
        return (-self) + other

    def multiply(self, x: Any, frac_bits: int | None = None) -> EncryptedVector:
        """Elementwise product with plaintext ``x`` (broadcast). Integers are exact; floats are
        encoded with ``frac_bits`` (default 40) and the result carries ``self.frac_bits + frac_bits``."""
        if isinstance(x, EncryptedVector):
            raise CryptoError("additively homomorphic schemes cannot multiply two ciphertexts")
        if frac_bits is None:
            frac_bits = 0 if is_integer_input(x) else DEFAULT_FRAC_BITS
        if self.capacity is not None and frac_bits:
            raise CryptoError("packed ciphertexts can only be multiplied by non-negative integers")
        vals, shape = encode_array(x, frac_bits, self.public_key.max_int)
        exps = obj_array(vals, shape)
        w = self.weight * (max(abs(v) for v in vals) if vals else 0)
        if self.capacity is not None and vals and min(vals) < 0:
            raise CryptoError("packed ciphertexts can only be multiplied by non-negative integers")
        self._guard(w)
        return self._new(self._elementwise_pow(self.ciphertexts, exps), self.frac_bits + frac_bits, w)

    def __mul__(self, x: Any) -> EncryptedVector:
        return self.multiply(x)

    __rmul__ = __mul__

    def sum(self, axis: int | None = None) -> EncryptedVector:
        """Homomorphic sum over all elements (``axis=None``) or along ``axis``."""
        M = self.public_key.modulus
        if axis is None:
            cts = self.ciphertexts.ravel().tolist()
            w = self.weight * len(cts)
            self._guard(w)
            if not cts:
                return self._new(obj_array(self.public_key._plain_ints([0]), ()), weight=0)
            parts = _dispatch(_prod_chunk, cts, M, min_items=PARALLEL_MIN_MUL)
            acc = _ONE
            for p in parts:
                acc = acc * p % M
            return self._new(obj_array([acc], ()), weight=w)
        moved = np.moveaxis(self.ciphertexts, axis, -1)
        w = self.weight * moved.shape[-1]
        self._guard(w)
        out_shape = moved.shape[:-1]
        flat = moved.reshape(-1, moved.shape[-1])
        res = [_prod_chunk(row.tolist(), M)[0] for row in flat]
        return self._new(obj_array(res, out_shape), weight=w)

    def bincount(self, bins: Any, minlength: int = 0) -> EncryptedVector:
        """Per-bin homomorphic sums of a 1-D vector: ``out[b] = sum(self[bins == b])``.

        Like ``np.bincount(bins, weights=...)``: ``bins`` are non-negative ints of the same
        length; the result has ``max(bins.max() + 1, minlength)`` elements (empty bins hold a
        randomness-free encryption of 0: re-randomize before sending). Histograms of encrypted
        gradients per feature bin are the typical use.
        """
        if self.ndim != 1:
            raise CryptoError(f"bincount needs a 1-D EncryptedVector (shape is {self.shape})")
        idx = np.asarray(bins)
        if idx.shape != self.shape or (idx.size and idx.dtype.kind not in "iu"):
            raise CryptoError(f"bins must be integers of shape {self.shape} (got {idx.dtype}{idx.shape})")
        if idx.size and int(idx.min()) < 0:
            raise CryptoError("bins must be non-negative")
        nbins = max(int(idx.max()) + 1 if idx.size else 0, int(minlength))
        counts = np.bincount(idx, minlength=nbins) if idx.size else np.zeros(nbins, dtype=np.int64)
        w = self.weight * (int(counts.max()) if nbins else 0)
        self._guard(w)
        M = self.public_key.modulus
        pairs = list(zip(idx.tolist(), self.ciphertexts.tolist()))
        if not pairs:
            acc = [_ONE] * nbins
        else:
            parts = _dispatch(_bincount_chunk, pairs, M, nbins, min_items=PARALLEL_MIN_MUL)
            acc = parts[0]
            for part in parts[1:]:
                acc = [a * b % M for a, b in zip(acc, part)]
        return self._new(obj_array(acc, (nbins,)), weight=w)

    def dot(self, W: Any, frac_bits: int | None = None) -> EncryptedVector:
        """``self @ W`` for a 1-D ``self`` of length n and plaintext ``W`` of shape (n,) or (n, d).

        Integer ``W`` is exact; float ``W`` uses ``frac_bits`` (default 40), adding to the
        result's scale. Rows are chunked over the executor for large inputs.
        """
        if self.ndim != 1:
            raise CryptoError(f"dot needs a 1-D EncryptedVector (shape is {self.shape})")
        Warr = np.asarray(W)
        vec_out = Warr.ndim == 1
        W2 = Warr.reshape(-1, 1) if vec_out else Warr
        if W2.ndim != 2 or W2.shape[0] != self.shape[0]:
            raise CryptoError(f"dot shapes do not align: ciphertexts {self.shape}, matrix {Warr.shape}")
        if frac_bits is None:
            frac_bits = 0 if is_integer_input(W2) else DEFAULT_FRAC_BITS
        if self.capacity is not None and frac_bits:
            raise CryptoError("packed ciphertexts can only be combined with non-negative integers")
        vals, _ = encode_array(W2, frac_bits, self.public_key.max_int)
        n, d = W2.shape
        col_l1 = [0] * d
        rows: list[tuple[mpz, tuple[int, ...]]] = []
        cts = self.ciphertexts.tolist()
        for i in range(n):
            ws = tuple(vals[i * d:(i + 1) * d])
            for k, w in enumerate(ws):
                col_l1[k] += abs(w)
            rows.append((cts[i], ws))
        w = self.weight * (max(col_l1) if col_l1 else 0)
        self._guard(w)
        M = self.public_key.modulus
        if n == 0:
            acc = self.public_key._plain_ints([0] * d)
        else:
            parts = _dispatch(_lincomb_chunk, rows, M, min_items=max(2, PARALLEL_MIN_EXP // max(d, 1)))
            acc = parts[0]
            for p in parts[1:]:
                acc = [a * b % M for a, b in zip(acc, p)]
        out = obj_array(acc, () if vec_out else (d,))
        return self._new(out, self.frac_bits + frac_bits, w)

    def __matmul__(self, W: Any) -> EncryptedVector:
        return self.dot(W)

    def __rmatmul__(self, W: Any) -> EncryptedVector:
        Warr = np.asarray(W)
        return self.dot(Warr.T if Warr.ndim == 2 else Warr)

    def rerandomize(self) -> EncryptedVector:
        """Multiply every element by a fresh encryption of zero (unlinkable to its inputs).

        Use before sending results of scalar operations to another party: e.g. ``c**0 = 1``
        would otherwise reveal a zero factor to anyone who sees it."""
        cts = self.ciphertexts.ravel().tolist()
        out = _dispatch(_rerandomize_chunk, cts, spec_of(self.public_key), min_items=self.public_key.parallel_min,
                        width=self.public_key.ciphertext_bytes)
        return self._new(obj_array(out, self.shape))

    # ---- wire format
    def to_wire(self) -> dict[str, Any]:
        """Payload for :mod:`privfin.transport.serde`: ciphertexts as a ``uint8`` array of shape
        ``(size, k)`` (fixed-width big-endian, ``k`` = bytes of the modulus) plus metadata."""
        k = self.public_key.ciphertext_bytes
        flat = self.ciphertexts.ravel().tolist()
        buf = b"".join(c.to_bytes(k, "big") for c in flat)
        return {
            "scheme": self.public_key.scheme,
            "key": self.public_key.fingerprint,
            "shape": list(self.shape),
            "frac_bits": self.frac_bits,
            "weight": self.weight,
            "capacity": self.capacity,
            "ct": np.frombuffer(buf, dtype=np.uint8).reshape(len(flat), k),
        }

    @classmethod
    def from_wire(cls, public_key: HEPublicKey, payload: dict[str, Any]) -> EncryptedVector:
        """Rebuild from :meth:`to_wire` output; checks the scheme, key and every ciphertext's range."""
        try:
            scheme, key, shape = payload["scheme"], payload["key"], tuple(int(s) for s in payload["shape"])
            frac_bits, weight, capacity = int(payload["frac_bits"]), int(payload["weight"]), payload["capacity"]
            ct = np.asarray(payload["ct"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CryptoError(f"malformed ciphertext payload: {exc}") from exc
        if scheme != public_key.scheme or key != public_key.fingerprint:
            raise CryptoError(f"ciphertext payload is for {scheme} key {key}, expected "
                              f"{public_key.scheme} key {public_key.fingerprint}")
        k = public_key.ciphertext_bytes
        n = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if ct.dtype != np.uint8 or ct.shape != (n, k) or frac_bits < 0:
            raise CryptoError(f"ciphertext payload has array {ct.dtype}{ct.shape}, expected uint8({n}, {k})")
        raw = ct.tobytes()
        M = public_key.modulus
        from_bytes = mpz.from_bytes
        vals = [from_bytes(raw[i:i + k], "big") for i in range(0, n * k, k)]
        if any(v <= 0 or v >= M for v in vals):
            raise CryptoError("ciphertext payload holds values outside (0, modulus)")
        cap = None if capacity is None else int(capacity)
        return cls(public_key, obj_array(vals, shape), frac_bits, weight, cap)
