"""``privfin bench boost`` end to end: party processes over loopback gRPC/TLS (small keys and data)."""

from __future__ import annotations

import pytest

from privfin.bench.boost import run_boost_bench

pytestmark = pytest.mark.grpc


def test_bench_boost_two_passives_real_data(fate_dir):
    r = run_boost_bench(fate_dir, passives=2, n_trees=2, rows=900, key_bits=1024)
    assert set(r["cpu_s_by_party"]) == {"bank", "provider1", "provider2"}
    assert r["features"] == {"bank": 13, "provider1": 5, "provider2": 5}
    assert r["n_train"] + r["n_holdout"] == 900 and 200 < r["n_holdout"] < 340
    assert r["max_abs_margin_diff_vs_assembled"] < 1e-9  # federated prediction = assembled model
    assert r["auc_diff"] < 0.005 and r["auc"] > 0.6
    assert r["wall_s"] > 0 and r["bytes_sent"] > 900 * 128  # at least one ciphertext per training row
    assert sum(v["splits"] for v in r["importance"].values()) > 0


def test_bench_boost_generated_data():
    r = run_boost_bench(None, generated=True, n_trees=2, rows=600, key_bits=1024)
    assert r["data"].startswith("generated")
    assert r["max_abs_margin_diff_vs_assembled"] < 1e-9 and r["auc"] > 0.55
