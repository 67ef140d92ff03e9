"""The supervised run's config schema (loading and overrides: :mod:`lookright.runs.config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from lookright.runs import config as runs_config
from lookright.runs.config import LazySection, RunConfigBase, Strict, check_fractions, dump_config, merge_trees, parse_overrides  # noqa: F401


class DataConfig(Strict):
    """A benchmark by name, or a user dataset: ``manifest`` (CSV), ``folder`` (image folders), ``npz``."""

    name: str = Field("colormnist", description="benchmark name, or manifest | folder | npz (docs/user-data.md)")
    data_dir: str | None = None
    embedded: bool = False
    max_train: int | None = Field(None, ge=10, description="use only N training images (benchmarks: the first N; "
                                                           "user data: a seeded random N)")
    max_test: int | None = Field(None, ge=10)
    val_fraction: float = Field(0.16, gt=0.0, lt=1.0, description="share of train carved as validation when there is none")
    val_mode: Literal["in-distribution", "cdep"] = "in-distribution"
    mask_threshold: int = Field(0, ge=0, le=254, description="digit mask = grey > t (Learning to Look's code: 10)")
    path: str | None = Field(None, description="manifest: the CSV (image,label[,split,mask,shortcut,box]); "
                                               "npz: the .npz of `lookright data export`")
    root: str | None = Field(None, description="folder: ROOT with ROOT/SPLIT/CLASS/IMAGE and ROOT/masks/SPLIT/CLASS/STEM.png")
    image_size: int = Field(64, ge=8, le=1024, description="user data: every image and mask is resized to this square "
                                                           "size (bilinear / nearest)")
    classes: list[str | int] | None = Field(None, description="user data: the label order (default: the train "
                                                               "labels, sorted); y is the index in it")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="user data: share of train carved as test "
                                                                  "when there is no test split")
    stream: Literal["auto", True, False] = Field("auto", description="manifest/folder data: decode train images "
                                                 "from disk per batch (auto: when the train split exceeds memory_budget_mb)")
    memory_budget_mb: float = Field(2048, gt=0, description="stream: auto streams when the decoded train split is larger")
    workers: int = Field(2, ge=0, description="streaming: DataLoader worker processes")
    augment: list[str | dict[str, dict[str, Any]]] = Field(
        default_factory=list, description="streaming: torchvision.transforms.v2 names (or {name: options}) applied "
                                          "jointly to image and masks, e.g. [RandomHorizontalFlip]")

    @model_validator(mode="after")
    def _location(self) -> DataConfig:
        if self.name in ("manifest", "npz") and not self.path:
            raise ValueError(f"data.name {self.name!r} needs data.path (the {'CSV' if self.name == 'manifest' else '.npz'} file)")
        if self.name == "folder" and not self.root:
            raise ValueError("data.name 'folder' needs data.root (ROOT/train/CLASS/IMAGE)")
        if self.stream is True and self.name not in ("manifest", "folder"):
            raise ValueError(f"data.stream: true applies to manifest and folder datasets, not {self.name!r} "
                             "(benchmarks and .npz files are held in memory)")
        if self.augment:
            from lookright.data.stream import joint_transform  # torchvision only when asked for

            joint_transform(self.augment)
            if self.stream is False or self.name not in ("manifest", "folder"):
                raise ValueError("data.augment needs streaming: a manifest or folder dataset with data.stream auto or true")
        return self


class ModelConfig(Strict):
    name: str = "lenet"
    options: dict[str, Any] = Field(default_factory=dict)
    input_scale: Literal["model", "raw"] = Field(
        "model", description="model: the model's own normalisation; raw: float pixels 0-255, no normalisation (CDEP)")


class AugmentConfig(Strict):
    """Mask-guided counterfactual augmentation (``lookright.data.counterfactual``)."""

    counterfactual: float = Field(0.0, ge=0.0, le=1.0, description="share of each batch whose non-mask pixels are replaced")
    fill: Literal["swap", "noise"] = "swap"
    dilate: int = Field(0, ge=0, description="pixels of margin kept around the mask (a margin keeps any cue in it)")


class AttentionConfig(Strict):
    extractor: str | None = None  # default: the loss's own (cam, or input-gradients for rrr)
    layer: str | None = None
    post_relu: bool = False  # CAM on ReLU(A) instead of A
    second_order: bool = True  # Grad-CAM: train through alpha too (create_graph)
    target: Literal["label", "pred"] = "label"
    options: dict[str, Any] = Field(default_factory=dict, description="extractor-specific options, e.g. samples")


class TargetConfig(Strict):
    teacher: Literal["mask", "vlm"] = "mask"
    source: Literal["mask", "shortcut"] = "mask"  # which ground-truth mask the mask teacher reads
    # the VLM teacher's settings (teacher: vlm): a lookright.vlm.teacher.VLMSettings, imported only when given
    vlm: Annotated[Any, LazySection("lookright.vlm.teacher:VLMSettings")] = None
    pipeline: list[dict[str, Any]] = Field(default_factory=lambda: [{"op": "resize", "size": "attention"}])

    @model_validator(mode="after")
    def _vlm_settings(self) -> TargetConfig:
        if self.teacher == "vlm" and self.vlm is None:
            raise ValueError("teacher 'vlm' needs target.vlm (backend, path, method, prompts)")
        return self


class LossConfig(Strict):
    name: str | None = None  # None: plain cross-entropy (vanilla)
    lambda0: float = Field(1.0, ge=0.0)
    ramp: Literal["constant", "learning-to-look"] = "constant"
    options: dict[str, Any] = Field(default_factory=dict)


class OptimConfig(Strict):
    name: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(1e-3, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)


class SchedulerConfig(Strict):
    name: Literal["none", "step", "cosine"] = "none"
    step_size: int = Field(7, ge=1)
    gamma: float = Field(0.1, gt=0.0)


class TrainConfig(Strict):
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(32, ge=1)
    attn_epochs: int = Field(0, ge=0, description="length of phase 1, in epochs")
    phase1_loss: Literal["align", "ce"] = Field(
        "align", description="what phase 1 optimises: the alignment loss alone, or cross-entropy alone")
    selection: Literal["val_acc", "val_acc_x_align", "val_acc_x_exp_align", "val_loss", "counterfactual", "last"] = "val_acc"
    selection_beta: float = Field(0.3, ge=0.0, description="beta of val_acc * exp(-beta * val_align)")
    patience: int | None = Field(None, ge=1, description="stop after this many epochs without a better selection score")
    counterfactual_dilate: int = Field(0, ge=0, description="mask margin (px) of the validation counterfactuals")
    eval_batch_size: int = Field(2000, ge=1)
    device: str = Field("auto", description="auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps")
    threads: int | None = Field(None, ge=1)
    precision: Literal["32", "bf16-mixed", "16-mixed"] = Field(
        "32", description="training-step precision (Lightning Fabric): 32 (full), bf16-mixed (CPU or GPU autocast), "
                          "16-mixed (CUDA only, with a gradient scaler); evaluation always runs in full precision")
    devices: int = Field(1, ge=1, description="devices of the run: > 1 trains data-parallel (DDP) in that many "
                                              "processes, on the first visible GPUs or on CPU")
    strategy: Literal["auto", "ddp"] = Field("auto", description="Fabric strategy: devices > 1 always runs DDP; "
                                                                 "with one device both run in this process")
    compile: bool = Field(False, description="torch.compile the model for the training steps that have no "
                                             "attention map (vanilla, phase-1 CE); alignment steps run eagerly")
    fast: bool = Field(False, description="fast paths (lookright.train.fast): channels-last layout, fused optimiser, "
                                          "divergence checked every 50 steps; same data order and mathematics in "
                                          "another summation order (docs/speed.md)")


class EvalConfig(Strict):
    """Settings of ``lookright eval`` (see ``lookright.metrics.suite``)."""

    extractor: str | None = None  # default: cam when the model has a GAP head, else gradcam
    figure_images: int = Field(8, ge=1)
    max_images: int | None = Field(None, ge=1, description="shifted-test images for the attention metrics (None: all)")
    example_images: int = Field(8, ge=0, description="images whose maps are saved for the report grid")
    pointing_tolerance: float = Field(0.0, ge=0.0, description="pointing-game tolerance in pixels")
    iou_threshold: float = Field(0.5, gt=0.0, le=1.0)
    top_k: float = Field(0.1, gt=0.0, description="top-k intersection: a fraction (<1) or a pixel count")
    substrate: Literal["zero", "blur"] | float = "zero"
    blur_sigma: float = Field(5.0, gt=0.0)
    steps: int = Field(20, ge=1, description="deletion / insertion curve steps")
    removal_fractions: list[float] = Field(default_factory=lambda: [0.05, 0.1, 0.2, 0.5])
    road_fractions: list[float] = Field(default_factory=lambda: [0.1, 0.3, 0.5, 0.7, 0.9])
    road_noise: float = Field(0.01, ge=0.0)
    road_max_images: int | None = Field(2000, ge=1, description="images for ROAD (its imputation is the slow part)")

    @field_validator("removal_fractions", "road_fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        return check_fractions(v, include_one=True)


class LogConfig(Strict):
    """Dashboards that mirror the run folder (``lookright.runs.loggers``)."""

    backends: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(
        default_factory=lambda: ["tensorboard"], description="tensorboard writes RUN_DIR/tensorboard; [] for none")
    images_every: int = Field(5, ge=0, description="attention overlays every N epochs and at the last (0: never)")
    images: int = Field(8, ge=1, description="shifted test images in each overlay")
    show_test: bool = Field(False, description="print shifted-test accuracy in the per-epoch log line (a peek at the "
                                               "test shift; selection never reads it)")


class RunConfig(RunConfigBase):
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    attention: AttentionConfig = Field(default_factory=AttentionConfig)
    target: TargetConfig = Field(default_factory=TargetConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    log: LogConfig = Field(default_factory=LogConfig)

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if self.train.attn_epochs and self.loss.name is None:
            raise ValueError("train.attn_epochs > 0 needs an alignment loss (loss.name)")
        if self.train.attn_epochs >= self.train.epochs:
            raise ValueError(f"train.attn_epochs ({self.train.attn_epochs}) must be < train.epochs ({self.train.epochs})")
        if self.target.teacher == "vlm" and (self.data.stream is True or self.data.augment):
            raise ValueError("target.teacher: vlm needs the train images in memory: set data.stream: false "
                             "and no data.augment (streaming works with the mask teacher)")
        if (self.target.teacher == "vlm" and self.augment.counterfactual > 0 and self.target.vlm is not None
                and getattr(self.target.vlm, "mode", "cache") == "on-the-fly"):
            raise ValueError("augment.counterfactual with target.teacher: vlm uses the pseudo-masks of the whole train "
                             "split: set target.vlm.mode: cache (fill it with `lookright teach CONFIG`)")
        return self


    def for_dataset(self, source) -> RunConfig:
        """This config with what depends on the data resolved: the VLM teacher's unset prompts and
        class names (:meth:`VLMSettings.for_dataset`) from ``source.classes``."""
        if self.target.vlm is None:
            return self
        vlm = self.target.vlm.for_dataset(source.classes)
        return self.model_copy(update={"target": self.target.model_copy(update={"vlm": vlm})})


#: keys that do not change what a run trains: left out of its fingerprint (see lookright.runs.folder)
FINGERPRINT_IGNORES = ("out_dir", "train.threads", "train.device", "train.eval_batch_size", "data.data_dir", "log",
                       "data.stream", "data.workers", "data.memory_budget_mb", "train.devices", "train.strategy",
                       "train.compile", "train.fast")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, schema=None) -> RunConfig:
    """Read a YAML config (or start from defaults), apply ``key=value`` overrides, validate."""
    return runs_config.load_config(path, overrides, schema or RunConfig)


def build_config(tree: dict, origin: str = "config", schema=None) -> RunConfig:
    return runs_config.build_config(tree, origin, schema or RunConfig)
