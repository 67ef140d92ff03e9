"""The VLM teacher: pseudo-masks that a CLIP draws from text prompts (Learning to Look).

``VLMTeacher(settings, labels)(images, indices) -> (B, H, W)`` binary masks:
``postprocess(dense_map(method, clip, images / 255, prompts, labels[indices]))`` with the
settings of :class:`VLMSettings` (backend and weights, method, prompts, threshold, affinity
refinement). ``split_masks`` computes the masks of a whole split in batches, through the
:class:`~lookright.vlm.cache.MaskCache` unless ``cache_dir`` is null; the core's morphology
pipeline (``target.pipeline``) is applied afterwards, exactly as for ground-truth masks.
Importing this module registers the ``vlm`` teacher in :data:`lookright.targets.TEACHERS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from lookright.errors import ConfigError, MaskError
from lookright.targets.teacher import TEACHERS
from lookright.vlm.backends import ClipBundle, load_clip
from lookright.vlm.cache import MaskCache, digest_array, digest_file
from lookright.vlm.dense import PromptSet, dense_map
from lookright.vlm.postprocess import affinity_refine, postprocess

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
#: the default foreground prompt: for the MNIST benchmarks (no class names of their own), and for user data
DIGIT_PROMPT = "a handwritten digit {name}"
PHOTO_PROMPT = "a photo of a {name}."


class VLMSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["hf", "open_clip"] = "hf"
    path: str | None = None  # hf: a save_pretrained folder
    model_name: str | None = None  # open_clip: architecture
    checkpoint: str | None = None  # open_clip: weights file
    method: Literal["gradcam", "maskclip", "surgery"] = "maskclip"
    method_options: dict[str, Any] = Field(default_factory=dict)
    foreground: str | None = Field(None, description="prompt per image, {name} = its class name (default: "
                                   f"{DIGIT_PROMPT!r} on the MNIST benchmarks, {PHOTO_PROMPT!r} on user data)")
    background: list[str] = Field(default_factory=lambda: ["background", "black", "dark"])
    background_template: str = "{}"
    class_names: list[str] | None = Field(None, description="class names in label order (default: the dataset's "
                                          "classes; the digits' names on the MNIST benchmarks)")
    threshold: float | Literal["otsu"] = "otsu"
    refine_steps: int = Field(0, ge=0, description="affinity refinement steps on the patch grid")
    refine_tau: float = Field(0.1, gt=0)
    batch_size: int = Field(256, ge=1)
    device: str = "cpu"
    cache_dir: str | None = "~/.cache/lookright/masks"
    mode: Literal["cache", "on-the-fly"] = "cache"

    def for_dataset(self, classes: list[str] | None) -> VLMSettings:
        """These settings with unset prompts filled in for a dataset whose classes are ``classes``
        (None: an MNIST benchmark, whose classes are the digits)."""
        names = self.class_names or (list(classes) if classes else list(DIGITS))
        foreground = self.foreground or (DIGIT_PROMPT if classes is None else PHOTO_PROMPT)
        if classes is not None and len(names) != len(classes):
            raise ConfigError(f"target.vlm.class_names has {len(names)} names but the dataset has {len(classes)} "
                              f"classes ({', '.join(map(str, classes))}); give one name per class, in label order")
        return self.model_copy(update={"class_names": names, "foreground": foreground})

    def prompts(self) -> PromptSet:
        s = self.for_dataset(None)
        return PromptSet(s.foreground, list(s.background), s.background_template, list(s.class_names))

    def load_clip(self) -> ClipBundle:
        """The CLIP these settings name, from local files."""
        return load_clip(self.backend, self.path, self.model_name, self.checkpoint, self.device)

    def model_identity(self) -> dict:
        """Backend, location and a digest of the weight files (so changed weights miss the cache)."""
        files: list[Path] = []
        if self.backend == "hf" and self.path:
            folder = Path(self.path).expanduser()
            files = sorted(p for p in folder.glob("*") if p.suffix in (".json", ".safetensors", ".bin", ".txt"))
        elif self.checkpoint:
            files = [Path(self.checkpoint).expanduser()]
        return {"backend": self.backend, "path": self.path, "model_name": self.model_name,
                "checkpoint": self.checkpoint, "files": {p.name: digest_file(p) for p in files if p.is_file()}}

    def key_fields(self) -> dict:
        return {"model": self.model_identity(), **self.model_dump(
            include={"method", "method_options", "foreground", "background", "background_template", "class_names",
                     "threshold", "refine_steps", "refine_tau"})}


class VLMTeacher:
    def __init__(self, settings: VLMSettings, labels: torch.Tensor | np.ndarray | None = None, clip=None) -> None:
        self.settings = settings.for_dataset(None)  # resolved prompts, as the cache key records them
        self.prompts = self.settings.prompts()
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels)).long()
        self.clip = clip or settings.load_clip()

    def raw_maps(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        x = images.float() / 255 if not torch.is_floating_point(images) else images
        return dense_map(self.settings.method, self.clip, x, self.prompts, labels, **self.settings.method_options)

    def __call__(self, images: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4:
            raise MaskError(f"the VLM teacher takes (B, C, H, W) images, got {tuple(images.shape)}")
        labels = None if self.labels is None else self.labels[indices.cpu()]
        maps = self.raw_maps(images, labels)
        if self.settings.refine_steps:
            with torch.no_grad():
                tokens = self.clip.tokens(self.clip.preprocess(images.float() / 255 if not torch.is_floating_point(images)
                                                               else images))[:, 1:]
            maps = affinity_refine(maps, tokens, self.settings.refine_steps, self.settings.refine_tau)
        return postprocess(maps, tuple(images.shape[-2:]), self.settings.threshold).to(images.device)


TEACHERS.register("vlm")(VLMTeacher)


def split_masks(teacher: VLMTeacher, images: np.ndarray, dataset: dict, progress=None) -> tuple[np.ndarray, str]:
    """Masks ``(N, H, W)`` uint8 for uint8 images ``(N, C, H, W)``; ``dataset`` names the data
    (benchmark, seed, split) and is hashed into the cache key with a digest of the images.
    Returns the masks and the cache status (``hit``, ``miss``, ``stale``, ``corrupt`` or ``off``)."""
    if images.ndim != 4:
        raise MaskError(f"images must be (N, C, H, W), got {images.shape}")
    s = teacher.settings

    def build() -> np.ndarray:
        out = []
        for start in range(0, len(images), s.batch_size):
            idx = torch.arange(start, min(start + s.batch_size, len(images)))
            out.append(teacher(torch.from_numpy(images[start:start + s.batch_size]), idx).cpu().numpy().astype(np.uint8))
            if progress is not None:
                progress(len(idx))
        return np.concatenate(out)

    if s.cache_dir is None:
        return build(), "off"
    fields = {"teacher": s.key_fields(), "dataset": {**dataset, "images": digest_array(images)},
              "labels": None if teacher.labels is None else digest_array(teacher.labels.numpy())}
    cache = MaskCache(s.cache_dir)
    masks = cache.get_or_build(fields, (len(images), *images.shape[-2:]), build)
    return masks, cache.last_status
