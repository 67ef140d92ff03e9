import json
import math

import pytest
import torch

from lookright.errors import CheckpointError, ConfigError, RunError
from lookright.targets import LEARNING_TO_LOOK_CONTOUR
from lookright.train import load_config, train
from lookright.train.config import build_config
from lookright.train.run_eval import evaluate_run
from lookright.train.schedules import alignment_weight


def tiny_config(**extra):
    tree = {
        "name": "tiny", "seed": 1,
        "data": {"name": "colormnist", "embedded": True, "max_train": 300, "max_test": 200},
        "model": {"name": "lenet"},
        "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
        "scheduler": {"name": "step", "step_size": 1, "gamma": 0.5},
        "train": {"epochs": 4, "batch_size": 32},
        "eval": {"figure_images": 2},
    }
    for key, value in extra.items():
        tree[key] = {**tree.get(key, {}), **value} if isinstance(value, dict) else value
    return build_config(tree)


def kl_config(**extra):
    base = {
        "loss": {"name": "kl", "lambda0": 5.0, "ramp": "learning-to-look"},
        "target": {"pipeline": LEARNING_TO_LOOK_CONTOUR},
        "train": {"epochs": 4, "batch_size": 32, "attn_epochs": 2, "selection": "val_acc_x_align"},
    }
    for key, value in extra.items():
        base[key] = {**base.get(key, {}), **value}
    return tiny_config(**base)


def test_vanilla_run_writes_everything(tmp_path):
    metrics = train(tiny_config(), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.json", "checkpoints/last.pt", "checkpoints/best.pt",
                 "figures/training_curves.png", "figures/attention_test.png"):
        assert (run / name).is_file(), name
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["shifted_test_acc"] == metrics["shifted_test_acc"]
    assert len(saved["history"]) == 4 and saved["seed"] == 1 and saved["method"] == "vanilla"
    assert {"torch", "python"} <= set(saved["provenance"]["versions"]) and saved["provenance"]["device"].startswith("cpu")
    assert saved["sizes"] == {"train": 252, "val": 48, "test": 200}
    assert 0 <= saved["attention_mass"]["digit"]["mean"] <= 1


def test_two_phase_schedule(tmp_path):
    metrics = train(kl_config(), tmp_path / "run", progress=False)
    phases = [h["phase"] for h in metrics["history"]]
    assert phases == [1, 1, 2, 2]
    assert [h["lambda"] for h in metrics["history"]] == [5.0, 5.0, 5.0, 5.5]
    # the optimiser and scheduler start anew at phase 2: lr back to its initial value
    assert [h["lr"] for h in metrics["history"]] == pytest.approx([0.01, 0.005, 0.01, 0.005])
    assert metrics["selected_epoch"] >= 2


def test_alignment_training_lowers_alignment_loss(tmp_path):
    metrics = train(kl_config(), tmp_path / "run", progress=False)
    aligns = [h["train_align"] for h in metrics["history"]]
    assert aligns[1] < aligns[0]


@pytest.mark.parametrize("stop", [1, 2, 3])
def test_resume_matches_uninterrupted(tmp_path, stop):
    full = train(kl_config(), tmp_path / "full", progress=False)
    partial = train(kl_config(), tmp_path / "part", progress=False, stop_after_epoch=stop)
    assert partial == {"interrupted_after_epoch": stop}
    assert not (tmp_path / "part" / "metrics.json").exists()
    resumed = train(kl_config(), tmp_path / "part", resume=True, progress=False)
    for key in ("shifted_test_acc", "val_acc", "val_align", "selected_epoch"):
        assert resumed[key] == full[key], key
    assert [h["test_acc"] for h in resumed["history"]] == [h["test_acc"] for h in full["history"]]


def test_deterministic_with_seed(tmp_path):
    a = train(tiny_config(), tmp_path / "a", progress=False)
    b = train(tiny_config(), tmp_path / "b", progress=False)
    assert a["history"] == b["history"]


def test_resume_without_checkpoint(tmp_path):
    with pytest.raises(RunError, match="holds no run to resume"):
        train(tiny_config(), tmp_path / "empty", resume=True, progress=False)
    assert not (tmp_path / "empty").exists()


def test_rrr_and_camal_and_decoy(tmp_path):
    rrr = tiny_config(data={"name": "decoymnist-rrr"}, loss={"name": "rrr", "lambda0": 1.0},
                      target={"pipeline": [{"op": "binarise"}, {"op": "dilate", "size": 3},
                                           {"op": "resize", "size": "attention"}]},
                      train={"epochs": 2})
    m = train(rrr, tmp_path / "rrr", progress=False)
    assert m["method"] == "rrr" and m["attention_mass"]["shortcut"]["mean"] is not None
    camal = tiny_config(loss={"name": "camal", "lambda0": 1.0}, train={"epochs": 2})
    assert train(camal, tmp_path / "camal", progress=False)["method"] == "camal"


def test_cdep_model_uses_gradcam(tmp_path):
    cfg = tiny_config(data={"name": "decoymnist-cdep"}, model={"name": "cdep-decoymnist"}, train={"epochs": 2},
                      loss={"name": "camal"}, attention={"extractor": "gradcam"})
    assert train(cfg, tmp_path / "run", progress=False)["eval_extractor"] == "gradcam"


def test_eval_run(tmp_path):
    metrics = train(tiny_config(train={"epochs": 2}), tmp_path / "run", progress=False)
    again = evaluate_run(tmp_path / "run", extractor="gradcam")
    assert again["shifted_test_acc"] == metrics["shifted_test_acc"]
    # another extractor is stored beside the trainer's numbers, never over them
    assert again["eval_extractor"] == "cam" and again["attention_mass"] == metrics["attention_mass"]
    assert again["evaluations"]["gradcam"]["extractor"] == "gradcam" and "evaluation" not in again
    with pytest.raises(CheckpointError):
        evaluate_run(tmp_path / "nothing")


def test_invalid_configs(tmp_path):
    with pytest.raises(ConfigError, match="attn_epochs.*needs an alignment loss"):
        tiny_config(train={"attn_epochs": 2})
    with pytest.raises(ConfigError, match="optim.lr"):
        tiny_config(optim={"lr": -1})
    with pytest.raises(ConfigError, match="data.colour"):
        tiny_config(data={"colour": "red"})
    with pytest.raises(ConfigError, match="unknown model 'vgg99'"):
        train(tiny_config(model={"name": "vgg99"}), tmp_path / "x", progress=False)
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["train.epochs"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_shipped_configs_validate():
    from pathlib import Path

    configs = sorted(Path(__file__).resolve().parents[1].glob("configs/[a-z]*.yaml"))
    assert len(configs) >= 12
    for path in configs:
        cfg = load_config(path)
        assert cfg.name == path.stem
    kl = load_config(Path(__file__).resolve().parents[1] / "configs" / "colormnist-kl.yaml")
    assert (kl.optim.lr, kl.optim.momentum, kl.optim.weight_decay) == (1e-3, 0.98, 1e-4)
    assert (kl.train.epochs, kl.train.batch_size, kl.train.attn_epochs, kl.loss.lambda0) == (30, 32, 11, 160)


def test_lambda_ramp():
    cfg = kl_config().loss.model_copy(update={"lambda0": 160.0})
    assert alignment_weight(cfg, 5, 11) == 160.0
    assert alignment_weight(cfg, 21, 11) == pytest.approx(320.0)


def test_all_zero_masks_train_without_nan(tmp_path, monkeypatch):
    cfg = tiny_config(loss={"name": "kl"}, target={"source": "shortcut"}, train={"epochs": 2},
                      data={"name": "decoymnist-cdep", "max_train": 100})
    # shortcut masks exist; replace them by empty ones through a pipeline that erases everything
    cfg = cfg.model_copy(update={"target": cfg.target.model_copy(update={"pipeline": [
        {"op": "binarise", "threshold": 2.0}, {"op": "resize", "size": "attention"}]})})
    m = train(cfg, tmp_path / "run", progress=False)
    assert all(h["train_align"] == 0.0 for h in m["history"])
    assert torch.isfinite(torch.tensor(m["shifted_test_acc"]))


def test_phase1_cross_entropy_and_exp_selection(tmp_path):
    cfg = kl_config(train={"phase1_loss": "ce", "selection": "val_acc_x_exp_align", "selection_beta": 0.3})
    m = train(cfg, tmp_path / "run", progress=False)
    hist = m["history"]
    assert hist[1]["train_ce"] < hist[0]["train_ce"]  # phase 1 trained on cross-entropy
    assert hist[0]["train_align"] is None and hist[2]["train_align"] is not None  # no attention work in phase 1
    scores = {h["epoch"]: h["val_acc"] * math.exp(-0.3 * h["val_align"]) for h in hist[2:]}
    assert m["selected_epoch"] == max(scores, key=scores.get)


def test_selection_rules():
    from lookright.train.evaluation import selection_score

    cfg = kl_config()
    assert selection_score(cfg, 0, {"acc": 90.0, "align": 0.5}) is None  # phase 1 is never selected
    assert selection_score(cfg, 3, {"acc": 90.0, "align": 0.5}) == pytest.approx(45.0)
