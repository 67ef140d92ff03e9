"""The VLM teacher: pseudo-masks that a CLIP draws from text prompts (Learning to Look, WeCLIP+).

``VLMTeacher(settings, labels)(images, indices) -> (B, H, W)`` binary masks, in stages that
:class:`VLMSettings` switches on one by one:

1. **seed**: ``dense_map(method, clip, images / 255, prompts, labels[indices])`` on the patch grid;
2. **affinity** (``refine_steps > 0``): propagation along the last block's token affinity;
   with ``shifts = k > 1`` stages 1-2 run on ``k x k`` translations of the image by fractions of a
   patch and their maps, shifted back, are averaged at the image's resolution;
3. upsampling and min-max to a soft map ``m``, and a threshold ``t`` (a number or Otsu per image);
   without the next stages the mask is ``m >= t``;
4. **decoder** (``decoder.enabled``): a light segmentation network fitted on the benchmark's
   training images with the seeds as pseudo-labels (:mod:`lookright.vlm.decoder`); its
   probability, min-max normalised and thresholded as in step 3, replaces the seed's ``m, t``
   (seeds light parts of the object, so the decoder's probability on the rest of it is lower
   than 1/2 but still above the background's: a per-image threshold keeps it);
5. **crf** (``crf.enabled``): edge-aware mean-field refinement (:mod:`lookright.vlm.crf`) of the
   foreground probability ``q = m / 2t`` below ``t`` and ``1/2 + (m - t) / 2(1 - t)`` above (so
   that ``q >= 1/2`` exactly where ``m >= t``); the mask is ``q >= 1/2``;
6. **components** (``components: seeded`` or ``largest``, after the decoder or the CRF): the mask's
   connected components whose mean seed is below the seed's threshold are dropped, or all but the
   one of largest seed mass (:mod:`lookright.vlm.components`), and the soft map with them;
   ``boundary_sigma`` weighs that mass down for components that run along the image border.

Between 5 and 6, **colour_model** (``colour_model.enabled``) removes the mask's pixels whose colour
is more typical of the image's background than of its mask (:mod:`lookright.vlm.colour_model`).

With ``colour: value`` every stage sees ``max_c x[c]`` (repeated over the channels) instead of
the colours: the masks of a colour-blind teacher cannot follow a colour shortcut, and a CLIP
pretrained on white digits sees coloured ones as white. With ``colour: seed-value`` only the CLIP
(stages 1-2) sees that view; the decoder, CRF and colour model see the colours.

``split_masks`` computes the masks of a whole split in batches, through the
:class:`~lookright.vlm.cache.MaskCache` unless ``cache_dir`` is null, and warns (or, when no
image has a mask, fails) on empty masks; the core's morphology pipeline (``target.pipeline``)
is applied afterwards, exactly as for ground-truth masks. The teacher sees images and labels
only, never a ground-truth mask. Importing this module registers the ``vlm`` teacher in
:data:`lookright.targets.TEACHERS`.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lookright.errors import ConfigError, MaskError
from lookright.targets.teacher import TEACHERS
from lookright.vlm.backends import ClipBundle, load_clip
from lookright.vlm.cache import MaskCache, cache_key, digest_array, digest_file
from lookright.vlm.colour_model import ColourModelSettings, colour_carve
from lookright.vlm.components import keep_seeded_components, only_on_the_border
from lookright.vlm.crf import CRFSettings, crf_refine
from lookright.vlm.decoder import DecoderSettings, decoder_problems, fit_decoder
from lookright.vlm.decoder_store import DecoderStore
from lookright.vlm.dense import PromptSet, dense_map, template_problem
from lookright.vlm.postprocess import affinity_refine, shift_averaged, soft_and_thresholds

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
    foreground: str | None = Field(None, description="prompt template per image, {name} = the class name of its "
                                   "label, e.g. 'a clean origami {name}.' (default: "
                                   f"{DIGIT_PROMPT!r} on the MNIST benchmarks, {PHOTO_PROMPT!r} on user data)")
    background: list[str] = Field(default_factory=lambda: ["background", "black", "dark"])
    background_template: str = "{}"
    class_names: list[str] | None = Field(None, description="class names in label order (default: the dataset's "
                                          "classes; the digits' names on the MNIST benchmarks)")
    threshold: float | Literal["otsu"] = "otsu"
    refine_steps: int = Field(0, ge=0, description="affinity refinement steps on the patch grid")
    refine_tau: float = Field(0.1, gt=0)
    shifts: int = Field(1, ge=1, description="seed maps averaged over shifts x shifts translations of the image "
                        "by fractions of a patch (1: off); the seed's resolution becomes patch / shifts")
    colour: Literal["rgb", "value", "seed-value"] = Field(
        "rgb", description="value: every stage sees each pixel's maximum over the colour channels (repeated over "
        "the channels): a colour-blind teacher, whose masks cannot follow a colour shortcut; seed-value: the CLIP "
        "sees that view (the seed and affinity stages), the pixel stages see the colours")
    components: Literal["all", "seeded", "largest"] = Field(
        "all", description="seeded: drop the final mask's connected components whose mean seed is below the seed's "
        "threshold; largest: keep only the component of largest seed mass (one object per image)")
    boundary_sigma: float | None = Field(None, gt=0, description="with components: the component kept is the one of "
                                         "largest seed mass x exp(-b^2 / 2 sigma^2), b = its pixels on the image border "
                                         "/ sqrt(its area) (Zhu et al. 2014 use 1); null: seed mass alone")
    batch_size: int = Field(256, ge=1)
    device: str = "cpu"
    decoder: DecoderSettings = Field(default_factory=DecoderSettings)
    crf: CRFSettings = Field(default_factory=CRFSettings)
    colour_model: ColourModelSettings = Field(default_factory=ColourModelSettings)
    cache_dir: str | None = "~/.cache/lookright/masks"
    mode: Literal["cache", "on-the-fly"] = "cache"

    @field_validator("foreground")
    @classmethod
    def _foreground_template(cls, value: str | None) -> str | None:
        problem = None if value is None else template_problem(value, {"name"}, "target.vlm.foreground")
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("background_template")
    @classmethod
    def _background_template(cls, value: str) -> str:
        problem = template_problem(value, {""}, "target.vlm.background_template")
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _component_settings_need_components(self) -> VLMSettings:
        if self.components == "all":
            used = [name for name, on in (("target.vlm.boundary_sigma", self.boundary_sigma is not None),
                                          ("target.vlm.decoder.filter_labels", self.decoder.filter_labels)) if on]
            if used:
                raise ValueError(f"{' and '.join(used)} act through the component filter, which is off: set "
                                 "target.vlm.components to seeded or largest, or leave them unset")
        if self.decoder.drop_border and self.boundary_sigma is None:
            raise ValueError("target.vlm.decoder.drop_border judges the seed masks by the boundary prior: set "
                             "target.vlm.boundary_sigma (1.0 is Zhu et al.'s value), or leave drop_border unset")
        return self

    @model_validator(mode="after")
    def _decoder_is_fitted_before_training(self) -> VLMSettings:
        if self.decoder.enabled and self.mode == "on-the-fly":
            raise ValueError("target.vlm.decoder is fitted on the whole train split before training: use "
                             "target.vlm.mode: cache with the decoder")
        return self

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

    def clip_loader(self) -> Callable[[], ClipBundle]:
        """A loader of that CLIP that loads it on its first call and returns that same bundle
        afterwards: the teachers of a run's splits share one CLIP, and a run whose masks all come
        from the cache never loads it (no ``transformers`` import, no weights read)."""
        return functools.cache(self.load_clip)

    def model_identity(self) -> dict:
        """Backend, location and a digest of the weight files (so changed weights miss the cache)."""
        files: list[Path] = []
        if self.backend == "hf" and self.path:
            folder = Path(self.path).expanduser()
            files = sorted(p for p in folder.glob("*") if p.suffix in (".json", ".safetensors", ".bin", ".txt"))
        elif self.checkpoint:
            files = [Path(self.checkpoint).expanduser()]
        return {"backend": self.backend, "path": self.path, "model_name": self.model_name,
                "checkpoint": self.checkpoint, "files": {p.name: weights_digest(p) for p in files if p.is_file()}}

    def key_fields(self) -> dict:
        """What the masks depend on (a stage that is off adds nothing, so older entries stay valid)."""
        crf_used = self.crf.enabled or (self.decoder.enabled and self.decoder.labels == "crf")
        stages = {name: stage.model_dump(exclude={k for k in ("colour_mix", "filter_labels", "drop_border")
                                                  if getattr(stage, k, None) is False})
                  for name, stage, used in
                  (("decoder", self.decoder, self.decoder.enabled), ("crf", self.crf, crf_used)) if used}
        extra = {"shifts": self.shifts} if self.shifts > 1 else {}
        if self.components != "all":
            extra["components"] = self.components
            if self.boundary_sigma is not None:
                extra["boundary_sigma"] = self.boundary_sigma
        if self.colour != "rgb":
            extra["colour"] = self.colour
        if self.colour_model.enabled:
            extra["colour_model"] = self.colour_model.model_dump(
                exclude=set() if self.colour_model.grow else {"grow", "grow_ratio"})
        return {"model": self.model_identity(), **stages, **extra, **self.model_dump(
            include={"method", "method_options", "foreground", "background", "background_template", "class_names",
                     "threshold", "refine_steps", "refine_tau"})}


def colour_view(images: torch.Tensor, colour: str) -> torch.Tensor:
    """``value``: each pixel's maximum over the channels, repeated over them (the V of HSV); anything
    else (``rgb``, ``seed-value``, whose pixel stages see the colours): the images."""
    if colour != "value" or images.shape[-3] == 1:
        return images
    return images.amax(dim=-3, keepdim=True).expand_as(images)


def weights_digest(path: Path) -> str:
    """SHA-256 of a model file, computed once per process while the file keeps its inode, size and
    modification time (a run's splits share it: a ViT-B/16's 600 MB are hashed once, not per split)."""
    st = path.stat()
    return _digest_once(str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _digest_once(path: str, _inode: int, _size: int, _mtime_ns: int) -> str:
    return digest_file(Path(path))


class TeacherWarning(UserWarning):
    """Pseudo-masks that are probably useless (mostly empty, a decoder that did not converge)."""


def _seed_probability(soft: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``q``: the soft map rescaled piecewise linearly so that ``q >= 1/2`` exactly where ``soft >= t``."""
    t = t.view(-1, 1, 1).clamp(1e-6, 1 - 1e-6)
    return torch.where(soft < t, 0.5 * soft / t, 0.5 + 0.5 * (soft - t) / (1 - t)).clamp(0, 1)


class VLMTeacher:
    """``clip``: a :class:`ClipBundle`, a zero-argument loader of one (:meth:`VLMSettings.clip_loader`), or None
    (the CLIP of ``settings``). It is loaded on first use only: a cache hit needs no CLIP."""

    def __init__(self, settings: VLMSettings, labels: torch.Tensor | np.ndarray | None = None,
                 clip: ClipBundle | Callable[[], ClipBundle] | None = None) -> None:
        self.settings = settings.for_dataset(None)  # resolved prompts, as the cache key records them
        self.prompts = self.settings.prompts()
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels)).long()
        self._clip = clip if clip is not None else settings.clip_loader()
        self.decoder = None  # fitted by fit_decoder (decoder stage)
        self.decoder_record: dict | None = None

    @property
    def clip(self) -> ClipBundle:
        if not isinstance(self._clip, ClipBundle):
            self._clip = self._clip()
        return self._clip

    def _floats(self, images: torch.Tensor) -> torch.Tensor:
        """Images as floats in ``[0, 1]``, in the colour view of ``settings.colour`` (idempotent)."""
        x = images.float() / 255 if not torch.is_floating_point(images) else images
        return colour_view(x, self.settings.colour)

    def _clip_view(self, images: torch.Tensor) -> torch.Tensor:
        """What the CLIP sees: :meth:`_floats`, in the value view when ``colour`` is ``seed-value``."""
        x = self._floats(images)
        return colour_view(x, "value") if self.settings.colour == "seed-value" else x

    def raw_maps(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Stage 1: ``(B, g, g)`` dense maps."""
        return dense_map(self.settings.method, self.clip, self._clip_view(images), self.prompts, labels,
                         **self.settings.method_options)

    def grid_maps(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Stages 1-2: ``(B, g, g)`` dense maps, refined along the token affinity when ``refine_steps > 0``."""
        maps = self.raw_maps(images, labels)
        if self.settings.refine_steps:
            with torch.no_grad():
                tokens = self.clip.tokens(self.clip.preprocess(self._clip_view(images)))[:, 1:]
            maps = affinity_refine(maps, tokens, self.settings.refine_steps, self.settings.refine_tau)
        return maps.detach()

    def seeds(self, images: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Stages 1-3: the soft map ``(B, H, W)`` in ``[0, 1]`` at the image size and its thresholds ``(B,)``."""
        if self.settings.shifts > 1:
            maps = shift_averaged(lambda x: self.grid_maps(x, labels), self._floats(images), self.clip.grid,
                                  self.settings.shifts)
        else:
            maps = self.grid_maps(images, labels)
        soft, t = soft_and_thresholds(maps, tuple(images.shape[-2:]), self.settings.threshold)
        return soft.to(images.device), t.to(images.device)

    def fit_decoder(self, images: np.ndarray | torch.Tensor, labels=None, progress=None) -> dict:
        """Stage 4: fit the decoder on uint8 training images ``(N, C, H, W)`` (their labels name the
        prompts); warns when it did not converge. Returns the fit record."""
        images = colour_view(torch.as_tensor(np.asarray(images)), self.settings.colour)
        labels = None if labels is None else torch.as_tensor(np.asarray(labels)).long()

        def seeds(index: torch.Tensor):
            soft, t = self.seeds(images[index], None if labels is None else labels[index])
            if self.settings.decoder.labels == "crf":
                soft = crf_refine(images[index].float() / 255, _seed_probability(soft, t), self.settings.crf)
                t = torch.full_like(t, 0.5)
            if self.settings.decoder.filter_labels and self.settings.components != "all":
                kept = keep_seeded_components((soft >= t.view(-1, 1, 1)).float(), soft, t,
                                              largest_only=self.settings.components == "largest",
                                              boundary_sigma=self.settings.boundary_sigma)
                soft = soft * kept  # a dropped component's pixels become background labels
            if self.settings.decoder.drop_border:  # fit_decoder leaves these images out of the labels
                return soft, t, only_on_the_border((soft >= t.view(-1, 1, 1)).float(), self.settings.boundary_sigma)
            return soft, t

        self.decoder, self.decoder_record = fit_decoder(images, seeds, self.settings.decoder, progress)
        for problem in decoder_problems(self.decoder_record):
            warnings.warn(TeacherWarning(problem), stacklevel=2)
        return self.decoder_record

    @torch.no_grad()
    def soft_and_masks(self, images: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The final soft map (the decoder's or CRF's foreground probability, else the seed's soft
        map) and the binary masks, both ``(B, H, W)``."""
        if images.dim() != 4:
            raise MaskError(f"the VLM teacher takes (B, C, H, W) images, got {tuple(images.shape)}")
        s = self.settings
        labels = None if self.labels is None else self.labels[indices.cpu()]
        x = self._floats(images)
        seed = None  # the seed's (soft map, thresholds), for the component filter
        if s.decoder.enabled:
            if self.decoder is None:
                raise MaskError("the decoder stage is on but no decoder is fitted: masks of the train split come "
                                "first (`lookright teach CONFIG`), or call fit_decoder")
            prob = torch.sigmoid(self.decoder.to(x.device)(x))
            soft, t = soft_and_thresholds(prob, tuple(images.shape[-2:]), s.threshold)
        else:
            soft, t = seed = self.seeds(images, labels)
        if s.crf.enabled:
            soft = crf_refine(x, _seed_probability(soft, t), s.crf)
            masks = (soft >= 0.5).float()
        else:
            masks = (soft >= t[:, None, None]).float()
        if s.colour_model.enabled:
            masks = colour_carve(x, masks, s.colour_model)
            soft = soft * masks
        if s.components != "all" and (s.decoder.enabled or s.crf.enabled):
            seed_soft, seed_t = seed if seed is not None else self.seeds(images, labels)
            masks = keep_seeded_components(masks, seed_soft, seed_t, largest_only=s.components == "largest",
                                           boundary_sigma=s.boundary_sigma)
            soft = soft * masks
        return soft, masks

    def __call__(self, images: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return self.soft_and_masks(images, indices)[1].to(images.device)


TEACHERS.register("vlm")(VLMTeacher)


def split_masks(teacher: VLMTeacher, images: np.ndarray, dataset: dict, progress=None) -> tuple[np.ndarray, str]:
    """Masks ``(N, H, W)`` uint8 for uint8 images ``(N, C, H, W)``; ``dataset`` names the data
    (benchmark, seed, split) and is hashed into the cache key with a digest of the images.
    Returns the masks and the cache status (``hit``, ``miss``, ``stale``, ``corrupt`` or ``off``).

    With the decoder stage, the train split's call fits the decoder on its images (or loads the
    one stored for them) and records it in the cache for the other splits, whose keys name the
    training images the decoder was fitted on."""
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

    fields = {"teacher": s.key_fields(), "dataset": {**dataset, "images": digest_array(images)},
              "labels": None if teacher.labels is None else digest_array(teacher.labels.numpy())}
    if s.decoder.enabled:
        fields["decoder_fitted_on"] = _decoder_for(teacher, images, dataset, fields)
    if s.cache_dir is None:
        masks, status = build(), "off"
    else:
        cache = MaskCache(s.cache_dir)
        masks = cache.get_or_build(fields, (len(images), *images.shape[-2:]), build)
        status = cache.last_status
    check_empty(masks, dataset.get("split", "?"))
    return masks, status


def _decoder_for(teacher: VLMTeacher, images: np.ndarray, dataset: dict, fields: dict) -> str:
    """The digest of the training images the split's decoder is fitted on; fits, stores or loads it."""
    s = teacher.settings
    store = DecoderStore(s.cache_dir) if s.cache_dir is not None else None
    owner = {"teacher": fields["teacher"], **{k: v for k, v in dataset.items() if k != "split"}}
    if dataset.get("split") == "train":
        train = cache_key({"images": fields["dataset"]["images"], "labels": fields["labels"]})
        if teacher.decoder is None and store is not None:
            teacher.decoder = store.load(owner, train)
        if teacher.decoder is None:
            teacher.fit_decoder(images, teacher.labels)
            if store is not None:
                store.save(owner, train, teacher.decoder, teacher.decoder_record)
        elif store is not None:
            store.point(owner, train)
        return train
    if store is None:
        if teacher.decoder is None:
            raise MaskError("the decoder stage needs target.vlm.cache_dir to hand the decoder fitted on the train "
                            "split to the other splits (or call fit_decoder on the teacher)")
        return "in memory"
    train = store.latest(owner)
    if teacher.decoder is None:
        teacher.decoder = store.load(owner, train)
        if teacher.decoder is None:
            raise MaskError("the stored decoder could not be read; delete the cache's decoders/ folder and compute "
                            "the train split's masks again")
    return train


def check_empty(masks: np.ndarray, split: str) -> int:
    """Count images with an empty mask; warn when they are more than half, fail when all are."""
    empty = int((masks.reshape(len(masks), -1).max(axis=1) == 0).sum()) if len(masks) else 0
    if len(masks) and empty == len(masks):
        raise MaskError(f"every one of the {len(masks)} pseudo-masks of the {split} split is empty: the prompts find "
                        "nothing in these images; check target.vlm.foreground / background and the CLIP")
    if empty * 2 > len(masks):
        warnings.warn(TeacherWarning(
            f"{empty} of {len(masks)} pseudo-masks of the {split} split ({empty / len(masks):.0%}) are empty; the "
            "alignment loss skips those images. Check the prompts (target.vlm.foreground, background)"), stacklevel=2)
    return empty
