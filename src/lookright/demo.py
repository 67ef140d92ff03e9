"""`lookright demo`: a shortcut that a vanilla model takes, and an aligner that removes it.

On ``frame-colour-mnist`` (a colour frame codes the label in training and a random digit at
test time) it trains two LeNets with the shortcut suite's recipe (Adam, batch 64): vanilla, and
mask-guided counterfactual augmentation (the pixels outside the digit mask are swapped between
images, so the frame stops predicting the label) with counterfactual selection (no shifted data
used). Runs on the embedded MNIST subset (5,000 training digits) unless a data folder is given.
The two runs train side by side (one process each); the figure shows the same shifted-test images
with each model's CAM and the digit mask's outline.
"""

from __future__ import annotations

from pathlib import Path

from lookright.train.config import build_config

TITLE = "frame-colour-mnist: frame colour = label in training, a random digit's colour at test time"
METHODS = {
    "vanilla": ({}, "vanilla"),
    "counterfactual": ({"augment": {"counterfactual": 1.0}}, "counterfactual"),
}


def demo_configs(out_dir: str, data_dir: str | None, epochs: int, seed: int) -> list:
    """``[(config, run folder)]``, vanilla first."""
    data = {"name": "frame-colour-mnist", "embedded": data_dir is None, "data_dir": data_dir}
    if data_dir is not None:
        data["max_train"] = 5000
    common = {
        "seed": seed, "out_dir": out_dir, "data": data, "model": {"name": "lenet"},
        "optim": {"name": "adam", "lr": 3e-3}, "scheduler": {"name": "none"},
        "log": {"backends": [], "images_every": 0},
    }
    out = []
    for method, (extra, _) in METHODS.items():
        train = {"epochs": epochs, "batch_size": 64, "selection": "counterfactual" if extra else "val_acc"}
        cfg = build_config({**common, "name": f"demo-{method}", "train": train, **extra})
        out.append((cfg, Path(out_dir) / "demo" / method))
    return out


def verdict(results: list[dict]) -> str:
    """One line: both shifted-test accuracies and the difference."""
    vanilla, aligned = (r["shifted_test_acc"] for r in results)
    return (f"shifted test accuracy (frame colour random): vanilla {vanilla:.1f}%, mask-guided counterfactual "
            f"augmentation {aligned:.1f}% ({aligned - vanilla:+.1f} points; chance 10%)")


def attention_figure(runs: list, path: Path, n: int = 8) -> Path:
    """The first ``n`` shifted-test images, their digit mask, and each run's CAM (mask outlined)."""
    import torch

    from lookright.attention import create_extractor
    from lookright.report.figures import method_grid_figure
    from lookright.train.run_eval import load_finished_run
    from lookright.train.trainer import load_splits

    _, _, test, _ = load_splits(runs[0][0])
    x, y = test.x[:n], test.y[:n]
    named = []
    for (cfg, folder), (_, label) in zip(runs, METHODS.values()):
        run = load_finished_run(folder)
        extractor = create_extractor(run.metrics["eval_extractor"])
        maps, logits = extractor.with_logits(run.model, run.model.input_spec.prepare(torch.from_numpy(x)),
                                             torch.from_numpy(y).long())
        named.append((label, {"x": x, "y": y, "mask": test.mask[:n], "maps": maps.detach().float().numpy(),
                              "pred": logits.argmax(1).numpy()}))
    method_grid_figure(named, path, n, "shifted test images (frame colour random): each model's prediction and CAM")
    return path
