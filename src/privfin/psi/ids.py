"""Input hygiene for PSI ids: normalization, checksum validation, duplicates, empty input.

Error messages name counts and row positions, never the id values themselves.

Speed: when every id is an ASCII ``str`` or every id an integer (None allowed), cleaning runs on a pyarrow string array
(trim, case, printable test, duplicate count, conversion to a fixed-width ``S`` array) with
results identical to :func:`normalize` per id (tested); anything else takes the per-id path.

Checksums:

* **Chinese resident identity number** (GB 11643-1999): 17 digits and a check character;
  weights ``2^(17-i) mod 11``, check ``(12 - S mod 11) mod 11`` with 10 written ``X``.
* **Unified social credit code** (GB 32100-2015): 18 characters from
  ``0123456789ABCDEFGHJKLMNPQRTUWXY`` (no I, O, S, V, Z); weights ``3^(i) mod 31`` for the
  first 17 characters, check ``31 - S mod 31`` (31 written ``0``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from privfin.errors import ConfigError, DataError

CASES = ("upper", "lower", "keep")
CHECKSUMS = ("resident_id", "credit_code", "resident_id_or_credit_code")

_RID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_RID_CHECK = "10X98765432"
_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(_USCC_ALPHABET)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
_ASCII_SPACE = "".join(chr(i) for i in range(128) if chr(i).isspace())  # what str.strip() removes in ASCII
_MISSING = "missing or empty"


class InvalidIdError(DataError):
    """Ids that fail normalization or checksum validation (``on_invalid="error"``)."""


class DuplicateIdError(DataError):
    """The same id (after normalization) occurs more than once (``duplicates="error"``)."""


class EmptyInputError(DataError):
    """A party has no usable ids."""


class EmptyIntersectionError(DataError):
    """The parties share no ids (raised at the parties that learn the result, rows mode)."""


def resident_id_check(body17: str) -> str:
    """The GB 11643 check character of the first 17 digits."""
    s = sum(int(ch) * w for ch, w in zip(body17, _RID_WEIGHTS))
    return _RID_CHECK[s % 11]


def is_valid_resident_id(value: str) -> bool:
    """True for an 18-character resident id with a correct GB 11643 check character."""
    return (len(value) == 18 and value[:17].isascii() and value[:17].isdigit()
            and value[17] in "0123456789X" and resident_id_check(value[:17]) == value[17])


def credit_code_check(body17: str) -> str:
    """The GB 32100 check character of the first 17 characters."""
    s = sum(_USCC_VALUE[ch] * w for ch, w in zip(body17, _USCC_WEIGHTS))
    return _USCC_ALPHABET[(31 - s % 31) % 31]


def is_valid_credit_code(value: str) -> bool:
    """True for an 18-character unified social credit code with a correct GB 32100 check."""
    return (len(value) == 18 and all(ch in _USCC_VALUE for ch in value)
            and credit_code_check(value[:17]) == value[17])


_VALIDATORS = {
    "resident_id": is_valid_resident_id,
    "credit_code": is_valid_credit_code,
    "resident_id_or_credit_code": lambda v: is_valid_resident_id(v) or is_valid_credit_code(v),
}


@dataclass(frozen=True)
class IdPolicy:
    """How a party cleans its ids before PSI (each party applies its own; use the same one).

    ``strip`` removes surrounding whitespace (including the ideographic space); ``nfkc``
    folds full-width digits and letters to ASCII; ``case`` upper/lower/keep; ``checksum``
    one of :data:`CHECKSUMS` or None; ``on_invalid`` "error" or "skip" (skip and count);
    ``duplicates`` "error" or "dedupe" (keep the first occurrence).
    """

    strip: bool = True
    nfkc: bool = True
    case: Literal["upper", "lower", "keep"] = "upper"
    checksum: Literal["resident_id", "credit_code", "resident_id_or_credit_code"] | None = None
    on_invalid: Literal["error", "skip"] = "error"
    duplicates: Literal["error", "dedupe"] = "error"

    def __post_init__(self) -> None:
        if self.case not in CASES:
            raise ConfigError(f"case must be one of {CASES}", key="case")
        if self.checksum is not None and self.checksum not in CHECKSUMS:
            raise ConfigError(f"checksum must be one of {CHECKSUMS} or None", key="checksum")
        if self.on_invalid not in ("error", "skip"):
            raise ConfigError("on_invalid must be 'error' or 'skip'", key="on_invalid")
        if self.duplicates not in ("error", "dedupe"):
            raise ConfigError("duplicates must be 'error' or 'dedupe'", key="duplicates")

    def to_wire(self) -> dict[str, Any]:
        return {"strip": self.strip, "nfkc": self.nfkc, "case": self.case, "checksum": self.checksum}


@dataclass(frozen=True)
class HygieneReport:
    """Counts from cleaning one party's ids (no values)."""

    n_input: int
    n_invalid: int = 0
    n_duplicates: int = 0
    n_used: int = 0
    invalid_reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CleanIds:
    """Normalized unique ids as UTF-8 bytes (``S`` array) and their original row positions."""

    values: np.ndarray
    rows: np.ndarray
    report: HygieneReport

    def __len__(self) -> int:
        return len(self.rows)


def normalize(value: Any, policy: IdPolicy) -> str | None:
    """One id after normalization, or None if it is missing/empty/not a usable string."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    elif isinstance(value, (int, np.integer)):
        value = str(int(value))
    elif isinstance(value, (float, np.floating)):
        return None  # floats lose digits of 18-digit ids and NaN marks missing: refuse them
    elif not isinstance(value, str):
        value = str(value)
    ascii_ = value.isascii()
    if policy.nfkc and not ascii_:
        value = unicodedata.normalize("NFKC", value)
        ascii_ = value.isascii()
    if policy.strip:
        value = value.strip()
    if policy.case == "upper":
        value = value.upper()
    elif policy.case == "lower":
        value = value.lower()
    if not value:
        return None
    if ascii_:
        if not value.isprintable():  # ASCII control characters (NUL, tab, newline inside the id)
            return None
    elif any(unicodedata.category(ch) == "Cc" for ch in value):
        return None
    return value


def clean_ids(ids: Iterable[Any] | Sequence[Any] | np.ndarray, policy: IdPolicy | None = None, *,
              party: str = "this party") -> CleanIds:
    """Normalize, validate and deduplicate ``ids`` per ``policy``.

    Raises :class:`EmptyInputError`, :class:`InvalidIdError` or :class:`DuplicateIdError`
    with counts and row positions only.
    """
    policy = policy or IdPolicy()
    if ids is None:
        raise EmptyInputError(f"{party}: no ids given (None)")
    items = ids.tolist() if isinstance(ids, np.ndarray) else list(ids)
    n_input = len(items)
    if n_input == 0:
        raise EmptyInputError(f"{party}: the id list is empty")
    fast = _clean_ascii(items, policy)
    values, rows_arr, reasons, first_bad = fast if fast is not None else _clean_each(items, policy)
    n_invalid = n_input - len(values)
    if n_invalid and policy.on_invalid == "error":
        detail = ", ".join(f"{k}: {c}" for k, c in sorted(reasons.items()))
        raise InvalidIdError(f"{party}: {n_invalid} of {n_input} ids are invalid ({detail}); first at row {first_bad}. "
                             "Fix the data or set on_invalid='skip' to drop and count them")
    if not len(values):
        raise EmptyInputError(f"{party}: none of the {n_input} ids is usable after normalization/validation")
    if fast is not None and len(pc.unique(pa.array(values))) == len(values):  # hash count: no sort needed
        report = HygieneReport(n_input=n_input, n_invalid=n_invalid, n_duplicates=0, n_used=len(rows_arr),
                               invalid_reasons=reasons)
        return CleanIds(values=values, rows=rows_arr, report=report)
    uniq, first_idx = np.unique(values, return_index=True)
    n_dup = len(values) - len(uniq)
    if n_dup:
        if policy.duplicates == "error":
            mask = np.ones(len(values), bool)
            mask[first_idx] = False
            raise DuplicateIdError(f"{party}: {n_dup} duplicate ids after normalization; first repeat at row "
                                   f"{int(rows_arr[np.flatnonzero(mask)[0]])}. Set duplicates='dedupe' to keep the "
                                   "first occurrence of each")
        keep = np.sort(first_idx)
        values, rows_arr = values[keep], rows_arr[keep]
    report = HygieneReport(n_input=n_input, n_invalid=n_invalid, n_duplicates=n_dup, n_used=len(rows_arr),
                           invalid_reasons=reasons)
    return CleanIds(values=values, rows=rows_arr, report=report)


_Cleaned = tuple[np.ndarray, np.ndarray, dict[str, int], int]  # S values, rows, invalid reasons, first bad row


def _clean_each(items: list[Any], policy: IdPolicy) -> _Cleaned:
    """Per-id cleaning with :func:`normalize` (any input types)."""
    validator = _VALIDATORS[policy.checksum] if policy.checksum else None
    reasons: dict[str, int] = {}
    first_bad = -1
    kept: list[bytes] = []
    rows: list[int] = []
    for i, raw in enumerate(items):
        v = normalize(raw, policy)
        reason = None
        if v is None:
            reason = _MISSING
        elif validator is not None and not validator(v):
            reason = f"fails {policy.checksum} format/checksum"
        if reason is not None:
            reasons[reason] = reasons.get(reason, 0) + 1
            if first_bad < 0:
                first_bad = i
            continue
        kept.append(v.encode("utf-8"))  # type: ignore[union-attr]
        rows.append(i)
    values = np.array(kept, dtype=f"S{max(map(len, kept))}") if kept else np.empty(0, "S1")
    return values, np.asarray(rows, dtype=np.int64), reasons, first_bad


def _clean_ascii(items: list[Any], policy: IdPolicy) -> _Cleaned | None:
    """Vectorized cleaning when every id is an ASCII ``str``, or every id an integer (None allowed);
    None otherwise.

    Same result as :func:`normalize` per id: for ASCII, NFKC is the identity, ``strip``
    removes :data:`_ASCII_SPACE`, case mapping is ASCII, and an id is rejected when it is
    missing, empty after stripping, or holds a non-printable character."""
    try:
        arr = pa.array(items)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return None
    if pa.types.is_integer(arr.type):  # integer ids: decimal text, as str(int(v))
        arr = pc.cast(arr, pa.string())
    if arr.type != pa.string() or not pc.all(pc.fill_null(pc.string_is_ascii(arr), True)).as_py():
        return None
    if policy.strip:
        arr = pc.utf8_trim(arr, characters=_ASCII_SPACE)
    if policy.case == "upper":
        arr = pc.ascii_upper(arr)
    elif policy.case == "lower":
        arr = pc.ascii_lower(arr)
    ok = pc.fill_null(pc.and_(pc.greater(pc.binary_length(arr), 0), pc.ascii_is_printable(arr)), False)
    ok_np = ok.to_numpy(zero_copy_only=False)
    reasons: dict[str, int] = {}
    n_missing = len(ok_np) - int(ok_np.sum())
    if n_missing:
        reasons[_MISSING] = n_missing
    if policy.checksum:
        validator = _VALIDATORS[policy.checksum]
        idx = np.flatnonzero(ok_np)
        passed = np.fromiter((validator(v) for v in arr.filter(ok).to_pylist()), bool, len(idx))
        if not passed.all():
            reasons[f"fails {policy.checksum} format/checksum"] = int((~passed).sum())
            ok_np[idx[~passed]] = False
    bad = np.flatnonzero(~ok_np)
    rows = np.flatnonzero(ok_np).astype(np.int64)
    values = _fixed_width(arr.filter(pa.array(ok_np)))
    return values, rows, reasons, int(bad[0]) if len(bad) else -1


def _fixed_width(arr: pa.Array) -> np.ndarray:
    """A non-null pyarrow string array as a NUL-padded fixed-width ``S`` numpy array."""
    n = len(arr)
    if n == 0:
        return np.empty(0, "S1")
    arr = pa.concat_arrays([arr]) if arr.offset else arr  # offset 0, own buffers
    offs = np.frombuffer(arr.buffers()[1], np.int32, count=n + 1)
    data = np.frombuffer(arr.buffers()[2], np.uint8) if arr.buffers()[2] is not None else np.empty(0, np.uint8)
    lens = np.diff(offs)
    width = max(int(lens.max()), 1)
    data = data[offs[0]:offs[-1]]
    if (lens == width).all():
        fixed = data.reshape(n, width).copy()
    else:
        fixed = np.zeros((n, width), np.uint8)
        row = np.repeat(np.arange(n), lens)
        col = np.arange(len(data)) - np.repeat(offs[:-1] - offs[0], lens)
        fixed[row, col] = data
    return fixed.view(f"S{width}").ravel()


__all__ = [
    "IdPolicy", "HygieneReport", "CleanIds", "clean_ids", "normalize", "InvalidIdError", "DuplicateIdError",
    "EmptyInputError", "EmptyIntersectionError", "is_valid_resident_id", "is_valid_credit_code",
    "resident_id_check", "credit_code_check",
]
