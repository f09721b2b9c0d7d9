"""In-memory transport for unit tests: parties are threads, messages are still serialized.

Every payload is encoded, its buffers copied, then decoded at the receiver, so aliasing
between parties cannot hide a leak, and every message is kept in a transcript that leak
tests search.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from privfin.transport.base import Channel, Envelope, Kind, LedgerEntry, Mailbox, Message, PeerAborted


@dataclass
class TranscriptRecord:
    envelope: Envelope
    wire: bytes  # header followed by all buffers, exactly the bytes that crossed


@dataclass
class MemoryNetwork:
    """A set of parties sharing one process; build channels with :meth:`channel`."""

    parties: tuple[str, ...]
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    transcript: list[TranscriptRecord] = field(default_factory=list)
    ledgers: dict[str, list[LedgerEntry]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.parties = tuple(self.parties)
        for p in self.parties:
            self.mailboxes[p] = Mailbox()
            self.ledgers[p] = []

    def channel(self, party: str, job_id: str = "job", **kw: Any) -> MemoryChannel:
        return MemoryChannel(self, party, job_id, **kw)

    def messages(self, receiver: str | None = None, kind: Kind | None = None) -> list[TranscriptRecord]:
        return [r for r in self.transcript
                if (receiver is None or r.envelope.receiver == receiver) and (kind is None or r.envelope.kind == kind)]


class MemoryChannel(Channel):
    def __init__(self, net: MemoryNetwork, party: str, job_id: str, **kw: Any) -> None:
        ledger = net.ledgers[party].append
        super().__init__(party, net.parties, job_id, net.mailboxes[party], ledger=ledger, **kw)
        self._net = net

    def _deliver(self, msg: Message) -> None:
        copies = [bytearray(b) for b in msg.buffers]
        with self._net._lock:
            self._net.transcript.append(TranscriptRecord(msg.envelope, msg.header + b"".join(bytes(c) for c in copies)))
        self._net.mailboxes[msg.envelope.receiver].put(Message(msg.envelope, bytes(msg.header), copies))

    def _abort_peer(self, peer: str, reason: str) -> None:
        self._net.mailboxes[peer].fail(self.job_id, PeerAborted(self.party, reason))


def run_parties(net: MemoryNetwork, roles: dict[str, Callable[[MemoryChannel], Any]],
                job_id: str = "job", timeout: float = 60.0, **kw: Any) -> dict[str, Any]:
    """Run one function per party in threads; return results by party, re-raising the first error."""
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}

    def target(name: str, fn: Callable[[MemoryChannel], Any]) -> None:
        chan = net.channel(name, job_id, timeout=timeout, **kw)
        try:
            results[name] = fn(chan)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller below
            errors[name] = exc
            chan.abort(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=target, args=(n, f), daemon=True) for n, f in roles.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    if errors:
        # prefer the root cause over the "peer aborted" echoes it produced
        root = [e for e in errors.values() if not isinstance(e, PeerAborted)]
        raise (root or list(errors.values()))[0]
    return results


__all__ = ["MemoryNetwork", "MemoryChannel", "TranscriptRecord", "run_parties"]
