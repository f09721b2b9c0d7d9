"""Curve primitives: commutativity, unblinding, hash to curve, domain separation."""

from __future__ import annotations

import hashlib

import gmpy2
import numpy as np
import pytest

from privfin.errors import ProtocolError
from privfin.psi import ecdh

IDS = np.array([b"110105194912310021", b"91350100M000100Y43", b"x", b"y" * 60])


def _on_curve(u: bytes) -> bool:
    x = int.from_bytes(u, "little")
    return x < ecdh.P and gmpy2.jacobi((x**3 + 486662 * x * x + x) % ecdh.P, ecdh.P) == 1


def test_hash_to_curve_lands_on_the_curve_not_the_twist():
    dst = ecdh.domain("job", "t")
    u = ecdh.hash_to_u_chunk(np.array([str(i).encode() for i in range(300)]), dst)
    assert all(_on_curve(row.tobytes()) for row in u)
    assert len({row.tobytes() for row in u}) == 300
    assert ecdh.hash_to_u(b"7", dst) == u[7].tobytes()


def test_domain_separation_by_job_and_context():
    a = ecdh.hash_to_u(b"id", ecdh.domain("job-1", "two-party"))
    assert a != ecdh.hash_to_u(b"id", ecdh.domain("job-2", "two-party"))
    assert a != ecdh.hash_to_u(b"id", ecdh.domain("job-1", "multi-party"))
    # length-prefixed fields: moving a character between job and context changes the domain
    assert ecdh.domain("ab", "c") != ecdh.domain("a", "bc")


def test_blinding_commutes_and_unblinding_inverts():
    dst = ecdh.domain("job", "t")
    a, b = ecdh.new_scalar(), ecdh.new_scalar()
    u = ecdh.hash_to_u_chunk(IDS, dst)
    xa = ecdh.hash_and_blind_chunk(IDS, a, dst)
    assert np.array_equal(xa, ecdh.blind_chunk(u, a))
    assert np.array_equal(ecdh.blind_chunk(xa, b), ecdh.blind_chunk(ecdh.blind_chunk(u, b), a))
    c, d = ecdh.new_invertible_scalar()
    assert ecdh.clamp(d) == int.from_bytes(d, "little")  # d is already a clamped scalar
    assert (ecdh.clamp(c) * int.from_bytes(d, "little")) % ecdh.L == 1
    back = ecdh.blind_chunk(ecdh.blind_chunk(ecdh.blind_chunk(u, c), b), d)
    assert np.array_equal(back, ecdh.blind_chunk(u, b))
    tags = ecdh.blind_and_tag_chunk(xa, b, dst)
    assert tags.dtype == np.dtype("S16") and len(set(tags.tolist())) == len(IDS)


def test_libsodium_and_openssl_agree():
    u = ecdh.hash_to_u(b"abc", ecdh.domain("j", "c"))
    k = ecdh.new_scalar()
    assert ecdh._x25519_openssl(k, u) == ecdh.x25519(k, u)


def test_scalars_are_fresh_and_clamped():
    ks = {ecdh.new_scalar() for _ in range(20)}
    assert len(ks) == 20
    for k in ks:
        v = int.from_bytes(k, "little")
        assert v % 8 == 0 and v >> 254 == 1


def test_small_order_point_is_a_protocol_error():
    zero = np.zeros((1, 32), np.uint8)
    with pytest.raises(ProtocolError):
        ecdh.blind_chunk(zero, ecdh.new_scalar())
    with pytest.raises(ProtocolError):
        ecdh.blind_chunk(np.zeros((2, 16), np.uint8), ecdh.new_scalar())


def test_hash_is_keyed_by_domain_not_plain_sha256():
    u = ecdh.hash_to_u(b"abc", ecdh.domain("j", "c"))
    assert u != hashlib.sha256(b"abc").digest()


def test_batch_hash_to_curve_equals_scalar_on_random_ids():
    """The inline batch loop (counter 0) and its fallback (counter >= 2) equal :func:`hash_to_u`."""
    rng = np.random.default_rng(3)
    ids = [bytes(rng.integers(33, 127, size=int(rng.integers(1, 40)), dtype=np.uint8)) for _ in range(1500)]
    dst = ecdh.domain("job-batch", "two-party")
    u = ecdh.hash_to_u_chunk(np.array(ids), dst)
    assert u.shape == (1500, 32)
    assert [row.tobytes() for row in u] == [ecdh.hash_to_u(i, dst) for i in ids]
    assert all(_on_curve(row.tobytes()) for row in u)
    assert (u[:, 31] < 0x80).all()
    # about 1/4 of ids need counter 2 or more: the fallback path was exercised
    base = ecdh._h2c_base(dst)
    late = sum(ecdh._hash_to_u(base, i, start=2) == ecdh.hash_to_u(i, dst) for i in ids[:200])
    assert 20 <= late <= 90
    assert ecdh.hash_to_u_chunk([], dst).shape == (0, 32)


def test_batch_backends_agree_and_reject_small_order():
    dst = ecdh.domain("job", "backends")
    u = ecdh.hash_to_u_chunk([str(i).encode() for i in range(64)], dst)
    k = ecdh.new_scalar()
    a, b = ecdh._blind_openssl(u, k), ecdh._blind_raw(u, k)
    assert np.array_equal(a, b) and a.flags.writeable
    # a peer's bytes: top bit set and a non-canonical u >= p are read alike (RFC 7748 5)
    odd = np.frombuffer(np.random.default_rng(1).bytes(32 * 40), np.uint8).reshape(-1, 32).copy()
    odd[:20, 31] |= 0x80
    odd[20] = np.frombuffer((ecdh.P + 5).to_bytes(32, "little"), np.uint8)
    assert np.array_equal(ecdh._blind_openssl(odd, k), ecdh._blind_raw(odd, k))
    assert ecdh.BACKEND in ecdh.BACKENDS
    bad = u.copy()
    bad[5] = 0  # u = 0: small order
    for fn in (ecdh._blind_openssl, ecdh._blind_raw):
        with pytest.raises(ProtocolError):
            fn(bad, k)


def test_tags_match_one_blake2b_per_point():
    dst = ecdh.domain("job", "tags")
    pts = ecdh.hash_to_u_chunk([b"a", b"b", b"c"], dst)
    want = [hashlib.blake2b(dst + p.tobytes(), digest_size=16, person=b"privfin-tag-v1").digest() for p in pts]
    assert ecdh.tags_of(pts, dst).tolist() == want
    assert ecdh.tags_of(pts[:0], dst).shape == (0,)
