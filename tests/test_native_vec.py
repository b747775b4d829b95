"""SB3 on a native vector env (schedgym.agents.ppo.native_vec): SB3's same-step autoreset, Monitor records,
reward scaling and masks, equal to DummyVecEnv over gym.make envs on the same seeds and actions."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import schedgym  # noqa: F401
from schedgym.agents.ppo.native_vec import NativeVecEnv, has_native_vector_env

ENV = "schedgym/MemoryMapping-v0"
KWARGS = {"instance": "random", "n_buffers": 12}


def test_native_vec_env_steps_as_single_envs_with_sb3_autoreset():
    n = 3
    vec = NativeVecEnv(ENV, KWARGS, n, reward_scale=0.5)
    vec.seed(7)
    obs = vec.reset()
    singles = [gym.make(ENV, **KWARGS) for _ in range(n)]
    single_obs = [env.reset(seed=7 + i)[0] for i, env in enumerate(singles)]
    assert np.array_equal(obs, np.stack(single_obs))
    returns = np.zeros(n)
    episodes = 0
    rng = np.random.default_rng(0)
    for _ in range(40):
        masks = np.stack(vec.env_method("action_masks"))
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        obs, rewards, dones, infos = vec.step(actions)
        for i, env in enumerate(singles):
            assert np.array_equal(masks[i], env.unwrapped.action_masks())
            o, r, term, trunc, info = env.step(int(actions[i]))
            returns[i] += r
            assert rewards[i] == pytest.approx(0.5 * r)  # scaled for training ...
            assert dones[i] == (term or trunc)
            if dones[i]:
                assert np.array_equal(infos[i]["terminal_observation"], o)
                assert infos[i]["episode"]["r"] == pytest.approx(returns[i])  # ... recorded in env units
                assert infos[i]["TimeLimit.truncated"] == (trunc and not term)
                assert infos[i]["metrics"] == pytest.approx(info["metrics"])  # what the trainers log
                returns[i] = 0.0
                episodes += 1
                o, _ = env.reset()  # the sub-env continues its own seed stream, as a gym.make env does
            assert np.array_equal(obs[i], o)
    assert episodes >= n  # 12-buffer episodes: every sub-env ended and was reset at least once
    assert vec.has_attr("action_masks")
    from schedgym.envs import ENV_ENTRIES

    assert all(has_native_vector_env(e.id) == (e.vector_entry_point is not None) for e in ENV_ENTRIES)
    vec.close()


def test_train_seeds_apply_to_every_reset():
    from schedgym.training.seeds import TrainSeeds

    vec = NativeVecEnv(ENV, KWARGS, 2, train_seeds=TrainSeeds(seeds=(1000, 1001)))
    vec.seed(0)
    obs = vec.reset()
    options = [gym.make(ENV, **KWARGS).reset(seed=s)[0] for s in (1000, 1001)]
    assert all(any(np.array_equal(row, o) for o in options) for row in obs)


def test_sb3_trains_on_the_native_vector_env(tmp_path):
    from schedgym.agents.ppo.sb3 import train_sb3  # noqa: F401  (import check: the trainer module loads)
    from schedgym.cli import main

    out = tmp_path / "run"
    rc = main(["train", "--env", ENV, "--algo", "ppo", "--backend", "sb3", "--kwargs", '{"instance": "random", "n_buffers": 12}',
               "--timesteps", "512", "--set", "native_vector_env=true", "--set", "n_envs=8", "--set", "n_steps=32",
               "--set", "batch_size=64", "--no-progress", "--out", str(out)])  # fmt: skip
    assert rc in (0, None)
    assert (out / "policy.pt").is_file()
    from schedgym.training.curves import read_episode_returns

    steps, returns = read_episode_returns(out)
    assert len(returns) >= 8  # every sub-env finished episodes, logged under episode/return
