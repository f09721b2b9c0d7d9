"""Beaver triples: two-party Paillier protocol (small keys) and dealer mode."""

from __future__ import annotations

import secrets

import gmpy2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from privfin.crypto import paillier
from privfin.crypto import sharing as S
from privfin.crypto import triples as T
from privfin.errors import CryptoError, ProtocolError
from privfin.transport.base import Kind
from privfin.transport.memory import MemoryNetwork, run_parties

ULP = 2.0 ** -S.DEFAULT_SS_FRAC_BITS
SETTINGS = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def key_pairs():
    return [paillier.keygen(1024, allow_insecure=True) for _ in range(2)]


def _keys(key_pairs, i):
    return T.TripleKeys(key_pairs[i][0], key_pairs[i][1], key_pairs[1 - i][0])


def _run(roles):
    net = MemoryNetwork(tuple(roles))
    return net, run_parties(net, roles, timeout=60)


def _both(key_pairs, fn):
    return _run({"p0": lambda ch: fn(ch, "p1", 0, _keys(key_pairs, 0)),
                 "p1": lambda ch: fn(ch, "p0", 1, _keys(key_pairs, 1))})


def _joined(res, attr):
    return getattr(res["p0"], attr) + getattr(res["p1"], attr)


@SETTINGS
@given(st.integers(1, 40), st.integers(1, 9), st.sampled_from([None, 1, 2]), st.sampled_from([T.CHUNK_ROWS, 7]))
def test_he_matmul_triple_is_correct(key_pairs, serial_executor, n, d, k, chunk):
    _, res = _both(key_pairs, lambda ch, peer, i, keys: T.matmul_triple_he(ch, peer, i, n, d, k, keys=keys,
                                                                           chunk_rows=chunk))
    a, b, c = _joined(res, "a"), _joined(res, "b"), _joined(res, "c")
    assert a.shape == (n, d) and b.shape == ((d,) if k is None else (d, k))
    assert np.array_equal(c, a @ b)


def test_he_matmul_triple_worst_case_values(key_pairs, serial_executor, monkeypatch):
    """All-ones shares (2^64 - 1) fill every slot to its bound: no carry into a neighbour."""
    monkeypatch.setattr(T, "random_ring", lambda shape: np.full(shape, 2**64 - 1, dtype=np.uint64))
    _, res = _both(key_pairs, lambda ch, peer, i, keys: T.matmul_triple_he(ch, peer, i, 13, 64, 2, keys=keys))
    a, b, c = _joined(res, "a"), _joined(res, "b"), _joined(res, "c")
    assert np.array_equal(c, a @ b)


def test_he_mul_triple_is_correct(key_pairs, serial_executor):
    _, res = _both(key_pairs, lambda ch, peer, i, keys: T.mul_triple_he(ch, peer, i, (3, 4), keys=keys))
    assert np.array_equal(_joined(res, "c"), _joined(res, "a") * _joined(res, "b"))


def test_beaver_with_he_triples_matches_numpy_and_hides_operands(serial_executor):
    rng = np.random.default_rng(11)
    X = rng.uniform(-4, 4, (25, 6)) + 0.1
    w = rng.uniform(-1, 1, 6) + 0.01
    u = rng.uniform(-3, 3, 5) + 0.2
    v = rng.uniform(-3, 3, 5) + 0.3

    def role(i, peer):
        def fn(ch):
            gen = T.HETripleGenerator(ch, peer, i, key_bits=1024, allow_insecure=True)
            sp = S.SSParty(ch, peer, i)
            xs = sp.input(X) if i == 0 else sp.input_from(X.shape)
            ws = sp.input_from(w.shape) if i == 0 else sp.input(w)
            us = sp.input(u) if i == 0 else sp.input_from(u.shape)
            vs = sp.input_from(v.shape) if i == 0 else sp.input(v)
            z = sp.matmul(xs, ws, gen.matmul(25, 6))
            y = sp.mul(us, vs, gen.mul(5))
            return sp.reveal(z), sp.reveal(y)
        return fn

    net, res = _run({"p0": role(0, "p1"), "p1": role(1, "p0")})
    for p in ("p0", "p1"):
        assert np.max(np.abs(res[p][0] - X @ w)) <= 6 * 10 * ULP
        assert np.max(np.abs(res[p][1] - u * v)) <= 10 * ULP
    wires = [r.wire for r in net.transcript]
    for arr in (X, w, u, v):
        for enc in (arr.astype(np.float64), S.encode(arr)):
            assert not any(enc.tobytes() in wr for wr in wires)
            assert not any(enc.ravel()[0].tobytes() in wr for wr in wires)
    kinds = {r.envelope.tag.split("/")[0] + "/" + r.envelope.tag.split("/")[-1]: r.envelope.kind for r in net.transcript}
    assert kinds["triple/key"] == Kind.PLAINTEXT
    assert kinds["triple/enc"] == kinds["triple/res"] == Kind.CIPHERTEXT
    assert all(r.envelope.kind == Kind.SHARE for r in net.transcript if r.envelope.tag.startswith("ss/"))


@pytest.mark.parametrize("kind,shape", [("matmul", (9, 4)), ("matmul", (9, 4, 3)), ("mul", (7,))])
def test_dealer_triples(kind, shape):
    _, res = _run({
        "dealer": lambda ch: T.dealer_triples(ch, ("p0", "p1"), kind, shape),
        "p0": lambda ch: T.recv_dealer_triple(ch, "dealer", 0, kind, shape),
        "p1": lambda ch: T.recv_dealer_triple(ch, "dealer", 1, kind, shape),
    })
    a, b, c = _joined(res, "a"), _joined(res, "b"), _joined(res, "c")
    assert np.array_equal(c, a * b if kind == "mul" else a @ b)


def test_beaver_with_dealer_triple_and_transcript():
    rng = np.random.default_rng(5)
    X, w = rng.uniform(-3, 3, (8, 5)) + 0.5, rng.uniform(-1, 1, 5) + 0.25
    x0, x1 = S.share(S.encode(X))
    w0, w1 = S.share(S.encode(w))

    def party(i, xs, ws):
        def fn(ch):
            t = T.recv_dealer_triple(ch, "dealer", i, "matmul", (8, 5))
            return S.beaver_matmul(ch, "p1" if i == 0 else "p0", i, xs, ws, t)
        return fn

    net, res = _run({"dealer": lambda ch: T.dealer_triples(ch, ("p0", "p1"), "matmul", (8, 5)),
                     "p0": party(0, x0, w0), "p1": party(1, x1, w1)})
    got = S.decode(res["p0"] + res["p1"])
    assert np.max(np.abs(got - X @ w)) <= 5 * 10 * ULP
    assert {r.envelope.kind for r in net.transcript} == {Kind.SHARE}
    for enc in (X, S.encode(X)):
        assert not any(np.ascontiguousarray(enc).tobytes() in r.wire for r in net.transcript)


@SETTINGS
@given(st.integers(1, 60), st.integers(1, 64))
def test_multiexp_matches_powers(d, bits):
    M = gmpy2.mpz(secrets.randbits(256)) | 1
    bases = [gmpy2.mpz(secrets.randbelow(int(M))) for _ in range(d)]
    exps = [secrets.randbits(bits) for _ in range(d)]
    want = gmpy2.mpz(1)
    for b, e in zip(bases, exps):
        want = want * gmpy2.powmod(b, e, M) % M
    assert T.multiexp(bases, T.multiexp_plan(exps), M) == want


def test_bad_keys_and_ciphertexts(key_pairs, serial_executor):
    # a 1024-bit peer key is refused unless insecure keys are allowed on purpose
    def small(ch, peer):
        return T.exchange_keys(ch, peer, key_bits=1024, allow_insecure=True)

    with pytest.raises(CryptoError):
        _run({"p0": lambda ch: T.exchange_keys(ch, "p1", key_bits=2048), "p1": lambda ch: small(ch, "p0")})

    def liar(ch):  # sends ciphertexts under a key fingerprint that is not ours
        ch.send("p0", "triple/mm/0/enc", {"key": "0" * 16, "ct": np.zeros((1, 256), dtype=np.uint8)},
                kind=Kind.CIPHERTEXT)
        ch.recv("p0", "triple/mm/0/enc")

    with pytest.raises(ProtocolError):
        _run({"p0": lambda ch: T.matmul_triple_he(ch, "p1", 0, 3, 2, keys=_keys(key_pairs, 0)), "p1": liar})


def test_layout_figures():
    """The documented packing: 11 slots at 2048 bits for d = 50 and sigma >= 40, widened to 184 bits."""
    class _Key:  # only the plaintext bound matters
        key_bits = 2048
        max_int = (1 << 2045) - 1

    lay = T._layout(_Key(), 50, T.SIGMA)
    assert lay.slots == 11 and lay.slot_bytes * 8 == 184 and lay.mask_bits == 183
    assert lay.mask_bits - 128 - 6 >= T.SIGMA and lay.slots * lay.slot_bytes * 8 <= 2044
    assert T._layout(_Key(), 1, T.SIGMA).mask_bits - 128 >= T.SIGMA
    _Key.max_int = (1 << 150) - 1
    with pytest.raises(CryptoError):
        T._layout(_Key(), 50, T.SIGMA)


@pytest.mark.grpc
def test_ss_bench_two_processes_over_grpc():
    """The main path end to end: two party processes, loopback gRPC with mutual TLS."""
    from privfin.bench.ss import run_ss_bench

    out = run_ss_bench(300, 7, key_bits=1024)
    assert out["max_abs_error"] < 7 * 10 * ULP
    assert out["offline_bytes"] > 0 and out["online_bytes"] > 300 * 7 * 8 * 2
    assert set(out["offline_steps"]["p0"]) >= {"keygen", "encrypt", "evaluate", "decrypt"}
