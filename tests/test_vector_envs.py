"""Native vector envs (``vector_entry_point``) equal N single envs step for step.

Reference: N envs from ``gym.make`` (same kwargs, seeds ``seed + i``), autoreset the Gymnasium 1.x way
(next step: the step after an episode ends resets that env without a seed, ignores its action, and
returns reward 0, not terminated, not truncated and the reset's info), infos gathered in the vector-info
convention by ``gymnasium.vector.SyncVectorEnv`` over those same envs.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import schedgym  # noqa: F401
from schedgym.envs import ENV_ENTRIES
from schedgym.envs.agent_scheduling.vector import AgentSchedulingVectorEnv

AGENTS = "schedgym/AgentScheduling-v1"
N_ENVS = 4


def assert_same(a: Any, b: Any, where: str) -> None:
    """Exact equality of nested infos (dicts of arrays), NaN == NaN, same keys, same dtypes."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(set(a) ^ set(b))}"
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
        return
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, f"{where}: shape {a.shape} != {b.shape}"
    if a.dtype == object or b.dtype == object:
        assert a.tolist() == b.tolist(), f"{where}: {a} != {b}"
    else:
        assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} != {b.dtype}"
        np.testing.assert_array_equal(a, b, err_msg=where)


def draw_actions(rng: np.random.Generator, masks: np.ndarray, step: int) -> np.ndarray:
    """Legal actions mostly; every 5th sub-env action illegal under its mask or out of range."""
    n, n_actions = masks.shape
    actions = np.empty(n, dtype=np.int64)
    for i in range(n):
        legal = np.flatnonzero(masks[i])
        illegal = np.flatnonzero(masks[i] == 0)
        u = rng.random()
        if u < 0.1 and illegal.size:
            actions[i] = rng.choice(illegal)
        elif u < 0.15:
            actions[i] = rng.choice([-1, n_actions, n_actions + 5])
        else:
            actions[i] = rng.choice(legal)
    return actions


CASES = [
    pytest.param({"n_agents": 4}, 300, id="poisson-default"),
    pytest.param({"n_agents": 4, "workload": "azure-code"}, 300, id="azure-code"),
    pytest.param({"n_agents": 6, "max_sim_s": 25.0, "invalid_action_penalty": 0.5, "n_cores": 1}, 300,
                 id="truncating-penalty"),  # fmt: skip
]


def compare_step_for_step(env_id: str, kwargs: dict[str, Any], n_steps: int, vector_cls: type) -> dict[str, int]:
    """Steps ``gym.make_vec(env_id, vector_entry_point)`` and SyncVectorEnv over N ``gym.make`` envs with the
    same seeds and actions, asserting equal observations, rewards, terminations, infos (masks included);
    returns counts of what the rollout covered."""
    vec = gym.make_vec(env_id, num_envs=N_ENVS, vectorization_mode="vector_entry_point", **kwargs)
    assert isinstance(vec.unwrapped, vector_cls)
    assert vec.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    singles = [gym.make(env_id, **kwargs) for _ in range(N_ENVS)]
    sync = gym.vector.SyncVectorEnv([lambda env=env: env for env in singles], copy=True)
    assert sync.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP

    obs_v, info_v = vec.reset(seed=11)
    obs_s, info_s = sync.reset(seed=11)
    np.testing.assert_array_equal(obs_v, obs_s)
    assert obs_v.dtype == np.float32 and obs_v.shape == (N_ENVS, *singles[0].observation_space.shape)
    assert info_v["action_mask"].shape == (N_ENVS, singles[0].action_space.n)
    assert_same(info_v, info_s, "reset info")

    rng = np.random.default_rng(3)
    counts = {"done": 0, "truncated": 0, "invalid": 0, "autoresets": 0}
    prev_done = np.zeros(N_ENVS, dtype=bool)
    for t in range(n_steps):
        if t == 7:  # a float action is not integral: every sub-env takes its default action, penalised
            actions: np.ndarray = np.full(N_ENVS, 0.0)
        else:
            actions = draw_actions(rng, info_v["action_mask"], t)
        out_v = vec.step(actions)
        out_s = sync.step(actions)
        for name, a, b in zip(("obs", "reward", "terminated", "truncated"), out_v[:4], out_s[:4]):
            assert a.shape == b.shape and a.dtype == b.dtype, (t, name, a.dtype, b.dtype)
            np.testing.assert_array_equal(a, b, err_msg=f"step {t}: {name}")
        assert_same(out_v[4], out_s[4], f"step {t} info")
        info_v = out_v[4]
        counts["autoresets"] += int(prev_done.sum())
        prev_done = out_v[2] | out_v[3]
        counts["done"] += int(prev_done.sum())
        counts["truncated"] += int(out_v[3].sum())
        counts["invalid"] += int(info_v.get("invalid_action", np.zeros(1, bool)).sum())
        if prev_done.any():
            assert info_v["_metrics"].tolist() == prev_done.tolist()
    assert counts["autoresets"] and counts["done"] >= N_ENVS, "the rollout must cover autoresets"
    assert counts["invalid"] > 0
    vec.close()
    sync.close()
    return counts


@pytest.mark.parametrize(("kwargs", "n_steps"), CASES)
def test_agent_scheduling_vector_equals_single_envs(kwargs: dict[str, Any], n_steps: int) -> None:
    counts = compare_step_for_step(AGENTS, kwargs, n_steps, AgentSchedulingVectorEnv)
    if kwargs.get("max_sim_s"):
        assert counts["truncated"] > 0, "the truncating case must truncate"


def test_agent_scheduling_vector_time_limit_and_seeding() -> None:
    """``max_episode_steps`` truncates with metrics (as TimeLimit would); a list of seeds seeds each sub-env."""
    vec = gym.make_vec(AGENTS, num_envs=2, vectorization_mode="vector_entry_point", n_agents=4, max_episode_steps=3)
    _, info = vec.reset(seed=[5, 9])
    single = gym.make(AGENTS, n_agents=4)
    obs1, _ = single.reset(seed=9)
    obs, _ = vec.reset(seed=[5, 9])
    np.testing.assert_array_equal(obs[1], obs1)
    for _ in range(3):
        _, _, terminated, truncated, info = vec.step(info["action_mask"].argmax(axis=1))
    assert truncated.all() and info["_metrics"].all()
    assert set(k for k in info["metrics"] if not k.startswith("_")) == set(single.unwrapped.metrics())
    # next step: autoreset, reward 0, not done
    _, reward, terminated, truncated, info = vec.step(np.zeros(2, dtype=np.int64))
    assert not terminated.any() and not truncated.any() and (reward == 0).all() and "metrics" not in info
    with pytest.raises(ValueError):
        vec.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError):
        gym.make_vec(AGENTS, num_envs=2, vectorization_mode="vector_entry_point", render_mode="ansi")


def test_registered_vector_entry_points_build() -> None:
    for entry in ENV_ENTRIES:
        if entry.vector_entry_point is None:
            continue
        vec = gym.make_vec(entry.id, num_envs=3, vectorization_mode="vector_entry_point", **entry.test_kwargs)
        obs, info = vec.reset(seed=0)
        assert obs.shape == (3, *vec.single_observation_space.shape)
        assert info["action_mask"].shape == (3, vec.single_action_space.n)
        vec.close()


MEMORY = "schedgym/MemoryMapping-v0"
MEMORY_CASES = [
    pytest.param({"instance": "minimalloc:A", "K": 4}, 400, id="minimalloc-place"),  # episodes end together
    pytest.param({"instance": "minimalloc:B", "action_mode": "order", "invalid_action_penalty": 0.5}, 400,
                 id="minimalloc-order-penalty"),  # fmt: skip
    pytest.param({"instance": "random", "n_buffers": 30, "action_mode": "order", "K": 5, "capacity": 0.3}, 300,
                 id="random-order"),  # fmt: skip
    pytest.param({"instance": "random", "planted": True, "n_buffers": 25, "K": 3}, 200, id="planted-place"),
]


@pytest.mark.parametrize(("kwargs", "n_steps"), MEMORY_CASES)
def test_memory_mapping_vector_equals_single_envs(kwargs: dict[str, Any], n_steps: int) -> None:
    from schedgym.envs.memory_mapping.vector import MemoryMappingVectorEnv

    compare_step_for_step(MEMORY, kwargs, n_steps, MemoryMappingVectorEnv)


def test_memory_mapping_vector_time_limit_and_seeding() -> None:
    vec = gym.make_vec(MEMORY, num_envs=2, vectorization_mode="vector_entry_point", n_buffers=20, max_episode_steps=3)
    single = gym.make(MEMORY, n_buffers=20)
    obs1, _ = single.reset(seed=9)
    obs, info = vec.reset(seed=[5, 9])
    np.testing.assert_array_equal(obs[1], obs1)
    for _ in range(3):
        _, _, terminated, truncated, info = vec.step(info["action_mask"].argmax(axis=1))
    assert truncated.all() and not terminated.any() and info["_metrics"].all()
    assert set(k for k in info["metrics"] if not k.startswith("_")) == set(single.unwrapped.metrics())
    _, reward, terminated, truncated, info = vec.step(np.zeros(2, dtype=np.int64))
    assert not terminated.any() and not truncated.any() and (reward == 0).all() and "metrics" not in info
    assert "action" not in info and "invalid_action" not in info  # every sub-env was reset, none stepped
    # Returned arrays stay the caller's: later steps and partial resets write new ones.
    obs0, _, _, _, info0 = vec.step(np.zeros(2, dtype=np.int64))
    kept, kept_mask = obs0.copy(), info0["action_mask"].copy()
    obs1, _ = vec.reset(options={"reset_mask": np.array([True, False])})
    vec.step(np.zeros(2, dtype=np.int64))
    np.testing.assert_array_equal(obs0, kept)
    np.testing.assert_array_equal(info0["action_mask"], kept_mask)
    np.testing.assert_array_equal(obs1[1], kept[1])
    with pytest.raises(ValueError):
        vec.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError):
        gym.make_vec(MEMORY, num_envs=2, vectorization_mode="vector_entry_point", render_mode="ansi")
    assert gym.make(MEMORY, n_buffers=20).spec.max_episode_steps == 20


GPU = "schedgym/GPUAutoscaling-v1"
GPU_CASES = [
    # episodes of different lengths (the batch's request axis grows and rows are re-padded), cold starts
    pytest.param({"workload": "synthetic", "episode_days": 0.02, "mean_rate_per_s": 2.0, "max_replicas": 8,
                  "history": 3}, 90, id="synthetic-short"),  # fmt: skip
    pytest.param({"workload": "azure-conv", "trace_window_hours": 0.25, "rate_scale": 0.5, "max_replicas": 10,
                  "invalid_action_penalty": 0.5, "interval_s": 120.0}, 40, id="azure-conv-windows-penalty"),  # fmt: skip
]


@pytest.mark.parametrize(("kwargs", "n_steps"), GPU_CASES)
def test_gpu_autoscaling_vector_equals_single_envs(kwargs: dict[str, Any], n_steps: int) -> None:
    from schedgym.envs.gpu_autoscaling.vector import GPUAutoscalingVectorEnv

    compare_step_for_step(GPU, kwargs, n_steps, GPUAutoscalingVectorEnv)


def test_gpu_autoscaling_vector_time_limit_and_spec() -> None:
    kwargs = {"workload": "synthetic", "episode_days": 0.02, "mean_rate_per_s": 2.0, "max_replicas": 8}
    vec = gym.make_vec(GPU, num_envs=2, vectorization_mode="vector_entry_point", max_episode_steps=3, **kwargs)
    single = gym.make(GPU, **kwargs)
    assert single.spec.max_episode_steps == single.unwrapped.horizon_steps == 29  # ceil(0.02 d / 60 s)
    obs1, _ = single.reset(seed=9)
    obs, info = vec.reset(seed=[5, 9])
    np.testing.assert_array_equal(obs[1], obs1)
    for _ in range(3):
        _, _, terminated, truncated, info = vec.step(np.full(2, 3))
    assert truncated.all() and not terminated.any() and info["_metrics"].all()
    assert set(info["metrics"]) - {f"_{k}" for k in info["metrics"]} == set(single.unwrapped.metrics())
    _, reward, terminated, truncated, info = vec.step(np.zeros(2, dtype=np.int64))
    assert not terminated.any() and not truncated.any() and (reward == 0).all() and "metrics" not in info
    with pytest.raises(ValueError, match="actions must have shape"):
        vec.step(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="does not render"):
        gym.make_vec(GPU, num_envs=2, vectorization_mode="vector_entry_point", render_mode="ansi")


POWER = "schedgym/PowerCapping-v2"
POWER_CASES = [
    pytest.param({"n_servers": 10, "provisioned_servers": 8, "episode_hours": 0.1}, 60, id="batch-lp"),
    pytest.param({"n_servers": 6, "provisioned_servers": 5, "episode_hours": 0.05, "lp_workload": "interactive",
                  "workload": "synthetic", "invalid_action_penalty": 0.5}, 40, id="interactive-synthetic-penalty"),  # fmt: skip
]


@pytest.mark.parametrize(("kwargs", "n_steps"), POWER_CASES)
def test_power_capping_vector_equals_single_envs(kwargs: dict[str, Any], n_steps: int) -> None:
    from schedgym.envs.power_capping.vector import PowerCappingVectorEnv

    compare_step_for_step(POWER, kwargs, n_steps, PowerCappingVectorEnv)


@pytest.mark.parametrize(
    ("env_id", "kwargs", "n_steps"),
    [
        (AGENTS, {"n_agents": 5, "workload": "azure-code"}, 200),
        (GPU, {"workload": "synthetic", "episode_days": 0.02, "mean_rate_per_s": 2.0, "max_replicas": 8}, 40),
        (POWER, {"n_servers": 6, "provisioned_servers": 5, "episode_hours": 0.05}, 40),
        (MEMORY, {"instance": "random", "n_buffers": 25, "action_mode": "order", "K": 4}, 120),
    ],
)
def test_parallel_and_serial_vector_envs_agree(env_id: str, kwargs: dict[str, Any], n_steps: int) -> None:
    """``parallel=True`` (sub-envs on numba's threads, or PowerCapping's rows on a thread pool; the default)
    and ``parallel=False`` step alike, on every family."""
    par = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", **kwargs)
    ser = gym.make_vec(env_id, num_envs=3, vectorization_mode="vector_entry_point", parallel=False, **kwargs)
    assert par.unwrapped.parallel and not ser.unwrapped.parallel
    obs_p, info = par.reset(seed=4)
    obs_s, _ = ser.reset(seed=4)
    rng = np.random.default_rng(1)
    for t in range(n_steps):
        np.testing.assert_array_equal(obs_p, obs_s, err_msg=f"step {t}")
        actions = draw_actions(rng, info["action_mask"], t)
        obs_p, rew_p, term_p, trunc_p, info = par.step(actions)
        obs_s, rew_s, term_s, trunc_s, _ = ser.step(actions)
        np.testing.assert_array_equal(rew_p, rew_s)
        np.testing.assert_array_equal(term_p | trunc_p, term_s | trunc_s)
    with pytest.raises(ValueError, match="parallel"):
        gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", parallel="yes", **kwargs)
