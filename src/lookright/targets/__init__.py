"""Attention targets: teachers and mask post-processing."""

from lookright.targets.morphology import LEARNING_TO_LOOK_CONTOUR, LEARNING_TO_LOOK_OFFICIAL, MaskPipeline
from lookright.targets.teacher import TEACHERS, MaskTeacher, Teacher, build_targets
from lookright.targets import vlm  # noqa: F401,E402  (registers the "vlm" teacher)

__all__ = ["LEARNING_TO_LOOK_CONTOUR", "LEARNING_TO_LOOK_OFFICIAL", "MaskPipeline", "MaskTeacher", "TEACHERS", "Teacher", "build_targets"]
