"""Attention targets: teachers and mask post-processing (the VLM teacher lives with the VLM code)."""

from lookright.targets.morphology import LEARNING_TO_LOOK_CONTOUR, LEARNING_TO_LOOK_OFFICIAL, MaskPipeline
from lookright.targets.teacher import TEACHERS, MaskTeacher, Teacher, build_targets

__all__ = ["LEARNING_TO_LOOK_CONTOUR", "LEARNING_TO_LOOK_OFFICIAL", "MaskPipeline", "MaskTeacher", "TEACHERS", "Teacher", "build_targets"]
