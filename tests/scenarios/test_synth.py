"""The seeded built-in data generator (privfin.scenarios.synth)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from privfin.scenarios import synth
from privfin.scenarios.synth import (
    BANK_FEATURES,
    GOV_BASE_FEATURES,
    MAX_GOV_FEATURES,
    SERIES,
    SERIES_STATS,
    extra_gov_feature_names,
    generate,
    is_valid_uscc,
    uscc_check_char,
    write,
)

INT_COLS = {
    "y", "acct_age_months", "txn_count_m", "loan_count", "overdue_cnt_24m", "max_overdue_days", "product_count",
    "payroll_flag", "shareholder_chg_3y", "tax_arrears_m24", "si_employees", "si_contrib_months", "si_arrears_m24",
    "court_defendant_5y", "executed_flag", "admin_penalty_3y", "abnormal_op_flag",
}  # fmt: skip
STR_COLS = {"id", "segment", "industry", "legal_form", "tax_rating"}
# documented missing shares: (low, high) bounds that hold at a few thousand rows
MISSING = {
    "credit_line": (0.2, 0.4),
    "credit_util": (0.2, 0.4),
    "reg_capital": (0.1, 0.3),
    "rev_growth_yoy": (0.005, 0.06),
    "si_wage_base": (0.08, 0.3),
    "hf_employees": (0.15, 0.4),
    "hf_contrib_m": (0.15, 0.4),
    "power_kwh_m": (0.07, 0.25),
    "water_t_m": (0.07, 0.25),
    "gas_m3_m": (0.2, 0.45),
    "util_arrears_12m": (0.07, 0.25),
    "power_yoy": (0.12, 0.35),
}


@pytest.fixture(scope="module")
def data20k() -> synth.SynthData:
    return generate(20000, seed=0)


@pytest.fixture(scope="module")
def small() -> synth.SynthData:
    return generate(3000, seed=11, overlap=0.6, n_gov_features=60)


def test_same_seed_same_output() -> None:
    a = generate(3000, seed=7, n_gov_features=40)
    b = generate(3000, seed=7, n_gov_features=40)
    pd.testing.assert_frame_equal(a.bank, b.bank)
    pd.testing.assert_frame_equal(a.gov, b.gov)


def test_different_seeds_differ() -> None:
    a, b = generate(3000, seed=1), generate(3000, seed=2)
    assert len(set(a.bank["id"]) & set(b.bank["id"])) < 10
    assert not np.array_equal(a.bank["y"].to_numpy(), b.bank["y"].to_numpy())
    assert not np.array_equal(a.bank["avg_deposit_bal"].to_numpy(), b.bank["avg_deposit_bal"].to_numpy())
    assert not np.array_equal(a.gov["vat_paid_annual"].to_numpy(), b.gov["vat_paid_annual"].to_numpy())


def test_more_gov_features_leave_other_columns_unchanged(small: synth.SynthData) -> None:
    base = generate(3000, seed=11, overlap=0.6)
    pd.testing.assert_frame_equal(base.bank, small.bank)
    pd.testing.assert_frame_equal(base.gov, small.gov[base.gov.columns])


@pytest.mark.parametrize("overlap", [0.0, 0.3, 0.7, 0.95, 1.0])
def test_overlap_fraction(overlap: float) -> None:
    n = 4000
    d = generate(n, seed=3, overlap=overlap)
    both = d.bank["id"].isin(d.gov["id"])
    assert abs(both.mean() - overlap) <= 1 / n
    assert len(d.bank) == n and len(d.gov) == n
    if 0 < overlap < 1:
        assert (~both).any() and (~d.gov["id"].isin(d.bank["id"])).any()


def test_gov_size_parameter_and_shuffling() -> None:
    d = generate(2000, seed=4, overlap=0.5, n_gov_rows=5000)
    assert len(d.gov) == 5000 and d.n_overlap == 1000
    # shuffled independently: the shared ids are not in the same order on both sides
    shared_bank = d.bank["id"][d.bank["id"].isin(d.gov["id"])].tolist()
    shared_gov = d.gov["id"][d.gov["id"].isin(d.bank["id"])].tolist()
    assert shared_bank != shared_gov
    # the shared ids are not concentrated at the top of either table
    pos = np.flatnonzero(d.gov["id"].isin(d.bank["id"]).to_numpy())
    assert 0.4 * len(d.gov) < pos.mean() < 0.6 * len(d.gov)


def test_uscc_checksum_known_codes() -> None:
    for code in ("91350100M000100Y43", "91110000802100433B"):
        assert uscc_check_char(code[:17]) == code[17]
        assert is_valid_uscc(code)
    assert not is_valid_uscc("91350100M000100Y44")
    assert not is_valid_uscc("91350100M000100Y4")
    assert not is_valid_uscc("91350100M000100I43")  # I is outside the alphabet
    assert not is_valid_uscc(91350100)
    with pytest.raises(ValueError):
        uscc_check_char("9135")


def test_ids_valid_and_unique(small: synth.SynthData) -> None:
    for df in (small.bank, small.gov):
        ids = df["id"]
        assert ids.is_unique
        assert ids.map(len).eq(18).all()
        assert all(is_valid_uscc(c) for c in ids)
        assert ids.str[:2].isin(["91", "92"]).all()
    g = small.gov
    assert (g["id"].str[:2].eq("92") == g["legal_form"].eq("individual")).all()
    # the government's ids are in its region's districts
    assert g["id"].str[2:8].isin(synth.REGION_IN).all()


def test_columns_and_types(small: synth.SynthData) -> None:
    assert list(small.bank.columns) == ["id", "y", *BANK_FEATURES]
    assert list(small.gov.columns) == ["id", *GOV_BASE_FEATURES, *extra_gov_feature_names(60 - 24)]
    for df in (small.bank, small.gov):
        for col in df.columns:
            dtype = df[col].dtype
            if col in STR_COLS:
                assert pd.api.types.is_string_dtype(dtype), col
                assert df[col].map(type).eq(str).all(), col
            elif col in INT_COLS:
                assert dtype == np.int64, col
            else:
                assert dtype == np.float64, col
    b, g = small.bank, small.gov
    assert set(b["y"].unique()) <= {0, 1}
    assert set(b["segment"]) <= {"micro", "small", "medium"}
    assert set(g["industry"]) == set(synth.INDUSTRIES)
    assert set(g["legal_form"]) <= set(synth.LEGAL_FORMS)
    assert set(g["tax_rating"]) <= set("ABCDM")
    assert (b["credit_util"].dropna().between(0, 1)).all()
    assert (b["max_overdue_days"].gt(0) == b["overdue_cnt_24m"].gt(0)).all()
    for col in ("avg_deposit_bal", "txn_amount_m", "vat_paid_annual", "reg_capital", "power_kwh_m"):
        df = b if col in b else g
        x = df[col].dropna()
        assert (x >= 0).all()
        assert x.mean() > 1.5 * x.median(), f"{col} should be heavy-tailed"


def test_missing_values_where_documented(data20k: synth.SynthData) -> None:
    for df in (data20k.bank, data20k.gov):
        share = df.isna().mean()
        for col in df.columns:
            if col in MISSING:
                lo, hi = MISSING[col]
                assert lo <= share[col] <= hi, (col, share[col])
            else:
                assert share[col] == 0, col
    g = data20k.gov
    # utilities are missing together (no metered premises); gas also without a connection
    assert (g["power_kwh_m"].isna() == g["water_t_m"].isna()).all()
    assert g.loc[g["power_kwh_m"].isna(), "gas_m3_m"].isna().all()


def test_correlated_groups(data20k: synth.SynthData) -> None:
    g = data20k.gov.dropna(subset=["hf_employees"])
    assert (g["hf_employees"] <= g["si_employees"]).all()
    assert np.corrcoef(np.log1p(g["si_employees"]), np.log1p(g["hf_employees"]))[0, 1] > 0.6
    j = data20k.bank.merge(data20k.gov, on="id")
    assert (j["acct_age_months"] <= np.floor(12 * j["reg_age_years"]).clip(lower=1)).all()


def test_default_rate(data20k: synth.SynthData) -> None:
    assert 0.05 <= data20k.bank["y"].mean() <= 0.10


def test_extra_features(small: synth.SynthData) -> None:
    names = extra_gov_feature_names(MAX_GOV_FEATURES - len(GOV_BASE_FEATURES))
    assert len(names) == len(set(names)) == MAX_GOV_FEATURES - 24
    assert 380 <= MAX_GOV_FEATURES <= 420
    assert names[: len(SERIES)] == [f"{s[0]}_mean_12m" for s in SERIES]
    full = generate(300, seed=2, n_gov_features=MAX_GOV_FEATURES)
    assert full.gov.shape[1] == 1 + MAX_GOV_FEATURES
    ex = full.gov[names]
    assert ex.notna().any().all()
    # an extra is NaN exactly where its series' level is (no metered premises -> no power series)
    assert (full.gov["power_kwh_mean_12m"].isna() == full.gov["power_kwh_m"].isna()).all()
    # its 12-month mean tracks the base feature it is built on
    both = full.gov[["power_kwh_m", "power_kwh_mean_12m"]].dropna()
    assert np.corrcoef(np.log(both.iloc[:, 0]), np.log(both.iloc[:, 1]))[0, 1] > 0.9
    assert np.isfinite(small.gov[extra_gov_feature_names(36)].select_dtypes("number").fillna(0)).all().all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_rows": 0},
        {"seed": -1},
        {"overlap": 1.5},
        {"n_gov_features": 10},
        {"n_gov_features": MAX_GOV_FEATURES + 1},
        {"n_rows": 100, "overlap": 0.9, "n_gov_rows": 50},
    ],
)
def test_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        generate(**{"n_rows": 100, **kwargs})


def test_frozen_and_describe(small: synth.SynthData) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        small.bank = small.gov  # type: ignore[misc]
    text = small.describe()
    assert "default rate" in text and "ids in both: 1800" in text
    for col in ("credit_line", "power_kwh_m", "tax_rating"):
        assert col in text


def test_model_documented_in_module_docstring() -> None:
    doc = synth.__doc__ or ""
    for col in ("id", "y", *BANK_FEATURES, *GOV_BASE_FEATURES):
        assert f"\n{col} " in doc, col
    for name, *_ in SERIES:
        assert name in doc, name
    for stat in SERIES_STATS:
        assert f"``{stat}``" in doc, stat
    for key, value in synth.LABEL_COEF.items():
        assert f"{abs(value)}" in doc, key


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_write_round_trip(tmp_path, small: synth.SynthData, fmt: str) -> None:
    paths = write(small, tmp_path / "out", fmt=fmt)
    assert set(paths) == {"bank", "gov"}
    assert paths["bank"].name == f"bank.{fmt}" and paths["gov"].name == f"gov.{fmt}"
    for name, df in (("bank", small.bank), ("gov", small.gov)):
        if fmt == "csv":
            text = paths[name].read_text(encoding="utf-8")
            assert text.startswith("id,")
            back = pd.read_csv(paths[name], dtype={"id": str})
        else:
            back = pd.read_parquet(paths[name])
        assert list(back.columns) == list(df.columns)
        pd.testing.assert_frame_equal(back, df, check_dtype=False, check_exact=fmt == "parquet", rtol=1e-12)
        assert back[[c for c in df.columns if c in INT_COLS]].dtypes.eq(np.int64).all()
    with pytest.raises(ValueError):
        write(small, tmp_path, fmt="xlsx")


def test_joint_model_beats_bank_only(data20k: synth.SynthData) -> None:
    sk = pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    assert sk is not None
    joined = data20k.bank.merge(data20k.gov, on="id")
    y = joined["y"].to_numpy()
    X_all = joined.drop(columns=["id", "y"])
    train = np.random.default_rng(0).random(len(y)) < 0.7

    def design(df: pd.DataFrame) -> np.ndarray:
        parts = []
        for col in df.columns:
            x = df[col]
            if not pd.api.types.is_numeric_dtype(x):
                parts.append(pd.get_dummies(x, prefix=col, dtype=float))
                continue
            x = x.astype(float)
            if x.isna().any():
                parts.append(x.isna().astype(float).rename(col + "_na"))
                x = x.fillna(x[train].median())
            if x.min() >= 0 and x.max() > 50:
                x = np.log1p(x)
            parts.append(x.rename(col))
        m = pd.concat(parts, axis=1).to_numpy()
        mu, sd = m[train].mean(axis=0), m[train].std(axis=0) + 1e-12
        return (m - mu) / sd

    auc = {}
    for name, cols in (("bank", list(BANK_FEATURES)), ("joint", list(X_all.columns))):
        X = design(X_all[cols])
        model = LogisticRegression(max_iter=2000).fit(X[train], y[train])
        auc[name] = roc_auc_score(y[~train], model.predict_proba(X[~train])[:, 1])
    assert 0.6 < auc["bank"] < 0.76, auc
    assert auc["joint"] > auc["bank"] + 0.03, auc
    assert not math.isclose(auc["joint"], 1.0)


# ---------------------------------------------------------------------------------------------
# marketing-response label


@pytest.fixture(scope="module")
def marketing() -> synth.SynthData:
    return generate(20000, seed=5, overlap=0.6, n_gov_rows=30000, response=True)


def test_response_label_leaves_every_other_column_identical() -> None:
    plain = generate(3000, seed=7, overlap=0.6, n_gov_features=40)
    with_resp = generate(3000, seed=7, overlap=0.6, n_gov_features=40, response=True)
    again = generate(3000, seed=7, overlap=0.6, n_gov_features=40, response=True)
    assert "response" not in plain.bank and plain.prospects_truth is None
    assert list(with_resp.bank.columns) == ["id", "y", "response", *BANK_FEATURES]
    pd.testing.assert_frame_equal(with_resp.bank.drop(columns="response"), plain.bank)
    pd.testing.assert_frame_equal(with_resp.gov, plain.gov)
    pd.testing.assert_frame_equal(with_resp.bank, again.bank)
    pd.testing.assert_frame_equal(with_resp.prospects_truth, again.prospects_truth)
    other = generate(3000, seed=8, overlap=0.6, n_gov_features=40, response=True)
    assert not np.array_equal(other.bank["response"].to_numpy(), with_resp.bank["response"].to_numpy())


def test_prospects_truth_is_the_government_only_rows(marketing: synth.SynthData) -> None:
    t = marketing.prospects_truth
    assert t is not None and list(t.columns) == ["id", "true_response"]
    expected = marketing.gov["id"][~marketing.gov["id"].isin(marketing.bank["id"])]
    assert t["id"].tolist() == expected.tolist()  # every prospect, in the government's order
    assert len(t) == 30000 - 12000
    assert t["true_response"].dtype == np.int64 and set(t["true_response"].unique()) <= {0, 1}


def test_response_rates_as_documented(marketing: synth.SynthData) -> None:
    b, t = marketing.bank, marketing.prospects_truth
    assert 0.065 <= b["response"].mean() <= 0.095  # "about 8%"
    # the same model for customers and prospects: no selection effect between the groups
    assert abs(b["response"].mean() - t["true_response"].mean()) < 0.015
    # driven by size (s) and creditworthiness (z): larger and better-rated firms respond more (the
    # age term is conditional on z and s, which also raise the age, so it has no simple marginal check)
    j = b.merge(marketing.gov, on="id")
    big = j["vat_paid_annual"] > j["vat_paid_annual"].median()
    assert j.loc[big, "response"].mean() > 1.3 * j.loc[~big, "response"].mean()
    good = j["tax_rating"].isin(["A", "B"])
    assert j.loc[good, "response"].mean() > j.loc[j["tax_rating"].isin(["C", "D"]), "response"].mean()
    # not a copy of the default label: weakly (negatively) related only
    assert abs(np.corrcoef(b["y"], b["response"])[0, 1]) < 0.1
    for key, value in synth.RESPONSE_COEF.items():
        assert f"{abs(value)}" in (synth.__doc__ or ""), key


def test_write_prospects_truth(tmp_path, marketing: synth.SynthData) -> None:
    paths = write(marketing, tmp_path)
    assert set(paths) == {"bank", "gov", "prospects_truth"}
    back = pd.read_csv(paths["prospects_truth"], dtype={"id": str})
    pd.testing.assert_frame_equal(back, marketing.prospects_truth)
    assert "prospects (ground truth" in marketing.describe()
