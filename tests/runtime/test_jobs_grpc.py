"""Jobs across party processes over real gRPC with mutual TLS on loopback."""

import signal
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from privfin.cli.main import app
from privfin.config import PartyConfig
from privfin.errors import JobError
from privfin.runtime.launcher import PartyProcesses, submit, wait_job, write_deployment
from privfin.runtime.store import JobStore
from privfin.transport.base import Kind

pytestmark = pytest.mark.grpc
PARTIES = ["bank", "gov", "telecom"]


def _job(tmp: Path, steps: str, gov_input: str = "gov.csv") -> Path:
    text = f"""
[job]
name = "three"
[parties.bank]
role = "active"
input = "bank.csv"
label_column = "y"
[parties.gov]
role = "passive"
input = "{gov_input}"
[parties.telecom]
role = "passive"
input = "telecom.csv"
{steps}
"""
    path = tmp / f"job-{abs(hash(text))}.toml"
    path.write_text(text)
    return path


@pytest.fixture
def deployment(tmp_path):
    configs = write_deployment(tmp_path, PARTIES, timeout_s=15)
    for p, rows in zip(PARTIES, (range(100), range(20, 120), [*range(0, 60), *range(90, 130)])):
        df = pd.DataFrame({"id": [f"{i:06d}" for i in rows], "x": list(rows)}).sample(frac=1.0, random_state=len(p))
        if p == "bank":
            df["y"] = [i % 2 for i in range(100)]
        df.to_csv(configs[p].parent / "data" / f"{p}.csv", index=False)
    return tmp_path, configs


def test_three_party_job(deployment):
    tmp, configs = deployment
    bank = PartyConfig.load(configs["bank"])
    steps = '[[steps]]\nname = "psi"\n[[steps]]\nname = "transfer"\nsize_mb = 3\nrounds = 2\n'
    with PartyProcesses(configs) as procs:
        procs.wait_ready()
        job_id = submit(bank, _job(tmp, steps))
        status = wait_job(bank, job_id, timeout=60)
        codes = procs.wait(30)
    assert status["status"] == "succeeded", status["error"]
    assert codes == {p: 0 for p in PARTIES}
    metrics = {(s, k): v for s, k, v in status["metrics"]}
    assert metrics[("load", "rows")] == 100 and metrics[("transfer", "mb_per_s")] > 0
    want = {f"{i:06d}" for i in [*range(20, 60), *range(90, 100)]}
    assert metrics[("psi", "intersection")] == len(want)
    orders = []
    for p in PARTIES:
        store = JobStore(PartyConfig.load(configs[p]).job_store)
        job = store.job(job_id)
        assert job["status"] == "succeeded" and [s["status"] for s in job["steps"]] == ["done"] * 3
        (aligned,) = [a for a in job["artifacts"] if a.name == "aligned"]
        frame = pd.read_parquet(aligned.path)
        assert set(frame["id"]) == want and (frame["x"] == frame["id"].astype(int)).all()
        orders.append(list(frame["id"]))
        ledger = [e for e in store.ledger(job_id) if e.step == "transfer"]
        if p == "bank":
            assert {(e.sender, e.tag, e.kind) for e in ledger} == {
                ("gov", "transfer/ack", Kind.AGGREGATE), ("telecom", "transfer/ack", Kind.AGGREGATE)}
        else:
            assert [(e.sender, e.tag, e.step) for e in ledger] == [("bank", "transfer/filler", "transfer")] * 2
            assert all(e.nbytes >= 3 << 20 for e in ledger)
    assert orders[0] == orders[1] == orders[2] and orders[0] != sorted(orders[0])
    runner = CliRunner()
    res = runner.invoke(app, ["jobs", "list", "-c", str(configs["gov"])])
    assert res.exit_code == 0 and job_id in res.output
    res = runner.invoke(app, ["jobs", "show", job_id[:18], "-c", str(configs["gov"])])
    assert res.exit_code == 0 and "transfer/filler" in res.output and "plaintext" in res.output


def test_party_killed_mid_job_names_it_then_rerun(deployment):
    tmp, configs = deployment
    bank = PartyConfig.load(configs["bank"])
    job = _job(tmp, '[[steps]]\nname = "transfer"\nsize_mb = 0.1\nrounds = 1000\npause_s = 0.05\n')
    with PartyProcesses(configs) as procs:
        procs.wait_ready()
        job_id = submit(bank, job)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st = JobStore(bank.job_store).job(job_id)
            if st["steps"][1]["status"] == "running":
                break
            time.sleep(0.1)
        time.sleep(0.5)
        t_kill = time.monotonic()
        procs.procs["gov"].send_signal(signal.SIGKILL)
        codes = procs.wait(40)
        elapsed = time.monotonic() - t_kill
    assert codes["bank"] != 0 and codes["telecom"] != 0
    assert elapsed < 15 + 10  # within the configured timeout (15 s) plus shutdown
    for p in ("bank", "telecom"):
        j = JobStore(PartyConfig.load(configs[p]).job_store).job(job_id)
        assert j["status"] == "failed" and "'gov'" in j["error"], j["error"]
        assert j["metrics"] == {} and j["artifacts"] == []  # nothing half-way reported
    assert "'gov'" in procs.log("bank")
    # the same job runs again once gov is back
    with PartyProcesses(configs) as procs:
        procs.wait_ready()
        job2 = submit(bank, _job(tmp, '[[steps]]\nname = "transfer"\nsize_mb = 0.1\nrounds = 3\n'))
        assert wait_job(bank, job2, timeout=60)["status"] == "succeeded"
        assert procs.wait(30) == {p: 0 for p in PARTIES}


def test_bad_config_at_a_peer_refuses_the_job(deployment):
    tmp, configs = deployment
    bank = PartyConfig.load(configs["bank"])
    with PartyProcesses(configs, exit_after=None) as procs:
        procs.wait_ready()
        with pytest.raises(JobError, match=r"party 'gov' refused the job: input file not found.*parties\.gov\.input"):
            submit(bank, _job(tmp, "", gov_input="missing.csv"))
        res = CliRunner().invoke(app, ["run", str(_job(tmp, "", gov_input="missing.csv")), "-c", str(configs["bank"])])
        assert res.exit_code == 1 and "refused" in res.output
        # a data error found while running (duplicate ids at telecom) fails the job everywhere
        (configs["telecom"].parent / "data" / "telecom.csv").write_text("id,x\n1,2\n1,3\n")
        job_id = submit(bank, _job(tmp, ""))
        st = wait_job(bank, job_id, timeout=30)
        assert st["status"] == "failed" and "telecom" in st["error"] and "DataError" in st["error"]
        tel = JobStore(PartyConfig.load(configs["telecom"]).job_store).job(job_id)
        assert "1 duplicate ids in column 'id'" in tel["error"]
    assert all(p.poll() is not None for p in procs.procs.values())


def test_cli_run_follows_job(deployment):
    tmp, configs = deployment
    with PartyProcesses(configs) as procs:
        procs.wait_ready()
        res = CliRunner().invoke(app, ["run", str(_job(tmp, '[[steps]]\nname = "transfer"\n')), "-c",
                                       str(configs["bank"])])
        assert res.exit_code == 0, res.output
        assert "succeeded" in res.output and "mb_per_s" in res.output
        procs.wait(30)
