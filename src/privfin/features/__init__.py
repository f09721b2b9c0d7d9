"""Feature engineering across parties: local binning, WOE/IV from encrypted labels.

- :mod:`privfin.features.binning`: :class:`Binner`, each party bins its own columns;
- :mod:`privfin.features.woe`: the plain math (WOE, IV, AUC, KS from per-bin counts), the oracle;
- :mod:`privfin.features.federated`: :func:`woe_active` / :func:`woe_passive`, the protocol;
- :mod:`privfin.features.optbin`: label-aware optimal binning on anonymous bin counts;
- :mod:`privfin.features.screening`, :mod:`privfin.features.report`: screening statistics,
  the selection policy and the selection report;
- :mod:`privfin.features.correlation`: cross-party Pearson correlation.
"""

from privfin.features.binning import Binner, ColumnBins
from privfin.features.correlation import CorrParams, PearsonCorrelation, pearson_active, pearson_passive, plain_corr
from privfin.features.federated import PassiveWoeResult, WoeParams, WoeResult, woe_active, woe_passive
from privfin.features.woe import SMOOTHING, BinStats, auc_ks, bin_stats, plain_stats, woe_iv

__all__ = [
    "SMOOTHING", "BinStats", "Binner", "ColumnBins", "CorrParams", "PassiveWoeResult", "PearsonCorrelation",
    "WoeParams", "WoeResult", "auc_ks", "bin_stats", "pearson_active", "pearson_passive", "plain_corr",
    "plain_stats", "woe_active", "woe_iv", "woe_passive",
]
