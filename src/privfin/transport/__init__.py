"""Channels between parties: the interface, an in-memory transport and gRPC over mutual TLS."""

from privfin.transport.base import Channel, Kind, LedgerEntry, Mailbox, PeerAborted
from privfin.transport.memory import MemoryChannel, MemoryNetwork, run_parties

__all__ = ["Channel", "Kind", "LedgerEntry", "Mailbox", "PeerAborted", "MemoryChannel", "MemoryNetwork", "run_parties"]
