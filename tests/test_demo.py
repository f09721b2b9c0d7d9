"""`privfin demo`: every party its own process on loopback TLS, on generated and on real data."""

import json

import pytest
from typer.testing import CliRunner

from privfin.cli.main import app
from privfin.runtime.store import JobStore
from privfin.scenarios.demo import PIPELINE, run_demo, summary

pytestmark = pytest.mark.grpc


def test_demo_on_generated_data(tmp_path):
    res = run_demo(workdir=tmp_path, rows=3000, seed=1)
    assert res.status["status"] == "succeeded", res.status["error"]
    assert res.exit_codes == {"bank": 0, "gov": 0}
    metrics = {(s, k): v for s, k, v in res.status["metrics"]}
    assert [s["name"] for s in res.status["steps"]] == ["load"] + [n for n, _ in PIPELINE]
    assert metrics[("load", "rows")] == 3000
    assert metrics[("psi", "intersection")] == 2100  # 70% of the bank's ids are at the government
    assert metrics[("lr", "train_rows")] + metrics[("lr", "holdout_rows")] + metrics[("lr", "validation_rows")] == 2100
    assert metrics[("lr", "calibration_slope")] > 0  # Platt-calibrated (the demo's lr step: calibrate = true)
    assert metrics[("evaluate", "holdout_rows")] == metrics[("lr", "holdout_rows")]
    for model in ("bank_only", "lr", "boost", "bank_only_boost"):
        assert 0.5 < metrics[("evaluate", f"{model}.auc")] < 1
    # the bank's report: written after success, recorded in its job store
    out = summary(res)
    assert out["federated"]["lr"]["auc"] == metrics[("evaluate", "lr.auc")]
    report = JobStore(res.bank_store).job(res.job_id)["artifacts"]
    assert [a.path for a in report if a.name == "report"] == [str(res.report)]
    html = res.report.read_text()
    assert "<svg" in html and 'id="selection"' in html and 'id="ledger"' in html


def test_demo_on_real_data_json(tmp_path, fate_dir):
    out = CliRunner().invoke(app, ["demo", "--data-dir", str(fate_dir), "--workdir", str(tmp_path), "--json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.output.strip().splitlines()[-1])
    assert got["status"] == "succeeded"
    bank = got["bank_only"]
    for model, base in (("lr", bank), ("boost", got["bank_only_boost"])):
        fed = got["federated"][model]
        assert fed["auc"] > base["auc"] and fed["ks"] > base["ks"], (model, fed, base)


def test_demo_bad_data_dir(tmp_path):
    out = CliRunner().invoke(app, ["demo", "--data-dir", str(tmp_path)])
    assert out.exit_code == 2 and "default_credit_hetero_guest.csv" in out.output
