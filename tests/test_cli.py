import json

import numpy as np
from typer.testing import CliRunner

from conftest import CONFIGS
from lookright.cli import app

runner = CliRunner()


def test_data_export_and_list(tmp_path):
    out = tmp_path / "c.npz"
    result = runner.invoke(app, ["data", "export", "colormnist", "--out", str(out), "--embedded"])
    assert result.exit_code == 0, result.output
    with np.load(out) as z:
        assert z["x_train"].shape == (5000, 3, 28, 28)
    assert "decoymnist-rrr" in runner.invoke(app, ["data", "list"]).output


def test_train_cli_with_overrides(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("inherit: " + str((__import__("pathlib").Path(__file__).parents[1] / "configs" /
                                      "colormnist-kl.yaml").resolve()) + "\n")
    result = runner.invoke(app, [
        "train", str(cfg), "data.embedded=true", "data.max_train=200", "data.max_test=100",
        "train.epochs=2", "train.attn_epochs=1", f"out_dir={tmp_path}", "--run-dir", str(tmp_path / "r"),
    ])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["method"] == "kl" and len(metrics["history"]) == 2


def test_cli_errors_are_clear(tmp_path):
    result = runner.invoke(app, ["train", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "config file not found" in result.output
    result = runner.invoke(app, ["data", "export", "svhn", "--out", str(tmp_path / "x.npz"), "--embedded"])
    assert result.exit_code == 2 and "unknown benchmark" in result.output
    result = runner.invoke(app, ["eval", str(tmp_path)])
    assert result.exit_code == 2 and "not a run folder" in result.output
    result = runner.invoke(app, ["train", str(CONFIGS / "colormnist-vanilla.yaml"), "--resume",
                                 "--run-dir", str(tmp_path / "none")])
    assert result.exit_code == 2 and "holds no run to resume" in result.output
    result = runner.invoke(app, ["data", "export", "colormnist", "--out", str(tmp_path / "x.npz"),
                                 "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "lacks" in result.output


def test_sweep_and_summarize(tmp_path):
    result = runner.invoke(app, [
        "sweep", str(CONFIGS / "decoymnist-cdep-vanilla.yaml"), "--seeds", "2", "--grid", "optim.lr=0.01",
        "data.embedded=true", "data.max_train=150", "data.max_test=100", "train.epochs=1",
        f"out_dir={tmp_path}", "eval.figure_images=1",
    ])
    assert result.exit_code == 0, result.output
    assert len(list(tmp_path.rglob("metrics.json"))) == 2
    summary = runner.invoke(app, ["summarize", str(tmp_path), "--out", str(tmp_path / "t.md"), "--paired", "-vanilla"])
    text = (tmp_path / "t.md").read_text()
    assert summary.exit_code == 0 and "± " in text and "t-test p" in text


def test_sweep_resumes_an_interrupted_run(tmp_path):
    from lookright.runs.runner import run_specs
    from lookright.train import load_config, train
    from lookright.train.config import build_config
    from lookright.train.sweep import execute, sweep_specs

    base = load_config(CONFIGS / "decoymnist-cdep-vanilla.yaml", [
        "data.embedded=true", "data.max_train=150", "data.max_test=100", "train.epochs=3",
        f"out_dir={tmp_path}", "eval.figure_images=1"])
    (spec,) = sweep_specs(base, 1, [])
    cfg = build_config(spec.config)
    train(cfg, spec.run_dir, progress=False, stop_after_epoch=2)
    (resumed,) = run_specs(execute, sweep_specs(base, 1, []))
    uninterrupted = train(cfg, tmp_path / "fresh", progress=False)
    assert len(resumed["history"]) == 3
    assert resumed["shifted_test_acc"] == uninterrupted["shifted_test_acc"]
