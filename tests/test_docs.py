"""The code the docs tell a user to run, run on tiny data."""

import shlex
from pathlib import Path

import pytest

from test_shortcut_removal import fake_mnist
from typer.testing import CliRunner

from lookright.cli import app
from lookright.data import GENERATORS, create_benchmark

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "shortcut-removal.md"


def python_block(path: Path) -> str:
    return path.read_text().split("```python\n", 1)[1].split("```", 1)[0]


def test_readme_example_runs():
    exec(compile(python_block(ROOT / "README.md"), "README.md", "exec"), {})


def test_docs_register_example_runs():
    code = python_block(DOC)
    try:
        exec(compile(code, "docs/shortcut-removal.md", "exec"), {})
        bench = create_benchmark("stripe-mnist", mnist=fake_mnist(30))
        assert bench.train.shortcut[:, 0].all() and bench.train.x.shape == (30, 1, 28, 28)
    finally:
        GENERATORS._factories.pop("stripe-mnist", None)


TINY = ["data.embedded=true", "data.max_train=150", "data.max_test=60", "train.epochs=2", "train.attn_epochs=0",
        "eval.figure_images=1"]


def doc_commands(doc: Path = DOC) -> list[list[str]]:
    """Every ``lookright ...`` line of the bash blocks in a docs page, as argv lists."""
    text = doc.read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```bash\n")[1:]]
    lines = [li.split("#", 1)[0].strip() for b in blocks for li in b.splitlines()]
    return [shlex.split(li)[1:] for li in lines if li.startswith("lookright ")]


def test_docs_commands_run(tmp_path, monkeypatch):
    """Each command of the page, on tiny data: sweeps and trains first, then the summaries over their runs."""
    monkeypatch.chdir(ROOT)
    commands = doc_commands()
    assert any(c[0] == "sweep" for c in commands) and any(c[0] == "selection-study" for c in commands)
    run_on_tiny_data(commands, tmp_path)


def test_speed_page_commands_run(tmp_path, monkeypatch):
    """docs/speed.md: the ensembled sweeps (one seed: five lambdas as one ensemble) and their summary."""
    monkeypatch.chdir(ROOT)
    commands = doc_commands(ROOT / "docs" / "speed.md")
    assert [c[0] for c in commands] == ["sweep", "sweep", "summarize"] and "--ensemble" in commands[1]
    run_on_tiny_data(commands, tmp_path)
    assert len(list((tmp_path / "runs").rglob("metrics.json"))) == 6


def run_on_tiny_data(commands: list[list[str]], tmp_path: Path) -> None:
    runner = CliRunner()
    for argv in sorted(commands, key=lambda c: c[0] in ("summarize", "selection-study")):
        if argv[0] in ("sweep", "train"):
            argv = ["1" if prev == "--seeds" else a for prev, a in zip(["", *argv], argv)]
            argv = [a for a in argv if not a.startswith(("seed=", "out_dir="))]
            argv += [*TINY, f"out_dir={tmp_path / 'runs'}"]
            if argv[0] == "train":
                argv += ["--run-dir", str(tmp_path / "runs" / f"train-{len(list(tmp_path.rglob('train-*')))}")]
        else:
            argv = [argv[0], str(tmp_path / "runs"), *argv[2:]]
            argv = [str(tmp_path / "out.md") if prev == "--out" else a for prev, a in zip(["", *argv], argv)]
        result = runner.invoke(app, argv)
        assert result.exit_code == 0, (argv, result.output)



@pytest.mark.timeout(600)
def test_run_folder_page_commands_run(tmp_path, monkeypatch):
    """docs/runs.md: train, an interruption, --resume, a local and a Ray sweep, the summary."""
    from lookright.runs.folder import RunFolder
    from lookright.train import load_config, train

    commands = doc_commands(ROOT / "docs" / "runs.md")
    assert [c[0] for c in commands] == ["train", "train", "sweep", "sweep", "sweep", "sweep", "summarize", "status"]
    monkeypatch.chdir(tmp_path)
    tiny = [*TINY, "train.epochs=3"]
    first, resume, *rest = commands
    config = str(ROOT / first[1])
    run_dir = first[first.index("--run-dir") + 1]
    overrides = [a for a in first[2:] if "=" in a]
    train(load_config(config, [*overrides, *tiny]), run_dir, progress=False, stop_after_epoch=1)  # an interruption
    assert RunFolder(run_dir).state() == "interrupted"
    runner = CliRunner()
    for argv in [resume, *rest]:
        argv = [str(ROOT / a) if a.startswith("configs/") else a for a in argv]
        if argv[0] in ("train", "sweep"):
            argv += tiny
        if "ray" in argv:
            pytest.importorskip("ray.tune")
        result = runner.invoke(app, argv)
        assert result.exit_code == 0, (argv, result.output)
    assert RunFolder(run_dir).state() == "finished"
    assert len(RunFolder(run_dir).metrics()["history"]) == 3
    states = [RunFolder(p.parent).state() for p in (tmp_path / "runs").rglob("run.json")]
    assert len(states) == 1 + 4 + 2 + 2 + 3 and states.count("finished") >= 1 + 4 + 2 + 2 + 1
