"""Models: vertical federated logistic regression (:mod:`privfin.models.hetero_lr`) and its
plaintext oracle (:mod:`privfin.models.logistic`)."""

from privfin.models.logistic import LRParams, train_reference

__all__ = ["LRParams", "train_reference"]
