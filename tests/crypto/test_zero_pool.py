"""Public randomness-ahead API: ZeroPool, encrypt_ints(zeros=...), Packer.encrypt(slot_tables=...),
SlotPowers; and the Paillier randomizer-window choice."""

from __future__ import annotations

import threading
import time

import gmpy2
import numpy as np
import pytest
from gmpy2 import mpz

from privfin.crypto import EncryptedVector, Packer, SlotPowers, ZeroPool, paillier
from privfin.crypto._he import FixedBaseTable
from privfin.errors import CryptoError, EncodingOverflowError
from privfin.runtime.executor import LocalProcessExecutor, set_executor


def _wait_for(cond, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


def test_random_zeros_decrypt_to_zero_and_are_distinct(keys):
    pk, sk = keys
    zs = pk.random_zeros(20)
    assert len(set(zs)) == 20                       # fresh randomness each
    ev = EncryptedVector(pk, np.array(zs, dtype=object), 0)
    assert list(sk.decrypt(ev)) == [0] * 20


def test_zero_pool_fills_only_when_idle_and_round_trips(keys):
    pk, sk = keys
    with pk.zero_pool(40, chunk=8) as pool:
        assert pool.running
        time.sleep(0.3)
        assert pool.made_ahead == 0 and pool.available == 0   # not idle: the thread does nothing
        with pool.idle():
            assert _wait_for(lambda: pool.available >= 40)
        made = pool.made_ahead
        assert made >= 40
        ms = list(range(-15, 15))
        ev = pk.encrypt_ints(ms, zeros=pool)
        assert pool.made_on_demand == 0                       # all 30 came from the pool
        assert list(sk.decrypt(ev)) == ms
        assert pool.available == made - 30
        assert len(set(ev.ciphertexts.tolist())) == 30
    assert not pool.running and pool.available == 0


def test_zero_pool_exhaustion_falls_back_synchronously(keys):
    pk, sk = keys
    pool = ZeroPool(pk, 5, chunk=5)
    try:
        with pool.idle():
            assert _wait_for(lambda: pool.available >= 5)
        got = pool.take(12)                                   # 5 ahead + 7 made now
        assert len(got) == 12 and len(set(got)) == 12
        assert pool.made_on_demand == 7
        ev = EncryptedVector(pk, np.array(got, dtype=object), 0)
        assert list(sk.decrypt(ev)) == [0] * 12
        # zeros are handed out once: a second take with an empty pool makes everything now
        pool.close()
        assert pool.take(3) and pool.made_on_demand == 10
    finally:
        pool.close()


def test_zero_pool_always_mode_and_thread_shutdown(keys):
    pk, _ = keys
    pool = ZeroPool(pk, 16, chunk=4, only_when_idle=False, name="test-zeros")
    assert any(t.name == "test-zeros" for t in threading.enumerate())
    assert _wait_for(lambda: pool.available >= 16)
    time.sleep(0.1)
    assert pool.available <= 16 + 4                           # stops at the target
    pool.close()
    assert not pool.running
    assert not any(t.name == "test-zeros" and t.is_alive() for t in threading.enumerate())


def test_zero_pool_argument_checks(keys, he_keys):
    pk, _ = keys
    with pytest.raises(CryptoError):
        ZeroPool(pk, -1)
    with pytest.raises(CryptoError):
        pk.with_zeros([mpz(1), mpz(1)], pk.random_zeros(1))   # one zero per plaintext
    other = next(k for k, _ in he_keys.values() if k != pk)
    with ZeroPool(other, 0) as pool, pytest.raises(CryptoError):
        pk.encrypt_ints([1], zeros=pool)                     # zeros under another key


def test_encrypt_with_given_zero_list(keys):
    pk, sk = keys
    ms = [3, -7, 0, int(pk.max_int)]
    zs = pk.random_zeros(len(ms))
    ev = pk.encrypt_ints(ms, zeros=zs)
    assert list(sk.decrypt_int(ev)) == ms
    M = pk.modulus
    # exactly plain encoding times the given zero: the same ciphertexts as a fresh encryption
    plain = pk.encrypt_ints(ms, zeros=[mpz(1)] * len(ms)).ciphertexts.tolist()
    assert ev.ciphertexts.tolist() == [a * z % M for a, z in zip(plain, zs)]
    with pytest.raises(EncodingOverflowError):
        pk.encrypt_ints([int(pk.max_int) + 1], zeros=pk.random_zeros(1))


def test_packer_encrypt_with_zero_pool(keys):
    pk, sk = keys
    packer = Packer.for_key(pk, 20, 4)
    vals = np.random.default_rng(1).integers(0, 1 << 20, size=(25, 3))
    with pk.zero_pool(25) as pool:
        ev = packer.encrypt(pk, vals, zeros=pool)
        assert ev.capacity == packer.capacity
        assert (packer.decrypt(sk, ev + ev, 3) == 2 * vals).all()


@pytest.mark.parametrize("const_col", [False, True])
def test_packer_slot_tables_match_generic(he_keys, serial_executor, const_col):
    pk, sk = he_keys["ou"]
    packer = Packer.for_key(pk, 26, 8)
    rng = np.random.default_rng(7)
    vals = rng.integers(0, 1 << 26, size=(40, 3))
    if const_col:
        vals[:, 2] = 1                                        # folded into the first table
    zs = pk.random_zeros(40)
    a = packer.encrypt(pk, vals, zeros=zs, slot_tables=True)
    b = packer.encrypt(pk, vals, zeros=zs)
    assert a.ciphertexts.tolist() == b.ciphertexts.tolist()   # same G^m, same zeros
    assert a.capacity == packer.capacity
    assert (packer.decrypt(sk, a, 3) == vals).all()
    fresh = packer.encrypt(pk, vals, slot_tables=True)        # randomness made now
    assert (packer.decrypt(sk, fresh, 3) == vals).all()
    assert packer.encrypt(pk, np.zeros((0, 3), dtype=np.int64), slot_tables=True).shape == (0,)
    with pytest.raises(EncodingOverflowError):
        packer.encrypt(pk, np.full((2, 3), 1 << 26), slot_tables=True)


def test_slot_powers_direct(he_keys):
    pk, _ = he_keys["ou"]
    sp = SlotPowers(pk.G, pk.n, slot_bits=40, value_bits=30, n_slots=3, const={1: 5}, window=10)
    rows = [(0, 0), (1, 2), ((1 << 30) - 1, 12345)]
    want = [gmpy2.powmod(pk.G, a + (5 << 40) + (b << 80), pk.n) for a, b in rows]
    assert sp.powers(rows) == want
    with pytest.raises(EncodingOverflowError):
        sp.powers([(1 << 30, 0)])
    with pytest.raises(CryptoError):
        sp.powers([(1,)])
    with pytest.raises(CryptoError):
        SlotPowers(pk.G, pk.n, 40, 30, 2, const={0: 1, 1: 1})


def test_slot_tables_through_process_pool(he_keys):
    """Workers rebuild the slot tables from the key spec and layout."""
    pk, sk = he_keys["ou"]
    ex = LocalProcessExecutor(2)
    old = set_executor(ex)
    try:
        packer = Packer.for_key(pk, 26, 8)
        vals = np.random.default_rng(3).integers(0, 1 << 26, size=(pk.parallel_min + 10, 3))
        vals[:, 2] = 1
        with pk.zero_pool(0) as pool:                        # empty pool: all zeros on demand
            ev = packer.encrypt(pk, vals, zeros=pool, slot_tables=True)
            assert pool.made_on_demand == len(vals)
        assert ex._pool is not None
        assert (packer.decrypt(sk, ev, 3) == vals).all()
    finally:
        set_executor(old) if old is not None else None
        ex.shutdown()


def test_paillier_randomizer_window_round_trip(he_keys, serial_executor):
    pk, sk = he_keys["paillier"]
    assert pk.table.window == paillier.RANDOMIZER_WINDOW
    x = np.arange(-50, 50, dtype=np.int64)
    assert list(sk.decrypt(pk.encrypt(x))) == list(x)
    # a wider-window table gives the same powers as plain powmod
    t12 = FixedBaseTable(pk.hs, pk.nsquare, 12)
    for e in (0, 1, 4095, 4096, (1 << 224) - 1, 123456789 << 100):
        assert t12.pow(e) == gmpy2.powmod(pk.hs, e, pk.nsquare)


# --------------------------------------------------------------------------- owner-side (CRT) zeros

def test_owner_zeros_are_valid_paillier_zeros(he_keys, serial_executor):
    pk, sk = he_keys["paillier"]
    zs = sk.random_zeros(30)
    assert len(set(zs)) == 30
    assert list(sk.decrypt(EncryptedVector(pk, np.array(zs, dtype=object), 0))) == [0] * 30
    # exactly h_s^r mod n^2 for the r whose digits were drawn; r < 2^randomizer_bits
    digits = sk.randomizer_digits(50)
    d = np.frombuffer(digits, dtype="<u2").reshape(50, sk.owner_width)
    assert sk.owner_window == paillier.OWNER_WINDOW
    rs = [sum(int(v) << (sk.owner_window * i) for i, v in enumerate(row)) for row in d]
    assert max(rs) < 1 << pk.randomizer_bits
    assert max(rs) >= 1 << (pk.randomizer_bits - 8)          # the top digit is used (P(fail) ~ 2^-400)
    got = sk._crt(sk.half_powers("p", digits), sk.half_powers("q", digits))
    assert got == [gmpy2.powmod(pk.hs, r, pk.nsquare) for r in rs]


def test_owner_encrypt_ints_round_trip(he_keys, serial_executor):
    pk, sk = he_keys["paillier"]
    ms = [0, 1, -1, int(pk.max_int), -int(pk.max_int), 12345]
    ev = sk.encrypt_ints(ms)
    assert ev.public_key == pk
    assert list(sk.decrypt_int(ev)) == ms
    assert list(sk.decrypt_int(ev + pk.encrypt_ints([5] * len(ms)) - 5)) == ms   # mixes with public encryptions
    with pytest.raises(EncodingOverflowError):
        sk.encrypt_ints([int(pk.max_int) + 1])
    with ZeroPool(sk, 8) as pool:                             # a pool over the private key
        with pool.idle():
            assert _wait_for(lambda: pool.available >= 8)
        ev2 = sk.encrypt_ints(ms, zeros=pool)
        assert pool.made_on_demand == 0
    assert list(sk.decrypt_int(ev2)) == ms


def test_owner_zeros_halves_through_process_pool(he_keys):
    """The p^2 and q^2 halves go to different workers and are recombined."""
    pk, sk = he_keys["paillier"]
    ex = LocalProcessExecutor(2)
    old = set_executor(ex)
    try:
        n = paillier.OWNER_PARALLEL_MIN + 5
        zs = sk.fresh_zeros(n)
        assert ex._pool is not None and len(zs) == n == len(set(zs))
        assert list(sk.decrypt(EncryptedVector(pk, np.array(zs, dtype=object), 0))) == [0] * n
        ms = list(range(-n // 2, n - n // 2))
        assert list(sk.decrypt_int(sk.encrypt_ints(ms))) == ms
    finally:
        set_executor(old) if old is not None else None
        ex.shutdown()


@pytest.mark.parametrize(("value_bits", "headroom"), [(64, 80), (20, 4), (40, 0), (7, 1)])
def test_pack_byte_aligned_fast_path_matches_generic(value_bits, headroom):
    packer = Packer(value_bits, headroom, 1024)
    rng = np.random.default_rng(value_bits)
    hi = (1 << value_bits) - 1
    vals = rng.integers(0, min(hi, 2**63 - 1), size=(9, min(packer.slots, 5)), dtype=np.uint64)
    vals[0, 0] = hi                                           # the largest value
    fast = packer.pack(vals)
    slow = packer.pack(vals.astype(object))
    assert fast == slow
    assert (packer.unpack(fast, vals.shape[1]).astype(object) == vals.astype(object)).all()
    with pytest.raises(EncodingOverflowError):
        packer.pack(np.array([[-1]], dtype=np.int64))
    if value_bits < 64:
        with pytest.raises(EncodingOverflowError):
            packer.pack(np.array([[1 << value_bits]], dtype=np.int64))


def test_public_table_widens_after_volume_and_stays_correct_under_threads(he_keys, serial_executor, monkeypatch):
    _, sk = he_keys["paillier"]
    pk = paillier.PaillierPublicKey.from_dict(sk.public_key.to_dict())   # fresh counters and tables
    monkeypatch.setattr(paillier, "WIDE_AFTER", 200)
    assert pk.table.window == paillier.RANDOMIZER_WINDOW
    ms = list(range(-300, 300))
    with ZeroPool(pk, 400, chunk=16, only_when_idle=False) as pool:       # a thread shares the tables
        evs = [pk.encrypt_ints(ms[i:i + 50], zeros=pool) for i in range(0, 600, 50)]
        evs.append(pk.encrypt_ints(ms))
    assert pk.table.window == paillier.WIDE_WINDOW
    assert len(pk.table.rows) == -(-pk.randomizer_bits // paillier.WIDE_WINDOW)
    assert [int(v) for ev in evs[:-1] for v in sk.decrypt_int(ev)] == ms
    assert list(sk.decrypt_int(evs[-1])) == ms


def test_owner_zeros_with_djn_randomizers(serial_executor):
    pk, sk = paillier.keygen(1024, randomizer_bits="djn", allow_insecure=True)
    assert sk.owner_window == 8 and sk.owner_width == pk.randomizer_bits // 8
    ms = [0, -5, 7, int(pk.max_int)]
    assert list(sk.decrypt_int(sk.encrypt_ints(ms))) == ms
    with pytest.raises(CryptoError):
        sk.half_table("x")
