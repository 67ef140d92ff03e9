"""The ``region`` pretraining objective: side-by-side composites and the term that scores each side
by its own patches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lookright.vlm.composites import side_by_side
from lookright.vlm.objectives import region_term


def _solid(channels: list[int], size: int = 28, c: int = 4) -> torch.Tensor:
    """Normalised images (black -1) filled with +1 in one channel each."""
    x = -torch.ones(len(channels), c, size, size)
    for i, ch in enumerate(channels):
        x[i, ch] = 1.0
    return x


def test_composites_put_each_image_in_its_side_and_keep_the_middle_black():
    left, right = _solid([0, 1]), _solid([2, 3])
    gen = torch.Generator().manual_seed(0)
    canvas, regions, blank = side_by_side(left, right, patch_size=4, p_empty=0.0, fill=-1.0, generator=gen)
    assert not blank.any()
    # 7 x 7 grid: sides are patch columns 0-2 and 4-6 (12 px each), the middle column is black
    assert regions.shape == (2, 49) and regions.sum(dim=1).tolist() == [21, 21] and not (regions[0] & regions[1]).any()
    cols = torch.arange(7).repeat(7)
    assert regions[0].equal(cols < 3) and regions[1].equal(cols > 3)
    for i, (a, b) in enumerate(((0, 2), (1, 3))):
        lit = canvas[i] > 0  # (C, S, S)
        assert lit[a, :, :12].sum() == 144 and lit[a, :, 12:].sum() == 0  # a 12 x 12 square on the left
        assert lit[b, :, 16:].sum() == 144 and lit[b, :, :16].sum() == 0
        assert (canvas[i, :, :, 12:16] == -1).all()
    empty, _, blank = side_by_side(left, right, patch_size=4, p_empty=1.0, fill=-1.0)
    assert blank.all() and (empty == -1).all()
    with pytest.raises(ValueError, match="no room for two sides"):
        side_by_side(left[:, :, :4, :4], right[:, :, :4, :4], patch_size=4)


class PatchColours:
    """A stand-in CLIP whose patch embedding is the patch's mean colour plus a 'black' unit:
    it encodes exactly what lies in each patch (``mirror`` swaps left and right)."""

    patch_size, mean, std = 4, (0.5,) * 4, (0.5,) * 4

    def __init__(self, mirror: bool = False):
        self.mirror = mirror

    def tokens(self, pixels):
        x = pixels.flip(-1) if self.mirror else pixels
        colour = F.avg_pool2d(x + 1, 4).flatten(2).transpose(1, 2)  # (B, P, C) in [0, 2]
        features = torch.cat([colour, (colour.sum(dim=-1, keepdim=True) == 0).float()], dim=-1)
        return torch.cat([torch.zeros_like(features[:, :1]), features], dim=1)  # a class token first

    def value_path(self, tokens):
        return tokens

    def head(self, tokens):
        return tokens


def test_the_region_term_rewards_patches_that_encode_what_lies_on_their_side():
    torch.manual_seed(0)
    pixels = _solid([0, 1, 2, 3])  # composites: (0 | 2) and (1 | 3)
    texts = torch.eye(5)[:4]  # caption i names channel i
    background = torch.eye(5)[4]
    empty = torch.zeros(4, dtype=torch.bool)
    scale = torch.tensor(10.0)
    local = region_term(PatchColours(), pixels, texts, background, empty, scale, tau=0.1, p_empty=0.0)
    swapped = region_term(PatchColours(mirror=True), pixels, texts, background, empty, scale, tau=0.1, p_empty=0.0)
    assert local < 0.01 < 1.0 < swapped
    # empty sides: every patch there must pick the background
    torch.manual_seed(0)
    blank_local = region_term(PatchColours(), pixels, texts, background, empty, scale, tau=0.1, p_empty=1.0)
    assert blank_local < 1e-3
    # an all-black (background-captioned) source image counts as an empty side
    torch.manual_seed(0)
    wrong = region_term(PatchColours(), pixels, texts, background, torch.tensor([True, True, True, True]), scale,
                        tau=0.1, p_empty=0.0)
    assert wrong > 1.0  # the colour patches there do not look like background


def test_region_pretraining_records_its_term(tmp_path):
    from lookright.vlm.small_clip import pretrain_clip

    record = pretrain_clip(tmp_path / "region", corpus="shapes", epochs=1, batch_size=64, n_shapes=256, progress=False,
                           width=32, layers=1, heads=2, embed_dim=16, objective="region", p_empty=0.5)
    part = record["history"][0]
    assert record["objective"] == "region" and record["p_empty"] == 0.5
    assert set(part) == {"epoch", "loss", "cls", "region"} and part["region"] > 0
    assert part["loss"] == pytest.approx(part["cls"] + part["region"])


def test_shift_averaging_resolves_detail_finer_than_a_patch():
    from lookright.vlm.postprocess import shift_averaged

    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 13, 9] = 1.0  # one bright pixel
    patch_means = lambda x: F.avg_pool2d(x[:, 0:1], 4)[:, 0]  # noqa: E731  a map on the 7 x 7 grid
    once = shift_averaged(patch_means, image, grid=7, shifts=1)
    assert once.shape == (1, 28, 28) and (once[0, 12:16, 8:12] > 0.999).all()  # the whole patch lights up
    fine = shift_averaged(patch_means, image, grid=7, shifts=4)
    peak = divmod(int(fine[0].argmax()), 28)
    assert peak == (13, 9) and fine[0, 13, 9] > 0.999  # only the pixel itself is in all 16 windows
    assert fine[0, 12, 8] < 0.9 and fine[0, 20:, :].max() == 0


def test_tinted_digits_are_coloured_independently_of_the_label():
    from lookright.vlm.corpus import mnist_captioned

    plain = mnist_captioned(600, 28, 0, 100, embedded=True)
    data = mnist_captioned(600, 28, 0, 100, embedded=True, tint=0.5)
    coloured = (np.ptp(data.images.max(axis=(2, 3)).astype(int), axis=1) > 40)
    assert 0.35 < coloured.mean() < 0.65 and not (np.ptp(plain.images.max(axis=(2, 3)).astype(int), axis=1) > 40).any()
    assert all("white" not in c for c, k in zip(data.captions, coloured) if k)
    # the dominant channel of a coloured digit says nothing about its label
    dominant = data.images[coloured].max(axis=(2, 3)).argmax(axis=1)
    labels = data.labels[coloured]
    assert len({int(d) for d in dominant[labels == 1]}) == 3


def test_seeded_components_drop_what_the_seed_never_lit():
    from lookright.vlm.components import connected_components, keep_seeded_components

    masks = torch.zeros(2, 12, 12)
    masks[:, 2:6, 2:6] = 1  # the object
    masks[:, 9:11, 9:11] = 1  # a bright decoy
    masks[:, 6, 6] = 1  # touches the object diagonally: the same component
    ids = connected_components(masks)
    assert ids[0, 6, 6] == ids[0, 2, 2] and ids[0, 9, 9] != ids[0, 2, 2] and (ids[masks == 0] == 0).all()
    seed = torch.zeros(2, 12, 12)
    seed[0, 1:7, 1:7] = 0.8
    seed[1] = 0.1  # image 1: the seed is weak everywhere
    seed[1, 9:11, 9:11] = 0.45  # mass 1.8 against the object's 1.7, mean below the threshold
    kept = keep_seeded_components(masks, seed, torch.tensor([0.5, 0.5]))
    assert kept[0].sum() == 17 and kept[0, 9:11, 9:11].sum() == 0
    # nothing reaches the threshold in image 1: the component of largest seed mass stays
    assert kept[1].sum() == 4 and kept[1, 9:11, 9:11].sum() == 4
    # largest: one object per image, even where another component reaches the threshold
    seed[0, 9:11, 9:11] = 0.9
    assert keep_seeded_components(masks, seed, torch.tensor([0.5, 0.5]))[0].sum() == 21
    largest = keep_seeded_components(masks, seed, torch.tensor([0.5, 0.5]), largest_only=True)
    assert largest[0].sum() == 17 and largest[1].sum() == 4


def test_decoder_dilations_are_its_convolutions_and_survive_storage():
    from lookright.vlm.decoder import MaskDecoder, from_state, state

    torch.manual_seed(0)
    x = torch.rand(2, 3, 28, 28)
    for dilations in ((1, 1, 1, 1), (1, 2, 4, 1), (3,)):
        decoder = MaskDecoder(3, 8, dilations)
        convs = [m for m in decoder.body if isinstance(m, torch.nn.Conv2d)]
        assert [c.dilation[0] for c in convs] == list(dilations) and decoder(x).shape == (2, 28, 28)
        again = from_state(state(decoder))
        assert again.dilations == dilations and torch.equal(again(x), decoder(x))
    legacy = state(MaskDecoder(3, 8))
    del legacy["dilations"]  # decoders stored before the setting existed
    assert from_state(legacy).dilations == (1, 2, 4, 1)
    with pytest.raises(ValueError, match="dilations must be >= 1"):
        MaskDecoder(3, 8, (1, 0))


def test_colour_mixing_keeps_a_class_whose_seeds_fail_from_teaching_its_colour_as_background():
    from lookright.vlm.decoder import DecoderSettings, fit_decoder, mix_colours

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 5, 5, generator=gen)
    mixed = mix_colours(x, gen)
    # each output channel is a convex combination of the input channels: within their per-pixel range
    assert (mixed <= x.amax(dim=1, keepdim=True) + 1e-6).all() and (mixed >= x.amin(dim=1, keepdim=True) - 1e-6).all()
    assert not torch.allclose(mixed, x) and torch.equal(mix_colours(x[:, :1], gen), x[:, :1])

    # red bars (class 0, seeds right) and blue bars (class 1, 1 in 10 images, seeds inverted): the colour follows
    # the class, as in a colour-shortcut benchmark
    n, size = 300, 16
    images = torch.zeros(n, 3, size, size, dtype=torch.uint8)
    stroke = torch.zeros(n, size, size, dtype=torch.bool)
    blue = torch.arange(n) % 10 == 0
    for i in range(n):
        r, c = int(torch.randint(2, 10, (1,), generator=gen)), int(torch.randint(2, 10, (1,), generator=gen))
        stroke[i, r:r + 4, c:c + 4] = True
        images[i, 2 if blue[i] else 0][stroke[i]] = 255
    soft = stroke.float().clone()
    soft[blue] = 1 - soft[blue]  # the seeds of the blue class light its background, not its bar

    def seeds(index):
        return soft[index], torch.full((len(index),), 0.5)

    def blue_stroke_probability(colour_mix: bool) -> float:
        settings = DecoderSettings(enabled=True, width=8, dilations=[1, 1], epochs=10, lr=1e-2, band=0.0,
                                   colour_mix=colour_mix)
        decoder, _ = fit_decoder(images, seeds, settings)
        with torch.no_grad():
            prob = torch.sigmoid(decoder(images[blue].float() / 255))
        return float(prob[stroke[blue]].mean())

    assert blue_stroke_probability(False) < 0.5 < blue_stroke_probability(True)


def test_the_boundary_prior_keeps_the_object_rather_than_a_frame_with_more_seed():
    from lookright.vlm.components import keep_seeded_components

    masks = torch.zeros(1, 16, 16)
    masks[0, :2], masks[0, -2:], masks[0, :, :2], masks[0, :, -2:] = 1, 1, 1, 1  # a frame: 112 pixels
    masks[0, 6:10, 6:10] = 1  # the object: 16 pixels, off the border
    seed = masks * 0.6
    seed[0, 6:10, 6:10] = 0.9  # mass: frame 67.2, object 14.4
    t = torch.tensor([0.5])
    by_mass = keep_seeded_components(masks, seed, t, largest_only=True)
    assert by_mass[0, 0].all() and by_mass[0, 6:10, 6:10].sum() == 0
    # the frame has 60 border pixels for 112 pixels (b = 5.7): exp(-b^2 / 2) ~ 1e-7
    prior = keep_seeded_components(masks, seed, t, largest_only=True, boundary_sigma=1.0)
    assert prior.sum() == 16 and prior[0, 6:10, 6:10].all()
    # a mask that is all border keeps it: a non-empty mask stays non-empty
    frame_only = masks.clone()
    frame_only[0, 6:10, 6:10] = 0
    assert keep_seeded_components(frame_only, seed, t, largest_only=True, boundary_sigma=1.0).sum() == 112
    # a corner patch touching the border loses to an object of less mass that does not
    masks = torch.zeros(1, 16, 16)
    masks[0, :4, :4] = 1
    masks[0, 8:12, 8:12] = 1
    seed = masks * 0.8
    seed[0, 8:12, 8:12] = 0.5
    assert keep_seeded_components(masks, seed, t, largest_only=True)[0, 0, 0] == 1
    assert keep_seeded_components(masks, seed, t, largest_only=True, boundary_sigma=1.0)[0, 0, 0] == 0


def test_filtered_pseudo_labels_teach_the_decoder_that_a_frame_is_background():
    from lookright.vlm.decoder import DecoderSettings
    from lookright.vlm.teacher import VLMSettings, VLMTeacher

    gen = torch.Generator().manual_seed(0)
    n, size = 200, 16
    lit = torch.zeros(n, size, size)
    lit[:, :2], lit[:, -2:], lit[:, :, :2], lit[:, :, -2:] = 1, 1, 1, 1  # a frame in every image
    frame = lit[0].bool()
    for i in range(n):  # and an object inside it, off the border
        r, c = (int(v) for v in torch.randint(4, 9, (2,), generator=gen))
        lit[i, r:r + 4, c:c + 4] = 1
    images = (lit[:, None].expand(n, 3, size, size) * 255).to(torch.uint8)

    def frame_probability(filter_labels: bool) -> float:
        decoder = DecoderSettings(enabled=True, width=8, dilations=[1, 1], epochs=8, lr=1e-2, band=0.0,
                                  filter_labels=filter_labels)
        settings = VLMSettings(foreground="a thing", decoder=decoder, components="largest", boundary_sigma=1.0,
                               cache_dir=None)
        teacher = VLMTeacher(settings, clip=lambda: None)  # the seeds below stand in for the CLIP's
        teacher.seeds = lambda x, labels: (0.9 * (x[:, 0] > 0).float(), torch.full((len(x),), 0.5))
        teacher.fit_decoder(images)
        with torch.no_grad():
            prob = torch.sigmoid(teacher.decoder(images.float() / 255))
        return float(prob[:, frame].mean())

    # the seed lights frame and object alike; the component filter (boundary prior) drops the frame
    assert frame_probability(True) < 0.5 < frame_probability(False)
    with pytest.raises(ValueError, match="component filter, which is off"):
        VLMSettings(components="all", decoder=DecoderSettings(filter_labels=True))
    with pytest.raises(ValueError, match="boundary_sigma"):
        VLMSettings(boundary_sigma=1.0)


def test_only_on_the_border_flags_masks_with_nothing_off_the_border():
    from lookright.vlm.components import only_on_the_border

    masks = torch.zeros(5, 16, 16)
    masks[0, 6:10, 6:10] = 1  # an object off the border
    masks[1] = 1 - masks[0]  # the background around it: 60 border pixels for 240 (b = 3.9)
    masks[2, :2] = 1  # a bar along the top edge: b = 16 / sqrt(32) = 2.8
    masks[3, 0:5, 0:5] = 1  # an object touching a corner: b = 9 / 5 = 1.8 ...
    masks[3, 8:12, 8:12] = 1  # ... but another component lies off the border
    assert only_on_the_border(masks, 1.0).tolist() == [False, True, True, False, False]  # empty: not flagged
    # a wider sigma forgives the corner object alone (weight exp(-1.8^2 / 8) = 0.67)
    assert only_on_the_border(masks[3:4, :, :] * (torch.arange(16) < 6).float(), 2.0).tolist() == [False]


def test_dropping_border_only_seeds_keeps_the_background_out_of_the_decoder():
    from lookright.vlm.decoder import DecoderSettings
    from lookright.vlm.teacher import TeacherWarning, VLMSettings, VLMTeacher

    gen = torch.Generator().manual_seed(0)
    n, size = 200, 16
    lit = torch.zeros(n, size, size)
    for i in range(n):  # one object per image, off the border
        r, c = (int(v) for v in torch.randint(3, 9, (2,), generator=gen))
        lit[i, r:r + 5, c:c + 5] = 1
    images = (lit[:, None].expand(n, 3, size, size) * 255).to(torch.uint8)
    failed = torch.arange(n) % 10 < 7  # on 70% of the images the seed lights the background instead

    def background_probability(drop_border: bool, failed: torch.Tensor = failed) -> tuple[float, dict]:
        decoder = DecoderSettings(enabled=True, width=8, dilations=[1, 1], epochs=8, lr=1e-2, band=0.0,
                                  filter_labels=True, drop_border=drop_border)
        settings = VLMSettings(foreground="a thing", decoder=decoder, components="largest", boundary_sigma=1.0,
                               cache_dir=None)
        teacher = VLMTeacher(settings, clip=lambda: None)  # the seeds below stand in for the CLIP's

        def seeds(x, labels):  # the labels say which images' seeds failed
            on = (x[:, 0] > 0).float()
            on = torch.where(labels.bool().view(-1, 1, 1), 1 - on, on)
            return 0.9 * on, torch.full((len(x),), 0.5)

        teacher.seeds = seeds
        record = teacher.fit_decoder(images, failed.long())
        with torch.no_grad():
            prob = torch.sigmoid(teacher.decoder(images.float() / 255))
        return float(prob[lit == 0].mean()), record

    dropped, record = background_probability(True)
    kept, _ = background_probability(False)
    assert dropped < 0.5 < kept
    assert record["border_only"] == int(failed.sum()) and not record["border_only_kept"]
    # seeds that light only the border everywhere: leaving them out would leave no label, so they stay, with a warning
    with pytest.warns(TeacherWarning, match="drop_border left them in"):
        _, record = background_probability(True, torch.ones(n, dtype=torch.bool))
    assert record["border_only"] == n and record["border_only_kept"]
    with pytest.raises(ValueError, match="drop_border judges"):
        VLMSettings(components="largest", decoder=DecoderSettings(drop_border=True))
