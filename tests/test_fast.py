"""train.fast: off, a seed reproduces the reference path (exactly on the CPU the reference was recorded on; within
float32 summation noise, 1e-3 relative, on CPUs whose kernels sum in another order); on, the same run within tolerance."""

import pytest
from test_trainer import kl_config, tiny_config

from lookright.errors import TrainingDiverged
from lookright.train import train
from lookright.train.fast import ACC_TOLERANCE

# kl_config(epochs 3, attn_epochs 1), 1 thread, trained by the trainer before the fast paths existed
REFERENCE = {
    "shifted_test_acc": 8.500000089406967, "val_acc": 10.41666641831398, "val_align": 1.5625146627426147,
    "val_counterfactual_acc": 10.41666641831398, "selected_epoch": 2,
}
REFERENCE_HISTORY = {
    "train_ce": [2.3062384128570557, 2.3099524974823, 2.3049919605255127],
    "train_align": [1.5641010999679565, 1.542106032371521, 1.5237985849380493],
    "val_align": [1.5937891006469727, 1.574719786643982, 1.5625146627426147],
}


def test_fast_off_reproduces_the_reference(tmp_path):
    cfg = kl_config(train={"epochs": 3, "attn_epochs": 1, "threads": 1, "fast": False}, log={"backends": []})
    m = train(cfg, tmp_path / "run", progress=False)
    for key, value in REFERENCE.items():
        assert m[key] == pytest.approx(value, rel=1e-3), key
    for key, values in REFERENCE_HISTORY.items():
        assert [r[key] for r in m["history"]] == pytest.approx(values, rel=1e-3), key


def learning_run(fast: bool, **extra):
    """2,000 digits, 2 epochs, lr 0.01: a run that learns, in a regime that is not chaotic."""
    return tiny_config(train={"epochs": 2, "threads": 1, "fast": fast}, log={"backends": []},
                       data={"max_train": 2000, "max_test": 1000}, **extra)


def test_fast_on_stays_within_tolerance(tmp_path):
    ref = train(learning_run(False), tmp_path / "ref", progress=False)
    fast = train(learning_run(True), tmp_path / "fast", progress=False)
    assert ref["val_acc"] > 40  # it learned something, so the comparison means something
    for key in ("shifted_test_acc", "val_acc"):
        assert abs(fast[key] - ref[key]) <= ACC_TOLERANCE, key
    for a, b in zip(ref["history"], fast["history"], strict=True):
        assert b["train_ce"] == pytest.approx(a["train_ce"], rel=1e-3)  # summation order (CPU-dependent)
        assert abs(a["val_acc"] - b["val_acc"]) <= ACC_TOLERANCE and abs(a["test_acc"] - b["test_acc"]) <= ACC_TOLERANCE


def test_fast_on_with_alignment_first_epoch(tmp_path):
    """With the KL loss any change of summation order moves a short run's accuracies by points (the
    reference path does so between 1 and 2 threads); the first epoch's losses still agree."""
    extra = {"loss": {"name": "kl", "lambda0": 1.0}, "target": kl_config().target.model_dump()}
    ref = train(learning_run(False, **extra), tmp_path / "ref", progress=False)
    fast = train(learning_run(True, **extra), tmp_path / "fast", progress=False)
    for key in ("train_ce", "train_align"):
        assert fast["history"][0][key] == pytest.approx(ref["history"][0][key], rel=1e-3)


def test_fast_divergence_names_the_epoch(tmp_path):
    cfg = tiny_config(train={"epochs": 2, "fast": True}, optim={"lr": 1e8}, log={"backends": []})
    with pytest.raises(TrainingDiverged, match=r"epoch 1, between steps \d+ and \d+"):
        train(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "metrics.json").exists()
