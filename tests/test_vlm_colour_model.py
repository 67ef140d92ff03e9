"""Colour in the VLM teacher: the colour-model stage (masks carved to the pixels whose colour is the
object's) and the ``seed-value`` view (the CLIP sees brightness, the pixel stages colours)."""

from __future__ import annotations

import torch

from lookright.vlm.colour_model import ColourModelSettings, colour_bins, colour_carve
from lookright.vlm.teacher import VLMSettings, VLMTeacher

ON = ColourModelSettings(enabled=True)


def _stroke_image(colour=(0.9, 0.8, 0.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """A coloured 'L' stroke on black ``(1, 3, 28, 28)`` and its mask."""
    stroke = torch.zeros(28, 28)
    stroke[5:23, 9:12] = 1
    stroke[20:23, 9:20] = 1
    return stroke * torch.tensor(colour).view(3, 1, 1), stroke


def test_colour_bins_count_levels_per_channel():
    x = torch.tensor([[0.0, 0.0, 0.0], [0.99, 0.0, 0.0], [0.0, 0.99, 0.0], [1.0, 1.0, 1.0]]).T.view(1, 3, 1, 4)
    assert colour_bins(x, 8).tolist() == [[0, 7, 56, 511]]


def test_a_blob_around_a_stroke_is_carved_to_the_stroke():
    image, stroke = _stroke_image()
    blob = torch.zeros(28, 28)
    blob[2:26, 5:24] = 1  # the stroke and the black around and between its arms
    carved = colour_carve(image[None], blob[None], ON)[0]
    assert torch.equal(carved, stroke)


def test_an_object_whose_colour_also_lies_in_the_background_keeps_its_mask():
    """A white stroke on a grating whose bright bars share its colour: the stroke's colour is more
    typical of the mask than of the background, so a right mask is left whole."""
    _, stroke = _stroke_image()
    grating = (torch.arange(28) % 4 == 0).float().view(1, 28).expand(28, 28)  # one bright column in four
    image = torch.maximum(grating * 0.95, stroke).expand(3, 28, 28)
    carved = colour_carve(image[None], stroke[None], ON)[0]
    assert torch.equal(carved, stroke)


def test_the_stage_only_removes_and_leaves_undefined_cases_alone():
    image, stroke = _stroke_image()
    gen = torch.Generator().manual_seed(0)
    noisy = (torch.rand(4, 28, 28, generator=gen) < 0.4).float()
    images = image.expand(4, 3, 28, 28)
    carved = colour_carve(images, noisy, ON)
    assert bool((carved <= noisy).all())
    empty, full = torch.zeros(1, 28, 28), torch.ones(1, 28, 28)
    assert torch.equal(colour_carve(image[None], empty, ON), empty)
    assert torch.equal(colour_carve(image[None], full, ON), full)
    # a mask on the background only: every colour of it is the background's; carving would empty it
    background_only = torch.zeros(1, 28, 28)
    background_only[0, 0:3, 0:3] = 1
    assert torch.equal(colour_carve(image[None], background_only, ON), background_only)


def test_grow_extends_a_mask_on_one_arm_to_the_connected_stroke_only():
    """A mask on the upright of a coloured 'L' (and some black around it) reaches the foot, which
    shares its colour and touches it; a separate stroke of the same colour stays out."""
    image, stroke = _stroke_image()
    apart = torch.zeros(28, 28)
    apart[2:6, 22:26] = 1  # a square of the stroke's colour, not touching it
    image = torch.maximum(image, apart * torch.tensor([0.9, 0.8, 0.0]).view(3, 1, 1))
    upright = torch.zeros(28, 28)
    upright[4:18, 8:13] = 1
    grow = ColourModelSettings(enabled=True, grow=True)
    assert torch.equal(colour_carve(image[None], upright[None], ON)[0], stroke * upright)  # without: carved only
    assert torch.equal(colour_carve(image[None], upright[None], grow)[0], stroke)
    background_only = torch.zeros(1, 28, 28)
    background_only[0, 0:3, 0:3] = 1  # on black, which is about as common outside it: the margin stops growth
    assert torch.equal(colour_carve(image[None], background_only, grow), background_only)
    settings = VLMSettings(path="unused", colour_model={"enabled": True, "grow": True})
    assert settings.key_fields()["colour_model"]["grow"] is True


def test_the_teacher_carves_masks_and_soft_maps_and_keys_the_cache_only_when_on(monkeypatch):
    image, stroke = _stroke_image((0.1, 0.9, 0.7))
    blob = torch.zeros(1, 28, 28)
    blob[0, 2:26, 5:24] = 1
    settings = VLMSettings(path="unused", colour_model={"enabled": True})
    teacher = VLMTeacher(settings, clip=lambda: None)
    monkeypatch.setattr(teacher, "seeds", lambda images, labels: (blob * 0.8 + 0.1, torch.tensor([0.5])))
    soft, masks = teacher.soft_and_masks((image * 255).to(torch.uint8)[None], torch.tensor([0]))
    assert torch.equal(masks[0], stroke)
    assert float(soft[0][stroke == 0].max()) == 0.0 and float(soft[0][stroke == 1].min()) > 0.5
    assert settings.key_fields()["colour_model"] == {"enabled": True, "bins": 8, "iterations": 3}
    assert "colour_model" not in VLMSettings(path="unused").key_fields()


def test_seed_value_shows_the_clip_brightness_and_the_pixel_stages_colour(monkeypatch):
    import lookright.vlm.teacher as teacher_module

    image, stroke = _stroke_image((0.9, 0.1, 0.0))
    seen = {}

    def fake_dense_map(method, clip, x, prompts, labels, **options):
        seen["clip"] = x.clone()
        return torch.nn.functional.adaptive_avg_pool2d(x.amax(dim=1, keepdim=True), 7)[:, 0]

    monkeypatch.setattr(teacher_module, "dense_map", fake_dense_map)
    real_carve = teacher_module.colour_carve

    def recorded_carve(x, masks, settings):
        seen["carve"] = x.clone()
        return real_carve(x, masks, settings)

    monkeypatch.setattr(teacher_module, "colour_carve", recorded_carve)
    x = (image * 255).to(torch.uint8)[None]
    for colour, clip_grey in (("seed-value", True), ("value", True), ("rgb", False)):
        seen.clear()
        settings = VLMSettings(path="unused", colour=colour, colour_model={"enabled": True})
        VLMTeacher(settings, clip=lambda: None).soft_and_masks(x, torch.tensor([0]))
        clip_view, carve_view = seen["clip"][0], seen["carve"][0]
        assert torch.equal(clip_view[0], clip_view[1]) == clip_grey, colour
        assert torch.equal(carve_view[0], carve_view[1]) == (colour == "value"), colour
    assert torch.allclose(seen["carve"][0, 0], image[0], atol=1 / 255)  # rgb: the colours themselves
    assert VLMSettings(path="unused", colour="seed-value").key_fields()["colour"] == "seed-value"
