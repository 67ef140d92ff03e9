import pytest
import torch

from lookright.errors import ConfigError, MaskError
from lookright.targets import LEARNING_TO_LOOK_CONTOUR, MaskPipeline, MaskTeacher, build_targets
from lookright.targets.morphology import brighten, dilate, erode, gradient, resize


def point(size=15):
    m = torch.zeros(1, size, size)
    m[0, size // 2, size // 2] = 1
    return m


def test_dilate_makes_a_rectangle():
    d = dilate(point(), 7)
    assert d.sum() == 49 and d[0, 4:11, 4:11].min() == 1
    assert dilate(point(), 4).sum() == 16


def test_erode_and_gradient_ring():
    square = dilate(point(), 5)
    assert erode(square, 3).sum() == 9
    ring = gradient(square, 3)
    # dilate(5x5,3)=7x7 minus erode=3x3 -> 40 pixels
    assert ring.sum() == 49 - 9 and ring[0, 7, 7] == 0


def test_brighten_and_resize():
    torch.testing.assert_close(brighten(torch.tensor([[[0.05, 0.5]]]), 8), torch.tensor([[[0.4, 1.0]]]))
    assert resize(torch.ones(2, 28, 28), (10, 10)).shape == (2, 10, 10)


def test_learning_to_look_pipeline():
    mask = torch.zeros(2, 28, 28)
    mask[:, 10:18, 12:16] = 0.9
    out = MaskPipeline(LEARNING_TO_LOOK_CONTOUR)(mask, grid=(10, 10))
    assert out.shape == (2, 10, 10) and set(out.unique().tolist()) <= {0.0, 1.0}
    full = MaskPipeline(LEARNING_TO_LOOK_CONTOUR[:-1])(mask)
    assert full[0, 14, 14] == 0 and full[0, 10 - 3, 14] == 1  # ring outside the dilated digit, hollow inside


def test_pipeline_errors():
    with pytest.raises(ConfigError, match="unknown morphology op"):
        MaskPipeline([{"op": "sharpen"}])
    with pytest.raises(ConfigError, match="unknown keys"):
        MaskPipeline([{"op": "dilate", "size": 3, "radius": 2}])
    with pytest.raises(ConfigError, match="positive integer"):
        MaskPipeline([{"op": "dilate", "size": 0}])
    with pytest.raises(ConfigError, match="attention grid"):
        MaskPipeline([{"op": "resize"}])(torch.zeros(1, 4, 4))
    with pytest.raises(MaskError, match=r"\(B, H, W\)"):
        MaskPipeline([])(torch.zeros(4, 4))


def test_teacher_and_targets():
    masks = torch.zeros(5, 8, 8)
    masks[3, 2:4, 2:4] = 1
    teacher = MaskTeacher(masks)
    images = torch.zeros(5, 3, 8, 8)
    out = build_targets(teacher, images, MaskPipeline([{"op": "resize", "size": "attention"}]), (4, 4), batch_size=2)
    assert out.shape == (5, 4, 4) and out[3].sum() == 1 and out[0].sum() == 0
    with pytest.raises(MaskError, match="does not match image size"):
        teacher(torch.zeros(2, 3, 9, 9), torch.tensor([0, 1]))
