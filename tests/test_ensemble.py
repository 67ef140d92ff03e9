"""Ensembled training equals the sequential runs up to floating-point reassociation."""

import json

import pytest
import torch
from conftest import CONFIGS
from test_trainer import kl_config, tiny_config
from typer.testing import CliRunner

from lookright.cli import app
from lookright.errors import ConfigError
from lookright.losses import create_loss
from lookright.runs.folder import RunFolder
from lookright.train import train
from lookright.train.ensemble import TOLERANCE, train_ensemble
from lookright.train.sweep import ensemble_jobs, sweep_specs


def member(seed: int, lam: float = 5.0, **extra):
    extra["train"] = {"epochs": 2, "attn_epochs": 1, "threads": 1, **extra.get("train", {})}
    cfg = kl_config(log={"backends": []}, loss={"lambda0": lam}, **extra)
    return cfg.model_copy(update={"seed": seed, "name": f"kl-{lam}"})


def assert_close(seq: dict, ens: dict) -> None:
    assert ens["selected_epoch"] == seq["selected_epoch"] and ens["epochs_run"] == seq["epochs_run"]
    for key in ("shifted_test_acc", "val_acc", "val_counterfactual_acc"):
        assert abs(ens[key] - seq[key]) <= TOLERANCE["acc_points"], key
    for a, b in zip(seq["history"], ens["history"], strict=True):
        for key in ("train_ce", "train_align", "val_align"):
            if a[key] is None:
                assert b[key] is None
            else:
                assert b[key] == pytest.approx(a[key], rel=TOLERANCE["train_ce_rel"]), key
        assert abs(a["val_acc"] - b["val_acc"]) <= TOLERANCE["acc_points"]


@pytest.mark.parametrize("cfgs", [
    [member(1), member(2), member(1, lam=2.0)],  # several seeds: stacked inputs
    [member(1), member(1, lam=2.0)],  # one seed: one shared input
    [member(1, augment={"counterfactual": 0.5}), member(2, augment={"counterfactual": 0.5})],
], ids=["seeds", "one-seed", "counterfactual-augmentation"])
def test_ensemble_equals_sequential_runs(tmp_path, cfgs):
    seq = [train(c, tmp_path / f"seq{i}", progress=False) for i, c in enumerate(cfgs)]
    ens = train_ensemble(cfgs, [tmp_path / f"ens{i}" for i in range(len(cfgs))])
    for i, (a, b) in enumerate(zip(seq, ens, strict=True)):
        assert_close(a, b)
        assert b["ensemble_size"] == len(cfgs) and b["seed"] == cfgs[i].seed
        s, e = RunFolder(tmp_path / f"seq{i}"), RunFolder(tmp_path / f"ens{i}")
        assert e.state() == "finished" and e.info()["fingerprint"] == s.info()["fingerprint"]
        assert (tmp_path / f"ens{i}" / "checkpoints" / "best.pt").is_file()
        assert (tmp_path / f"ens{i}" / "figures" / "attention_test.png").is_file()


def test_vanilla_ensemble_with_other_learning_rates(tmp_path):
    cfgs = [tiny_config(train={"epochs": 2, "threads": 1}, log={"backends": []}, optim={"lr": lr}).model_copy(
        update={"seed": seed}) for seed, lr in ((1, 0.01), (2, 0.02))]
    ens = train_ensemble(cfgs, [tmp_path / "e0", tmp_path / "e1"])
    for i, c in enumerate(cfgs):
        assert_close(train(c, tmp_path / f"s{i}", progress=False), ens[i])


def test_member_losses_match_evaluate():
    kl = create_loss("kl")
    maps = torch.randn(3, 4, 5, 5)
    target = (torch.rand(3, 4, 5, 5) > 0.5).float()
    target[1, 2] = 0  # one empty mask
    target[2] = 0  # a batch whose masks are all empty
    got = kl.member_losses(maps, target)
    want = torch.stack([kl.evaluate(maps[s], target[s]).loss for s in range(3)])
    torch.testing.assert_close(got, want)


def test_a_diverging_member_fails_alone(tmp_path):
    good, bad = member(1), member(1).model_copy(update={"name": "bad"}, deep=True)
    bad.optim.lr = 1e8
    bad.loss.lambda0 = 1e8
    out = train_ensemble([good, bad], [tmp_path / "good", tmp_path / "bad"])
    assert "error" not in out[0] and RunFolder(tmp_path / "good").state() == "finished"
    assert "TrainingDiverged" in out[1]["error"] and "epoch" in out[1]["error"]
    assert not (tmp_path / "bad" / "metrics.json").exists()


@pytest.mark.parametrize("change,reason", [
    ({"attention": {"extractor": "gradcam"}}, "only CAM maps"),
    ({"train": {"precision": "bf16-mixed"}}, "full precision"),
    ({"data": {"name": "manifest", "path": "x.csv"}}, "stream"),
])
def test_what_cannot_be_ensembled_is_refused(tmp_path, change, reason):
    with pytest.raises(ConfigError, match=reason):
        train_ensemble([member(1, **change), member(2, **change)], [tmp_path / "a", tmp_path / "b"])
    assert not (tmp_path / "a").exists()


def test_members_must_share_the_architecture(tmp_path):
    other = member(2, model={"name": "lenet", "options": {"size": 64}})
    with pytest.raises(ConfigError, match="may differ only in"):
        train_ensemble([member(1), other], [tmp_path / "a", tmp_path / "b"])


def test_sweep_groups_new_runs_by_settings(tmp_path):
    base = member(0).model_copy(update={"out_dir": str(tmp_path)})
    specs = sweep_specs(base, 2, ["loss.lambda0=2,5,8"])
    jobs = ensemble_jobs(specs, 3)
    assert sorted(len(j.extra.get("members", [j])) for j in jobs) == [3, 3]
    for job in jobs:  # same-seed members first: they share their input batches
        seeds = {m.config["seed"] for m in job.extra.get("members", [job])}
        assert len(seeds) == 1
    assert ensemble_jobs(specs, 1) == specs
    train(member(0, lam=2.0).model_copy(update={"name": specs[0].config["name"], "out_dir": str(tmp_path)}),
          specs[0].run_dir, progress=False)
    jobs = ensemble_jobs(specs, 6)  # a finished run is read back, never a member
    assert sorted(len(j.extra.get("members", [j])) for j in jobs) == [1, 5]


def test_cli_sweep_ensemble_then_summarize(tmp_path):
    runner = CliRunner()
    argv = ["sweep", str(CONFIGS / "colormnist-kl.yaml"), "--seeds", "2", "--ensemble", "2", "data.embedded=true",
            "data.max_train=150", "data.max_test=60", "train.epochs=2", "train.attn_epochs=1", "eval.figure_images=1",
            "log.backends=[]", f"out_dir={tmp_path}"]
    result = runner.invoke(app, argv)
    assert result.exit_code == 0, result.output
    runs = sorted((tmp_path / "colormnist-kl").iterdir())
    assert [r.name for r in runs] == ["seed0", "seed1"]
    assert all(json.loads((r / "metrics.json").read_text())["ensemble_size"] == 2 for r in runs)
    again = runner.invoke(app, argv)  # finished runs are read back, not trained again
    assert again.exit_code == 0 and "colormnist-kl" in again.output
    status = runner.invoke(app, ["status", str(tmp_path)])
    assert status.exit_code == 0 and "2 finished" in status.output
    refused = runner.invoke(app, [*argv[:6], "attention.extractor=gradcam", *argv[6:], f"out_dir={tmp_path / 'g'}"])
    assert refused.exit_code != 0 and "only CAM maps" in refused.output
