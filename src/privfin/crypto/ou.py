"""Okamoto–Uchiyama encryption (n = p^2 q), accelerated as in Coron–Naccache–Paillier 1999.

Scheme:

- keygen: a prime ``t`` of ``2*lambda`` bits (224 for 2048-bit ``n``, 256 for 3072; the
  figures of "Accelerating Okamoto–Uchiyama's public-key cryptosystem" and NIST SP 800-57),
  a prime ``p = t*u + 1`` of ``ceil(n_bits/3)`` bits, a prime ``q`` so that ``n = p^2 q`` has
  exactly ``n_bits`` bits; ``g`` random with ``g^(p-1) != 1 mod p^2``, ``G = g^u mod n``,
  ``H = g'^(n u) mod n`` for another random ``g'``. Public key ``(n, G, H, l, k)``; private
  ``(p, q, t)``. All randomness comes from ``secrets``; primes from ``gmpy2.next_prime`` /
  ``gmpy2.is_prime`` (50 rounds).
- encrypt ``m`` (signed, ``|m| < 2^k`` with ``k = |p| - 3``): ``c = G^m * H^r mod n``,
  ``r`` uniform in ``[0, 2^l)``, ``l = 2*lambda``. ``G^m`` (``G^-1`` for negative ``m``)
  and ``H^r`` use precomputed fixed-base tables (8-bit windows for ``G``, built lazily up to
  the longest plaintext seen; 12-bit windows for ``H``: 18 multiplications mod ``n``).
- decrypt: ``m = L(c^t mod p^2) * L(G^t mod p^2)^-1 mod p`` with ``L(x) = (x-1)/p``; the
  randomizer vanishes because ``H`` has order dividing ``t`` modulo ``p^2``. The exponent is
  ``t`` (224 bits), which makes decryption several times cheaper than Paillier's.
- add: ``c1 * c2 mod n``; add plaintext: ``c * G^m``; multiply by ``k``: ``c^k mod n``.

Security
--------
- **Assumption.** IND-CPA under the p-subgroup assumption (Okamoto–Uchiyama 1998) for the
  CNP variant, plus short-exponent indistinguishability of ``H^r`` for the ``l = 2*lambda``
  randomizer (generic attacks cost ``2^(l/2)``; see :mod:`privfin.crypto.paillier`). Security
  of ``n = p^2 q`` with 2048 bits is taken as 112 bits, 3072 as 128 bits (factoring ``p^2 q``
  is not known to be easier than RSA moduli of the same size at these sizes; ECM needs a
  683-bit factor). SecretFlow HEU's OU uses 110-bit randomizers at 2048 bits; we use 224.
- **Chosen-ciphertext key recovery (the main caveat).** OU is totally broken under
  chosen-ciphertext attack: a party that can get *any* ciphertext of its choice decrypted and
  sees the raw result (e.g. decrypting ``G^z`` for ``z > p`` returns ``z mod p``, and
  ``gcd(z - result, n)`` reveals ``p``) factors ``n``. Acceptable only when: parties are
  semi-honest; the key pair belongs to the label holder (active party), who decrypts only
  ciphertexts whose plaintexts stay with it, or are returned only after masking/aggregation
  and never raw; and no decryption service exists for ciphertexts chosen by others. Use
  Paillier when a protocol returns decryptions of others' ciphertexts to them.
- **Key holder** learns every plaintext it decrypts; **ciphertext holder** learns shapes,
  scales and counts only. Both schemes are malleable; re-randomize before sending results
  of scalar operations (:meth:`EncryptedVector.rerandomize`).
- Plaintexts must stay within ``+/- 2^k``; decrypted values outside raise
  :class:`EncodingOverflowError` (wrap-around modulo the secret ``p``).
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

SCHEME = "ou"
RANDOMIZER_WINDOW = 12
"""Window of the H table: 4096 residues of 256 bytes per 12 exponent bits (19.9 MB at l = 224)."""
_ONE = mpz(1)


class OUPublicKey(HEPublicKey):
    """OU public key ``(n, G, H)``; ciphertexts live mod ``n``; ``|m| < 2^plaintext_bits``."""

    scheme = SCHEME
    parallel_min = 512  # OU encryption is cheap: small batches are not worth a process hop
    plain_parallel_min = 512

    def __init__(self, n: int, G: int, H: int, randomizer_bits: int, plaintext_bits: int) -> None:
        self.n = mpz(n)
        self.modulus = self.n
        self.G, self.H = mpz(G), mpz(H)
        self.randomizer_bits = int(randomizer_bits)
        self.plaintext_bits = int(plaintext_bits)
        if self.randomizer_bits % 8 or self.randomizer_bits < 64:
            raise CryptoError(f"randomizer_bits must be a multiple of 8 and >= 64 (got {randomizer_bits})")
        if not (1 < self.G < self.n and 1 < self.H < self.n):
            raise CryptoError("OU public key fields 'G'/'H' are out of range")
        if not 16 <= self.plaintext_bits < self.n.bit_length() // 3:
            raise CryptoError("OU public key field 'plaintext_bits' is out of range")
        self.key_bits = self.n.bit_length()
        self.max_int = (1 << self.plaintext_bits) - 1
        self._g_table: FixedBaseTable | None = None
        self._ginv_table: FixedBaseTable | None = None
        self._h_table: FixedBaseTable | None = None

    def spec(self) -> tuple:
        return ("ou-pub", int(self.n), int(self.G), int(self.H), self.randomizer_bits, self.plaintext_bits)

    def _tables(self) -> tuple[FixedBaseTable, FixedBaseTable, FixedBaseTable]:
        if self._h_table is None:
            self._g_table = FixedBaseTable(self.G, self.n)
            self._ginv_table = FixedBaseTable(gmpy2.invert(self.G, self.n), self.n)
            self._h_table = FixedBaseTable(self.H, self.n, RANDOMIZER_WINDOW)
        return self._g_table, self._ginv_table, self._h_table  # type: ignore[return-value]

    def _plain_ints(self, ms: Sequence[int]) -> list[mpz]:
        gt, git, _ = self._tables()
        return [gt.pow(m) if m > 0 else (git.pow(-m) if m < 0 else _ONE) for m in ms]

    def random_zeros(self, count: int) -> list[mpz]:
        return self._tables()[2].pow_random(count, self.randomizer_bits)

    def _encrypt_ints(self, ms: Sequence[int]) -> list[mpz]:
        n = self.n
        gms = self._plain_ints(ms)
        rs = self.random_zeros(len(ms))
        return [a * b % n for a, b in zip(gms, rs)]

    def to_dict(self) -> dict[str, Any]:
        return {"scheme": SCHEME, "kind": "public", "n": int(self.n), "G": int(self.G), "H": int(self.H),
                "randomizer_bits": self.randomizer_bits, "plaintext_bits": self.plaintext_bits}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OUPublicKey:
        require_fields(d, SCHEME, "public", ("n", "G", "H", "randomizer_bits", "plaintext_bits"))
        return cls(d["n"], d["G"], d["H"], d["randomizer_bits"], d["plaintext_bits"])

    @classmethod
    def from_bytes(cls, data: bytes) -> OUPublicKey:
        return cls.from_dict(dict_from_bytes(data))


class OUPrivateKey(HEPrivateKey):
    """OU private key ``(p, q, t)``; decrypts with the short exponent ``t``."""

    def __init__(self, public_key: OUPublicKey, p: int, q: int, t: int) -> None:
        p, q, t = mpz(p), mpz(q), mpz(t)
        if p * p * q != public_key.n or (p - 1) % t:
            raise CryptoError("OU private key does not match its public key")
        self.public_key = public_key
        self.p, self.q, self.t = p, q, t
        self.psquare = p * p
        self.plaintext_modulus = p
        a = (gmpy2.powmod(public_key.G % self.psquare, t, self.psquare) - 1) // p
        if a % p == 0:
            raise CryptoError("OU key is degenerate (G^t = 1 mod p^2)")
        self.a_inv = gmpy2.invert(a, p)
        if (1 << public_key.plaintext_bits) * 3 > p:
            raise CryptoError("OU plaintext_bits too large for p")

    def spec(self) -> tuple:
        return ("ou-priv", *self.public_key.spec()[1:], int(self.p), int(self.q), int(self.t))

    def _decrypt_residues(self, cts: Sequence[mpz]) -> list[mpz]:
        p, p2, ainv = self.p, self.psquare, self.a_inv
        xs = gmpy2.powmod_base_list([c % p2 for c in cts], self.t, p2)
        return [(x - 1) // p * ainv % p for x in xs]

    def to_dict(self) -> dict[str, Any]:
        d = self.public_key.to_dict()
        d.update(kind="private", p=int(self.p), q=int(self.q), t=int(self.t))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OUPrivateKey:
        require_fields(d, SCHEME, "private", ("n", "G", "H", "randomizer_bits", "plaintext_bits", "p", "q", "t"))
        pk = OUPublicKey(d["n"], d["G"], d["H"], d["randomizer_bits"], d["plaintext_bits"])
        if not all(gmpy2.is_prime(d[k]) for k in ("p", "q", "t")):
            raise CryptoError("OU private key factors are not prime")
        return cls(pk, d["p"], d["q"], d["t"])

    @classmethod
    def from_bytes(cls, data: bytes) -> OUPrivateKey:
        return cls.from_dict(dict_from_bytes(data))


def _rand_below(n: mpz) -> mpz:
    return mpz(secrets.randbelow(int(n)))


def keygen(n_bits: int = 2048, *, randomizer_bits: int | None = None,
           allow_insecure: bool = False) -> tuple[OUPublicKey, OUPrivateKey]:
    """Generate an OU key pair with ``n = p^2 q`` of exactly ``n_bits`` bits.

    ``randomizer_bits`` defaults to ``2*lambda`` (224 at 2048 bits). Keys below 2048 bits
    need ``allow_insecure``.
    """
    check_key_size(n_bits, allow_insecure)
    lam = security_bits(n_bits)
    rbits = int(randomizer_bits) if randomizer_bits is not None else 2 * lam
    p_bits = -(-n_bits // 3)
    t_bits = min(2 * lam, p_bits // 2 - 2)
    t = random_prime(t_bits)
    while True:  # p = t*u + 1, two top bits set, u even
        u = (mpz(secrets.randbits(p_bits - t_bits + 1)) | (mpz(1) << (p_bits - t_bits))) & ~mpz(1)
        p = t * u + 1
        if p.bit_length() == p_bits and (p >> (p_bits - 2)) == 3 and gmpy2.is_prime(p, 50):
            break
    p2 = p * p
    q_bits = n_bits - 2 * p_bits + 1
    while True:
        q = random_prime(q_bits)
        n = p2 * q
        if n.bit_length() == n_bits and q != p:
            break
        if n.bit_length() > n_bits:
            q_bits -= 1
    while True:
        g = _rand_below(n)
        if g > 1 and g % p and gmpy2.powmod(g % p2, p - 1, p2) != 1:
            break
    while True:
        g2 = _rand_below(n)
        if g2 > 1 and g2 % p and gmpy2.gcd(g2, n) == 1:
            break
    G = gmpy2.powmod(g, u, n)
    H = gmpy2.powmod(g2, n * u, n)
    pk = OUPublicKey(n, G, H, rbits, p_bits - 3)
    return pk, OUPrivateKey(pk, p, q, t)


def _pub_from_spec(spec: tuple) -> OUPublicKey:
    return OUPublicKey(*spec[1:6])


def _priv_from_spec(spec: tuple) -> OUPrivateKey:
    return OUPrivateKey(OUPublicKey(*spec[1:6]), *spec[6:9])


register_key_type("ou-pub", _pub_from_spec)
register_key_type("ou-priv", _priv_from_spec)
