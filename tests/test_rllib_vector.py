"""RLlib on a native vector env: ``RLlibVectorEnv`` equals what RLlib builds from single envs.

Reference: ``gym.make_vec(id, N, "sync", wrappers=[ResetSeeds, ActionMaskObservation, EpisodeReturnInfo,
RewardScale])``, the vector env RLlib's runners build when ``native_vector_env`` is false (same wrappers,
same order, ``rllib.build_algo_config``). Both are reset with one int seed, as RLlib's runner does, then
stepped with the same actions through several auto-resets.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import schedgym  # noqa: F401
from schedgym.agents.ppo.rllib_vector import RLlibVectorEnv, make_rllib_env
from schedgym.agents.ppo.wrappers import EpisodeReturnInfo, RewardScale
from schedgym.envs.core import ActionMaskObservation
from schedgym.training.seeds import ResetSeeds

N_ENVS = 3

CASES = [
    pytest.param("schedgym/MemoryMapping-v0", {"instance": "random", "n_buffers": 12, "action_mode": "order", "K": 4,
                                                "capacity": 0.5}, id="memory-random"),  # fmt: skip
    pytest.param("schedgym/AgentScheduling-v1", {"n_agents": 3}, id="agents-poisson"),
    pytest.param("schedgym/GPUAutoscaling-v1", {"workload": "synthetic", "episode_days": 0.01, "mean_rate_per_s": 1.0,
                                                 "max_replicas": 6, "history": 2}, id="gpu-synthetic"),  # fmt: skip
]


def _reference(env_id: str, kwargs: dict[str, Any], train_seeds: str | None, scale: float) -> gym.vector.VectorEnv:
    wrappers: list[Any] = [ActionMaskObservation, EpisodeReturnInfo, functools.partial(RewardScale, scale=scale)]
    if train_seeds is not None:
        wrappers.insert(0, functools.partial(ResetSeeds, train_seeds=train_seeds))
    return gym.make_vec(env_id, num_envs=N_ENVS, vectorization_mode="sync", wrappers=wrappers, **kwargs)


@pytest.mark.parametrize("train_seeds", [None, "1000-"])
@pytest.mark.parametrize(("env_id", "kwargs"), CASES)
def test_rllib_vector_env_equals_rllibs_sync_vector_of_wrapped_envs(env_id: str, kwargs: dict[str, Any],
                                                                    train_seeds: str | None) -> None:
    ctx = {"env_id": env_id, "env_kwargs": kwargs, "reward_scale": 0.5, "train_seeds": train_seeds}
    vec = make_rllib_env({**ctx, "num_envs": N_ENVS})
    ref = _reference(env_id, kwargs, train_seeds, 0.5)
    assert isinstance(vec, RLlibVectorEnv)
    assert vec.single_observation_space == ref.single_observation_space
    obs_v, _ = vec.reset(seed=7)
    obs_r, _ = ref.reset(seed=7)
    rng = np.random.default_rng(0)
    finished = 0
    for t in range(250):
        for key in ("observations", "action_mask"):
            np.testing.assert_array_equal(obs_v[key], obs_r[key], err_msg=f"step {t}: {key}")
        masks = obs_v["action_mask"]
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        obs_v, rew_v, term_v, trunc_v, info_v = vec.step(actions)
        obs_r, rew_r, term_r, trunc_r, info_r = ref.step(actions)
        np.testing.assert_array_equal(rew_v, rew_r, err_msg=f"step {t}: rewards")
        np.testing.assert_array_equal(term_v | trunc_v, term_r | trunc_r, err_msg=f"step {t}: dones")
        done = term_v | trunc_v
        if done.any():
            finished += int(done.sum())
            np.testing.assert_array_equal(info_v["_episode_return"], info_r["_episode_return"])
            np.testing.assert_allclose(info_v["episode_return"][done], info_r["episode_return"][done], rtol=1e-12)
    assert finished >= 2 * N_ENVS, "the rollout must cover auto-resets"
    vec.close()
    ref.close()


def test_train_seeds_reach_the_auto_resets() -> None:
    # Every episode of the vector env, auto-resets included, is the instance of a seed from the split:
    # the same one a single env reset with that seed draws.
    kwargs = {"instance": "random", "n_buffers": 8, "action_mode": "order", "K": 3}
    vec = make_rllib_env({"env_id": "schedgym/MemoryMapping-v0", "env_kwargs": kwargs, "train_seeds": "5,6",
                          "num_envs": 2})
    single = {s: gym.make("schedgym/MemoryMapping-v0", **kwargs) for s in (5, 6)}
    first = {s: env.reset(seed=s)[0] for s, env in single.items()}
    obs, _ = vec.reset(seed=0)
    starts = [obs["observations"][i] for i in range(2)]
    done = np.zeros(2, dtype=bool)
    for _ in range(100):
        obs, _, term, trunc, _ = vec.step(np.zeros(2, dtype=np.int64))
        starts += [obs["observations"][i] for i in np.flatnonzero(done)]  # the rows that auto-reset
        done = term | trunc
    assert len(starts) > 6
    assert all(any(np.array_equal(s, f) for f in first.values()) for s in starts)
    with pytest.raises(ValueError, match="seed_autoresets: 1 seeds for 2 envs"):
        vec.unwrapped.seed_autoresets([1])


def test_single_env_creator_matches_the_wrapped_env() -> None:
    env = make_rllib_env({"env_id": "schedgym/MemoryMapping-v0", "env_kwargs": {"instance": "minimalloc:A"},
                          "reward_scale": 2.0})
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"observations", "action_mask"}
    _, reward, *_ = env.step(0)
    assert reward > 0


def test_rllib_config_picks_the_native_vector_env_where_one_exists() -> None:
    from schedgym.agents.ppo.rllib import RLLIB_DEFAULTS, build_algo_config

    cfg = dict(RLLIB_DEFAULTS)
    native = build_algo_config("schedgym/AgentScheduling-v1", {}, cfg, seed=0)
    assert native.env == "schedgym-native-vector/schedgym/AgentScheduling-v1"
    assert gym.VectorizeMode(native.gym_env_vectorize_mode) == gym.VectorizeMode.VECTOR_ENTRY_POINT
    sync = build_algo_config("schedgym/AgentScheduling-v1", {}, {**cfg, "native_vector_env": False}, seed=0)
    assert sync.env == "schedgym:schedgym/AgentScheduling-v1"
    assert gym.VectorizeMode(sync.gym_env_vectorize_mode) == gym.VectorizeMode.SYNC
    gpu = build_algo_config("schedgym/GPUAutoscaling-v1", {}, cfg, seed=0)  # the serving families' too
    assert gym.VectorizeMode(gpu.gym_env_vectorize_mode) == gym.VectorizeMode.VECTOR_ENTRY_POINT
