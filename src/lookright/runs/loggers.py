"""Experiment loggers behind one switch (``log.backends``): TensorBoard into the run folder by
default, Weights & Biases and MLflow when they are installed.

A logger takes per-epoch scalars (``log_scalars(step, {name: value})``) and images
(``log_image(tag, step, hwc_uint8)``). The run folder stays the record of truth: loggers only
mirror it for dashboards, and a logger that cannot start is a ConfigError before training.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lookright.errors import ConfigError
from lookright.runs.folder import flatten

BACKENDS = ("tensorboard", "wandb", "mlflow")


class TensorBoardLogger:
    """Event files in ``RUN_DIR/tensorboard`` (``tensorboard --logdir RUN_DIR``); a resumed run
    purges the events after its checkpoint's epoch, so curves never show an epoch twice."""

    def __init__(self, run_dir: Path, name: str, config: dict, start_step: int = 0) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("log.backends has tensorboard, but the tensorboard package is missing: "
                              "pip install tensorboard (or set log.backends=[])") from None
        self.writer = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=start_step or None)
        if start_step == 0:
            self.writer.add_text("config", f"```\n{config}\n```", 0)

    def log_scalars(self, step: int, values: dict) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def log_image(self, tag: str, step: int, image: np.ndarray) -> None:
        self.writer.add_image(tag, image, step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    """A W&B run named after the run folder, files under ``RUN_DIR/wandb`` (offline unless
    ``WANDB_MODE`` says otherwise)."""

    def __init__(self, run_dir: Path, name: str, config: dict, start_step: int = 0) -> None:
        import os

        try:
            import wandb
        except ImportError:
            raise ConfigError("log.backends has wandb, but wandb is not installed: pip install wandb") from None
        self.wandb = wandb
        self.run = wandb.init(dir=str(run_dir), name=name, config=config, resume="allow",
                              id=name.replace("/", "-"), mode=os.environ.get("WANDB_MODE", "offline"))

    def log_scalars(self, step: int, values: dict) -> None:
        self.run.log(values, step=step)

    def log_image(self, tag: str, step: int, image: np.ndarray) -> None:
        self.run.log({tag: self.wandb.Image(image)}, step=step)

    def close(self) -> None:
        self.run.finish()


class MlflowLogger:
    """An MLflow run (``MLFLOW_TRACKING_URI``, default ``RUN_DIR/mlruns``)."""

    def __init__(self, run_dir: Path, name: str, config: dict, start_step: int = 0) -> None:
        import os

        try:
            import mlflow
        except ImportError:
            raise ConfigError("log.backends has mlflow, but mlflow is not installed: pip install mlflow") from None
        self.mlflow = mlflow
        if "MLFLOW_TRACKING_URI" not in os.environ:
            mlflow.set_tracking_uri((Path(run_dir) / "mlruns").resolve().as_uri())
        self.run = mlflow.start_run(run_name=name)
        mlflow.log_params({k: str(v)[:250] for k, v in flatten(config).items()})

    def log_scalars(self, step: int, values: dict) -> None:
        self.mlflow.log_metrics(values, step=step)

    def log_image(self, tag: str, step: int, image: np.ndarray) -> None:
        self.mlflow.log_image(image, f"{tag.replace('/', '_')}_{step:04d}.png")

    def close(self) -> None:
        self.mlflow.end_run()


class Loggers:
    """Every configured logger at once; scalars that are None or not finite are left out."""

    def __init__(self, backends: list[str], run_dir: Path, name: str, config: dict, start_step: int = 0) -> None:
        unknown = [b for b in backends if b not in BACKENDS]
        if unknown:
            raise ConfigError(f"log.backends: unknown {unknown}; choose from {', '.join(BACKENDS)}")
        kinds = {"tensorboard": TensorBoardLogger, "wandb": WandbLogger, "mlflow": MlflowLogger}
        self.loggers = [kinds[b](run_dir, name, config, start_step) for b in backends]

    def log_scalars(self, step: int, values: dict) -> None:
        clean = {k: float(v) for k, v in values.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        for logger in self.loggers:
            logger.log_scalars(step, clean)

    def log_image(self, tag: str, step: int, image: np.ndarray) -> None:
        for logger in self.loggers:
            logger.log_image(tag, step, image)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()
