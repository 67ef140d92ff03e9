"""Build the MNIST subset embedded in the package (used by `lookright demo` and tests offline).

Takes the first N_TRAIN training and N_TEST test digits of full MNIST in its original order.

    python scripts/build_mnist_subset.py [--data-dir DIR]
"""

from __future__ import annotations

import argparse

import numpy as np

from lookright.data.mnist import EMBEDDED, load_mnist

N_TRAIN, N_TEST = 5000, 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    mnist = load_mnist(args.data_dir)
    EMBEDDED.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        EMBEDDED,
        train_images=mnist.train_images[:N_TRAIN],
        train_labels=mnist.train_labels[:N_TRAIN],
        test_images=mnist.test_images[:N_TEST],
        test_labels=mnist.test_labels[:N_TEST],
    )
    print(f"wrote {EMBEDDED} ({EMBEDDED.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
