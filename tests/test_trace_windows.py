"""Trace windows (``trace_window_hours`` / ``trace_offset_hours``): N seeds replay N windows of a trace, and
the default still replays the whole trace (the leaderboard's episode)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import schedgym  # noqa: F401  (registers the ids)
from schedgym.envs.core.traces import TraceWindow, load_azure_trace


def _arrivals(env: gym.Env, seed: int) -> np.ndarray:
    """The arrival times of the episode ``seed`` draws, whatever the env keeps them in."""
    env.reset(seed=seed)
    u = env.unwrapped
    if hasattr(u.state, "workload") and hasattr(u.state.workload, "agent_arrival_s"):  # AgentScheduling
        return np.asarray(u.state.workload.agent_arrival_s, dtype=np.float64)
    if hasattr(u.state, "workload"):  # GPUAutoscaling
        return np.sort(u.state.workload.arrival_s)
    a = u.state.fleet.arrival_s  # PowerCapping: per-server queues, padded with inf
    return np.sort(a[np.isfinite(a)])


IDS = [("schedgym/GPUAutoscaling-v1", {"workload": "azure-code"}),
       ("schedgym/PowerCapping-v2", {"workload": "azure-code"}),
       ("schedgym/AgentScheduling-v1", {"workload": "azure-code"})]


@pytest.mark.parametrize(("env_id", "kwargs"), IDS)
def test_two_seeds_replay_two_windows(env_id: str, kwargs: dict[str, Any]) -> None:
    env = gym.make(env_id, trace_window_hours=0.25, **kwargs)
    a0, off0 = _arrivals(env, 0), env.unwrapped.trace_offset_s
    a1, off1 = _arrivals(env, 1), env.unwrapped.trace_offset_s
    assert off0 != off1 and 0.0 <= min(off0, off1) and max(off0, off1) <= load_azure_trace("azure-code").duration_s - 900
    assert a0.size and a1.size and (a0.size != a1.size or not np.array_equal(a0, a1))
    assert a0.max() < 900.0 and a1.max() < 900.0  # shifted to the window's start
    assert np.array_equal(_arrivals(env, 0), a0)  # the seed fixes the window
    if env_id != "schedgym/AgentScheduling-v1":  # its horizon is max_sim_s, not the trace
        assert env.spec.max_episode_steps == env.unwrapped.horizon_steps < gym.make(env_id, **kwargs).spec.max_episode_steps


@pytest.mark.parametrize(("env_id", "kwargs"), IDS)
def test_the_default_replays_the_whole_trace(env_id: str, kwargs: dict[str, Any]) -> None:
    """Default = offset 0 over the whole trace, with the same random stream (no draw for the window)."""
    whole = _arrivals(gym.make(env_id, **kwargs), 5)
    assert np.array_equal(whole, _arrivals(gym.make(env_id, trace_offset_hours=0.0, **kwargs), 5))
    if env_id == "schedgym/GPUAutoscaling-v1":  # rate_scale 1: exactly the trace's arrivals
        assert np.array_equal(whole, load_azure_trace("azure-code").arrival_s)


def test_a_fixed_offset_is_the_same_window_every_seed() -> None:
    env = gym.make("schedgym/GPUAutoscaling-v1", workload="azure-conv", trace_window_hours=0.2, trace_offset_hours=0.5)
    a = _arrivals(env, 0)
    assert np.array_equal(a, _arrivals(env, 1)) and env.unwrapped.trace_offset_s == 1800.0
    t = load_azure_trace("azure-conv").arrival_s
    assert np.array_equal(a, np.sort(t[(t >= 1800.0) & (t < 1800.0 + 720.0)] - 1800.0))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"workload": "azure-code", "trace_window_hours": 2.0}, "trace_window_hours=2.0 must be > 0 and <="),
    ({"workload": "azure-code", "trace_window_hours": 0.0}, "trace_window_hours=0.0"),
    ({"workload": "azure-code", "trace_window_hours": 0.5, "trace_offset_hours": 0.6}, "trace_offset_hours=0.6"),
    ({"workload": "azure-code", "trace_offset_hours": -1.0}, "trace_offset_hours=-1.0"),
    ({"workload": "azure-code", "trace_window_hours": "1"}, "trace_window_hours must be a finite number"),
    ({"workload": "synthetic", "trace_window_hours": 0.5}, "apply to trace workloads only"),
])
def test_bad_windows_are_refused_by_name(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        gym.make("schedgym/GPUAutoscaling-v1", **kwargs)


def test_power_capping_refuses_two_lengths() -> None:
    with pytest.raises(ValueError, match="episode_hours and trace_window_hours"):
        gym.make("schedgym/PowerCapping-v2", episode_hours=0.5, trace_window_hours=0.5)


def test_window_cut_includes_the_last_arrival_when_it_reaches_the_end() -> None:
    trace = load_azure_trace("azure-conv")
    w = TraceWindow.make(trace, None, 0.5)
    cut = w.cut(trace, w.draw_offset(np.random.default_rng(0)))
    assert cut.arrival_s[-1] == pytest.approx(trace.duration_s - 1800.0) and w.length_s == trace.duration_s - 1800.0
