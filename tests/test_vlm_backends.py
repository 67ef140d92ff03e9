"""CLIP backends from local files, the corpus tokenizer, the shapes generator and dense maps."""

from __future__ import annotations


import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lookright.data.shapes import ShapesConfig, generate_shapes
from lookright.errors import ConfigError, DataError
from lookright.vlm.backends import load_clip
from lookright.vlm.dense import DENSE_MAPS, PromptSet, dense_map
from lookright.vlm.small_clip import build_small_clip, save_clip
from lookright.vlm.tokenizer import build_tokenizer
from conftest import CONFIGS, tiny_open_clip

torch.set_num_threads(1)
CAPTIONS = ["a red circle in the top left", "a handwritten digit seven", "a blue square", "background", "black"]


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    torch.manual_seed(0)
    tokenizer = build_tokenizer(CAPTIONS, folder / "vocab")
    model = build_small_clip(tokenizer, image_size=16, patch_size=4, width=32, layers=2, heads=2, embed_dim=16)
    save_clip(model, tokenizer, folder, 16)
    return folder, model, tokenizer


def test_tokenizer_splits_corpus_words_and_pools_at_endoftext(tmp_path):
    tok = build_tokenizer(CAPTIONS, tmp_path)
    ids = tok(["a red circle"])["input_ids"][0]
    assert tok.convert_ids_to_tokens(ids) == ["<|startoftext|>", "a</w>", "red</w>", "circle</w>", "<|endoftext|>"]
    assert ids[-1] == max(tok.get_vocab().values())  # highest id, as in CLIP
    unknown = tok(["zebra"])["input_ids"][0]
    assert len(unknown) > 3  # still tokenises, letter by letter


def test_hf_round_trip_matches_the_model(tiny_hf):
    folder, model, _ = tiny_hf
    clip = load_clip("hf", path=folder)
    images = torch.rand(3, 3, 28, 28)
    pixels = clip.preprocess(images)
    assert pixels.shape == (3, 3, 16, 16)
    expected = model.get_image_features(pixel_values=pixels)
    expected = F.normalize(getattr(expected, "pooler_output", expected), dim=-1)
    torch.testing.assert_close(clip.encode_image(images), expected, rtol=1e-4, atol=1e-5)
    text = clip.tokenize(["a red circle", "a blue square"])
    t = model.get_text_features(**text)
    torch.testing.assert_close(clip.encode_text(["a red circle", "a blue square"]),
                               F.normalize(getattr(t, "pooler_output", t), dim=-1), rtol=1e-4, atol=1e-5)
    assert clip.mean == (0.5, 0.5, 0.5) and clip.grid == 4


def test_open_clip_round_trip(tmp_path):
    import open_clip

    checkpoint = tiny_open_clip(tmp_path, "lookright-tiny")
    model = open_clip.create_model("lookright-tiny", pretrained=str(checkpoint)).eval()
    clip = load_clip("open_clip", model_name="lookright-tiny", checkpoint=checkpoint)
    images = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        expected = F.normalize(model.encode_image(clip.preprocess(images)), dim=-1)
        torch.testing.assert_close(clip.encode_image(images), expected, rtol=1e-4, atol=1e-5)
        for method in DENSE_MAPS.names():
            maps = dense_map(method, clip, images, PromptSet(foreground="a circle", background=["black"]))
            assert maps.shape == (2, 4, 4) and torch.isfinite(maps).all()


def test_missing_weights_and_bad_inputs(tmp_path, tiny_hf):
    with pytest.raises(DataError, match="config.json missing.*vlm.path"):
        load_clip("hf", path=tmp_path / "nothing")
    with pytest.raises(DataError, match="vlm.checkpoint"):
        load_clip("open_clip", model_name="ViT-B-16", checkpoint=tmp_path / "none.pt")
    with pytest.raises(ConfigError, match="unknown CLIP backend"):
        load_clip("jax", path=tmp_path)
    clip = load_clip("hf", path=tiny_hf[0])
    with pytest.raises(ConfigError, match="prompt list is empty"):
        clip.encode_text([])
    with pytest.raises(DataError, match="C = 1 or 3"):
        clip.encode_image(torch.rand(2, 4, 16, 16))
    with pytest.raises(DataError, match="floats in"):
        clip.encode_image(torch.zeros(2, 3, 16, 16, dtype=torch.uint8))
    with pytest.raises(ConfigError, match="foreground prompt is empty"):
        PromptSet(foreground=" ")
    with pytest.raises(ConfigError, match="pass each image's label"):
        dense_map("maskclip", clip, torch.rand(2, 1, 28, 28), PromptSet())


def test_mismatched_tokenizer_is_rejected(tmp_path, tiny_hf):
    folder, model, _ = tiny_hf
    big = build_tokenizer(CAPTIONS + ["zebra giraffe elephant hippopotamus rhinoceros"] * 1, tmp_path / "v")
    model.save_pretrained(tmp_path / "m")
    big.save_pretrained(tmp_path / "m")
    with pytest.raises(ConfigError, match="do not match"):
        load_clip("hf", path=tmp_path / "m")


@pytest.mark.parametrize("method", ["gradcam", "maskclip", "surgery"])
def test_dense_maps_shapes_and_grey_images(tiny_hf, method):
    clip = load_clip("hf", path=tiny_hf[0])
    maps = dense_map(method, clip, torch.rand(5, 1, 28, 28), PromptSet(), labels=torch.arange(5))
    assert maps.shape == (5, 4, 4) and torch.isfinite(maps).all() and (maps >= 0).all()


def test_shapes_generator_is_seeded_and_masks_match_pixels():
    cfg = ShapesConfig(image_size=48)
    a, b = generate_shapes(20, 3, cfg), generate_shapes(20, 3, cfg)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.captions == b.captions
    assert not np.array_equal(a.images, generate_shapes(20, 4, cfg).images)
    for img, mask, attrs, cap in zip(a.images, a.masks, a.attributes, a.captions):
        on = img.any(axis=0)
        np.testing.assert_array_equal(on, mask.astype(bool))
        assert (img[:, mask.astype(bool)] == np.array(cfg.colors[attrs["color"]])[:, None]).all()
        assert attrs["shape"] in cap
        row, col = cfg.positions[attrs["position"]]
        ys, xs = np.nonzero(mask)
        assert (ys.mean() >= 24) == bool(row) and (xs.mean() >= 24) == bool(col)
    with pytest.raises(ConfigError, match="unknown shapes"):
        ShapesConfig(shapes=("hexagon",))
    with pytest.raises(ConfigError, match="vocabulary is empty"):
        ShapesConfig(colors={})


def test_a_missing_clip_names_the_key_of_the_command_before_any_work(tmp_path):
    from typer.testing import CliRunner

    from lookright.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["vlm", "tune"])
    assert result.exit_code == 2 and "Missing argument 'config'" in result.output
    result = runner.invoke(app, ["vlm", "eval", str(CONFIGS / "vlm" / "shapes-baseline.yaml"),
                                 f"model.path={tmp_path / 'none'}", f"out_dir={tmp_path}"])
    assert result.exit_code == 2 and "set model.path=DIR" in result.output and "lookright vlm pretrain" in result.output
    assert "hub" not in result.output and not list(tmp_path.iterdir())  # nothing was started
    with pytest.raises(DataError, match="set model.path=DIR"):
        load_clip("hf", path=tmp_path / "none", key="model")


def test_clip_gradcam_is_the_probability_gradcam_up_to_a_factor_and_survives_saturation(tiny_hf):
    from lookright.vlm.dense import _candidate_logits, _text_candidates, gradcam_map

    clip = load_clip("hf", path=tiny_hf[0])
    images = torch.rand(4, 3, 16, 16)
    prompts = PromptSet(foreground="a circle", background=["black", "background"])

    def probability_gradcam() -> torch.Tensor:  # the textbook form: the gradient of the softmax probability
        fg, bg = _text_candidates(clip, prompts, None, len(images))
        with torch.no_grad():
            tokens = clip.tokens(clip.preprocess(images))
        tokens.requires_grad_(True)
        z = clip.head(clip.finish(tokens)[:, 0])
        probs = (clip.logit_scale.detach() * _candidate_logits(z, fg, bg)).softmax(dim=-1)
        (grad,) = torch.autograd.grad(probs[:, 0].sum(), tokens)
        return F.relu((grad[:, 1:].mean(dim=1, keepdim=True) * tokens[:, 1:].detach()).sum(dim=-1)).flatten(1)

    ours = gradcam_map(clip, images, prompts).flatten(1)
    textbook = probability_gradcam()
    assert textbook.abs().sum() > 0
    ratio = ours.sum(dim=1) / textbook.sum(dim=1)  # one positive factor per image: 1 / (s (1 - s))
    assert (ratio > 1).all()
    torch.testing.assert_close(ours, textbook * ratio[:, None], rtol=1e-3, atol=1e-7)
    with torch.no_grad():  # a confident CLIP (this bundle's own copy): s rounds to 1 in float32 ...
        clip.model.logit_scale.fill_(float(np.log(1e7)))
    assert probability_gradcam().abs().max() == 0  # ... and the textbook gradient vanishes
    saturated = gradcam_map(clip, images, prompts)
    assert torch.isfinite(saturated).all() and (saturated.flatten(1).amax(dim=1) > 0).all()
