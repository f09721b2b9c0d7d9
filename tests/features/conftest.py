"""Small keys and data helpers for the feature-engineering tests."""

from __future__ import annotations

import pandas as pd
import pytest

from privfin.features.federated import WoeParams


@pytest.fixture
def small_params() -> WoeParams:
    """1024-bit OU keys (insecure on purpose: unit tests only), small chunks to exercise streaming."""
    return WoeParams(key_bits=1024, allow_insecure=True, chunk_rows=700)


@pytest.fixture
def fate_joined(fate_dir):
    """Default-credit guest and host joined on id in this test: (guest, host) with equal row order."""
    g = pd.read_csv(fate_dir / "default_credit_hetero_guest.csv")
    h = pd.read_csv(fate_dir / "default_credit_hetero_host.csv")
    g = g.rename(columns={c: f"g_{c}" for c in g.columns if c.startswith("x")})
    h = h.rename(columns={c: f"h_{c}" for c in h.columns if c.startswith("x")})
    j = g.sample(frac=1.0, random_state=0).merge(h, on="id", how="inner")
    assert len(j) == len(g) == len(h)
    guest = j[["id", "y"] + [f"g_x{i}" for i in range(13)]]
    host = j[["id"] + [f"h_x{i}" for i in range(10)]]
    return guest, host


@pytest.fixture(scope="session")
def synth_pair() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Generated bank and government tables, 4000 common ids, each sorted by id (aligned)."""
    from privfin.scenarios import synth

    d = synth.generate(4000, seed=3, overlap=1.0)
    bank = d.bank.sort_values("id").reset_index(drop=True)
    gov = d.gov.sort_values("id").reset_index(drop=True)
    assert (bank["id"].to_numpy() == gov["id"].to_numpy()).all()
    return bank, gov
