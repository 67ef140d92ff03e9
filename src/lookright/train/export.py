"""``lookright export RUN_DIR --format safetensors|torchscript|onnx``: a finished supervised run's
selected model, in a file other tools read.

* ``safetensors``: the weights, with ``lookright.json`` beside them (model name and options,
  input size, channels, mean/std, class count) so :func:`load_exported` rebuilds the model;
* ``torchscript``: ``torch.jit.trace`` on a batch of the model's input size; takes float
  inputs already normalised as the model expects (see ``lookright.json``);
* ``onnx``: ``torch.onnx.export`` (needs the ``onnx`` and ``onnxscript`` packages), with a
  dynamic batch axis, same inputs as TorchScript.

Every format is written atomically; an existing output is refused unless ``force``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from lookright.atomic import write_atomic, write_text_atomic
from lookright.errors import ConfigError, LookrightError
from lookright.models import create_model

FORMATS = {"safetensors": ".safetensors", "torchscript": ".pt", "onnx": ".onnx"}


def export_run(run_dir: str | Path, fmt: str, out: str | Path | None = None, force: bool = False) -> Path:
    """Export the run's selected model; returns the written file (default ``RUN_DIR/export/model.EXT``)."""
    from lookright.train.run_eval import load_finished_run

    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    run = load_finished_run(run_dir, device="cpu")
    out = Path(out) if out is not None else Path(run_dir) / "export" / f"model{FORMATS[fmt]}"
    if out.is_dir():
        raise LookrightError(f"--out {out} is a folder; give a file name, e.g. {out / ('model' + FORMATS[fmt])}")
    if out.exists() and not force:
        raise LookrightError(f"{out} exists; nothing is overwritten: choose another --out or pass --force")
    model, spec = run.model.eval(), run.model.input_spec
    example = torch.zeros(2, spec.channels, spec.size, spec.size)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        write_atomic(out, lambda tmp: save_file(tensors, tmp))
    elif fmt == "torchscript":
        traced = torch.jit.trace(model, example)
        write_atomic(out, lambda tmp: torch.jit.save(traced, tmp))
    else:
        _onnx(model, example, out)
    write_text_atomic(out.with_name(out.stem + ".lookright.json"), json.dumps(describe(run), indent=2))
    return out


def describe(run) -> dict:
    m = run.config.model
    return {"model": m.name, "options": m.options, "input_scale": m.input_scale,
            "input_spec": asdict(run.model.input_spec), "run": str(run.path), "name": run.config.name,
            "seed": run.config.seed, "selected_epoch": run.metrics.get("selected_epoch"),
            "input": "float (N, channels, size, size), normalised: (pixels / 255 - mean) / std"}


def _onnx(model, example, out: Path) -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise LookrightError("--format onnx needs the onnx and onnxscript packages: pip install 'lookright[onnx]'") \
            from None
    write_atomic(out, lambda tmp: torch.onnx.export(
        model, (example,), tmp, input_names=["x"], output_names=["logits"], dynamo=False,
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}))


def load_exported(path: str | Path) -> torch.nn.Module:
    """The model of a ``safetensors`` export, rebuilt from its ``.lookright.json``."""
    from safetensors.torch import load_file

    path = Path(path)
    meta_path = path.with_name(path.stem + ".lookright.json")
    if not meta_path.is_file():
        raise LookrightError(f"{meta_path} is missing: it names the model the weights in {path} belong to")
    meta = json.loads(meta_path.read_text())
    model = create_model(meta["model"], **meta["options"])
    model.load_state_dict(load_file(str(path)))
    return model.eval()
