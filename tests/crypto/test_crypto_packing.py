"""Packing: round trips, homomorphic slot sums, the overflow guard, gradient/hessian pairs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privfin.crypto import OffsetEncoder, Packer
from privfin.errors import CryptoError, EncodingOverflowError

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(max_examples=100, deadline=None)
@given(value_bits=st.integers(1, 40), headroom=st.integers(0, 12), k=st.integers(1, 8), data=st.data())
def test_pack_unpack_round_trip(value_bits, headroom, k, data):
    packer = Packer(value_bits, headroom, plaintext_bits=512)
    k = min(k, packer.slots)
    n = data.draw(st.integers(1, 5))
    vals = np.array(data.draw(st.lists(st.integers(0, 2**value_bits - 1), min_size=n * k, max_size=n * k)),
                    dtype=object).reshape(n, k)
    packed = packer.pack(vals)
    assert len(packed) == n and all(0 <= v < 2**512 for v in packed)
    assert (packer.unpack(packed, k) == vals).all()


def test_capacity_and_slots():
    p = Packer(32, 20, plaintext_bits=2045)
    assert p.slot_bits == 52 and p.slots == 39
    assert p.capacity >= 2**20
    assert Packer(8, 0, 64).capacity == 1


def test_pack_rejects_out_of_range():
    p = Packer(8, 4, 128)
    with pytest.raises(EncodingOverflowError, match=r"2\^8"):
        p.pack(np.array([[256]]))
    with pytest.raises(EncodingOverflowError):
        p.pack(np.array([[-1]]))
    with pytest.raises(CryptoError):
        p.pack(np.zeros((1, p.slots + 1), dtype=np.int64))
    with pytest.raises(CryptoError):
        p.pack(np.array([[0.5]]))


@SETTINGS
@given(data=st.data())
def test_encrypted_slot_sums(keys, data):
    pk, sk = keys
    packer = Packer.for_key(pk, value_bits=16, headroom_bits=6)
    k = data.draw(st.integers(1, min(4, packer.slots)))
    n = data.draw(st.integers(1, 6))
    vals = np.array(data.draw(st.lists(st.integers(0, 2**16 - 1), min_size=n * k, max_size=n * k)),
                    dtype=np.int64).reshape(n, k)
    ev = packer.encrypt(pk, vals)
    assert ev.capacity == packer.capacity
    assert (packer.decrypt(sk, ev, k) == vals).all()
    assert (packer.decrypt(sk, ev.sum().reshape(1), k)[0] == vals.sum(axis=0)).all()
    doubled = ev + ev
    assert (packer.decrypt(sk, doubled, k) == 2 * vals).all()
    assert (packer.decrypt(sk, ev * 3, k) == 3 * vals).all()


def test_guard_raises_before_slot_overflow(keys):
    pk, sk = keys
    packer = Packer.for_key(pk, value_bits=8, headroom_bits=2)   # capacity = 1023 // 255 = 4
    cap = packer.capacity
    ev = packer.encrypt(pk, np.full((cap + 1, 2), 255))
    ok = ev[:cap].sum()
    assert (packer.decrypt(sk, ok.reshape(1), 2)[0] == [255 * cap] * 2).all()
    with pytest.raises(EncodingOverflowError, match="at most"):
        ev.sum()
    with pytest.raises(EncodingOverflowError):
        ev * (cap + 1)
    with pytest.raises(CryptoError):
        ev * -1
    with pytest.raises(CryptoError):
        ev * 0.5
    with pytest.raises(CryptoError):
        -ev
    acc = ev[0:1]
    for _ in range(cap - 1):
        acc = acc + ev[0:1]
    with pytest.raises(EncodingOverflowError):
        acc + ev[0:1]


def test_pack_encrypted_bins(keys):
    pk, sk = keys
    packer = Packer.for_key(pk, value_bits=20, headroom_bits=8)
    bins = np.arange(3 * packer.slots + 2, dtype=np.int64) * 1000
    ev = pk.encrypt(bins)
    folded = packer.pack_encrypted(ev)
    assert len(folded) == 4
    assert (packer.unpack_flat(sk.decrypt_raw(folded), len(bins)) == bins).all()
    with pytest.raises(EncodingOverflowError):
        ev.weight = packer.capacity + 1
        packer.pack_encrypted(ev)
    with pytest.raises(CryptoError):
        packer.pack_encrypted(pk.encrypt(np.array([0.5])))


def test_gradient_hessian_pairs_per_bin(keys):
    """Label holder packs (g, h) per sample; a feature holder sums per bin; decrypt once per bin."""
    pk, sk = keys
    rng = np.random.default_rng(7)
    n, n_bins = 60, 4
    g = rng.uniform(-1, 1, n)
    h = rng.uniform(0, 0.25, n)
    enc = OffsetEncoder(bound=1.0, frac_bits=20)
    packer = Packer.for_key(pk, value_bits=enc.value_bits, headroom_bits=8)
    ev = packer.encrypt(pk, np.stack([enc.encode(g), enc.encode(h)], axis=1))
    bins = rng.integers(0, n_bins, n)
    sums = ev.bincount(bins, minlength=n_bins)
    assert sums.shape == (n_bins,)
    same = EncryptedVector_concat([ev[bins == b].sum().reshape(1) for b in range(n_bins)])
    assert (packer.decrypt(sk, same, 2) == packer.decrypt(sk, sums, 2)).all()
    counts = np.bincount(bins, minlength=n_bins)
    slots = packer.decrypt(sk, sums, 2)
    got_g = enc.decode(slots[:, 0], counts)
    got_h = enc.decode(slots[:, 1], counts)
    want_g = np.array([g[bins == b].sum() for b in range(n_bins)])
    want_h = np.array([h[bins == b].sum() for b in range(n_bins)])
    np.testing.assert_allclose(got_g, want_g, atol=n * 2.0**-20)
    np.testing.assert_allclose(got_h, want_h, atol=n * 2.0**-20)
    with pytest.raises(EncodingOverflowError):
        enc.encode([1.5])


def EncryptedVector_concat(parts):
    from privfin.crypto import EncryptedVector
    return EncryptedVector.concatenate(parts)


def test_bincount_guard_and_errors(keys):
    pk, sk = keys
    packer = Packer.for_key(pk, value_bits=8, headroom_bits=2)
    ev = packer.encrypt(pk, np.full((6, 1), 255))
    ok = ev.bincount(np.array([0, 0, 1, 1, 2, 2]))
    assert (packer.decrypt(sk, ok, 1)[:, 0] == [510, 510, 510]).all()
    with pytest.raises(EncodingOverflowError):
        ev.bincount(np.array([0, 0, 0, 0, 0, 1]))
    with pytest.raises(CryptoError):
        ev.bincount(np.array([0, 1]))
    with pytest.raises(CryptoError):
        ev.bincount(np.array([0, 0, 0, 0, 0, -1]))
