import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lookright.attention import create_extractor
from lookright.errors import ConfigError, MaskError
from lookright.losses import create_loss
from lookright.losses.cdep import _affine, _maxpool, _relu, contextual_decomposition
from lookright.models.cdep import CDEPNet
from lookright.models.lenet import LeNetGAP


def lenet():
    torch.manual_seed(0)
    return LeNetGAP(num_classes=10, in_channels=3), torch.randn(4, 3, 32, 32)


def cdepnet():
    torch.manual_seed(0)
    return CDEPNet(in_channels=1, num_classes=10), torch.randn(4, 1, 28, 28)


MODELS = [lenet, cdepnet]


def digit_mask(x):
    m = torch.zeros(x.shape[0], *x.shape[-2:])
    m[:, 6:-6, 6:-6] = 1
    return m


@pytest.mark.parametrize("build", MODELS)
@pytest.mark.parametrize("training", [False, True])
def test_cd_is_complete(build, training):
    model, x = build()
    model.train(training)
    region = (torch.rand(x.shape[0], *x.shape[-2:]) > 0.5).float()
    part, rest = contextual_decomposition(model, x, region)
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(part + rest, expected, atol=1e-4)
    logits, _ = create_loss("cdep").model_loss(model, x, torch.zeros(4, dtype=torch.long), digit_mask(x))
    assert torch.allclose(logits, expected, atol=1e-4)
    assert model.training is training


def test_cd_rules_hand_computed():
    layer = nn.Linear(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
        layer.bias.copy_(torch.tensor([3.0, 2.0]))
    p, r = _affine(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, -2.0]]), layer)
    # W p = (1, 0), W r = (-2, 0): bias 3 split 1/3 : 2/3; bias 2 halved where both parts vanish
    assert torch.allclose(p, torch.tensor([[2.0, 1.0]]), atol=1e-6)
    assert torch.allclose(r, torch.tensor([[0.0, 1.0]]), atol=1e-6)
    p, r = _relu(torch.tensor([2.0, -1.0, 1.0]), torch.tensor([-3.0, 2.0, 1.0]))
    assert torch.equal(p, torch.tensor([2.0, 0.0, 1.0])) and torch.equal(r, torch.tensor([-2.0, 1.0, 1.0]))
    part = torch.tensor([[[[5.0, 0.0], [0.0, 0.0]]]])
    rest = torch.tensor([[[[-4.0, 2.0], [0.0, 0.0]]]])
    p, r = _maxpool(part, rest, 2)  # totals 1, 2, 0, 0: both streams taken where the total is largest
    assert p.item() == 0.0 and r.item() == 2.0


@pytest.mark.parametrize("build", MODELS)
def test_cd_whole_image_region_takes_everything(build):
    model, x = build()
    ones = torch.ones(x.shape[0], *x.shape[-2:])
    part, rest = contextual_decomposition(model, x, ones)
    assert torch.allclose(part + rest, model(x), atol=1e-4)
    # the rest stream only ever holds bias shares (where both streams' linear parts vanish)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.bias.zero_()
    part, rest = contextual_decomposition(model, x, ones)
    assert torch.equal(rest, torch.zeros_like(rest))
    assert torch.allclose(part, model(x), atol=1e-5)
    part, rest = contextual_decomposition(model, x, torch.zeros_like(ones))
    assert torch.equal(part, torch.zeros_like(part))


@pytest.mark.parametrize("build", MODELS)
def test_cdep_loss_is_the_blob_share_and_trains_the_model(build):
    model, x = build()
    mask = digit_mask(x)
    loss_fn = create_loss("cdep")
    assert loss_fn.needs_model
    logits, (loss, valid) = loss_fn.model_loss(model, x, torch.zeros(4, dtype=torch.long), mask)
    blob, rest = contextual_decomposition(model, x, 1 - mask)
    share = torch.softmax(torch.stack((blob, rest), dim=-1), dim=-1)[..., 0].mean()
    assert loss.item() == pytest.approx(share.item(), abs=1e-6)
    assert 0 < loss.item() < 1 and valid == 4
    (loss + F.cross_entropy(logits, torch.arange(4))).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.conv1.weight.grad.abs().sum() > 0


def test_cdep_training_lowers_the_blob_share():
    model, x = cdepnet()
    mask = digit_mask(x)
    loss_fn = create_loss("cdep")
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    first = loss_fn.model_loss(model, x, None, mask)[1].loss.item()
    for _ in range(10):
        opt.zero_grad()
        loss_fn.model_loss(model, x, None, mask)[1].loss.backward()
        opt.step()
    assert loss_fn.model_loss(model, x, None, mask)[1].loss.item() < first


def test_cdep_skips_empty_and_full_masks():
    model, x = lenet()
    loss_fn = create_loss("cdep")
    mask = digit_mask(x)
    mask[0] = 0
    mask[1] = 1
    _, (loss, valid) = loss_fn.model_loss(model, x, None, mask)
    assert valid == 2
    _, (kept, _) = loss_fn.model_loss(model, x[2:], None, mask[2:])
    assert loss.item() == pytest.approx(kept.item(), abs=1e-6)
    mask[2:] = 0
    logits, (loss, valid) = loss_fn.model_loss(model, x, None, mask)
    assert valid == 0 and loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.isfinite(logits).all()


def test_cdep_refuses_maps_bad_masks_and_other_models():
    model, x = lenet()
    loss_fn = create_loss("cdep")
    with pytest.raises(ConfigError, match="model"):
        loss_fn(torch.rand(2, 8, 8), torch.ones(2, 8, 8))
    with pytest.raises(MaskError):
        loss_fn.model_loss(model, x, None, torch.ones(4, 16, 16))
    other = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(10))
    with pytest.raises(ConfigError, match="LeNetGAP"):
        loss_fn.model_loss(other, x, None, digit_mask(x))
    model.drop = nn.Dropout()
    with pytest.raises(ConfigError, match="drop"):
        loss_fn.model_loss(model, x, None, digit_mask(x))


def test_cd_reads_layer_sizes_from_the_modules():
    torch.manual_seed(0)
    model = CDEPNet(in_channels=1, num_classes=3)
    model.fc1, model.fc2 = nn.Linear(800, 32), nn.Linear(32, 3)
    x = torch.randn(2, 1, 28, 28)
    part, rest = contextual_decomposition(model, x, digit_mask(x))
    assert torch.allclose(part + rest, model(x), atol=1e-4)


@pytest.mark.parametrize("build", MODELS)
@pytest.mark.parametrize("target", ["class", "all"])
def test_eg_maps(build, target):
    model, x = build()
    model.train()
    eg = create_extractor("expected-gradients", samples=2, target=target)
    maps, logits = eg.with_logits(model, x, torch.arange(4))
    assert maps.shape == (4, *x.shape[-2:]) and torch.isfinite(maps).all() and (maps >= 0).all()
    assert maps.sum() > 0 and not maps.requires_grad
    assert torch.allclose(logits, model(x), atol=1e-6)
    assert model.training
    torch.manual_seed(1)
    again = eg(model, x, torch.arange(4))
    torch.manual_seed(1)
    assert torch.equal(again, eg(model, x, torch.arange(4)))
    seeded = [create_extractor("expected-gradients", seed=3)(model, x) for _ in range(2)]
    assert torch.equal(*seeded)


def test_eg_references_are_other_images():
    eg = create_extractor("expected-gradients", samples=50)
    refs, alpha = eg._draw(5)
    assert (refs != torch.arange(5)).all() and (0 <= alpha).all() and (alpha <= 1).all()
    assert sorted(refs[0].tolist()) == list(range(5))


def test_eg_completeness_in_expectation():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 3))
    x = torch.randn(4, 2, 2, 2)
    eg = create_extractor("expected-gradients", samples=4000, seed=0)
    target = torch.tensor([0, 1, 2, 0])
    attr, _ = eg.attributions(model, x, target)
    with torch.no_grad():
        g = F.log_softmax(model(x), dim=1)  # g[j, t_i]: image j scored for image i's class
    expected = torch.stack([g[i, target[i]] - g[torch.arange(4) != i, target[i]].mean() for i in range(4)])
    assert torch.allclose(attr.sum(dim=(1, 2, 3)), expected, atol=0.04)  # alpha = 1 instead is off by 0.17


def test_eg_differentiable_trains_the_model():
    model, x = cdepnet()
    model.eval()
    maps, logits = create_extractor("expected-gradients").with_logits(model, x, differentiable=True)
    assert maps.requires_grad and logits.requires_grad
    (maps.sum() + logits.sum()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.conv1.weight.grad.abs().sum() > 0 and not model.training


def test_eg_single_image_and_bad_options():
    model, x = lenet()
    maps = create_extractor("expected-gradients")(model, x[:1])
    assert maps.shape == (1, 32, 32) and torch.isfinite(maps).all()
    with pytest.raises(ConfigError):
        create_extractor("expected-gradients", target="bogus")
    with pytest.raises(ConfigError):
        create_extractor("expected-gradients", samples=0)
