"""One exception tree for privfin.

Messages name parameters, files, keys and parties — never private values.
"""

from __future__ import annotations


class PrivfinError(Exception):
    """Base class of every error privfin raises on purpose."""


class ConfigError(PrivfinError):
    """Bad configuration: names the key and the file."""

    def __init__(self, message: str, *, key: str | None = None, file: str | None = None) -> None:
        where = ", ".join(p for p in (f"key '{key}'" if key else "", f"file '{file}'" if file else "") if p)
        super().__init__(f"{message} ({where})" if where else message)
        self.key = key
        self.file = file


class DataError(PrivfinError):
    """Bad input data (missing column, duplicate ids, wrong types)."""


class SerdeError(PrivfinError):
    """A payload that cannot be encoded or decoded safely."""


class TransportError(PrivfinError):
    """A message could not be delivered or received."""


class PeerLostError(TransportError):
    """A peer crashed, disconnected or did not answer in time."""

    def __init__(self, peer: str, detail: str) -> None:
        super().__init__(f"lost peer '{peer}': {detail}")
        self.peer = peer


class PeerTimeoutError(PeerLostError):
    """No message from a peer within the configured timeout."""


class RemoteError(PrivfinError):
    """A peer (or this party's own server) refused a control operation; ``detail`` says why."""

    def __init__(self, peer: str, detail: str) -> None:
        super().__init__(f"'{peer}' refused: {detail}")
        self.peer = peer
        self.detail = detail


class AuthError(TransportError):
    """A peer presented a certificate that does not match its claimed identity."""


class ProtocolError(PrivfinError):
    """A peer sent something the protocol does not allow (wrong tag, type or shape)."""


class JobError(PrivfinError):
    """A job failed; carries the failing step and party when known."""


class CryptoError(PrivfinError):
    """Misuse of a cryptographic primitive (wrong key, overflow, bad parameters)."""


class EncodingOverflowError(CryptoError):
    """A value does not fit the fixed-point range or a packing slot."""
