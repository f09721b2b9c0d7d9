"""Two-party additive secret sharing over Z_2^64 with fixed point and Beaver multiplication.

A value ``x`` of the ring ``Z_2^64`` is split as ``x = x0 + x1 (mod 2^64)``; shares are numpy
``uint64`` arrays and every ring operation is numpy's wrap-around ``uint64`` arithmetic.
Reals use fixed point: ``encode(x) = round(x * 2^f)`` as a two's-complement ``int64`` viewed
as ``uint64`` (default ``f = 16``: precision ``2^-16``, about 1.5e-5; encodable range
``|x| < 2^(62-f)``).

Operations:

- local: :func:`share` / :func:`reconstruct`, :func:`add`, :func:`sub`, :func:`neg`,
  :func:`add_public` (only party 0 adds the constant), :func:`mul_public` (integer or
  fixed-point constant, the latter followed by :func:`truncate`);
- with the peer (role functions; each takes only this party's shares and a channel):
  :func:`send_share` / :func:`recv_share` (an input owner deals its input),
  :func:`reveal`, :func:`beaver_mul` (elementwise), :func:`beaver_matmul`;
- :class:`SSParty`, a small object wrapper holding the channel, the peer, this party's index
  and the fixed-point scale.

Beaver multiplication (Beaver 1991): with a triple ``(A, B, C = A*B)`` (or ``C = A@B``)
shared between the parties, each party opens ``E_i = X_i - A_i`` and ``F_i = Y_i - B_i``;
then ``Z_i = C_i + E*B_i + A_i*F (+ E*F for party 0)`` and ``Z = X*Y``. Triples come from
:mod:`privfin.crypto.triples` (two-party HE protocol, or an optional dealer).

Truncation (SecureML, Mohassel–Zhang 2017, Thm. 1): after a fixed-point product the value
carries ``2f`` fractional bits; party 0 replaces its share ``z0`` by ``floor(z0 / 2^f)``,
party 1 its share ``z1`` by ``2^64 - floor((2^64 - z1) / 2^f)``, with no communication. If
``|z| < 2^lz`` (``z`` the signed ring value before truncation) the result is
``floor(z / 2^f)`` or that plus one unit in the last place (an error of at most ``2^-f``)
except with probability at most ``2^(lz + 1 - 64)`` per element, in which case the element
is wrong by about ``2^(64-f)`` (a wrap-around, not a small error). Example: with ``f = 16``
and results ``|x*y| < 2^10`` in real units, ``lz = 42`` and the failure probability is
``<= 2^-21`` per element. In real units the bound is about ``|x*y| * 2^(2f + 1 - 64)``, so
over ``m`` truncated elements the chance of any failure is at most ``m`` times that: keep
``f`` and the magnitudes small enough for the batch size (:func:`truncation_failure_bound`
computes the bound from ``lz``).

Security
--------
- **Model.** Two parties, semi-honest; they do not collude (two shares reconstruct the
  value). No dealer is needed (triples from :mod:`privfin.crypto.triples`).
- **Randomness.** Every share and mask is drawn from a CSPRNG: an AES-256-CTR keystream
  under a fresh key and nonce from ``os.urandom`` (:func:`random_ring`); numpy's generators
  are never used for secrets.
- **What each party learns.** A share alone is uniform on ``Z_2^64`` and independent of the
  value. In :func:`beaver_mul` / :func:`beaver_matmul` each party receives the peer's shares of
  ``E = X - A`` and ``F = Y - B``; as ``A`` and ``B`` are uniform and unknown to it, ``E`` and
  ``F`` are uniformly distributed and independent of ``X``, ``Y`` (one-time pad), so a party
  learns nothing but the shapes. A triple must be used once: opening ``X - A`` and ``X' - A``
  reveals ``X - X'``. :func:`reveal` discloses the value to the receiver(s) by design.
  Truncation is local and sends nothing.
- **Messages** carrying shares are declared ``Kind.SHARE``; the disclosure ledger thus lists
  only shares for these protocols (plus what :func:`reveal` opens, also a share message).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from privfin.errors import CryptoError, EncodingOverflowError, ProtocolError
from privfin.transport.base import Channel, Kind

RING_BITS = 64
DEFAULT_SS_FRAC_BITS = 16
"""Default fractional bits of secret-shared fixed point: precision 2^-16 (about 1.5e-5)."""

_U64 = np.uint64
_MAX_ENCODE_BITS = 62


# --------------------------------------------------------------------------- randomness

def _keystream(key: bytes, nonce: bytes, nbytes: int) -> bytes:
    enc = Cipher(algorithms.AES(key), modes.CTR(nonce)).encryptor()
    return enc.update(bytes(nbytes)) + enc.finalize()


def random_ring(shape: int | Sequence[int]) -> np.ndarray:
    """Uniform ``uint64`` array from a CSPRNG (AES-256-CTR keyed from ``os.urandom``)."""
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    buf = bytearray(_keystream(os.urandom(32), os.urandom(16), 8 * n))
    return np.frombuffer(buf, dtype="<u8").reshape(shape)


def prg_ring(seed: bytes, label: int, shape: int | Sequence[int]) -> np.ndarray:
    """Deterministic expansion of a 32-byte CSPRNG ``seed`` into a ``uint64`` array.

    AES-256-CTR with key ``seed``; the counter block is ``label`` (high 64 bits) followed by
    a 64-bit block counter from 0, so distinct labels give disjoint (independent) streams of
    up to ``2^64`` blocks. Used by the dealer to send seeds instead of whole matrices.
    """
    if len(seed) != 32:
        raise CryptoError(f"PRG seed must be 32 bytes (got {len(seed)})")
    if not 0 <= int(label) < 1 << 64:
        raise CryptoError(f"PRG label must be in [0, 2^64) (got {label})")
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    buf = bytearray(_keystream(seed, int(label).to_bytes(8, "big") + bytes(8), 8 * n))
    return np.frombuffer(buf, dtype="<u8").reshape(shape)


# --------------------------------------------------------------------------- fixed point

def encode(x: Any, frac_bits: int = DEFAULT_SS_FRAC_BITS) -> np.ndarray:
    """Reals -> ring elements ``round(x * 2^frac_bits) mod 2^64`` (``uint64``).

    Raises :class:`EncodingOverflowError` if ``|x| >= 2^(62 - frac_bits)``; integer input is
    scaled exactly.
    """
    if not 0 <= frac_bits <= 40:
        raise CryptoError(f"frac_bits must be in 0..40 (got {frac_bits})")
    arr = np.asarray(x)
    if arr.dtype.kind in "biu":
        lim = 1 << (_MAX_ENCODE_BITS - frac_bits)
        if arr.size and (int(np.max(arr)) >= lim or int(np.min(arr)) <= -lim):
            raise EncodingOverflowError(f"value out of the fixed-point range |x| < 2^{_MAX_ENCODE_BITS - frac_bits} "
                                        f"(frac_bits={frac_bits})")
        return np.asarray(np.left_shift(arr.astype(np.int64), np.int64(frac_bits))).view(_U64)
    f64 = arr.astype(np.float64)
    if not np.all(np.isfinite(f64)):
        raise CryptoError("cannot encode NaN or infinity as fixed point")
    scaled = np.ldexp(f64, frac_bits)
    if scaled.size and float(np.max(np.abs(scaled))) >= 2.0 ** _MAX_ENCODE_BITS:
        raise EncodingOverflowError(f"value out of the fixed-point range |x| < 2^{_MAX_ENCODE_BITS - frac_bits} "
                                    f"(frac_bits={frac_bits})")
    return np.rint(scaled).astype(np.int64).view(_U64)


def decode(v: np.ndarray, frac_bits: int = DEFAULT_SS_FRAC_BITS) -> np.ndarray:
    """Ring elements -> reals (two's complement, divided by ``2^frac_bits``)."""
    arr = np.asarray(v, dtype=_U64)
    return np.ldexp(arr.view(np.int64).astype(np.float64), -frac_bits)


def truncation_failure_bound(bound_bits: int) -> float:
    """Per-element probability bound ``2^(bound_bits + 1 - 64)`` that :func:`truncate` fails,
    for ring values ``|z| < 2^bound_bits`` (before truncation)."""
    return float(2.0 ** (bound_bits + 1 - RING_BITS))


def truncate(share: np.ndarray, frac_bits: int, party: int) -> np.ndarray:
    """SecureML local truncation of this party's share by ``frac_bits`` (see module docs)."""
    _check_party(party)
    s = np.asarray(share, dtype=_U64)
    if frac_bits == 0:
        return s.copy()
    sh = _U64(frac_bits)
    if party == 0:
        return s >> sh
    return -((-s) >> sh)


# --------------------------------------------------------------------------- local operations

def _check_party(party: int) -> None:
    if party not in (0, 1):
        raise CryptoError(f"party index must be 0 or 1 (got {party})")


def _ring(x: Any) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype != _U64:
        raise CryptoError(f"shares must be uint64 arrays (got dtype {arr.dtype})")
    return arr


def share(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split ring elements ``x`` (``uint64``) into two shares ``(x - r, r)``, ``r`` uniform."""
    x = _ring(x)
    r = random_ring(x.shape)
    return x - r, r


def reconstruct(s0: np.ndarray, s1: np.ndarray) -> np.ndarray:
    """``s0 + s1 mod 2^64``."""
    return _ring(s0) + _ring(s1)


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Share of ``a + b`` from shares of ``a`` and ``b`` (local)."""
    return _ring(a) + _ring(b)


def sub(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Share of ``a - b`` (local)."""
    return _ring(a) - _ring(b)


def neg(a: np.ndarray) -> np.ndarray:
    """Share of ``-a`` (local)."""
    return -_ring(a)


def add_public(s: np.ndarray, c: Any, party: int, frac_bits: int = DEFAULT_SS_FRAC_BITS) -> np.ndarray:
    """Share of ``x + c`` for a public real/int ``c`` (encoded with ``frac_bits``): party 0 adds it."""
    _check_party(party)
    s = _ring(s)
    if party == 1:
        return np.broadcast_to(s, np.broadcast_shapes(s.shape, np.shape(c))).copy()
    return s + encode(c, frac_bits)


def mul_public(s: np.ndarray, c: Any, party: int, frac_bits: int = DEFAULT_SS_FRAC_BITS) -> np.ndarray:
    """Share of ``x * c`` for a public ``c``.

    Integer ``c`` (ints or an integer array): exact ring multiplication, no truncation.
    Real ``c``: encoded with ``frac_bits`` and the product truncated by ``frac_bits``
    (probabilistic; see :func:`truncate`)."""
    s = _ring(s)
    arr = np.asarray(c)
    if arr.dtype.kind in "biu":
        return s * arr.astype(np.int64).view(_U64)
    return truncate(s * encode(arr, frac_bits), frac_bits, party)


# --------------------------------------------------------------------------- two-party protocols

def _expect_ring(payload: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    if not isinstance(payload, np.ndarray) or payload.dtype != _U64 or payload.shape != shape:
        got = f"{payload.dtype}{payload.shape}" if isinstance(payload, np.ndarray) else type(payload).__name__
        raise ProtocolError(f"{what}: expected a uint64 share of shape {shape}, got {got}")
    return payload


def send_share(chan: Channel, peer: str, x: np.ndarray, *, tag: str = "ss/input") -> np.ndarray:
    """Input owner: split ``x`` (ring elements), send the peer its share, return our own."""
    mine, theirs = share(x)
    chan.send(peer, tag, theirs, kind=Kind.SHARE)
    return mine


def recv_share(chan: Channel, peer: str, shape: Sequence[int], *, tag: str = "ss/input") -> np.ndarray:
    """Receiver of a dealt input: our share of the peer's ``shape``-shaped value."""
    return _expect_ring(chan.recv(peer, tag), tuple(shape), f"'{tag}' from '{peer}'")


def reveal(chan: Channel, peer: str, s: np.ndarray, *, to: str = "both", tag: str = "ss/reveal") -> np.ndarray | None:
    """Open a shared value. ``to``: ``"both"``, ``"self"`` (only we learn it) or ``"peer"``.

    Returns the ring value where this party learns it, else ``None``. Both parties must
    call it with matching ``to`` (``"self"`` on one side, ``"peer"`` on the other)."""
    s = _ring(s)
    if to not in ("both", "self", "peer"):
        raise CryptoError(f"reveal to must be 'both', 'self' or 'peer' (got {to!r})")
    if to in ("both", "peer"):
        chan.send(peer, tag, s, kind=Kind.SHARE)
    if to in ("both", "self"):
        return s + _expect_ring(chan.recv(peer, tag), s.shape, f"'{tag}' from '{peer}'")
    return None


def open_masked(chan: Channel, peer: str, parts: Sequence[np.ndarray], tag: str) -> list[np.ndarray]:
    """Exchange shares of several (masked) values with the peer; return the opened values."""
    mine = [_ring(p) for p in parts]
    chan.send(peer, tag, mine, kind=Kind.SHARE)
    theirs = chan.recv(peer, tag)
    if not isinstance(theirs, list) or len(theirs) != len(mine):
        raise ProtocolError(f"'{tag}' from '{peer}': expected {len(mine)} shares")
    return [m + _expect_ring(t, m.shape, f"'{tag}' from '{peer}'") for m, t in zip(mine, theirs)]


@dataclass
class BeaverTriple:
    """One party's shares of a triple: ``c = a * b`` (elementwise) or ``c = a @ b`` (matrix).

    Use each triple once (see the Security section)."""

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    kind: str = "matmul"  # or "mul"


def beaver_mul(chan: Channel, peer: str, party: int, x: np.ndarray, y: np.ndarray, triple: BeaverTriple, *,
               frac_bits: int = DEFAULT_SS_FRAC_BITS, tag: str = "ss/mul") -> np.ndarray:
    """Elementwise product of shared ``x`` and ``y`` (same shape); truncated by ``frac_bits``
    (0 for integer ring multiplication)."""
    _check_party(party)
    x, y = _ring(x), _ring(y)
    a, b, c = _ring(triple.a), _ring(triple.b), _ring(triple.c)
    if not (x.shape == y.shape == a.shape == b.shape == c.shape):
        raise CryptoError(f"beaver_mul shapes differ: x {x.shape}, y {y.shape}, triple {a.shape}/{b.shape}/{c.shape}")
    e, f = open_masked(chan, peer, [x - a, y - b], tag)
    z = c + e * b + a * f
    if party == 0:
        z += e * f
    return truncate(z, frac_bits, party) if frac_bits else z


def beaver_matmul(chan: Channel, peer: str, party: int, x: np.ndarray, y: np.ndarray, triple: BeaverTriple, *,
                  frac_bits: int = DEFAULT_SS_FRAC_BITS, tag: str = "ss/matmul") -> np.ndarray:
    """Matrix product ``X @ Y`` of shared ``X`` (n x d) and ``Y`` (d x k, or d); truncated by
    ``frac_bits`` (0 for integer ring arithmetic)."""
    _check_party(party)
    x, y = _ring(x), _ring(y)
    a, b, c = _ring(triple.a), _ring(triple.b), _ring(triple.c)
    if x.ndim != 2 or a.shape != x.shape or b.shape != y.shape or y.shape[0] != x.shape[1]:
        raise CryptoError(f"beaver_matmul shapes do not align: X {x.shape}, Y {y.shape}, "
                          f"triple A {a.shape}, B {b.shape}")
    out_shape = (x.shape[0],) + y.shape[1:]
    if c.shape != out_shape:
        raise CryptoError(f"triple C has shape {c.shape}, expected {out_shape}")
    e, f = open_masked(chan, peer, [x - a, y - b], tag)
    z = c + e @ b + a @ f
    if party == 0:
        z += e @ f
    return truncate(z, frac_bits, party) if frac_bits else z


# --------------------------------------------------------------------------- object API

class SSParty:
    """One party's handle on a two-party sharing session.

    >>> sp = SSParty(chan, "bank", party=0)         # the peer runs SSParty(chan, "gov", party=1)
    >>> xs = sp.input(X)                             # the peer calls sp.input_from(X.shape)
    >>> z = sp.matmul(xs, ws, triple)                # shares of X @ w (fixed point)
    >>> sp.reveal(z, to="self")                      # the peer calls reveal(z, to="peer")
    """

    def __init__(self, chan: Channel, peer: str, party: int, frac_bits: int = DEFAULT_SS_FRAC_BITS) -> None:
        _check_party(party)
        self.chan, self.peer, self.party, self.frac_bits = chan, peer, party, frac_bits
        self._n = 0

    def _tag(self, base: str) -> str:
        self._n += 1
        return f"{base}/{self._n}"

    def input(self, x: Any) -> np.ndarray:
        """Deal our real-valued input: the peer gets a share, we keep ours."""
        return send_share(self.chan, self.peer, encode(x, self.frac_bits), tag=self._tag("ss/input"))

    def input_from(self, shape: Sequence[int]) -> np.ndarray:
        """Receive our share of the peer's input of ``shape``."""
        return recv_share(self.chan, self.peer, shape, tag=self._tag("ss/input"))

    def reveal(self, s: np.ndarray, to: str = "both") -> np.ndarray | None:
        v = reveal(self.chan, self.peer, s, to=to, tag=self._tag("ss/reveal"))
        return None if v is None else decode(v, self.frac_bits)

    def add_public(self, s: np.ndarray, c: Any) -> np.ndarray:
        return add_public(s, c, self.party, self.frac_bits)

    def mul_public(self, s: np.ndarray, c: Any) -> np.ndarray:
        return mul_public(s, c, self.party, self.frac_bits)

    def mul(self, x: np.ndarray, y: np.ndarray, triple: BeaverTriple) -> np.ndarray:
        return beaver_mul(self.chan, self.peer, self.party, x, y, triple, frac_bits=self.frac_bits,
                          tag=self._tag("ss/mul"))

    def matmul(self, x: np.ndarray, y: np.ndarray, triple: BeaverTriple) -> np.ndarray:
        return beaver_matmul(self.chan, self.peer, self.party, x, y, triple, frac_bits=self.frac_bits,
                             tag=self._tag("ss/matmul"))


__all__ = [
    "DEFAULT_SS_FRAC_BITS",
    "RING_BITS",
    "BeaverTriple",
    "SSParty",
    "add",
    "add_public",
    "beaver_matmul",
    "beaver_mul",
    "decode",
    "encode",
    "mul_public",
    "neg",
    "open_masked",
    "prg_ring",
    "random_ring",
    "reconstruct",
    "recv_share",
    "reveal",
    "send_share",
    "share",
    "sub",
    "truncate",
    "truncation_failure_bound",
]
