"""`lookright demo`: does alignment remove a shortcut, or only move the map?

On ``frame-colour-mnist`` (a colour frame codes the label in training and a random digit at
test time) it trains three LeNets with the shortcut suite's recipe (Adam, batch 64): vanilla,
CAMAL as published (the true class's CAM pulled inside the digit mask) and mask-guided
counterfactual augmentation with counterfactual selection (no shifted data used). Runs on the
embedded MNIST subset (5,000 training digits) unless a data folder is given.
"""

from __future__ import annotations

from pathlib import Path

from lookright.train.config import build_config

TITLE = "frame-colour-mnist: frame colour = label in training, a random digit's colour at test time"


def demo_configs(out_dir: str, data_dir: str | None, epochs: int, seed: int) -> list:
    data = {"name": "frame-colour-mnist", "embedded": data_dir is None, "data_dir": data_dir}
    if data_dir is not None:
        data["max_train"] = 5000
    common = {
        "seed": seed, "out_dir": out_dir, "data": data, "model": {"name": "lenet"},
        "optim": {"name": "adam", "lr": 3e-3}, "scheduler": {"name": "none"},
    }
    train = {"epochs": epochs, "batch_size": 64}
    methods = {
        "vanilla": {},
        "camal": {"loss": {"name": "camal", "lambda0": 1.0}, "attention": {"extractor": "cam"}},
        "counterfactual": {"augment": {"counterfactual": 1.0}, "train": {**train, "selection": "counterfactual"}},
    }
    return [(build_config({**common, "name": f"demo-{m}", "train": train, **extra}), Path(out_dir) / "demo" / m)
            for m, extra in methods.items()]
