import numpy as np
import pytest

from privfin.errors import PeerTimeoutError, ProtocolError, SerdeError, TransportError
from privfin.transport import Kind, MemoryNetwork, PeerAborted, run_parties
from privfin.transport.base import Envelope, Message
from privfin.transport import serde


def test_roundtrip_typed_payloads_and_ledger():
    net = MemoryNetwork(("a", "b"))
    payload = {"x": np.arange(10, dtype=np.int64), "big": 2**2048 + 1, "neg": -(2**100), "s": "é", "f": [1.5, None, True]}

    def a(ch):
        with ch.stage("demo"):
            ch.send("b", "t/x", payload, kind=Kind.AGGREGATE)
        return ch.recv("b", "t/y")

    def b(ch):
        got = ch.recv("a", "t/x", expect=dict)
        got["x"][0] = 99  # received arrays are writable and private to the receiver
        ch.send("a", "t/y", got["big"] - 1)
        return got

    res = run_parties(net, {"a": a, "b": b})
    assert res["a"] == 2**2048
    assert res["b"]["neg"] == -(2**100) and res["b"]["s"] == "é" and res["b"]["f"] == [1.5, None, True]
    assert payload["x"][0] == 0
    (entry,) = net.ledgers["b"]
    assert (entry.step, entry.tag, entry.sender, entry.kind) == ("demo", "t/x", "a", Kind.AGGREGATE)
    assert entry.nbytes > 80


def test_messages_with_same_tag_keep_order():
    net = MemoryNetwork(("a", "b"))
    res = run_parties(net, {"a": lambda ch: [ch.send("b", "n", i) for i in range(50)],
                            "b": lambda ch: [ch.recv("a", "n") for _ in range(50)]})
    assert res["b"] == list(range(50))


def test_duplicate_sequence_number_applied_once():
    net = MemoryNetwork(("a", "b"))
    ch_a, ch_b = net.channel("a"), net.channel("b")
    ch_a.send("b", "t", 1)
    env = Envelope("job", "a", "b", 1, "t", Kind.PLAINTEXT, "")
    header, bufs = serde.encode(1)
    assert net.mailboxes["b"].put(Message(env, header, bufs)) is False  # a resend of seq 1
    assert ch_b.recv("a", "t") == 1
    with pytest.raises(PeerTimeoutError, match="'a'"):
        ch_b.recv("a", "t", timeout=0.2)


def test_forbidden_payloads_refused():
    ch = MemoryNetwork(("a", "b")).channel("a")
    with pytest.raises(SerdeError):
        ch.send("b", "t", object())
    with pytest.raises(SerdeError):
        ch.send("b", "t", np.array([object()], dtype=object))
    with pytest.raises(TransportError, match="not a peer"):
        ch.send("c", "t", 1)


def test_expect_type_checked():
    net = MemoryNetwork(("a", "b"))
    net.channel("a").send("b", "t", [1, 2])
    with pytest.raises(ProtocolError, match="expected"):
        net.channel("b").recv("a", "t", expect=np.ndarray)


def test_failure_of_one_party_reaches_the_others():
    net = MemoryNetwork(("a", "b", "c"))

    def boom(ch):
        raise ValueError("disk full")

    def wait(ch):
        return ch.recv("a", "never")

    with pytest.raises(ValueError, match="disk full"):
        run_parties(net, {"a": boom, "b": wait, "c": wait}, timeout=5)


def test_abort_names_the_party():
    net = MemoryNetwork(("a", "b"))
    net.channel("a").abort("crashed")
    with pytest.raises(PeerAborted, match="'a'"):
        net.channel("b").recv("a", "t", timeout=5)


def test_transcript_holds_exact_wire_bytes():
    net = MemoryNetwork(("a", "b"))
    net.channel("a").send("b", "t", np.array([123456789], dtype=np.int64), kind=Kind.CIPHERTEXT)
    (rec,) = net.messages(receiver="b", kind=Kind.CIPHERTEXT)
    assert np.int64(123456789).tobytes() in rec.wire
