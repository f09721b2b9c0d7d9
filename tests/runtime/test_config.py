"""Bad configuration gives one-line errors naming the key and the file."""

from pathlib import Path

import pandas as pd
import pytest

from privfin.config import JobSpec, PartyConfig
from privfin.errors import ConfigError, DataError
from privfin.runtime.inputs import load_party_table

JOB = """
[job]
name = "t"
[parties.bank]
role = "active"
input = "bank.csv"
label_column = "y"
[parties.gov]
role = "passive"
input = "gov.csv"
[[steps]]
name = "transfer"
size_mb = 1
"""


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_job_parses():
    spec = JobSpec.parse(JOB, "job.toml", known_steps={"transfer"})
    assert spec.active == "bank" and spec.passive == ["gov"]
    assert spec.steps[0].name == "transfer" and spec.steps[0].params == {"size_mb": 1}


@pytest.mark.parametrize("edit, key", [
    (lambda s: s.replace('role = "passive"', 'role = "observer"'), "parties.gov.role"),
    (lambda s: s.replace('label_column = "y"\n', ""), "parties.bank.label_column"),
    (lambda s: s.replace('input = "gov.csv"\n', ""), "parties.gov.input"),
    (lambda s: s.replace('name = "transfer"', 'name = "teleport"'), "steps[0].name"),
    (lambda s: s.replace('role = "passive"', 'role = "active"\nlabel_column = "y"'), "parties"),
    (lambda s: s.replace("[parties.gov]", "[parties.gov]\nlabel_column = \"y\""), "parties.gov.label_column"),
    (lambda s: s.replace('name = "t"', "name = 3"), "job.name"),
    (lambda s: s + "\n[extra]\n", "extra"),
])
def test_job_errors_name_key_and_file(edit, key):
    with pytest.raises(ConfigError) as exc:
        JobSpec.parse(edit(JOB), "/x/job.toml", known_steps={"transfer"})
    msg = _one_line(exc)
    assert f"key '{key}'" in msg and "/x/job.toml" in msg


def test_unknown_party_named():
    spec = JobSpec.parse(JOB, "job.toml")
    with pytest.raises(ConfigError, match="unknown party 'gov'.*parties.gov"):
        spec.check_parties_known("bank", {"telecom": "h:1"}, "party.toml")


def test_invalid_toml():
    with pytest.raises(ConfigError, match="not valid TOML.*job.toml"):
        JobSpec.parse("[job\n", "job.toml")


def _party_toml(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "party.toml"
    p.write_text(body)
    return p


PARTY = """
[party]
name = "bank"
listen = "127.0.0.1:5000"
[tls]
ca = "ca.crt"
cert = "bank.crt"
key = "bank.key"
[peers]
gov = "127.0.0.1:5001"
"""


def test_party_config_resolves_paths(tmp_path):
    cfg = PartyConfig.load(_party_toml(tmp_path, PARTY))
    assert cfg.tls.ca == tmp_path / "ca.crt" and cfg.data_dir == tmp_path / "data" and cfg.peers == {"gov": "127.0.0.1:5001"}


@pytest.mark.parametrize("edit, key", [
    (lambda s: s.replace('listen = "127.0.0.1:5000"', 'listen = "nowhere"'), "party.listen"),
    (lambda s: s.replace('gov = "127.0.0.1:5001"', 'bank = "127.0.0.1:5001"'), "peers.bank"),
    (lambda s: s.replace('key = "bank.key"\n', ""), "tls.key"),
    (lambda s: s.replace('name = "bank"', 'name = "bad name"'), "party.name"),
    (lambda s: s.replace("[party]", "[party]\ntimeout_s = -1"), "party.timeout_s"),
])
def test_party_config_errors(tmp_path, edit, key):
    with pytest.raises(ConfigError) as exc:
        PartyConfig.load(_party_toml(tmp_path, edit(PARTY)))
    assert f"key '{key}'" in _one_line(exc) and "party.toml" in str(exc.value)


def test_missing_party_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        PartyConfig.load(tmp_path / "nope.toml")


def _write(tmp_path, bank: pd.DataFrame, gov: pd.DataFrame | None = None) -> JobSpec:
    bank.to_csv(tmp_path / "bank.csv", index=False)
    (gov if gov is not None else pd.DataFrame({"id": ["1"], "g": [1.0]})).to_csv(tmp_path / "gov.csv", index=False)
    return JobSpec.parse(JOB, str(tmp_path / "job.toml"))


def test_input_loads_ids_as_text(tmp_path):
    spec = _write(tmp_path, pd.DataFrame({"id": ["007", "8"], "y": [0, 1], "x": [1.0, None]}))
    t = load_party_table(spec, "bank", tmp_path)
    assert list(t.ids) == ["007", "8"] and list(t.label) == [0, 1] and list(t.features.columns) == ["x"]


@pytest.mark.parametrize("bank, err, match", [
    (pd.DataFrame({"id": ["1", "1"], "y": [0, 1]}), DataError, "1 duplicate ids in column 'id'"),
    (pd.DataFrame({"id": ["1", "2"], "label": [0, 1]}), ConfigError, "label column 'y' not found.*parties.bank.label_column"),
    (pd.DataFrame({"key": ["1", "2"], "y": [0, 1]}), ConfigError, "id column 'id' not found.*parties.bank.id_column"),
    (pd.DataFrame({"id": ["1", "2"], "y": [0, 2]}), DataError, "must hold only 0 and 1"),
    (pd.DataFrame({"id": ["1", "2"], "y": ["a", "b"]}), DataError, "must hold only 0 and 1"),
    (pd.DataFrame({"id": ["1", "2"], "y": [0, None]}), DataError, "1 missing labels"),
])
def test_input_errors(tmp_path, bank, err, match):
    spec = _write(tmp_path, bank)
    with pytest.raises(err, match=match) as exc:
        load_party_table(spec, "bank", tmp_path)
    _one_line(exc)
    assert "'1'" not in str(exc.value).replace("column 'id'", "")  # no id value in the message


def test_missing_input_file(tmp_path):
    spec = JobSpec.parse(JOB, str(tmp_path / "job.toml"))
    with pytest.raises(ConfigError, match="input file not found.*parties.gov.input"):
        load_party_table(spec, "gov", tmp_path)


def test_parquet_input(tmp_path):
    pd.DataFrame({"id": [1, 2], "g": [0.5, 1.5]}).to_parquet(tmp_path / "gov.parquet")
    spec = JobSpec.parse(JOB.replace("gov.csv", "gov.parquet"), "job.toml")
    t = load_party_table(spec, "gov", tmp_path)
    assert list(t.ids) == ["1", "2"] and t.label is None
