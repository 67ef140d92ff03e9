"""Heat maps of a two-setting grid in `lookright summarize`."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lookright.cli import app
from lookright.errors import LookrightError
from lookright.report.heatmap import find_grids, grid_table, heatmap_section, parse_axes

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def row(lam, epochs, seed, acc, lr=0.05, dataset="colormnist"):
    config = {"name": f"kl-{lam}-{epochs}", "out_dir": "runs", "loss": {"lambda0": lam},
              "train": {"attn_epochs": epochs, "lr": lr}}
    return {"dataset": dataset, "model": "lenet", "name": config["name"], "seed": seed, "_config": config,
            "shifted_test_acc": acc, "val_acc": 90.0 + acc / 10}


def test_a_grid_of_two_keys_is_found_and_averaged_over_seeds():
    rows = [row(lam, e, s, acc=lam / 10 + e + s) for lam in (100, 300, 200) for e in (5, 7) for s in (0, 1)]
    (grid,) = find_grids(rows)
    assert (grid.x, grid.y) == ("loss.lambda0", "train.attn_epochs")
    assert grid.xs == [100, 200, 300] and grid.ys == [5, 7]  # numeric order
    assert grid.mean("shifted_test_acc", 200, 7) == pytest.approx(20 + 7 + 0.5)
    table = grid_table(grid)
    assert table.splitlines()[0] == "| train.attn_epochs \\ loss.lambda0 | 100 | 200 | 300 |"
    assert table.splitlines()[3].startswith("| 7 | 17.50 | 27.50 | 37.50 |")


def test_three_varying_keys_need_the_axes_and_give_one_grid_per_other_value():
    rows = [row(lam, e, 0, acc=1.0, lr=lr) for lam in (1, 2) for e in (3, 4) for lr in (0.1, 0.01)]
    assert find_grids(rows) == []  # ambiguous without axes
    grids = find_grids(rows, ("loss.lambda0", "train.attn_epochs"))
    assert sorted(g.fixed["train.lr"] for g in grids) == [0.01, 0.1]
    assert find_grids(rows[:1]) == []  # one run is no grid


def test_missing_points_show_as_na_and_bad_axes_are_refused(tmp_path):
    rows = [row(1, 3, 0, 10.0), row(2, 3, 0, 20.0), row(1, 4, 0, 30.0)]
    text, paths = heatmap_section(rows, tmp_path)
    assert "n/a" in text and [p.name for p in paths] == ["heatmap-colormnist-lenet.png"]
    assert paths[0].stat().st_size > 1000
    with pytest.raises(LookrightError, match="no grid over"):
        heatmap_section(rows, tmp_path, ("loss.lambda0", "train.epochz"))
    with pytest.raises(LookrightError, match="two different config keys"):
        parse_axes("loss.lambda0")


def test_summarize_writes_the_heat_map_of_a_swept_grid(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, [
        "sweep", str(CONFIGS / "colormnist-kl.yaml"), "--seeds", "1", "--grid", "loss.lambda0=2,5",
        "--grid", "train.attn_epochs=0,1", "--ensemble", "4", "data.embedded=true", "data.max_train=120",
        "data.max_test=60", "train.epochs=2", "train.attn_epochs=0", "eval.figure_images=1", "log.backends=[]", f"out_dir={tmp_path}"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "results.md"
    summary = runner.invoke(app, ["summarize", str(tmp_path), "--out", str(out)])
    assert summary.exit_code == 0, summary.output
    text = out.read_text()
    assert "| train.attn_epochs \\ loss.lambda0 | 2.0 | 5.0 |" in text
    assert (tmp_path / "heatmap-colormnist-lenet.png").is_file() and "heat map:" in summary.output
    refused = runner.invoke(app, ["summarize", str(tmp_path), "--heatmap", "loss.lambda0"])
    assert refused.exit_code != 0 and "two different config keys" in refused.output
