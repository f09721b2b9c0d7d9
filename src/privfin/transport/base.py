"""The Channel interface every protocol talks through.

A channel belongs to one party in one job. ``send`` encodes a payload (see
:mod:`privfin.transport.serde`) and delivers it to a peer under a tag; ``recv`` waits for
the next message with that tag from that peer. Every message carries the job id and a
per-(sender, receiver) sequence number: a message delivered twice (e.g. resent after a
lost acknowledgement) is applied once. Every received message is recorded in the
party's disclosure ledger with the step, tag, sender, size and the kind the protocol
declared for it.

Protocol code only ever sees this interface; it never imports a transport.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from privfin.errors import PeerLostError, PeerTimeoutError, ProtocolError, TransportError
from privfin.transport import serde


class Kind(StrEnum):
    """What a message reveals to its receiver, as declared by the protocol."""

    CIPHERTEXT = "ciphertext"  # encrypted under a key the receiver does not hold
    SHARE = "share"  # a uniformly random additive share
    AGGREGATE = "aggregate"  # a documented aggregate (counts per bin, sizes, metrics)
    PLAINTEXT = "plaintext"  # anything else: control data, public parameters, results


@dataclass(frozen=True)
class Envelope:
    """Routing data of one message (never the payload)."""

    job_id: str
    sender: str
    receiver: str
    seq: int
    tag: str
    kind: Kind
    step: str

    def to_wire(self) -> dict[str, Any]:
        return {"job": self.job_id, "from": self.sender, "to": self.receiver, "seq": self.seq,
                "tag": self.tag, "kind": str(self.kind), "step": self.step}

    @classmethod
    def from_wire(cls, d: dict[str, Any]) -> Envelope:
        try:
            return cls(str(d["job"]), str(d["from"]), str(d["to"]), int(d["seq"]), str(d["tag"]),
                       Kind(d["kind"]), str(d["step"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise ProtocolError(f"malformed message envelope: {exc}") from exc


@dataclass(frozen=True)
class LedgerEntry:
    """One received message, as the disclosure ledger records it."""

    job_id: str
    step: str
    tag: str
    sender: str
    nbytes: int
    kind: Kind
    received_at: float = field(default_factory=time.time)


@dataclass
class Message:
    envelope: Envelope
    header: bytes
    buffers: list[Any]

    @property
    def nbytes(self) -> int:
        return serde.payload_nbytes(self.header, self.buffers)


class Mailbox:
    """Thread-safe inbox of one party: messages by (job, sender, tag), deduplicated by seq."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queues: dict[tuple[str, str, str], collections.deque[Message]] = collections.defaultdict(collections.deque)
        self._seen: dict[tuple[str, str], set[int]] = collections.defaultdict(set)
        self._failed: dict[str, BaseException] = {}

    def seen(self, job_id: str, sender: str, seq: int) -> bool:
        with self._cond:
            return seq in self._seen[(job_id, sender)]

    def put(self, msg: Message) -> bool:
        """Deposit a message; returns False (and drops it) if it was already delivered."""
        env = msg.envelope
        with self._cond:
            seen = self._seen[(env.job_id, env.sender)]
            if env.seq in seen:
                return False
            seen.add(env.seq)
            self._queues[(env.job_id, env.sender, env.tag)].append(msg)
            self._cond.notify_all()
            return True

    def fail(self, job_id: str, error: BaseException) -> None:
        """Wake every receiver of ``job_id`` with ``error`` (e.g. a peer aborted the job)."""
        with self._cond:
            self._failed.setdefault(job_id, error)
            self._cond.notify_all()

    def get(self, job_id: str, sender: str, tag: str, timeout: float, poll: float,
            on_idle: Callable[[], None]) -> Message:
        """Next message from ``sender`` under ``tag``; calls ``on_idle`` every ``poll`` seconds."""
        deadline = time.monotonic() + timeout
        key = (job_id, sender, tag)
        with self._cond:
            while True:
                if job_id in self._failed:
                    raise self._failed[job_id]
                q = self._queues.get(key)
                if q:
                    msg = q.popleft()
                    if not q:
                        del self._queues[key]
                    return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PeerTimeoutError(sender, f"no '{tag}' message within {timeout:g} s")
                if not self._cond.wait(min(left, poll)):
                    self._cond.release()
                    try:
                        on_idle()
                    finally:
                        self._cond.acquire()

    def drop_job(self, job_id: str) -> None:
        """Forget everything about a finished job."""
        with self._cond:
            for key in [k for k in self._queues if k[0] == job_id]:
                del self._queues[key]
            for key in [k for k in self._seen if k[0] == job_id]:
                del self._seen[key]
            self._failed.pop(job_id, None)


class Channel(ABC):
    """One party's view of the links to its peers within one job.

    Subclasses implement ``_deliver`` (hand an encoded message to a peer) and may
    override ``_probe`` (raise :class:`PeerLostError` if a peer is known to be gone).
    """

    def __init__(self, party: str, peers: Iterable[str], job_id: str, mailbox: Mailbox, *,
                 timeout: float = 600.0, probe_interval: float = 2.0,
                 ledger: Callable[[LedgerEntry], None] | None = None) -> None:
        self.party = party
        self.peers: tuple[str, ...] = tuple(p for p in peers if p != party)
        self.job_id = job_id
        self.timeout = timeout
        self.probe_interval = probe_interval
        self.step = ""
        self._mailbox = mailbox
        self._ledger = ledger
        self._seq: dict[str, int] = collections.defaultdict(int)
        self._seq_lock = threading.Lock()
        self.bytes_sent = 0
        self.bytes_received = 0

    # -- protocol-facing API -------------------------------------------------------
    @contextlib.contextmanager
    def stage(self, step: str) -> Iterator[Channel]:
        """Attribute the messages exchanged inside the block to ``step`` in the ledger."""
        old, self.step = self.step, step
        try:
            yield self
        finally:
            self.step = old

    def send(self, to: str, tag: str, payload: serde.Payload, *, kind: Kind = Kind.PLAINTEXT) -> None:
        """Send ``payload`` to peer ``to`` under ``tag``; ``kind`` declares what it reveals."""
        self._check_peer(to)
        with self._seq_lock:
            self._seq[to] += 1
            seq = self._seq[to]
        header, buffers = serde.encode(payload)
        env = Envelope(self.job_id, self.party, to, seq, tag, Kind(kind), self.step)
        msg = Message(env, header, buffers)
        self._deliver(msg)
        self.bytes_sent += msg.nbytes

    def recv(self, frm: str, tag: str, *, timeout: float | None = None, expect: type | tuple[type, ...] | None = None) -> Any:
        """Wait for the next ``tag`` message from ``frm`` and return its payload."""
        self._check_peer(frm)
        msg = self._mailbox.get(self.job_id, frm, tag, self.timeout if timeout is None else timeout,
                                self.probe_interval, lambda: self._probe(frm))
        self.bytes_received += msg.nbytes
        if self._ledger is not None:
            env = msg.envelope
            self._ledger(LedgerEntry(env.job_id, env.step, env.tag, env.sender, msg.nbytes, env.kind))
        payload = serde.decode(msg.header, msg.buffers)
        if expect is not None and not isinstance(payload, expect):
            raise ProtocolError(f"'{tag}' from '{frm}': expected {expect}, got {type(payload).__name__}")
        return payload

    def broadcast(self, tag: str, payload: serde.Payload, *, kind: Kind = Kind.PLAINTEXT,
                  to: Iterable[str] | None = None) -> None:
        """Send the same payload to several peers (all by default)."""
        for peer in (self.peers if to is None else to):
            self.send(peer, tag, payload, kind=kind)

    def gather(self, tag: str, frm: Iterable[str] | None = None, **kw: Any) -> dict[str, Any]:
        """Receive ``tag`` from several peers (all by default), keyed by sender."""
        return {peer: self.recv(peer, tag, **kw) for peer in (self.peers if frm is None else frm)}

    def abort(self, reason: str) -> None:
        """Tell every peer this job failed here (best effort, never raises)."""
        for peer in self.peers:
            with contextlib.suppress(Exception):
                self._abort_peer(peer, reason)

    def close(self) -> None:
        """Release what this job's channel holds."""
        self._mailbox.drop_job(self.job_id)

    # -- transport hooks ---------------------------------------------------------------
    def _check_peer(self, peer: str) -> None:
        if peer not in self.peers:
            raise TransportError(f"'{peer}' is not a peer of '{self.party}' in job {self.job_id}")

    @abstractmethod
    def _deliver(self, msg: Message) -> None: ...

    def _probe(self, peer: str) -> None:
        """Raise :class:`PeerLostError` if ``peer`` is known to be unreachable."""

    def _abort_peer(self, peer: str, reason: str) -> None:
        """Deliver an abort notice to ``peer``."""


class PeerAborted(PeerLostError):
    """A peer reported that the job failed on its side."""

    def __init__(self, peer: str, reason: str) -> None:
        TransportError.__init__(self, f"peer '{peer}' aborted the job: {reason}")
        self.peer = peer
