"""Paillier encryption with g = n + 1, DJN short-exponent randomizers and CRT decryption.

Scheme (Paillier 1999; randomizer of Damgård–Jurik–Nielsen 2010, §4.2):

- keygen: primes ``p, q`` of ``n_bits/2`` bits each (two top bits set, ``p = q = 3 mod 4``,
  ``gcd(p-1, q-1) = 2``, ``|p - q|`` large), ``n = pq`` of exactly ``n_bits`` bits; random
  ``x`` in ``Z_n^*``, ``h = -x^2 mod n``, ``h_s = h^n mod n^2``. Public key ``(n, h_s, l)``.
  Primes come from ``gmpy2.next_prime`` on ``secrets``-random odd candidates (re-checked with
  50 Miller–Rabin rounds), so every key bit comes from the OS CSPRNG.
- encrypt ``m`` (signed, ``|m| <= n/3``): ``c = (1 + m n) * h_s^r mod n^2`` with ``r`` uniform
  in ``[0, 2^l)``. ``h_s^r`` is a fixed-base exponentiation over a precomputed table of
  ``h_s^(j * 256^i)`` (8-bit windows, 256 entries per exponent byte, built lazily per
  process): ``l/8 - 1`` multiplications mod ``n^2`` and no squarings; a process that has
  made ``WIDE_AFTER`` randomizers switches to 12-bit windows. The key holder computes the
  same ``h_s^r`` modulo ``p^2`` and ``q^2`` (:meth:`PaillierPrivateKey.random_zeros`,
  12-bit windows, CRT), about half the cost.
- decrypt (CRT): ``m_p = L_p(c^(p-1) mod p^2) * h_p mod p`` (same for ``q``), recombined;
  ``h_p = L_p((n+1)^(p-1) mod p^2)^-1 mod p``.
- add: ``c1 * c2``; add plaintext: ``c * (1 + m n)``; multiply by ``k``: ``c^k`` (negative
  ``k`` through the inverse); all ``mod n^2``.

Security
--------
- **Assumption.** IND-CPA under the decisional composite residuosity (DCR) assumption, plus,
  for the short randomizer, the assumption that ``h_s^r`` with ``r < 2^l`` is
  indistinguishable from ``h_s^r`` with ``r`` uniform in the order of ``<h_s>`` (short
  exponent indistinguishability). DJN take ``l = n_bits/2``, for which that step reduces to
  factoring; pass ``randomizer_bits="djn"`` for it (this is also what SecretFlow HEU's
  ZPaillier uses). The default is ``l = 2*lambda``: 224 bits for ``n`` of 2048 bits
  (lambda = 112), 256 bits for 3072 (lambda = 128). The best known attacks on an ``l``-bit
  exponent (baby-step giant-step, Pollard's kangaroo, van Oorschot–Wiener) cost about
  ``2^(l/2) = 2^lambda``, and they need the group order, which here is secret; 2*lambda-bit
  exponents are the NIST SP 800-56A rule for finite-field Diffie–Hellman in groups whose
  order is public. ``n`` of 2048 bits gives 112-bit security (NIST SP 800-57), 3072 gives 128.
- **Key holder** (private key) learns every plaintext it decrypts, nothing about how a
  ciphertext was computed beyond that when it was :meth:`EncryptedVector.rerandomize`-d
  (without re-randomization, ``c^0 = 1`` and ``c^1 = c`` are recognisable).
- **Ciphertext holder** (public key only) learns shapes, the fixed-point scale and counts,
  nothing about the values (IND-CPA). Paillier is malleable and not CCA-secure: never act as
  a decryption oracle for ciphertexts another party chose, and never return raw decryptions
  of such ciphertexts (it does not leak the key, unlike OU, but it leaks those plaintexts).
- Decrypted values outside ``+/- n/3`` raise :class:`EncodingOverflowError` (wrap-around).
- The private key is passed to this party's own executor workers for parallel decryption
  (local process pool): keep the executor inside the party's trust boundary.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import gmpy2
import numpy as np
from gmpy2 import mpz

from privfin.crypto._he import (
    EncryptedVector,
    FixedBaseTable,
    HEPrivateKey,
    HEPublicKey,
    ZeroPool,
    check_key_size,
    dict_from_bytes,
    key_from_spec,
    random_prime,
    register_key_type,
    require_fields,
    security_bits,
    spec_of,
)
from privfin.errors import CryptoError
from privfin.runtime.executor import get_executor

SCHEME = "paillier"
RANDOMIZER_WINDOW = 8
"""Window of the public h_s table: 256 residues of 512 bytes per 8 exponent bits (3.7 MB at
l = 224; built in ~0.03 s). A 12-bit table (19 rows x 4096 x 512 bytes = 40 MB) costs ~0.35 s
to build and saves 9 of 27 multiplications mod n^2 (~34 us) per encryption, so it pays off
only after ~10000 encryptions per process and key; vertical LR encrypts one mask per batch
under a peer's key, hence the switch after ``WIDE_AFTER`` zeros instead of a fixed 12-bit table."""
WIDE_WINDOW = 12
WIDE_AFTER = 16384
"""A process that has made this many zeros under one public key switches to a ``WIDE_WINDOW``
table (about twice the break-even volume, so at most ~1.5x the ideal table cost is spent)."""
OWNER_WINDOW = 12
"""Window of the key holder's CRT tables (``h_s mod p^2``, ``mod q^2``) for randomizers of up
to 256 bits: 2 x 19 rows x 4096 residues of 256 bytes (40 MB) at 2048 bits, ~0.25 s to build;
36 multiplications mod a 2048-bit square per zero. DJN's n/2-bit randomizers use 8 bits."""
OWNER_PARALLEL_MIN = 256
"""Owner-side zeros worth sending to the executor."""


def default_randomizer_bits(n_bits: int) -> int:
    """``2 * lambda`` bits: 224 for 2048-bit ``n``, 256 for 3072-bit ``n``."""
    return 2 * security_bits(n_bits)


class PaillierPublicKey(HEPublicKey):
    """Paillier public key ``(n, h_s, randomizer_bits)``; ciphertexts live mod ``n^2``."""

    scheme = SCHEME
    plain_parallel_min = 1 << 62  # 1 + m n is one multiplication: never worth a process hop

    def __init__(self, n: int, hs: int, randomizer_bits: int) -> None:
        self.n = mpz(n)
        self.nsquare = self.n * self.n
        self.modulus = self.nsquare
        self.hs = mpz(hs)
        self.randomizer_bits = int(randomizer_bits)
        if self.randomizer_bits % 8 or self.randomizer_bits < 64:
            raise CryptoError(f"randomizer_bits must be a multiple of 8 and >= 64 (got {randomizer_bits})")
        if not 1 < self.hs < self.nsquare:
            raise CryptoError("Paillier public key field 'hs' is out of range")
        self.key_bits = self.n.bit_length()
        self.max_int = int(self.n // 3)
        self._table: FixedBaseTable | None = None
        self._table_lock = threading.Lock()
        self._zeros_made = 0

    def spec(self) -> tuple:
        return ("paillier-pub", int(self.n), int(self.hs), self.randomizer_bits)

    @property
    def table(self) -> FixedBaseTable:
        """The ``h_s`` table in use: ``RANDOMIZER_WINDOW`` bits, ``WIDE_WINDOW`` after
        ``WIDE_AFTER`` zeros in this process (tables are fully built before they are used,
        under a lock, so :class:`~privfin.crypto._he.ZeroPool` threads can share them)."""
        t = self._table
        if t is None or (t.window < WIDE_WINDOW and self._zeros_made >= WIDE_AFTER):
            with self._table_lock:
                t = self._table
                if t is None or (t.window < WIDE_WINDOW and self._zeros_made >= WIDE_AFTER):
                    w = WIDE_WINDOW if self._zeros_made >= WIDE_AFTER else RANDOMIZER_WINDOW
                    t = FixedBaseTable(self.hs, self.nsquare, w)
                    t.pow_random(1, self.randomizer_bits)   # all rows built before sharing
                    self._table = t
        return t

    def random_zeros(self, count: int) -> list[mpz]:
        t = self.table
        self._zeros_made += count
        return t.pow_random(count, self.randomizer_bits)

    def _encrypt_ints(self, ms: Sequence[int]) -> list[mpz]:
        n, n2 = self.n, self.nsquare
        rs = self.random_zeros(len(ms))
        return [(n * m + 1) * r % n2 for m, r in zip(ms, rs)]

    def _plain_ints(self, ms: Sequence[int]) -> list[mpz]:
        n, n2 = self.n, self.nsquare
        return [(n * m + 1) % n2 for m in ms]

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": SCHEME, "kind": "public", "n": int(self.n), "hs": int(self.hs),
                "randomizer_bits": self.randomizer_bits}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PaillierPublicKey:
        require_fields(d, SCHEME, "public", ("n", "hs", "randomizer_bits"))
        if d["n"] < 2**255 or d["n"] % 2 == 0:
            raise CryptoError("Paillier public key field 'n' is not a valid modulus")
        return cls(d["n"], d["hs"], d["randomizer_bits"])

    @classmethod
    def from_bytes(cls, data: bytes) -> PaillierPublicKey:
        return cls.from_dict(dict_from_bytes(data))


class PaillierPrivateKey(HEPrivateKey):
    """Paillier private key (``p``, ``q``) with CRT decryption constants."""

    def __init__(self, public_key: PaillierPublicKey, p: int, q: int) -> None:
        p, q = mpz(p), mpz(q)
        if p * q != public_key.n or p == q:
            raise CryptoError("Paillier private key does not match its public key (p*q != n)")
        self.public_key = public_key
        self.p, self.q = (p, q) if p < q else (q, p)
        self.plaintext_modulus = public_key.n
        self.psquare, self.qsquare = self.p * self.p, self.q * self.q
        g = public_key.n + 1
        self.hp = gmpy2.invert((gmpy2.powmod(g, self.p - 1, self.psquare) - 1) // self.p, self.p)
        self.hq = gmpy2.invert((gmpy2.powmod(g, self.q - 1, self.qsquare) - 1) // self.q, self.q)
        self.q_inv_p = gmpy2.invert(self.q, self.p)
        self.p2_inv_q2 = gmpy2.invert(self.psquare, self.qsquare)
        # 12-bit windows for short randomizers; 8-bit for DJN's n/2-bit ones (memory stays < 20 MB)
        self.owner_window = OWNER_WINDOW if public_key.randomizer_bits <= 256 else 8
        self.owner_width = -(-public_key.randomizer_bits // self.owner_window)
        self._half_tables: dict[str, FixedBaseTable] = {}

    def spec(self) -> tuple:
        pk = self.public_key
        return ("paillier-priv", int(self.p), int(self.q), int(pk.hs), pk.randomizer_bits)

    # ---- owner-side encryption (CRT)
    def half_table(self, half: str) -> FixedBaseTable:
        """``h_s mod p^2`` (``half="p"``) or ``mod q^2`` (``"q"``) with ``owner_window``-bit
        windows, built once per process (19 rows x 4096 residues of 256 bytes at 2048 bits)."""
        t = self._half_tables.get(half)
        if t is None:
            if half not in ("p", "q"):
                raise CryptoError(f"half must be 'p' or 'q' (got {half!r})")
            m2 = self.psquare if half == "p" else self.qsquare
            t = FixedBaseTable(self.public_key.hs % m2, m2, self.owner_window)
            t.pow_digits_many([0] * self.owner_width, self.owner_width)  # all rows built before sharing
            self._half_tables[half] = t
        return t

    def randomizer_digits(self, count: int) -> bytes:
        """Digits (``uint16`` little-endian, ``owner_window`` bits each, ``owner_width`` per
        exponent) of ``count`` exponents ``r`` uniform in ``[0, 2^randomizer_bits)``."""
        w, win = self.owner_width, self.owner_window
        d = np.frombuffer(os.urandom(2 * count * w), dtype=np.uint16).reshape(count, w) & ((1 << win) - 1)
        d[:, -1] &= (1 << (self.public_key.randomizer_bits - (w - 1) * win)) - 1
        return d.astype("<u2").tobytes()

    def half_powers(self, half: str, digits: bytes) -> list[mpz]:
        """``h_s^r mod p^2`` (or ``q^2``) for the exponents of :meth:`randomizer_digits`."""
        return self.half_table(half).pow_digits_many(np.frombuffer(digits, dtype="<u2").tolist(), self.owner_width)

    def _crt(self, rp: Sequence[mpz], rq: Sequence[mpz]) -> list[mpz]:
        p2, q2, inv = self.psquare, self.qsquare, self.p2_inv_q2
        return [a + p2 * ((b - a) * inv % q2) for a, b in zip(rp, rq)]

    def random_zeros(self, count: int) -> list[mpz]:
        """``count`` fresh encryptions of zero ``h_s^r mod n^2``, in-process: the same values and
        distribution as :meth:`PaillierPublicKey.random_zeros`, computed modulo ``p^2`` and ``q^2``
        (half-size moduli, 12-bit windows) and recombined. Only the key holder can do this."""
        digits = self.randomizer_digits(count)
        return self._crt(self.half_powers("p", digits), self.half_powers("q", digits))

    def fresh_zeros(self, count: int) -> list[mpz]:
        """:meth:`random_zeros` for large batches: the ``p^2`` and ``q^2`` halves go to different
        executor workers (each worker builds one half's table instead of both)."""
        ex = get_executor()
        if count < OWNER_PARALLEL_MIN or ex.n_workers <= 1:
            return self.random_zeros(count)
        k = max(1, ex.n_workers // 2)
        bounds = np.linspace(0, count, k + 1).astype(int)
        digits = [self.randomizer_digits(int(b - a)) for a, b in pairwise(bounds)]
        spec = spec_of(self)
        halves = ["p", "q"] * len(digits)
        blobs = ex.map(_half_powers_task, halves, [d for d in digits for _ in (0, 1)], [spec] * len(halves))
        width = (self.psquare.bit_length() + 7) // 8
        width_q = (self.qsquare.bit_length() + 7) // 8
        out: list[mpz] = []
        fb = mpz.from_bytes
        for i in range(0, len(blobs), 2):
            bp, bq = blobs[i], blobs[i + 1]
            rp = [fb(bp[j:j + width], "big") for j in range(0, len(bp), width)]
            rq = [fb(bq[j:j + width_q], "big") for j in range(0, len(bq), width_q)]
            out.extend(self._crt(rp, rq))
        return out

    def encrypt_ints(self, ints: Sequence[int], zeros: ZeroPool | Sequence[mpz] | None = None) -> EncryptedVector:
        """Owner-side ``public_key.encrypt_ints``: same ciphertexts and distribution, with the
        randomness from :meth:`fresh_zeros` (or from ``zeros`` made ahead, e.g. a
        :class:`~privfin.crypto._he.ZeroPool` over this private key)."""
        if zeros is None:
            zeros = self.fresh_zeros(len(ints))
        return self.public_key.encrypt_ints(ints, zeros=zeros)

    def _decrypt_residues(self, cts: Sequence[mpz]) -> list[mpz]:
        p, q, p2, q2 = self.p, self.q, self.psquare, self.qsquare
        xp = gmpy2.powmod_base_list([c % p2 for c in cts], p - 1, p2)
        xq = gmpy2.powmod_base_list([c % q2 for c in cts], q - 1, q2)
        hp, hq, qinv = self.hp, self.hq, self.q_inv_p
        out = []
        for a, b in zip(xp, xq):
            mp = (a - 1) // p * hp % p
            mq = (b - 1) // q * hq % q
            out.append(mq + q * ((mp - mq) * qinv % p))
        return out

    def to_dict(self) -> dict[str, Any]:
        d = self.public_key.to_dict()
        d.update(kind="private", p=int(self.p), q=int(self.q))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PaillierPrivateKey:
        require_fields(d, SCHEME, "private", ("n", "hs", "randomizer_bits", "p", "q"))
        pk = PaillierPublicKey(d["n"], d["hs"], d["randomizer_bits"])
        if not (gmpy2.is_prime(d["p"]) and gmpy2.is_prime(d["q"])):
            raise CryptoError("Paillier private key factors are not prime")
        return cls(pk, d["p"], d["q"])

    @classmethod
    def from_bytes(cls, data: bytes) -> PaillierPrivateKey:
        return cls.from_dict(dict_from_bytes(data))


def keygen(n_bits: int = 2048, *, randomizer_bits: int | str | None = None,
           allow_insecure: bool = False) -> tuple[PaillierPublicKey, PaillierPrivateKey]:
    """Generate a Paillier key pair with an ``n`` of exactly ``n_bits`` bits.

    ``randomizer_bits``: ``None`` (``2*lambda``, see the module docstring), ``"djn"``
    (``n_bits/2``) or an explicit multiple of 8. Keys below 2048 bits need ``allow_insecure``.
    """
    check_key_size(n_bits, allow_insecure)
    if n_bits % 2:
        raise CryptoError(f"n_bits must be even (got {n_bits})")
    if randomizer_bits is None:
        rbits = default_randomizer_bits(n_bits)
    elif randomizer_bits == "djn":
        rbits = -(-(n_bits // 2) // 8) * 8
    else:
        rbits = int(randomizer_bits)
    half = n_bits // 2
    while True:
        p = random_prime(half, mod4_3=True)
        q = random_prime(half, mod4_3=True)
        n = p * q
        if (p == q or n.bit_length() != n_bits or gmpy2.gcd(p - 1, q - 1) != 2
                or abs(p - q).bit_length() < half - 8):
            continue
        break
    n2 = n * n
    while True:
        x = mpz(secrets.randbelow(int(n)))
        if x > 1 and gmpy2.gcd(x, n) == 1:
            break
    h = (-x * x) % n
    pk = PaillierPublicKey(n, gmpy2.powmod(h, n, n2), rbits)
    return pk, PaillierPrivateKey(pk, p, q)


def _half_powers_task(half: str, digits: bytes, spec: tuple) -> bytes:
    """Executor task: one CRT half of :meth:`PaillierPrivateKey.fresh_zeros`, as a big-endian blob."""
    sk = key_from_spec(spec)
    m2 = sk.psquare if half == "p" else sk.qsquare
    width = (m2.bit_length() + 7) // 8
    return b"".join(v.to_bytes(width, "big") for v in sk.half_powers(half, digits))


def _pub_from_spec(spec: tuple) -> PaillierPublicKey:
    return PaillierPublicKey(spec[1], spec[2], spec[3])


def _priv_from_spec(spec: tuple) -> PaillierPrivateKey:
    _, p, q, hs, rbits = spec
    return PaillierPrivateKey(PaillierPublicKey(mpz(p) * mpz(q), hs, rbits), p, q)


register_key_type("paillier-pub", _pub_from_spec)
register_key_type("paillier-priv", _priv_from_spec)
