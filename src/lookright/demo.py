"""`lookright demo`: vanilla against Learning to Look's KL alignment on ColorMNIST.

Runs on the embedded MNIST subset (5,000 training digits) unless a data folder is given, with
the Learning to Look recipe shortened to fit a few minutes on two CPU cores.
"""

from __future__ import annotations

from pathlib import Path

from lookright.targets import LEARNING_TO_LOOK_CONTOUR
from lookright.train.config import build_config


def demo_configs(out_dir: str, data_dir: str | None, epochs: int, seed: int) -> list:
    data = {"name": "colormnist", "embedded": data_dir is None, "data_dir": data_dir}
    if data_dir is not None:
        data["max_train"] = 5000
    common = {
        "seed": seed, "out_dir": out_dir, "data": data, "model": {"name": "lenet"},
        "optim": {"name": "sgd", "lr": 1e-3, "momentum": 0.98, "weight_decay": 1e-4},
        "scheduler": {"name": "step", "step_size": 7, "gamma": 0.1},
    }
    attn = max(1, epochs * 11 // 30)
    vanilla = build_config({**common, "name": "demo-vanilla", "train": {"epochs": epochs, "batch_size": 32}})
    kl = build_config({
        **common, "name": "demo-kl",
        "loss": {"name": "kl", "lambda0": 160, "ramp": "learning-to-look"},
        "target": {"pipeline": LEARNING_TO_LOOK_CONTOUR},
        "train": {"epochs": epochs, "batch_size": 32, "attn_epochs": attn, "selection": "val_acc_x_exp_align"},
    })
    return [(vanilla, Path(out_dir) / "demo" / "vanilla"), (kl, Path(out_dir) / "demo" / "kl")]
