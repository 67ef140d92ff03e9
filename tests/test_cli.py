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


def test_importing_the_cli_and_validating_a_config_does_not_import_torch():
    """Config errors come before the heavy imports: the CLI module, the config schema and its
    validation stay free of torch (a structural check, not a timing)."""
    import subprocess
    import sys

    code = ("import sys; import lookright.cli; from lookright.train.config import load_config; "
            f"load_config({str(CONFIGS / 'colormnist-kl.yaml')!r}, ['seed=3']); "
            "print(sorted(m for m in ('torch', 'torchvision', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_unknown_keys_get_a_suggestion():
    result = runner.invoke(app, ["train", str(CONFIGS / "colormnist-kl.yaml"), "train.epochz=3"])
    assert result.exit_code == 2 and "train.epochz: unknown key (did you mean train.epochs?)" in result.output
    result = runner.invoke(app, ["train", str(CONFIGS / "colormnist-kl-vlm.yaml"), "target.vlm.threshhold=0.5"])
    assert result.exit_code == 2 and "did you mean target.vlm.threshold?" in result.output
    result = runner.invoke(app, ["sweep", str(CONFIGS / "colormnist-kl.yaml"), "zzz=1"])
    assert result.exit_code == 2 and "the top level takes name, seed, out_dir, data" in result.output
    result = runner.invoke(app, ["rl", "train", str(CONFIGS / "rl" / "cuegrid-camal.yaml"), "agent.learning_rat=1"])
    assert result.exit_code == 2 and "did you mean agent.learning_rate?" in result.output


def test_version_data_list_and_plurals(tmp_path):
    from importlib.metadata import version

    from lookright.runs.cli import plural

    assert runner.invoke(app, ["--version"]).output.strip() == f"lookright {version('lookright')}"
    listing = runner.invoke(app, ["data", "list"]).output
    line = next(li for li in listing.splitlines() if li.startswith("frame-colour-mnist"))
    assert "colour frame codes the label" in line  # a description on the name's line
    assert (plural(1, "seed"), plural(2, "seed"), plural(0, "run")) == ("1 seed", "2 seeds", "0 runs")


def test_a_wide_table_is_printed_whole_when_piped(monkeypatch):
    from rich.table import Table

    from lookright.runs import cli

    table = Table(title="wide")
    for i in range(12):
        table.add_column(f"column number {i}")
    table.add_row(*[f"{i}.123456" for i in range(12)])
    with cli.console.capture() as captured:
        cli.show(table)
    text = captured.get()
    assert not cli.console.is_terminal and "…" not in text and "column number 11" in text
    assert max(len(li) for li in text.splitlines()) > 80 and cli.console.width == 80


def test_the_epoch_log_shows_the_shifted_test_only_when_asked(tmp_path):
    base = ["train", str(CONFIGS / "colormnist-vanilla.yaml"), "data.embedded=true", "data.max_train=100",
            "data.max_test=50", "train.epochs=1", "eval.figure_images=1", f"out_dir={tmp_path}"]
    quiet = runner.invoke(app, [*base, "--run-dir", str(tmp_path / "a")])
    shown = runner.invoke(app, [*base, "--run-dir", str(tmp_path / "b"), "--show-test"])
    assert quiet.exit_code == 0 and shown.exit_code == 0, (quiet.output, shown.output)
    assert "epoch 1/1: val" in quiet.output and "shifted test" not in quiet.output.split("epoch 1/1")[1].split("\n")[0]
    assert "shifted test" in shown.output.split("epoch 1/1")[1].split("\n")[0]
