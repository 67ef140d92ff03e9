"""Data: MNIST sources, shortcut benchmarks with ground-truth masks."""

from lookright.data import colormnist, decoymnist  # noqa: F401  (register generators)
from lookright.data.benchmark import GENERATORS, Benchmark, Split, create_benchmark, split_validation
from lookright.data.mnist import MNIST, load_embedded, load_mnist

__all__ = [
    "GENERATORS", "Benchmark", "MNIST", "Split", "create_benchmark", "load_embedded",
    "load_mnist", "split_validation",
]
