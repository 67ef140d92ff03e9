"""The paper's teacher (configs/colormnist-kl-vlm-vitb16.yaml) on a CLIP of ViT-B/16's architecture family.

No model hub is reachable, so the CLIP is random and tiny in width and depth, but it has ViT-B/16's
geometry (224 x 224 input, 16 x 16 patches: a 14 x 14 token grid), is written in the layout that
``CLIPModel.save_pretrained`` plus ``CLIPProcessor.save_pretrained`` give a downloaded
openai/clip-vit-base-patch16 (OpenAI's image mean and std in preprocessor_config.json), and is read
through the same loading code. ``lookright teach`` then runs every stage the config switches on.
"""

from __future__ import annotations

import contextlib
import json
import warnings

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import lookright.train.teach as teach_module
import lookright.vlm.teacher as teacher_module
from conftest import CONFIGS, tiny_open_clip
from lookright.cli import app
from lookright.errors import ConfigError
from lookright.train import load_config
from lookright.vlm.backends import OPENAI_MEAN, load_clip
from lookright.vlm.cache import MaskCache
from lookright.vlm.dense import PromptSet
from lookright.vlm.small_clip import build_small_clip
from lookright.vlm.teacher import DIGITS, TeacherWarning, VLMSettings
from lookright.vlm.tokenizer import build_tokenizer
from test_vlm_stages import forbid_masks

pytestmark = pytest.mark.integration
torch.set_num_threads(1)
CONFIG = str(CONFIGS / "colormnist-kl-vlm-vitb16.yaml")
GRID = 224 // 16


@pytest.fixture(scope="module")
def vitb16_folder(tmp_path_factory):
    from transformers import CLIPImageProcessor, CLIPProcessor

    folder = tmp_path_factory.mktemp("clip-vit-base-patch16")
    torch.manual_seed(0)
    tok = build_tokenizer(["a clean origami digit."] + [f"a clean origami {d}." for d in DIGITS] + ["background black dark"],
                          tmp_path_factory.mktemp("vocab"))
    build_small_clip(tok, image_size=224, patch_size=16, width=32, layers=2, heads=2, embed_dim=16).save_pretrained(folder)
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tok).save_pretrained(folder)
    return folder


@contextlib.contextmanager
def quiet():
    """A random CLIP's seeds teach a decoder little: its TeacherWarnings are expected here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TeacherWarning)
        yield


def _tiny(cache) -> list[str]:
    return ["data.embedded=true", "data.max_train=200", "data.max_test=60", "target.vlm.decoder.epochs=1",
            f"target.vlm.cache_dir={cache}"]


class Stages:
    """Records the stages that ran: each dense map's method and grid, affinity, decoder fit, CRF."""

    def __init__(self, monkeypatch) -> None:
        self.maps: list[tuple[str, tuple[int, ...]]] = []
        self.ran: set[str] = set()
        for name, stage in (("affinity_refine", "affinity"), ("fit_decoder", "decoder"), ("crf_refine", "crf")):
            monkeypatch.setattr(teacher_module, name, self._count(getattr(teacher_module, name), stage))
        real_map = teacher_module.dense_map

        def dense_map(method, *args, **kwargs):
            out = real_map(method, *args, **kwargs)
            self.maps.append((method, tuple(out.shape[1:])))
            return out

        monkeypatch.setattr(teacher_module, "dense_map", dense_map)

    def _count(self, fn, stage):
        def wrapped(*args, **kwargs):
            self.ran.add(stage)
            return fn(*args, **kwargs)
        return wrapped


def test_the_config_is_the_papers_teacher():
    v = load_config(CONFIG).target.vlm
    assert (v.backend, v.path, v.method, v.threshold) == ("hf", "models/clip-vit-base-patch16", "gradcam", "otsu")
    assert v.refine_steps > 0 and v.decoder.enabled and v.crf.enabled and v.mode == "cache"
    prompts = v.prompts()
    assert prompts.foreground_prompts() == ["a clean origami digit."]
    assert prompts.background_prompts() == ["background", "black", "dark"]


def test_prompt_templates_are_checked():
    assert VLMSettings(foreground="a {{clean}} origami {name}.").prompts().foreground_prompts()[0] \
        == "a {clean} origami zero."
    assert VLMSettings(foreground="an origami").prompts().foreground_prompts() == ["an origami"]
    with pytest.raises(ValueError, match=r"placeholder\(s\) \{class\}; the only one filled in is \{name\}"):
        VLMSettings(foreground="a clean origami {class}.")
    with pytest.raises(ValueError, match="not a valid template"):
        VLMSettings(foreground="a clean origami {name.")
    with pytest.raises(ValueError, match=r"background_template 'a photo of \{word\}'"):
        VLMSettings(background_template="a photo of {word}")
    with pytest.raises(ConfigError, match=r"placeholder\(s\) \{\}"):
        PromptSet(foreground="a clean origami {}.")
    result = CliRunner().invoke(app, ["teach", CONFIG, "target.vlm.foreground=a {kind} of {name}"])
    assert result.exit_code == 2 and "target.vlm.foreground" in result.output and "{kind}" in result.output


def test_the_papers_teacher_runs_every_stage_on_a_vit_b16_folder(vitb16_folder, tmp_path, monkeypatch):
    clip = load_clip("hf", path=vitb16_folder)
    assert (clip.image_size, clip.patch_size, clip.grid, clip.mean) == (224, 16, GRID, OPENAI_MEAN)
    cache = tmp_path / "cache"
    overrides = [*_tiny(cache), f"target.vlm.path={vitb16_folder}"]
    sizes = {name: len(split) for name, split in
             zip(("train", "val", "test"), teach_module.load_splits(load_config(CONFIG, overrides))[:3])}
    forbid_masks(monkeypatch)
    stages = Stages(monkeypatch)
    with quiet():
        result = CliRunner().invoke(app, ["teach", CONFIG, *overrides])
    assert result.exit_code == 0, result.output
    assert result.output.count("cache miss") == 3
    assert stages.ran == {"affinity", "decoder", "crf"}
    assert {m for m, _ in stages.maps} == {"gradcam"} and {g for _, g in stages.maps} == {(GRID, GRID)}
    entries = [(p.parent, json.loads(p.read_text())) for p in cache.glob("*/meta.json")]
    assert sorted(meta["fields"]["dataset"]["split"] for _, meta in entries) == ["test", "train", "val"]
    for folder, meta in entries:
        teacher = meta["fields"]["teacher"]
        assert teacher["foreground"] == "a clean origami digit." and teacher["class_names"] == DIGITS
        assert teacher["method"] == "gradcam" and teacher["refine_steps"] == 2 and {"decoder", "crf"} <= set(teacher)
        shape = (sizes[meta["fields"]["dataset"]["split"]], 28, 28)  # one mask per image, at the data's size
        assert tuple(meta["shape"]) == shape
        masks = MaskCache(cache).load(folder, shape)
        assert set(np.unique(masks)) <= {0, 1} and masks.any()
    assert len(list((cache / "decoders").glob("*/*.pt"))) == 1  # fitted once, on the train split


def test_the_papers_teacher_evaluates_the_requested_images(vitb16_folder, tmp_path):
    out = tmp_path / "quality"
    with quiet():
        result = CliRunner().invoke(app, ["teach", CONFIG, *_tiny(tmp_path / "cache"), f"target.vlm.path={vitb16_folder}",
                                          "--evaluate", "--methods", "gradcam", "--max-images", "20", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "mask_quality.json").read_text())
    assert report["images"] == 20 and set(report["methods"]) == {"gradcam"}
    assert report["teacher"]["foreground"] == "a clean origami digit."
    r = report["methods"]["gradcam"]
    assert 0 <= r["iou"] <= 1 and r["decoder"]["images"] > 0 and (out / "pseudo_masks.png").stat().st_size > 0


def test_the_papers_teacher_on_an_open_clip_vit_b16_checkpoint(tmp_path, monkeypatch):
    folder = tmp_path / "open_clip"
    folder.mkdir()
    checkpoint = tiny_open_clip(folder, "lookright-tiny-b16", image_size=224, patch_size=16)
    forbid_masks(monkeypatch)
    stages = Stages(monkeypatch)
    with quiet():
        result = CliRunner().invoke(app, ["teach", CONFIG, *_tiny(tmp_path / "cache"), "target.vlm.backend=open_clip",
                                          "target.vlm.model_name=lookright-tiny-b16", f"target.vlm.checkpoint={checkpoint}"])
    assert result.exit_code == 0, result.output
    assert result.output.count("cache miss") == 3 and stages.ran == {"affinity", "decoder", "crf"}
    assert {g for _, g in stages.maps} == {(GRID, GRID)}
    metas = [json.loads(p.read_text()) for p in (tmp_path / "cache").glob("*/meta.json")]
    assert len(metas) == 3 and all(m["fields"]["teacher"]["model"]["backend"] == "open_clip" for m in metas)
    assert all(tuple(m["shape"][1:]) == (28, 28) for m in metas)


def test_weight_files_are_hashed_once_per_process_while_unchanged(tmp_path):
    from lookright.vlm.cache import digest_file
    from lookright.vlm.teacher import weights_digest

    f = tmp_path / "model.safetensors"
    f.write_bytes(b"a" * 1000)
    first = weights_digest(f)
    assert first == digest_file(f) == weights_digest(f)
    f.write_bytes(b"b" * 999)  # new content: another size (and modification time)
    assert weights_digest(f) == digest_file(f) != first
