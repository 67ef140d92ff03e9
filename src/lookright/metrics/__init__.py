"""Metrics: accuracy and attention localisation."""

from lookright.metrics.accuracy import accuracy, predict
from lookright.metrics.localisation import EnergyAccumulator, energy_inside

__all__ = ["EnergyAccumulator", "accuracy", "energy_inside", "predict"]
