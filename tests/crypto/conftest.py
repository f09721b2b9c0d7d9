"""Small keys (1024-bit, insecure on purpose) shared by the crypto unit tests."""

from __future__ import annotations

import pytest

from privfin.crypto import ou, paillier

SCHEMES = ("paillier", "ou")


@pytest.fixture(scope="session")
def he_keys():
    """``{scheme: (public_key, private_key)}`` with 1024-bit moduli."""
    return {
        "paillier": paillier.keygen(1024, allow_insecure=True),
        "ou": ou.keygen(1024, allow_insecure=True),
    }


@pytest.fixture(params=SCHEMES)
def keys(request, he_keys, serial_executor):
    """One scheme's key pair, with the in-process executor."""
    return he_keys[request.param]
