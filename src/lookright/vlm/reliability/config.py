"""Configuration of a reliability run (``lookright vlm eval`` / ``lookright vlm tune``): YAML +
``key=value`` overrides through :mod:`lookright.runs.config`, validated."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from lookright.data.shapes import ATTRIBUTES, ShapesConfig
from lookright.runs.config import RunConfigBase, Strict, build_config, check_choices, load_config
from lookright.vlm.reliability.conflicts import STRATEGIES


class ModelConfig(Strict):
    backend: Literal["hf", "open_clip"] = "hf"
    path: str | None = Field("models/small-clip", description="Hugging Face CLIP folder (hf backend)")
    model_name: str | None = Field(None, description="open_clip architecture, e.g. ViT-B-32")
    checkpoint: str | None = Field(None, description="open_clip checkpoint file")
    device: str = "cpu"
    threads: int | None = Field(None, ge=1)


class ShapesDataConfig(Strict):
    image_size: int = Field(28, ge=16, description="generated image side; images are resized to the model's input")
    n_train: int = Field(2000, ge=8)
    n_test: int = Field(1000, ge=8)
    shapes: list[str] | None = None
    colors: dict[str, tuple[int, int, int]] | None = None
    attributes: list[str] = Field(default_factory=lambda: ["shape", "color", "position"])

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, v: list[str]) -> list[str]:
        return check_choices(v, ATTRIBUTES, "attributes")

    def shapes_config(self) -> ShapesConfig:
        kw = {"image_size": self.image_size}
        if self.shapes is not None:
            kw["shapes"] = tuple(self.shapes)
        if self.colors is not None:
            kw["colors"] = dict(self.colors)
        return ShapesConfig(**kw)


class EvalConfig(Strict):
    strategies: list[str] = Field(default_factory=lambda: list(STRATEGIES))
    distractors: int = Field(3, ge=1, description="ordinary candidate captions in the matching protocol")
    batch_size: int = Field(512, ge=1)
    attention_images: int = Field(200, ge=1, description="test images for the attention-map metrics")

    @field_validator("strategies")
    @classmethod
    def _strategies(cls, v: list[str]) -> list[str]:
        return check_choices(v, STRATEGIES, "strategies")


class HeadConfig(Strict):
    hidden: int = Field(256, ge=1, description="hidden units of the attribute classifier")


class TuneConfig(Strict):
    method: Literal["frozen", "lora", "full"] = "frozen"
    rank: int = Field(8, ge=1)
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    targets: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "out_proj"],
                               description="attention projections that get LoRA adapters (both towers)")
    epochs: int = Field(8, ge=1, description="epochs (for method frozen: of the head alone)")
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0, description="learning rate of the adapters (or of all weights for full)")
    head_lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    contrastive_weight: float = Field(1.0, ge=0, description="weight of the image-text InfoNCE next to the head CE")
    conflict_share: float = Field(0.0, ge=0, le=1, description="share of head examples shown a conflicting caption")
    hard_negatives: bool = Field(False, description="mine the hardest conflicting caption per image (extra InfoNCE "
                                                    "negative, and the head's conflicting caption)")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    layerwise_lr_decay: float = Field(1.0, gt=0, le=1, description="lr of block l = lr * decay^(L-1-l); 1 = off")
    cosine_restarts: bool = False
    restart_epochs: int = Field(2, ge=1, description="epochs per cosine cycle (T_0)")
    curriculum: bool = Field(False, description="conflict share ramps linearly from 0 to conflict_share")
    curriculum_epochs: float = Field(0.5, gt=0, le=1, description="fraction of training the ramp takes")
    augmentation: bool = Field(False, description="attribute-preserving: +-1 px shifts, brightness, noise")


class ReliabilityConfig(RunConfigBase):
    name: str = "baseline"
    figures: bool = True
    model: ModelConfig = ModelConfig()  # pydantic copies the default per instance
    data: ShapesDataConfig = ShapesDataConfig()
    eval: EvalConfig = EvalConfig()
    head: HeadConfig = HeadConfig()
    tune: TuneConfig = TuneConfig()

    @model_validator(mode="after")
    def _check(self) -> "ReliabilityConfig":
        if self.model.backend == "open_clip" and self.tune.method == "lora":
            raise ValueError("LoRA tuning supports the hf backend (its attention projections are separate "
                             "q/k/v/out Linear layers); use tune.method=full or a Hugging Face CLIP folder")
        return self


#: keys that do not change a run's results: left out of its fingerprint (see lookright.runs.folder)
FINGERPRINT_IGNORES = ("out_dir", "model.threads", "model.device")


def load_reliability_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ReliabilityConfig:
    return load_config(path, overrides, schema=ReliabilityConfig)


def build_reliability_config(tree: dict, origin: str = "config") -> ReliabilityConfig:
    return build_config(tree, origin, ReliabilityConfig)
