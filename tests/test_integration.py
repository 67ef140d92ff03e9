"""End to end on the embedded MNIST subset: alignment changes where the model looks."""

import pytest

from lookright.train import train
from lookright.train.config import build_config


def decoy_run(tmp_path, name, loss=None, seed=0):
    tree = {
        "name": name, "seed": seed,
        "data": {"name": "decoymnist-cdep", "embedded": True, "max_train": 2000, "max_test": 500},
        "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
        "train": {"epochs": 3, "batch_size": 64},
        "eval": {"figure_images": 1},
    }
    if loss:
        tree["loss"] = loss
        tree["target"] = {"pipeline": [{"op": "binarise"}, {"op": "dilate", "size": 3},
                                       {"op": "resize", "size": "attention"}]}
    return train(build_config(tree), tmp_path / name, progress=False)


@pytest.mark.integration
@pytest.mark.parametrize("seed", [0, 1])
def test_camal_moves_attention_off_the_decoy(tmp_path, seed):
    vanilla = decoy_run(tmp_path, "vanilla", seed=seed)
    camal = decoy_run(tmp_path, "camal", {"name": "camal", "lambda0": 1.0}, seed=seed)
    v, c = vanilla["attention_mass"], camal["attention_mass"]
    assert c["shortcut"]["mean"] < v["shortcut"]["mean"]
    assert c["digit"]["mean"] > v["digit"]["mean"]
