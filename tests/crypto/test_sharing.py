"""Two-party additive sharing over Z_2^64: local ops, truncation, Beaver protocols, leak checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privfin.crypto import sharing as S
from privfin.errors import CryptoError, EncodingOverflowError, ProtocolError
from privfin.transport.base import Kind
from privfin.transport.memory import MemoryNetwork, run_parties

F = S.DEFAULT_SS_FRAC_BITS
ULP = 2.0 ** -F
u64s = st.integers(0, 2**64 - 1)
reals = st.floats(-1000, 1000, allow_nan=False, allow_infinity=False)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _arr(vals: list[int]) -> np.ndarray:
    return np.array(vals, dtype=np.uint64)


def _local_triple(shape_a, shape_b, kind):
    """Test oracle: a correct triple split in two (what a dealer would hand out)."""
    a, b = S.random_ring(shape_a), S.random_ring(shape_b)
    c = a * b if kind == "mul" else a @ b
    (a0, a1), (b0, b1), (c0, c1) = S.share(a), S.share(b), S.share(c)
    return S.BeaverTriple(a0, b0, c0, kind), S.BeaverTriple(a1, b1, c1, kind)


# --------------------------------------------------------------------------- local

@SETTINGS
@given(st.lists(u64s, min_size=0, max_size=30))
def test_shares_reconstruct(vals):
    x = _arr(vals)
    s0, s1 = S.share(x)
    assert s0.dtype == s1.dtype == np.uint64
    assert np.array_equal(S.reconstruct(s0, s1), x)


def test_shares_look_uniform():
    _, s1 = S.share(np.zeros(20000, dtype=np.uint64))
    # each share of zero is uniform: top bit set about half the time, no repeats
    assert 0.47 < float(np.mean(s1 >> np.uint64(63))) < 0.53
    assert len(np.unique(s1)) == s1.size


@SETTINGS
@given(st.lists(reals, min_size=1, max_size=20))
def test_encode_decode_roundtrip(vals):
    x = np.array(vals)
    assert np.max(np.abs(S.decode(S.encode(x)) - x)) <= ULP / 2 + 1e-12


def test_encode_overflow_and_bad_values():
    with pytest.raises(EncodingOverflowError):
        S.encode(np.array([2.0 ** (62 - F)]))
    with pytest.raises(EncodingOverflowError):
        S.encode(np.array([-(2 ** (62 - F))]))
    with pytest.raises(CryptoError):
        S.encode(np.array([np.nan]))
    with pytest.raises(CryptoError):
        S.add(np.zeros(2, dtype=np.int64), np.zeros(2, dtype=np.uint64))


@SETTINGS
@given(st.lists(st.tuples(reals, reals), min_size=1, max_size=20), reals, st.integers(-50, 50))
def test_add_and_public_ops(pairs, c, k):
    x, y = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    x0, x1 = S.share(S.encode(x))
    y0, y1 = S.share(S.encode(y))
    ex, ey = S.decode(S.encode(x)), S.decode(S.encode(y))
    assert np.allclose(S.decode(S.reconstruct(S.add(x0, y0), S.add(x1, y1))), ex + ey, atol=1e-9)
    assert np.allclose(S.decode(S.reconstruct(S.sub(x0, y0), S.sub(x1, y1))), ex - ey, atol=1e-9)
    assert np.allclose(S.decode(S.reconstruct(S.neg(x0), S.neg(x1))), -ex, atol=1e-9)
    got = S.decode(S.reconstruct(S.add_public(x0, c, 0), S.add_public(x1, c, 1)))
    assert np.allclose(got, ex + S.decode(S.encode(c)), atol=1e-9)
    got = S.decode(S.reconstruct(S.mul_public(x0, k, 0), S.mul_public(x1, k, 1)))  # integer: exact
    assert np.allclose(got, ex * k, atol=1e-9)
    got = S.decode(S.reconstruct(S.mul_public(x0, c, 0), S.mul_public(x1, c, 1)))  # real: truncated
    assert np.max(np.abs(got - ex * S.decode(S.encode(c)))) <= 2 * ULP


@SETTINGS
@given(st.lists(st.tuples(reals, reals), min_size=1, max_size=30))
def test_truncated_product_within_tolerance(pairs):
    x, y = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    prod = S.encode(x) * S.encode(y)          # 2F fractional bits
    p0, p1 = S.share(prod)
    got = S.decode(S.reconstruct(S.truncate(p0, F, 0), S.truncate(p1, F, 1)))
    exact = S.decode(S.encode(x)) * S.decode(S.encode(y))
    assert np.max(np.abs(got - exact)) <= 1.01 * ULP  # floor plus at most one unit


def test_truncation_failure_bound():
    assert S.truncation_failure_bound(42) == 2.0 ** -21


# --------------------------------------------------------------------------- protocols

def _run(fn0, fn1):
    net = MemoryNetwork(("p0", "p1"))
    res = run_parties(net, {"p0": fn0, "p1": fn1}, timeout=30)
    return net, res


def _x_bytes_absent(net: MemoryNetwork, *arrays: np.ndarray) -> None:
    """No message carries the float64 or fixed-point encodings of the operands."""
    wires = [r.wire for r in net.transcript]
    for arr in arrays:
        for enc in (np.asarray(arr, dtype=np.float64), S.encode(arr)):
            flat = np.ascontiguousarray(enc).ravel()
            for w in wires:
                assert flat.tobytes() not in w
                for v in flat[:8]:
                    if abs(float(v)) > 0:  # zero bytes can appear anywhere
                        assert v.tobytes() not in w


@SETTINGS
@given(st.integers(1, 4), st.integers(1, 4), st.data())
def test_beaver_mul_equals_numpy(m, n, data):
    x = np.array(data.draw(st.lists(st.floats(-30, 30), min_size=m * n, max_size=m * n))).reshape(m, n)
    y = np.array(data.draw(st.lists(st.floats(-30, 30), min_size=m * n, max_size=m * n))).reshape(m, n)
    t0, t1 = _local_triple((m, n), (m, n), "mul")
    x0, x1 = S.share(S.encode(x))
    y0, y1 = S.share(S.encode(y))
    _, res = _run(lambda ch: S.beaver_mul(ch, "p1", 0, x0, y0, t0), lambda ch: S.beaver_mul(ch, "p0", 1, x1, y1, t1))
    got = S.decode(S.reconstruct(res["p0"], res["p1"]))
    assert np.max(np.abs(got - x * y)) <= 64 * ULP


@SETTINGS
@given(st.integers(1, 12), st.integers(1, 6), st.sampled_from([None, 1, 3]), st.data())
def test_beaver_matmul_equals_numpy(n, d, k, data):
    bshape = (d,) if k is None else (d, k)
    x = np.array(data.draw(st.lists(st.floats(-20, 20), min_size=n * d, max_size=n * d))).reshape(n, d)
    y = np.array(data.draw(st.lists(st.floats(-20, 20), min_size=d * (k or 1), max_size=d * (k or 1)))).reshape(bshape)
    t0, t1 = _local_triple((n, d), bshape, "matmul")
    x0, x1 = S.share(S.encode(x))
    y0, y1 = S.share(S.encode(y))
    _, res = _run(lambda ch: S.beaver_matmul(ch, "p1", 0, x0, y0, t0),
                  lambda ch: S.beaver_matmul(ch, "p0", 1, x1, y1, t1))
    got = S.decode(S.reconstruct(res["p0"], res["p1"]))
    assert got.shape == (x @ y).shape
    # rounding of each operand (ULP/2 * (|x|+|y|) per term) plus one truncation unit
    assert np.max(np.abs(got - x @ y)) <= d * 25 * ULP + 2 * ULP


def test_object_api_and_transcript_has_no_operands():
    rng = np.random.default_rng(3)
    X = rng.uniform(-5, 5, (6, 4)) + 0.123
    w = rng.uniform(-2, 2, 4) + 0.0456
    t0, t1 = _local_triple((6, 4), (4,), "matmul")

    def bank(ch):
        sp = S.SSParty(ch, "p1", 0)
        xs = sp.input(X)
        ws = sp.input_from((4,))
        return sp.reveal(sp.matmul(xs, ws, t0), to="self")

    def gov(ch):
        sp = S.SSParty(ch, "p0", 1)
        xs = sp.input_from((6, 4))
        ws = sp.input(w)
        return sp.reveal(sp.matmul(xs, ws, t1), to="peer")

    net, res = _run(bank, gov)
    assert res["p1"] is None
    assert np.max(np.abs(res["p0"] - X @ w)) <= 4 * 25 * ULP
    _x_bytes_absent(net, X, w)
    # every message of these protocols is a share
    assert {r.envelope.kind for r in net.transcript} == {Kind.SHARE}
    assert {e.kind for e in net.ledgers["p1"]} == {Kind.SHARE}


def test_bad_inputs():
    t0, _ = _local_triple((3, 2), (2,), "matmul")
    chan = MemoryNetwork(("p0", "p1")).channel("p0")
    with pytest.raises(CryptoError):
        S.beaver_matmul(chan, "p1", 0, S.random_ring((3, 3)), S.random_ring(2), t0)
    with pytest.raises(CryptoError):
        S.beaver_matmul(chan, "p1", 2, S.random_ring((3, 2)), S.random_ring(2), t0)
    with pytest.raises(CryptoError):
        S.truncate(S.random_ring(2), F, 5)

    def liar(ch):  # sends float shares instead of uint64
        ch.send("p0", "ss/matmul", [np.zeros((3, 2)), np.zeros(2)], kind=Kind.SHARE)
        ch.recv("p0", "ss/matmul")

    with pytest.raises(ProtocolError):
        _run(lambda ch: S.beaver_matmul(ch, "p1", 0, S.random_ring((3, 2)), S.random_ring(2), t0), liar)


def test_prg_streams_of_distinct_labels_do_not_overlap() -> None:
    """Regression: the label once was the start counter, so label 2 replayed label 1 shifted by one block."""
    from privfin.crypto.sharing import prg_ring

    seed = bytes(range(32))
    a, b = prg_ring(seed, 1, 64), prg_ring(seed, 2, 64)
    assert not set(a.tolist()) & set(b.tolist())
    assert np.array_equal(prg_ring(seed, 1, 64), a)
    with pytest.raises(CryptoError):
        prg_ring(seed, 1 << 64, 4)
