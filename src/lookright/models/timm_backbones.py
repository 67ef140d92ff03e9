"""``timm:<arch>``: any timm classifier, built with ``pretrained=False``.

Options: ``num_classes`` (10), ``in_chans`` (3; 1 for grey data), ``image_size`` (default: the
architecture's pretrained config; for fixed-size models such as ViTs it is also passed on as
``img_size``), ``mean`` / ``std``, ``weights``, ``cam_layer``, ``classifier``, and any other
keyword of the timm model (``patch_size``, ``depth``, ``drop_rate``, ...).

Attention layers: a GAP head gets CAM on the map it pools (found by the probe in
:mod:`lookright.models.heads`); other CNN heads get Grad-CAM on ``feature_info[-1]``. A token
model (``num_prefix_tokens``: ViT, DeiT, EVA, ...) gets Grad-CAM on the *input of its last
block* (the output of ``blocks[-2]``, which is the last block's ``norm1`` input): the head reads
the class token only, so at the last block's output the patch tokens have zero gradient and
the map would be empty, while one block earlier every patch token still reaches the class
token through the last attention layer. NHWC models (Swin) are not handled.
"""

from __future__ import annotations

from lookright.errors import ConfigError
from lookright.models.backbone import Options, finish, input_spec, refuse_download
from lookright.models.base import MODELS


def _classifier_name(model) -> str | None:
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    head = head[0] if isinstance(head, tuple) else head
    return next((name for name, module in model.named_modules() if module is head and name), None)


def _map_layer(model) -> str | None:
    if hasattr(model, "num_prefix_tokens") and hasattr(model, "blocks"):
        depth = len(model.blocks)
        return f"blocks.{depth - 2}" if depth >= 2 else "blocks.0.norm1"
    info = getattr(model, "feature_info", None)
    return info[-1]["module"] if info else None


@MODELS.register("timm:")
def timm_model(arch: str, num_classes: int = 10, in_chans: int = 3, image_size: int | None = None, mean=None,
               std=None, weights: str | None = None, cam_layer: str | None = None, classifier: str | None = None,
               pretrained: bool = False, **kwargs):
    import timm
    from timm.models import get_pretrained_cfg_value

    refuse_download(pretrained)
    if not timm.is_model(arch):
        raise ConfigError(f"model.name: timm has no model {arch!r} (see timm.list_models())")
    if image_size and "img_size" not in kwargs and get_pretrained_cfg_value(arch, "fixed_input_size"):
        kwargs["img_size"] = image_size
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)
    config = timm.data.resolve_data_config({}, model=model)
    size = kwargs.get("img_size") or config["input_size"][-1]
    size = size[-1] if isinstance(size, (tuple, list)) else size
    opts = Options(image_size, mean, std, weights, cam_layer, classifier)
    spec = input_spec(opts, in_chans, size, config["mean"], config["std"])
    tokens = None
    if hasattr(model, "num_prefix_tokens") and hasattr(model, "patch_embed"):
        tokens = (int(model.num_prefix_tokens), tuple(model.patch_embed.grid_size))
    return finish(model, f"timm:{arch}", opts, spec, _classifier_name(model), _map_layer(model), tokens)
