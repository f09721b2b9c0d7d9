"""Base OT (Chou-Orlandi over edwards25519), bit transposes and the KKRT OT extension."""

from __future__ import annotations

import os

import numpy as np
import pytest

from privfin.crypto import ot
from privfin.errors import ProtocolError
from privfin.transport.base import Kind
from privfin.transport.memory import MemoryNetwork, run_parties


def _base_ots(choices: np.ndarray) -> tuple[MemoryNetwork, dict]:
    net = MemoryNetwork(("s", "r"))
    fns = {"s": lambda ch: ot.base_ot_send(ch, "r", len(choices), b"job-ot"),
           "r": lambda ch: ot.base_ot_recv(ch, "s", choices, b"job-ot")}
    return net, run_parties(net, fns, job_id="job-ot", timeout=60)


def test_base_ot_receiver_gets_exactly_the_chosen_seed():
    choices = np.unpackbits(np.frombuffer(os.urandom(16), np.uint8)).astype(bool)  # 128 OTs
    net, out = _base_ots(choices)
    k0, k1 = out["s"]
    got = out["r"]
    assert got.shape == k0.shape == (128, ot.SEED_BYTES)
    want = np.where(choices[:, None], k1, k0)
    other = np.where(choices[:, None], k0, k1)
    assert np.array_equal(got, want)
    assert not (got == other).all(axis=1).any() and not (k0 == k1).all(axis=1).any()
    wire = b"".join(r.wire for r in net.transcript)
    for k in np.concatenate([k0, k1]):  # no seed travels, chosen or not
        assert k.tobytes() not in wire
    kinds = {(e.tag, e.kind) for p in ("s", "r") for e in net.ledgers[p]}
    assert kinds == {("ot/base/A", Kind.PLAINTEXT), ("ot/base/B", Kind.CIPHERTEXT)}


def test_base_ot_messages_are_fresh_each_run():
    """Same choice bits, two runs: every receiver point differs (fresh random scalars)."""
    choices = np.array([False, True] * 8)
    wires = []
    for _ in range(2):
        net, _ = _base_ots(choices)
        (msg,) = [r for r in net.transcript if r.envelope.tag == "ot/base/B"]
        wires.append(msg.wire)
    assert wires[0] != wires[1]


def test_base_ot_rejects_a_point_outside_the_group():
    net = MemoryNetwork(("s", "r"))

    def bad_sender(ch):
        ch.send("r", "ot/base/A", bytes(32), kind=Kind.PLAINTEXT)  # the neutral element: small order

    fns = {"s": bad_sender, "r": lambda ch: ot.base_ot_recv(ch, "s", np.zeros(4, bool), b"j")}
    with pytest.raises(ProtocolError, match="edwards25519"):
        run_parties(net, fns, job_id="j", timeout=30)


@pytest.mark.parametrize("shape", [(8, 1), (64, 8), (24, 64), (4096, 64), (512, 16)])
def test_transpose_bits_matches_unpackbits(shape):
    m = np.frombuffer(os.urandom(shape[0] * shape[1]), np.uint8).reshape(shape)
    ref = np.packbits(np.unpackbits(m, axis=1, bitorder="little").T, axis=1, bitorder="little")
    t = ot.transpose_bits(m)
    assert np.array_equal(t, ref)
    assert np.array_equal(ot.transpose_bits(t), m)
    with pytest.raises(ValueError):
        ot.transpose_bits(m[:-1])  # a row count that is not a multiple of 8


def test_code_words_are_distinct_per_tweak_and_deterministic():
    key = os.urandom(16)
    d = np.frombuffer(os.urandom(16 * 50), np.uint8).reshape(50, 16)
    c0, c1 = ot.code_words(key, d, np.zeros(50, int)), ot.code_words(key, d, np.ones(50, int))
    assert c0.shape == (50, ot.W_BYTES) and np.array_equal(c0, ot.code_words(key, d, np.zeros(50, int)))
    dist = np.unpackbits(c0 ^ c1, axis=1).sum(axis=1)
    assert dist.min() >= 128  # a random 512-bit code: distance ~ 256, < 128 has probability < 2^-92
    assert not np.array_equal(c0, ot.code_words(os.urandom(16), d, np.zeros(50, int)))


def test_kkrt_extension_over_real_base_ots():
    """Sender's encode(q_i, C(r_i)) == receiver's t_i; any other input gives an unrelated row."""
    s = np.unpackbits(np.frombuffer(os.urandom(ot.W // 8), np.uint8), bitorder="little").astype(bool)
    _, out = _base_ots(s)
    k0, k1 = out["s"]  # OPRF receiver = base-OT sender
    rx, tx = ot.OprfReceiver(k0, k1), ot.OprfSender(s, out["r"])
    key = os.urandom(16)
    for block in (64, 200 * 8):  # two blocks: the PRG streams continue across steps
        d = np.frombuffer(os.urandom(16 * block), np.uint8).reshape(block, 16)
        codes = ot.code_words(key, d, np.zeros(block, int))
        u, t = rx.step(codes)
        assert u.shape == (ot.W, block // 8)
        q = tx.step(u)
        assert np.array_equal(tx.encode(q, codes), t)
        other = tx.encode(q, ot.code_words(key, d, np.full(block, 2)))
        assert not (other == t).all(axis=1).any()
        # the difference is (C(x) xor C(r_i)) and s: it hides about 128 bits of s the receiver lacks
        assert np.unpackbits(other ^ t, axis=1).sum(axis=1).min() >= 64
        h_t = ot.hash_rows_chunk(ot.hash_input(np.arange(block), t), 12, b"d")
        h_o = ot.hash_rows_chunk(ot.hash_input(np.arange(block), other), 12, b"d")
        assert h_t.dtype == np.dtype("S12") and not (h_t == h_o).any()
        assert len(np.unique(h_t)) == block


def test_kkrt_sender_rejects_malformed_columns():
    s = np.zeros(ot.W, bool)
    tx = ot.OprfSender(s, np.zeros((ot.W, ot.SEED_BYTES), np.uint8))
    with pytest.raises(ProtocolError):
        tx.step(np.zeros((ot.W - 8, 4), np.uint8))
