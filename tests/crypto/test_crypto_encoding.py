"""Fixed-point encoding: precision, signs, bounds and messages."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privfin.crypto import FixedPointEncoder
from privfin.crypto.encoding import decode_array, encode_array, to_signed
from privfin.errors import CryptoError, EncodingOverflowError

MOD = 2**127 - 1
MAX = MOD // 3


@settings(max_examples=200, deadline=None)
@given(x=st.lists(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), min_size=1, max_size=8),
       f=st.integers(0, 60))
def test_round_trip_within_half_ulp_of_fixed_point(x, f):
    arr = np.array(x)
    vals, shape = encode_array(arr, f, MAX)
    residues = [v % MOD for v in vals]
    back = decode_array(to_signed(residues, MOD, MAX), f, shape)
    assert np.all(np.abs(back - arr) <= 2.0 ** -(f + 1) + np.abs(arr) * 2.0**-52)


def test_negative_values_use_modular_representation():
    vals, _ = encode_array(np.array([-1.5]), 4, MAX)
    assert vals == [-24]
    assert to_signed([MOD - 24], MOD, MAX) == [-24]


def test_overflow_message_names_bound_not_value():
    with pytest.raises(EncodingOverflowError) as info:
        encode_array(np.array([2.0**100]), 40, MAX)
    msg = str(info.value)
    assert "max_int" in msg and "frac_bits=40" in msg and str(2**140) not in msg
    with pytest.raises(EncodingOverflowError, match="overflowed"):
        to_signed([MOD // 2], MOD, MAX)


def test_bad_inputs():
    with pytest.raises(CryptoError):
        encode_array(np.array([np.inf]), 10, MAX)
    with pytest.raises(CryptoError):
        encode_array(np.array(["a"]), 10, MAX)
    with pytest.raises(CryptoError):
        encode_array(np.array([1.0]), -1, MAX)


def test_integers_exact_and_huge_floats_exact():
    vals, _ = encode_array(np.array([3, -4], dtype=np.int64), 10, MAX)
    assert vals == [3 << 10, -4 << 10]
    vals, _ = encode_array(np.array([2.0**80]), 30, MAX)
    assert vals == [2**110]


def test_encoder_object():
    enc = FixedPointEncoder(frac_bits=16)
    assert enc.precision == 2.0**-16
    x = np.array([[0.1, -0.2], [3.0, -4.5]])
    np.testing.assert_allclose(enc.decode(enc.encode(x)), x, atol=2.0**-17)
