"""Paillier and OU: homomorphic properties, fixed point, keys, wire format, executor."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privfin.crypto import EncryptedVector, keygen, load_private_key, load_public_key, ou, paillier
from privfin.errors import CryptoError, EncodingOverflowError
from privfin.runtime.executor import LocalProcessExecutor, set_executor
from privfin.transport import serde

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ints = st.integers(min_value=-(2**60), max_value=2**60)
small_ints = st.integers(min_value=-(2**20), max_value=2**20)
floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
TOL = 2.0**-30


def _vec(draw_list):
    return np.array(draw_list, dtype=object)


@SETTINGS
@given(data=st.data())
def test_add_ciphertexts(keys, data):
    pk, sk = keys
    n = data.draw(st.integers(1, 6))
    a = data.draw(st.lists(ints, min_size=n, max_size=n))
    b = data.draw(st.lists(ints, min_size=n, max_size=n))
    got = sk.decrypt(pk.encrypt(_vec(a)) + pk.encrypt(_vec(b)))
    assert [int(v) for v in got] == [x + y for x, y in zip(a, b)]


@SETTINGS
@given(data=st.data())
def test_add_plaintext_sub_neg(keys, data):
    pk, sk = keys
    a = np.array(data.draw(st.lists(ints, min_size=1, max_size=5)), dtype=object)
    b = np.array(data.draw(st.lists(ints, min_size=len(a), max_size=len(a))), dtype=object)
    ea, eb = pk.encrypt(a), pk.encrypt(b)
    assert list(sk.decrypt(ea + b)) == list(a + b)
    assert list(sk.decrypt(ea - eb)) == list(a - b)
    assert list(sk.decrypt(b - ea)) == list(b - a)
    assert list(sk.decrypt(-ea)) == list(-a)


@SETTINGS
@given(data=st.data())
def test_scalar_and_vector_products(keys, data):
    pk, sk = keys
    a = np.array(data.draw(st.lists(ints, min_size=1, max_size=5)), dtype=object)
    k = data.draw(small_ints)
    ks = np.array(data.draw(st.lists(small_ints, min_size=len(a), max_size=len(a))), dtype=object)
    ea = pk.encrypt(a)
    assert list(sk.decrypt(ea * k)) == list(a * k)
    assert list(sk.decrypt(k * ea)) == list(a * k)
    assert list(sk.decrypt(ea * ks)) == list(a * ks)


@SETTINGS
@given(data=st.data())
def test_fixed_point_floats_including_negative(keys, data):
    pk, sk = keys
    x = np.array(data.draw(st.lists(floats, min_size=1, max_size=5)))
    y = np.array(data.draw(st.lists(floats, min_size=len(x), max_size=len(x))))
    s = data.draw(st.floats(-100, 100, allow_nan=False))
    ex = pk.encrypt(x)
    assert ex.frac_bits == 40
    np.testing.assert_allclose(sk.decrypt(ex), x, rtol=0, atol=TOL)
    np.testing.assert_allclose(sk.decrypt(ex + pk.encrypt(y)), x + y, rtol=0, atol=TOL)
    np.testing.assert_allclose(sk.decrypt(ex * s), x * s, rtol=1e-12, atol=1e-6)
    np.testing.assert_allclose(sk.decrypt(ex + y), x + y, rtol=0, atol=TOL)


def test_negative_values_and_mixed_scales(keys):
    pk, sk = keys
    x = np.array([-0.5, -1234.125, 3.0, -(2.0**-20)])
    ex = pk.encrypt(x)
    np.testing.assert_allclose(sk.decrypt(ex), x, atol=2.0**-40)
    # integer ciphertext + fixed-point ciphertext aligns scales
    ei = pk.encrypt(np.array([1, -2, 3, -4]))
    np.testing.assert_allclose(sk.decrypt(ei + ex), x + [1, -2, 3, -4], atol=2.0**-40)
    np.testing.assert_allclose(sk.decrypt(ei + 0.5), np.array([1.5, -1.5, 3.5, -3.5]), atol=2.0**-40)
    np.testing.assert_allclose(sk.decrypt((ex * 0.25) + ex), x * 1.25, atol=1e-9)


@SETTINGS
@given(data=st.data())
def test_sum_and_dot_with_matrix(keys, data):
    pk, sk = keys
    n = data.draw(st.integers(1, 5))
    d = data.draw(st.integers(1, 3))
    a = np.array(data.draw(st.lists(ints, min_size=n, max_size=n)), dtype=object)
    W = np.array(data.draw(st.lists(small_ints, min_size=n * d, max_size=n * d)), dtype=object).reshape(n, d)
    ea = pk.encrypt(a)
    assert int(sk.decrypt(ea.sum())) == sum(a)
    assert list(sk.decrypt(ea.dot(W))) == list(a.dot(W))
    assert list(sk.decrypt(ea @ W)) == list(a @ W)
    assert list(sk.decrypt(W.T @ ea)) == list(W.T @ a)
    assert int(sk.decrypt(ea.dot(W[:, 0]))) == int(a.dot(W[:, 0]))
    bins = np.arange(n, dtype=np.int64) % 2
    assert list(sk.decrypt(ea.bincount(bins, minlength=3))) == [sum(a[bins == b]) for b in range(3)]


def test_float_dot_and_sum_axis(keys):
    pk, sk = keys
    rng = np.random.default_rng(1)
    x = rng.normal(size=7)
    W = rng.normal(size=(7, 3))
    ex = pk.encrypt(x)
    np.testing.assert_allclose(sk.decrypt(ex.dot(W)), x @ W, atol=1e-9)
    X = rng.normal(size=(3, 4))
    eX = pk.encrypt(X)
    np.testing.assert_allclose(sk.decrypt(eX.sum(axis=0)), X.sum(axis=0), atol=1e-9)
    np.testing.assert_allclose(sk.decrypt(eX.sum(axis=1)), X.sum(axis=1), atol=1e-9)
    np.testing.assert_allclose(sk.decrypt(eX[1]), X[1], atol=1e-9)
    assert eX.shape == (3, 4) and eX.reshape(12).shape == (12,)
    both = EncryptedVector.concatenate([ex, pk.encrypt(np.array([1, 2]))])
    np.testing.assert_allclose(sk.decrypt(both), np.r_[x, 1, 2], atol=1e-9)


def test_overflow_raises_with_bound_not_value(keys):
    pk, sk = keys
    big = pk.max_int + 1
    with pytest.raises(EncodingOverflowError) as info:
        pk.encrypt(np.array([big], dtype=object))
    assert str(big) not in str(info.value) and "bound" in str(info.value)
    with pytest.raises(EncodingOverflowError):
        pk.encrypt(np.array([1e300]))
    with pytest.raises(CryptoError):
        pk.encrypt(np.array([np.nan]))
    # a homomorphic result that wraps around is detected at decryption
    e = pk.encrypt(np.array([pk.max_int], dtype=object))
    with pytest.raises(EncodingOverflowError):
        sk.decrypt(e + e)
    with pytest.raises(EncodingOverflowError):
        sk.decrypt(e * 2)


def test_misuse_raises(keys, he_keys):
    pk, sk = keys
    other_pk, other_sk = next(v for v in he_keys.values() if v[0] is not pk)
    e = pk.encrypt(np.array([1, 2]))
    with pytest.raises(CryptoError):
        e + other_pk.encrypt(np.array([1, 2]))
    with pytest.raises(CryptoError):
        other_sk.decrypt(e)
    with pytest.raises(CryptoError):
        e * e
    with pytest.raises(CryptoError):
        e.dot(np.ones((3, 2), dtype=np.int64))


def test_key_serialization_round_trip(keys):
    pk, sk = keys
    pk2 = load_public_key(pk.to_bytes())
    sk2 = load_private_key(sk.to_bytes())
    assert pk2 == pk and pk2.fingerprint == pk.fingerprint
    assert load_public_key(pk.to_dict()) == pk
    assert sk2.public_key == pk
    x = np.array([3, -5, 7])
    assert list(sk2.decrypt(pk2.encrypt(x))) == list(x)
    assert list(sk.decrypt(pk2.encrypt(x))) == list(x)
    assert "p" not in pk.to_dict() and "q" not in pk.to_dict()
    assert str(int(sk.p)) not in repr(sk) and pk.fingerprint in repr(sk)
    with pytest.raises(CryptoError):
        load_public_key(b"not a key")
    bad = sk.to_dict()
    bad["q"] += 2
    with pytest.raises(CryptoError):
        load_private_key(bad)


def test_wire_format_round_trip(keys):
    pk, sk = keys
    x = np.array([[1.5, -2.0], [0.0, 1e-6]])
    e = pk.encrypt(x)
    wire = e.to_wire()
    assert wire["ct"].dtype == np.uint8 and wire["ct"].shape == (4, pk.ciphertext_bytes)
    header, buffers = serde.encode(wire)
    back = serde.decode(header, [bytes(b) for b in buffers])
    e2 = EncryptedVector.from_wire(load_public_key(pk.to_bytes()), back)
    np.testing.assert_allclose(sk.decrypt(e2), x, atol=1e-9)
    assert e2.shape == (2, 2) and e2.frac_bits == e.frac_bits
    bad = dict(back, ct=np.zeros_like(back["ct"]))
    with pytest.raises(CryptoError):
        EncryptedVector.from_wire(pk, bad)
    with pytest.raises(CryptoError):
        EncryptedVector.from_wire(pk, dict(back, key="0" * 16))


def test_rerandomize_keeps_plaintext(keys):
    pk, sk = keys
    e = pk.encrypt(np.array([0, 5, -3]))
    z = e * 0
    r = z.rerandomize()
    assert all(c == 1 for c in z.ciphertexts.tolist())
    assert all(c != 1 for c in r.ciphertexts.tolist())
    assert list(sk.decrypt(r)) == [0, 0, 0]
    assert list(sk.decrypt(e.rerandomize())) == [0, 5, -3]


def test_encryption_is_randomized(keys):
    pk, _ = keys
    a = pk.encrypt(np.array([7, 7]))
    assert a.ciphertexts[0] != a.ciphertexts[1]


def test_small_keys_need_explicit_opt_in():
    with pytest.raises(CryptoError):
        paillier.keygen(1024)
    with pytest.raises(CryptoError):
        ou.keygen(1024)
    with pytest.raises(CryptoError):
        keygen("elgamal", 2048)


def test_bulk_operations_through_process_pool(he_keys):
    """The real process pool: chunks go to workers, which rebuild keys and tables from specs."""
    ex = LocalProcessExecutor(2)
    old = set_executor(ex)
    try:
        for pk, sk in he_keys.values():
            x = np.arange(-300, 300, dtype=np.int64)
            e = pk.encrypt(x)                      # 600 >= parallel_min of both schemes: chunked
            assert ex._pool is not None
            assert list(sk.decrypt(e)) == list(x)
            assert list(sk.decrypt(e * 3)) == list(x * 3)
            W = np.arange(1200, dtype=np.int64).reshape(600, 2) % 7 - 3
            assert list(sk.decrypt(e.dot(W))) == list(x @ W)
            assert list(sk.decrypt(e.rerandomize())) == list(x)
            bins = (np.arange(600) % 5).astype(np.int64)
            assert list(sk.decrypt(e.bincount(bins))) == list(np.bincount(bins, weights=x).astype(np.int64))
    finally:
        set_executor(old) if old is not None else None
        ex.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["paillier", "ou"])
def test_full_size_2048(scheme, serial_executor):
    pk, sk = keygen(scheme, 2048)
    assert pk.key_bits == 2048
    assert pk.randomizer_bits == 224
    x = np.array([1.25, -3.5, 1e6])
    e = pk.encrypt(x)
    np.testing.assert_allclose(sk.decrypt(e + e), 2 * x, atol=1e-9)
    np.testing.assert_allclose(sk.decrypt(e * -2.0), -2 * x, atol=1e-6)
    np.testing.assert_allclose(sk.decrypt(e.dot(np.array([[1.0], [2.0], [0.5]]))), [x @ [1.0, 2.0, 0.5]], atol=1e-6)
    assert load_private_key(sk.to_bytes()).public_key == pk
