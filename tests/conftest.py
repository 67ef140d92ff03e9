import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"  # tests name configs by absolute path: they run from any folder
SHARED = REPO.parent / "shared" / "data"


@pytest.fixture
def mnist_dir() -> Path:
    """A folder holding full MNIST: $LOOKRIGHT_DATA, else ../shared/data; skip if neither."""
    root = Path(os.environ.get("LOOKRIGHT_DATA", SHARED))
    if not (root / "mnist" / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip("full MNIST not available (set LOOKRIGHT_DATA)")
    return root


def tiny_open_clip(folder: Path, name: str, image_size: int = 16, patch_size: int = 4) -> Path:
    """Register a tiny open_clip ViT (``image_size`` px, patch ``patch_size``, width 32, 2 layers) as
    ``name`` and save its random weights; returns the checkpoint file. Skips the test without open_clip."""
    import json

    open_clip = pytest.importorskip("open_clip")
    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": image_size, "layers": 2, "width": 32, "patch_size": patch_size,
                                           "head_width": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}
    (folder / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(folder)
    torch.manual_seed(0)
    torch.save(open_clip.create_model(name).state_dict(), folder / f"{name}.pt")
    return folder / f"{name}.pt"
