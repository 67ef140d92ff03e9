"""A dataset made outside lookright (RGB 96 px, PNG masks, explicit splits) trains with timm
backbones (a GAP ResNet with CAM alignment, a ViT with Grad-CAM alignment), writes its run folder,
TensorBoard events and figures, and is evaluated and compared."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from conftest import CONFIGS
from lookright.cli import app
from lookright.runs.folder import RunFolder

runner = CliRunner()


@pytest.mark.timeout(900)
def test_a_manifest_dataset_trains_with_timm_backbones_and_is_compared(tmp_path):
    from lookright.data.example import write_example

    manifest = write_example(tmp_path / "data", n=60, size=96, seed=0)
    common = [f"data.path={manifest}", "data.image_size=96", "train.epochs=1", "train.batch_size=16",
              "eval.figure_images=2", "log.images_every=1", "log.images=2", f"out_dir={tmp_path / 'runs'}"]
    models = {
        "resnet": ["model.name=timm:resnet18", "model.options={num_classes: 4, image_size: 96}"],
        "vit": ["model.name=timm:vit_tiny_patch16_224", "model.options={num_classes: 4, image_size: 96}",
                "attention.extractor=gradcam"],
    }
    folders = []
    for name, model in models.items():
        folder = tmp_path / "runs" / name
        result = runner.invoke(app, ["train", str(CONFIGS / "examples" / "manifest-resnet.yaml"), *common, *model,
                                     f"name={name}", "--run-dir", str(folder)])
        assert result.exit_code == 0, result.output
        assert RunFolder(folder).state() == "finished"
        assert (folder / "figures" / "attention_test.png").is_file()
        assert any((folder / "tensorboard").glob("events.out.tfevents.*"))
        metrics = RunFolder(folder).metrics()
        assert metrics["sizes"]["test"] > 0 and metrics["history"][0]["train_align"] is not None
        for extra in ([], ["--extractor", "gradcam"]):  # its own extractor (CAM or Grad-CAM), then Grad-CAM
            evaluated = runner.invoke(app, ["eval", str(folder), "--max-images", "8", "--set", "eval.road_max_images=4",
                                            "--set", "eval.steps=4", *extra])
            assert evaluated.exit_code == 0, evaluated.output
        folders.append(folder)
    mixed = runner.invoke(app, ["compare", *map(str, folders), "--out", str(tmp_path / "report")])
    assert mixed.exit_code == 2 and "different attention extractors" in mixed.output  # CAM vs the ViT's Grad-CAM
    report = runner.invoke(app, ["compare", *map(str, folders), "--out", str(tmp_path / "report"), "--extractor", "gradcam"])
    assert report.exit_code == 0, report.output
    assert (tmp_path / "report" / "index.html").is_file()
