"""Cryptographic core: additively homomorphic encryption (Paillier, Okamoto–Uchiyama),
fixed-point encoding and plaintext packing.

>>> import numpy as np
>>> from privfin.crypto import paillier
>>> pk, sk = paillier.keygen(2048)
>>> ev = pk.encrypt(np.array([1.5, -2.25]))          # fixed point, 40 fractional bits
>>> sk.decrypt((ev + ev) * 2.0)                       # array([  6., -9.])

See :mod:`privfin.crypto.paillier` and :mod:`privfin.crypto.ou` for parameters and the
Security sections; :mod:`privfin.crypto.encoding` and :mod:`privfin.crypto.packing` for
encodings.
"""

from __future__ import annotations

from typing import Any

from privfin.crypto import ou, paillier
from privfin.crypto._he import EncryptedVector, HEPrivateKey, HEPublicKey, ZeroPool, check_peer_key, dict_from_bytes
from privfin.crypto.encoding import DEFAULT_FRAC_BITS, FixedPointEncoder
from privfin.crypto.packing import OffsetEncoder, Packer, SlotPowers
from privfin.errors import CryptoError, ProtocolError
from privfin.transport.base import Channel

SCHEMES = ("paillier", "ou")


def keygen(scheme: str = "paillier", n_bits: int = 2048, **kwargs: Any) -> tuple[HEPublicKey, HEPrivateKey]:
    """Key pair of ``scheme`` (``"paillier"`` or ``"ou"``) with an ``n_bits`` modulus."""
    if scheme == "paillier":
        return paillier.keygen(n_bits, **kwargs)
    if scheme == "ou":
        return ou.keygen(n_bits, **kwargs)
    raise CryptoError(f"unknown HE scheme {scheme!r} (known: {', '.join(SCHEMES)})")


def load_public_key(data: bytes | dict[str, Any]) -> HEPublicKey:
    """Public key from :meth:`HEPublicKey.to_bytes` or ``to_dict`` output, either scheme."""
    d = dict_from_bytes(data) if isinstance(data, (bytes, bytearray)) else dict(data)
    if d.get("scheme") == "paillier":
        return paillier.PaillierPublicKey.from_dict(d)
    if d.get("scheme") == "ou":
        return ou.OUPublicKey.from_dict(d)
    raise CryptoError(f"unknown HE scheme {d.get('scheme')!r} in key data")


def recv_key_setup(chan: Channel, active: str, tag: str, n_rows: int, allow_insecure: bool
                   ) -> tuple[dict[str, Any], HEPublicKey]:
    """Passive side of a label holder's set-up message ``{"key": ..., "n_rows": ..., ...}``
    (WOE, SecureBoost): its public key, checked to be >= 2048 bits unless ``allow_insecure``,
    and that both parties hold ``n_rows`` aligned rows (:class:`CryptoError` for a short key,
    as everywhere, :class:`ProtocolError` for misaligned rows)."""
    setup = chan.recv(active, tag, expect=dict)
    pk = load_public_key(bytes(setup["key"]))
    check_peer_key(pk, "the active party", allow_insecure)
    if int(setup["n_rows"]) != n_rows:
        raise ProtocolError(f"the active party has {setup['n_rows']} rows, this party {n_rows}: inputs not aligned")
    return setup, pk


def load_private_key(data: bytes | dict[str, Any]) -> HEPrivateKey:
    """Private key from :meth:`HEPrivateKey.to_bytes` or ``to_dict`` output, either scheme."""
    d = dict_from_bytes(data) if isinstance(data, (bytes, bytearray)) else dict(data)
    if d.get("scheme") == "paillier":
        return paillier.PaillierPrivateKey.from_dict(d)
    if d.get("scheme") == "ou":
        return ou.OUPrivateKey.from_dict(d)
    raise CryptoError(f"unknown HE scheme {d.get('scheme')!r} in key data")


__all__ = [
    "DEFAULT_FRAC_BITS",
    "SCHEMES",
    "EncryptedVector",
    "FixedPointEncoder",
    "HEPrivateKey",
    "HEPublicKey",
    "OffsetEncoder",
    "Packer",
    "SlotPowers",
    "ZeroPool",
    "keygen",
    "load_private_key",
    "load_public_key",
    "recv_key_setup",
    "ou",
    "paillier",
]
