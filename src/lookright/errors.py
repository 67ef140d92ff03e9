"""Errors that tell the user what was wrong and how to fix it."""


class LookrightError(Exception):
    """Base class of every error lookright raises on purpose."""


class DataError(LookrightError):
    """A data file is missing, corrupt or of the wrong shape."""


class ConfigError(LookrightError):
    """A configuration value or a registry name is invalid."""


class MaskError(LookrightError):
    """A mask does not fit the attention map or image it is used with."""


class AttentionError(LookrightError):
    """An attention map is invalid (NaN/Inf) or cannot be extracted."""


class CheckpointError(LookrightError):
    """A run folder holds no usable checkpoint."""


class RunError(LookrightError):
    """A run folder cannot be used as asked (another config, finished, locked, damaged)."""


class TrainingDiverged(LookrightError):
    """The loss became NaN or infinite."""
