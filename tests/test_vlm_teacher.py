"""Pseudo-mask post-processing, the mask cache and the VLM teacher."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from lookright.errors import ConfigError, DataError
from lookright.vlm.cache import BITS, META, MaskCache
from lookright.vlm.postprocess import affinity_refine, otsu_thresholds, postprocess


def brute_force_otsu(values: np.ndarray, bins: int = 256) -> float:
    levels = np.round(np.clip(values, 0, 1) * (bins - 1)).astype(int)
    best, best_k = -1.0, 0
    for k in range(bins - 1):
        c0, c1 = levels[levels <= k], levels[levels > k]
        if len(c0) == 0 or len(c1) == 0:
            continue
        w0, w1 = len(c0) / len(levels), len(c1) / len(levels)
        var = w0 * w1 * (c0.mean() - c1.mean()) ** 2
        if var > best + 1e-12:
            best, best_k = var, k
    return (best_k + 0.5) / (bins - 1)


def test_otsu_matches_a_brute_force_search():
    gen = np.random.default_rng(0)
    maps = []
    for i in range(6):
        lo = gen.normal(0.25, 0.08, 300)
        hi = gen.normal(0.7 + 0.03 * i, 0.06, 100 + 40 * i)
        maps.append(np.clip(np.concatenate([lo, hi])[:400], 0, 1).reshape(20, 20))
    maps = np.stack(maps).astype(np.float32)
    got = otsu_thresholds(torch.from_numpy(maps)).numpy()
    want = np.array([brute_force_otsu(m.ravel()) for m in maps])
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert ((got > 0.35) & (got < 0.65)).all()


def test_postprocess_thresholds_and_errors():
    maps = torch.zeros(3, 4, 4)
    maps[0, 1:3, 1:3] = 1.0
    maps[1] = 0.5  # constant: empty mask
    maps[2, 0, 0] = 2.0
    out = postprocess(maps, (8, 8), threshold=0.5)
    assert out.shape == (3, 8, 8) and out[1].sum() == 0
    assert out[0, 3:5, 3:5].all() and out[0, 0].sum() == 0
    otsu = postprocess(maps, (8, 8), threshold="otsu")
    assert otsu[0, 3:5, 3:5].all() and otsu[1].sum() == 0
    soft = postprocess(maps, (8, 8), threshold=None)
    assert 0 <= soft.min() and soft.max() <= 1
    with pytest.raises(ConfigError, match="NaN"):
        postprocess(torch.full((1, 4, 4), float("nan")), (8, 8))
    with pytest.raises(ConfigError, match="threshold must be"):
        postprocess(maps, (8, 8), threshold=1.5)


def test_affinity_refinement_spreads_to_similar_tokens():
    tokens = torch.zeros(1, 4, 2)
    tokens[0, :2, 0] = 1.0  # patches 0, 1 alike
    tokens[0, 2:, 1] = 1.0  # patches 2, 3 alike
    maps = torch.tensor([[[1.0, 0.0], [0.0, 0.0]]])
    out = affinity_refine(maps, tokens, steps=1, tau=0.1)
    assert out[0, 0, 1] > 0.9 and out[0, 1].max() < 0.1


def _masks(n=5, seed=0):
    return (np.random.default_rng(seed).random((n, 28, 28)) > 0.7).astype(np.uint8)


def test_cache_hit_miss_corruption_and_staleness(tmp_path):
    cache = MaskCache(tmp_path)
    fields = {"teacher": {"method": "maskclip"}, "dataset": {"split": "train", "images": "abc"}}
    masks = _masks()
    calls = []

    def build():
        calls.append(1)
        return masks

    out = cache.get_or_build(fields, masks.shape, build)
    assert cache.last_status == "miss" and len(calls) == 1
    np.testing.assert_array_equal(out, masks)
    folder = cache.folder(fields)
    assert (folder / BITS).stat().st_size == 5 * 28 * 4  # 8 masks bits per byte
    out = cache.get_or_build(fields, masks.shape, build)
    assert cache.last_status == "hit" and len(calls) == 1
    np.testing.assert_array_equal(out, masks)

    other = {**fields, "teacher": {"method": "gradcam"}}  # another configuration: its own entry
    cache.get_or_build(other, masks.shape, build)
    assert cache.last_status == "miss" and len(calls) == 2

    raw = bytearray((folder / BITS).read_bytes())
    raw[7] ^= 0xFF
    (folder / BITS).write_bytes(bytes(raw))
    out = cache.get_or_build(fields, masks.shape, build)
    assert cache.last_status == "corrupt" and len(calls) == 3
    np.testing.assert_array_equal(out, masks)
    assert cache.get_or_build(fields, masks.shape, build) is not None and cache.last_status == "hit"

    (folder / BITS).write_bytes((folder / BITS).read_bytes()[:-3])  # truncated
    cache.get_or_build(fields, masks.shape, build)
    assert cache.last_status == "corrupt"

    meta = json.loads((folder / META).read_text())
    meta["fields"]["teacher"]["method"] = "surgery"  # written by another configuration
    (folder / META).write_text(json.dumps(meta))
    cache.get_or_build(fields, masks.shape, build)
    assert cache.last_status == "stale" and len(calls) == 5

    (folder / META).write_text("{not json")
    cache.get_or_build(fields, masks.shape, build)
    assert cache.last_status == "corrupt"

    with pytest.raises(DataError, match="expected"):
        MaskCache(tmp_path / "x").get_or_build(fields, (2, 28, 28), build)


# -- a CLIP trained in the test ----------------------------------------------------------
@pytest.fixture(scope="module")
def shapes_clip(tmp_path_factory):
    from lookright.vlm.backends import load_clip
    from lookright.vlm.small_clip import pretrain_clip

    folder = tmp_path_factory.mktemp("shapes-clip")
    # the class-token objective: these tests are about the dense-map methods and the teacher, on a CLIP
    # small enough to train in seconds
    record = pretrain_clip(folder, corpus="shapes", epochs=8, batch_size=128, lr=2e-3, n_shapes=3000, progress=False,
                           width=48, layers=2, heads=2, embed_dim=48, objective="cls")
    return load_clip("hf", path=folder), record


def test_pretraining_learns_colour_words(shapes_clip):
    _, record = shapes_clip
    assert record["history"][-1]["loss"] < record["history"][0]["loss"]
    assert record["zero_shot"]["shapes_color"] > 0.9  # chance 0.25
    assert "mnist_digit" not in record["zero_shot"]  # the corpus has no digits


@pytest.mark.parametrize("method", ["gradcam", "maskclip", "surgery"])
def test_dense_maps_are_higher_on_the_drawn_object(shapes_clip, method):
    import torch.nn.functional as F

    from lookright.data.shapes import ShapesConfig, generate_shapes
    from lookright.vlm.dense import PromptSet, dense_map

    clip, _ = shapes_clip
    data = generate_shapes(64, seed=99, config=ShapesConfig(image_size=28))
    prompts = PromptSet(foreground="a {name} shape", background=["background", "black"],
                        class_names=data.config.vocabulary("color"))
    maps = dense_map(method, clip, torch.from_numpy(data.images).float() / 255, prompts, labels=data.labels("color"))
    assert maps.shape == (64, 7, 7)
    up = F.interpolate(maps[:, None], size=(28, 28), mode="bilinear", align_corners=False)[:, 0]
    mask = torch.from_numpy(data.masks).float()
    inside = ((up * mask).flatten(1).sum(1) / mask.flatten(1).sum(1)).mean()
    outside = ((up * (1 - mask)).flatten(1).sum(1) / (1 - mask).flatten(1).sum(1)).mean()
    assert inside > 1.5 * outside


def test_vlm_teacher_masks_and_cache_through_split_masks(shapes_clip, tmp_path):
    from lookright.vlm.teacher import VLMSettings, VLMTeacher, split_masks
    from lookright.data.shapes import ShapesConfig, generate_shapes

    clip, _ = shapes_clip
    data = generate_shapes(40, seed=5, config=ShapesConfig(image_size=28))
    settings = VLMSettings(method="maskclip", foreground="a {name} shape", background=["background", "black"],
                           class_names=data.config.vocabulary("color"), cache_dir=str(tmp_path), batch_size=16)
    teacher = VLMTeacher(settings, data.labels("color"), clip=clip)
    masks, status = split_masks(teacher, data.images, {"benchmark": "shapes", "seed": 5, "split": "test"})
    assert status == "miss" and masks.shape == (40, 28, 28) and set(np.unique(masks)) <= {0, 1}
    iou = (masks & data.masks).sum() / (masks | data.masks).sum()
    assert iou > 3 * data.masks.mean()  # an all-ones mask scores data.masks.mean()
    again, status = split_masks(teacher, data.images, {"benchmark": "shapes", "seed": 5, "split": "test"})
    assert status == "hit"
    np.testing.assert_array_equal(again, masks)
    other = VLMTeacher(settings.model_copy(update={"threshold": 0.8}), data.labels("color"), clip=clip)
    _, status = split_masks(other, data.images, {"benchmark": "shapes", "seed": 5, "split": "test"})
    assert status == "miss"  # another post-processing: its own entry
    with pytest.raises(Exception, match="images must be"):
        split_masks(teacher, data.images[0], {"split": "x"})


def test_a_colour_blind_teacher_draws_the_same_masks_whatever_the_colours(shapes_clip):
    from lookright.data.shapes import ShapesConfig, generate_shapes
    from lookright.vlm.teacher import VLMSettings, VLMTeacher, colour_view

    clip, _ = shapes_clip
    data = generate_shapes(24, seed=7, config=ShapesConfig(image_size=28))
    images = torch.from_numpy(data.images)
    assert images.shape[1] == 3
    permuted = images[:, [2, 0, 1]]  # every colour changes, the per-pixel maximum does not
    view = colour_view(images, "value")
    assert view.dtype == images.dtype and torch.equal(view[:, 0], images.amax(dim=1)) and torch.equal(view[:, 1], view[:, 2])
    assert torch.equal(colour_view(view, "value"), view)  # idempotent: stages may apply it again
    settings = VLMSettings(method="maskclip", foreground="a shape", background=["background", "black"],
                           cache_dir=None, batch_size=8)
    idx = torch.arange(len(images))
    blind = VLMTeacher(settings.model_copy(update={"colour": "value"}), clip=clip)
    torch.testing.assert_close(blind.soft_and_masks(images, idx)[0], blind.soft_and_masks(permuted, idx)[0])
    seeing = VLMTeacher(settings, clip=clip)
    assert not torch.allclose(seeing.soft_and_masks(images, idx)[0], seeing.soft_and_masks(permuted, idx)[0])
    assert "colour" not in settings.key_fields() and blind.settings.key_fields()["colour"] == "value"


def _store_entry(root: str, barrier, rounds: int) -> None:
    """One writer of the concurrency test (module level: spawned processes import it)."""
    cache = MaskCache(root)
    fields = {"teacher": {"method": "maskclip"}, "dataset": {"split": "train", "images": "shared"}}
    masks = _masks(200)
    barrier.wait()
    for _ in range(rounds):
        cache.store(cache.folder(fields), fields, masks)


def test_two_processes_writing_one_cache_entry_leave_it_valid(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    writers = [ctx.Process(target=_store_entry, args=(str(tmp_path), barrier, 40)) for _ in range(2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
    assert [w.exitcode for w in writers] == [0, 0]  # the old fixed temp names crashed one of them
    cache = MaskCache(tmp_path)
    fields = {"teacher": {"method": "maskclip"}, "dataset": {"split": "train", "images": "shared"}}
    out = cache.get_or_build(fields, (200, 28, 28), lambda: pytest.fail("a valid entry is not rebuilt"))
    assert cache.last_status == "hit"
    np.testing.assert_array_equal(out, _masks(200))
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob("*tmp*"))


def test_a_failed_cache_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    cache = MaskCache(tmp_path)
    fields = {"teacher": {"method": "maskclip"}}

    def full(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", full)  # the temporary file is written, moving it fails
    with pytest.raises(OSError, match="disk full"):
        cache.get_or_build(fields, (5, 28, 28), _masks)
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"]
