"""The psi -> woe pipeline across party processes over real gRPC with mutual TLS."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from privfin.config import PartyConfig
from privfin.features import Binner, plain_stats
from privfin.runtime.launcher import PartyProcesses, submit, wait_job, write_deployment
from privfin.runtime.store import JobStore
from privfin.transport.base import Kind

pytestmark = pytest.mark.grpc


def test_psi_then_woe_job(tmp_path, synth_pair):
    bank_df, gov_df = synth_pair
    bank_df = bank_df.iloc[:3000].sample(frac=1.0, random_state=1)  # 3000 bank rows
    gov_df = gov_df.iloc[500:].sample(frac=1.0, random_state=2)     # 2500 common
    configs = write_deployment(tmp_path, ["bank", "gov"], timeout_s=60)
    bank_df.to_csv(configs["bank"].parent / "data" / "bank.csv", index=False)
    gov_df.to_csv(configs["gov"].parent / "data" / "gov.csv", index=False)
    job = tmp_path / "job.toml"
    job.write_text("""
[job]
name = "woe"
[parties.bank]
role = "active"
input = "bank.csv"
label_column = "y"
[parties.gov]
role = "passive"
input = "gov.csv"
[[steps]]
name = "psi"
[[steps]]
name = "woe"
key_bits = 1024
allow_insecure_keys = true
share_woe = true
""")
    bank = PartyConfig.load(configs["bank"])
    with PartyProcesses(configs) as procs:
        procs.wait_ready()
        job_id = submit(bank, job)
        status = wait_job(bank, job_id, timeout=120)
        procs.wait(30)
    assert status["status"] == "succeeded", status["error"]
    metrics = {(s, k): v for s, k, v in status["metrics"]}

    # oracle: join on id here, bin each side's columns the same way, plaintext WOE/IV
    joined = bank_df.merge(gov_df, on="id")
    assert len(joined) == 2500
    bcols = [c for c in bank_df.columns if c not in ("id", "y")]
    gcols = [c for c in gov_df.columns if c != "id"]
    Xb = Binner().fit_transform(joined[bcols])
    Xg = Binner().fit_transform(joined[gcols])
    names = bcols + [f"gov.f{j:03d}" for j in range(len(gcols))]
    oracle = plain_stats(np.hstack([Xb, Xg]), joined["y"].to_numpy(), names)
    for k in names:
        assert abs(metrics[("woe", f"iv.{k}")] - oracle[k].iv) <= 1e-6, k  # metrics are rounded to 1e-6

    bstore = JobStore(bank.job_store)
    (art,) = [a for a in bstore.job(job_id)["artifacts"] if a.name == "woe_iv"]
    table = pd.read_parquet(art.path)
    for k in names:
        got = table[table["feature"] == k].sort_values("bin")["woe"].to_numpy()
        assert np.max(np.abs(got - oracle[k].woe)) <= 1e-9, k
    assert not any(c in set(table["feature"]) for c in gcols)  # aliases only
    assert {(e.sender, e.tag, e.kind) for e in bstore.ledger(job_id) if e.step == "woe"} == {
        ("gov", "woe/bin_sums", Kind.AGGREGATE)}
    gstore = JobStore(PartyConfig.load(configs["gov"]).job_store)
    assert {(e.tag, e.kind) for e in gstore.ledger(job_id) if e.step == "woe"} == {
        ("woe/setup", Kind.PLAINTEXT), ("woe/labels", Kind.CIPHERTEXT), ("woe/woe", Kind.AGGREGATE)}
    assert {a.name for a in gstore.job(job_id)["artifacts"]} >= {"aligned", "bins"}
