"""``torchvision:<arch>``: any torchvision classification model, built with ``weights=None``.

Options: ``num_classes`` (10), ``image_size`` (default: the crop size of the architecture's
default weights' transforms, read from their metadata without downloading, else 224; passed
on to ViTs as their ``image_size``), ``mean`` / ``std`` (same source, else ImageNet's),
``weights`` (a local file), ``cam_layer``, ``classifier`` and any other keyword of the builder.
torchvision models take 3 channels: grey images are repeated.

The classifier is the last ``nn.Linear`` (``fc``, ``classifier.1``, ``heads.head``); CAM
applies when it reads the spatial mean of a map (:mod:`lookright.models.heads`), else Grad-CAM
uses the last map before the global pool. A VisionTransformer gets Grad-CAM on the input of
its last encoder layer (the output of ``encoder_layer_{N-2}``), for the reason given in
:mod:`lookright.models.timm_backbones`.
"""

from __future__ import annotations

from lookright.errors import ConfigError
from lookright.models.backbone import IMAGENET_MEAN, IMAGENET_STD, Options, finish, input_spec, refuse_download
from lookright.models.base import MODELS


def _defaults(arch: str) -> tuple[int, tuple, tuple]:
    """Crop size, mean and std of the architecture's default weights (metadata only)."""
    import torchvision

    try:
        transform = torchvision.models.get_model_weights(arch).DEFAULT.transforms()
        return int(transform.crop_size[0]), tuple(transform.mean), tuple(transform.std)
    except Exception:  # noqa: BLE001  (no weights enum, or transforms without these fields)
        return 224, IMAGENET_MEAN, IMAGENET_STD


@MODELS.register("torchvision:")
def torchvision_model(arch: str, num_classes: int = 10, image_size: int | None = None, mean=None, std=None,
                      weights: str | None = None, cam_layer: str | None = None, classifier: str | None = None,
                      pretrained: bool = False, **kwargs):
    import torchvision

    refuse_download(pretrained)
    if arch not in torchvision.models.list_models(module=torchvision.models):
        raise ConfigError(f"model.name: torchvision has no classification model {arch!r}")
    if "in_chans" in kwargs:
        raise ConfigError("model.options.in_chans: torchvision models take 3 channels (grey images are repeated)")
    size, default_mean, default_std = _defaults(arch)
    vit = arch.startswith("vit_")
    if vit and image_size:
        kwargs.setdefault("image_size", image_size)
    model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **kwargs)
    opts = Options(image_size, mean, std, weights, cam_layer, classifier)
    spec = input_spec(opts, 3, kwargs.get("image_size", size), default_mean, default_std)
    tokens, map_layer = None, None
    if vit:
        side = model.image_size // model.patch_size
        tokens = (1, (side, side))
        depth = len(model.encoder.layers)
        map_layer = f"encoder.layers.encoder_layer_{depth - 2}" if depth >= 2 else "encoder.layers.encoder_layer_0.ln_1"
    return finish(model, f"torchvision:{arch}", opts, spec, None, map_layer, tokens)
