"""Evaluation of run folders, the comparison report and its errors."""

import html
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lookright.cli import app
from lookright.errors import LookrightError
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
        self.tables, self.figures, self.order = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append(attrs.get("id"))
            self.order.append(f"table:{attrs.get('id')}")
        if tag == "img":
            self.figures.append(attrs.get("data-figure"))
            self.order.append(f"figure:{attrs.get('data-figure')}")
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
    # the figures first, then the compact table, then the details
    assert parsed.order[:3] == ["figure:accuracy", "figure:attention", "table:summary"]
    assert parsed.tables == ["summary", "metrics", "pvalues", "mcnemar"]
    assert sorted(parsed.figures) == sorted(FIGURES)
    assert "white-space:nowrap" in page and "camal" in page.split('id="summary"')[1].split("</table>")[0]
    md = (tmp_path / "report" / "report.md").read_text()
    for name in FIGURES:
        assert f"figures/{name}.png" in md and (tmp_path / "report" / "figures" / f"{name}.png").stat().st_size > 1000
    assert "energy PG" in md and "± " in md
    pairs = result["pairs"]["colormnist-camal"]["colormnist-vanilla"]["energy_pointing_game"]
    assert pairs["seeds"] == [0, 1, 2] and 0 <= pairs["t_test_p"] <= 1
    assert len(result["mcnemar_vs_reference"]["colormnist-vanilla"]) == 3


GEOMETRY = """<script>
document.body.setAttribute("data-geometry", JSON.stringify((() => {
  const box = (el) => el.getBoundingClientRect();
  const chart = box(document.querySelector("img[data-figure]")), table = box(document.querySelector("table"));
  const rows = [...document.querySelectorAll("#summary tbody tr")].map((r) => box(r).height);
  return {chart_top: chart.top, chart_bottom: chart.bottom, chart_width: chart.width, table_top: table.top,
          row_min: Math.min(...rows), row_max: Math.max(...rows), page_width: document.documentElement.scrollWidth};
})()));
</script>"""


def chromium(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
                          check=True, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="headless Chromium is not installed (Debian: apt-get install chromium)")
@pytest.mark.parametrize("width", [1400, 800])
def test_page_opens_with_a_chart_above_the_first_table(evaluated, tmp_path, width):
    from matplotlib.image import imread

    write_report([evaluated], tmp_path / "report", examples=3)
    page = tmp_path / "report" / "index.html"
    shot = tmp_path / f"shot-{width}.png"
    chromium(f"--screenshot={shot}", f"--window-size={width},1100", page.as_uri())
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", GEOMETRY + "</body>"))
    dom = chromium("--virtual-time-budget=5000", f"--window-size={width},1100", "--dump-dom", probe.as_uri()).stdout
    geometry = json.loads(html.unescape(dom.split('data-geometry="', 1)[1].split('"', 1)[0]))
    assert geometry["chart_width"] > 200 and geometry["chart_bottom"] <= geometry["table_top"], geometry
    assert geometry["row_max"] <= 1.2 * geometry["row_min"], geometry  # no number wraps onto a second line
    assert geometry["page_width"] <= width, geometry  # a wide table scrolls inside its box, not the page
    pixels = imread(shot)[:, :, :3]
    top, bottom = int(geometry["chart_top"]), min(int(geometry["chart_bottom"]), pixels.shape[0])
    assert bottom - top > 100 and pixels[top:bottom].std() > 0.05  # the chart is drawn in the screenshot


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


# ---- figures: object-oriented matplotlib, atomic PNGs, the caller's backend left alone ----

FIGURE_MODULES = ["lookright.report.figures", "lookright.rl.figures", "lookright.vlm.figures",
                  "lookright.vlm.reliability.figures"]


def _report_curves(path):
    from lookright.report.figures import training_curves

    history = [{"epoch": e, "val_acc": 50.0 + e, "test_acc": 40.0 + e, "train_ce": 1.0 / (e + 1),
                "train_align": None if e == 0 else 0.5 / e, "val_align": 0.4 / (e + 1)} for e in range(3)]
    training_curves(history, path, "curves")


def _rl_curves(path):
    from lookright.rl.figures import training_curve_figure

    hist = [{"timesteps": t, "return": 0.1 * t, "success": 0.05 * t} for t in (100, 200, 300)]
    att = [{"timesteps": t, "attention_loss": 1.0 / t, "entropy": 1.2} for t in (100, 200, 300)]
    training_curve_figure({"history": hist, "attention_history": att}, path)


def _vlm_teacher(path):
    import numpy as np

    from lookright.vlm.figures import teacher_figure

    rng = np.random.default_rng(0)
    maps = {"raw": rng.random((2, 8, 8)), "mask": rng.random((2, 8, 8)) > 0.5}
    teacher_figure(rng.random((2, 3, 8, 8)), rng.random((2, 8, 8)) > 0.5, {"gradcam": maps}, path, "teacher")


def _reliability_pareto(path):
    from lookright.vlm.reliability.figures import pareto_figure

    rows = [{"name": "a", "normal": (90.0, 1.0), "drop": (3.0, 1.0)}, {"name": "b", "normal": (80.0, 1.0), "drop": (1.0, 0.5)},
            {"name": "c", "normal": (70.0, 2.0), "drop": (4.0, 0.5)}]
    pareto_figure(rows, path, "strict")


FIGURE_WRITERS = {"report": _report_curves, "rl": _rl_curves, "vlm": _vlm_teacher, "reliability": _reliability_pareto}


def assert_png(path):
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 0  # something was drawn


@pytest.mark.parametrize("writer", list(FIGURE_WRITERS))
def test_figure_writes_a_png_and_no_temporary_file(writer, tmp_path):
    path = tmp_path / "figures" / "figure.png"
    path.parent.mkdir()
    FIGURE_WRITERS[writer](path)
    assert_png(path)
    assert [p.name for p in path.parent.iterdir()] == ["figure.png"]
    FIGURE_WRITERS[writer](path)  # overwrites in place
    assert_png(path)
    assert [p.name for p in path.parent.iterdir()] == ["figure.png"]


def test_failed_figure_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    path = tmp_path / "figure.png"
    path.write_bytes(b"old")

    def broken_savefig(self, fname, **kwargs):
        with open(fname, "wb") as f:
            f.write(b"\x89PNG half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(RuntimeError, match="disk full"):
        _report_curves(path)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["figure.png"]


def test_importing_and_drawing_figures_keeps_the_callers_backend(tmp_path):
    """A notebook's backend stays: no figure module switches it at import or when it draws."""
    import lookright

    src = str(Path(lookright.__file__).resolve().parents[1])
    code = (
        "import matplotlib\n"
        "matplotlib.use('pdf')\n"
        + "".join(f"import {m}\n" for m in FIGURE_MODULES)
        + "print(matplotlib.get_backend())\n"
        "from lookright.vlm.reliability.figures import pareto_figure\n"
        "pareto_figure([{'name': 'a', 'normal': (90.0, 1.0), 'drop': (3.0, 1.0)}], "
        f"{str(tmp_path / 'p.png')!r}, 'strict')\n"
        "print(matplotlib.get_backend())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = subprocess.run([sys.executable, "-c", code], check=False, env=env, capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["pdf", "pdf"], out.stdout + out.stderr
    assert_png(tmp_path / "p.png")


def test_eval_with_another_extractor_keeps_the_trainers_numbers(evaluated, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(evaluated, root)
    run = root / "colormnist-camal" / "seed0"
    before = json.loads((run / "metrics.json").read_text())
    evaluate_run(run, "gradcam")
    after = json.loads((run / "metrics.json").read_text())
    for key in ("evaluation", "attention_mass", "eval_extractor", "reliance"):
        assert after[key] == before[key], key
    assert after["evaluation"]["extractor"] == "cam" and after["evaluations"]["gradcam"]["extractor"] == "gradcam"
    assert set(after["evaluations"]) == {"cam", "gradcam"}
    assert (run / "eval" / "examples-gradcam.npz").is_file()


def test_compare_refuses_mixed_extractors_and_compares_under_one(evaluated, tmp_path):
    root = tmp_path / "runs"
    shutil.copytree(evaluated, root)
    cfg = build_config({**run_config("colormnist", "camal", 0).model_dump(), "name": "colormnist-camal-gradcam",
                        "eval": {**FAST_EVAL, "extractor": "gradcam"}})
    train(cfg, root / cfg.name / "seed0", progress=False)
    evaluate_run(root / cfg.name / "seed0")
    result = CliRunner().invoke(app, ["compare", str(root), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "different attention extractors" in result.output
    assert "cam: colormnist-camal seed 0" in result.output and "--extractor NAME" in result.output
    with pytest.raises(LookrightError, match="has not been evaluated with gradcam"):
        write_report([root], tmp_path / "r", extractor="gradcam")
    for folder in sorted(root.glob("*/seed*")):
        evaluate_run(folder, "gradcam")
    result = write_report([root], tmp_path / "r", examples=2, extractor="gradcam")
    assert result["extractor"] == "gradcam" and {m["extractor"] for m in result["methods"]} == {"gradcam"}
