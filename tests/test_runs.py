"""The run layer: run folders that never lie, sweeps that clean up, and clear errors (exit 2).

Each test names the finding of the run-layer issue it covers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from conftest import CONFIGS, REPO
from lookright.cli import app
from lookright.errors import ConfigError, RunError, TrainingDiverged
from lookright.runs.folder import RunFolder, config_diff, fingerprint
from lookright.runs.runner import expand_grid
from lookright.train import load_config, train

runner = CliRunner()
CONFIG = str(CONFIGS / "decoymnist-cdep-vanilla.yaml")
TINY = ["data.embedded=true", "data.max_train=150", "data.max_test=100", "train.epochs=2", "eval.figure_images=1"]


def cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def tiny_run(tmp_path, *extra: str) -> Path:
    folder = tmp_path / "run"
    result = cli("train", CONFIG, *TINY, *extra, "--run-dir", folder)
    assert result.exit_code == 0, result.output
    return folder


# ---- the run folder itself --------------------------------------------------------------------
def test_fingerprint_ignores_only_what_does_not_change_training():
    tree = {"name": "a", "out_dir": "x", "train": {"epochs": 2, "threads": 1}}
    ignore = ("out_dir", "train.threads")
    assert fingerprint(tree, ignore) == fingerprint({**tree, "out_dir": "y", "train": {"epochs": 2, "threads": 8}}, ignore)
    assert fingerprint(tree, ignore) != fingerprint({**tree, "train": {"epochs": 3, "threads": 1}}, ignore)
    assert "train.epochs: 2 -> 3" in config_diff({"train": {"epochs": 2}}, {"train": {"epochs": 3}})


def test_states_and_unfinished_runs_are_never_finished(tmp_path):
    cfg = load_config(CONFIG, TINY + ["train.epochs=3"])
    folder = tmp_path / "r"
    assert RunFolder(folder).state() == "new"
    train(cfg, folder, progress=False, stop_after_epoch=1)
    assert RunFolder(folder).state() == "interrupted" and not (folder / "metrics.json").exists()
    metrics = train(cfg, folder, resume=True, progress=False)
    info = json.loads((folder / "run.json").read_text())
    assert RunFolder(folder).state() == "finished" and info["attempts"] == 2 and len(metrics["history"]) == 3
    assert set(metrics["provenance"]) >= {"git_commit", "versions", "device", "host"}


# ---- finding 1: resume compares the config ----------------------------------------------------
def test_resume_with_another_config_is_refused(tmp_path):
    cfg = load_config(CONFIG, TINY + ["train.epochs=3"])
    folder = tmp_path / "r"
    train(cfg, folder, progress=False, stop_after_epoch=1)
    before = (folder / "config.yaml").read_text()
    result = cli("train", CONFIG, *TINY, "train.epochs=3", "seed=4", "name=other", "data.name=colormnist",
                 "--run-dir", folder, "--resume")
    assert result.exit_code == 2
    assert "another config" in result.output and "seed: 0 -> 4" in result.output
    assert "data.name: 'decoymnist-cdep' -> 'colormnist'" in result.output
    result = cli("train", CONFIG, *TINY, "train.epochs=3", "model.name=cdep-decoymnist", "--run-dir", folder, "--resume")
    assert result.exit_code == 2 and "model.name: 'lenet' -> 'cdep-decoymnist'" in result.output  # another architecture
    assert (folder / "config.yaml").read_text() == before and not (folder / "metrics.json").exists()


# ---- finding 2: a failed start never touches a run; one process per run --------------------------
def test_failing_train_into_a_finished_run_changes_nothing(tmp_path):
    folder = tiny_run(tmp_path)
    files = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".lock"}
    result = cli("train", CONFIG, *TINY, "model.name=vgg", "--run-dir", folder)
    assert result.exit_code == 2 and "vgg" in result.output
    result = cli("train", CONFIG, *TINY, "--run-dir", folder)
    assert result.exit_code == 2 and "finished run" in result.output
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".lock"} == files
    assert RunFolder(folder).state() == "finished"


def test_two_processes_on_one_run_folder(tmp_path):
    cfg = load_config(CONFIG, TINY)
    folder = RunFolder(tmp_path / "r")
    folder.open("supervised", cfg.model_dump(mode="json"), "x", ())  # another "process" holds the lock
    with pytest.raises(RunError, match="being run by another process"):
        train(cfg, tmp_path / "r", progress=False)
    result = cli("train", CONFIG, *TINY, "--run-dir", tmp_path / "r", "--resume")
    assert result.exit_code == 2 and "being run by another process" in result.output
    folder.release()


def test_two_real_processes_one_wins(tmp_path):
    folder = tmp_path / "r"
    args = [sys.executable, "-m", "lookright.cli", "train", CONFIG, *TINY, "train.epochs=500", "--run-dir", str(folder)]
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):  # until the first holds the run
        if (folder / "run.json").is_file():
            break
        time.sleep(0.1)
    second = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert first.poll() is None, "the first run ended too early for this test"
    assert second.returncode == 2 and "being run by another process" in second.stdout + second.stderr
    first.terminate()
    first.wait(timeout=60)
    assert RunFolder(folder).state() == "interrupted"


# ---- finding 3: no worker outlives a killed sweep ---------------------------------------------
def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_a_sweep_leaves_no_worker(tmp_path, sig):
    proc = subprocess.Popen([sys.executable, "-m", "lookright.cli", "sweep", CONFIG, "--seeds", "2", "--jobs", "2",
                             *TINY, "train.epochs=50", f"out_dir={tmp_path}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    for _ in range(900):  # until both workers have started their runs
        workers |= _descendants(proc.pid)
        if len(list(tmp_path.rglob("run.json"))) == 2:
            break
        time.sleep(0.1)
    workers |= _descendants(proc.pid)
    assert len(workers) >= 2, "the sweep did not start its workers"
    os.kill(proc.pid, sig)
    proc.wait(timeout=30)
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.2)
    assert not [p for p in workers if _alive(p)], "workers outlived the sweep by more than 10 s"
    # the runs are interrupted, not finished; a rerun resumes them
    assert {RunFolder(p.parent).state() for p in tmp_path.rglob("run.json")} <= {"interrupted", "failed"}


# ---- finding 4: sweeps reuse only finished runs of the same config ----------------------------
def test_sweep_refuses_a_folder_of_another_config_and_reads_back_the_same(tmp_path):
    args = ["sweep", CONFIG, "--seeds", "1", *TINY, f"out_dir={tmp_path}"]
    assert cli(*args).exit_code == 0
    (metrics,) = list(tmp_path.rglob("metrics.json"))
    stamp = metrics.stat().st_mtime_ns
    again = cli(*args)
    assert again.exit_code == 0 and metrics.stat().st_mtime_ns == stamp  # read back, not trained again
    changed = cli(*args, "optim.lr=0.5")
    assert changed.exit_code == 2 and "optim.lr: 0.001 -> 0.5" in changed.output
    assert metrics.stat().st_mtime_ns == stamp


def test_eval_refuses_an_interrupted_run_and_sweep_resumes_it(tmp_path):
    cfg = load_config(CONFIG, TINY + ["train.epochs=3", f"out_dir={tmp_path}"])
    folder = tmp_path / cfg.name / "seed0"
    train(cfg, folder, progress=False, stop_after_epoch=1)
    result = cli("eval", folder)
    assert result.exit_code == 2 and "interrupted" in result.output and "--resume" in result.output
    assert not (folder / "metrics.json").exists()
    result = cli("sweep", CONFIG, "--seeds", "1", *TINY, "train.epochs=3", f"out_dir={tmp_path}")
    assert result.exit_code == 0, result.output
    assert len(json.loads((folder / "metrics.json").read_text())["history"]) == 3


def test_duplicated_grid_values_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="twice"):
        expand_grid(["optim.lr=0.1,0.1"])
    with pytest.raises(ConfigError, match="given twice"):
        expand_grid(["optim.lr=0.1", "optim.lr=0.2"])
    result = cli("sweep", CONFIG, "--seeds", "1", "--grid", "optim.lr=0.1,0.1", *TINY, f"out_dir={tmp_path}")
    assert result.exit_code == 2 and "twice" in result.output and not any(tmp_path.iterdir())


def test_summaries_skip_unfinished_and_duplicate_seeds(tmp_path):
    cfg = load_config(CONFIG, TINY + ["train.epochs=3"])
    train(cfg, tmp_path / "a" / "seed0", progress=False, stop_after_epoch=1)
    result = cli("summarize", tmp_path)
    assert result.exit_code == 2 and "no finished" in result.output
    train(cfg, tmp_path / "b", progress=False)
    train(cfg, tmp_path / "c", progress=False)  # the same seed in two folders
    result = cli("summarize", tmp_path)
    assert result.exit_code == 2 and "two run folders" in result.output


# ---- finding 5: the sweep's table is the summary's table -----------------------------------------
def test_sweep_prints_the_same_table_as_summarize(tmp_path):
    result = cli("sweep", CONFIG, "--seeds", "2", *TINY, f"out_dir={tmp_path}")
    assert result.exit_code == 0, result.output
    summary = cli("summarize", tmp_path)
    row = next(li for li in summary.output.splitlines() if "decoymnist-cdep-vanilla" in li)
    assert row in result.output and "n/a" not in row.split("|")[8]  # attention on shortcut


# ---- finding 6: exports never lose or leave files ---------------------------------------------
def test_export_refuses_folders_and_existing_files(tmp_path):
    result = cli("data", "export", "colormnist", "--embedded", "--out", tmp_path)
    assert result.exit_code == 2 and "is a folder" in result.output
    existing = tmp_path / "x.npz"
    existing.write_bytes(b"keep me")
    result = cli("data", "export", "colormnist", "--embedded", "--out", existing)
    assert result.exit_code == 2 and "--force" in result.output and existing.read_bytes() == b"keep me"
    result = cli("data", "export", "colormnist", "--embedded", "--out", existing, "--force")
    assert result.exit_code == 0 and existing.read_bytes()[:2] == b"PK"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npz"]  # no temporary file left


# ---- finding 7: a diverging run stops at once -------------------------------------------------
def test_diverging_run_stops_at_the_step_and_names_the_learning_rate(tmp_path):
    cfg = load_config(CONFIG, TINY + ["optim.lr=1e6"])
    with pytest.raises(TrainingDiverged, match=r"optim.lr=1e\+06") as err:
        train(cfg, tmp_path / "r", progress=False)
    assert "epoch 1" in str(err.value)
    result = cli("train", CONFIG, *TINY, "optim.lr=1e6", "--run-dir", tmp_path / "s")
    assert result.exit_code == 2 and "not finite" in result.output and "Traceback" not in result.output


# ---- finding 8: tracebacks become errors --------------------------------------------------------
def test_config_errors_are_clear(tmp_path):
    bad_inherit = tmp_path / "a.yaml"
    bad_inherit.write_text("inherit: [x.yaml]\n")
    latin = tmp_path / "b.yaml"
    latin.write_bytes("name: caf\xe9\n".encode("latin-1"))
    cases = [
        (("train", bad_inherit), "inherit must be one file name"),
        (("train", latin), "not UTF-8"),
        (("train", CONFIG, "train.epochs=["), "not valid YAML"),
        (("train", CONFIG, *TINY, "train.device=foo", "--run-dir", tmp_path / "d"), "not a device"),
        (("train", CONFIG, *TINY, "train.threads=100000", "--run-dir", tmp_path / "t"), "CPU cores"),
    ]
    if not torch.cuda.is_available():
        cases.append((("train", CONFIG, *TINY, "train.device=cuda", "--run-dir", tmp_path / "c"), "no usable CUDA"))
    for args, message in cases:
        result = cli(*args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert not any(p.name in "dtc" for p in tmp_path.iterdir())  # no run folder was created


def test_bad_folders_and_outputs_are_clear(tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    result = cli("train", CONFIG, *TINY, "--run-dir", a_file)
    assert result.exit_code == 2 and "is a file" in result.output
    folder = tiny_run(tmp_path)
    for args in (("summarize", tmp_path, "--out", a_file / "t.md"), ("compare", folder, "--out", a_file / "r"),
                 ("data", "export", "colormnist", "--embedded", "--out", a_file / "x.npz"),
                 ("selection-study", tmp_path, "--out", a_file / "s.md")):
        result = cli(*args)
        assert result.exit_code == 2 and "--out" in result.output, (args, result.output)


def test_corrupt_metrics_and_checkpoints_are_clear(tmp_path):
    folder = tiny_run(tmp_path)
    (folder / "metrics.json").write_text("{not json")
    for args in (("summarize", tmp_path), ("compare", tmp_path, "--out", tmp_path / "rep")):
        result = cli(*args)
        assert result.exit_code == 2 and "metrics.json cannot be read" in result.output, result.output
    other = tiny_run(tmp_path / "o")
    torch.save({"epoch": 1}, other / "checkpoints" / "best.pt")  # no weights
    result = cli("eval", other)
    assert result.exit_code == 2 and "holds no model weights" in result.output
    from lookright.models import create_model

    foreign = create_model("cdep-decoymnist").state_dict()  # weights of another architecture
    torch.save({"model": foreign}, other / "checkpoints" / "best.pt")
    result = cli("eval", other)
    assert result.exit_code == 2 and "does not fit the configured model" in result.output


def test_module_runs_from_any_folder(tmp_path):
    result = subprocess.run([sys.executable, "-m", "lookright.cli", "summarize", str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 2 and "no finished" in result.stdout
    assert (REPO / "configs").is_dir()


# ---- scale-out on Ray ------------------------------------------------------------------------
@pytest.mark.timeout(600)
def test_ray_and_local_sweeps_give_identical_runs(tmp_path):
    pytest.importorskip("ray.tune")
    common = ["--seeds", "2", *TINY]
    local = cli("sweep", CONFIG, *common, "--jobs", "2", f"out_dir={tmp_path / 'local'}")
    assert local.exit_code == 0, local.output
    ray = cli("sweep", CONFIG, *common, "--backend", "ray", "--cpus-per-run", "1", f"out_dir={tmp_path / 'ray'}")
    assert ray.exit_code == 0, ray.output
    for seed in (0, 1):
        a, b = (RunFolder(tmp_path / side / "decoymnist-cdep-vanilla" / f"seed{seed}") for side in ("local", "ray"))
        assert a.state() == b.state() == "finished"
        ma, mb = a.metrics(), b.metrics()
        for key in ("shifted_test_acc", "val_acc", "val_loss", "history", "attention_mass", "selected_epoch"):
            assert ma[key] == mb[key], (seed, key)
        assert json.loads((b.path / "run.json").read_text())["fingerprint"] == \
            json.loads((a.path / "run.json").read_text())["fingerprint"]
    # a rerun on Ray reads the finished runs back
    stamp = (tmp_path / "ray" / "decoymnist-cdep-vanilla" / "seed0" / "metrics.json").stat().st_mtime_ns
    again = cli("sweep", CONFIG, *common, "--backend", "ray", f"out_dir={tmp_path / 'ray'}")
    assert again.exit_code == 0
    assert (tmp_path / "ray" / "decoymnist-cdep-vanilla" / "seed0" / "metrics.json").stat().st_mtime_ns == stamp


def test_address_without_ray_backend_is_refused(tmp_path):
    result = cli("sweep", CONFIG, "--seeds", "1", "--address", "10.0.0.1:6379", *TINY, f"out_dir={tmp_path}")
    assert result.exit_code == 2 and "--backend ray" in result.output


def test_load_run_returns_the_trained_model(tmp_path):
    import lookright

    folder = tiny_run(tmp_path)
    run = lookright.load_run(folder)
    assert run.kind == "supervised" and run.config.name == "decoymnist-cdep-vanilla"
    spec = run.model.input_spec
    x = spec.prepare(torch.randint(0, 255, (3, 3, 28, 28), dtype=torch.uint8))
    best = torch.load(folder / "checkpoints" / "best.pt", weights_only=True)
    for k, v in run.model.state_dict().items():
        assert torch.equal(v, best[k]), k
    assert not run.model.training and run.model(x).shape == (3, 10)
    with pytest.raises(RunError, match="does not exist"):
        lookright.load_run(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunError, match="no finished run"):
        lookright.load_run(tmp_path / "empty")


# ---- weights are loaded strictly ------------------------------------------------------------
def test_resnet_weights_load_strictly(tmp_path):
    import torchvision

    from lookright.models import create_model

    imagenet = torchvision.models.resnet18(weights=None, num_classes=1000).state_dict()
    torch.save(imagenet, tmp_path / "imagenet.pt")
    model = create_model("resnet18", num_classes=10, weights=str(tmp_path / "imagenet.pt"))
    assert torch.equal(model.state_dict()["layer1.0.conv1.weight"], imagenet["layer1.0.conv1.weight"])
    assert model.fc.out_features == 10  # the 1000-class head is left at its fresh initialisation
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "garbage.pt")
    with pytest.raises(ConfigError, match="not a ResNet-18 state dict.*missing"):
        create_model("resnet18", weights=str(tmp_path / "garbage.pt"))
    (tmp_path / "text.pt").write_text("not a tensor file")
    with pytest.raises(ConfigError, match="not a readable state dict"):
        create_model("resnet18", weights=str(tmp_path / "text.pt"))


def test_random_search_draws_grid_points_reproducibly(tmp_path):
    args = ["sweep", CONFIG, "--seeds", "1", "--grid", "optim.lr=0.1,0.01,0.001,0.0001", "--samples", "2", *TINY,
            "train.epochs=1"]
    assert cli(*args, f"out_dir={tmp_path / 'a'}").exit_code == 0
    assert cli(*args, f"out_dir={tmp_path / 'b'}").exit_code == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(names) == 2 and names == sorted(p.name for p in (tmp_path / "b").iterdir())


@pytest.mark.timeout(600)
def test_asha_stops_weak_runs_which_stay_unfinished(tmp_path):
    pytest.importorskip("ray.tune")
    args = ["sweep", CONFIG, "--seeds", "1", "--grid", "optim.lr=0.5,0.01,0.001,0.0001", *TINY, "train.epochs=4",
            "data.max_train=300", f"out_dir={tmp_path}"]
    result = cli(*args, "--backend", "ray", "--scheduler", "asha", "--grace-period", "1")
    assert result.exit_code == 0, result.output
    states = {p.parent.parent.name: RunFolder(p.parent).state() for p in tmp_path.glob("*/seed0/run.json")}
    assert len(states) == 4 and "finished" in states.values() and "interrupted" in states.values(), states
    summary = cli("summarize", tmp_path)
    assert summary.output.count("decoymnist-cdep-vanilla-optim_lr") == list(states.values()).count("finished")
    assert cli(*args).exit_code == 0  # a plain sweep resumes the stopped runs to the end
    assert {RunFolder(p.parent).state() for p in tmp_path.glob("*/seed0/run.json")} == {"finished"}
    assert cli(*args, "--scheduler", "asha").exit_code == 2  # asha needs Ray


def test_status_lists_states_and_errors(tmp_path):
    cfg = load_config(CONFIG, TINY + ["train.epochs=3"])
    train(cfg, tmp_path / "a", progress=False, stop_after_epoch=1)
    train(cfg, tmp_path / "b", progress=False)
    failed = RunFolder(tmp_path / "c")
    failed.open("supervised", cfg.model_dump(mode="json"), "x", ())
    failed.fail(TrainingDiverged("the loss is not finite"), keep_if_empty=True)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "run.json").write_text("{")
    result = cli("status", tmp_path)
    assert result.exit_code == 0
    assert "1 finished, 1 interrupted, 1 failed, 1 damaged" in result.output
    assert "TrainingDiverged" in result.output and str(tmp_path / "b") not in result.output
    assert str(tmp_path / "b") in cli("status", tmp_path, "--all").output


def test_tensorboard_mirrors_every_epoch(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = tiny_run(tmp_path, "train.epochs=3", "log.images_every=2", "log.images=2")
    events = EventAccumulator(str(folder / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    assert [e.step for e in events.Scalars("val/acc")] == [1, 2, 3]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert [e.value for e in events.Scalars("shifted_test/acc")] == pytest.approx(
        [h["test_acc"] for h in metrics["history"]])
    assert [e.step for e in events.Images("attention/shifted_test")] == [2, 3]
    quiet = tiny_run(tmp_path / "q", "log.backends=[]")
    assert not (quiet / "tensorboard").exists()
    result = cli("train", CONFIG, *TINY, "log.backends=[neptune]", "--run-dir", tmp_path / "n")
    assert result.exit_code == 2 and "log.backends" in result.output


def test_export_formats_reproduce_the_model(tmp_path):
    from lookright.train.export import load_exported

    folder = tiny_run(tmp_path)
    run = __import__("lookright").load_run(folder)
    x = run.model.input_spec.prepare(torch.randint(0, 255, (4, 3, 28, 28), dtype=torch.uint8))
    with torch.no_grad():
        expected = run.model(x)
    result = cli("export", folder)
    assert result.exit_code == 0, result.output
    with torch.no_grad():
        assert torch.allclose(load_exported(folder / "export" / "model.safetensors")(x), expected, atol=1e-6)
    assert cli("export", folder).exit_code == 2  # nothing is overwritten
    assert cli("export", folder, "--format", "torchscript").exit_code == 0
    scripted = torch.jit.load(str(folder / "export" / "model.pt"))
    assert torch.allclose(scripted(x), expected, atol=1e-6)
    result = cli("export", folder, "--format", "onnx")
    import importlib.util

    if not (importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxscript")):
        assert result.exit_code == 2 and "pip install 'lookright[onnx]'" in result.output
        return
    assert result.exit_code == 0, result.output
    if importlib.util.find_spec("onnxruntime"):
        import onnxruntime

        session = onnxruntime.InferenceSession(str(folder / "export" / "model.onnx"))
        (logits,) = session.run(None, {"x": x.numpy()})
        assert torch.allclose(torch.from_numpy(logits), expected, atol=1e-4)
    assert cli("export", folder, "--format", "pickle").exit_code == 2


# ---- a careless user's attempts, found in review -------------------------------------------------
def flaky(spec):
    """A run function that fails in plain Python (no lookright error) for one spec."""
    if spec.label == "bad":
        raise ValueError("expected non-negative integer")
    return {"label": spec.label}


def test_a_crashing_run_does_not_stop_the_others():
    from lookright.runs.runner import RunSpec, run_local

    specs = [RunSpec({}, f"/nonexistent/{i}", label) for i, label in enumerate(["a", "bad", "c"])]
    for jobs in (1, 2):
        results = run_local(flaky, specs, jobs)
        assert [r.get("label") for r in results] == ["a", None, "c"]
        assert "ValueError: expected non-negative integer" in results[1]["error"]


def suicidal(spec):
    if spec.label == "bad":
        os._exit(9)  # as the out-of-memory killer would
    time.sleep(0.5)
    return {"label": spec.label}


def test_a_killed_worker_is_reported_not_a_traceback():
    from lookright.runs.runner import RunSpec, raise_failures, run_local

    specs = [RunSpec({}, f"/nonexistent/{i}", label) for i, label in enumerate(["bad", "b"])]
    results = run_local(suicidal, specs, 2)
    assert any("worker process was killed" in (r.get("error") or "") for r in results)
    with pytest.raises(RunError, match="run the sweep again"):
        raise_failures(results)


def test_names_seeds_and_grids_that_would_mislead_are_refused(tmp_path):
    for args, message in [
        (("train", CONFIG, *TINY, "name=../escape", "--run-dir", tmp_path / "n"), "one folder name"),
        (("train", CONFIG, *TINY, "seed=-3", "--run-dir", tmp_path / "s"), "seed"),
        (("sweep", CONFIG, "--seeds", "1", "--first-seed", "-1", *TINY, f"out_dir={tmp_path}"), "seed"),
        (("sweep", CONFIG, "--grid", "seed=1,2", *TINY, f"out_dir={tmp_path}"), "--seeds"),
        (("sweep", CONFIG, "--grid", "train.threads=1,2", *TINY, f"out_dir={tmp_path}"), "same run"),
        (("sweep", CONFIG, "--grid", "optim.lr=0.10,0.1", *TINY, f"out_dir={tmp_path}"), "twice"),
        (("sweep", CONFIG, "--backend", "ray", "--jobs", "2", *TINY, f"out_dir={tmp_path}"), "--cpus-per-run"),
        (("train", CONFIG, *TINY, "--run-dir", tmp_path / "file.txt" / "x"), "is a file"),
    ]:
        if args[-1] == tmp_path / "file.txt" / "x":
            (tmp_path / "file.txt").write_text("x")
        result = cli(*args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path.parent / "escape").exists()
    result = cli("sweep", CONFIG, "--grid", "optim.lr=0.10,0.1", *TINY, f"out_dir={tmp_path}")
    assert "['0.1', '0.10']" in result.output  # brackets in a message are printed, not read as markup


def test_edited_configs_and_records_are_caught(tmp_path):
    import lookright

    folder = tiny_run(tmp_path)
    assert cli("summarize", tmp_path, "--out", folder / "run.json").exit_code == 2  # never into a run's files
    original = (folder / "config.yaml").read_text()
    (folder / "config.yaml").write_text(original.replace("max_test: 100", "max_test: 30"))
    result = cli("eval", folder)
    assert result.exit_code == 2 and "was edited after the run" in result.output and "max_test" in result.output
    with pytest.raises(RunError, match="edited after the run"):
        lookright.load_run(folder)
    (folder / "config.yaml").write_text(original)
    assert lookright.load_run(folder).config.data.max_test == 100
    record = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps({**record, "status": "done"}))
    result = cli("eval", folder)
    assert result.exit_code == 2 and "not a lookright run record" in result.output
    assert "1 damaged" in cli("status", tmp_path).output


def test_summaries_refuse_one_name_for_two_configs(tmp_path):
    assert cli("sweep", CONFIG, "--seeds", "1", *TINY, "optim.lr=0.5", f"out_dir={tmp_path}").exit_code == 0
    assert cli("sweep", CONFIG, "--seeds", "1", "--first-seed", "1", *TINY, f"out_dir={tmp_path}").exit_code == 0
    result = cli("summarize", tmp_path)
    assert result.exit_code == 2 and "different configs" in result.output and "optim.lr" in result.output
