"""SecureBoost federated prediction (batch and by id), model save/load, prediction transcript leak test."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from privfin.errors import DataError, RemoteError
from privfin.models.secureboost import (
    ActiveModel,
    PassiveModel,
    SBParams,
    SBPredictor,
    assemble,
    predict_margin,
    reachable_masks,
    sb_active,
    sb_passive,
    sb_serve,
)
from privfin.transport.base import Kind
from privfin.transport.memory import MemoryNetwork, run_parties

PARAMS = SBParams(n_trees=4, max_depth=3, learning_rate=0.3, reg_lambda=1.0, scheme="ou", key_bits=768,
                  allow_insecure=True)
NAMES = ["bank", "p1", "p2"]


def _bins(n: int, d: int, rng: np.random.Generator, n_bins: int = 8) -> np.ndarray:
    return rng.integers(0, n_bins, size=(n, d)).astype(np.int64)


def _passive(c, *, B):
    return sb_passive(c, B, PARAMS)


@pytest.fixture(scope="module")
def trained():
    """Three parties (two passive) trained in memory; serving data = fresh rows with ids."""
    from privfin.runtime.executor import SerialExecutor, set_executor

    old = set_executor(SerialExecutor())
    rng = np.random.default_rng(3)
    n, m = 300, 40
    parts = [_bins(n + m, 2, rng) for _ in NAMES]
    z = parts[0][:, 0] - parts[1][:, 1] + 0.7 * parts[2][:, 0] - 4 + rng.normal(size=n + m)
    y = (z > 0).astype(np.int64)
    net = MemoryNetwork(tuple(NAMES))
    roles = {"bank": lambda c: sb_active(c, parts[0][:n], y[:n], PARAMS)}
    for i, q in enumerate(NAMES[1:], start=1):
        roles[q] = functools.partial(_passive, B=parts[i][:n])
    res = run_parties(net, roles, timeout=120)
    ids = np.array([f"id{1000 + i}" for i in range(m)])
    yield {"res": res, "serve": [B[n:] for B in parts], "ids": ids}
    if old is not None:
        set_executor(old)


def _predict(models: dict, serve_bins: list[np.ndarray], ids: np.ndarray, ask) -> tuple[MemoryNetwork, dict]:
    net = MemoryNetwork(tuple(NAMES))

    def bank(c):
        with SBPredictor(c, models["bank"], timeout=30) as pr:
            return ask(pr, serve_bins[0])

    roles = {"bank": bank}
    for i, q in enumerate(NAMES[1:], start=1):
        roles[q] = functools.partial(sb_serve, model=models[q], bins_own=serve_bins[i], ids=ids)
    return net, run_parties(net, roles, timeout=60)


def test_batch_and_single_id_equal_assembled_model(trained):
    res, B, ids = trained["res"], trained["serve"], trained["ids"]
    trees = assemble(res["bank"], {q: res[q] for q in NAMES[1:]})
    expected = predict_margin(trees, B, res["bank"].base_margin)
    assert any(pi == 2 for t in res["bank"].trees for pi, _ in t.split.values())  # both passives split
    _, out = _predict(res, B, ids, lambda pr, b: pr.predict_margin(b))
    np.testing.assert_allclose(out["bank"], expected, atol=1e-12)
    assert out["p1"] == 1  # one request answered
    pick = [5, 17, 0]

    def by_id(pr, b):
        return [pr.predict_ids([ids[i]], b[i:i + 1])[0] for i in pick] + list(pr.predict_ids(ids[pick], b[pick]))

    _, out = _predict(res, B, ids, by_id)
    np.testing.assert_allclose(out["bank"], np.r_[expected[pick], expected[pick]], atol=1e-12)
    assert out["p2"] == len(pick) + 1


def test_unknown_id_is_an_error_reply(trained):
    res, B, ids = trained["res"], trained["serve"], trained["ids"]
    with pytest.raises(RemoteError, match="DataError"):
        _predict(res, B, ids, lambda pr, b: pr.predict_ids(["nope"], b[:1]))


def test_save_load_round_trip(trained, tmp_path):
    res, B, ids = trained["res"], trained["serve"], trained["ids"]
    loaded = {}
    for q in NAMES:
        res[q].save(tmp_path / f"{q}.json")
        cls = ActiveModel if q == "bank" else PassiveModel
        loaded[q] = cls.load(tmp_path / f"{q}.json")
    a = loaded["bank"]
    assert [t.split for t in a.trees] == [t.split for t in res["bank"].trees]
    assert [t.leaf for t in a.trees] == [t.leaf for t in res["bank"].trees]
    assert a.importance() == res["bank"].importance()
    for q in NAMES[1:]:
        assert loaded[q].splits == res[q].splits
    # each file holds only its own party's part
    bank_file = json.loads((tmp_path / "bank.json").read_text())
    assert all(ref is None for t in bank_file["trees"] for _, pi, ref in t["split"] if pi > 0)
    assert "leaf" not in (tmp_path / "p1.json").read_text()
    _, out_loaded = _predict(loaded, B, ids, lambda pr, b: pr.predict_margin(b))
    _, out = _predict(res, B, ids, lambda pr, b: pr.predict_margin(b))
    np.testing.assert_array_equal(out_loaded["bank"], out["bank"])
    # format checks
    bad = dict(bank_file, version=99)
    with pytest.raises(DataError, match="version"):
        ActiveModel.from_dict(bad)
    with pytest.raises(DataError):
        PassiveModel.from_dict(bank_file)
    broken = json.loads(json.dumps(bank_file))
    broken["trees"][0]["leaf"] = broken["trees"][0]["leaf"][1:]
    with pytest.raises(DataError):
        ActiveModel.from_dict(broken)


def test_prediction_transcript_leaks_nothing_in_the_clear(trained):
    res, B, ids = trained["res"], trained["serve"], trained["ids"]
    net, out = _predict(res, B, ids, lambda pr, b: pr.predict_margin(b))
    leaves = [w for t in res["bank"].trees for w in t.leaf.values()]
    needles = [np.float64(w).tobytes() for w in leaves] + [np.float32(w).tobytes() for w in leaves]
    needles += [np.asarray(out["bank"][i]).tobytes() for i in range(len(out["bank"]))]
    for b in B:  # every party's raw bins, as whole columns
        for j in range(b.shape[1]):
            needles += [np.ascontiguousarray(b[:, j]).tobytes(), np.ascontiguousarray(b[:, j]).astype(np.int32).tobytes()]
    for rec in net.transcript:
        for nd in needles:
            assert nd not in rec.wire, f"clear value in '{rec.envelope.tag}' to {rec.envelope.receiver}"
    # passives receive requests (public sizes) only; the bank receives only reachability masks
    for q in NAMES[1:]:
        assert {(e.tag, e.kind) for e in net.ledgers[q]} <= {("sb/pred/req", Kind.PLAINTEXT)}
        for rec in net.messages(receiver=q):
            assert b"mask" not in rec.wire and b"leaf" not in rec.wire
    assert {e.tag for e in net.ledgers["bank"]} == {"sb/pred/rep"}
    # a mask carries exactly what reachable_masks gives under the passive's own splits, nothing more
    n_trees, depth = len(res["bank"].trees), res["bank"].depth
    for rec in net.messages(receiver="bank"):
        q = rec.envelope.sender
        own = reachable_masks(res[q].splits, B[NAMES.index(q)], n_trees, depth)
        assert np.packbits(own, axis=2).tobytes() in rec.wire


def test_reachable_masks_intersection_is_the_path():
    rng = np.random.default_rng(0)
    B = [_bins(50, 2, rng) for _ in range(2)]
    splits = [{(0, 0): (0, 3), (0, 2): (1, 5)}, {(0, 1): (1, 2)}]
    m = reachable_masks(splits[0], B[0], 1, 2) & reachable_masks(splits[1], B[1], 1, 2)
    assert (m.sum(axis=2) == 1).all()  # complete depth-2 tree: one position per row
    pos = np.where(B[0][:, 0] <= 3, np.where(B[1][:, 1] <= 2, 0, 1), np.where(B[0][:, 1] <= 5, 2, 3))
    np.testing.assert_array_equal(np.argmax(m[:, 0], axis=1), pos)


PIPE_STEPS = [("psi", {}), ("binning", {"bins": 8, "min_bin_frac": 0.0}),
              ("boost", {"trees": 3, "subsample": 0.8, "colsample_bytree": 0.5, "key_bits": 768,
                         "allow_insecure_keys": True})]


@pytest.mark.parametrize("stopping", [0, 1])
def test_pipeline_boost_step(tmp_path, serial_executor, stopping):
    from privfin.config import JobSpec
    from privfin.evaluation.metrics import auc
    from privfin.pipeline import holdout_mask
    from privfin.runtime.steps import STEPS, run_in_memory
    from privfin.scenarios import synth
    from privfin.scenarios.local import job_toml

    d = synth.generate(n_rows=700, seed=4, overlap=0.8)
    d.bank.to_csv(tmp_path / "bank.csv", index=False)
    d.gov.to_csv(tmp_path / "gov.csv", index=False)
    steps = PIPE_STEPS[:2] + [("boost", {**PIPE_STEPS[2][1], **(
        {"early_stopping_rounds": stopping, "validation_percent": 20} if stopping else {})})]
    job = job_toml("boost", Path("bank.csv"), Path("gov.csv"), steps, label="y")
    _, out = run_in_memory(JobSpec.parse(job, "job.toml", known_steps=set(STEPS)), tmp_path, timeout=120)
    bank, gov = out["bank"], out["gov"]
    test = holdout_mask(bank.state["table"].ids, 30)
    models = {p: next(a for a in c.artifacts if a.name == "boost_model") for p, c in out.items()}
    am, pm = ActiveModel.load(models["bank"].path), PassiveModel.load(models["gov"].path)
    assert (len(am.trees) == 3 if not stopping else 1 <= len(am.trees) <= 3) and pm.splits == gov.state["boost"].splits
    trees = assemble(am, {"gov": pm})
    Xs = [c.state["binning"]["bins"][test].astype(np.int64) for c in (bank, gov)]
    score = bank.state["scores"]["boost"]
    np.testing.assert_allclose(score, predict_margin(trees, Xs, am.base_margin), atol=1e-12)
    y = bank.state["table"].label[test]
    assert bank.metrics[("boost", "auc_federated")] == round(float(auc(y, score)), 6)
    assert bank.metrics[("boost", "holdout_rows")] == int(test.sum())
    assert "scores" not in gov.state
    # the bank-only counterpart: the same algorithm on the bank's bins alone (with the same stopping rule)
    assert bank.state["scores"]["bank_only_boost"].shape == score.shape
    if stopping:
        assert bank.metrics[("boost", "train_rows")] < int((~test).sum())
