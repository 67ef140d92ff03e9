"""Every metric of one trained model on one split, in a single batched pass.

* Localisation and shortcut mass use the map of the **true class** against the ground-truth
  mask (the digit) and against the shortcut region.
* Faithfulness uses the map of the **predicted class** and tracks that class's probability
  (explaining the decision the model made).
* Random choices (random-pixel removal, ROAD noise) come from a generator seeded by ``seed``.
"""

from __future__ import annotations

import numpy as np
import torch

from lookright.metrics.faithfulness import faithfulness, normalised_auc, perturbation_curve, removal_effect, road
from lookright.metrics.localisation import LocalisationAccumulator, MetricAccumulator, energy_pointing_game


def _mean(t: torch.Tensor) -> list[float]:
    """Mean over images of a ``(B, K)`` tensor, as a list of K floats."""
    return t.double().mean(dim=0).tolist()


def attention_suite(model, x, y, mask, shortcut, extractor, settings, batch_size: int = 2000, seed: int = 0) -> dict:
    """All attention metrics of ``model`` (in eval mode) on inputs ``x`` with labels ``y``.

    ``settings`` is an :class:`~lookright.train.config.EvalConfig`. Returns a JSON-ready dict and,
    under the key ``"_per_image"``, arrays the caller may store (the first images' true-class maps).
    """
    s = settings
    n = len(y) if s.max_images is None else min(s.max_images, len(y))
    x, y, mask, shortcut = x[:n], y[:n], mask[:n], shortcut[:n]
    options = {"pointing_game": {"tolerance": s.pointing_tolerance}, "iou": {"threshold": s.iou_threshold},
               "top_k_intersection": {"k": s.top_k}}
    local = LocalisationAccumulator(options=options)
    on_shortcut = MetricAccumulator(energy_pointing_game)
    gen = torch.Generator().manual_seed(seed)
    curves = {"deletion": [], "insertion": []}
    removal, road_parts = [], {"morf": [], "lerf": []}
    example_maps = []
    common = {"substrate": s.substrate, "blur_sigma": s.blur_sigma, "batch_size": batch_size}
    for i in range(0, n, batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        maps_label = extractor(model, xb, yb)
        local.update(maps_label, mask[i : i + batch_size])
        on_shortcut.update(maps_label, shortcut[i : i + batch_size])
        maps_pred, logits = extractor.with_logits(model, xb, None)  # the predicted class's map
        pred = logits.argmax(1)
        if sum(len(m) for m in example_maps) < s.example_images:
            example_maps.append(maps_label[: s.example_images].cpu())
        for mode in curves:
            curves[mode].append(perturbation_curve(model, xb, maps_pred, pred, mode=mode, steps=s.steps, **common).cpu())
        removal.append({k: v.cpu() for k, v in removal_effect(
            model, xb, maps_pred, pred, s.removal_fractions, generator=gen, **common).items()})
        road_n = min(len(xb), max(0, (s.road_max_images or n) - i))
        for order in road_parts if road_n else ():
            road_parts[order].append({k: v.cpu() for k, v in road(
                model, xb[:road_n], maps_pred[:road_n], pred[:road_n], s.road_fractions, order, s.road_noise, gen,
                batch_size).items()})

    curve = {mode: torch.cat(parts) for mode, parts in curves.items()}
    rem = {k: torch.cat([r[k] for r in removal]) for k in removal[0]}
    rd = {order: {k: torch.cat([r[k] for r in parts]) for k in parts[0]} for order, parts in road_parts.items()}
    clean = rem["prob_clean"][:, None]
    fractions = list(s.removal_fractions)
    out = {
        "images": n,
        "localisation": {"target": "true class", "against": "ground-truth mask", **local.compute()},
        "shortcut_mass": {"target": "true class", **on_shortcut.compute()},
        "faithfulness": {
            "target": "predicted class", "substrate": s.substrate,
            **({"blur_sigma": s.blur_sigma} if s.substrate == "blur" else {}),
            "deletion": {"auc": normalised_auc(curve["deletion"]).mean().item(),
                         "curve": _mean(curve["deletion"]), "steps": s.steps},
            "insertion": {"auc": normalised_auc(curve["insertion"]).mean().item(),
                          "curve": _mean(curve["insertion"]), "steps": s.steps},
            "removal": {
                "fractions": fractions,
                "prob_drop_top": _mean(clean - rem["prob_top"]),
                "prob_drop_random": _mean(clean - rem["prob_random"]),
                "faithfulness": faithfulness(_mean(clean - rem["prob_top"]), _mean(clean - rem["prob_random"])),
                "flip_top": _mean(rem["flip_top"]), "flip_random": _mean(rem["flip_random"]),
            },
            "road": {
                "fractions": list(s.road_fractions), "noise_std": s.road_noise, "images": len(rd["morf"]["prob"]),
                "morf_acc": _mean(rd["morf"]["correct"]), "lerf_acc": _mean(rd["lerf"]["correct"]),
                "morf_prob": _mean(rd["morf"]["prob"]), "lerf_prob": _mean(rd["lerf"]["prob"]),
            },
        },
    }
    out["_per_image"] = {
        "maps": torch.cat(example_maps)[: s.example_images].float().numpy() if example_maps else np.zeros((0, 1, 1)),
    }
    return out
