"""Curve primitives of ECDH PSI: X25519 (RFC 7748) over Curve25519.

Design (measured per operation, one core):

* X25519 variable-base scalar multiplication. Reference machine of the first design: libsodium
  via PyNaCl 30 us, OpenSSL via ``cryptography`` 33 us. Acceptance machine (2-core Xeon
  Sapphire Rapids VM, 2026-12-05; interleaved batches, 20,000-60,000 ops each, four runs):
  OpenSSL via ``cryptography`` 50-54 us per op including ~3.5 us of Python key-object overhead,
  libsodium through its C entry point 51-55 us; OpenSSL was 0-6 % faster in every run, so the
  batch functions use it by default and ``PRIVFIN_X25519=libsodium`` selects libsodium (read
  at import). libsodium ed25519 ``scalarmult_noclamp`` 91 us and ``from_uniform`` (Elligator 2)
  21 us. ECDH PSI needs 2 variable-base multiplications per id per party, so X25519 on
  Montgomery u-coordinates is the fast choice. Both libraries compute the same RFC 7748
  function, so parties using different backends interoperate.
* **Hash to curve** (:func:`hash_to_u`): try-and-increment. ``u`` = a 32-byte half of
  ``BLAKE2b-512(DST || ctr || id)`` with the top bit cleared, accepted when ``u < p``,
  ``u != 0`` and ``u^3 + A u^2 + u`` is a non-zero square mod ``p`` (Jacobi symbol, gmpy2),
  i.e. ``u`` is the x-coordinate of a point on Curve25519 itself, never on its quadratic
  twist; otherwise ``ctr`` is incremented. Expected 2 candidates per id; on the acceptance
  machine the batch loop :func:`hash_to_u_chunk` costs ~10 us per id, of which the two gmpy2
  Jacobi symbols are ~6.3 us (measured: 2.006 calls per id, ~3.1 us each) and one BLAKE2b
  ~0.6 us. Modelling BLAKE2b as a random oracle, the accepted ``u``
  is uniform over the curve's x-coordinates, so ``H`` is a random oracle into the curve
  modulo sign; the cofactor 8 is cleared by the first X25519 multiplication because clamped
  scalars are multiples of 8. We do not use "X25519 on any hashed u" (relying on twist
  security): it is secure for the discrete-log problem, but whether a blinded value lies on
  the curve or the twist is a public function of the id that survives blinding, so every
  blinded set would leak one bit per element (the count of twist points), which the PSI
  functionality does not allow. Try-and-increment is not constant time; it runs on the
  party's own ids inside its own machine, batched, so only a set-level timing total is
  observable from outside.
* **Domain separation**: ``DST = "privfin/psi/x25519-h2c/v1" || len(job) || job || len(ctx)
  || ctx``; the job id makes every job's hash points unrelated to every other job's; the
  context names the protocol (two-party, multi-party).
* **Blinding**: X25519 with a per-job secret scalar from ``os.urandom`` (the OS CSPRNG).
  X25519 is commutative on u-coordinates: ``X(a, X(b, u)) = X(b, X(a, u)) = x([ab] P)``.
* **Unblinding** (multi-party OPRF): for a clamped ``c`` we find a *clamped* ``d`` with
  ``d c = 1 (mod l)`` (retrying ``c`` until one exists, about half the time), so
  ``X(d, X(c, Q)) = Q`` on the prime-order subgroup.
* **Comparison tags**: ``BLAKE2b-128(DST_tag || D)`` of the doubly blinded u-coordinate
  ``D``. With 128-bit tags and up to ``n_A = n_B = 10^8`` ids per side, the probability of any
  false match is at most ``n_A n_B / 2^128 < 2^-74``, and of any tag collision inside one set
  at most ``n^2 / 2^129 < 2^-75``.

Work functions (``*_chunk``) are top-level and take plain data so the executor can run
them in worker processes.
"""

from __future__ import annotations

import hashlib
import os
from typing import Final

import gmpy2
import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from privfin.crypto.ot import hash_rows
from privfin.errors import CryptoError, ProtocolError

P: Final = 2**255 - 19
A24: Final = 486662
L: Final = 2**252 + 27742317777372353535851937790883648493  # prime order of the subgroup
POINT_BYTES: Final = 32
TAG_BYTES: Final = 16
_MASK255: Final = (1 << 255) - 1
_MAX_TRIES: Final = 64  # probability of exhausting: 2^-64 per id

try:  # libsodium via PyNaCl: releases the GIL
    from nacl.bindings import crypto_scalarmult as _sodium_scalarmult
except ImportError:  # pragma: no cover - exercised only without PyNaCl
    _sodium_scalarmult = None

try:  # PyNaCl's cffi handle: batch loops without a bytes object per call (saves ~1 us/op)
    from nacl._sodium import ffi as _ffi  # type: ignore[import-not-found]
    from nacl._sodium import lib as _lib  # type: ignore[import-not-found]

    _raw_scalarmult = _lib.crypto_scalarmult
except (ImportError, AttributeError):  # pragma: no cover - other PyNaCl layouts fall back
    _ffi = _raw_scalarmult = None

BACKENDS: Final = ("openssl", "libsodium")
_env_backend = os.environ.get("PRIVFIN_X25519", "openssl").strip().lower()
if _env_backend not in BACKENDS:
    raise CryptoError(f"PRIVFIN_X25519 must be one of {BACKENDS}, got {_env_backend!r}")
#: the X25519 implementation of the batch functions (OpenSSL measured fastest here, see above)
BACKEND: str = "libsodium" if (_env_backend == "libsodium" and _raw_scalarmult is not None) else "openssl"


def _x25519_openssl(k: bytes, u: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(k).exchange(X25519PublicKey.from_public_bytes(u))


def x25519(k: bytes, u: bytes) -> bytes:
    """RFC 7748 X25519(k, u); raises :class:`ProtocolError` on a small-order input."""
    try:
        if BACKEND == "libsodium" and _sodium_scalarmult is not None:
            return _sodium_scalarmult(k, u)
        return _x25519_openssl(k, u)
    except Exception as exc:  # libsodium RuntimeError / OpenSSL ValueError: all-zero output
        raise ProtocolError("received an invalid curve point (small order)") from exc


# -- keys -------------------------------------------------------------------------------


def clamp(k: bytes) -> int:
    """The integer X25519 multiplies by for the 32-byte scalar ``k``."""
    v = int.from_bytes(k, "little")
    return (v & (_MASK255 ^ 7)) | (1 << 254)


def new_scalar() -> bytes:
    """A fresh secret X25519 scalar from the OS CSPRNG (already in clamped form)."""
    return clamp(os.urandom(32)).to_bytes(32, "little")


def new_invertible_scalar() -> tuple[bytes, bytes]:
    """``(c, d)``: clamped scalars with ``c d = 1 (mod l)``, so X25519 by ``d`` undoes ``c``."""
    inv8 = pow(8, -1, L)
    for _ in range(256):
        c = clamp(os.urandom(32))
        t = ((pow(c, -1, L) - (1 << 254)) * inv8) % L
        if t < (1 << 251):
            d = (1 << 254) + 8 * t
            return c.to_bytes(32, "little"), d.to_bytes(32, "little")
    raise CryptoError("could not draw an invertible X25519 scalar")  # pragma: no cover (p ~ 2^-256)


# -- domain separation ----------------------------------------------------------------------


def _lp(b: bytes) -> bytes:
    return len(b).to_bytes(2, "big") + b


def domain(job_id: str, context: str) -> bytes:
    """The per-job domain-separation string hashed before every id."""
    return b"privfin/psi/x25519-h2c/v1" + _lp(job_id.encode()) + _lp(context.encode())


# -- hash to curve --------------------------------------------------------------------------


def hash_to_u(item: bytes, dst: bytes) -> bytes:
    """Map one id to the u-coordinate of a Curve25519 point (try-and-increment, see module doc)."""
    return _hash_to_u(_h2c_base(dst), item)


_PM = gmpy2.mpz(P)


def _h2c_base(dst: bytes) -> hashlib._Hash:  # type: ignore[name-defined]
    base = hashlib.blake2b(digest_size=64, person=b"privfin-h2c-v1")
    base.update(dst)
    return base


def _hash_to_u(base: hashlib._Hash, item: bytes, start: int = 0) -> bytes:  # type: ignore[name-defined]
    # one 64-byte BLAKE2b output gives two candidates (ctr, ctr + 1); expected tries: 2
    jac, frm = gmpy2.jacobi, int.from_bytes
    for ctr in range(start, _MAX_TRIES, 2):
        h = base.copy()
        h.update(bytes((ctr,)))
        h.update(item)
        d = h.digest()
        for c in (d[:32], d[32:]):
            u = frm(c, "little") & _MASK255
            if u == 0 or u >= P:
                continue
            if jac(u * (u * (u + A24) + 1), _PM) == 1:  # g(u) a non-zero square mod p: on the curve
                return u.to_bytes(32, "little")
    raise CryptoError("hash to curve failed (probability 2^-64)")  # pragma: no cover


def _as_bytes_list(items: np.ndarray | list[bytes]) -> list[bytes]:
    if isinstance(items, np.ndarray):
        return items.tolist()  # S-dtype -> bytes (ids never end in NUL: ids.py rejects control chars)
    return list(items)


def _points_out(parts: list[bytes]) -> np.ndarray:
    """A writable ``(n, 32)`` uint8 array of the concatenated parts."""
    if not parts:
        return np.empty((0, POINT_BYTES), np.uint8)
    return np.frombuffer(bytearray(b"".join(parts)), np.uint8).reshape(-1, POINT_BYTES)


def _points_bytes(points: np.ndarray) -> bytes:
    """The points as one bytes object (``32 n`` bytes), after a shape/dtype check."""
    if points.ndim != 2 or points.shape[1] != POINT_BYTES or points.dtype != np.uint8:
        raise ProtocolError(f"expected an (n, {POINT_BYTES}) uint8 array of points, got {points.dtype}{points.shape}")
    return points.tobytes()


# -- batch work functions (run in executor workers) --------------------------------------


def hash_to_u_chunk(items: np.ndarray | list[bytes], dst: bytes) -> np.ndarray:
    """Hash each id to a curve u-coordinate; ``(n, 32)`` uint8 (never sent: unkeyed).

    Equal to :func:`hash_to_u` on every id: the common case (one of the two candidates of
    counter 0 is accepted, probability 3/4) runs inline on gmpy2 integers (one conversion of
    the 64-byte digest, ~6 % faster than Python ints); the rest continue from counter 2."""
    base = _h2c_base(dst)
    cp, jac, frm, pm, p = base.copy, gmpy2.jacobi, gmpy2.mpz.from_bytes, _PM, P
    mask, a24 = gmpy2.mpz(_MASK255), gmpy2.mpz(A24)
    out: list[bytes] = []
    app = out.append
    for it in _as_bytes_list(items):
        h = cp()
        h.update(b"\x00" + it)  # counter byte 0, then the id: as in _hash_to_u
        x = frm(h.digest(), "little")
        u = x & mask  # first half, top bit cleared; jacobi(0) = 0 rejects u = 0, u >= p is rejected below
        if jac(u * (u * (u + a24) + 1), pm) == 1 and u < p:
            app(u.to_bytes(32, "little"))
            continue
        u = (x >> 256) & mask  # second half
        if jac(u * (u * (u + a24) + 1), pm) == 1 and u < p:
            app(u.to_bytes(32, "little"))
            continue
        app(_hash_to_u(base, it, start=2))
    return _points_out(out)


def hash_and_blind_chunk(items: np.ndarray | list[bytes], key: bytes, dst: bytes) -> np.ndarray:
    """``X25519(key, H(id))`` for each id: ``(n, 32)`` uint8."""
    return blind_chunk(hash_to_u_chunk(items, dst), key)


def _blind_raw(points: np.ndarray, key: bytes) -> np.ndarray:
    """Batch X25519 through libsodium's C entry point, into one output buffer."""
    _points_bytes(points[:0])  # shape/dtype check
    src = np.ascontiguousarray(points)
    out = np.empty_like(src)
    n = len(src)
    if n == 0:
        return out
    pin = _ffi.from_buffer(src)
    pout = _ffi.from_buffer(out)
    f = _raw_scalarmult
    bad = 0
    for off in range(0, n * POINT_BYTES, POINT_BYTES):
        bad |= f(pout + off, key, pin + off)
    if bad:
        raise ProtocolError("received an invalid curve point (small order)")
    return out


def _blind_openssl(points: np.ndarray, key: bytes) -> np.ndarray:
    """Batch X25519 through OpenSSL (``cryptography``), one key object for the whole batch."""
    raw = _points_bytes(points)
    exchange, public = X25519PrivateKey.from_private_bytes(key).exchange, X25519PublicKey.from_public_bytes
    try:
        out = b"".join([exchange(public(raw[o:o + POINT_BYTES])) for o in range(0, len(raw), POINT_BYTES)])
    except ValueError as exc:  # OpenSSL refuses an all-zero shared secret (small-order input)
        raise ProtocolError("received an invalid curve point (small order)") from exc
    return np.frombuffer(bytearray(out), np.uint8).reshape(-1, POINT_BYTES)


def blind_chunk(points: np.ndarray, key: bytes) -> np.ndarray:
    """``X25519(key, u)`` for each received u-coordinate: ``(n, 32)`` uint8."""
    if BACKEND == "libsodium":
        return _blind_raw(points, key)
    return _blind_openssl(points, key)


def _tag_base(dst: bytes) -> hashlib._Hash:  # type: ignore[name-defined]
    base = hashlib.blake2b(digest_size=TAG_BYTES, person=b"privfin-tag-v1")
    base.update(dst)
    return base


def tags_of(points: np.ndarray, dst: bytes) -> np.ndarray:
    """Truncated hashes (``S16``) of doubly blinded u-coordinates."""
    _points_bytes(points[:0])  # shape/dtype check
    return hash_rows(_tag_base(dst), points)


def blind_and_tag_chunk(points: np.ndarray, key: bytes, dst: bytes) -> np.ndarray:
    """Tags of ``X25519(key, u)`` for each received u (the second blinding): ``S16``."""
    return tags_of(blind_chunk(points, key), dst)


__all__ = [
    "BACKEND", "BACKENDS", "POINT_BYTES", "TAG_BYTES", "L", "P", "x25519", "clamp", "new_scalar",
    "new_invertible_scalar",
    "domain", "hash_to_u", "hash_to_u_chunk", "hash_and_blind_chunk", "blind_chunk", "blind_and_tag_chunk", "tags_of",
]
