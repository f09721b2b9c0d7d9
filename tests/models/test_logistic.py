"""The plain math of LR: the oracle itself, metrics, batch order."""

from __future__ import annotations

import numpy as np
import pytest

from privfin.errors import DataError
from privfin.evaluation.metrics import auc, ks
from privfin.models.logistic import (
    LRParams,
    batches,
    check_labels,
    learning_rate_at,
    sigmoid_t1,
    train_reference,
)


def test_sigmoid_t1_is_the_taylor_line() -> None:
    z = np.array([-2.0, 0.0, 1.0])
    assert np.allclose(sigmoid_t1(z), 0.25 * z + 0.5)


def test_batches_cover_every_row_once_and_are_public() -> None:
    p = LRParams(batch_size=7, shuffle_seed=3)
    bs = batches(50, p, 1)
    assert sorted(np.concatenate(bs).tolist()) == list(range(50))
    assert [len(b) for b in bs] == [7] * 7 + [1]
    assert all(np.array_equal(a, b) for a, b in zip(bs, batches(50, p, 1)))  # deterministic
    assert not np.array_equal(np.concatenate(bs), np.concatenate(batches(50, p, 2)))
    assert np.array_equal(np.concatenate(batches(10, LRParams(shuffle_seed=None), 0)), np.arange(10))


def test_learning_rate_schedule() -> None:
    p = LRParams(learning_rate=0.4, decay=1.0)
    assert learning_rate_at(p, 0) == 0.4 and learning_rate_at(p, 3) == 0.1


def test_reference_one_step_by_hand() -> None:
    X = np.array([[1.0, 2.0], [3.0, -1.0]])
    y = np.array([1, 0])
    p = LRParams(epochs=1, batch_size=2, learning_rate=0.5, l2=0.1, shuffle_seed=None)
    w, b = train_reference(X, y, p)
    d = np.array([0.5 - 1.0, 0.5])                   # z = 0 at the start
    assert np.allclose(w, -0.5 * (X.T @ d / 2))      # l2 * w = 0 at w = 0
    assert b == pytest.approx(-0.5 * d.sum() / 2)


def test_reference_learns() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 5))
    y = (X @ np.array([1.0, -2.0, 0.5, 0.0, 1.0]) + rng.logistic(size=2000) > 0).astype(int)
    w, b = train_reference(X, y, LRParams(epochs=5, batch_size=128))
    s = X @ w + b
    assert auc(y, s) > 0.85 and 0.5 < ks(y, s) < 1.0
    metrics = pytest.importorskip("sklearn.metrics")
    assert auc(y, s) == pytest.approx(metrics.roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, _ = metrics.roc_curve(y, s)
    assert ks(y, s) == pytest.approx(float(np.max(tpr - fpr)), abs=1e-12)
    ties = np.round(s)                                # tied scores
    assert auc(y, ties) == pytest.approx(metrics.roc_auc_score(y, ties), abs=1e-12)


def test_labels_must_be_binary() -> None:
    with pytest.raises(DataError, match="binary"):
        check_labels(np.array([0, 1, 2]))
    with pytest.raises(DataError):
        LRParams(epochs=0)


def test_l1_is_a_proximal_soft_threshold() -> None:
    from privfin.models.logistic import sgd_step
    p = LRParams(l1=1.0, l2=0.0)
    w = sgd_step(np.array([0.3, -0.05, 0.0]), np.zeros(3), 1, 0.1, p)
    assert np.allclose(w, [0.2, 0.0, 0.0])
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 6))
    y = (X[:, 0] + rng.logistic(size=500) > 0).astype(int)
    w, _ = train_reference(X, y, LRParams(epochs=5, batch_size=50, l1=0.2))
    assert np.sum(w == 0.0) >= 3 and w[0] > 0
