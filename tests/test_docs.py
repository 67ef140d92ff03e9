"""The code the docs tell a user to run, run on tiny data."""

import importlib.util
import py_compile
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_shortcut_removal import fake_mnist
from typer.testing import CliRunner

from lookright.cli import app
from lookright.data import GENERATORS, create_benchmark
from lookright.train import load_config, train

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
    return [shlex.split(li)[1:] for li in bash_lines(doc) if li.startswith("lookright ")]


# ---- every fenced bash block of README.md and docs/*.md, run on tiny settings ----------------------

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# tiny settings, substituted through the documented overrides and options (later ones win)
RL_TINY = ["agent.total_timesteps=256", "agent.n_steps=32", "agent.batch_size=32", "agent.channels=[4,8]",
           "eval.episodes=2", "eval.max_states=10", "eval.top_k=[0.1]", "eval.frames=2"]
VLM_TINY = ["data.image_size=16", "data.n_train=32", "data.n_test=16", "tune.epochs=1", "tune.batch_size=16",
            "eval.attention_images=4", "figures=false"]
EVAL_TINY = ["--max-images", "20", "--set", "eval.steps=2", "--set", "eval.road_max_images=8",
             "--set", "eval.example_images=2"]
PRETRAIN_TINY = ["--epochs", "1", "--n-shapes", "32", "--n-mnist", "64", "--holdout", "32", "--embedded",
                 "--batch-size", "32"]
ONE = {"--seeds": "1", "--jobs": "1", "--max-images": "20"}


def bash_lines(doc: Path) -> list[str]:
    """The command lines of a page's bash blocks, in order, without comments or environment
    assignments (``LOOKRIGHT_DATA=DIR lookright ...``: the tests set the data themselves)."""
    blocks = [b.split("```", 1)[0] for b in doc.read_text().split("```bash\n")[1:]]
    lines = []
    for line in (li.split(" #", 1)[0].strip() for b in blocks for li in b.splitlines()):
        while line and "=" in line.split(" ", 1)[0] and not line.startswith(("lookright", "make", "python")):
            line = line.split(" ", 1)[1].lstrip()  # drop a leading VAR=value
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def expand(text: str, cwd: Path) -> list[str]:
    """Shell word splitting, brace and glob expansion of ``text`` in ``cwd`` (unmatched globs vanish)."""
    out = subprocess.run(["bash", "-O", "nullglob", "-c", f"printf '%s\\0' {text}"], cwd=cwd, check=True,
                         capture_output=True, text=True).stdout
    return [w for w in out.split("\0") if w]


def _replace_values(argv: list[str], values: dict[str, str]) -> list[str]:
    return [values.get(prev, a) for prev, a in zip(["", *argv], argv)]


def overrides_of(argv: list[str]) -> list[str]:
    """The ``key=value`` arguments of a command (not the values of ``--grid`` and ``--set``)."""
    return [a for prev, a in zip(["", *argv], argv) if "=" in a and not a.startswith("-")
            and prev not in ("--grid", "--set")]


def tiny(argv: list[str]) -> list[str] | None:
    """The documented command on tiny settings; None for a command that needs what a test cannot
    have (a Ray cluster's address)."""
    cmd = argv[:2] if argv[0] in ("rl", "vlm", "data") else argv[:1]
    argv = _replace_values(argv, ONE)
    if "--address" in argv:
        return None
    if cmd in (["train"], ["sweep"]):
        config = load_config(argv[1], overrides_of(argv[2:]))  # the documented line must validate
        extra = [*TINY, "target.vlm.cache_dir=cache"] if config.target.teacher == "vlm" else TINY
        return [*argv, *extra]
    if cmd == ["teach"]:
        return [*argv, *TINY, "target.vlm.cache_dir=cache", "--max-images", "20"]
    if cmd == ["eval"]:
        return [*argv, *EVAL_TINY]
    if cmd == ["compare"]:
        return [*argv, "--examples", "2"]
    if cmd == ["export"] and "onnx" in argv and importlib.util.find_spec("onnxscript") is None:
        return _replace_values(argv, {"--format": "torchscript"})  # the onnx extra is optional
    if cmd == ["rl", "train"]:
        return [*argv, *RL_TINY]
    if cmd == ["rl", "eval"]:
        return [*argv, "--set", "eval.episodes=2"]
    if cmd == ["vlm", "pretrain"]:
        return [*argv, *PRETRAIN_TINY]
    if cmd in (["vlm", "eval"], ["vlm", "tune"]):
        return [*argv, *VLM_TINY]
    return argv


def _interrupted_first(argv: list[str], sandbox: Path) -> None:
    """A documented ``--resume`` continues an interrupted run: interrupt one there first (also for
    the line that precedes ``LINE --resume``)."""
    run_dir = sandbox / argv[argv.index("--run-dir") + 1]
    if not run_dir.exists():
        train(load_config(argv[1], [*overrides_of(argv[2:]), *TINY]), run_dir, progress=False, stop_after_epoch=1)


def _reads(words: list[str], made: set[str]) -> bool:
    """Whether a command reads a folder that a `make` reproduction above would have written."""
    return any(w == m or w.startswith(m.rstrip("/") + "/") for w in words for m in made)


def run_line(line: str, sandbox: Path, made: set[str], interrupted: bool = False) -> None:
    words = line.split()
    if words[0] == "make":  # set-up and hour-long reproductions: the target exists and expands
        dry = subprocess.run(["make", "-n", *words[1:]], cwd=ROOT, capture_output=True, text=True)
        assert dry.returncode == 0, (line, dry.stderr)
        made.update(w.split("=", 1)[1] for w in words if w.startswith("OUT="))
        return
    if words[0] == "python":
        if _reads(words, made):
            py_compile.compile(str(ROOT / words[1]), doraise=True)  # it reads a reproduction's output
            return
        result = subprocess.run([sys.executable, *expand(" ".join(words[1:]), sandbox)], cwd=sandbox,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (line, result.stdout, result.stderr)
        return
    assert words[0] == "lookright", f"a bash block runs lookright, make or python: {line!r}"
    argv = expand(line.split(" ", 1)[1], sandbox)
    if _reads(words, made):
        # it reads a reproduction's output (a `make` line above): the command and its options must parse
        result = CliRunner().invoke(app, [*[a for a in argv if not a.startswith(tuple(made))], "--help"])
        assert result.exit_code == 0, (line, result.output)
        made.update(argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--out")  # its output is not there either
        return
    if interrupted or "--resume" in argv:
        _interrupted_first(argv, sandbox)
        if interrupted:  # the next line resumes it
            return
    if "ray" in argv:
        pytest.importorskip("ray.tune")
    command = tiny(argv)
    if command is None:
        return
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, (line, command, result.output)


def borrowed_clips(lines: list[str]) -> list[str]:
    """CLIP folders the lines read but no line writes (``--out DIR``): ``models/small-clip``, the
    configs' default, and each ``target.vlm.path=DIR`` (a downloaded CLIP such as
    ``models/clip-vit-base-patch16``, which no test can fetch)."""
    words = [w for li in lines for w in shlex.split(li)]
    made = {w for prev, w in zip(["", *words], words) if prev == "--out"}
    used = {"models/small-clip"} | {w.split("=", 1)[1] for w in words if w.startswith("target.vlm.path=")}
    return sorted(used - made)


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    from lookright.vlm.small_clip import build_small_clip, save_clip
    from lookright.vlm.tokenizer import build_tokenizer

    folder = tmp_path_factory.mktemp("clip") / "small-clip"
    torch.manual_seed(0)
    tok = build_tokenizer(["a handwritten digit", "background black dark", "a red circle square triangle"],
                          folder.parent / "vocab")
    save_clip(build_small_clip(tok, width=32, layers=1, heads=2, embed_dim=16), tok, folder, 28)
    return folder


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("doc", [d for d in DOCS if bash_lines(d)], ids=lambda d: str(d.relative_to(ROOT)))
def test_every_bash_block_runs(doc, tmp_path, monkeypatch, clip_folder):
    """Each line of the page's bash blocks, in order, in a fresh folder (``configs/`` and ``scripts/``
    linked in), on tiny settings: a failing command fails the test. ``make`` lines are dry runs;
    commands that read an hour-long reproduction's output are checked to parse; each CLIP folder the
    page uses without making it (:func:`borrowed_clips`) is a tiny one."""
    for name in ("configs", "scripts"):
        (tmp_path / name).symlink_to(ROOT / name)
    lines = bash_lines(doc)
    for folder in borrowed_clips(lines):
        (tmp_path / folder).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / folder).symlink_to(clip_folder)
    monkeypatch.chdir(tmp_path)
    made: set[str] = set()
    for i, line in enumerate(lines):
        resumed_next = i + 1 < len(lines) and lines[i + 1].startswith(line) and "--resume" in lines[i + 1]
        run_line(line, tmp_path, made, interrupted=resumed_next)


def test_make_reproduce_skips_configs_that_need_a_pretrained_clip():
    dry = subprocess.run(["make", "-n", "reproduce"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "configs/colormnist-kl.yaml" in dry and "-kl-vlm" not in dry


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
