import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lookright.attention import create_extractor
from lookright.errors import AttentionError, ConfigError
from lookright.models import create_model


class TinyGAP(nn.Module):
    """conv -> GAP -> linear: CAM averages exactly to the logits minus the bias."""

    cam_layer = "conv"
    classifier = "fc"

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        return self.fc(self.conv(x).mean(dim=(2, 3)))


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return TinyGAP(), torch.randn(6, 3, 8, 8)


def test_cam_decomposes_logits(tiny):
    model, x = tiny
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    maps, logits = create_extractor("cam").with_logits(model, x, y)
    assert maps.shape == (6, 8, 8)
    torch.testing.assert_close(maps.mean(dim=(1, 2)), logits.gather(1, y[:, None])[:, 0] - model.fc.bias[y])


def test_cam_target_modes(tiny):
    model, x = tiny
    cam = create_extractor("cam")
    pred = model(x).argmax(1)
    torch.testing.assert_close(cam(model, x, None), cam(model, x, pred))
    torch.testing.assert_close(cam(model, x, 2), cam(model, x, torch.full((6,), 2)))
    with pytest.raises(AttentionError, match="3 entries for a batch of 6"):
        cam(model, x, torch.tensor([1, 2, 3]))


def test_gradcam_on_linear_head_is_relu_cam(tiny):
    model, x = tiny
    y = torch.arange(6) % 5
    grad = create_extractor("gradcam")(model, x, y)
    cam = create_extractor("cam")(model, x, y)
    torch.testing.assert_close(grad, F.relu(cam) / 64)  # alpha_k = W[c, k] / (h w)


def test_no_mode_side_effects_and_differentiability(tiny):
    model, x = tiny
    model.train()
    for name in ("cam", "gradcam", "input-gradients"):
        ext = create_extractor(name)
        detached = ext(model, x, 1)
        assert not detached.requires_grad
        live = ext(model, x, 1, differentiable=True)
        assert live.requires_grad and model.training
        (g,) = torch.autograd.grad(live.sum(), model.conv.weight)
        assert g.abs().sum() > 0
    model.eval()
    create_extractor("gradcam")(model, x, 1)
    assert not model.training


def test_gradcam_on_frozen_model(tiny):
    model, x = tiny
    for p in model.parameters():
        p.requires_grad_(False)
    maps = create_extractor("gradcam")(model, x, 0)
    assert maps.shape == (6, 8, 8) and maps.abs().sum() > 0


def test_input_gradients_match_autograd(tiny):
    model, x = tiny
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.log_softmax(model(xr), 1).sum(), xr)
    torch.testing.assert_close(create_extractor("input-gradients")(model, x), g.pow(2).sum(1))


def test_lenet_cam_grid_and_cdep_needs_gradcam():
    lenet = create_model("lenet")
    x = torch.randn(2, 3, 32, 32)
    assert create_extractor("cam")(lenet, x, 0).shape == (2, 10, 10)
    assert create_extractor("cam", post_relu=True)(lenet, x, 0).shape == (2, 10, 10)
    cdep = create_model("cdep-decoymnist")
    with pytest.raises(ConfigError, match="gradcam"):
        create_extractor("cam")(cdep, torch.randn(2, 1, 28, 28), 0)
    assert create_extractor("gradcam")(cdep, torch.randn(2, 1, 28, 28), 0).shape == (2, 8, 8)


def test_resnet18_cam():
    model = create_model("resnet18", num_classes=3, image_size=64).eval()
    maps = create_extractor("cam")(model, torch.randn(2, 3, 64, 64), 1)
    assert maps.shape == (2, 2, 2)


def test_unknown_layer_and_extractor(tiny):
    model, x = tiny
    with pytest.raises(ConfigError, match="no layer 'conv9'"):
        create_extractor("cam", layer="conv9")(model, x)
    with pytest.raises(ConfigError, match="unknown attention extractor"):
        create_extractor("lime")


def test_gradcam_first_order_same_map_cheaper_graph(tiny):
    model, x = tiny
    second = create_extractor("gradcam")(model, x, 1, differentiable=True)
    first = create_extractor("gradcam", second_order=False)(model, x, 1, differentiable=True)
    torch.testing.assert_close(first, second)
    # alpha = W[c] / (h w) depends on the classifier: only the second-order map reaches it
    g1 = torch.autograd.grad(first.sum(), model.fc.weight, allow_unused=True)[0]
    (g2,) = torch.autograd.grad(second.sum(), model.fc.weight)
    assert (g1 is None or g1.abs().sum() == 0) and g2.abs().sum() > 0
    (g1_conv,) = torch.autograd.grad(first.sum(), model.conv.weight)
    assert g1_conv.abs().sum() > 0


def test_create_extractor_from_passes_only_accepted_settings():
    from lookright.attention import create_extractor_from

    shared = {"layer": "conv", "post_relu": True, "second_order": False}
    cam = create_extractor_from("cam", shared)
    assert cam.layer == "conv" and cam.post_relu is True
    grad = create_extractor_from("gradcam", shared)
    assert grad.layer == "conv" and grad.second_order is False
    assert create_extractor_from("input-gradients", shared).target == "all"
