"""The HTML job report: content from real job stores, escaping, self-containment, SVG charts,
and rendering in headless Chromium."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from privfin.errors import DataError
from privfin.evaluation import plots as P
from privfin.models.hetero_lr import lr_active, lr_passive
from privfin.models.logistic import LRParams, train_reference
from privfin.reports import Html, build_report, ledger_summary, report_from_store, write_report
from privfin.runtime.store import Artifact, JobStore
from privfin.transport.base import Kind
from privfin.transport.memory import MemoryNetwork, run_parties

SVG = "{http://www.w3.org/2000/svg}"
JOB = "20261129-160000-abc123"
NAME = "risk <scorecard> & \"co\""  # must come out escaped


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A real two-party vertical LR run (in memory, 1024-bit test keys) recorded in each party's
    job store the way a party process records it: steps, ledger, metrics and artifacts on success."""
    from privfin.runtime.executor import SerialExecutor, set_executor

    old = set_executor(SerialExecutor())
    try:
        tmp = tmp_path_factory.mktemp("report")
        rng = np.random.default_rng(3)
        n = 600
        Xb, Xg = rng.normal(size=(n, 3)), rng.normal(size=(n, 4))
        y = (Xb @ [0.8, -0.5, 0.3] + Xg @ [1.0, 0.7, -0.6, 0.4] + rng.logistic(size=n) > 0).astype(int)
        test = np.arange(n) % 3 == 0
        params = LRParams(epochs=2, batch_size=128, learning_rate=0.3, key_bits=1024, allow_insecure=True)
        net = MemoryNetwork(("bank", "gov"))

        def bank(c):
            m = lr_active(c, Xb[~test], y[~test], params, passives=["gov"])
            with c.stage("lr/evaluate"):
                part = c.recv("gov", "lr/holdout_scores")
            return m, part

        def gov(c):
            m = lr_passive(c, Xg[~test], params, active="bank")
            with c.stage("lr/evaluate"):
                c.send("bank", "lr/holdout_scores", m.partial_score(Xg[test]), kind=Kind.PLAINTEXT)
            return m

        out = run_parties(net, {"bank": bank, "gov": gov}, job_id=JOB, timeout=120)
    finally:
        if old is not None:
            set_executor(old)
    bank_model, part = out["bank"]
    fed = bank_model.partial_score(Xb[test]) + part
    coef, b = train_reference(Xb[~test], y[~test], params)
    bank_only = Xb[test] @ coef + b
    stores = {}
    for party, role, model in (("bank", "active", bank_model), ("gov", "passive", out["gov"])):
        st = JobStore(tmp / party / "jobs.sqlite")
        st.create_job(JOB, NAME, role, "bank", ["bank", "gov"], "spec", ["load", "lr"])
        st.job_started(JOB)
        for i in range(2):
            st.step_started(JOB, i)
            st.step_finished(JOB, i)
        for e in net.ledgers[party]:
            st.record(e)
        rows = [{"feature": f"{party}_x{i}", "coef": float(c)} for i, c in enumerate(model.coef)]
        if model.intercept is not None:
            rows.append({"feature": "(intercept)", "coef": float(model.intercept)})
        mpath = tmp / party / "lr_model.parquet"
        pd.DataFrame(rows).to_parquet(mpath, index=False)
        arts = [Artifact("lr", "lr_model", "model", str(mpath), mpath.stat().st_size)]
        metrics = {("psi", "intersection"): n, ("psi", "input_ids"): n + 150, ("load", "rows"): n + 150}
        if party == "bank":
            from privfin.evaluation.metrics import auc, ks

            metrics.update({("lr", "auc_federated"): auc(y[test], fed), ("lr", "ks_federated"): ks(y[test], fed),
                            ("lr", "auc_bank_only"): auc(y[test], bank_only),
                            ("lr", "ks_bank_only"): ks(y[test], bank_only)})
        st.job_succeeded(JOB, metrics, arts)
        stores[party] = st
    return {"stores": stores, "net": net, "y": y[test], "scores": {"bank_only": bank_only, "federated LR": fed},
            "gov_coef": out["gov"].coef, "bank_coef": bank_model.coef, "tmp": tmp}


def _report(job: dict, **kw) -> str:
    data = report_from_store(job["stores"]["bank"], JOB[:12], "bank", scores=job["scores"], y=job["y"],
                             ledger_stores=job["stores"], **kw)
    return build_report(data)


def test_ledger_summary_aggregates_every_received_message(job: dict) -> None:
    df = ledger_summary(job["stores"], JOB)
    assert list(df.columns) == ["step", "sender", "receiver", "kind", "messages", "bytes", "tags"]
    for party in ("bank", "gov"):
        entries = job["net"].ledgers[party]
        mine = df[df["receiver"] == party]
        assert mine["messages"].sum() == len(entries) > 0
        assert mine["bytes"].sum() == sum(e.nbytes for e in entries)
        assert set(mine["sender"]) == {"gov" if party == "bank" else "bank"}
    # one store alone: what that party received, labelled with its name
    only = ledger_summary(job["stores"]["gov"], JOB, party="gov")
    assert set(only["receiver"]) == {"gov"} and only["bytes"].sum() == df[df["receiver"] == "gov"]["bytes"].sum()
    assert "lr/holdout_scores" in " ".join(df[df["step"] == "lr/evaluate"]["tags"])
    assert set(df["kind"]) <= {str(k) for k in Kind}
    assert ledger_summary(job["stores"]["bank"], "no-such-job", "bank").empty


def test_report_has_every_section_and_only_own_parameters(job: dict) -> None:
    sel = pd.DataFrame({"feature": ["gov.f001", "bank_x0"], "iv": [0.31, 0.12], "selected": [True, False]})
    html = _report(job, selection=sel)
    for sid in ("summary", "alignment", "selection", "model", "metrics", "tables", "charts", "ledger"):
        assert f'<section id="{sid}">' in html
    # the bank's own coefficients are shown, the government's never (its store is not read for models)
    assert "bank_x0" in html and "gov_x0" not in html
    for c in job["gov_coef"]:
        assert f"{c:,.4f}" not in html
    assert f"{job['bank_coef'][0]:,.4f}" in html
    assert html.count("<svg") == 5
    assert "bank_only" in html and "federated LR" in html and "AUC change" in html
    assert "gov.f001" in html
    # escaped, self-contained
    assert "<scorecard>" not in html and "risk &lt;scorecard&gt; &amp; &quot;co&quot;" in html
    assert not re.search(r"<script|<link|<img|\bsrc=|\bhref=|@import|url\((?!#)", html, re.IGNORECASE)
    # the passive party's own report: its own coefficients, no label-holder metrics, what it received
    gov = build_report(report_from_store(job["stores"]["gov"], JOB, "gov"))
    assert "gov_x0" in gov and "bank_x0" not in gov
    assert '<section id="metrics">' not in gov and '<section id="charts">' not in gov
    assert "lr/encx" in gov and "lr/holdout_scores" not in gov  # only messages gov itself received


def test_metrics_and_changes_match_the_evaluation(job: dict) -> None:
    from privfin.evaluation.metrics import auc, ks

    data = report_from_store(job["stores"]["bank"], JOB, "bank", scores=job["scores"], y=job["y"])
    t = data.metrics.set_index("name")
    y, s = job["y"], job["scores"]
    assert t.loc["federated LR", "auc"] == pytest.approx(auc(y, s["federated LR"]), abs=1e-12)
    assert t.loc["bank_only", "ks"] == pytest.approx(ks(y, s["bank_only"]), abs=1e-12)
    want = 100 * (auc(y, s["federated LR"]) / auc(y, s["bank_only"]) - 1)
    assert t.loc["federated LR", "auc_change_pct"] == pytest.approx(want)
    assert data.alignment["intersection"] == 600
    bands = data.tables["Score distribution by band: federated LR"]
    assert bands["rows"].sum() == len(y) and bands["events"].sum() == y.sum()
    # without scores: the table is rebuilt from the stored metrics, with a note that charts need scores
    stored = report_from_store(job["stores"]["bank"], JOB, "bank")
    st = stored.metrics.set_index("name")
    assert st.loc["federated lr", "auc"] == pytest.approx(t.loc["federated LR", "auc"])
    assert st.loc["federated lr", "auc_change_pct"] == pytest.approx(want)
    assert not stored.plots and any("holdout" in n for n in stored.notes)
    assert set(stored.ledger["receiver"]) == {"bank"}


def test_report_from_holdout_artifact(job: dict, tmp_path: Path) -> None:
    st = JobStore(tmp_path / "jobs.sqlite")
    st.create_job("j2", "eval", "active", "bank", ["bank", "gov"], "spec", ["load"])
    path = tmp_path / "holdout_scores.parquet"
    pd.DataFrame({"y": job["y"], **job["scores"]}).to_parquet(path)
    st.job_succeeded("j2", {}, [Artifact("evaluate", "holdout_scores", "table", str(path), 1)])
    data = report_from_store(st, "j2", "bank")
    assert list(data.metrics["name"]) == ["bank_only", "federated LR"] and len(data.plots) == 5
    with pytest.raises(DataError, match="no job"):
        report_from_store(st, "nope", "bank")


def test_selection_artifact_is_embedded(tmp_path: Path) -> None:
    from privfin.features.report import COLUMNS, SelectionReport

    rows = [{c: None for c in COLUMNS} | {"party": p, "feature": f, "name": f, "bins": 5, "iv": iv, "kept": k,
                                          "reason": r}
            for p, f, iv, k, r in (("gov", "gov.f001", 0.31, True, ""), ("bank", "<age>", 0.01, False, "iv < 0.02"))]
    path = tmp_path / "selection.parquet"
    SelectionReport(pd.DataFrame(rows)).frame.to_parquet(path)
    st = JobStore(tmp_path / "jobs.sqlite")
    st.create_job("j3", "sel", "active", "bank", ["bank", "gov"], "spec", ["load"])
    st.job_succeeded("j3", {}, [Artifact("screen", "selection", "table", str(path), 1)])
    html = build_report(report_from_store(st, "j3", "bank"))
    assert '<section id="selection">' in html and "1 of 2 kept" in html
    assert "&lt;age&gt;" in html and "<age>" not in html


def test_unsafe_markup_is_refused(job: dict) -> None:
    for bad in ('<p onclick="x()">a</p>', "<script>alert(1)</script>", '<img src="http://x/y.png">',
                '<div style="background:url(http://x)">'):
        with pytest.raises(DataError, match="does not allow"):
            _report(job, selection=Html(bad))
    plain = _report(job, selection="<b>not markup</b>")  # a plain str is text
    assert "&lt;b&gt;not markup&lt;/b&gt;" in plain
    assert "<h2>Feature selection</h2>" in _report(job, selection=Html("<p>12 of 400 features kept</p>"))


def test_charts_are_valid_svg_with_title_axes_and_legend() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    y = rng.integers(0, 2, n)
    s = rng.normal(size=n) + y
    models = {"bank_only": (y, s + rng.normal(size=n)), "federated <LR>": (y, s)}
    charts = {"ROC curve": P.roc_svg(models), "KS curve": P.ks_svg(y, s), "Lift by decile": P.lift_svg(models),
              "Cumulative gain": P.gain_svg(models), "Score distribution": P.score_histogram_svg(s, y)}
    for title, svg in charts.items():
        root = ET.fromstring(svg)  # well-formed XML: text is escaped
        assert root.tag == SVG + "svg" and root.find(SVG + "title").text == title
        texts = [t.text for t in root.iter(SVG + "text")]
        assert title in texts
        assert len([t for t in texts if t and re.fullmatch(r"-?[\d.,]+%?", t)]) >= 6  # tick labels
        assert root.find(f".//{SVG}g[@class='legend']") is not None
        assert len(svg) < 40_000  # 200k rows, thinned curves
    roc = ET.fromstring(charts["ROC curve"])
    legend = [t.text for t in roc.find(f".//{SVG}g[@class='legend']").iter(SVG + "text")]
    assert legend[1].startswith("federated <LR> (AUC 0.7") and legend[2] == "chance"
    assert len(ET.fromstring(charts["Lift by decile"]).findall(f".//{SVG}rect")) >= 20
    with pytest.raises(DataError):
        P.roc_svg({})
    assert P.nice_ticks(0, 1) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0] and P.nice_max(1.62) == 2.0


BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync"]


def test_report_renders_in_headless_chromium(job: dict, tmp_path: Path) -> None:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("headless Chromium not found at /usr/bin/chromium (apt install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (test extra)")
    sel = pd.DataFrame({"feature": ["gov.f001", "gov.f017", "bank_x0"], "iv": [0.31, 0.22, 0.12],
                        "selected": [True, True, False]})
    path = write_report(tmp_path / "report.html", report_from_store(
        job["stores"]["bank"], JOB, "bank", scores=job["scores"], y=job["y"], selection=sel,
        ledger_stores=job["stores"]))
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.as_uri())
            assert page.title() == f"privfin report: {NAME}"
            assert page.locator("section").count() == 8
            assert page.locator("svg.privfin-chart").count() == 5
            titles = page.eval_on_selector_all("svg.privfin-chart > title", "els => els.map(e => e.textContent)")
            assert titles == ["ROC curve", "KS curve: federated LR", "Lift by decile", "Cumulative gain",
                              "Score distribution: federated LR"]
            assert page.locator("table").count() >= 7
            assert page.locator("#metrics tbody tr").count() == 2
            assert page.locator("#selection tbody tr").count() == 3
            for i in range(5):  # every chart is laid out with a real size
                box = page.locator("svg.privfin-chart").nth(i).bounding_box()
                assert box is not None and box["width"] > 300 and box["height"] > 200
            assert "AUC change" in page.locator("#metrics").inner_text()
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert not errors
    assert requests == [path.as_uri()]  # self-contained: the page fetched nothing else
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_cli_jobs_report_writes_the_html(job: dict, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from privfin.cli.main import app

    store = job["stores"]["bank"].path
    cfg = tmp_path / "party.toml"
    cfg.write_text(f'[party]\nname = "bank"\nlisten = "127.0.0.1:1"\njob_store = "{store}"\n'
                   '[tls]\nca = "a"\ncert = "b"\nkey = "c"\n')
    out = tmp_path / "r.html"
    res = CliRunner().invoke(app, ["jobs", "report", JOB[:10], "-c", str(cfg), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert str(out) in res.output.replace("\n", "")
    html = out.read_text(encoding="utf-8")
    assert '<section id="ledger">' in html and '<section id="metrics">' in html  # metrics from the stored lr step
    default = CliRunner().invoke(app, ["jobs", "report", JOB, "-c", str(cfg)])
    assert default.exit_code == 0 and (store.parent / "reports" / f"{JOB}.html").exists()
    missing = CliRunner().invoke(app, ["jobs", "report", "nope", "-c", str(cfg)])
    assert missing.exit_code == 2 and "no job 'nope'" in missing.output


def test_secureboost_model_artifacts_are_summarized(tmp_path: Path) -> None:
    from privfin.models.secureboost import ActiveModel, PassiveModel, Tree
    from privfin.reports.html import model_table

    tree = Tree({0: (1, None), 1: (0, (2, 3))}, {2: -0.4, 3: 0.1, 4: 0.3}, {0: 1.5, 1: 0.7})
    ActiveModel([tree], ["bank", "gov"], 0.2).save(tmp_path / "a.json")
    PassiveModel({(0, 0): (5, 2)}).save(tmp_path / "p.json")
    a = model_table(tmp_path / "a.json").set_index("party")
    assert a.loc["gov", "splits"] == 1 and a.loc["bank", "gain"] == pytest.approx(0.7)
    assert (a["trees"] == 1).all()
    p = model_table(tmp_path / "p.json")
    assert p.to_dict("records") == [{"own feature (index)": "5", "splits": 1}]
    (tmp_path / "x.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="not a JSON object"):
        model_table(tmp_path / "x.json")
