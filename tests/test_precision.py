"""Devices and precision through Lightning Fabric (lookright.train.fabric)."""

import contextlib
import json
import math

import pytest
import torch

from lookright.errors import ConfigError
from lookright.train import train
from lookright.train import trainer as trainer_module
from test_trainer import kl_config, tiny_config


class PlainFabric:
    """Fabric bypassed: the plain PyTorch step the trainer ran before Fabric."""

    world_size, global_rank, device = 1, 0, torch.device("cpu")
    strategy = type("Strategy", (), {"precision": type("Precision", (), {"state_dict": lambda self: {}})()})()

    def barrier(self):
        pass

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
    ({"precision": "16-mixed", "device": "cpu"}, "16-mixed needs a CUDA GPU"),
])
def test_unavailable_setups_are_refused_before_the_folder(tmp_path, train_keys, message):
    with pytest.raises(ConfigError, match=message):
        train(tiny_config(train=train_keys), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_several_gpus_are_chosen_by_visibility():
    from lookright.train.fabric import check_accelerator

    cfg = tiny_config(train={"devices": 2})
    with pytest.raises(ConfigError, match="choose them with CUDA_VISIBLE_DEVICES"):
        check_accelerator(cfg, torch.device("cuda", 1))
    with pytest.raises(ConfigError, match="need CUDA GPUs or CPU processes"):
        check_accelerator(cfg, torch.device("mps"))


def test_compile_wraps_the_training_model(tmp_path, monkeypatch):
    # torch.compile itself works on CPU (a minute for LeNet): here only that the trainer asks for it
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model: compiled.append(model) or model)
    metrics = train(tiny_config(train={"epochs": 1, "compile": True}), tmp_path / "run", progress=False)
    assert len(compiled) == 1 and math.isfinite(metrics["history"][0]["train_ce"])


def test_two_processes_train_as_one_device(tmp_path):
    """DDP on two CPU processes (gloo): each takes half of every batch, gradients are averaged, so the
    run follows the one-device run up to floating-point reassociation (every batch splits evenly:
    252 train images, batch 32, last batch 28); interrupted and resumed, too."""
    one = train(kl_config(), tmp_path / "one", progress=False)
    ddp = kl_config(train={"devices": 2, "threads": 1})
    assert train(ddp, tmp_path / "two", progress=False, stop_after_epoch=3) == {"interrupted_after_epoch": 3}
    two = train(ddp, tmp_path / "two", resume=True, progress=False)  # phase 2 resumed on two processes
    saved = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert two["shifted_test_acc"] == saved["shifted_test_acc"]  # what train returns is what the folder holds
    assert saved["devices"] == 2 and one["devices"] == 1 and saved["sizes"] == one["sizes"]
    assert (tmp_path / "two" / "checkpoints" / "best.pt").is_file()
    for a, b in zip(one["history"], saved["history"], strict=True):
        for key in ("train_ce", "train_align", "val_loss", "val_align"):
            assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-4), (a["epoch"], key)
        assert abs(b["val_acc"] - a["val_acc"]) <= 100 / 48 + 1e-9  # at most one of 48 images flips
    assert saved["selected_epoch"] == one["selected_epoch"]


def test_a_failing_process_fails_the_run_with_its_cause(tmp_path):
    from lookright.errors import RunError

    cfg = tiny_config(train={"devices": 2, "threads": 1, "epochs": 1}, optim={"lr": 1e30})
    with pytest.raises(RunError, match="2-device run failed: .*the loss is not finite"):
        train(cfg, tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"


def test_the_gradient_scaler_state_travels_with_the_checkpoint():
    """16-mixed's scale is checkpointed and restored (the plugin is built here with a CPU scaler)."""
    from types import SimpleNamespace

    from lightning_fabric.plugins.precision import MixedPrecision

    from lookright.train.fabric import load_precision_state, precision_state

    def fabric(scale):
        scaler = torch.amp.GradScaler("cpu", init_scale=scale)
        return SimpleNamespace(strategy=SimpleNamespace(precision=MixedPrecision("16-mixed", "cpu", scaler=scaler)))

    saved = precision_state(fabric(512.0))
    assert saved["scale"] == 512.0
    fresh = fabric(65536.0)
    load_precision_state(fresh, {"precision": saved})
    assert fresh.strategy.precision.scaler.state_dict()["scale"] == 512.0
    load_precision_state(fresh, {})  # an older checkpoint: the scaler is left as it is
    assert fresh.strategy.precision.scaler.state_dict()["scale"] == 512.0
