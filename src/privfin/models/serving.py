"""Request/reply serving between parties, for federated prediction of any model.

The answering side runs :func:`serve`: it loops on requests from one peer, hands each
request's payload (a model-specific ``dict``) to a handler and sends back the handler's reply,
until the peer sends a close message. The asking side uses :class:`Client`: one request to
several peers at once (:meth:`Client.ask`), replies gathered by peer, matched by a request
id, a timeout per request that raises a privfin error (:class:`~privfin.errors.PeerTimeoutError`),
and :meth:`Client.close`, which ends every peer's :func:`serve` loop.

Messages, under a ``tag`` prefix (default ``"serve"``): ``TAG/req`` (asker -> server, kind
``PLAINTEXT`` unless the asker declares otherwise) ``{"rid", "op": "ask", "body"}`` or
``{"rid", "op": "close"}``; ``TAG/rep`` (server -> asker) ``{"rid", "ok": True, "body"}`` or
``{"rid", "ok": False, "error": <exception class name>}``. The reply's ledger kind is the one
the handler declares (:class:`Reply`), ``PLAINTEXT`` by default.

Security: this module only moves the model's payloads; what they reveal is stated by the
protocol that defines them (e.g. :mod:`privfin.models.hetero_lr`). A failing handler's error
message is not sent to the asker (it may name local paths or values), only its type.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Self

from privfin.errors import PrivfinError, ProtocolError, RemoteError
from privfin.transport.base import Channel, Kind

log = logging.getLogger(__name__)

DEFAULT_TAG = "serve"


@dataclass(frozen=True)
class Reply:
    """A handler's reply with the ledger kind of what it reveals to the asker."""

    body: dict[str, Any]
    kind: Kind = Kind.PLAINTEXT


Handler = Callable[[dict[str, Any]], "dict[str, Any] | Reply"]


def serve(chan: Channel, peer: str, handler: Handler, *, tag: str = DEFAULT_TAG,
          idle_timeout: float | None = None, max_requests: int | None = None) -> int:
    """Answer ``peer``'s requests with ``handler`` until it closes; returns the number answered.

    ``idle_timeout``: longest wait for the next request (default: the channel's timeout);
    a silent peer raises :class:`~privfin.errors.PeerTimeoutError`. A handler raising a
    :class:`~privfin.errors.PrivfinError` sends an error reply (its type only) and keeps
    serving; any other exception is a bug and ends the loop (the job aborts)."""
    answered = 0
    while max_requests is None or answered < max_requests:
        msg = chan.recv(peer, f"{tag}/req", timeout=idle_timeout, expect=dict)
        op, rid = msg.get("op"), msg.get("rid")
        if op == "close":
            break
        if op != "ask" or not isinstance(rid, int) or not isinstance(msg.get("body"), dict):
            raise ProtocolError(f"'{tag}/req' from '{peer}': expected {{rid: int, op: ask|close, body: dict}}")
        try:
            out = handler(msg["body"])
        except PrivfinError as exc:
            log.info("request %d from %s failed: %s", rid, peer, exc)
            chan.send(peer, f"{tag}/rep", {"rid": rid, "ok": False, "error": type(exc).__name__})
        else:
            rep = out if isinstance(out, Reply) else Reply(out)
            chan.send(peer, f"{tag}/rep", {"rid": rid, "ok": True, "body": rep.body}, kind=rep.kind)
        answered += 1
    return answered


class Client:
    """The asking side: sends requests to several serving peers and gathers their replies.

    >>> cli = Client(chan, ["provider"], timeout=5.0)
    >>> replies = cli.ask({"ids": ["42"]})      # {"provider": {...}}
    >>> cli.close()
    """

    def __init__(self, chan: Channel, peers: Iterable[str], *, tag: str = DEFAULT_TAG,
                 timeout: float | None = None) -> None:
        self.chan, self.peers, self.tag, self.timeout = chan, list(peers), tag, timeout
        if not self.peers:
            raise ProtocolError("a serving client needs at least one peer")
        self._rids = itertools.count(1)
        self._closed = False
        self.latencies: list[float] = []

    def ask(self, body: dict[str, Any] | dict[str, dict[str, Any]], *, per_peer: bool = False,
            kind: Kind = Kind.PLAINTEXT, timeout: float | None = None) -> dict[str, dict[str, Any]]:
        """One request to every peer (``body``, or with ``per_peer`` ``body[peer]`` each);
        returns the reply bodies by peer. Raises :class:`~privfin.errors.PeerTimeoutError` if
        a peer does not answer within ``timeout`` (default: the client's), :class:`~privfin.errors.RemoteError` if its
        handler failed."""
        if self._closed:
            raise ProtocolError("serving client already closed")
        rid = next(self._rids)
        t0 = time.perf_counter()
        for p in self.peers:
            b = body[p] if per_peer else body
            self.chan.send(p, f"{self.tag}/req", {"rid": rid, "op": "ask", "body": b}, kind=kind)
        out: dict[str, dict[str, Any]] = {}
        for p in self.peers:
            while True:  # drop late replies to earlier requests that timed out here
                rep = self.chan.recv(p, f"{self.tag}/rep", timeout=self.timeout if timeout is None else timeout,
                                     expect=dict)
                r = rep.get("rid")
                if not isinstance(r, int) or r > rid:
                    raise ProtocolError(f"'{self.tag}/rep' from '{p}': bad request id {r!r}")
                if r == rid:
                    break
            if not rep.get("ok"):
                raise RemoteError(p, f"request failed ({rep.get('error', 'error')})")
            if not isinstance(rep.get("body"), dict):
                raise ProtocolError(f"'{self.tag}/rep' from '{p}': body must be a dict")
            out[p] = rep["body"]
        self.latencies.append(time.perf_counter() - t0)
        return out

    def close(self) -> None:
        """End every peer's :func:`serve` loop (idempotent)."""
        if not self._closed:
            self._closed = True
            for p in self.peers:
                self.chan.send(p, f"{self.tag}/req", {"rid": 0, "op": "close"})

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:  # best effort: do not hide the original error
            try:
                self.close()
            except PrivfinError:
                pass


__all__ = ["DEFAULT_TAG", "Client", "Reply", "serve"]
