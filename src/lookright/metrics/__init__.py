"""Metrics: accuracy, attention localisation, faithfulness and statistics."""

from lookright.metrics.accuracy import accuracy, predict
from lookright.metrics.faithfulness import normalised_auc, perturbation_curve, removal_effect, road
from lookright.metrics.localisation import (
    LOCALISATION, LocalisationAccumulator, MetricAccumulator,
    energy_pointing_game, iou, pointing_game, relevance_mass_accuracy, relevance_rank_accuracy, roc_auc,
    top_k_intersection,
)
from lookright.metrics.statistics import describe, mcnemar, paired_tests, wilson

__all__ = [
    "LOCALISATION", "LocalisationAccumulator", "MetricAccumulator", "accuracy", "describe",
    "energy_pointing_game", "iou", "mcnemar", "normalised_auc", "paired_tests",
    "perturbation_curve", "pointing_game", "predict", "relevance_mass_accuracy", "relevance_rank_accuracy",
    "removal_effect", "road", "roc_auc", "top_k_intersection", "wilson",
]
