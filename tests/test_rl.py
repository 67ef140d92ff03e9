"""CueGrid, the mask wrapper, the GAP policy, AlignedPPO and the RL evaluation."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from typer.testing import CliRunner

import lookright.rl  # noqa: F401  (registers the environments)
from conftest import CONFIGS
from lookright.attention import create_extractor
from lookright.cli import app
from lookright.errors import ConfigError, LookrightError, MaskError, TrainingDiverged
from lookright.rl.config import load_rl_config
from lookright.rl.env import COLOURS, CueGridEnv, _adjacent, glyph
from lookright.rl.evaluate import remove_pixels
from lookright.rl.policy import PolicyHead, cell_mask
from lookright.rl.ppo import AlignedPPO
from lookright.rl.train import FINGERPRINT_IGNORES
from lookright.rl.wrappers import MASK, PIXELS, MaskInObservation, make_env
from lookright.runs.config import config_tree, dump_config
from lookright.runs.folder import RunFolder

torch.set_num_threads(1)


def tiny_model(loss="camal", lam=5.0, n_envs=2, n_steps=64, seed=0, **kwargs):
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(lambda: make_env("lookright/CueGrid-v0"), n_envs=n_envs, seed=seed)
    return AlignedPPO("GapCnnPolicy", env, attention_loss=loss, attention_lambda=lam, n_steps=n_steps,
                      batch_size=64, n_epochs=4, learning_rate=1e-3, seed=seed, device="cpu",
                      policy_kwargs=dict(patch=5, channels=(8, 16)), **kwargs)


# -- environment ---------------------------------------------------------------------------
def test_gymnasium_make_and_env_checker():
    env = gym.make("lookright/CueGrid-v0")
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert obs.shape == (3, 30, 30) and obs.dtype == np.uint8
    assert info["mask"].shape == (30, 30)
    assert gym.make("lookright/CueGrid-Shifted-v0").unwrapped.cue_mode == "trap"


@pytest.mark.parametrize("seed", range(20))
def test_masks_cover_the_objects_named_in_the_state(seed):
    env = CueGridEnv(cue="goal")
    obs, info = env.reset(seed=seed)
    for _ in range(3):  # also after moves
        for name, mask in info["object_masks"].items():
            r, c = info["positions"][name]
            tile = np.zeros((30, 30), dtype=np.uint8)
            tile[r * 5:(r + 1) * 5, c * 5:(c + 1) * 5] = glyph(name, 5)
            np.testing.assert_array_equal(mask, tile, err_msg=name)
        np.testing.assert_array_equal(info["mask"], info["object_masks"]["agent"] | info["object_masks"]["goal"])
        agent = info["object_masks"]["agent"].astype(bool)
        assert (obs[:, agent] == np.array(COLOURS["agent"])[:, None]).all()
        if info["positions"]["agent"] not in (info["positions"]["goal"], info["positions"]["trap"]):
            goal = info["object_masks"]["goal"].astype(bool)
            assert (obs[:, goal] == np.array(COLOURS["goal"])[:, None]).all()
        obs, _, done, _, info = env.step(env.action_space.sample())
        if done:
            break


def test_cue_touches_the_goal_in_training_and_the_trap_in_test_levels():
    for mode, anchor, other in (("goal", "goal", "trap"), ("trap", "trap", "goal")):
        env = CueGridEnv(cue=mode)
        for seed in range(200):
            _, info = env.reset(seed=seed)
            p = info["positions"]
            assert _adjacent(p["cue"], p[anchor]) and not _adjacent(p["cue"], p[other])
            assert len({p["agent"], p["goal"], p["trap"], p["cue"]}) == 4
    env = CueGridEnv(cue="random")
    for seed in range(50):
        _, info = env.reset(seed=seed)
        p = info["positions"]
        assert not _adjacent(p["cue"], p["goal"]) and not _adjacent(p["cue"], p["trap"])


def test_same_seed_same_level_and_rewards():
    a, b = CueGridEnv(), CueGridEnv()
    oa, _ = a.reset(seed=11)
    ob, _ = b.reset(seed=11)
    np.testing.assert_array_equal(oa, ob)
    env = CueGridEnv(cue="none")
    _, info = env.reset(seed=0)
    env.positions["agent"] = (info["positions"]["goal"][0], info["positions"]["goal"][1] - 1) \
        if info["positions"]["goal"][1] > 0 else (info["positions"]["goal"][0], 1)
    step = 3 if info["positions"]["goal"][1] > 0 else 2
    _, reward, terminated, _, info = env.step(step)
    assert terminated and info["outcome"] == "goal" and reward == pytest.approx(1 - 0.9 / env.max_steps)


def test_bad_environment_input():
    with pytest.raises(ConfigError, match="unknown environment id"):
        make_env("lookright/NoSuchEnv-v0")
    with pytest.raises(ConfigError, match="no pixels"):
        MaskInObservation(gym.make("CartPole-v1"))
    with pytest.raises(ConfigError, match="cue must be"):
        CueGridEnv(cue="left")

    class WrongMask(gym.Wrapper):
        def reset(self, **kw):
            obs, info = self.env.reset(**kw)
            info["mask"] = info["mask"][:, :-1]
            return obs, info

    with pytest.raises(MaskError, match=r"must be \(H, W\) = \(30, 30\)"):
        MaskInObservation(WrongMask(CueGridEnv())).reset(seed=0)


# -- policy and CAM ------------------------------------------------------------------------
def test_logits_are_the_mean_of_the_cam_plus_bias_and_extractors_agree():
    model = tiny_model()
    policy = model.policy
    env = make_env("lookright/CueGrid-v0")
    obs = [env.reset(seed=s)[0] for s in range(4)]
    batch = {PIXELS: torch.as_tensor(np.stack([o[PIXELS] for o in obs])), MASK: torch.zeros(4, 30, 30)}
    actions = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        cam, logits = policy.action_cam(batch, actions)
        assert cam.shape == (4, 6, 6)
        np.testing.assert_allclose(cam.mean(dim=(1, 2)) + policy.action_net.bias[actions],
                                   logits[torch.arange(4), actions], rtol=1e-5, atol=1e-6)
        head = PolicyHead(policy, "action")
        via_extractor = create_extractor("cam", layer=head.cam_layer, classifier=head.classifier)(
            head, batch[PIXELS].float() / 255, actions)
    torch.testing.assert_close(via_extractor, cam)
    gradcam = create_extractor("gradcam", layer=head.cam_layer)(PolicyHead(policy, "value"), batch[PIXELS].float() / 255, 0)
    assert gradcam.shape == (4, 6, 6) and torch.isfinite(gradcam).all()


def test_policy_ignores_the_mask_entry():
    model = tiny_model()
    obs = make_env("lookright/CueGrid-v0").reset(seed=0)[0]
    flipped = {PIXELS: obs[PIXELS], MASK: 1 - obs[MASK]}
    p1 = model.policy.get_distribution(model.policy.obs_to_tensor(obs)[0]).distribution.probs
    p2 = model.policy.get_distribution(model.policy.obs_to_tensor(flipped)[0]).distribution.probs
    torch.testing.assert_close(p1, p2)


def test_cell_mask_keeps_thin_glyphs():
    m = torch.zeros(1, 30, 30)
    m[0, 7, 5:10] = 1  # one row of the plus in cell (1, 1)
    out = cell_mask(m, (6, 6))
    assert out[0, 1, 1] == 1 and out.sum() == 1


# -- AlignedPPO ----------------------------------------------------------------------------
def _collect(model):
    total, callback = model._setup_learn(model.n_steps * model.n_envs, callback=None)
    callback.on_training_start(locals(), globals())
    assert model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps)


def _batch_attention_loss(model):
    from lookright.losses import create_loss

    loss = create_loss(model.attention_loss)
    (batch,) = list(model.rollout_buffer.get(None))
    with torch.no_grad():
        *_, cam = model.policy.evaluate_actions_with_attention(batch.observations, batch.actions.long().flatten())
        return float(loss(cam, cell_mask(batch.observations[MASK], (6, 6))))


@pytest.mark.parametrize("loss", ["camal", "kl"])
def test_one_update_changes_the_policy_and_lowers_the_attention_loss(loss):
    model = tiny_model(loss=loss, lam=5.0)
    _collect(model)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    loss_before = _batch_attention_loss(model)
    model.train()
    loss_after = _batch_attention_loss(model)
    changed = [k for k, v in model.policy.state_dict().items() if not torch.equal(v, before[k])]
    assert "action_net.weight" in changed and any(k.startswith("features_extractor.trunk") for k in changed)
    assert loss_after < loss_before
    assert model.attention_history[-1]["attention_loss"] is not None
    assert model.logger.name_to_value["train/attention_lambda"] == 5.0


def test_lambda_warmup_and_bad_options():
    model = tiny_model(loss="camal", lam=2.0, attention_warmup=0.5)
    model._current_progress_remaining = 0.75  # a quarter of training done
    assert model.current_lambda() == pytest.approx(1.0)
    model._current_progress_remaining = 0.2
    assert model.current_lambda() == pytest.approx(2.0)
    with pytest.raises(ConfigError, match="unknown alignment loss"):
        tiny_model(loss="nope")


def test_save_load_round_trip(tmp_path):
    model = tiny_model(loss="camal")
    model.learn(128)
    model.save(tmp_path / "model.zip")
    loaded = AlignedPPO.load(tmp_path / "model.zip", device="cpu")
    assert loaded.attention_loss == "camal" and loaded.attention_lambda == 5.0
    env = make_env("lookright/CueGrid-v0")
    for seed in range(5):
        obs = env.reset(seed=seed)[0]
        p1 = model.policy.get_distribution(model.policy.obs_to_tensor(obs)[0]).distribution.probs
        p2 = loaded.policy.get_distribution(loaded.policy.obs_to_tensor(obs)[0]).distribution.probs
        torch.testing.assert_close(p1, p2)


# -- evaluation ----------------------------------------------------------------------------
def test_remove_pixels_top_and_random():
    pixels = np.full((2, 3, 4, 4), 200, dtype=np.uint8)
    cam = torch.zeros(2, 4, 4)
    cam[0, 1, 2], cam[0, 3, 3] = 5.0, 4.0
    cam[1, 0, 0] = 1.0
    out = remove_pixels(pixels, cam, 2 / 16, "top", np.random.default_rng(0))
    assert (out[0, :, 1, 2] == 0).all() and (out[0, :, 3, 3] == 0).all() and (out[0] == 0).sum() == 6
    assert (out[1, :, 0, 0] == 0).all() and (out[1, :, 0, 1] == 0).all()  # tie broken row-major
    rand = remove_pixels(pixels, cam, 0.25, "random", np.random.default_rng(0))
    assert ((rand == 0).all(axis=1).reshape(2, -1).sum(axis=1) == 4).all()
    assert pixels.min() == 200  # the input is left alone


# -- the run layer: train, seeds, eval, summarize ---------------------------------------------
TINY = ["agent.total_timesteps=128", "agent.n_steps=32", "agent.batch_size=64", "agent.n_epochs=1", "env.n_envs=2",
        "agent.channels=[4,8]", "eval.episodes=2", "eval.masking_episodes=1", "eval.max_states=10",
        "eval.top_k=[0.1]", "eval.frames=2"]
VANILLA = CONFIGS / "rl" / "cuegrid-vanilla.yaml"
runner = CliRunner()


def rl(*args):
    return runner.invoke(app, ["rl", *map(str, args)])


def assert_clear_error(result, *phrases):
    """Exit 2 with ``error: ...`` naming every phrase, and no traceback."""
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    text = " ".join(result.output.split())
    assert "error:" in text and all(p in text for p in phrases), result.output


def fake_run(root, name, seed, kind="rl", finish=True, shift=0.0):
    """A run folder of ``kind`` without training: finished with made-up numbers, or interrupted."""
    cfg = load_rl_config(None, [f"name={name}", f"seed={seed}"])
    folder = RunFolder(root / name / f"seed{seed}")
    folder.open(kind, config_tree(cfg), dump_config(cfg), FINGERPRINT_IGNORES)
    if not finish:
        folder.release()  # the lock is gone, run.json still says running: an interrupted run
        return folder.path
    level = lambda r: {"return": r + shift, "success": 0.5}  # noqa: E731
    evaluation = {"train_levels": level(0.5 + seed / 10), "test_levels": level(0.1 * seed),
                  "alignment": {k: {"mean": 0.3 + shift} for k in ("energy_pointing_game", "iou", "cue_energy")},
                  "faithfulness": {"0.1": {"prob_drop_top": 0.2, "prob_drop_random": 0.1, "return_top": 0.0,
                                           "return_random": 0.4 + shift}}}
    folder.finish({"name": name, "seed": seed, "wall_time_s": 10.0, "evaluation": evaluation})
    return folder.path


def test_rl_train_writes_a_run_folder_and_refuses_to_overwrite_it(tmp_path):
    run = tmp_path / "run"
    result = rl("train", VANILLA, *TINY, f"out_dir={tmp_path}", "--run-dir", run)
    assert result.exit_code == 0, result.output
    info = json.loads((run / "run.json").read_text())
    assert info["kind"] == "rl" and info["status"] == "finished"
    assert info["fingerprint_ignores"] == ["out_dir", "agent.threads", "agent.device"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert not {"commit", "versions", "device", "train_time_s", "threads"} & set(metrics)
    assert metrics["wall_time_s"] > 0 and metrics["timesteps"] >= 128
    assert metrics["provenance"]["versions"]["stable_baselines3"] and metrics["provenance"]["git_commit"] is not None
    assert sorted(p.name for p in run.iterdir()) == [".lock", "config.yaml", "figures", "metrics.json", "model.zip",
                                                     "run.json"]
    before = (run / "model.zip").read_bytes()
    assert_clear_error(rl("train", VANILLA, *TINY, f"out_dir={tmp_path}", "--run-dir", run), "finished run",
                       "nothing is overwritten")
    assert (run / "model.zip").read_bytes() == before


def test_rl_train_checks_the_config_before_touching_the_folder(tmp_path):
    run = tmp_path / "run"
    assert_clear_error(rl("train", VANILLA, *TINY, "agent.threads=100000", "--run-dir", run), "agent.threads=100000")
    assert_clear_error(rl("train", VANILLA, *TINY, "agent.device=tpu", "--run-dir", run), "agent.device")
    assert_clear_error(rl("train", VANILLA, *TINY, "env.test_id=lookright/Nope-v0", "--run-dir", run),
                       "unknown environment id 'lookright/Nope-v0'")
    assert_clear_error(rl("train", VANILLA, *TINY, "align.loss=nope", "--run-dir", run), "unknown alignment loss")
    assert not run.exists()


def test_model_zip_is_written_atomically(tmp_path):
    from lookright.rl.train import save_model

    model = tiny_model(loss=None)
    path = save_model(model, tmp_path / "model.zip")
    good = path.read_bytes()

    class Broken:
        def save(self, f):
            f.write(b"half a model")
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        save_model(Broken(), path)
    assert path.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["model.zip"]
    assert AlignedPPO.load(path).attention_loss is None


def test_seeds_read_back_finished_runs_resume_others_and_refuse_foreign_folders(tmp_path):
    from lookright.rl.sweep import execute, seed_specs
    from lookright.runs.runner import run_specs

    args = ("train", VANILLA, *TINY, f"out_dir={tmp_path}", "--seeds", "2")
    result = rl(*args, "--jobs", "2")
    assert result.exit_code == 0, result.output
    seed0, seed1 = tmp_path / "cuegrid-vanilla" / "seed0", tmp_path / "cuegrid-vanilla" / "seed1"
    stamp = (seed0 / "model.zip").stat().st_mtime_ns
    # an interrupted seed1: trained again in its folder, with another thread count (not fingerprinted)
    info = json.loads((seed1 / "run.json").read_text())
    (seed1 / "run.json").write_text(json.dumps({**info, "status": "running"}))
    cfg = load_rl_config(VANILLA, [*TINY, f"out_dir={tmp_path}", "agent.threads=1"])
    results = run_specs(execute, seed_specs(cfg, 2))
    assert [r["seed"] for r in results] == [0, 1] and "error" not in results[1]
    assert (seed0 / "model.zip").stat().st_mtime_ns == stamp  # read back, not trained again
    assert json.loads((seed1 / "run.json").read_text())["attempts"] == 2
    # a folder of another config stops the command before any run starts
    assert_clear_error(rl(*args[:-1], "3", "agent.learning_rate=0.001"), "another config", "agent.learning_rate")
    assert not (tmp_path / "cuegrid-vanilla" / "seed2").exists()
    assert_clear_error(rl(*args, "--run-dir", tmp_path / "one"), "--run-dir names one run")
    assert_clear_error(rl("train", VANILLA, *TINY, "--address", "host:1"), "--backend ray")


def test_rl_eval_refuses_what_it_cannot_evaluate(tmp_path):
    assert_clear_error(rl("eval", tmp_path / "missing"), "not an RL run folder")
    (tmp_path / "empty").mkdir()
    assert_clear_error(rl("eval", tmp_path / "empty"), "not an RL run folder", "no run.json")
    supervised = fake_run(tmp_path, "sup", 0, kind="supervised")
    assert_clear_error(rl("eval", supervised), "not an RL run folder", "supervised")
    interrupted = fake_run(tmp_path, "cut", 0, finish=False)
    assert_clear_error(rl("eval", interrupted), "was interrupted", "lookright rl train")
    run = fake_run(tmp_path, "damaged", 0)
    assert_clear_error(rl("eval", run, "--set", "agent.learning_rate=1"), "eval.KEY=VALUE")
    buffer = __import__("io").BytesIO()
    tiny_model(loss=None).save(buffer)
    (run / "model.zip").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    before = (run / "metrics.json").read_text()
    assert_clear_error(rl("eval", run), "model.zip is damaged", "retrain")
    assert (run / "metrics.json").read_text() == before


def test_rl_summarize_reads_finished_rl_runs_only(tmp_path, monkeypatch):
    for seed in (0, 1, 2):
        fake_run(tmp_path / "runs" / "rl", "cuegrid-vanilla", seed)
        fake_run(tmp_path / "runs" / "rl", "cuegrid-camal", seed, shift=0.2 + seed / 100)
    fake_run(tmp_path / "runs" / "rl", "cuegrid-kl", 0, finish=False)  # interrupted: never summarised
    fake_run(tmp_path / "runs", "supervised", 0, kind="supervised")  # another pipeline
    monkeypatch.chdir(tmp_path)  # the default root is ./runs
    out = tmp_path / "table.md"
    result = rl("summarize", "--out", out)
    assert result.exit_code == 0, result.output
    summary = json.loads(out.with_suffix(".json").read_text())
    assert set(summary["methods"]) == {"cuegrid-vanilla", "cuegrid-camal"} and summary["reference"] == "cuegrid-vanilla"
    assert summary["methods"]["cuegrid-camal"]["seeds"] == [0, 1, 2]
    assert summary["methods"]["cuegrid-camal"]["on cue"]["mean"] == pytest.approx(0.51)
    assert summary["paired_tests"]["cuegrid-camal"]["energy PG"]["mean_difference"] == pytest.approx(0.21)
    text = out.read_text()
    assert "| cuegrid-camal | 3 | 0.810 ± 0.110 (p=" in text and "wall time / run (s)" in text
    assert "Faithfulness gain over cuegrid-vanilla" in text and "cuegrid-camal +0%" in text  # both F = 0.2 - 0.1
    result = rl("summarize", "runs/rl", "--reference", "cuegrid-camal")
    assert result.exit_code == 0 and "paired t-test against cuegrid-camal" in " ".join(result.output.split())
    assert_clear_error(rl("summarize", "--reference", "nope"), "--reference nope", "cuegrid-camal")
    assert_clear_error(rl("summarize", "--k", "0.3"), "--k 0.3", "evaluated: 0.1")
    assert_clear_error(rl("summarize", tmp_path / "runs" / "rl" / "cuegrid-kl"), "no finished RL run")
    assert_clear_error(rl("summarize", "--out", tmp_path / "t.json"), "names the Markdown table")


def test_no_sb3_folder_in_the_temporary_directory(tmp_path, monkeypatch):
    import tempfile

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    assert tempfile.gettempdir() == str(tmp)
    tiny_model(loss="camal").learn(128)
    assert list(tmp.iterdir()) == []


def test_env_options_replace_inherited_ones_and_foreign_options_are_config_errors(tmp_path):
    run = tmp_path / "run"
    assert_clear_error(rl("train", VANILLA, *TINY, "env.id=CartPole-v1", "--run-dir", run),
                       "'CartPole-v1'", "env.id", "env.options={'size': 6, 'tile': 5}")
    # cleared options get past that point; CartPole then fails for having no pixels, clearly
    assert load_rl_config(VANILLA, ["env.options={}"]).env.options == {}
    assert_clear_error(rl("train", VANILLA, *TINY, "env.id=CartPole-v1", "env.options={}", "--run-dir", run),
                       "has no pixels")
    assert not run.exists()


def test_a_non_finite_loss_stops_training_and_names_the_settings(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"agent.learning_rate=0.001 or align.lambda0=1e\+39"):
        tiny_model(loss="camal", lam=1e39).learn(128)
    run = tmp_path / "run"
    result = rl("train", VANILLA, *TINY, "align.loss=camal", "align.lambda0=1e39", "--run-dir", run)
    assert_clear_error(result, "the PPO loss is", "agent.learning_rate=0.0005",
                       "align.lambda0=1e+39", "at timestep 64")
    assert not run.exists()  # the folder held nothing yet: it is removed


def test_the_attention_loss_counts_the_states_it_skips():
    from stable_baselines3.common.env_util import make_vec_env

    env = make_vec_env(lambda: make_env("lookright/CueGrid-v0", cue="none", relevant=("cue",)), n_envs=2, seed=0)
    model = AlignedPPO("GapCnnPolicy", env, attention_loss="camal", n_steps=32, batch_size=32, n_epochs=2,
                       device="cpu", policy_kwargs=dict(patch=5, channels=(4, 8)))
    model.learn(64)  # every mask is empty (no cue): every state is skipped, the loss is zero, never NaN
    assert model.logger.name_to_value["train/attention_skipped"] == 2 * 64
    assert model.attention_history[-1]["attention_loss"] == 0.0


def test_rl_imports_neither_train_nor_vlm():
    import ast
    from pathlib import Path

    for path in Path(lookright.rl.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            bad = [n for n in names if n.split(".")[:2] in (["lookright", "train"], ["lookright", "vlm"])]
            assert not bad, f"{path.name}:{node.lineno} imports {bad}"


@pytest.mark.timeout(300)
def test_rl_train_eval_summarize_end_to_end(tmp_path):
    common = ["agent.total_timesteps=512", "agent.n_steps=32", "agent.batch_size=64", "env.n_envs=2",
              "eval.episodes=6", "eval.masking_episodes=3", "eval.max_states=40", "eval.top_k=[0.1]",
              "agent.channels=[8,16]", f"out_dir={tmp_path}"]
    for name in ("vanilla", "camal"):
        result = rl("train", CONFIGS / "rl" / f"cuegrid-{name}.yaml", *common, "--seeds", "2")
        assert result.exit_code == 0, result.output
    run = tmp_path / "cuegrid-camal" / "seed1"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["seed"] == 1 and metrics["timesteps"] >= 512
    assert {"train_levels", "test_levels", "alignment", "faithfulness"} <= set(metrics["evaluation"])
    assert (run / "figures" / "episodes.png").stat().st_size > 0
    from PIL import Image

    with Image.open(run / "figures" / "episode_test.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames >= 2 and gif.size[0] == 30 * 8  # 8x the 30-pixel frame
    result = rl("eval", run, "--set", "eval.episodes=4", "--set", "eval.masking_episodes=2",
                "--set", "eval.max_states=20", "--set", "eval.top_k=[0.1]")
    assert result.exit_code == 0, result.output
    evaluated = json.loads((run / "metrics.json").read_text())
    assert evaluated["evaluation"]["train_levels"]["episodes"] == 4
    assert evaluated["wall_time_s"] == metrics["wall_time_s"] and evaluated["provenance"] == metrics["provenance"]
    out = tmp_path / "table.md"
    result = rl("summarize", tmp_path, "--out", out)
    assert result.exit_code == 0, result.output
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["reference"] == "cuegrid-vanilla"
    assert summary["methods"]["cuegrid-camal"]["seeds"] == [0, 1]
    assert "energy PG" in summary["paired_tests"]["cuegrid-camal"]
    assert "| cuegrid-camal | 2 |" in out.read_text()
    assert "[cuegrid-camal](cuegrid-camal/seed0/figures/episode_test.gif)" in out.read_text()
    for m in (metrics, evaluated):
        f = m["evaluation"]["faithfulness"]["0.1"]
        assert f["faithfulness"] == pytest.approx(f["prob_drop_top"] - f["prob_drop_random"])


def test_bad_rl_configs_and_run_folders(tmp_path):
    with pytest.raises(ConfigError, match="agent.total_timesteps"):
        load_rl_config(CONFIGS / "rl" / "cuegrid-camal.yaml", ["agent.total_timesteps=0"])
    with pytest.raises(ConfigError, match="eval.top_k"):
        load_rl_config(None, ["eval.top_k=[2]"])
    from lookright.rl.evaluate import load_agent

    with pytest.raises(LookrightError, match="no model.zip"):
        load_agent(tmp_path)


def test_masking_episodes_follow_the_evaluation_episodes():
    from lookright.rl.config import load_rl_config

    config = CONFIGS / "rl" / "cuegrid-camal.yaml"
    assert load_rl_config(config).eval.masking_episodes == 200  # the published setting
    assert load_rl_config(config, ["eval.episodes=20"]).eval.masking_episodes == 20
    assert load_rl_config(config, ["eval.episodes=20", "eval.masking_episodes=5"]).eval.masking_episodes == 5
