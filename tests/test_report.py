"""Evaluation of run folders, the comparison report and its errors."""

import json
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from lookright.cli import app
from lookright.errors import CheckpointError, LookrightError
from lookright.report.page import FIGURES, write_report
from lookright.train import train
from lookright.train.config import build_config, dump_config
from lookright.train.run_eval import evaluate_run

FAST_EVAL = {"figure_images": 2, "max_images": 40, "steps": 4, "road_max_images": 12, "example_images": 3}


def run_config(dataset, loss, seed):
    tree = {
        "name": f"{dataset}-{loss or 'vanilla'}", "seed": seed,
        "data": {"name": dataset, "embedded": True, "max_train": 200, "max_test": 80},
        "model": {"name": "lenet"}, "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "train": {"epochs": 1, "batch_size": 50}, "eval": FAST_EVAL,
    }
    if loss:
        tree["loss"] = {"name": loss, "lambda0": 1.0}
    return build_config(tree)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for loss in (None, "camal"):
        for seed in (0, 1, 2):
            cfg = run_config("colormnist", loss, seed)
            folder = root / cfg.name / f"seed{seed}"
            train(cfg, folder, progress=False)
            evaluate_run(folder)
    return root


class Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.figures, self.images = [], [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append(attrs.get("id"))
        if tag == "img":
            self.figures.append(attrs.get("data-figure"))
            assert attrs["src"].startswith("data:image/png;base64,")


def test_eval_writes_every_metric(evaluated):
    m = json.loads((evaluated / "colormnist-camal" / "seed0" / "metrics.json").read_text())
    ev = m["evaluation"]
    assert set(ev["localisation"]) >= {"pointing_game", "energy_pointing_game", "relevance_mass_accuracy",
                                       "relevance_rank_accuracy", "top_k_intersection", "iou", "roc_auc"}
    assert ev["images"] == 40 and ev["faithfulness"]["road"]["images"] == 12
    assert len(ev["faithfulness"]["deletion"]["curve"]) == 5
    assert 0 <= ev["faithfulness"]["deletion"]["auc"] <= 1
    low, high = m["shifted_test_acc_wilson95"]
    assert low <= m["shifted_test_acc"] <= high
    assert m["reliance"]["gap"] == pytest.approx(m["val_acc"] - m["shifted_test_acc"])
    assert (evaluated / "colormnist-camal" / "seed0" / "eval" / "predictions.npz").is_file()


def test_compare_builds_page_and_markdown(evaluated, tmp_path):
    result = write_report([evaluated], tmp_path / "report", examples=3)
    assert [m["name"] for m in result["methods"]] == ["colormnist-camal", "colormnist-vanilla"]
    page = (tmp_path / "report" / "index.html").read_text()
    parsed = Collect()
    parsed.feed(page)
    assert parsed.tables == ["metrics", "pvalues", "mcnemar"]
    assert sorted(parsed.figures) == sorted(FIGURES)
    md = (tmp_path / "report" / "report.md").read_text()
    for name in FIGURES:
        assert f"figures/{name}.png" in md and (tmp_path / "report" / "figures" / f"{name}.png").stat().st_size > 1000
    assert "energy PG" in md and "± " in md
    pairs = result["pairs"]["colormnist-camal"]["colormnist-vanilla"]["energy_pointing_game"]
    assert pairs["seeds"] == [0, 1, 2] and 0 <= pairs["t_test_p"] <= 1
    assert len(result["mcnemar_vs_reference"]["colormnist-vanilla"]) == 3


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_page_renders_in_headless_chromium(evaluated, tmp_path):
    write_report([evaluated], tmp_path / "report", examples=3)
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,1600", (tmp_path / "report" / "index.html").as_uri()],
                   check=True, capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000


def test_compare_errors(evaluated, tmp_path):
    with pytest.raises(LookrightError, match="no finished run folders"):
        write_report([tmp_path], tmp_path / "r")
    decoy = run_config("decoymnist-cdep", None, 0)
    train(decoy, tmp_path / "decoy", progress=False)
    with pytest.raises(LookrightError, match="not been evaluated"):
        write_report([evaluated, tmp_path / "decoy"], tmp_path / "r")
    evaluate_run(tmp_path / "decoy")
    with pytest.raises(LookrightError, match="different datasets"):
        write_report([evaluated, tmp_path / "decoy"], tmp_path / "r")
    with pytest.raises(LookrightError, match="reference method"):
        write_report([evaluated], tmp_path / "r", reference="nope")
    result = CliRunner().invoke(app, ["compare", str(evaluated), str(tmp_path / "decoy"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "different datasets" in result.output


def test_eval_without_checkpoint_is_a_clear_error(tmp_path):
    cfg = run_config("colormnist", None, 0)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.yaml").write_text(dump_config(cfg))
    with pytest.raises(LookrightError, match="not a lookright run folder"):
        evaluate_run(folder)
    result = CliRunner().invoke(app, ["eval", str(folder), "--set", "train.epochs=3"])
    assert result.exit_code == 2 and "eval.KEY=VALUE" in result.output
