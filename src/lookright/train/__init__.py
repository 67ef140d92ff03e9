"""Training: config, the two-phase trainer, schedules, checkpoints."""

from lookright.train.config import RunConfig, load_config
from lookright.train.trainer import train

__all__ = ["RunConfig", "load_config", "train"]
