"""The precision-marketing pipeline (精准营销): a bank and a government data center, each its own
process on loopback TLS, on generated data with a marketing-response label.

Steps (one job): ``psi`` (align the bank's customers with the government's enterprises) ->
``woe`` (bin and WOE/IV every feature of both parties against the bank's ``response`` label;
the ~400 government features included) -> ``screen`` when that step exists (missing rate, IV)
-> ``iv_select`` (IV top-k short list, redundant features dropped by each party at home by WOE
correlation, the bank's own features chosen apart) -> ``lr`` (vertical
logistic regression on the short list, beside the bank-only model on the same split) ->
``score_prospects`` (the government ranks the enterprises the bank does not serve with its own
part of the model and sends the bank only the ids of the top ``top_percent``).

Evaluation (after the job, outside the parties): the bank's holdout metrics come from its job
store (AUC/KS of both models from ``lr``; response rate in the top decile of both models from
``score_prospects`` when the ``lr`` step leaves holdout scores); the prospects' true responses
come from ``prospects_truth.csv``, ground truth no party holds, used here only to measure the
response rate among the ids the bank received against the base rate of all prospects (the
bank, without the government's data, knows nothing about prospects: its targeting of them is
no better than random, i.e. the base rate).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from privfin.runtime.steps import STEPS
from privfin.scenarios import synth
from privfin.scenarios.local import ScenarioResult, job_toml, run_local, write_report

LABEL = "response"


@dataclass(frozen=True)
class MarketingResult(ScenarioResult):
    """The bank's job record, the exit codes, and the evaluation of both targetings."""

    evaluation: dict[str, Any] = field(default_factory=dict)


def marketing_steps(*, top_k_features: int = 20, top_percent: float = 10.0, key_bits: int = 2048,
                    allow_insecure_keys: bool = False, epochs: int = 10) -> list[tuple[str, dict[str, Any]]]:
    """The job's steps.

    Screening: ``screen`` when that step is registered (missing rate, IV >= 0.02; its cross-party
    correlation is off: over ~400 features it is the slowest step by far), then ``iv_select``:
    every passive feature with IV >= 0.02 in IV order, from which each passive party drops every
    feature whose WOE correlates above 0.7 with a better one it keeps (at home, on its own
    data); of the survivors the ``top_k_features`` of highest IV are kept. The
    bank's own features are chosen apart the same way (up to ``top_k_features``), so the
    bank-only baseline gets the bank's best short list too.
    """
    keys: dict[str, Any] = {"key_bits": key_bits}
    if allow_insecure_keys:
        keys["allow_insecure_keys"] = True
    screen = [("screen", {"correlation": False})] if "screen" in STEPS else []
    return [
        ("psi", {}),
        ("woe", {"share_woe": True, **keys}),
        *screen,
        ("iv_select", {"top_k": top_k_features, "max_corr": 0.7}),
        ("lr", {"features": "woe", "epochs": epochs, **keys}),
        ("score_prospects", {"top_percent": top_percent}),
    ]


def evaluate_prospects(prospects: pd.DataFrame, truth: pd.DataFrame) -> dict[str, Any]:
    """Response rate among the prospect ids the bank received against all prospects (ground truth)."""
    t = truth.set_index("id")["true_response"]
    got = prospects["id"].astype(str)
    unknown = int((~got.isin(t.index)).sum())
    if unknown:
        raise ValueError(f"{unknown} received ids are not prospects")
    base = float(t.mean())
    rate = float(t.loc[got].mean()) if len(got) else float("nan")
    return {"prospects": len(t), "targeted": len(got), "base_rate": round(base, 6),
            "targeted_rate": round(rate, 6), "lift": round(rate / base, 4) if base > 0 else float("nan")}


def run_marketing(workdir: Path | None = None, rows: int = 20000, seed: int = 0, *,
                  gov_features: int = synth.MAX_GOV_FEATURES, gov_rows: int | None = None, overlap: float = 0.7,
                  top_k_features: int = 20, top_percent: float = 10.0, key_bits: int = 2048,
                  allow_insecure_keys: bool = False, epochs: int = 10, timeout_s: float = 600.0,
                  on_status: Any = None) -> MarketingResult:
    """Generate data, run the marketing job with every party its own process, evaluate both targetings.

    ``gov_rows`` defaults to ``rows`` (so with ``overlap`` 0.7, 30% of the government's
    enterprises are prospects). Returns the bank's job record and the evaluation.
    """
    t0 = time.perf_counter()
    workdir = Path(workdir or tempfile.mkdtemp(prefix="privfin-marketing-")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    data = synth.generate(n_rows=rows, seed=seed, overlap=overlap, n_gov_features=gov_features,
                          n_gov_rows=gov_rows, response=True)
    paths = {k: Path(v).resolve() for k, v in synth.write(data, workdir / "generated").items()}
    truth = data.prospects_truth
    del data
    steps = marketing_steps(top_k_features=top_k_features, top_percent=top_percent, key_bits=key_bits,
                            allow_insecure_keys=allow_insecure_keys, epochs=epochs)
    run = run_local(workdir, job_toml("precision-marketing-demo", paths["bank"], paths["gov"], steps, label=LABEL,
                                      bank_features=list(synth.BANK_FEATURES)),
                    timeout_s=timeout_s, on_status=on_status)
    status = run.status
    evaluation: dict[str, Any] = {}
    if status["status"] == "succeeded":
        evaluation["report"] = str(write_report(run))
        art = {a["name"]: a["path"] for a in status.get("artifacts", [])}
        if "prospects" in art and truth is not None:
            evaluation["prospects"] = evaluate_prospects(pd.read_parquet(art["prospects"]), truth)
    res = MarketingResult(run, 0.0, evaluation)
    m = res.metrics("lr")
    tp = res.metrics("score_prospects")
    holdout: dict[str, Any] = {k: m[k] for k in ("auc_bank_only", "auc_federated", "ks_bank_only", "ks_federated")
                               if k in m}
    key = f"top_{top_percent:g}pct_rate_"
    for k, v in tp.items():
        if k.startswith(key):
            holdout[f"top_rate_{k[len(key):]}"] = v
    if "holdout_base_rate" in tp:
        holdout["base_rate"] = tp["holdout_base_rate"]
    if holdout:
        evaluation["holdout"] = holdout
    wall = round(time.perf_counter() - t0, 2)
    return MarketingResult(run, wall, evaluation)
