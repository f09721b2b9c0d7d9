"""The precision-marketing pipeline: iv_select and score_prospects steps, in memory and as processes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import privfin.pipeline  # noqa: F401 - registers the steps
from privfin.config import JobSpec
from privfin.errors import ConfigError
from privfin.runtime.steps import StepContext, run_in_memory
from privfin.runtime.store import JobStore
from privfin.scenarios import synth
from privfin.scenarios.marketing import evaluate_prospects, job_toml, marketing_steps, run_marketing
from privfin.transport.base import Kind
from privfin.transport.memory import MemoryNetwork

SMALL_KEYS = {"key_bits": 1024, "allow_insecure_keys": True}


def _run_memory(tmp_path: Path, data: synth.SynthData, steps: list) -> tuple[MemoryNetwork, dict[str, StepContext]]:
    paths = synth.write(data, tmp_path / "data")
    job = tmp_path / "job.toml"
    job.write_text(job_toml("t", paths["bank"], paths["gov"], steps, label="response",
                            bank_features=list(synth.BANK_FEATURES)))
    return run_in_memory(JobSpec.load(job), tmp_path, timeout=120)


@pytest.fixture(scope="module")
def memory_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mkt")
    data = synth.generate(2000, seed=4, overlap=0.6, n_gov_features=40, n_gov_rows=3000, response=True)
    steps = marketing_steps(top_k_features=8, top_percent=10, epochs=2, key_bits=1024, allow_insecure_keys=True)
    net, ctxs = _run_memory(tmp, data, steps)
    return data, net, ctxs


def _artifact(ctx: StepContext, name: str) -> pd.DataFrame:
    return pd.read_parquet(next(a.path for a in ctx.artifacts if a.name == name))


def test_prospect_ids_are_the_governments_top_decile(memory_run) -> None:
    data, _, ctxs = memory_run
    bank, gov = ctxs["bank"], ctxs["gov"]
    got = _artifact(bank, "prospects")
    truth = data.prospects_truth
    assert len(truth) == 3000 - 1200
    assert len(got) == math.ceil(0.1 * len(truth)) == bank.metrics[("score_prospects", "prospects.gov")]
    assert (got["party"] == "gov").all()
    assert got["id"].is_unique and got["id"].isin(truth["id"]).all()
    assert not got["id"].isin(data.bank["id"]).any()  # only enterprises the bank does not serve
    assert got["id"].tolist() == sorted(got["id"])  # no ranks revealed
    scores = _artifact(gov, "prospect_scores")  # kept at the government
    assert sorted(scores["id"]) == sorted(truth["id"])
    top = scores.sort_values("score", ascending=False, kind="stable")["id"].head(len(got))
    assert sorted(top) == got["id"].tolist()


def test_prospect_scores_match_a_plain_recomputation(memory_run) -> None:
    """The government's score of a prospect = sum over its kept features of coef x WOE of the bin."""
    data, _, ctxs = memory_run
    gov = ctxs["gov"]
    woe = gov.state["woe"]["woe"]
    names = list(woe.columns)
    assert 0 < len(names) <= 8
    coef = dict(zip(names, gov.state["lr"].coef))
    binner = gov.state["binning"]["binner"]
    all_names = gov.state["binning"]["names"]
    aligned_bins = pd.DataFrame(gov.state["binning"]["bins"], columns=all_names)
    prospects = data.gov[~data.gov["id"].isin(data.bank["id"])].reset_index(drop=True)
    bins = pd.DataFrame(binner.transform(prospects.drop(columns="id")), columns=all_names)
    expected = np.zeros(len(prospects))
    for nm in names:
        per_bin = pd.Series(woe[nm].to_numpy()).groupby(aligned_bins[nm].to_numpy()).first()
        expected += coef[nm] * bins[nm].map(per_bin).fillna(0.0).to_numpy()
    scores = _artifact(gov, "prospect_scores").set_index("id")["score"]
    np.testing.assert_allclose(scores.loc[prospects["id"]].to_numpy(), expected, rtol=1e-12, atol=1e-12)


def test_short_list_and_what_each_party_received(memory_run) -> None:
    data, net, ctxs = memory_run
    bank, gov = ctxs["bank"], ctxs["gov"]
    assert bank.metrics[("iv_select", "kept.gov")] == gov.metrics[("iv_select", "kept")] <= 8
    assert len(gov.state["woe"]["names"]) == gov.metrics[("iv_select", "kept")]
    assert 1 <= bank.metrics[("iv_select", "kept.own")] == len(bank.state["woe"]["names"]) <= 8
    # the short list holds no redundant pair within a party: |r| of WOE columns <= 0.7
    for ctx in (bank, gov):
        r = np.corrcoef(ctx.state["woe"]["woe"].to_numpy(), rowvar=False)
        assert np.nanmax(np.abs(r - np.eye(len(r)))) <= 0.7 + 1e-12
    # the bank's own short list starts from its best feature by IV (never dropped as redundant)
    iv = bank.state["woe"]["result"].iv
    assert max(synth.BANK_FEATURES, key=lambda k: iv[k]) in bank.state["woe"]["names"]
    # the messages of the two new steps: aliases to gov, aliases and then ids to the bank
    led_gov = [(e.tag, e.kind) for e in net.ledgers["gov"] if e.tag.startswith(("select/", "prospects/"))]
    led_bank = [(e.tag, e.kind) for e in net.ledgers["bank"] if e.tag.startswith(("select/", "prospects/"))]
    assert led_gov == [("select/candidates", Kind.PLAINTEXT), ("select/keep", Kind.PLAINTEXT)]
    assert led_bank == [("select/survivors", Kind.PLAINTEXT), ("prospects/top_ids", Kind.PLAINTEXT)]
    # transcript: no prospect id other than the ones sent, and no bank-only id, crosses in the clear
    chosen = set(_artifact(bank, "prospects")["id"])
    others = set(data.prospects_truth["id"]) - chosen
    bank_only = set(data.bank["id"]) - set(data.gov["id"])
    wire = b"".join(r.wire for r in net.transcript)
    for ident in list(others)[:300] + list(bank_only)[:300]:
        assert ident.encode() not in wire and ident.encode("utf-32-le") not in wire, ident
    to_bank = b"".join(r.wire for r in net.transcript if r.envelope.tag == "prospects/top_ids")
    assert all(i.encode("utf-32-le") in to_bank for i in list(chosen)[:50])
    # the government received no label and no per-row value in these steps: one short message
    assert sum(len(r.wire) for r in net.transcript if r.envelope.tag.startswith("select/")) < 6000


def test_score_prospects_parameters(tmp_path) -> None:
    data = synth.generate(600, seed=1, n_gov_rows=800, response=True)
    for i, bad in enumerate(({}, {"top_k": 5, "top_percent": 10}, {"top_percent": 0}, {"top_k": 0})):
        with pytest.raises(ConfigError, match="top_k"):
            _run_memory(tmp_path / str(i), data, [("psi", {}), ("score_prospects", bad)])
    with pytest.raises(ConfigError, match="woe step"):
        _run_memory(tmp_path / "nowoe", data, [("psi", {}), ("score_prospects", {"top_k": 3})])


def test_evaluate_prospects() -> None:
    truth = pd.DataFrame({"id": list("abcdefghij"), "true_response": [1, 1, 0, 0, 0, 0, 0, 0, 0, 1]})
    ev = evaluate_prospects(pd.DataFrame({"id": ["a", "b", "c", "d"]}), truth)
    assert ev == {"prospects": 10, "targeted": 4, "base_rate": 0.3, "targeted_rate": 0.5, "lift": round(0.5 / 0.3, 4)}
    with pytest.raises(ValueError):
        evaluate_prospects(pd.DataFrame({"id": ["zz"]}), truth)


@pytest.mark.grpc
def test_marketing_pipeline_over_processes(tmp_path) -> None:
    res = run_marketing(tmp_path, rows=2000, seed=2, gov_features=30, top_k_features=10, epochs=3, **SMALL_KEYS)
    assert res.status["status"] == "succeeded", res.status["error"]
    assert res.exit_codes == {"bank": 0, "gov": 0}
    steps = [s["name"] for s in res.status["steps"]] if "steps" in res.status else None
    assert steps is None or steps[-1] == "score_prospects"
    assert res.metrics("psi")["intersection"] == 1400
    p = res.evaluation["prospects"]
    assert p["prospects"] == 600 and p["targeted"] == 60 and 0 < p["base_rate"] < 0.2
    h = res.evaluation["holdout"]
    for k in ("auc_bank_only", "auc_federated", "top_rate_lr", "top_rate_bank_only", "base_rate"):
        assert 0 < h[k] < 1, k
    ledger = [(e.sender, e.tag, e.kind) for e in JobStore(res.bank_store).ledger(res.job_id)
              if e.tag.startswith("prospects/")]
    assert ledger == [("gov", "prospects/top_ids", "plaintext")]
