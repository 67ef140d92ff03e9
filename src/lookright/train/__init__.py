"""Training: config, the two-phase trainer, schedules, checkpoints."""

from lookright.train.config import RunConfig, load_config

__all__ = ["RunConfig", "load_config", "train"]


def __getattr__(name: str):
    """``train`` (the trainer, and torch with it) is imported on first use: configs validate without it."""
    if name == "train":
        from lookright.train.trainer import train

        return train
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
