"""GPUAutoscaling-v0: dynamics, workloads, trace files, kwarg errors and the baselines' ordering."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import gymnasium as gym
import numpy as np
import pytest

import schedgym  # noqa: F401
from schedgym.baselines import make_policy
from schedgym.envs.core.traces import TraceFormatError, load_azure_trace
from schedgym.envs.gpu_autoscaling import GPUAutoscalingEnv, SyntheticParams, serve_interval
from schedgym.envs.gpu_autoscaling.workload import generate_synthetic, make_workload
from schedgym.envs.core.perf_profile import load_perf_profile
from schedgym.evaluation import make_env, run_episode

ENV_ID = "schedgym/GPUAutoscaling-v0"
BASELINES = ("static_peak", "hpa", "queue_keda", "predictive", "bayesian")


def run(kwargs: dict, policy: str, seed: int = 0) -> dict:
    env = make_env(ENV_ID, kwargs)
    return run_episode(env, make_policy(policy, ENV_ID), seed=seed).metrics


class _Const:
    """Always the same action index (clamped by the env's default-action rule if illegal)."""

    def __init__(self, action: int) -> None:
        self.name, self.action = "const", action

    def reset(self, env) -> None:
        pass

    def act(self, obs, info) -> int:
        return self.action


# ------------------------------------------------------------------ baselines on the same arrivals
@pytest.mark.parametrize("workload", ["azure-conv", "azure-code"])
def test_oracle_no_costlier_than_any_baseline_meeting_the_sla(workload):
    kwargs = {"workload": workload}
    results = {name: run(kwargs, name) for name in (*BASELINES, "oracle")}
    oracle = results["oracle"]
    assert oracle["sla_met"] == 1.0, oracle
    assert results["static_peak"]["sla_met"] == 1.0, results["static_peak"]
    meeting = {n: m for n, m in results.items() if m["sla_met"] == 1.0 and n != "oracle"}
    assert meeting, "at least static_peak meets the SLA"
    for name, m in meeting.items():
        assert oracle["cost_usd"] <= m["cost_usd"] + 1e-9, (name, m["cost_usd"], oracle["cost_usd"])
    # All runs replayed the same arrivals.
    assert len({m["requests"] for m in results.values()}) == 1


def test_static_peak_meets_sla_on_a_synthetic_episode():
    m = run({"workload": "synthetic", "episode_days": 0.1, "mean_rate_per_s": 3.0}, "static_peak", seed=5)
    assert m["sla_met"] == 1.0 and m["sla_attainment"] >= 0.99


def test_fleet_pinned_at_min_replicas_under_load_violates_sla():
    env = make_env(ENV_ID, {"workload": "azure-conv", "min_replicas": 1, "initial_replicas": 1})
    down = int(np.argmin(env.unwrapped.deltas))  # most negative delta: illegal at the floor, so the no-op runs
    m = run_episode(env, _Const(down), seed=0).metrics
    assert m["sla_met"] == 0.0 and m["sla_attainment"] < 0.5
    assert m["gpu_hours"] == pytest.approx(8 * 1 * env.unwrapped.n_steps / 60.0)
    assert m["dropped"] > 0


# ------------------------------------------------------------------ dynamics
def _reference_fifo(arrival, work, carry, t0, t1, rates_at):
    """Event-by-event fluid FIFO (one request at a time over the pooled fleet), for checking serve_interval."""
    grid = np.linspace(t0, t1, 200001)
    rate = rates_at(grid[:-1])
    cap = np.concatenate(([0.0], np.cumsum(rate * np.diff(grid))))  # C(t) on a fine grid
    free_c = carry
    starts = []
    for a, w in zip(arrival, work):
        c = 0.0 if a <= t0 else np.interp(a, grid, cap)
        s_c = max(c, free_c)
        if s_c >= cap[-1]:
            break
        i = int(np.searchsorted(cap, s_c, side="left"))
        starts.append(max(a, grid[min(i, grid.size - 1)]))
        free_c = s_c + w
    return np.array(starts)


def test_serve_interval_matches_event_by_event_fifo():
    rng = np.random.default_rng(0)
    trace = load_azure_trace("azure-code")
    wl = make_workload(trace, load_perf_profile(), 32, interval_s=60.0)
    t0, t1 = 60.0 * 14, 60.0 * 15  # a burst minute (632 requests)
    new = np.flatnonzero((wl.arrival_s >= t0) & (wl.arrival_s < t1))
    queue = np.flatnonzero((wl.arrival_s >= t0 - 60) & (wl.arrival_s < t0))[-40:]
    pending = np.sort(t0 + rng.uniform(5, 55, size=3))
    res = serve_interval(wl, queue, new, 3.0, t0, t1, 2, pending, drop_after_s=1e9)
    idx = np.concatenate((queue, new))
    ref = _reference_fifo(
        wl.arrival_s[idx], wl.work_s[idx], 3.0, t0, t1, lambda t: 2 + np.searchsorted(pending, t, side="right")
    )
    assert res.started_idx.size == ref.size
    np.testing.assert_allclose(res.start_s, ref, atol=1e-3)
    np.testing.assert_allclose(res.ttft_s, ref - wl.arrival_s[res.started_idx] + wl.prefill_s[res.started_idx],
                               atol=1e-3)
    # Conservation of work, and the fleet cannot do more than its capacity.
    assert res.queue_idx.size > 0
    assert res.busy_s == pytest.approx(3.0 + wl.work_s[res.started_idx].sum() - res.carry_work_s)
    assert res.busy_s <= res.capacity_s + 1e-9
    assert res.capacity_s == pytest.approx(2 * 60 + np.sum(t1 - pending))


@pytest.mark.parametrize("cold_start_s, ready_steps", [(120.0, 2), (90.0, 2), (30.0, 1), (0.0, 0)])
def test_cold_start_delays_capacity(cold_start_s, ready_steps):
    env = GPUAutoscalingEnv("azure-conv", cold_start_s=cold_start_s, initial_replicas=2)
    env.reset(seed=0)
    up4 = int(np.flatnonzero(env.deltas == 4)[0])
    noop = int(np.flatnonzero(env.deltas == 0)[0])
    env.step(up4)
    for _ in range(3):
        env.step(noop)
    cap = env.state.log_capacity_s[:4] / 60.0  # mean ready replicas per interval
    expected = [2 + 4 * np.clip((60 * (k + 1) - cold_start_s) / 60, 0, 1) for k in range(4)]
    np.testing.assert_allclose(cap, expected)
    assert env.state.log_billed[0] == 6  # billed from the launch
    assert np.flatnonzero(cap >= 6 - 1e-9)[0] == ready_steps


def test_scale_down_cancels_cold_starting_replicas_first():
    env = GPUAutoscalingEnv("azure-conv", initial_replicas=3)
    env.reset(seed=0)
    env.step(int(np.flatnonzero(env.deltas == 4)[0]))
    env.step(int(np.flatnonzero(env.deltas == -2)[0]))
    assert env.state.ready == 3 and env.state.pending_ready_s.size == 2 and env.billed == 5


def test_drops_are_counted_and_reward_matches_costs():
    env = GPUAutoscalingEnv("azure-conv", min_replicas=1, initial_replicas=1, drop_after_s=60.0)
    env.reset(seed=0)
    total = 0.0
    done = False
    while not done:
        _, r, te, tr, info = env.step(3)
        total += r
        done = te or tr
    m = info["metrics"]
    assert m["dropped"] > 0
    assert m["dropped"] == np.count_nonzero(np.isinf(env.state.ttft_s))
    assert -total == pytest.approx(m["cost_usd"] + m["penalty_usd"])  # no scaling: no switch cost


def test_rate_scale_replicates_arrivals():
    a = GPUAutoscalingEnv("azure-conv")
    b = GPUAutoscalingEnv("azure-conv", rate_scale=2.5)
    a.reset(seed=1)
    b.reset(seed=1)
    ratio = len(b.state.workload) / len(a.state.workload)
    assert 2.4 < ratio < 2.6 and a.n_steps == b.n_steps


def test_synthetic_calibration_to_the_traces():
    rng = np.random.default_rng(0)
    flat = SyntheticParams(diurnal_amplitude=0.0, burstiness=1.0, episode_days=0.5)
    bursty = generate_synthetic(flat, rng)
    per_min = np.bincount((bursty.arrival_s // 60).astype(int))
    assert bursty.mean_rate_per_s == pytest.approx(5.5, rel=0.1)
    assert 0.7 < per_min.std() / per_min.mean() < 1.4  # azure-code: 1.03
    poisson = generate_synthetic(SyntheticParams(diurnal_amplitude=0.0, burstiness=0.0, episode_days=0.5), rng)
    per_min = np.bincount((poisson.arrival_s // 60).astype(int))
    assert per_min.std() / per_min.mean() < 0.15  # Poisson at 330/min: CV ~ 0.055
    day = generate_synthetic(SyntheticParams(diurnal_amplitude=0.5, burstiness=0.0), rng)
    per_hour = np.bincount((day.arrival_s // 3600).astype(int))
    assert per_hour.argmax() in (13, 14, 15) and per_hour.max() / per_hour.min() > 2.5


def test_synthetic_is_seeded():
    e1, e2 = GPUAutoscalingEnv(episode_days=0.05), GPUAutoscalingEnv(episode_days=0.05)
    e1.reset(seed=4)
    e2.reset(seed=4)
    np.testing.assert_array_equal(e1.state.workload.arrival_s, e2.state.workload.arrival_s)
    e2.reset(seed=5)
    assert len(e1.state.workload) != len(e2.state.workload) or not np.array_equal(
        e1.state.workload.arrival_s, e2.state.workload.arrival_s
    )


# ------------------------------------------------------------------ trace files
def _write_traces(tmp_path, n=400):
    trace = load_azure_trace("azure-code")
    base = datetime(2023, 11, 16, 18, 17, 3)
    csv_path = tmp_path / "t.csv"
    jsonl_path = tmp_path / "t.jsonl"
    with csv_path.open("w") as f:
        f.write("TIMESTAMP,ContextTokens,GeneratedTokens\n")
        for t, p, o in zip(trace.arrival_s[:n], trace.prompt_tokens[:n], trace.output_tokens[:n]):
            stamp = (base + timedelta(microseconds=int(round(t * 1e6)))).strftime("%Y-%m-%d %H:%M:%S.%f")
            f.write(f"{stamp}0,{p},{o}\n")
    with jsonl_path.open("w") as f:
        for t, p, o in zip(trace.arrival_s[:n], trace.prompt_tokens[:n], trace.output_tokens[:n]):
            ms = 1_700_000_000_000 + round(t * 1e6) / 1e3
            f.write(json.dumps({"timestamp": ms, "input_length": int(p), "output_length": int(o)}) + "\n")
    return csv_path, jsonl_path


def test_jsonl_in_ms_with_custom_columns_replays_the_csv(tmp_path):
    csv_path, jsonl_path = _write_traces(tmp_path)
    a = gym.make(ENV_ID, workload=f"trace:{csv_path}").unwrapped
    b = gym.make(
        ENV_ID,
        workload=f"trace:{jsonl_path}",
        trace_time_unit="ms",
        trace_columns={"time": "timestamp", "prompt_tokens": "input_length", "output_tokens": "output_length"},
    ).unwrapped
    a.reset(seed=0)
    b.reset(seed=0)
    wa, wb = a.state.workload, b.state.workload
    np.testing.assert_allclose(wa.arrival_s, wb.arrival_s, atol=1e-5)
    np.testing.assert_array_equal(wa.prompt_tokens, wb.prompt_tokens)
    np.testing.assert_array_equal(wa.output_tokens, wb.output_tokens)
    ma = run_episode(gym.make(ENV_ID, workload=f"trace:{csv_path}"), make_policy("hpa", ENV_ID), seed=0).metrics
    mb = run_episode(b, make_policy("hpa", ENV_ID), seed=0).metrics
    assert ma["requests"] == mb["requests"] == 400
    assert ma["cost_usd"] == mb["cost_usd"]
    assert ma["sla_attainment"] == pytest.approx(mb["sla_attainment"], abs=1e-3)


def test_bad_trace_row_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"t": 0, "p": 10, "o": 5}\n{"t": 1000, "p": 10, "o": 5}\n{"t": 2000, "p": "ten", "o": 5}\n')
    cols = {"time": "t", "prompt_tokens": "p", "output_tokens": "o"}
    with pytest.raises(TraceFormatError, match=r"bad\.jsonl:3:.*'ten'"):
        gym.make(ENV_ID, workload=f"trace:{path}", trace_columns=cols, trace_time_unit="ms")
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.1,10,5\nyesterday,10,5\n")
    with pytest.raises(TraceFormatError, match=r"bad\.csv:3:"):
        gym.make(ENV_ID, workload=f"trace:{csv_path}")


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"workload": "azure-foo"}, "workload"),
        ({"cold_start_s": -1}, "cold_start_s"),
        ({"max_replicas": 0}, "max_replicas"),
        ({"min_replicas": 40, "max_replicas": 32}, "min_replicas"),
        ({"initial_replicas": 99}, "initial_replicas"),
        ({"slo_ttft_s": 0}, "slo_ttft_s"),
        ({"sla_target": 1.5}, "sla_target"),
        ({"rate_scale": 0}, "rate_scale"),
        ({"deltas": (1, 2)}, "deltas"),
        ({"gpus_per_replica": 3}, "gpus_per_replica"),
        ({"hardware": "tpu"}, "hardware"),
        ({"burstiness": 2.0}, "burstiness"),
        ({"workload": "azure-code", "trace_time_unit": "h"}, "trace_time_unit"),
        ({"workload": "trace:x.csv", "trace_columns": {"when": "t"}}, "trace_columns"),
    ],
)
def test_kwarg_errors_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        GPUAutoscalingEnv(**kwargs)


def test_observation_window_and_render():
    env = GPUAutoscalingEnv("azure-code", history=4, render_mode="ansi")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4 * 9 + 5,) and not obs[:36].any()
    for _ in range(5):
        obs, *_ = env.step(3)
    window = obs[:36].reshape(4, 9)
    assert window[-1, 0] > 0 and 0 <= window[-1, 3] <= 1  # request rate, utilisation of the last interval
    assert "ready" in env.render()
