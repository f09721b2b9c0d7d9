"""Generic request/reply serving: several peers, request ids, errors, timeouts, close."""

from __future__ import annotations

import time

import pytest

from privfin.errors import DataError, PeerTimeoutError, ProtocolError, RemoteError
from privfin.models.serving import Client, Reply, serve
from privfin.transport.base import Kind
from privfin.transport.memory import MemoryNetwork, run_parties


def _handler(name: str):
    def h(body: dict) -> dict | Reply:
        if body.get("x") == "bad":
            raise DataError("secret local detail /home/bank/x.csv")
        if body.get("sleep"):
            time.sleep(body["sleep"])
        return Reply({"who": name, "x2": 2 * body["x"]}, kind=Kind.AGGREGATE)
    return h


def test_ask_several_peers_then_close() -> None:
    net = MemoryNetwork(("bank", "p1", "p2"))

    def bank(c):
        with Client(c, ["p1", "p2"], timeout=10) as cli:
            a = cli.ask({"x": 3})
            b = cli.ask({"p1": {"x": 1}, "p2": {"x": 5}}, per_peer=True)
            with pytest.raises(RemoteError, match="DataError") as ei:
                cli.ask({"x": "bad"})
            assert "secret" not in str(ei.value)
            c_ = cli.ask({"x": 7})  # still serving after a handler error
        return a, b, c_, len(cli.latencies)

    out = run_parties(net, {"bank": bank, "p1": lambda c: serve(c, "bank", _handler("p1")),
                            "p2": lambda c: serve(c, "bank", _handler("p2"))})
    a, b, c_, nlat = out["bank"]
    assert a == {"p1": {"who": "p1", "x2": 6}, "p2": {"who": "p2", "x2": 6}}
    assert b["p1"]["x2"] == 2 and b["p2"]["x2"] == 10 and c_["p2"]["x2"] == 14
    assert out["p1"] == out["p2"] == 4 and nlat == 3
    # replies carry the kind the handler declared; error replies carry no message text
    reps = [r for r in net.messages(receiver="bank") if r.envelope.tag == "serve/rep"]
    assert {r.envelope.kind for r in reps} == {Kind.AGGREGATE, Kind.PLAINTEXT}
    assert not any(b"secret" in r.wire for r in net.transcript)


def test_timeout_raises_and_late_reply_is_skipped() -> None:
    net = MemoryNetwork(("bank", "p1"))

    def bank(c):
        cli = Client(c, ["p1"], timeout=0.3)
        with pytest.raises(PeerTimeoutError):
            cli.ask({"x": 1, "sleep": 1.0})
        got = cli.ask({"x": 4}, timeout=5)  # the late reply to request 1 is dropped, not returned here
        cli.close()
        cli.close()  # idempotent
        with pytest.raises(ProtocolError):
            cli.ask({"x": 1})
        return got

    out = run_parties(net, {"bank": bank, "p1": lambda c: serve(c, "bank", _handler("p1"))})
    assert out["bank"] == {"p1": {"who": "p1", "x2": 8}}


def test_server_idle_timeout_and_malformed_request() -> None:
    net = MemoryNetwork(("bank", "p1"))
    with pytest.raises(PeerTimeoutError):
        run_parties(net, {"bank": lambda c: None,
                          "p1": lambda c: serve(c, "bank", _handler("p1"), idle_timeout=0.2)}, timeout=5)
    net = MemoryNetwork(("bank", "p1"))
    with pytest.raises(ProtocolError, match="serve/req"):
        run_parties(net, {"bank": lambda c: c.send("p1", "serve/req", {"op": "ask", "rid": "x"}),
                          "p1": lambda c: serve(c, "bank", _handler("p1"))}, timeout=5)


def test_custom_tag_and_max_requests() -> None:
    net = MemoryNetwork(("bank", "p1"))

    def bank(c):
        cli = Client(c, ["p1"], tag="lr/predict", timeout=5)
        return [cli.ask({"x": i})["p1"]["x2"] for i in range(3)]

    out = run_parties(net, {"bank": bank,
                            "p1": lambda c: serve(c, "bank", _handler("p1"), tag="lr/predict", max_requests=3)})
    assert out == {"bank": [0, 2, 4], "p1": 3}
    assert {r.envelope.tag for r in net.transcript} == {"lr/predict/req", "lr/predict/rep"}
