"""Evaluation at the label holder: metrics (:mod:`.metrics`) and inline-SVG charts (:mod:`.plots`)."""

from privfin.evaluation.metrics import (
                                        PSI_EPSILON,
                                        ModelEval,
                                        ThresholdMetrics,
                                        at_threshold,
                                        auc,
                                        compare,
                                        confusion_matrix,
                                        evaluate,
                                        gini,
                                        ks,
                                        ks_curve,
                                        lift_table,
                                        metrics_frame,
                                        population_stability_index,
                                        precision_recall,
                                        response_rate_top,
                                        roc_curve,
                                        score_bands,
                                        stability_table,
)

__all__ = ["PSI_EPSILON", "ModelEval", "ThresholdMetrics", "at_threshold", "auc", "compare", "confusion_matrix",
           "evaluate", "gini", "ks", "ks_curve", "lift_table", "metrics_frame", "population_stability_index",
           "precision_recall", "response_rate_top", "roc_curve", "score_bands", "stability_table"]
