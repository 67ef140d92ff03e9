"""The speed benchmarks of training runs still run and write what docs/speed.md reads (on tiny data;
no timing is asserted)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.max_train=150", "data.max_test=60", "train.epochs=2", "train.attn_epochs=1", "eval.figure_images=1"]


def bench(script: str, out: Path, *args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), "--out", str(out), *args, *TINY]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["command"].startswith("python ") and "load_average_1min" in report
    return report


@pytest.mark.timeout(600)
def test_profile_step(tmp_path):
    report = bench("profile_step.py", tmp_path / "p.json", "--steps", "6", "--rounds", "1")
    assert set(report["step_ms"]) == {"forward_cam", "targets", "loss", "finite_check", "backward", "optimizer",
                                      "total"}
    assert sum(report["share_of_run_pct"].values()) == pytest.approx(100, abs=0.5)
    assert set(report["whole_step_ratio_to_reference"]) == {"reference", "channels_last_fused"}


@pytest.mark.timeout(600)
def test_fast_run(tmp_path):
    report = bench("fast_run.py", tmp_path / "f.json", "--rounds", "1")
    assert set(report["metrics"]) == {"reference", "fast"} and report["speedup"] > 0


@pytest.mark.timeout(600)
def test_ensemble_cost(tmp_path):
    report = bench("ensemble_cost.py", tmp_path / "e.json", "--only", "five_lambdas_one_seed", "--lambdas", "1,2")
    assert report["runs"] == {"one_seed": 1, "five_lambdas_one_seed": 2}
    assert set(report["ratio_to_one_seed"]) == {"one_seed", "five_lambdas_one_seed"}


@pytest.mark.timeout(600)
def test_teacher_cache_cost(tmp_path):
    report = bench("teacher_cache_cost.py", tmp_path / "c.json", "--rounds", "1")
    assert set(report["median_s"]) == {"ground_truth", "cache_hit"} and report["ratio_cache_hit_to_ground_truth"] > 0
    assert [s["status"] for s in report["cache_filled"].values()] == ["miss"] * 3
    assert report["cache_hit_imported_transformers"] is False  # a cache hit loads no CLIP
