"""timm: and torchvision: backbones: head detection, CAM / Grad-CAM on them (ViT token grids),
InputSpec from the library config, strict local weights, and 1-epoch runs end to end."""

import pytest
import torch
import torch.nn.functional as F

from lookright.attention import create_extractor
from lookright.errors import ConfigError
from lookright.models import InputSpec, create_model
from lookright.train import train
from lookright.train.config import build_config
from lookright.train.trainer import build_parts

VIT = {"image_size": 32, "depth": 2}  # vit_tiny_patch16_224 at 32 px: a 2x2 patch grid


def vit(**options):
    torch.manual_seed(0)
    return create_model("timm:vit_tiny_patch16_224", **{**VIT, **options})


@pytest.mark.parametrize("name, options, cam_layer, classifier", [
    ("timm:resnet10t", {"image_size": 64}, "layer4", "fc"),
    ("timm:efficientnet_b0", {"image_size": 64}, "bn2", "classifier"),  # not feature_info[-1] (blocks.6)
    ("torchvision:resnet18", {"image_size": 64}, "layer4", "fc"),
    ("torchvision:efficientnet_b0", {"image_size": 64}, "features", "classifier.1"),  # SE blocks pool too
])
def test_gap_heads_support_cam(name, options, cam_layer, classifier):
    model = create_model(name, **options).eval()
    assert (model.cam_layer, model.cam_classifier, model.cam_unsupported) == (cam_layer, classifier, None)
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 3])
    maps, logits = create_extractor("cam").with_logits(model, x, y)
    fc = model.get_submodule(classifier)
    feats = {}
    handle = model.get_submodule(cam_layer).register_forward_hook(lambda m, i, o: feats.setdefault("a", o))
    with torch.no_grad():
        model(x)
    handle.remove()
    # CAM is the classifier-weighted feature map, and its mean is the logit minus the bias
    torch.testing.assert_close(maps, torch.einsum("bkhw,bk->bhw", feats["a"], fc.weight[y]))
    torch.testing.assert_close(maps.mean(dim=(1, 2)), logits.gather(1, y[:, None])[:, 0] - fc.bias[y],
                               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name, options, layer, head, why", [
    ("timm:convnext_atto", {"image_size": 64}, "stages.3", "head.fc", "not the spatial mean"),  # LayerNorm after GAP
    ("torchvision:mobilenet_v3_small", {"image_size": 64}, "features", "classifier.3", "not the spatial mean"),
    ("timm:vit_tiny_patch16_224", VIT, "blocks.0", "head", "class token"),
    ("torchvision:vit_b_16", {"image_size": 32}, "encoder.layers.encoder_layer_10", "heads.head", "class token"),
])
def test_other_heads_default_to_gradcam_and_refuse_cam_with_the_reason(name, options, layer, head, why):
    model = create_model(name, **options).eval()
    assert (model.cam_layer, model.classifier_name, model.cam_classifier) == (layer, head, None)
    assert why in model.cam_unsupported
    size = model.input_spec.size
    with pytest.raises(ConfigError, match=f"{why}.*use 'gradcam'") as err:
        create_extractor("cam")(model, torch.randn(2, 3, size, size), 0)
    assert "GAP head" not in str(err.value)
    assert create_extractor("gradcam")(model, torch.randn(2, 3, size, size), 0).dim() == 3


def test_trainer_picks_gradcam_for_a_vit_and_names_the_key_for_cam():
    tree = {"data": {"embedded": True}, "model": {"name": "timm:vit_tiny_patch16_224", "options": VIT},
            "loss": {"name": "camal"}}
    _, extractor, _, evaluator = build_parts(build_config(tree))
    assert extractor.name == evaluator.name == "gradcam"
    with pytest.raises(ConfigError, match="attention.extractor: cam does not apply.*class token.*use gradcam"):
        build_parts(build_config({**tree, "attention": {"extractor": "cam"}}))
    gap = build_parts(build_config({**tree, "model": {"name": "timm:resnet10t", "options": {"image_size": 32}}}))
    assert gap[1].name == gap[3].name == "cam"


def test_overrides_are_checked():
    model = create_model("timm:resnet10t", image_size=64, cam_layer="layer3")
    assert model.cam_layer == "layer3" and "'layer3'" in model.cam_unsupported
    with pytest.raises(ConfigError, match="no module 'nope'"):
        create_model("timm:resnet10t", image_size=64, classifier="nope")
    with pytest.raises(ConfigError, match="timm has no model"):
        create_model("timm:resnet9000")
    with pytest.raises(ConfigError, match="nothing is downloaded"):
        create_model("timm:resnet10t", pretrained=True)
    with pytest.raises(ConfigError, match="unknown model 'keras:'"):
        create_model("keras:resnet")


def test_vit_gradcam_grid_and_gradients():
    model = vit(patch_size=8)  # 4x4 grid
    x, y = torch.randn(3, 3, 32, 32), torch.tensor([0, 1, 2])
    maps = create_extractor("gradcam")(model, x, y, differentiable=True)
    assert maps.shape == (3, 4, 4) and maps.requires_grad
    # second order: the map reaches the head's weights through alpha
    (g,) = torch.autograd.grad(maps.sum(), model.head.weight)
    assert g.abs().sum() > 0
    # the last block (the old IndexError): a (B, h, w) map; zero, as the head reads the class token only
    last = create_extractor("gradcam", layer="blocks.1", relu=False)(model, x, y)
    assert last.shape == (3, 4, 4) and last.abs().max() == 0


def test_tokens_to_grid_drops_prefix_tokens():
    from lookright.attention.tokens import tokens_to_grid

    model = vit(class_token=True, reg_tokens=2)
    assert model.num_prefix_tokens == 3
    tokens = torch.arange(2 * 7 * 5, dtype=torch.float).reshape(2, 7, 5)
    grid = tokens_to_grid(tokens, model)
    assert grid.shape == (2, 5, 2, 2)
    torch.testing.assert_close(grid[:, :, 0, 1], tokens[:, 4, :])  # row-major after the 3 prefix tokens


def test_vit_alignment_step_trains():
    model = vit()
    from lookright.losses import create_loss

    loss_fn, extractor = create_loss("kl"), create_extractor("gradcam")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    target = torch.zeros(4, 2, 2)
    target[:, 0, 0] = 1
    maps, logits = extractor.with_logits(model, x, y, differentiable=True)
    loss = F.cross_entropy(logits, y) + loss_fn.evaluate(maps, target).loss
    before = model.blocks[0].attn.qkv.weight.detach().clone()
    loss.backward()
    opt.step()
    assert torch.isfinite(loss) and not torch.equal(before, model.blocks[0].attn.qkv.weight)


def test_input_spec_per_channel_from_the_library():
    spec = create_model("torchvision:resnet18", image_size=48).input_spec
    assert (spec.size, spec.channels, spec.mean, spec.std) == (48, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    x = spec.prepare(torch.full((2, 1, 28, 28), 255, dtype=torch.uint8))  # grey -> RGB, resized
    assert x.shape == (2, 3, 48, 48)
    torch.testing.assert_close(x[0, :, 0, 0], (1 - torch.tensor(spec.mean)) / torch.tensor(spec.std))
    assert create_model("timm:resnet10t").input_spec.size == 176  # timm's pretrained config
    grey = create_model("timm:resnet10t", in_chans=1, image_size=32, mean=[0.5, 0.5, 0.5], std=0.25).input_spec
    assert (grey.channels, grey.mean, grey.std) == (1, 0.5, 0.25)  # per-channel stats averaged for 1 channel
    assert InputSpec(8, 3, 0.5, 0.5).prepare(torch.zeros(1, 3, 8, 8, dtype=torch.uint8)).eq(-1).all()
    with pytest.raises(ValueError, match="2 values for 3 channels"):
        InputSpec(8, 3, (0.1, 0.2))


def test_weights_load_strictly(tmp_path):
    from safetensors.torch import save_file

    imagenet = create_model("timm:resnet10t", num_classes=1000, image_size=32).state_dict()
    save_file(imagenet, tmp_path / "imagenet.safetensors")
    torch.save(imagenet, tmp_path / "imagenet.pt")
    for path in ("imagenet.safetensors", "imagenet.pt"):
        model = create_model("timm:resnet10t", image_size=32, weights=str(tmp_path / path))
        assert torch.equal(model.state_dict()["layer1.0.conv1.weight"], imagenet["layer1.0.conv1.weight"])
        assert model.fc.out_features == 10  # the 1000-class head is left at its fresh initialisation
    garbage = {f"junk.{i}": torch.zeros(3) for i in range(7)}
    torch.save(garbage, tmp_path / "garbage.pt")
    with pytest.raises(ConfigError, match=r"not a timm:resnet10t state dict \(missing .*\[\d+ keys\]; "
                                          r"unexpected junk.0, .*\(\+2 more\) \[7 keys\]"):
        create_model("timm:resnet10t", image_size=32, weights=str(tmp_path / "garbage.pt"))
    with pytest.raises(ConfigError, match="model.options.weights: no file at"):
        create_model("torchvision:resnet18", image_size=32, weights=str(tmp_path / "missing.pt"))


def tiny_run(model: dict, **extra) -> dict:
    tree = {"name": "backbone", "seed": 1,
            "data": {"name": "colormnist", "embedded": True, "max_train": 64, "max_test": 32},
            "model": model, "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
            "train": {"epochs": 1, "batch_size": 32}, "eval": {"figure_images": 1}, **extra}
    return tree


def test_one_epoch_timm_cnn(tmp_path):
    tree = tiny_run({"name": "timm:resnet10t", "options": {"image_size": 32}})
    metrics = train(build_config(tree), tmp_path / "run", progress=False)
    assert len(metrics["history"]) == 1 and 0 <= metrics["shifted_test_acc"] <= 100


def test_one_epoch_vit_gradcam_camal(tmp_path):
    tree = tiny_run({"name": "timm:vit_tiny_patch16_224", "options": {**VIT, "patch_size": 8}},
                    loss={"name": "camal", "lambda0": 1.0})
    metrics = train(build_config(tree), tmp_path / "run", progress=False)
    assert metrics["method"] == "camal" and len(metrics["history"]) == 1
    assert metrics["history"][0]["train_align"] is not None


def test_docs_examples_run(tmp_path, monkeypatch):
    """docs/backbones.md: the Python block and every `lookright train` line, on tiny data."""
    from test_docs import ROOT, doc_commands, python_block
    from typer.testing import CliRunner

    from lookright.cli import app

    doc = ROOT / "docs" / "backbones.md"
    exec(compile(python_block(doc), str(doc), "exec"), {})
    monkeypatch.chdir(ROOT)
    commands = doc_commands(doc)
    assert [c[0] for c in commands] == ["train"] * 3
    tiny = ["data.embedded=true", "data.max_train=64", "data.max_test=32", "train.epochs=1", "train.attn_epochs=0",
            "eval.figure_images=1"]
    for i, argv in enumerate(commands):
        result = CliRunner().invoke(app, [*argv, *tiny, "--run-dir", str(tmp_path / f"run{i}")])
        assert result.exit_code == 0, (argv, result.output)
