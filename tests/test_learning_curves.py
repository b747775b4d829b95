"""Learning curves from one tag: PPO (SB3 and RLlib) and MuZero log every finished training episode's
return, in the env's own units, as ``episode/return`` at its env step, and the page plots that tag alike."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from schedgym.training.curves import EPISODE_RETURN_TAG, log_episode, read_episode_returns

ENV_ID = "schedgym/MemoryMapping-v0"
#: Short episodes (12 buffers) so a tiny run finishes many; on MemoryMapping an episode's return is its
#: benefit_placed_frac, which checks that the logged return is in env units (reward_scale undone).
KWARGS = {"instance": "random", "n_buffers": 12}


def _points(run: Path, tag: str) -> dict[float, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[float, list[float]] = {}
    for ev_dir in sorted({e.parent for e in run.rglob("events.out.tfevents*")}):
        acc = EventAccumulator(str(ev_dir), size_guidance={"scalars": 0})
        acc.Reload()
        if tag in acc.Tags().get("scalars", []):
            for p in acc.Scalars(tag):
                out.setdefault(float(p.step), []).append(float(p.value))
    return out


def _check_curve(run: Path, timesteps: int) -> None:
    curve = read_episode_returns(run)
    assert curve is not None, run
    steps, returns = curve
    assert len(returns) >= 3 and np.all(np.diff(steps) >= 0) and 0 < steps[-1] <= timesteps * 2
    # every return is the episode's benefit_placed_frac: env units, one point per episode, not a smoothed mean
    fracs = _points(run, "episode/benefit_placed_frac")
    rets = _points(run, EPISODE_RETURN_TAG)
    assert sorted(fracs) == sorted(rets)
    for step in rets:
        np.testing.assert_allclose(sorted(rets[step]), sorted(fracs[step]), rtol=1e-5)


def test_log_episode_writes_the_one_tag(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path / "tb"))
    log_episode(w, 10, 1.5, {"cost_usd": 3.0, "flag": True, "bad": float("nan"), "name": "x"})
    log_episode(w, 5, -2.0)
    log_episode(w, 20, float("inf"))
    w.close()
    steps, returns = read_episode_returns(tmp_path)
    assert steps.tolist() == [5.0, 10.0] and returns.tolist() == [-2.0, 1.5]
    assert _points(tmp_path, "episode/cost_usd") == {10.0: [3.0]}
    assert not _points(tmp_path, "episode/flag") and not _points(tmp_path, "episode/bad")
    assert read_episode_returns(tmp_path / "none") is None


def _train(backend: str, out: Path, sets: list[str], timesteps: int = 256) -> None:
    from schedgym.cli import main as cli_main

    args = ["train", "--env", ENV_ID, "--algo", "ppo", "--backend", backend, "--kwargs", json.dumps(KWARGS),
            "--timesteps", str(timesteps), "--out", str(out), "--no-progress"]
    for item in sets:
        args += ["--set", item]
    assert cli_main(args) == 0


def test_sb3_logs_every_episode_return(tmp_path: Path) -> None:
    _train("sb3", tmp_path / "run", ["n_envs=2", "n_steps=64", "batch_size=64", "n_epochs=1", "reward_scale=0.5"])
    _check_curve(tmp_path / "run", 256)


def test_rllib_logs_every_episode_return(tmp_path: Path, ray_session) -> None:
    _train("rllib", tmp_path / "run", ["num_envs_per_env_runner=1", "train_batch_size=64", "minibatch_size=32",
                                       "num_epochs=1", "reward_scale=0.5"])
    _check_curve(tmp_path / "run", 256)


def test_muzero_logs_every_episode_return(tmp_path: Path, ray_session) -> None:
    from schedgym.agents.muzero import train
    from schedgym.training.common import TrainSpec

    cfg = {"num_simulations": 4, "eval_simulations": 4, "envs_per_worker": 4, "hidden_dim": 16, "layers": [32],
           "batch_size": 16, "min_replay_transitions": 16, "train_act_ratio": 0.05, "checkpoint_every": 1000,
           "selfplay_num_cpus": 0.5, "learner_num_cpus": 0.5}
    train(TrainSpec(ENV_ID, dict(KWARGS), "muzero", None, cfg, 200, 0, tmp_path / "run", progress=False))
    _check_curve(tmp_path / "run", 200)


def test_page_plots_the_tag_for_every_algorithm(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    from schedgym.benchmark.render import _learning_curves

    for name, algo in (("a", {"algo": "ppo", "backend": "sb3"}), ("b", {"algo": "muzero", "backend": None})):
        run = tmp_path / name
        (run / "tb").mkdir(parents=True)
        (run / "schedgym_agent.json").write_text(json.dumps(algo))
        w = SummaryWriter(str(run / "tb"))
        for k in range(5):
            log_episode(w, 10 * k, float(k))
        w.add_scalar("rollout/ep_rew_mean", 9.0, 40)  # a smoothed tag of older runs: not plotted
        w.close()
        curves = _learning_curves(run)
        assert list(curves) == [EPISODE_RETURN_TAG] and curves[EPISODE_RETURN_TAG][1].tolist() == [0, 1, 2, 3, 4]
