"""The VLM teacher inside the core: `lookright teach`, its cache, and training in both modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import lookright
from conftest import CONFIGS
from lookright.cli import app
from lookright.vlm.small_clip import build_small_clip, save_clip
from lookright.vlm.tokenizer import build_tokenizer

pytestmark = pytest.mark.integration
CONFIG = str(CONFIGS / "colormnist-kl-vlm.yaml")


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    torch.manual_seed(0)
    tok = build_tokenizer(["a handwritten digit", "background black dark"], folder / "vocab")
    save_clip(build_small_clip(tok, width=32, layers=1, heads=2, embed_dim=16), tok, folder, 28)
    return folder


def _overrides(clip_folder, cache):
    return ["data.embedded=true", "data.max_train=300", "data.max_test=200", "train.epochs=2", "train.attn_epochs=1",
            "train.batch_size=64", f"target.vlm.path={clip_folder}", f"target.vlm.cache_dir={cache}"]


def test_teach_fills_the_cache_then_hits_it(clip_folder, tmp_path):
    runner = CliRunner()
    args = ["teach", CONFIG, *_overrides(clip_folder, tmp_path / "cache")]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert first.output.count("cache miss") == 3
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert second.output.count("cache hit") == 3
    entries = list((tmp_path / "cache").glob("*/meta.json"))
    assert len(entries) == 3  # train, val, test
    meta = json.loads(entries[0].read_text())
    assert meta["fields"]["teacher"]["method"] == "surgery"
    changed = runner.invoke(app, [*args, "target.vlm.threshold=0.5"])
    assert changed.output.count("cache miss") == 3  # another post-processing: new entries


def test_teach_evaluate_writes_quality_and_figure(clip_folder, tmp_path):
    out = tmp_path / "quality"
    result = CliRunner().invoke(app, ["teach", CONFIG, *_overrides(clip_folder, tmp_path / "c"), "--evaluate",
                                      "--max-images", "50", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "mask_quality.json").read_text())
    assert set(report["methods"]) == {"gradcam", "maskclip", "surgery"}
    for r in report["methods"].values():
        assert 0 <= r["iou"] <= 1 and 0 <= r["energy_pointing_game"] <= 1 and r["images_per_second"] > 0
    assert (out / "pseudo_masks.png").stat().st_size > 0


def test_teach_rejects_a_config_without_vlm_teacher(tmp_path):
    result = CliRunner().invoke(app, ["teach", str(CONFIGS / "colormnist-kl.yaml"), "data.embedded=true"])
    assert result.exit_code == 2 and "not 'vlm'" in result.output


def test_missing_clip_weights_name_the_option(tmp_path):
    result = CliRunner().invoke(app, ["teach", CONFIG, "data.embedded=true", f"target.vlm.path={tmp_path / 'none'}"])
    assert result.exit_code == 2 and "vlm.path" in result.output and "lookright vlm pretrain" in result.output


def test_training_from_cache_and_on_the_fly_sees_the_same_targets(clip_folder, tmp_path):
    from lookright.targets import MaskPipeline
    from lookright.train import load_config
    from lookright.train.batches import to_tensors
    from lookright.train.trainer import build_parts, load_splits, train
    from lookright.vlm.backends import load_clip

    cached_cfg = load_config(CONFIG, _overrides(clip_folder, tmp_path / "cache"))
    fly_cfg = load_config(CONFIG, _overrides(clip_folder, tmp_path / "cache") + ["target.vlm.mode=on-the-fly"])
    model, extractor, _, _ = build_parts(cached_cfg)
    train_split, _, _, _ = load_splits(cached_cfg)
    pipeline = MaskPipeline(cached_cfg.target.pipeline)
    clip = load_clip("hf", path=clip_folder)
    grid = (7, 7)
    cached = to_tensors(train_split, model, "cpu", cached_cfg, pipeline, grid, "train", clip)
    fly = to_tensors(train_split, model, "cpu", fly_cfg, pipeline, grid, "train", clip)
    assert fly.target is None and fly.teacher is not None
    idx = torch.arange(0, 64)
    a, b = cached.targets(idx, pipeline, grid), fly.targets(idx, pipeline, grid)
    assert a.shape == b.shape == (64, 7, 7)
    assert (a - b).abs().max() < 1e-4  # same masks whether read from the cache or computed per batch

    for cfg, name in ((cached_cfg, "cached"), (fly_cfg, "fly")):
        metrics = train(cfg, tmp_path / name, progress=False)
        assert metrics["shifted_test_acc"] >= 0 and len(metrics["history"]) == 2


def test_the_vlm_teacher_draws_masks_on_a_manifest_dataset(clip_folder, tmp_path):
    """User data: prompts per class from the dataset's own class names, at the data's resolution."""
    from lookright.data.example import write_example
    from lookright.errors import ConfigError
    from lookright.train import load_config
    from lookright.train.trainer import train

    csv = write_example(tmp_path / "ex", n=48, size=32)
    cache = tmp_path / "cache"
    overrides = [f"data.path={csv}", "data.name=manifest", "data.image_size=32", "model.options={num_classes: 4}",
                 "train.epochs=2", "train.attn_epochs=1", "train.batch_size=16", f"target.vlm.path={clip_folder}",
                 f"target.vlm.cache_dir={cache}", "log.backends=[]", "target.vlm.foreground=null"]
    metrics = train(load_config(CONFIG, overrides), tmp_path / "run", progress=False)
    assert len(metrics["history"]) == 2 and metrics["history"][-1]["val_align"] is not None
    entries = [json.loads(p.read_text()) for p in cache.glob("*/meta.json")]
    assert len(entries) == 3  # train, val, test
    for meta in entries:
        assert meta["fields"]["teacher"]["class_names"] == ["circle", "cross", "square", "triangle"]
        assert meta["fields"]["teacher"]["foreground"] == "a photo of a {name}."
        assert meta["shape"][1:] == [32, 32]
    wrong = load_config(CONFIG, [*overrides, "target.vlm.class_names=[a, b]"])
    with pytest.raises(ConfigError, match="class_names has 2 names but the dataset has 4 classes"):
        train(wrong, tmp_path / "wrong", progress=False)


def _imported(package: Path) -> set[str]:
    """Every module a package's files import, at the top or inside functions."""
    import ast

    names = set()
    for file in package.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
    return names


def test_vlm_never_imports_train_or_rl_and_targets_never_imports_vlm():
    src = Path(lookright.__file__).resolve().parent
    vlm = _imported(src / "vlm")
    assert not {m for m in vlm if m.startswith(("lookright.train", "lookright.rl"))}
    assert not {m for m in _imported(src / "targets") if m.startswith("lookright.vlm")}
    from lookright.train.teach import evaluate_teacher, teach  # noqa: F401  (the supervised pipeline owns `teach`)
    from lookright.vlm.cache import MaskCache  # noqa: F401
    from lookright.vlm.teacher import VLMSettings, VLMTeacher, split_masks  # noqa: F401


def test_a_cache_hit_loads_no_clip(clip_folder, tmp_path, monkeypatch):
    """Training (and teaching again) on masks already in the cache never loads the CLIP; a run that
    misses loads it once for all its splits (benchmarks/teacher_cache_cost.py measures the cost)."""
    from lookright.train import load_config
    from lookright.train.teach import teach
    from lookright.train.trainer import train
    from lookright.vlm.teacher import VLMSettings

    cfg = load_config(CONFIG, _overrides(clip_folder, tmp_path / "cache") + ["log.backends=[]"])
    teach(cfg, progress=False)
    loads = []
    real = VLMSettings.load_clip
    monkeypatch.setattr(VLMSettings, "load_clip", lambda self: loads.append(self.path) or real(self))
    assert len(train(cfg, tmp_path / "hit", progress=False)["history"]) == 2
    assert [r["status"] for r in teach(cfg, progress=False).values()] == ["hit"] * 3
    assert loads == []
    train(load_config(CONFIG, _overrides(clip_folder, tmp_path / "empty") + ["log.backends=[]"]), tmp_path / "miss",
          progress=False)
    assert loads == [str(clip_folder)]


def test_counterfactuals_and_selection_use_the_pseudo_masks_not_the_ground_truth(clip_folder, tmp_path, monkeypatch):
    """With the VLM teacher, the counterfactual masks of train (augmentation) and val (selection)
    come from the teacher; the ground truth stays in ``mask`` for the metrics only."""
    import numpy as np

    import lookright.train.batches as batches
    from lookright.data.counterfactual import input_masks
    from lookright.models import create_model
    from lookright.train.config import load_config
    from lookright.train.trainer import load_splits

    def left_half(_teacher, images, _dataset, progress=None):
        masks = np.zeros((len(images), *images.shape[-2:]), dtype=np.uint8)
        masks[:, :, :14] = 1
        return masks, "stub"

    monkeypatch.setattr(batches, "split_masks", left_half)
    overrides = [*_overrides(clip_folder, tmp_path / "cache"), "augment.counterfactual=1.0", "loss.name=null",
                 "train.attn_epochs=0"]
    cfg = load_config(CONFIG, overrides)
    train_split, val_split, _test, source = load_splits(cfg)
    cfg = cfg.for_dataset(source)
    model = create_model(cfg.model.name, **cfg.model.options)
    for split, name in ((train_split, "train"), (val_split, "val")):
        data = batches.to_tensors(split, model, "cpu", cfg, None, None, name)
        pseudo = torch.zeros(len(split.y), 28, 28)
        pseudo[:, :, :14] = 1
        expected = input_masks(pseudo, data.x.shape[-2:], 0)
        assert torch.equal(data.input_mask, expected), name
        assert torch.equal(data.mask, torch.from_numpy(split.mask))  # the metrics' ground truth
        assert not torch.equal(data.input_mask, input_masks(data.mask, data.x.shape[-2:], 0))
    with pytest.raises(Exception, match="target.vlm.mode: cache"):
        load_config(CONFIG, [*overrides, "target.vlm.mode=on-the-fly"])
