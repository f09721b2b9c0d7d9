"""Plain logistic-regression math in one place: the oracle of the federated trainer.

Everything the federated protocol (:mod:`privfin.models.hetero_lr`) computes jointly is
defined here on plaintext, joined data, with exactly the same algorithm:

- **sigmoid approximation** ``sigmoid_t1(z) = 0.25 z + 0.5`` (first-order Taylor expansion
  at 0; SecretFlow's SS-LR calls it "t1"). The residual ``d = sigmoid_t1(z) - y`` is then
  linear in ``z``, which is what lets the protocol work on additive shares without any
  secure non-linear step;
- **mini-batch order** :func:`batch_order` (a public permutation per epoch from a public
  seed, or the natural order), batches of ``batch_size`` consecutive positions, the last one
  possibly shorter;
- **learning-rate schedule** :func:`learning_rate_at` (``lr / (1 + decay * epoch)``;
  ``decay = 0`` is a constant rate);
- **class weights** (``class_weight``, scikit-learn semantics, :func:`sample_weights`): the
  residual of row ``i`` is multiplied by its class's weight ``w_i``, so the batch gradient is
  ``sum_i w_i (sigmoid_t1(z_i) - y_i) x_i`` (still divided by ``|B|``);
- **update** per batch ``B`` (:func:`sgd_step`): ``g = X_B^T d_B / |B| + l2 * w``,
  ``w -= lr_t * g``, then with ``l1 > 0`` the proximal (soft-threshold) step
  ``w = sign(w) * max(|w| - lr_t * l1, 0)``; the intercept gets ``sum(d_B) / |B|`` and is not
  regularised. Each party can apply this to its own coefficients alone.

:func:`train_reference` is the centralized trainer the tests and the benchmark compare the
federated model with; :func:`auc` and :func:`ks` are the metrics used for that.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from privfin.errors import DataError


@dataclass(frozen=True)
class LRParams:
    """Hyper-parameters shared by every party (public) and by the oracle.

    ``epochs``/``batch_size``: mini-batch SGD; ``learning_rate`` with ``decay`` (per epoch,
    see :func:`learning_rate_at`); ``l2``: ridge penalty, ``l1``: lasso penalty (proximal
    step, :func:`sgd_step`) on the coefficients (not the intercept); ``shuffle_seed``: public seed of the per-epoch batch permutation (``None``:
    natural order); ``fit_intercept``: the active party holds an intercept; ``tol``: stop
    after the first epoch in which no coefficient (nor the intercept) moved by ``tol`` or more
    (:func:`converged`; ``None`` runs every epoch). ``early_stopping`` (``"loss"``: mean
    log-loss with the exact sigmoid, or ``"auc"``) on a validation split given to the trainer:
    after each epoch the metric is computed on the validation rows; training stops after
    ``patience`` epochs without an improvement of more than ``min_delta``, and the model of
    the best epoch is kept (:class:`EarlyStopping`). ``class_weight``: ``None``, ``"balanced"``
    (``n / (2 n_c)`` from the training labels, computed by the label holder) or ``{0: w0, 1:
    w1}`` (a missing class weighs 1; normalized to a dict with ``int`` keys, ``"0"``/``"1"``
    accepted), see :func:`sample_weights`; weights must be below ``2^MAX_WEIGHT_BITS``.

    Protocol parameters (ignored by the oracle): ``key_bits`` of every party's Paillier key
    (>= 2048 unless ``allow_insecure``); ``frac_bits`` of the fixed-point encodings (features
    and linear predictors); ``feature_bits``: encoded features must satisfy
    ``|x| < 2^(feature_bits - 1 - frac_bits)`` (128 by default); ``z_bits``: linear predictors
    (and the active party's residual part ``z_a + b + 2 - 4y``) must satisfy
    ``|z| < 2^(z_bits - 1 - frac_bits)`` (512 by default); ``sigma``: statistical security
    parameter of the masks.
    """

    epochs: int = 10
    batch_size: int = 1024
    learning_rate: float = 0.1
    decay: float = 0.0
    l2: float = 0.0
    l1: float = 0.0
    shuffle_seed: int | None = 0
    fit_intercept: bool = True
    tol: float | None = None
    early_stopping: str | None = None
    patience: int = 2
    min_delta: float = 1e-4
    class_weight: str | dict[int, float] | None = None
    key_bits: int = 2048
    allow_insecure: bool = False
    frac_bits: int = 16
    feature_bits: int = 24
    z_bits: int = 26
    sigma: int = 40

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise DataError(f"epochs and batch_size must be positive (epochs={self.epochs}, "
                            f"batch_size={self.batch_size})")
        if not self.learning_rate > 0 or self.decay < 0 or self.l2 < 0 or self.l1 < 0:
            raise DataError("learning_rate must be > 0; decay, l2 and l1 >= 0")
        if not 8 <= self.frac_bits <= 24:
            raise DataError(f"frac_bits must be in 8..24 (got {self.frac_bits})")
        if not self.frac_bits + 2 <= self.feature_bits <= 40:
            raise DataError(f"feature_bits must be in frac_bits+2..40 (got {self.feature_bits})")
        if not self.frac_bits + 2 <= self.z_bits <= 40:
            raise DataError(f"z_bits must be in frac_bits+2..40 (got {self.z_bits})")
        if self.tol is not None and not self.tol > 0:
            raise DataError(f"tol must be positive or None (got {self.tol})")
        if self.early_stopping not in (None, "loss", "auc"):
            raise DataError(f"early_stopping must be None, 'loss' or 'auc' (got {self.early_stopping!r})")
        if self.patience < 1 or not self.min_delta >= 0:
            raise DataError(f"patience must be >= 1 and min_delta >= 0 (got {self.patience}, {self.min_delta})")
        if self.sigma < 40:
            raise DataError(f"sigma must be at least 40 (got {self.sigma})")
        object.__setattr__(self, "class_weight", _check_class_weight(self.class_weight))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LRParams:
        return cls(**d)


MAX_WEIGHT_BITS = 10
"""Class weights must be below ``2^MAX_WEIGHT_BITS`` (a public bound the protocol sizes its
packing slots with)."""
WEIGHT_FRAC_BITS = 8
"""Class weights are rounded to multiples of ``2^-WEIGHT_FRAC_BITS`` (1/256) by
:func:`sample_weights`, so that the federated protocol represents them exactly."""


def _check_class_weight(cw: Any) -> str | dict[int, float] | None:
    """``None``, ``"balanced"`` or ``{0: w0, 1: w1}`` (keys ``0``/``1`` or ``"0"``/``"1"``; a
    missing class weighs 1); weights positive, finite and below ``2^MAX_WEIGHT_BITS``."""
    if cw is None or cw == "balanced":
        return cw
    if not isinstance(cw, dict):
        raise DataError(f"class_weight must be None, 'balanced' or {{0: w0, 1: w1}} (got {cw!r})")
    out = {0: 1.0, 1: 1.0}
    for k, v in cw.items():
        key = {0: 0, 1: 1, "0": 0, "1": 1}.get(k) if not isinstance(k, bool) else None
        if key is None:
            raise DataError(f"class_weight keys must be the classes 0 and 1 (got {k!r})")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 2.0 ** MAX_WEIGHT_BITS:
            raise DataError(f"class_weight[{key}] must be a number in (0, {2 ** MAX_WEIGHT_BITS}) (got {v!r})")
        out[key] = float(v)
    return out


def sample_weights(y: Any, params: LRParams) -> np.ndarray | None:
    """Per-row weights of ``params.class_weight`` for labels ``y`` (``None`` without weights).

    ``"balanced"``: ``n / (k n_c)`` over the ``k`` classes present (scikit-learn's rule). Every
    weight is rounded to a multiple of ``2^-WEIGHT_FRAC_BITS`` (at least that): the oracle and
    the protocol use exactly these values (within 0.2% of scikit-learn's for weights >= 0.25)."""
    cw = params.class_weight
    if cw is None:
        return None
    yy = check_labels(y)
    if cw == "balanced":
        classes, counts = np.unique(yy, return_counts=True)
        table = dict(zip(classes.tolist(), (len(yy) / (len(classes) * counts)).tolist()))
        if max(table.values(), default=1.0) >= 2.0 ** MAX_WEIGHT_BITS:
            raise DataError(f"balanced class weights reach {max(table.values()):g}: a class is too rare "
                            f"(weights must stay below {2 ** MAX_WEIGHT_BITS})")
        w = np.array([table[v] for v in yy.tolist()], dtype=np.float64)
    else:
        w = np.where(yy == 1.0, cw[1], cw[0])
    step = 2.0 ** -WEIGHT_FRAC_BITS
    return np.maximum(np.rint(w / step), 1.0) * step


def sigmoid_t1(z: np.ndarray) -> np.ndarray:
    """First-order Taylor approximation of the sigmoid at 0: ``0.25 z + 0.5``."""
    return 0.25 * np.asarray(z, dtype=np.float64) + 0.5


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The exact logistic function (for scoring; training uses :func:`sigmoid_t1`)."""
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def batch_order(n: int, params: LRParams, epoch: int) -> np.ndarray:
    """Row positions in the order epoch ``epoch`` visits them (public: every party computes it)."""
    if params.shuffle_seed is None:
        return np.arange(n)
    return np.random.default_rng([int(params.shuffle_seed), int(epoch)]).permutation(n)


def batches(n: int, params: LRParams, epoch: int) -> list[np.ndarray]:
    """The mini-batches (row positions) of ``epoch``, in order."""
    order = batch_order(n, params, epoch)
    return [order[i:i + params.batch_size] for i in range(0, n, params.batch_size)]


def learning_rate_at(params: LRParams, epoch: int) -> float:
    """``learning_rate / (1 + decay * epoch)``."""
    return params.learning_rate / (1.0 + params.decay * epoch)


def check_labels(y: Any) -> np.ndarray:
    """Labels as float64 0/1; raises :class:`DataError` for anything else."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise DataError(f"labels must be a 1-d array (got shape {arr.shape})")
    if arr.dtype.kind not in "biuf":
        raise DataError(f"labels must be numeric 0/1 (got dtype {arr.dtype})")
    f = arr.astype(np.float64)
    if not np.all((f == 0.0) | (f == 1.0)):
        raise DataError("labels must be binary (0 or 1); found other values")
    return f


def check_features(X: Any, what: str = "X") -> np.ndarray:
    """Features as a finite 2-d float64 array; raises :class:`DataError` otherwise."""
    arr = np.asarray(X)
    if arr.ndim != 2:
        raise DataError(f"{what} must be a 2-d array (got shape {arr.shape})")
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{what} must be numeric (got dtype {arr.dtype})")
    f = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(f)):
        raise DataError(f"{what} contains NaN or infinite values")
    return f


def sgd_step(w: np.ndarray, gsum: np.ndarray, m: int, lr: float, params: LRParams) -> np.ndarray:
    """One update of coefficients ``w`` from the batch gradient sum ``gsum = X_B^T d_B`` of
    ``m`` rows: L2 in the gradient, L1 as a proximal soft-threshold."""
    w = w - lr * (gsum / m + params.l2 * w)
    if params.l1 > 0:
        w = np.sign(w) * np.maximum(np.abs(w) - lr * params.l1, 0.0)
    return w


def converged(before: np.ndarray, after: np.ndarray, params: LRParams) -> bool:
    """Convergence test of one party's own parameters over one epoch: ``max |change| < tol``.

    The federated trainer stops when every party's test holds, which is the same as this
    test on all the parameters together."""
    if params.tol is None:
        return False
    return bool(np.size(after) == 0 or float(np.max(np.abs(after - before))) < params.tol)


def log_loss(y: np.ndarray, z: np.ndarray) -> float:
    """Mean logistic loss of linear predictors ``z`` (exact sigmoid), computed stably."""
    z = np.asarray(z, dtype=np.float64)
    return float(np.mean(np.logaddexp(0.0, z) - np.asarray(y, dtype=np.float64) * z))


class EarlyStopping:
    """Early stopping on a validation metric (higher is better: ``auc`` or ``-log_loss``).

    :meth:`update` is called after every epoch with the validation linear predictors; it
    returns ``(improved, stop)``. The trainer keeps the parameters of the last improving
    epoch and restores them at the end."""

    def __init__(self, params: LRParams, y_val: Any) -> None:
        if params.early_stopping is None:
            raise DataError("early stopping is off (params.early_stopping is None)")
        self.params = params
        self.y = check_labels(y_val)
        if self.y.size == 0:
            raise DataError("early stopping needs validation rows")
        self.best = -np.inf
        self.best_epoch = -1
        self.scores: list[float] = []
        self._bad = 0

    def score(self, z: np.ndarray) -> float:
        from privfin.evaluation.metrics import auc  # (metrics imports this module)

        return auc(self.y, z) if self.params.early_stopping == "auc" else -log_loss(self.y, z)

    def update(self, epoch: int, z: np.ndarray) -> tuple[bool, bool]:
        sc = self.score(z)
        self.scores.append(sc)
        if sc > self.best + self.params.min_delta:
            self.best, self.best_epoch, self._bad = sc, epoch, 0
            return True, False
        self._bad += 1
        return False, self._bad >= self.params.patience


def check_validation(params: LRParams, X_val: Any, d: int, what: str = "validation features") -> np.ndarray | None:
    """Validation features if early stopping is on (required then, refused otherwise)."""
    if params.early_stopping is None:
        if X_val is not None:
            raise DataError("validation rows given but params.early_stopping is None")
        return None
    if X_val is None:
        raise DataError(f"early_stopping={params.early_stopping!r} needs validation rows ({what})")
    Xv = check_features(X_val, what)
    if Xv.shape[1] != d:
        raise DataError(f"{what}: {Xv.shape[1]} columns, training has {d}")
    return Xv


def train_reference(X: np.ndarray, y: np.ndarray, params: LRParams, info: dict[str, Any] | None = None, *,
                    X_val: Any = None, y_val: Any = None) -> tuple[np.ndarray, float]:
    """Centralized trainer on joined data: the oracle. Returns ``(coef, intercept)``;
    ``info`` (optional) receives ``epochs_run`` (and with early stopping ``best_epoch`` and
    ``val_scores``)."""
    X = check_features(X)
    y = check_labels(y)
    if X.shape[0] != y.shape[0]:
        raise DataError(f"X has {X.shape[0]} rows, y has {y.shape[0]}")
    n, d = X.shape
    Xv = check_validation(params, X_val, d)
    es = EarlyStopping(params, y_val) if Xv is not None else None
    sw = sample_weights(y, params)
    w = np.zeros(d)
    b = 0.0
    best = (w, b)
    epochs_run = 0
    for epoch in range(params.epochs):
        lr = learning_rate_at(params, epoch)
        before = np.r_[w, b]
        epochs_run += 1
        for idx in batches(n, params, epoch):
            xb = X[idx]
            z = xb @ w + b
            r = sigmoid_t1(z) - y[idx]
            if sw is not None:
                r = r * sw[idx]
            m = len(idx)
            w = sgd_step(w, xb.T @ r, m, lr, params)
            if params.fit_intercept:
                b = b - lr * float(r.sum()) / m
        if es is not None:
            improved, stop = es.update(epoch, Xv @ w + b)
            if improved:
                best = (w.copy(), b)
            if stop:
                break
        if converged(before, np.r_[w, b], params):
            break
    if es is not None:
        w, b = best
    if info is not None:
        info["epochs_run"] = epochs_run
        if es is not None:
            info["best_epoch"], info["val_scores"] = es.best_epoch, list(es.scores)
    return w, b


def standardize_fit(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and standard deviations (a zero std becomes 1)."""
    X = check_features(X)
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    return mu, np.where(sd > 0, sd, 1.0)


__all__ = [
    "EarlyStopping",
    "LRParams",
    "MAX_WEIGHT_BITS",
    "WEIGHT_FRAC_BITS",
    "batch_order",
    "batches",
    "check_features",
    "check_labels",
    "check_validation",
    "converged",
    "learning_rate_at",
    "log_loss",
    "sample_weights",
    "sgd_step",
    "sigmoid",
    "sigmoid_t1",
    "standardize_fit",
    "train_reference",
]
