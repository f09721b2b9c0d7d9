"""CLI commands that need no running party."""

from cryptography import x509
from typer.testing import CliRunner

from privfin.cli.main import app

runner = CliRunner()


def test_certs_init_and_issue(tmp_path):
    d = tmp_path / "certs"
    assert runner.invoke(app, ["certs", "init", "--dir", str(d)]).exit_code == 0
    again = runner.invoke(app, ["certs", "init", "--dir", str(d)])
    assert again.exit_code == 2 and "already exists" in again.output
    res = runner.invoke(app, ["certs", "issue", "gov", "--dir", str(d), "--host", "gov.example.cn"])
    assert res.exit_code == 0, res.output
    cert = x509.load_pem_x509_certificate((d / "gov.crt").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert "gov" in names and "gov.example.cn" in names
    assert (d / "gov.key").stat().st_mode & 0o077 == 0  # private key readable by its owner only
    bad = runner.invoke(app, ["certs", "issue", "bad name", "--dir", str(d)])
    assert bad.exit_code == 2


def test_issue_without_ca(tmp_path):
    res = runner.invoke(app, ["certs", "issue", "bank", "--dir", str(tmp_path)])
    assert res.exit_code == 2 and "certs init" in res.output


def test_data_synth(tmp_path):
    res = runner.invoke(app, ["data", "synth", "--rows", "500", "--out", str(tmp_path), "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "bank.csv").exists() and (tmp_path / "gov.csv").exists()


def test_jobs_show_unknown(tmp_path):
    cfg = tmp_path / "party.toml"
    cfg.write_text('[party]\nname = "bank"\nlisten = "127.0.0.1:1"\n[tls]\nca = "a"\ncert = "b"\nkey = "c"\n')
    res = runner.invoke(app, ["jobs", "show", "nope", "-c", str(cfg)])
    assert res.exit_code == 2 and "no job 'nope'" in res.output
