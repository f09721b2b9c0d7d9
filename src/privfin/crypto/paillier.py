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
  process): ``l/8 - 1`` multiplications mod ``n^2`` and no squarings.
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

import secrets
from collections.abc import Sequence
from typing import Any

import gmpy2
from gmpy2 import mpz

from privfin.crypto._he import (
    FixedBaseTable,
    HEPrivateKey,
    HEPublicKey,
    check_key_size,
    dict_from_bytes,
    random_prime,
    register_key_type,
    require_fields,
    security_bits,
)
from privfin.errors import CryptoError

SCHEME = "paillier"
RANDOMIZER_WINDOW = 8
"""Window of the h_s table: 256 residues of 512 bytes per 8 exponent bits (3.7 MB at l = 224)."""


def default_randomizer_bits(n_bits: int) -> int:
    """``2 * lambda`` bits: 224 for 2048-bit ``n``, 256 for 3072-bit ``n``."""
    return 2 * security_bits(n_bits)


class PaillierPublicKey(HEPublicKey):
    """Paillier public key ``(n, h_s, randomizer_bits)``; ciphertexts live mod ``n^2``."""

    scheme = SCHEME

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

    def spec(self) -> tuple:
        return ("paillier-pub", int(self.n), int(self.hs), self.randomizer_bits)

    @property
    def table(self) -> FixedBaseTable:
        if self._table is None:
            self._table = FixedBaseTable(self.hs, self.nsquare, RANDOMIZER_WINDOW)
        return self._table

    def _random_zeros(self, count: int) -> list[mpz]:
        return self.table.pow_random(count, self.randomizer_bits)

    def _encrypt_ints(self, ms: Sequence[int]) -> list[mpz]:
        n, n2 = self.n, self.nsquare
        rs = self._random_zeros(len(ms))
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

    def spec(self) -> tuple:
        pk = self.public_key
        return ("paillier-priv", int(self.p), int(self.q), int(pk.hs), pk.randomizer_bits)

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


def _pub_from_spec(spec: tuple) -> PaillierPublicKey:
    return PaillierPublicKey(spec[1], spec[2], spec[3])


def _priv_from_spec(spec: tuple) -> PaillierPrivateKey:
    _, p, q, hs, rbits = spec
    return PaillierPrivateKey(PaillierPublicKey(mpz(p) * mpz(q), hs, rbits), p, q)


register_key_type("paillier-pub", _pub_from_spec)
register_key_type("paillier-priv", _priv_from_spec)
