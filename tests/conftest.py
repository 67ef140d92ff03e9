import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def mnist_dir() -> Path:
    """A folder holding full MNIST: $LOOKRIGHT_DATA, else ../shared/data; skip if neither."""
    root = Path(os.environ.get("LOOKRIGHT_DATA", SHARED))
    if not (root / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("full MNIST not available (set LOOKRIGHT_DATA)")
    return root
