"""Devices and precision through Lightning Fabric (lookright.train.fabric)."""

import contextlib
import json
import math

import pytest

from lookright.errors import ConfigError
from lookright.train import train
from lookright.train import trainer as trainer_module
from test_trainer import kl_config, tiny_config


class PlainFabric:
    """Fabric bypassed: the plain PyTorch step the trainer ran before Fabric."""

    def setup_module(self, module):
        return module

    def setup_optimizers(self, optimizer):
        return optimizer

    def autocast(self):
        return contextlib.nullcontext()

    def backward(self, loss):
        loss.backward()


@pytest.mark.parametrize("make", [tiny_config, kl_config], ids=["vanilla", "two-phase-kl"])
def test_default_fabric_matches_plain_pytorch(tmp_path, monkeypatch, make):
    fabric = train(make(), tmp_path / "fabric", progress=False)
    monkeypatch.setattr(trainer_module, "create_fabric", lambda cfg, device: PlainFabric())
    plain = train(make(), tmp_path / "plain", progress=False)
    assert fabric["history"] == plain["history"]
    assert fabric["shifted_test_acc"] == plain["shifted_test_acc"] and fabric["precision"] == "32"


def bf16(**extra):
    return kl_config(train={"epochs": 3, "attn_epochs": 1, "precision": "bf16-mixed"}, **extra)


def test_bf16_mixed_trains_on_cpu(tmp_path):
    metrics = train(bf16(), tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["precision"] == "bf16-mixed" and saved["shifted_test_acc"] == metrics["shifted_test_acc"]
    for record in saved["history"]:
        assert math.isfinite(record["train_ce"]) and math.isfinite(record["train_align"])
    full = train(kl_config(train={"epochs": 3, "attn_epochs": 1}), tmp_path / "fp32", progress=False)
    assert full["history"] != saved["history"]  # autocast did run


def test_bf16_mixed_resume_is_exact(tmp_path):
    full = train(bf16(), tmp_path / "full", progress=False)
    assert train(bf16(), tmp_path / "part", progress=False, stop_after_epoch=2) == {"interrupted_after_epoch": 2}
    resumed = train(bf16(), tmp_path / "part", resume=True, progress=False)
    assert resumed["history"] == full["history"] and resumed["shifted_test_acc"] == full["shifted_test_acc"]


@pytest.mark.parametrize("train_keys, message", [
    ({"devices": 2}, "multi-device training is not available yet"),
    ({"strategy": "ddp"}, "multi-device training is not available yet"),
    ({"precision": "16-mixed", "device": "cpu"}, "16-mixed needs a CUDA GPU"),
])
def test_unavailable_setups_are_refused_before_the_folder(tmp_path, train_keys, message):
    with pytest.raises(ConfigError, match=message):
        train(tiny_config(train=train_keys), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_compile_wraps_the_training_model(tmp_path, monkeypatch):
    # torch.compile itself works on CPU (a minute for LeNet): here only that the trainer asks for it
    import torch

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model: compiled.append(model) or model)
    metrics = train(tiny_config(train={"epochs": 1, "compile": True}), tmp_path / "run", progress=False)
    assert len(compiled) == 1 and math.isfinite(metrics["history"][0]["train_ce"])
