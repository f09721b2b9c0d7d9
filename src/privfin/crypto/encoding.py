"""Fixed-point encoding of real numbers as signed integers for additively homomorphic schemes.

A real ``x`` is encoded as the integer ``round(x * 2**frac_bits)``; the absolute precision is
``2**-frac_bits`` (default ``frac_bits = 40``: about 9.1e-13; rounding error at most half of
that per encoded value). A negative integer ``v`` is carried in the scheme's plaintext ring
as ``v mod N`` (``N`` = Paillier ``n``, or OU ``p``), and a decrypted residue ``r`` is read
back as ``r`` if ``r <= max_int``, as ``r - N`` if ``r >= N - max_int``; anything in between
is a wrap-around and raises :class:`EncodingOverflowError`. ``max_int`` is public and at most
``N / 3``, so the sum of two in-range values that overflows is always detected.

Scales add under multiplication: ``enc(a; f1) * b(f2)`` carries ``f1 + f2`` fractional bits;
:class:`~privfin.crypto._he.EncryptedVector` tracks this and aligns scales on addition.

Error messages name the bound (``2**k``), never the offending value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from privfin.errors import CryptoError, EncodingOverflowError

DEFAULT_FRAC_BITS = 40
"""Default number of fractional bits: precision 2**-40 (about 9.1e-13)."""

_INT64_SAFE = 1 << 62


def _bound_msg(max_int: int, frac_bits: int) -> str:
    return (f"fixed-point value out of range: |x * 2^{frac_bits}| must be <= max_int "
            f"(a {max_int.bit_length()}-bit bound, about 2^{max_int.bit_length() - 1 - frac_bits} "
            f"in real units at frac_bits={frac_bits})")


def is_integer_input(x: Any) -> bool:
    """True for Python ints, integer/bool numpy arrays, and object arrays of ints."""
    if isinstance(x, (bool, int, np.integer)):
        return True
    arr = np.asarray(x) if not isinstance(x, np.ndarray) else x
    if arr.dtype.kind in "biu":
        return True
    if arr.dtype.kind == "O":
        return all(isinstance(v, (int, np.integer)) or type(v).__name__ == "mpz" for v in arr.ravel().tolist())
    return False


def _exact_scale(v: float, frac_bits: int) -> int:
    """``round(v * 2**frac_bits)`` computed exactly on integers (no float overflow)."""
    num, den = v.as_integer_ratio()
    x = num << frac_bits
    return (2 * x + den) // (2 * den)


def encode_array(x: Any, frac_bits: int, max_int: int) -> tuple[list[int], tuple[int, ...]]:
    """Encode ``x`` (scalar or array-like of floats or ints) as a flat list of signed ints.

    Integers are scaled exactly by ``2**frac_bits``; floats are rounded to nearest. Raises
    :class:`EncodingOverflowError` when a value exceeds ``max_int`` after scaling, and
    :class:`CryptoError` for NaN or infinity.
    """
    if frac_bits < 0:
        raise CryptoError(f"frac_bits must be >= 0 (got frac_bits={frac_bits})")
    arr = np.asarray(x)
    shape = arr.shape
    flat = arr.ravel()
    kind = flat.dtype.kind
    if kind in "biu":
        vals = [int(v) << frac_bits for v in flat.tolist()] if frac_bits else [int(v) for v in flat.tolist()]
    elif kind == "f":
        f64 = flat.astype(np.float64, copy=False)
        if not np.all(np.isfinite(f64)):
            raise CryptoError("cannot encode NaN or infinity as fixed point")
        with np.errstate(over="ignore"):
            scaled = np.ldexp(f64, frac_bits)
        if scaled.size and float(np.max(np.abs(scaled))) < _INT64_SAFE:
            vals = np.rint(scaled).astype(np.int64).tolist()
        else:
            vals = [_exact_scale(v, frac_bits) for v in f64.tolist()]
    elif kind == "O":
        vals = []
        for v in flat.tolist():
            if isinstance(v, float):
                if v != v or v in (float("inf"), float("-inf")):
                    raise CryptoError("cannot encode NaN or infinity as fixed point")
                vals.append(_exact_scale(v, frac_bits))
            else:
                try:
                    vals.append(int(v) << frac_bits)
                except (TypeError, ValueError) as exc:
                    raise CryptoError(f"cannot encode values of type {type(v).__name__}") from exc
    else:
        raise CryptoError(f"cannot encode array of dtype {flat.dtype} (numbers only)")
    if vals and max(max(vals), -min(vals)) > max_int:
        raise EncodingOverflowError(_bound_msg(max_int, frac_bits))
    return vals, shape


def to_signed(residues: Iterable[int], modulus: int, max_int: int) -> list[int]:
    """Map residues in ``[0, modulus)`` back to signed ints; raise on wrap-around."""
    out: list[int] = []
    hi = modulus - max_int
    for r in residues:
        if r <= max_int:
            out.append(int(r))
        elif r >= hi:
            out.append(int(r) - modulus)
        else:
            raise EncodingOverflowError(
                f"decrypted value outside the signed range +/-max_int (a {max_int.bit_length()}-bit bound): "
                "a homomorphic result overflowed; use fewer fractional bits or smaller inputs")
    return out


def decode_array(ints: Sequence[int], frac_bits: int, shape: tuple[int, ...]) -> np.ndarray:
    """Signed fixed-point ints -> float64 array of ``shape`` (correctly rounded division)."""
    scale = 1 << frac_bits
    if ints and max(max(ints), -min(ints)) < _INT64_SAFE:
        out = np.ldexp(np.asarray(ints, dtype=np.int64).astype(np.float64), -frac_bits)
    else:
        out = np.array([v / scale for v in ints], dtype=np.float64)
    return out.reshape(shape)


def ints_to_array(ints: Sequence[int], shape: tuple[int, ...]) -> np.ndarray:
    """Signed ints -> int64 array when they fit, otherwise an object array of Python ints."""
    if not ints or max(max(ints), -min(ints)) < (1 << 63):
        return np.asarray(ints, dtype=np.int64).reshape(shape)
    return np.fromiter(ints, dtype=object, count=len(ints)).reshape(shape)


class FixedPointEncoder:
    """Encode floats to signed ints with ``frac_bits`` fractional bits and a magnitude bound."""

    def __init__(self, frac_bits: int = DEFAULT_FRAC_BITS, max_int: int = (1 << 62) - 1) -> None:
        if frac_bits < 0:
            raise CryptoError(f"frac_bits must be >= 0 (got frac_bits={frac_bits})")
        self.frac_bits = frac_bits
        self.max_int = max_int

    @property
    def precision(self) -> float:
        """Absolute spacing of representable values, ``2**-frac_bits``."""
        return 2.0 ** -self.frac_bits

    def encode(self, x: Any) -> np.ndarray:
        vals, shape = encode_array(x, self.frac_bits, self.max_int)
        return ints_to_array(vals, shape)

    def decode(self, ints: Any, frac_bits: int | None = None) -> np.ndarray:
        arr = np.asarray(ints)
        return decode_array([int(v) for v in arr.ravel().tolist()],
                            self.frac_bits if frac_bits is None else frac_bits, arr.shape)
