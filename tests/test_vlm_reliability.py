"""Visual reliability: conflict strategies, protocols, Drop/TDI, LoRA tuning, save/reload, CLI errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lookright.cli import app
from lookright.data.shapes import DEFAULT_TEMPLATES, ShapesConfig, generate_shapes
from lookright.errors import ConfigError, RunError
from lookright.vlm.reliability.config import load_reliability_config
from lookright.vlm.reliability.conflicts import (
    STRATEGIES, SWAPPED, UNRELATED, check_strategies, conflicting_caption, names_value,
)
from lookright.vlm.reliability.figures import pareto_front
from lookright.vlm.reliability.protocols import drop, summarise, tdi
from lookright.vlm.small_clip import build_small_clip, save_clip
from lookright.vlm.tokenizer import build_tokenizer
from conftest import CONFIGS as ALL_CONFIGS, tiny_open_clip

torch.set_num_threads(1)
CONFIGS = ALL_CONFIGS / "vlm"


# -- strategies ------------------------------------------------------------------------------
def test_every_swap_contradicts_the_image_for_every_template():
    cfg = ShapesConfig(image_size=16)
    data = generate_shapes(300, seed=3, config=cfg)
    rng = np.random.default_rng(0)
    vocab_words = [v for a in ("shape", "color", "position", "size") for v in cfg.vocabulary(a)]
    for caption, attrs in zip(data.captions, data.attributes):
        for strategy, attribute in SWAPPED.items():
            c = conflicting_caption(strategy, caption, attrs, cfg, rng)
            assert c.attribute == attribute and c.value != attrs[attribute]
            assert names_value(c.caption, c.value), (caption, c)
            assert not names_value(c.caption, attrs[attribute]), (caption, c)
            for other in ("shape", "color", "position"):  # nothing else is contradicted
                if other != attribute and names_value(c.caption, attrs[other]) is False:
                    assert not any(names_value(c.caption, v) for v in cfg.vocabulary(other))
        c = conflicting_caption("random_text", caption, attrs, cfg, rng)
        assert c.caption in UNRELATED and c.value is None
        assert not any(names_value(c.caption, w) for w in vocab_words)
    # a template without a position is re-rendered so that position_swap still names a position
    attrs = data.attributes[0]
    short = "a photo of a {color} {shape}".format(**attrs)
    c = conflicting_caption("position_swap", short, attrs, cfg, rng)
    assert names_value(c.caption, c.value) and c.value != attrs["position"]
    assert short in [t.format(**attrs) for t in DEFAULT_TEMPLATES]


def test_bad_strategies_and_single_value_vocabularies_are_rejected():
    cfg = ShapesConfig(image_size=16, shapes=("circle",))
    with pytest.raises(ConfigError, match="at least two shape values"):
        check_strategies(["shape_swap"], cfg)
    assert check_strategies(["color_swap"], cfg) == ["color_swap"]
    with pytest.raises(ConfigError, match="unknown conflict strategies"):
        check_strategies(["colour_swap"], ShapesConfig(image_size=16))
    with pytest.raises(ConfigError, match="unknown conflict strategy"):
        conflicting_caption("font_swap", "a red circle", {"color": "red"}, ShapesConfig(image_size=16),
                            np.random.default_rng(0))
    with pytest.raises(ConfigError, match="unknown attributes"):
        load_reliability_config(None, ["data.attributes=[shape,texture]"])
    with pytest.raises(ConfigError, match="unknown strategies"):
        load_reliability_config(None, ["eval.strategies=[size_swap]"])


# -- metrics ----------------------------------------------------------------------------------
def test_drop_and_tdi_on_hand_made_predictions():
    normal = [1, 1, 1, 1, 0]
    attacked = [1, 0, 0, 1, 0]
    assert drop(normal, attacked) == pytest.approx(40.0)
    assert tdi([2, 1, 1, 0], [1, 1, 1, 1]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="paired"):
        drop([1, 0], [1])
    result = {  # classification: shape head fooled twice out of 4, colour never
        "normal": {"shape": np.array([1, 1, 1, 0], bool), "color": np.array([1, 1, 1, 1], bool)},
        "attacked": {"shape_swap": np.array([1, 0, 0, 0], bool), "color_swap": np.array([1, 1, 1, 1], bool),
                     "random_text": np.array([[1, 1], [1, 1], [0, 1], [0, 1]], bool)},
        "followed": {"shape_swap": np.array([0, 1, 1, 0], bool), "color_swap": np.zeros(4, bool)},
    }
    s = summarise(result, "classification", ["shape", "color"])
    assert s["normal_accuracy"] == pytest.approx(87.5)
    assert s["drop"] == pytest.approx({"shape_swap": 50.0, "color_swap": 0.0, "random_text": 87.5 - 75.0})
    assert s["drop_average"] == pytest.approx((50 + 0 + 12.5) / 3)
    assert s["tdi"] == {"shape_swap": 0.5, "color_swap": 0.0} and s["tdi_average"] == pytest.approx(0.25)


def test_pareto_front():
    pts = [(95.0, 10.0), (97.0, 20.0), (94.0, 12.0), (90.0, 2.0), (97.0, 25.0)]
    assert pareto_front(pts) == [0, 1, 3]


# -- a tiny CLIP end to end -------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rel-clip")
    torch.manual_seed(0)
    captions = generate_shapes(200, seed=0, config=ShapesConfig(image_size=16)).captions + list(UNRELATED)
    tokenizer = build_tokenizer(captions, folder / "vocab")
    model = build_small_clip(tokenizer, image_size=16, patch_size=4, width=32, layers=2, heads=2, embed_dim=32)
    save_clip(model, tokenizer, folder, 16)
    return folder


def small(folder, tmp_path, *extra):
    return load_reliability_config(None, [f"model.path={folder}", f"out_dir={tmp_path}", "data.image_size=16",
                                          "data.n_train=96", "data.n_test=48", "tune.epochs=2", "tune.batch_size=32",
                                          "eval.attention_images=8", *extra])


def test_a_head_trained_on_consistent_text_follows_the_text(tiny_clip, tmp_path):
    from lookright.vlm.reliability.run import run_reliability

    # a random image tower carries (almost) no information: the head learns to read the caption
    m = run_reliability(small(tiny_clip, tmp_path, "tune.epochs=40", "tune.head_lr=1e-2", "figures=false"),
                        progress=False)
    c = m["results"]["classification"]
    assert c["normal_accuracy"] > 60  # chance: 28
    assert c["drop_average"] > 40 and c["tdi_average"] > 0.5
    assert set(c["drop"]) == set(STRATEGIES)
    assert set(m["results"]["matching"]["drop"]) == set(STRATEGIES)
    low, high = c["normal_wilson95"]
    assert low <= c["normal_accuracy"] <= high
    assert m["trainable_parameters"]["clip"] == 0


def test_lora_step_changes_only_adapters_and_head(tiny_clip, tmp_path):
    from lookright.vlm.reliability.run import build_splits, load_model
    from lookright.vlm.reliability.tune import tune

    cfg = small(tiny_clip, tmp_path, "tune.method=lora", "tune.epochs=1", "tune.hard_negatives=true",
                "tune.conflict_share=0.5", "tune.augmentation=true", "tune.layerwise_lr_decay=0.7",
                "tune.cosine_restarts=true", "tune.label_smoothing=0.1", "tune.curriculum=true")
    clip = load_model(cfg)
    before = {k: v.clone() for k, v in clip.model.state_dict().items()}
    train, _ = build_splits(cfg, clip)
    tuned = tune(clip, train, cfg, progress=False)
    after = clip.model.state_dict()
    lora = [k for k in after if "lora_" in k]
    assert lora and all("lora_" not in k for k in before)
    changed_base = [k for k in before if not torch.equal(before[k], after[k.replace(".weight", ".base_layer.weight")
                                                                          .replace(".bias", ".base_layer.bias")
                                                                          if k not in after else k])]
    assert changed_base == []
    assert any(after[k].abs().sum() > 0 for k in lora if "lora_B" in k)  # B starts at zero
    assert tuned.trainable["clip"] == sum(after[k].numel() for k in lora)
    assert {m for k in lora for m in ("vision_model", "text_model") if m in k} == {"vision_model", "text_model"}


def test_save_and_reload_gives_the_same_predictions(tiny_clip, tmp_path):
    from lookright.vlm.reliability.run import build_splits, evaluate, flat_predictions, load_tuned, run_reliability
    from lookright.vlm.reliability.encoder import ClipEncoder

    cfg = small(tiny_clip, tmp_path, "tune.method=lora", "name=lora", "tune.hard_negatives=true",
                "tune.conflict_share=0.5")
    m = run_reliability(cfg, progress=False)
    run_dir = tmp_path / "lora" / "seed0"
    for f in ("config.yaml", "metrics.json", "predictions.npz", "head.pt", "adapter", "figures/attention.png",
              "figures/tsne.png"):
        assert (run_dir / f).exists(), f
    saved = dict(np.load(run_dir / "predictions.npz"))
    cfg2, clip, head = load_tuned(run_dir)
    _, test = build_splits(cfg2, clip)
    _, raw = evaluate(ClipEncoder(clip), head, test, cfg2)
    again = flat_predictions(raw, test.attributes)
    assert saved.keys() == again.keys()
    for k in saved:
        np.testing.assert_array_equal(saved[k], again[k], err_msg=k)
    saved_metrics = json.loads((run_dir / "metrics.json").read_text())
    assert saved_metrics["results"] == json.loads(json.dumps(m["results"]))
    # one provenance schema, as every pipeline writes it; every file written atomically
    assert not {"commit", "versions", "device"} & set(saved_metrics)
    assert {"git_commit", "versions", "device", "host", "argv"} <= set(saved_metrics["provenance"])
    assert {"transformers", "peft", "torch"} <= set(saved_metrics["provenance"]["versions"])
    assert json.loads((run_dir / "run.json").read_text())["kind"] == "reliability"
    assert not list(run_dir.rglob("*.tmp"))
    assert all((run_dir / "figures" / f).read_bytes()[:4] == b"\x89PNG" for f in ("attention.png", "tsne.png"))
    with pytest.raises(RunError, match="not a lookright run folder"):
        load_tuned(tmp_path)


COMMON = ["data.image_size=16", "data.n_train=64", "data.n_test=32", "tune.epochs=1", "tune.batch_size=32",
          "eval.attention_images=4", "figures=false"]


def test_summarize_and_cli(tiny_clip, tmp_path):
    runner = CliRunner()
    common = [f"model.path={tiny_clip}", f"out_dir={tmp_path}", *COMMON]
    baseline, lora = str(CONFIGS / "shapes-baseline.yaml"), str(CONFIGS / "shapes-lora.yaml")
    r = runner.invoke(app, ["vlm", "eval", baseline, "--seeds", "2", "--jobs", "2", *common])  # two worker processes
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["vlm", "tune", lora, "--seeds", "2", *common, "tune.conflict_share=1"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["vlm", "eval", baseline, *common, "--run", str(tmp_path / "lora" / "seed1"), "seed=1"])
    assert r.exit_code == 0, r.output
    evaluated = tmp_path / "lora" / "seed1" / "eval" / "seed1"
    again = np.load(evaluated / "predictions.npz")
    saved = np.load(tmp_path / "lora" / "seed1" / "predictions.npz")
    assert all(np.array_equal(again[k], saved[k]) for k in saved.files)
    assert json.loads((evaluated / "metrics.json").read_text())["method"] == "lora"
    assert json.loads((evaluated / "run.json").read_text())["kind"] == "reliability-eval"
    r = runner.invoke(app, ["vlm", "eval", baseline, *common, "--run", str(tmp_path / "lora" / "seed1"),
                            "data.attributes=[shape]"])
    assert r.exit_code == 2 and "the run's head predicts" in r.output
    assert not (tmp_path / "lora" / "seed1" / "eval" / "seed0").exists()
    # a finished run is read back (threads and device are not part of its config), not overwritten
    before = (tmp_path / "baseline" / "seed1" / "metrics.json").read_text()
    r = runner.invoke(app, ["vlm", "eval", baseline, *common, "seed=1", "model.threads=1", "model.device=auto"])
    assert r.exit_code == 0 and (tmp_path / "baseline" / "seed1" / "metrics.json").read_text() == before
    r = runner.invoke(app, ["vlm", "eval", lora, *common])
    assert r.exit_code == 2 and "lookright vlm tune" in r.output
    r = runner.invoke(app, ["vlm", "summarize", str(tmp_path)])
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    rows = {row["name"]: row for row in summary["classification"]}
    assert rows["lora"]["n"] == 2 and "mcnemar" in rows["lora"] and "relative_drop_reduction" in rows["lora"]
    assert rows["lora"]["drop"]["n"] == 2 and rows["lora"]["drop"]["std"] is not None  # describe()
    assert (tmp_path / "results.md").read_text().count("| baseline |") == 3  # two protocols + attention
    assert (tmp_path / "pareto_classification.png").is_file()
    page = (tmp_path / "index.html").read_text()
    assert page.count("<table") == 3 and "data:image/png;base64" in page
    r = runner.invoke(app, ["vlm", "summarize", str(tmp_path), "--reference", "lora", "--out", str(tmp_path / "o.md")])
    assert r.exit_code == 0 and "rel. reduction vs lora" in (tmp_path / "o.md").read_text()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    # missing weights, unknown strategy, --run with seeds: clear errors, exit code 2, nothing left behind
    r = runner.invoke(app, ["vlm", "eval", baseline, "model.path=/nonexistent/clip", f"out_dir={tmp_path}/x"])
    assert r.exit_code == 2 and "config.json missing" in r.output and "lookright vlm pretrain" in r.output
    assert not (tmp_path / "x" / "baseline" / "seed0").exists()
    r = runner.invoke(app, ["vlm", "eval", baseline, *common, "eval.strategies=[texture_swap]"])
    assert r.exit_code == 2 and "unknown strategies" in r.output
    r = runner.invoke(app, ["vlm", "eval", baseline, "--run", str(tmp_path / "lora" / "seed1"), "--seeds", "2"])
    assert r.exit_code == 2 and "--run evaluates one tuned model" in r.output


def test_a_run_folder_holding_another_config_stops_every_seed_before_anything_runs(tiny_clip, tmp_path):
    runner = CliRunner()
    common = [f"model.path={tiny_clip}", f"out_dir={tmp_path}", *COMMON]
    baseline = str(CONFIGS / "shapes-baseline.yaml")
    assert runner.invoke(app, ["vlm", "eval", baseline, *common, "seed=1"]).exit_code == 0
    r = runner.invoke(app, ["vlm", "eval", baseline, "--seeds", "2", *common, "tune.epochs=3"])
    assert r.exit_code == 2 and "another config" in r.output and "tune.epochs: 1 -> 3" in r.output
    assert not (tmp_path / "baseline" / "seed0").exists()  # seed 0 was not run
    r = runner.invoke(app, ["vlm", "eval", baseline, *common, "--run", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "not a finished reliability run" in r.output
    r = runner.invoke(app, ["vlm", "eval", baseline, *common, "--run", str(tmp_path / "baseline" / "seed1" / "eval"),
                            "--first-seed", "1"])
    assert r.exit_code == 2 and "not a finished reliability run" in r.output


def test_config_is_checked_before_the_folder_is_touched(tiny_clip, tmp_path):
    from lookright.vlm.reliability.run import run_reliability

    for bad, key in (("model.threads=100000", "model.threads=100000"), ("model.device=cuda:99", "model.device=cuda:99")):
        with pytest.raises(ConfigError, match=key):
            run_reliability(small(tiny_clip, tmp_path, bad), progress=False)
        assert not (tmp_path / "baseline").exists()


def test_a_failed_run_is_restarted_in_place(tiny_clip, tmp_path, monkeypatch):
    from lookright.errors import LookrightError
    from lookright.vlm.reliability import run as run_module
    from lookright.vlm.reliability.sweep import execute, reliability_specs

    cfg = small(tiny_clip, tmp_path, "figures=false", "tune.epochs=1")
    (spec,) = reliability_specs(cfg, 1)
    real = run_module.evaluate

    def broken(*_args):
        raise LookrightError("evaluation broke")

    monkeypatch.setattr(run_module, "evaluate", broken)
    result = CliRunner().invoke(app, ["vlm", "eval", str(CONFIGS / "shapes-baseline.yaml"), f"model.path={tiny_clip}", f"out_dir={tmp_path}", *COMMON])
    assert result.exit_code == 2 and "evaluation broke" in result.output
    run_json = tmp_path / "baseline" / "seed0" / "run.json"
    assert json.loads(run_json.read_text())["status"] == "failed"  # head.pt was written: the folder is kept
    assert not (tmp_path / "baseline" / "seed0" / "metrics.json").exists()
    monkeypatch.setattr(run_module, "evaluate", real)
    (spec,) = reliability_specs(small(tiny_clip, tmp_path, *COMMON), 1)
    m = execute(spec)
    info = json.loads(run_json.read_text())
    assert info["status"] == "finished" and info["attempts"] == 2 and m["results"]["classification"]
    assert execute(spec) == json.loads((tmp_path / "baseline" / "seed0" / "metrics.json").read_text())
    assert json.loads(run_json.read_text())["attempts"] == 2  # read back, not run again


def test_summarize_reads_finished_reliability_runs_only(tiny_clip, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["vlm", "summarize", str(tmp_path / "empty")])
    assert r.exit_code == 2 and "does not exist" in r.output
    r = runner.invoke(app, ["vlm", "summarize", str(tmp_path)])
    assert r.exit_code == 2 and "no finished reliability run" in r.output
    r = runner.invoke(app, ["vlm", "eval", str(CONFIGS / "shapes-baseline.yaml"), f"model.path={tiny_clip}", f"out_dir={tmp_path}", *COMMON])
    assert r.exit_code == 0, r.output
    other = tmp_path / "supervised" / "seed0"  # a finished run of another pipeline is left out
    other.mkdir(parents=True)
    (other / "run.json").write_text(json.dumps({"kind": "supervised", "status": "finished"}))
    (other / "metrics.json").write_text(json.dumps({"name": "supervised", "seed": 0}))
    r = runner.invoke(app, ["vlm", "summarize", str(tmp_path), "--reference", "baseline"])
    assert r.exit_code == 0, r.output
    assert "supervised" not in (tmp_path / "results.md").read_text()
    r = runner.invoke(app, ["vlm", "summarize", str(tmp_path), "--baseline", "baseline"])
    assert r.exit_code == 2  # renamed to --reference
    (tmp_path / "baseline" / "seed0" / "metrics.json").write_text("{damaged")
    r = runner.invoke(app, ["vlm", "summarize", str(tmp_path)])
    assert r.exit_code == 2 and "cannot be read" in r.output and "Traceback" not in r.output


def test_open_clip_is_evaluated_and_fully_tuned(tmp_path):
    from lookright.vlm.reliability.run import run_reliability

    checkpoint = tiny_open_clip(tmp_path, "lookright-rel-tiny")
    common = ["model.backend=open_clip", "model.path=null", "model.model_name=lookright-rel-tiny",
              f"model.checkpoint={checkpoint}", f"out_dir={tmp_path}", "data.image_size=16", "data.n_train=64",
              "data.n_test=32", "tune.epochs=1", "tune.batch_size=32", "eval.attention_images=4"]
    m = run_reliability(load_reliability_config(None, common + ["tune.method=full", "name=full"]), progress=False)
    assert m["trainable_parameters"]["clip"] == m["trainable_parameters"]["clip_total"] > 0
    assert set(m["attention"]["after"]) == {"gradcam", "uniform"}  # rollout is for Hugging Face models
    assert (tmp_path / "full" / "seed0" / "clip.pt").is_file()
    with pytest.raises(ConfigError, match="LoRA tuning supports the hf backend"):
        load_reliability_config(None, common + ["tune.method=lora"])


def test_every_shipped_reliability_config_validates():
    names = sorted(p.name for p in CONFIGS.glob("*.yaml"))
    assert "shapes-lora-optimised.yaml" in names and "vitb32-lora-optimised.yaml" in names
    for path in CONFIGS.glob("*.yaml"):
        cfg = load_reliability_config(path)
        assert cfg.model.backend == "hf" and cfg.eval.strategies
    opt = load_reliability_config(CONFIGS / "shapes-lora-optimised.yaml")
    assert opt.tune.method == "lora" and opt.tune.hard_negatives and opt.tune.curriculum and opt.tune.augmentation


def test_padded_caption_batches_embed_each_caption_as_alone(tiny_clip):
    from lookright.vlm.backends import load_clip
    from lookright.vlm.reliability.encoder import ClipEncoder

    clip = load_clip("hf", path=tiny_clip)
    encoder = ClipEncoder(clip)
    captions = ["a red circle", "there is a large yellow triangle at the bottom right", UNRELATED[0]]
    with torch.no_grad():
        together = encoder.text(captions)
        alone = torch.cat([encoder.text([c]) for c in captions])
        plain = clip.encode_text(captions)  # the tokenizer's own padding and attention mask
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(together, plain, rtol=1e-4, atol=1e-5)


def test_seeds_run_on_ray_write_the_same_run_folders(tiny_clip, tmp_path):
    pytest.importorskip("ray.tune")
    common = [f"model.path={tiny_clip}", f"out_dir={tmp_path}", *COMMON]
    baseline = str(CONFIGS / "shapes-baseline.yaml")
    r = CliRunner().invoke(app, ["vlm", "eval", baseline, "--seeds", "2", "--backend", "ray", *common])
    assert r.exit_code == 0, r.output
    infos = [json.loads((tmp_path / "baseline" / f"seed{s}" / "run.json").read_text()) for s in (0, 1)]
    assert [(i["kind"], i["status"], i["attempts"]) for i in infos] == [("reliability", "finished", 1)] * 2
    r = CliRunner().invoke(app, ["vlm", "eval", baseline, "--seeds", "2", *common])  # read back here
    assert r.exit_code == 0 and json.loads((tmp_path / "baseline" / "seed1" / "run.json").read_text())["attempts"] == 1
