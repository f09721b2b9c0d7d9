"""`privfin demo`: every party its own process on loopback TLS, on generated and on real data."""

import pytest
from typer.testing import CliRunner

from privfin.cli.main import app
from privfin.scenarios.demo import run_demo

pytestmark = pytest.mark.grpc


def test_demo_on_generated_data(tmp_path):
    res = run_demo(workdir=tmp_path, rows=3000, seed=1)
    assert res.status["status"] == "succeeded", res.status["error"]
    assert res.exit_codes == {"bank": 0, "gov": 0}
    metrics = {(s, k): v for s, k, v in res.status["metrics"]}
    assert metrics[("load", "rows")] == 3000
    assert metrics[("psi", "intersection")] == 2100  # 70% of the bank's ids are at the government
    assert metrics[("lr", "train_rows")] + metrics[("lr", "holdout_rows")] == 2100
    assert 0.5 < metrics[("lr", "auc_bank_only")] < 1 and 0.5 < metrics[("lr", "auc_federated")] < 1


def test_demo_on_real_data_cli(tmp_path, fate_dir):
    out = CliRunner().invoke(app, ["demo", "--data-dir", str(fate_dir), "--workdir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    assert "summary at the bank" in out.output and "30,000" in out.output
    assert "-> federated" in out.output


def test_demo_bad_data_dir(tmp_path):
    out = CliRunner().invoke(app, ["demo", "--data-dir", str(tmp_path)])
    assert out.exit_code == 2 and "default_credit_hetero_guest.csv" in out.output
