"""Localisation, faithfulness and statistics: hand-computed cases and slow references."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

import reference_metrics as ref
from lookright.errors import AttentionError, ConfigError, LookrightError, MaskError
from lookright.metrics import (
    LocalisationAccumulator, describe, energy_pointing_game, iou, mcnemar, normalised_auc, paired_tests,
    perturbation_curve, pointing_game, relevance_mass_accuracy, relevance_rank_accuracy, removal_effect, road,
    roc_auc, top_k_intersection, wilson,
)
from lookright.metrics.imputation import noisy_linear_impute


def random_cases(seed=0, b=24, h=7, w=6):
    """Quantised attention (many ties), some all-zero maps, some empty and some full masks."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(-1, 4, (b, h, w), generator=g).float()
    a[0] = 0
    a[1] = 2.0
    m = torch.rand(b, h, w, generator=g) > 0.6
    m[2] = False
    m[3] = True
    return a, m


def check_against(fn, reference, **options):
    a, m = random_cases()
    values, defined = fn(a, m, **options)
    for i in range(len(a)):
        want = reference(a[i].numpy(), m[i].numpy(), **options)
        if want is None:
            assert not defined[i], f"image {i} should be undefined"
        else:
            assert defined[i], f"image {i} should be defined"
            assert values[i].item() == pytest.approx(want, abs=1e-6), f"image {i}"


@pytest.mark.parametrize("fn,reference,options", [
    (energy_pointing_game, ref.energy, {}),
    (relevance_mass_accuracy, ref.mass, {}),
    (relevance_rank_accuracy, ref.rank, {}),
    (top_k_intersection, ref.top_k, {"k": 5}),
    (pointing_game, ref.pointing, {}),
    (pointing_game, ref.pointing, {"tolerance": 1}),
    (pointing_game, ref.pointing, {"tolerance": 2.5}),
    (iou, ref.iou, {}),
    (iou, ref.iou, {"threshold": 0.25}),
    (roc_auc, ref.auc, {}),
])
def test_localisation_matches_slow_reference(fn, reference, options):
    check_against(fn, reference, **options)


def test_hand_computed_cases():
    a = torch.tensor([[[0.0, 1.0], [3.0, 0.0]]])
    m = torch.tensor([[[0, 1], [0, 0]]])
    assert energy_pointing_game(a, m)[0].item() == pytest.approx(0.25)
    assert pointing_game(a, m)[0].item() == 0.0
    assert pointing_game(a, m, tolerance=1.5)[0].item() == 1.0  # (1,0) is sqrt(2) from (0,1)
    assert relevance_rank_accuracy(a, m)[0].item() == 0.0  # the top pixel (1,0) is outside
    assert top_k_intersection(a, m, k=2)[0].item() == 0.5
    assert iou(a, m, threshold=0.3)[0].item() == pytest.approx(1 / 2)  # T = {1.0, 3.0}, M = {1.0}
    assert roc_auc(a, m)[0].item() == pytest.approx(2 / 3)  # 1.0 beats 0, 0, loses to 3
    signed = torch.tensor([[[2.0, -1.0], [1.0, 0.0]]])
    assert relevance_mass_accuracy(signed, torch.tensor([[[1, 0], [0, 0]]]))[0].item() == pytest.approx(1.0)
    assert energy_pointing_game(signed, torch.tensor([[[1, 0], [0, 0]]]))[0].item() == pytest.approx(2 / 3)


def test_attention_is_upsampled_to_the_mask():
    a = torch.rand(3, 2, 2)
    m = torch.rand(3, 8, 8) > 0.5
    up = F.interpolate(a[:, None], size=(8, 8), mode="bilinear", align_corners=False)[:, 0]
    assert torch.allclose(roc_auc(a, m)[0], roc_auc(up, m)[0])


def test_roc_auc_matches_scipy_mann_whitney():
    a, m = torch.randn(4, 10, 10), torch.rand(4, 10, 10) > 0.7
    values, _ = roc_auc(a, m)
    for i in range(4):
        pos, neg = a[i][m[i]].numpy(), a[i][~m[i]].numpy()
        u = stats.mannwhitneyu(pos, neg).statistic
        assert values[i].item() == pytest.approx(u / (len(pos) * len(neg)), abs=1e-6)


def test_accumulator_excludes_and_counts_undefined():
    a, m = random_cases()
    acc = LocalisationAccumulator()
    acc.update(a[:10], m[:10])
    acc.update(a[10:], m[10:])
    out = acc.compute()
    values, defined = energy_pointing_game(a, m)
    assert out["energy_pointing_game"]["mean"] == pytest.approx(values[defined].mean().item())
    assert out["energy_pointing_game"]["undefined"] == int((~defined).sum()) > 0
    assert all(np.isfinite(v["mean"]) for v in out.values())
    assert "relu" in out["energy_pointing_game"]["convention"]


def test_bad_inputs_are_rejected():
    with pytest.raises(MaskError, match="same batch size"):
        energy_pointing_game(torch.rand(2, 4, 4), torch.ones(3, 4, 4))
    with pytest.raises(MaskError, match=r"\(B, h, w\)"):
        iou(torch.rand(2, 1, 4, 4), torch.ones(2, 4, 4))
    with pytest.raises(AttentionError, match="NaN"):
        roc_auc(torch.tensor([[[float("nan"), 0.0]]]), torch.ones(1, 1, 2))
    with pytest.raises(AttentionError, match="NaN"):
        pointing_game(torch.tensor([[[float("inf"), 0.0]]]), torch.ones(1, 1, 2))
    with pytest.raises(MaskError, match="fraction"):
        top_k_intersection(torch.rand(1, 4, 4), torch.ones(1, 4, 4), k=100)
    with pytest.raises(MaskError, match="unknown localisation"):
        LocalisationAccumulator(["pointing"])


class PixelModel(nn.Module):
    """Logits linear in the pixels, so deleting pixels changes the probabilities smoothly."""

    def __init__(self, c=2, h=5, w=5, classes=3):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(c * h * w, classes)

    def forward(self, x):
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("mode", ["deletion", "insertion"])
def test_perturbation_curve_matches_reference(mode):
    model = PixelModel().eval()
    x = torch.randn(6, 2, 5, 5)
    a = torch.randint(0, 3, (6, 5, 5)).float()  # ties
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    curve = perturbation_curve(model, x, a, target, mode=mode, steps=7, batch_size=10)
    for i in range(6):
        want = ref.deletion_curve(model, x[i], a[i].numpy(), target[i].item(), 7, mode)
        assert curve[i].tolist() == pytest.approx(want, abs=1e-5)
    clean = torch.softmax(model(x), 1).gather(1, target[:, None])[:, 0]
    assert torch.allclose(curve[:, 0 if mode == "deletion" else -1], clean, atol=1e-6)


def test_normalised_auc_is_trapezoid_on_unit_interval():
    assert normalised_auc(torch.tensor([[1.0, 0.0]])).item() == pytest.approx(0.5)
    assert normalised_auc(torch.tensor([[1.0, 1.0, 1.0, 1.0]])).item() == pytest.approx(1.0)


def test_deleting_the_evidence_first_is_more_faithful_than_the_reverse():
    # the model reads only the top-left pixel: attention on it gives a steep deletion curve
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.zero_()
        model[1].weight[0, 0] = 10.0
        model[1].bias[1] = 1.0
    x = torch.ones(3, 1, 4, 4)
    good = torch.zeros(3, 4, 4)
    good[:, 0, 0] = 1
    bad = 1 - good
    target = torch.zeros(3, dtype=torch.long)
    auc_good = normalised_auc(perturbation_curve(model, x, good, target, steps=16))
    auc_bad = normalised_auc(perturbation_curve(model, x, bad, target, steps=16))
    assert (auc_good < auc_bad - 0.4).all()
    effect = removal_effect(model, x, good, target, fractions=(1 / 16,), generator=torch.Generator().manual_seed(0))
    assert effect["flip_top"].mean() == 1.0 and (effect["prob_top"] < 0.3).all()
    assert (effect["prob_random"] > 0.99).any()
    assert effect["prob_clean"].min() > 0.99


def test_removal_effect_random_pixels_are_seeded():
    model = PixelModel().eval()
    x, a, t = torch.randn(4, 2, 5, 5), torch.rand(4, 5, 5), torch.zeros(4, dtype=torch.long)
    one = removal_effect(model, x, a, t, generator=torch.Generator().manual_seed(3))
    two = removal_effect(model, x, a, t, generator=torch.Generator().manual_seed(3), batch_size=3)
    for key in one:
        assert torch.allclose(one[key], two[key])
    assert one["prob_top"].shape == (4, 4)


def test_imputation_solves_the_road_system():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 2, 6, 5, generator=g)
    removed = torch.rand(3, 6, 5, generator=g) > 0.5
    out = noisy_linear_impute(x, removed, noise_std=0.0)
    for i in range(3):
        for c in range(2):
            want = ref.linear_impute(x[i, c].double().numpy(), removed[i].numpy())
            assert np.allclose(out[i, c].numpy(), want, atol=1e-4)
    assert torch.equal(out[~removed[:, None].expand_as(x)], x[~removed[:, None].expand_as(x)])
    noisy = noisy_linear_impute(x, removed, noise_std=0.5, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(noisy, out)


def test_road_morf_hurts_more_than_lerf_when_attention_is_right():
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.zero_()
        model[1].weight[0, :6] = 3.0  # the first row is the evidence
    x = torch.zeros(4, 1, 6, 6)
    x[:, :, 0] = 1.0
    a = torch.zeros(4, 6, 6)
    a[:, 0] = 1
    t = torch.zeros(4, dtype=torch.long)
    morf = road(model, x, a, t, fractions=(0.2,), order="morf", noise_std=0.0)
    lerf = road(model, x, a, t, fractions=(0.2,), order="lerf", noise_std=0.0)
    assert (morf["prob"] < lerf["prob"]).all()
    with pytest.raises(ConfigError, match="morf"):
        road(model, x, a, t, order="up")


def test_describe_and_paired_tests():
    d = describe([1.0, 2.0, 3.0, 4.0, 5.0])
    assert d["mean"] == 3.0 and d["std"] == pytest.approx(np.std([1, 2, 3, 4, 5], ddof=1))
    half = stats.t.ppf(0.975, 4) * d["std"] / np.sqrt(5)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((3 - half, 3 + half))
    assert describe([None, 2.0])["n"] == 1
    p = paired_tests([1.0, 2.0, 3.0, 4.0, 6.0], [0.0, 1.5, 2.0, 2.0, 1.0])
    assert p["t_test_p"] == pytest.approx(stats.ttest_rel([1, 2, 3, 4, 6], [0, 1.5, 2, 2, 1]).pvalue)
    assert p["wilcoxon_p"] == pytest.approx(0.0625)  # all 5 differences positive: the exact minimum
    assert paired_tests([1.0, 2.0], [1.0, 2.0])["t_test_p"] == 1.0
    with pytest.raises(LookrightError, match="same seeds"):
        paired_tests([1.0, 2.0], [1.0])


def test_wilson_matches_known_values():
    # Wilson (1927) / Newcombe (1998) example: 81 of 263 -> (0.2553, 0.3662)
    low, high = wilson(81, 263)
    assert (low, high) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    ci = stats.binomtest(7, 20).proportion_ci(method="wilson")
    assert wilson(7, 20) == pytest.approx((ci.low, ci.high))
    assert wilson(0, 10)[0] == 0.0
    with pytest.raises(LookrightError, match="trials"):
        wilson(3, 0)


def test_mcnemar_exact():
    a = np.array([1] * 10 + [0] * 2 + [1] * 5, dtype=bool)
    b = np.array([0] * 10 + [1] * 2 + [1] * 5, dtype=bool)
    out = mcnemar(a, b)
    assert (out["only_a"], out["only_b"]) == (10, 2)
    assert out["p"] == pytest.approx(2 * sum(stats.binom.pmf(k, 12, 0.5) for k in range(0, 3)))
    assert mcnemar(a, a)["p"] == 1.0
