"""The gRPC transport in one process: mutual TLS identity checks, chunking, resends, timeouts."""

from pathlib import Path

import numpy as np
import pytest

from privfin.errors import AuthError, PeerLostError, PeerTimeoutError
from privfin.runtime.launcher import free_ports
from privfin.transport import tls
from privfin.transport.base import Envelope, Kind, Message
from privfin.transport.grpc import GrpcNode
from privfin.transport import serde

pytestmark = pytest.mark.grpc


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    tls.init_ca(d)
    for name in ("a", "b", "mallory"):
        tls.issue(d, name)
    other = d / "other"
    tls.init_ca(other, name="some other CA")
    tls.issue(other, "a")  # right name, unknown CA
    return d


def _files(d: Path, name: str) -> tls.TLSFiles:
    return tls.TLSFiles(d / "ca.crt", d / f"{name}.crt", d / f"{name}.key")


@pytest.fixture
def pair(pki):
    pa, pb = free_ports(2)
    a = GrpcNode("a", f"127.0.0.1:{pa}", {"b": f"127.0.0.1:{pb}"}, _files(pki, "a"), chunk_size=1 << 16).start()
    b = GrpcNode("b", f"127.0.0.1:{pb}", {"a": f"127.0.0.1:{pa}"}, _files(pki, "b")).start()
    yield a, b
    a.stop()
    b.stop()


def test_large_array_streams_in_chunks_and_ledger_records(pair):
    a, b = pair
    ledger = []
    ca, cb = a.channel("j"), b.channel("j", ledger=ledger.append)
    x = np.random.default_rng(0).integers(0, 2**63, size=(300_000, 3), dtype=np.uint64)  # ~7 MB, >100 chunks
    with ca.stage("s1"):
        ca.send("b", "big", {"x": x, "n": 2**3000}, kind=Kind.CIPHERTEXT)
    got = cb.recv("a", "big")
    assert np.array_equal(got["x"], x) and got["n"] == 2**3000
    (e,) = ledger
    assert (e.step, e.tag, e.sender, e.kind) == ("s1", "big", "a", Kind.CIPHERTEXT) and e.nbytes > x.nbytes


def test_resent_message_applied_once(pair):
    a, b = pair
    header, bufs = serde.encode(np.arange(5))
    msg = Message(Envelope("j2", "a", "b", 1, "t", Kind.PLAINTEXT, ""), header, bufs)
    assert a.send(msg, timeout=10) is True
    assert a.send(msg, timeout=10) is False  # same job, sender, seq: a duplicate
    cb = b.channel("j2")
    assert list(cb.recv("a", "t")) == [0, 1, 2, 3, 4]
    with pytest.raises(PeerTimeoutError, match="'a'"):
        cb.recv("a", "t", timeout=0.5)


def test_unknown_ca_refused(pki):
    pa, pb = free_ports(2)
    b = GrpcNode("b", f"127.0.0.1:{pb}", {"a": f"127.0.0.1:{pa}"}, _files(pki, "b")).start()
    other = pki / "other"
    rogue = GrpcNode("a", f"127.0.0.1:{pa}", {"b": f"127.0.0.1:{pb}"},
                     tls.TLSFiles(other / "ca.crt", other / "a.crt", other / "a.key"), connect_grace=0.5)
    try:
        with pytest.raises(PeerLostError, match="'b'"):
            rogue.ping("b", timeout=3)
        assert not b.mailbox.seen("j", "a", 1)
    finally:
        b.stop()


def test_certificate_for_another_name_refused(pki):
    pa, pb = free_ports(2)
    b = GrpcNode("b", f"127.0.0.1:{pb}", {"a": f"127.0.0.1:{pa}"}, _files(pki, "b")).start()
    try:
        # mallory's certificate is valid (same CA) but names mallory, not a peer of b: refused by b
        mallory = GrpcNode("mallory", "", {"b": f"127.0.0.1:{pb}"}, _files(pki, "mallory"))
        with pytest.raises(AuthError, match="not a peer"):
            mallory.ping("b")
        mallory.stop()
        # a client expecting 'a' at b's address sees a certificate for 'b': refused by the client
        confused = GrpcNode("b", "", {"a": f"127.0.0.1:{pb}"}, _files(pki, "b"), connect_grace=0.5)
        with pytest.raises((PeerLostError, AuthError)):
            confused.ping("a", timeout=3)
        confused.stop()
    finally:
        b.stop()


def test_sender_cannot_impersonate_in_envelope(pair):
    a, b = pair
    header, bufs = serde.encode(1)
    forged = Message(Envelope("j3", "b", "b", 1, "t", Kind.PLAINTEXT, ""), header, bufs)  # a claims to be b
    with pytest.raises(AuthError, match="cannot send as"):
        a.send(forged, timeout=5)


def test_dead_peer_named_quickly(pki):
    pa, pb = free_ports(2)
    a = GrpcNode("a", f"127.0.0.1:{pa}", {"b": f"127.0.0.1:{pb}"}, _files(pki, "a"), connect_grace=0.2).start()
    try:
        ch = a.channel("j", timeout=30, probe_interval=0.2)
        with pytest.raises(PeerLostError, match="'b'"):
            ch.recv("b", "never")
        with pytest.raises(PeerLostError, match="'b'"):
            ch.send("b", "t", 1)
    finally:
        a.stop()
