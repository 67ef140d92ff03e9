"""Data: MNIST sources, shortcut benchmarks with ground-truth masks."""

from lookright.data import colormnist, decoymnist, shortcut_suite  # noqa: F401  (register generators)
from lookright.data.benchmark import (
    GENERATORS, Benchmark, Split, check_masks, create_benchmark, register_benchmark, split_validation,
)
from lookright.data.mnist import MNIST, load_embedded, load_mnist

__all__ = [
    "GENERATORS", "Benchmark", "MNIST", "Split", "check_masks", "create_benchmark", "load_embedded",
    "register_benchmark",
    "load_mnist", "split_validation",
]
