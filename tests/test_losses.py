import math

import pytest
import torch
import torch.nn.functional as F

from lookright.errors import AttentionError, ConfigError, MaskError
from lookright.losses import create_loss, minmax


def test_kl_hand_computed():
    att = torch.tensor([[[0.0, 1.0], [2.0, -1.0]]])
    target = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])
    a = torch.tensor([0.0, 0.5, 1.0, 0.0])
    p = torch.softmax(a, 0)
    expected = 0.5 * (math.log(0.5) - math.log(p[1])) + 0.5 * (math.log(0.5) - math.log(p[2]))
    assert create_loss("kl")(att, target).item() == pytest.approx(expected, rel=1e-5)


def test_kl_is_nonnegative_and_decreases_with_alignment():
    target = torch.zeros(1, 4, 4)
    target[0, :2] = 1
    aligned = target * 5.0
    wrong = (1 - target) * 5.0
    kl = create_loss("kl")
    assert 0 <= kl(aligned, target) < kl(wrong, target)


def test_empty_masks_are_skipped_and_counted():
    att = torch.randn(3, 4, 4, requires_grad=True)
    target = torch.zeros(3, 4, 4)
    target[1, 0, 0] = 1
    for name in ("kl", "camal", "camal-bce", "rrr"):
        loss = create_loss(name)
        value, valid = loss.evaluate(att, target)
        assert valid == 1 and torch.isfinite(value)
        torch.testing.assert_close(value, loss.per_image(att, target)[1])
        empty, valid = loss.evaluate(att, torch.zeros(3, 4, 4))
        assert valid == 0 and empty.item() == 0.0
        assert not hasattr(loss, "last_skipped")  # stateless
        empty.backward()  # a graph, no NaN
        assert torch.isfinite(att.grad).all()


def test_camal_energy():
    att = torch.tensor([[[3.0, 1.0], [-2.0, 0.0]]])
    target = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    assert create_loss("camal")(att, target).item() == pytest.approx(1 - 3 / 4, abs=1e-5)
    bce = F.binary_cross_entropy_with_logits(att, target)
    torch.testing.assert_close(create_loss("camal-bce")(att, target), bce)


def test_rrr_penalises_outside_only():
    grads = torch.ones(1, 3, 3)
    target = torch.zeros(1, 3, 3)
    target[0, 1, 1] = 1
    assert create_loss("rrr")(grads, target).item() == 8.0


def test_bad_inputs():
    kl = create_loss("kl")
    with pytest.raises(MaskError, match="same shape.*resize"):
        kl(torch.zeros(2, 10, 10), torch.ones(2, 28, 28))
    bad = torch.ones(2, 3, 3)
    bad[0, 0, 0] = float("nan")
    with pytest.raises(AttentionError, match="NaN"):
        kl(bad, torch.ones(2, 3, 3))
    with pytest.raises(ConfigError, match="unknown alignment loss 'mse'"):
        create_loss("mse")
    with pytest.raises(ConfigError, match="invalid options"):
        create_loss("kl", tau=2)


def test_minmax_range():
    m = minmax(torch.randn(4, 5, 5))
    assert m.amin().item() == pytest.approx(0.0, abs=1e-6) and m.amax().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("name", ["kl", "camal"])
def test_gradient_steps_lower_the_loss(name):
    torch.manual_seed(0)
    att = torch.randn(4, 6, 6, requires_grad=True)
    target = torch.zeros(4, 6, 6)
    target[:, 1:4, 2:5] = 1
    loss = create_loss(name)
    opt = torch.optim.SGD([att], lr=5.0)
    first = loss(att, target).item()
    for _ in range(100):
        opt.zero_grad()
        loss(att, target).backward()
        opt.step()
    assert loss(att, target).item() < first * 0.9


def test_kl_temperature_sharpens_the_attention_distribution():
    att = torch.tensor([[[0.0, 1.0], [2.0, -1.0]]])
    target = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]])
    a = torch.tensor([0.0, 0.5, 1.0, 0.0])
    expected = -math.log(torch.softmax(a / 0.1, 0)[2])
    assert create_loss("kl", temperature=0.1)(att, target).item() == pytest.approx(expected, rel=1e-5)
    assert create_loss("kl", temperature=0.1)(att, target) < create_loss("kl")(att, target)
    with pytest.raises(ConfigError, match="temperature"):
        create_loss("kl", temperature=0)
