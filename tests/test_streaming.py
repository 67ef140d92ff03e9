"""Streaming user datasets: batches decoded from disk per step follow the in-memory path exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import CONFIGS
from lookright.data.example import write_example
from lookright.data.sources import load_user_splits
from lookright.data.stream import PermutationBatches, RecordDataset, StreamSplit, batch_loader
from lookright.errors import ConfigError
from lookright.train.config import DataConfig, load_config
from lookright.train.trainer import train


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    return write_example(tmp_path_factory.mktemp("stream") / "ex", n=60, size=32)


def run(csv, tmp_path, name, *extra):
    cfg = load_config(None, [f"name={name}", "data.name=manifest", f"data.path={csv}", "data.image_size=28",
                             "model.name=lenet", "model.options={num_classes: 4}", "train.epochs=2",
                             "train.batch_size=16", "loss.name=kl", "train.device=cpu", *extra])
    return json.loads(json.dumps(train(cfg, tmp_path / name, progress=False)))


def test_stream_matches_in_memory(example, tmp_path):
    memory = run(example, tmp_path, "memory", "data.stream=false")
    streamed = run(example, tmp_path, "streamed", "data.stream=true", "data.workers=2")
    assert memory["sizes"] == streamed["sizes"]
    assert streamed["shifted_test_acc"] == pytest.approx(memory["shifted_test_acc"], abs=1e-5)
    for a, b in zip(memory["history"], streamed["history"], strict=True):
        for key, value in a.items():
            if isinstance(value, float):
                assert b[key] == pytest.approx(value, abs=1e-5), key
            else:
                assert b[key] == value, key


def test_dataset_decodes_what_memory_holds(example):
    memory, *_ = load_user_splits(DataConfig(name="manifest", path=str(example), image_size=28), 0)
    streamed, *_ = load_user_splits(DataConfig(name="manifest", path=str(example), image_size=28), 0, stream=True)
    assert isinstance(streamed, StreamSplit) and len(streamed) == len(memory)
    ds = RecordDataset(streamed)
    for i in (0, len(ds) - 1):
        x, y, mask, shortcut = ds[i]
        assert np.array_equal(x.numpy(), memory.x[i]) and y == memory.y[i]
        assert np.array_equal(mask.numpy(), memory.mask[i]) and np.array_equal(shortcut.numpy(), memory.shortcut[i])


def test_batches_follow_the_permutation(example):
    split, *_ = load_user_splits(DataConfig(name="manifest", path=str(example), image_size=28), 0, stream=True)
    perm = torch.randperm(len(split), generator=torch.Generator().manual_seed(3))
    assert [len(b) for b in PermutationBatches(perm, 16)] == [16, 16, len(split) - 32]
    ys = torch.cat([y for _, y, _, _ in batch_loader(RecordDataset(split), perm, 16, 0, 0)])
    assert torch.equal(ys, torch.from_numpy(split.y)[perm])


def test_augment_moves_masks_with_the_image(example):
    split, *_ = load_user_splits(DataConfig(name="manifest", path=str(example), image_size=28), 0, stream=True)
    plain, flipped = RecordDataset(split), RecordDataset(split, [{"RandomHorizontalFlip": {"p": 1.0}}])
    (x, _, m, s), (fx, _, fm, fs) = plain[0], flipped[0]
    assert torch.equal(fx, x.flip(-1)) and torch.equal(fm, m.flip(-1)) and torch.equal(fs, s.flip(-1))


def test_auto_streams_over_the_budget(example):
    small = DataConfig(name="manifest", path=str(example), image_size=28)
    assert not isinstance(load_user_splits(small, 0, stream="auto")[0], StreamSplit)
    tiny = DataConfig(name="manifest", path=str(example), image_size=28, memory_budget_mb=0.01)
    assert isinstance(load_user_splits(tiny, 0, stream="auto")[0], StreamSplit)


def test_config_errors(example):
    with pytest.raises(Exception, match="not a torchvision.transforms.v2 transform"):
        DataConfig(name="manifest", path=str(example), augment=["NoSuchFlip"])
    with pytest.raises(Exception, match="needs streaming"):
        DataConfig(name="manifest", path=str(example), stream=False, augment=["RandomHorizontalFlip"])
    with pytest.raises(Exception, match="manifest and folder"):
        DataConfig(name="colormnist", stream=True)
    with pytest.raises(Exception, match="teacher: vlm needs the train images in memory"):
        load_config(str(CONFIGS / "colormnist-kl-vlm.yaml"), ["data.name=manifest", f"data.path={example}", "data.stream=true"])
    with pytest.raises(ConfigError, match="an .npz is read whole"):
        load_user_splits(DataConfig(name="npz", path=str(example)), 0, stream=True)


def test_val_and_test_stream_when_asked_or_over_the_budget(example):
    forced = load_user_splits(DataConfig(name="manifest", path=str(example), image_size=28), 0, stream=True)
    assert all(isinstance(s, StreamSplit) for s in forced[:3])
    small = DataConfig(name="manifest", path=str(example), image_size=28, augment=["RandomHorizontalFlip"])
    train, val, test, _ = load_user_splits(small, 0, stream="auto")  # augmentation streams train only
    assert isinstance(train, StreamSplit) and not isinstance(val, StreamSplit) and not isinstance(test, StreamSplit)
    tiny = DataConfig(name="manifest", path=str(example), image_size=28, memory_budget_mb=0.01)
    assert all(isinstance(s, StreamSplit) for s in load_user_splits(tiny, 0, stream="auto")[:3])


def test_streamed_evaluation_equals_the_whole_split(example):
    """Every validation metric, the counterfactual score included, batch by batch from disk."""
    from lookright.metrics.counterfactual import counterfactual_scores
    from lookright.targets import MaskPipeline
    from lookright.train.evaluation import EvalSet, attention_mass, evaluate
    from lookright.train.trainer import attention_grid, build_parts

    cfg = load_config(None, ["data.name=manifest", f"data.path={example}", "data.image_size=28", "model.name=lenet",
                             "model.options={num_classes: 4}", "loss.name=kl", "data.workers=0"])
    torch.manual_seed(0)
    model, extractor, loss_fn, eval_extractor = build_parts(cfg)
    model.eval()
    _, memory_val, _, _ = load_user_splits(cfg.data, 0)
    _, streamed_val, _, _ = load_user_splits(cfg.data, 0, stream=True)
    pipeline = MaskPipeline(cfg.target.pipeline)
    grid = attention_grid(model, extractor, model.input_spec.prepare(torch.from_numpy(memory_val.x[:2])))
    memory = EvalSet(memory_val, model, torch.device("cpu"), cfg, pipeline, grid, "val")
    streamed = EvalSet(streamed_val, model, torch.device("cpu"), cfg, pipeline, grid, "val")
    a, b = evaluate(model, memory, extractor, loss_fn, cfg), evaluate(model, streamed, extractor, loss_fn, cfg)
    assert a["acc"] == b["acc"] and a["counterfactual"] == b["counterfactual"]
    assert b["loss"] == pytest.approx(a["loss"], abs=1e-6) and b["align"] == pytest.approx(a["align"], abs=1e-6)
    # the batched score is the whole-split metric of lookright.metrics
    t = memory.tensors
    assert a["counterfactual"] == counterfactual_scores(model, t.x, t.y, t.input_mask, cfg.seed, 7)
    for bs in (7, 1000):
        cfg.train.eval_batch_size = bs
        assert evaluate(model, streamed, extractor, loss_fn, cfg)["counterfactual"] == a["counterfactual"]
    mass_a, mass_b = attention_mass(model, memory, eval_extractor, 5), attention_mass(model, streamed, eval_extractor, 9)
    for region in ("digit", "shortcut"):
        assert mass_b[region]["mean"] == pytest.approx(mass_a[region]["mean"], abs=1e-6)
        assert mass_b[region]["images"] == mass_a[region]["images"] == len(memory)
