"""The WeCLIP+-style stages of the VLM teacher (decoder, CRF), the spatial pretraining objective,
bad input, and a teacher that never reads ground-truth masks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import CONFIGS
from test_vlm_train import clip_folder  # noqa: F401  (a random small CLIP saved as a folder)
from lookright.errors import ConfigError, MaskError
from lookright.vlm.crf import CRFSettings, crf_refine
from lookright.vlm.decoder import DecoderSettings, fit_decoder
from lookright.vlm.small_clip import build_small_clip
from lookright.vlm.teacher import TeacherWarning, VLMSettings, VLMTeacher, check_empty, split_masks
from lookright.vlm.tokenizer import build_tokenizer


def _iou(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a * b).sum() / ((a + b) > 0).float().sum())


def _squares(n: int = 64, size: int = 28, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images ``(n, 1, size, size)`` with one bright square each, and the squares' masks."""
    gen = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=np.uint8)
    for i in range(n):
        s = int(gen.integers(6, 12))
        top, left = gen.integers(0, size - s, 2)
        masks[i, top:top + s, left:left + s] = 1
    return torch.from_numpy(masks[:, None] * 230).to(torch.uint8), torch.from_numpy(masks).float()


def test_crf_pulls_a_blurred_probability_onto_the_edges():
    images, masks = _squares(8)
    blurred = torch.nn.functional.avg_pool2d(masks[:, None], 9, stride=1, padding=4, count_include_pad=False)[:, 0]
    prob = 0.15 + 0.6 * blurred  # too wide a halo above 1/2, the square's corners below it
    refined = crf_refine(images.float() / 255, prob, CRFSettings(enabled=True))
    before, after = _iou((prob >= 0.5).float(), masks), _iou((refined >= 0.5).float(), masks)
    assert after > before + 0.1 and after > 0.9
    assert refined.shape == prob.shape and 0 <= refined.min() and refined.max() <= 1


def test_decoder_learns_sharper_masks_than_its_coarse_seeds():
    from lookright.vlm.postprocess import soft_and_thresholds

    images, masks = _squares(400, seed=1)
    # seeds as the teacher makes them: a 7 x 7 map, upsampled, min-max, Otsu
    soft, t = soft_and_thresholds(torch.nn.functional.avg_pool2d(masks[:, None], 4)[:, 0], (28, 28), "otsu")

    def seeds(index):
        return soft[index], t[index]

    decoder, record = fit_decoder(images, seeds, DecoderSettings(enabled=True, epochs=3, max_images=400))
    assert record["converged"] and record["losses"][-1] < record["losses"][0]
    test, truth = _squares(50, seed=2)
    with torch.no_grad():
        pred = (decoder(test.float() / 255) > 0).float()
    seed_iou = _iou((soft[:50] >= t[:50, None, None]).float(), masks[:50])  # 0.74
    assert _iou(pred, truth) > seed_iou + 0.02  # 0.79


def test_a_decoder_that_does_not_converge_says_so():
    images, _ = _squares(64, seed=3)
    gen = torch.Generator().manual_seed(0)
    noise = torch.rand(64, 28, 28, generator=gen)  # labels unrelated to the pixels

    def seeds(index):
        return noise[index], torch.full((len(index),), 0.5)

    settings = VLMSettings(path="unused", decoder={"enabled": True, "epochs": 1, "lr": 1e-5})
    teacher = VLMTeacher(settings, None, clip=object())
    teacher.seeds = lambda batch, labels: seeds(torch.arange(len(batch)))  # every batch: the same noise
    with pytest.warns(TeacherWarning, match=r"did not converge: its final loss 0\.\d+ is not below 0.8 x"):
        record = teacher.fit_decoder(images)
    assert not record["converged"] and record["images"] == 64 and 0 <= record["flat"] <= 64


def test_empty_pseudo_masks_warn_with_the_count_and_fail_when_all_are_empty():
    masks = np.zeros((10, 4, 4), dtype=np.uint8)
    masks[:3, 0, 0] = 1
    with pytest.warns(TeacherWarning, match="7 of 10 pseudo-masks of the train split"):
        assert check_empty(masks, "train") == 7
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        masks[:6, 1, 1] = 1
        assert check_empty(masks, "val") == 4  # less than half: no warning
    with pytest.raises(MaskError, match="every one of the 10 pseudo-masks"):
        check_empty(np.zeros((10, 4, 4), dtype=np.uint8), "test")


def test_a_patch_grid_that_does_not_divide_the_image_is_refused(tmp_path):
    from lookright.vlm.backends import hf_bundle

    tok = build_tokenizer(["a handwritten digit"], tmp_path / "vocab")
    with pytest.raises(ConfigError, match="not a multiple of patch_size 4"):
        build_small_clip(tok, image_size=30, patch_size=4, width=16, layers=1, heads=2, embed_dim=8)
    model = build_small_clip(tok, image_size=28, patch_size=4, width=16, layers=1, heads=2, embed_dim=8)
    model.config.vision_config.image_size = 30  # a checkpoint whose grid leaves a border
    with pytest.raises(ConfigError, match="30 is not a multiple of its patch size 4"):
        hf_bundle(model, tok, (0.5,) * 3, (0.5,) * 3, "odd")


def test_the_decoder_needs_the_cache_mode():
    with pytest.raises(ValueError, match="mode: cache"):
        VLMSettings(path="x", mode="on-the-fly", decoder={"enabled": True})
    assert "decoder" not in VLMSettings(path="x").key_fields()  # a stage that is off keeps older cache keys
    assert "crf" in VLMSettings(path="x", crf={"enabled": True}).key_fields()


def test_pretraining_objectives(tmp_path):
    from lookright.vlm.small_clip import pretrain_clip

    kw = dict(corpus="shapes", epochs=1, batch_size=64, n_shapes=256, progress=False, width=32, layers=1, heads=2,
              embed_dim=16)
    record = pretrain_clip(tmp_path / "patch", objective="patch", shift=2, **kw)
    assert record["objective"] == "patch" and record["shift"] == 2
    assert set(record["history"][0]) == {"epoch", "loss", "cls", "patch"}
    assert record["history"][0]["loss"] == pytest.approx(record["history"][0]["cls"] + record["history"][0]["patch"])
    with pytest.raises(ConfigError, match="unknown pretraining objective 'mean'"):
        pretrain_clip(tmp_path / "bad", objective="mean", **kw)


# -- the teacher on a benchmark, never reading its masks ----------------------------------
class Forbidden:
    """Stands in for a split's ground-truth masks: any use fails the test."""

    def _fail(self, *_args, **_kwargs):
        raise AssertionError("the teacher read a ground-truth mask")

    __getattr__ = __getitem__ = __array__ = __len__ = __iter__ = _fail


def forbid_masks(monkeypatch) -> None:
    """``lookright.train.teach`` gets splits whose ground-truth and shortcut masks are :class:`Forbidden`."""
    import lookright.train.teach as teach_module

    real = teach_module.load_splits

    def masked_off(cfg):
        *splits, source = real(cfg)
        for split in splits:
            split.mask, split.shortcut = Forbidden(), Forbidden()
        return (*splits, source)

    monkeypatch.setattr(teach_module, "load_splits", masked_off)


@pytest.mark.integration
def test_the_teacher_never_reads_ground_truth_masks(clip_folder, tmp_path, monkeypatch):
    import lookright.train.teach as teach_module
    from lookright.train import load_config

    forbid_masks(monkeypatch)
    overrides = ["data.embedded=true", "data.max_train=300", "data.max_test=100", f"target.vlm.path={clip_folder}",
                 f"target.vlm.cache_dir={tmp_path / 'cache'}", "target.vlm.method=maskclip", "target.vlm.refine_steps=1",
                 "target.vlm.decoder.enabled=true", "target.vlm.decoder.epochs=1", "target.vlm.crf.enabled=true"]
    cfg = load_config(str(CONFIGS / "colormnist-kl-vlm.yaml"), overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TeacherWarning)  # a random CLIP's seeds teach a decoder little
        first = teach_module.teach(cfg, progress=False)
        again = teach_module.teach(cfg, progress=False)
    assert [r["status"] for r in first.values()] == ["miss"] * 3
    assert [r["status"] for r in again.values()] == ["hit"] * 3
    assert len(list((tmp_path / "cache" / "decoders").glob("*/*.pt"))) == 1  # one decoder for the three splits


def test_val_masks_without_a_fitted_decoder_name_the_fix(clip_folder, tmp_path):
    settings = VLMSettings(path=str(clip_folder), method="maskclip", foreground="a handwritten digit",
                           cache_dir=str(tmp_path), decoder={"enabled": True, "epochs": 1})
    images, _ = _squares(20)
    with pytest.raises(MaskError, match="compute the train split's masks first"):
        split_masks(VLMTeacher(settings, None), images.numpy(), {"benchmark": "x", "seed": 0, "split": "val"})


@pytest.mark.integration
@pytest.mark.filterwarnings("ignore::lookright.vlm.teacher.TeacherWarning")  # a random CLIP's seeds are poor
def test_evaluate_reports_each_stage(clip_folder, tmp_path):
    import json

    from lookright.cli import app

    out = tmp_path / "q"
    args = ["teach", str(CONFIGS / "decoymnist-cdep-kl-vlm.yaml"), "data.embedded=true", "data.max_train=300",
            "data.max_test=60", f"target.vlm.path={clip_folder}", "target.vlm.decoder.enabled=true",
            "target.vlm.decoder.epochs=1", "target.vlm.crf.enabled=true", "--evaluate", "--methods", "maskclip",
            "--max-images", "60", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    r = json.loads((out / "mask_quality.json").read_text())["methods"]["maskclip"]
    assert r["decoder"]["images"] <= 300 and r["decoder_fit_seconds"] > 0
    assert 0 <= r["iou"] <= 1 and 0 <= r["shortcut_energy"] <= 1 and r["images_per_second"] > 0

