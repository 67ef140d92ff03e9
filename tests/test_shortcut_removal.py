"""The shortcut suite, counterfactual augmentation and selection, CDEP's recipe, benchmark checks."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lookright.data import GENERATORS, MNIST, create_benchmark, register_benchmark
from lookright.data.benchmark import check_masks
from lookright.data.counterfactual import counterfactual, input_masks, partners
from lookright.errors import ConfigError, MaskError
from lookright.metrics.counterfactual import counterfactual_scores
from lookright.models import create_model
from lookright.report.selection import selection_study, selection_table
from lookright.train import train
from lookright.train.config import build_config

SUITE = ["frame-colour-mnist", "tint-mnist", "grating-mnist", "texture-mnist-64"]
ROOT = Path(__file__).resolve().parents[1]


def fake_mnist(n=60, seed=0):
    rng = np.random.default_rng(seed)
    grey = np.zeros((2 * n, 28, 28), dtype=np.uint8)
    grey[:, 8:20, 10:18] = rng.integers(1, 256, size=(2 * n, 12, 8))  # a blob in MNIST's centre box
    labels = np.arange(2 * n) % 10
    return MNIST(grey[:n], labels[:n], grey[n:], labels[n:], "fake")


@pytest.mark.parametrize("name", SUITE)
def test_suite_cue_follows_label_in_train_and_not_in_test(name):
    bench = create_benchmark(name, mnist=fake_mnist(200), seed=3)
    for split in (bench.train, bench.test):
        assert split.x.dtype == np.uint8 and split.mask.shape == split.x.shape[:1] + split.x.shape[2:]
        assert not (split.mask & split.shortcut).any(), "the shortcut must lie outside the mask"
    # the cue (pixels under the shortcut mask) identifies the class: same label -> same cue statistics
    # (mean colour for frames and tints; the orientation tensor of the gradients for gratings)
    def cue(split):
        w = split.shortcut[:, None].astype(float)
        if "grating" not in name and "texture" not in name:
            return (split.x * w).sum(axis=(2, 3)) / w.sum(axis=(2, 3))
        x = split.x[:, 0].astype(float)
        gy, gx = np.gradient(x, axis=(1, 2))
        inner = w[:, 0] * np.roll(w[:, 0], 1, 1) * np.roll(w[:, 0], -1, 1) * np.roll(w[:, 0], 1, 2) * np.roll(w[:, 0], -1, 2)
        jxx, jyy, jxy = ((inner * a).sum(axis=(1, 2)) for a in (gx * gx, gy * gy, gx * gy))
        return 100 * np.stack([(jxx - jyy), 2 * jxy], axis=1) / (jxx + jyy)[:, None]
    tr, te = cue(bench.train), cue(bench.test)
    def agreement(cues, y):  # share of same-label pairs whose cues agree
        pairs = [np.allclose(cues[i], cues[j], atol=20) for i in range(60) for j in range(60) if y[i] == y[j] and i != j]
        return np.mean(pairs)
    assert agreement(tr, bench.train.y) >= 0.9
    assert agreement(te, bench.test.y) <= 0.5, "the test rule must decouple the cue from the label"


def test_suite_digit_pixels_carry_no_cue():
    mnist = fake_mnist(50)
    for name in SUITE[:3]:
        bench = create_benchmark(name, mnist=mnist)
        inside = bench.train.mask.astype(bool)
        for c in range(bench.train.x.shape[1]):
            assert (bench.train.x[:, c][inside] == mnist.train_images[inside]).all()


def test_texture_benchmark_is_64_px_and_lenet_follows():
    bench = create_benchmark("texture-mnist-64", mnist=fake_mnist(20))
    assert bench.train.x.shape == (20, 1, 64, 64)
    assert bench.train.mask.sum(axis=(1, 2)).min() > 0
    model = create_model("lenet", size=64)
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 10)


def test_mask_checks_name_the_fix():
    x = np.zeros((4, 1, 28, 28), dtype=np.uint8)
    ok = np.zeros((4, 28, 28), dtype=np.uint8)
    ok[:, 5, 5] = 1
    check_masks("b", x, {"mask": ok})
    with pytest.raises(MaskError, match="shape"):
        check_masks("b", x, {"mask": ok[:, :20]})
    with pytest.raises(MaskError, match="every mask mask is empty"):
        check_masks("b", x, {"mask": np.zeros_like(ok)})
    with pytest.raises(MaskError, match="whole image"):
        check_masks("b", x, {"mask": np.ones_like(ok)})
    with pytest.raises(MaskError, match="outside"):
        check_masks("b", x, {"mask": ok * 3})


def test_user_registered_benchmark_trains_and_bad_ones_fail(tmp_path):
    @register_benchmark("test-user-stripe")
    def stripe(grey, labels, rule, rng):
        x = grey.copy()
        x[:, 0, :] = (labels if rule == "train" else rng.integers(0, 10, len(labels)))[:, None] * 25
        shortcut = np.zeros_like(grey)
        shortcut[:, 0, :] = 1
        return x[:, None], shortcut

    @register_benchmark("test-user-full-mask")
    def full(grey, labels, rule, rng):
        return grey[:, None], np.zeros_like(grey), np.ones_like(grey)

    try:
        cfg = build_config({"name": "u", "data": {"name": "test-user-stripe", "embedded": True, "max_train": 200,
                                                  "max_test": 100},
                            "augment": {"counterfactual": 1.0}, "train": {"epochs": 2, "selection": "counterfactual"},
                            "eval": {"figure_images": 2}})
        metrics = train(cfg, tmp_path / "u", progress=False)
        assert metrics["method"] == "counterfactual" and 0 <= metrics["val_counterfactual_acc"] <= 100
        with pytest.raises(MaskError, match="whole image"):
            create_benchmark("test-user-full-mask", embedded=True)
    finally:
        for name in ("test-user-stripe", "test-user-full-mask"):
            GENERATORS._factories.pop(name, None)


def test_counterfactual_keeps_mask_and_takes_partner_context():
    torch.manual_seed(0)
    x = torch.rand(12, 3, 8, 8)
    mask = torch.zeros(12, 1, 8, 8)
    mask[:, :, 2:6, 2:6] = 1
    gen = torch.Generator().manual_seed(1)
    p = partners(12, torch.Generator().manual_seed(1))
    assert (p != torch.arange(12)).all() and sorted(p.tolist()) == list(range(12))  # a derangement
    out = counterfactual(x, mask, "swap", gen)
    inside = mask.bool().expand_as(x)
    assert torch.equal(out[inside], x[inside])
    # outside the mask: the partner's pixels where the partner's mask is off (same mask here)
    assert torch.allclose(out[~inside], x[p][~inside])
    noise = counterfactual(x, mask, "noise", torch.Generator().manual_seed(2))
    assert torch.equal(noise[inside], x[inside]) and not torch.allclose(noise[~inside], x[~inside])
    with pytest.raises(MaskError, match="input_masks"):
        counterfactual(x, mask[:, :, :4], "swap")
    with pytest.raises(ConfigError, match="fill"):
        counterfactual(x, mask, "blur")


def test_counterfactual_replaces_partner_object_by_its_background():
    x = torch.zeros(2, 1, 4, 4)
    x[0, 0, 0, 0] = 1.0  # image 0's object
    x[1] = 0.5
    x[1, 0, 3, 3] = 1.0  # image 1's object
    mask = torch.zeros(2, 1, 4, 4)
    mask[0, 0, 0, 0] = 1
    mask[1, 0, 3, 3] = 1
    out = counterfactual(x, mask, "swap", torch.Generator().manual_seed(0))
    assert out[0, 0, 0, 0] == 1.0 and out[0, 0, 3, 3] == pytest.approx(0.5)  # partner's object -> its background


def test_input_masks_resize_and_dilate():
    m = torch.zeros(1, 28, 28)
    m[0, 14, 14] = 1
    assert input_masks(m, (28, 28), dilate=1).sum() == 9
    assert input_masks(m, (32, 32)).shape == (1, 1, 32, 32)


class ReadsOnlyCentre(nn.Module):
    def forward(self, x):
        centre = x[:, 0, 2:6, 2:6].mean(dim=(1, 2))
        return torch.stack([centre, -centre], dim=1)


class ReadsOnlyCorner(nn.Module):
    def forward(self, x):
        corner = x[:, 0, 0, 0]
        return torch.stack([corner, -corner], dim=1)


def test_counterfactual_score_separates_reliance():
    y = torch.arange(40) % 2
    sign = (1 - 2 * y).float()[:, None, None]
    x = torch.zeros(40, 1, 8, 8)
    x[:, 0] = sign  # every pixel, the corner (a shortcut) included, says the label
    mask = torch.zeros(40, 1, 8, 8)
    mask[:, :, 2:6, 2:6] = 1
    good = counterfactual_scores(ReadsOnlyCentre(), x, y, mask, seed=0)
    bad = counterfactual_scores(ReadsOnlyCorner(), x, y, mask, seed=0)
    assert good == {"acc": 100.0, "consistency": 100.0}
    # partners are of any class: a corner reader is right exactly when its partner shares the label
    assert 25.0 <= bad["acc"] <= 75.0 and bad["acc"] == bad["consistency"]


def test_selection_study_ranks():
    rows = [{"dataset": "d", "shifted_test_acc": s, "val_acc": 90.0 + i % 2, "val_counterfactual_acc": s - 3,
             "history": [{"val_cf_acc": s - 5, "test_acc": s - 4, "val_acc": 99.0}]}
            for i, s in enumerate([10.0, 40.0, 60.0, 80.0])]
    study = selection_study(rows)
    assert study[0]["val_counterfactual_acc_runs"] == pytest.approx(1.0)
    assert study[0]["val_counterfactual_acc_epochs"] == pytest.approx(1.0)
    assert study[0]["val_acc_epochs"] is None  # constant score: undefined, not NaN
    assert "| d | 4 | 4 | 1.000" in selection_table(study)


def test_cdep_recipe_raw_pixels_early_stopping_and_cdep_loss(tmp_path):
    tree = {"name": "cdep", "data": {"name": "decoymnist-cdep", "embedded": True, "max_train": 300, "max_test": 100,
                                     "val_fraction": 0.1},
            "model": {"name": "cdep-decoymnist", "options": {"hidden": 256}, "input_scale": "raw"},
            "optim": {"name": "adam", "lr": 1e-3, "weight_decay": 1e-4}, "scheduler": {"name": "none"},
            "train": {"epochs": 5, "batch_size": 64, "selection": "val_loss", "patience": 1},
            "loss": {"name": "cdep", "lambda0": 1.0}, "eval": {"extractor": "gradcam", "figure_images": 2}}
    metrics = train(build_config(tree), tmp_path / "r", progress=False)
    hist = metrics["history"]
    assert metrics["method"] == "cdep" and hist[0]["train_align"] is not None
    best = min(range(len(hist)), key=lambda i: hist[i]["val_loss"])
    assert metrics["selected_epoch"] == hist[best]["epoch"]
    assert len(hist) == 5 or len(hist) - 1 - best >= 1  # stopped only after `patience` epochs without gain
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert saved["val_loss"] == pytest.approx(hist[best]["val_loss"], rel=1e-5)
    model = create_model("cdep-decoymnist", hidden=256)
    assert model.fc1.out_features == 256


def test_aligner_on_missing_layer_names_the_layers(tmp_path):
    cfg = build_config({"data": {"embedded": True, "max_train": 100, "max_test": 50},
                        "loss": {"name": "camal"}, "attention": {"layer": "layer4"}, "train": {"epochs": 1}})
    with pytest.raises(ConfigError, match="no layer 'layer4'.*conv2"):
        train(cfg, tmp_path / "x", progress=False)


def test_all_class_cam_is_sum_of_abs_class_maps():
    from lookright.attention import create_extractor

    torch.manual_seed(0)
    model = create_model("lenet").eval()
    x = torch.randn(3, 3, 32, 32)
    maps = create_extractor("cam-all-classes")(model, x)
    cam = create_extractor("cam", post_relu=True)
    expected = sum(cam(model, x, c).abs() for c in range(10))
    assert torch.allclose(maps, expected, atol=1e-5)
    assert torch.equal(maps, create_extractor("cam-all-classes")(model, x, 4))  # class-agnostic


def test_suite_and_recipe_configs_validate():
    from lookright.train import load_config

    root = ROOT / "configs"
    suite = sorted(root.glob("suite/[a-z]*.yaml"))
    assert {p.stem.rsplit("-", 1)[0] for p in suite} >= set(SUITE)
    for path in [*suite, *root.glob("decoymnist-cdep-recipe-*.yaml")]:
        cfg = load_config(path)
        assert cfg.name == path.stem
        if "counterfactual" in path.stem:
            assert cfg.augment.counterfactual == 1.0 and cfg.train.selection == "counterfactual"
    recipe = load_config(root / "decoymnist-cdep-recipe-vanilla.yaml")
    assert (recipe.model.input_scale, recipe.optim.name, recipe.train.batch_size, recipe.train.epochs,
            recipe.train.patience, recipe.data.val_fraction) == ("raw", "adam", 64, 5, 2, 0.1)
    kl = load_config(root / "colormnist-kl.yaml")
    assert kl.data.mask_threshold == 10 and kl.train.selection == "val_acc_x_align"


def test_official_learning_to_look_ring_covers_more_cells():
    from lookright.targets import LEARNING_TO_LOOK_CONTOUR, LEARNING_TO_LOOK_OFFICIAL, MaskPipeline

    bench = create_benchmark("colormnist", embedded=True, mask_threshold=10)
    masks = torch.from_numpy(bench.train.mask[:500])
    official = MaskPipeline(LEARNING_TO_LOOK_OFFICIAL)(masks, (10, 10)) > 0
    direct = MaskPipeline(LEARNING_TO_LOOK_CONTOUR)(masks, (10, 10)) > 0
    assert 28 < official.float().sum((1, 2)).mean() < 34 and 18 < direct.float().sum((1, 2)).mean() < 24
    assert (direct & ~official).float().mean() < 0.01  # the official ring contains the direct one


def test_paired_table_pairs_by_seed():
    from lookright.report.summary import paired_table

    rows = [{"dataset": "d", "model": "lenet", "name": n, "seed": s, "val_acc": 99.0,
             "shifted_test_acc": base + s + (bonus if n == "d-cf" else 0)}
            for n, base, bonus in (("d-vanilla", 40.0, 0), ("d-cf", 40.0, 50.0)) for s in range(5)]
    text = paired_table(rows, "-vanilla")
    line = next(li for li in text.splitlines() if "| d-cf |" in li)
    assert "| 50 | 0 |" in line  # constant +50 over 5 paired seeds: t-test p = 0
    assert "(reference)" in next(li for li in text.splitlines() if "| d-vanilla |" in li)


def test_expected_gradients_prior_trains_from_config(tmp_path):
    cfg = build_config({"data": {"name": "frame-colour-mnist", "embedded": True, "max_train": 128, "max_test": 64},
                        "loss": {"name": "rrr", "lambda0": 1.0},
                        "attention": {"extractor": "expected-gradients", "options": {"samples": 2, "seed": 0}},
                        "train": {"epochs": 1, "batch_size": 64}, "eval": {"figure_images": 1}})
    metrics = train(cfg, tmp_path / "eg", progress=False)
    assert metrics["history"][0]["train_align"] > 0
    with pytest.raises(ConfigError, match="expected-gradients"):
        train(build_config({**cfg.model_dump(), "attention": {"extractor": "expected-gradients",
                                                              "options": {"bogus": 1}}}), tmp_path / "b", progress=False)
