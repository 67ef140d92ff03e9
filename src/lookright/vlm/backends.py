"""CLIP backends behind one interface, loaded from local files only.

* ``hf``: a Hugging Face ``transformers`` CLIP folder (``config.json`` + weights + tokenizer
  files, as written by ``save_pretrained``; an image-processor config is used when present):
  ``load_clip("hf", path=FOLDER)``.
* ``open_clip``: an ``open_clip`` architecture name plus a local checkpoint file:
  ``load_clip("open_clip", model_name="ViT-B-16", checkpoint=FILE)``.

Both give a :class:`ClipBundle`: ``encode_image`` / ``encode_text`` (L2-normalised embeddings),
``logit_scale``, and the pieces of the vision transformer that dense maps need
(:meth:`ClipBundle.tokens`: the tokens entering the last block; :meth:`ClipBundle.value_path`:
the last block's value embeddings through its output projection; :meth:`ClipBundle.head`:
final layer norm + projection). Images go in as floats in ``[0, 1]``, ``(B, C, H, W)`` with C
1 or 3, any size: they are resized bilinearly to the model's input size and normalised with the
model's mean and std.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lookright.errors import ConfigError, DataError
from lookright.vlm.weights import clip_problem

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class ClipBundle:
    model: nn.Module
    tokenize: Callable[[list[str]], dict]
    image_size: int
    patch_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    backend: str
    name: str
    _tokens: Callable[[torch.Tensor], torch.Tensor]
    _value_path: Callable[[torch.Tensor], torch.Tensor]
    _head: Callable[[torch.Tensor], torch.Tensor]
    _finish: Callable[[torch.Tensor], torch.Tensor]
    _text: Callable[[dict], torch.Tensor]

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ConfigError(f"CLIP {self.name}: its input size {self.image_size} is not a multiple of its patch size "
                              f"{self.patch_size}, so the {self.image_size // self.patch_size}-patch grid does not "
                              "cover the image and dense maps would be misplaced; use a model whose patch grid "
                              "divides its input")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise DataError(f"images must be (B, C, H, W) with C = 1 or 3, got {tuple(images.shape)}")
        if not torch.is_floating_point(images):
            raise DataError("images must be floats in [0, 1]; divide uint8 images by 255")
        x = images.to(self.device)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        mean = torch.tensor(self.mean, device=x.device)[:, None, None]
        std = torch.tensor(self.std, device=x.device)[:, None, None]
        return (x - mean) / std

    def tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """Tokens entering the last transformer block, ``(B, 1 + P, C)`` (class token first)."""
        return self._tokens(pixels)

    def finish(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens entering the last block -> tokens leaving it (the block's own forward)."""
        return self._finish(tokens)

    def value_path(self, tokens: torch.Tensor) -> torch.Tensor:
        """MaskCLIP's dense path: ``out_proj(v_proj(ln_1(tokens)))`` of the last block."""
        return self._value_path(tokens)

    def head(self, tokens: torch.Tensor) -> torch.Tensor:
        """Final layer norm and projection into the joint space, per token."""
        return self._head(tokens)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        out = self.head(self.finish(self.tokens(self.preprocess(images)))[:, 0])
        return F.normalize(out, dim=-1)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        if not texts:
            raise ConfigError("the prompt list is empty: give at least one prompt")
        return F.normalize(self._text(self.tokenize(list(texts))), dim=-1)

    @property
    def logit_scale(self) -> torch.Tensor:
        return self.model.logit_scale.exp()


# -- Hugging Face transformers --------------------------------------------------------------
def hf_bundle(model, tokenizer, mean, std, name: str) -> ClipBundle:
    vision = model.vision_model
    last = vision.encoder.layers[-1]

    def block(layer, x):
        out = layer(x, None)
        return out[0] if isinstance(out, tuple) else out  # transformers < 5 returns a tuple

    def tokens(pixels):
        x = vision.pre_layrnorm(vision.embeddings(pixels))
        for layer in vision.encoder.layers[:-1]:
            x = block(layer, x)
        return x

    def finish(x):
        return block(last, x)

    def value_path(x):
        attn = last.self_attn
        return attn.out_proj(attn.v_proj(last.layer_norm1(x)))

    def head(x):
        return model.visual_projection(vision.post_layernorm(x))

    def text(batch):
        out = model.get_text_features(**batch)
        # transformers >= 5 returns an output object whose pooler_output is the projected embedding
        return out.pooler_output if hasattr(out, "pooler_output") else out

    def tokenize(texts):
        enc = tokenizer(texts, padding=True, truncation=True, max_length=model.config.text_config.max_position_embeddings,
                        return_tensors="pt")
        return {k: v.to(next(model.parameters()).device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}

    cfg = model.config.vision_config
    return ClipBundle(model, tokenize, cfg.image_size, cfg.patch_size, mean, std, "hf", name,
                      tokens, value_path, head, finish, text)


def load_hf_clip(path: str | Path, device: str = "cpu", key: str = "target.vlm") -> ClipBundle:
    from transformers import AutoTokenizer, CLIPModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    folder = Path(path).expanduser()
    problem = clip_problem("hf", path, None, None, key)
    if problem is not None:
        raise problem
    try:
        model = CLIPModel.from_pretrained(folder).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise DataError(f"could not load the CLIP model or tokenizer in {folder}: {exc}") from None
    if len(tokenizer) > model.config.text_config.vocab_size:
        raise ConfigError(f"the tokenizer in {folder} has {len(tokenizer)} tokens but the text tower embeds only "
                          f"{model.config.text_config.vocab_size}: tokenizer and model do not match")
    mean, std = OPENAI_MEAN, OPENAI_STD
    if (folder / "preprocessor_config.json").is_file():
        import json

        pre = json.loads((folder / "preprocessor_config.json").read_text())
        mean, std = tuple(pre.get("image_mean", mean)), tuple(pre.get("image_std", std))
    return hf_bundle(model, tokenizer, mean, std, str(folder))


# -- open_clip ----------------------------------------------------------------------------
def _open_clip_bundle(model, tokenizer, name: str) -> ClipBundle:
    visual = model.visual
    blocks = visual.transformer.resblocks
    last = blocks[-1]

    def tokens(pixels):
        x = visual.conv1(pixels)
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
        cls = visual.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device)
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
        x = visual.ln_pre(x)
        for block in blocks[:-1]:
            x = block(x)
        return x

    def finish(x):
        return last(x)

    def value_path(x):
        attn = last.attn
        c = x.shape[-1]
        v = F.linear(last.ln_1(x), attn.in_proj_weight[2 * c:], attn.in_proj_bias[2 * c:])
        return attn.out_proj(v)

    def head(x):
        return visual.ln_post(x) @ visual.proj

    def text(ids):
        return model.encode_text(ids)

    def tokenize(texts):
        return tokenizer(texts).to(next(model.parameters()).device)

    size = visual.image_size[0] if isinstance(visual.image_size, tuple) else visual.image_size
    patch = visual.patch_size[0] if isinstance(visual.patch_size, tuple) else visual.patch_size
    mean = tuple(getattr(visual, "image_mean", None) or OPENAI_MEAN)
    std = tuple(getattr(visual, "image_std", None) or OPENAI_STD)
    return ClipBundle(model, tokenize, size, patch, mean, std, "open_clip", name,
                      tokens, value_path, head, finish, text)


def load_open_clip(model_name: str, checkpoint: str | Path | None, device: str = "cpu",
                   key: str = "target.vlm") -> ClipBundle:
    try:
        import open_clip
    except ImportError:
        raise ConfigError("the open_clip backend needs `pip install open_clip_torch`") from None
    if model_name not in open_clip.list_models():
        raise ConfigError(f"unknown open_clip architecture {model_name!r}; e.g. ViT-B-16, ViT-B-32")
    problem = clip_problem("open_clip", None, model_name, checkpoint, key)
    if problem is not None:
        raise problem
    model = open_clip.create_model(model_name, pretrained=str(Path(checkpoint).expanduser()), device=device).eval()
    if getattr(model.visual, "attn_pool", None) is not None or not hasattr(model.visual, "transformer"):
        raise ConfigError(f"open_clip {model_name} is not a plain ViT (dense maps need its transformer blocks)")
    return _open_clip_bundle(model, open_clip.get_tokenizer(model_name), f"{model_name}:{checkpoint}")


def load_clip(backend: str = "hf", path: str | Path | None = None, model_name: str | None = None,
              checkpoint: str | Path | None = None, device: str = "cpu", key: str = "target.vlm") -> ClipBundle:
    """The CLIP from local files; ``key`` names the config section in errors (``target.vlm`` or ``model``)."""
    if backend not in ("hf", "open_clip") or (path if backend == "hf" else model_name) is None:
        raise clip_problem(backend, path, model_name, checkpoint, key)
    if backend == "hf":
        return load_hf_clip(path, device, key)
    return load_open_clip(model_name, checkpoint, device, key)
