"""Hetero LR between party processes over loopback gRPC/TLS (the benchmark path), on
generated files in the default-credit layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from privfin.bench.lr import GUEST, HOST, run_lr_bench


def _write_files(d: Path, n: int = 900, seed: int = 3) -> None:
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(10_000, 10_000 + n))
    xa, xp = rng.normal(size=(n, 13)), rng.normal(size=(n, 10))
    y = (xa[:, 0] - xp[:, 1] + 0.5 * xp[:, 7] + rng.logistic(size=n) > 0).astype(int)
    g = pd.DataFrame(xa, columns=[f"x{i}" for i in range(13)])
    g.insert(0, "y", y)
    g.insert(0, "id", ids)
    g.to_csv(d / GUEST, index=False)
    order = rng.permutation(n)  # the provider's file lists the same ids in another order
    h = pd.DataFrame(xp[order], columns=[f"x{i}" for i in range(10)])
    h.insert(0, "id", ids[order])
    h.to_csv(d / HOST, index=False)


@pytest.mark.grpc
@pytest.mark.slow
@pytest.mark.parametrize("passives", [1, 2])
def test_lr_over_grpc_processes_matches_oracle(tmp_path: Path, passives: int) -> None:
    _write_files(tmp_path)
    res = run_lr_bench(tmp_path, passives=passives, key_bits=1024, epochs=2, batch_size=128, transport="grpc")
    assert res["max_abs_coef_diff"] < 1e-4
    assert res["auc_diff"] < 0.002
    assert res["auc"] > res["auc_bank_only"]
    assert res["bytes_sent"] > 0 and res["wall_s"] > 0 and 250 < res["n_holdout"] < 300
