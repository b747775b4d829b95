"""GPUAutoscaling-v1: scoring that cannot be gamed, bounds that are bounds, workloads, lifecycle, kwargs."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timedelta
from functools import lru_cache

import gymnasium as gym
import numpy as np
import pytest

import schedgym  # noqa: F401
from schedgym.baselines import make_policy
from schedgym.baselines.gpu_autoscaling import RUNNABLE
from schedgym.envs.core.traces import TraceFormatError, load_azure_trace
from schedgym.envs.gpu_autoscaling import GPUAutoscalingEnv, SyntheticParams
from schedgym.envs.gpu_autoscaling.workload import generate_synthetic
from schedgym.evaluation import make_env, run_episode

ENV_ID = "schedgym/GPUAutoscaling-v1"
#: The shipped workloads as the tests run them (synthetic: the default generator's afternoon peak hour).
WORKLOADS = {
    "azure-code": {"workload": "azure-code"},
    "azure-conv": {"workload": "azure-conv"},
    "synthetic": {"workload": "synthetic", "episode_days": 1.0 / 24.0, "start_hour": 13.5},
}
METRICS = ("cost_usd", "sla_attainment", "sla_met", "requests_infeasible", "preemptions", "gpu_hours",
           "cost_lower_bound_usd")


@lru_cache(maxsize=None)
def _run(workload: str, policy: str, seed: int = 0) -> tuple[dict, float]:
    """(metrics, episode return) of one baseline episode (cached: several tests read the same runs)."""
    res = run_episode(make_env(ENV_ID, WORKLOADS[workload]), make_policy(policy, ENV_ID), seed=seed)
    return res.metrics, res.episode_return


# ------------------------------------------------------------------ must-show: scoring and bounds
@pytest.mark.slow
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_oracle_meets_the_sla_and_beats_every_sla_meeting_baseline(workload):
    results = {name: _run(workload, name)[0] for name in (*RUNNABLE, "random", "oracle")}
    oracle = results["oracle"]
    assert oracle["sla_met"] == 1.0, oracle
    meeting = {n: m for n, m in results.items() if m["sla_met"] == 1.0 and n != "oracle"}
    assert set(meeting) & set(RUNNABLE), "at least one runnable heuristic meets the SLA"
    for name, m in meeting.items():
        assert oracle["cost_usd"] <= m["cost_usd"] + 1e-9, (name, m["cost_usd"], oracle["cost_usd"])
    for name, m in results.items():
        assert m["requests_infeasible"] == 0
        if m["sla_met"]:
            assert m["cost_usd"] >= m["cost_lower_bound_usd"], name
    assert len({m["requests"] for m in results.values()}) == 1  # all replayed the same arrivals


@pytest.mark.slow
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_static_max_keeps_the_sla_at_no_less_than_static_peaks_cost(workload):
    """The causal fixed fleet (max_replicas) keeps the SLA on every shipped workload, and costs at least the
    hindsight-sized fixed fleet (static_peak: the smallest fixed size that meets it on the same episode)."""
    mx, peak = _run(workload, "static_max")[0], _run(workload, "static_peak")[0]
    assert mx["sla_met"] == 1.0 and peak["sla_met"] == 1.0
    assert mx["cost_usd"] >= peak["cost_usd"] - 1e-9


@pytest.mark.slow
@pytest.mark.parametrize("workload, seed", [(w, s) for w in sorted(WORKLOADS) for s in (0, 1)])
def test_no_policy_costs_less_than_the_lower_bound(workload, seed):
    """The bound holds for any policy that meets the SLA; it also holds here for those that do not."""
    for name in (*RUNNABLE, "random"):
        m = _run(workload, name, seed)[0]
        assert m["cost_usd"] >= m["cost_lower_bound_usd"] - 1e-9, (name, m)


@pytest.mark.slow
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_missing_the_sla_never_pays(workload):
    """Every baseline that misses the SLA earns less reward than every baseline that meets it."""
    returns = {name: (_run(workload, name)[0]["sla_met"], _run(workload, name)[1]) for name in (*RUNNABLE, "random")}
    met = [r for ok, r in returns.values() if ok]
    missed = [r for ok, r in returns.values() if not ok]
    assert met and missed, returns
    assert max(missed) < min(met), returns


def test_lagrangian_reward_is_cost_plus_priced_excess():
    env = GPUAutoscalingEnv("azure-code", initial_replicas=2, max_replicas=8)
    env.reset(seed=0)
    total, done = 0.0, False
    while not done:
        _, r, te, tr, info = env.step(env._noop_action)
        total += r
        done = te or tr
    m = info["metrics"]
    n = m["requests"]
    allowance = int(np.floor((1 - env.sla_target) * n + 1e-9))
    violations = n - round(m["sla_attainment"] * n)
    c_max = env.max_replicas * env.replica_cost_per_s_usd * env.state.workload.horizon_s
    assert m["sla_met"] == 0.0
    assert -total == pytest.approx(m["cost_usd"] + c_max / allowance * (violations - allowance), rel=1e-9)


def test_metrics_are_printed_by_the_cli_for_a_baseline():
    out = subprocess.run(
        [sys.executable, "-m", "schedgym.cli", "run", "--env", ENV_ID, "--kwargs", '{"workload":"azure-code"}',
         "--policy", "hpa", "--json"],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout.strip().splitlines()[-1])
    metrics = record.get("metrics", record)
    for key in METRICS:
        assert key in metrics, key


# ------------------------------------------------------------------ long prompts
def test_long_prompt_trace_is_feasible_and_static_peak_meets_the_sla(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    t = np.sort(rng.uniform(0, 1800.0, n))
    long = rng.random(n) < 0.5
    prompt = np.where(long, rng.integers(8192, 32769, n), rng.integers(64, 2048, n))
    output = rng.integers(16, 400, n)
    path = tmp_path / "long.jsonl"
    with path.open("w") as f:
        for a, p, o in zip(t, prompt, output):
            f.write(json.dumps({"timestamp": a * 1000.0, "input_length": int(p), "output_length": int(o)}) + "\n")
    kwargs = {
        "workload": f"trace:{path}",
        "trace_time_unit": "ms",
        "trace_columns": {"time": "timestamp", "prompt_tokens": "input_length", "output_tokens": "output_length"},
    }
    m = run_episode(make_env(ENV_ID, kwargs), make_policy("static_peak", ENV_ID), seed=0).metrics
    assert m["requests"] == n
    assert m["requests_infeasible"] == 0
    assert m["sla_met"] == 1.0, m
    assert m["extrapolated_frac"] > 0.3  # prompts beyond the profile's 8192-token sweep are reported


# ------------------------------------------------------------------ lifecycle
def test_cold_start_provisioning_billing_and_scale_down_order():
    env = GPUAutoscalingEnv("azure-conv", initial_replicas=3, cold_start_s=120.0, cold_start_sigma=0.0)
    env.reset(seed=0)
    up4 = int(np.flatnonzero(env.deltas == 4)[0])
    down2 = int(np.flatnonzero(env.deltas == -2)[0])
    _, _, _, _, info = env.step(up4)
    assert (info["ready"], info["provisioning"]) == (3, 4)
    assert env.state.log_billed_s[0] == pytest.approx(7 * 60.0)  # billed from the launch
    _, _, _, _, info = env.step(down2)  # cancels two provisioning replicas, newest first
    # the two kept were launched at t=0 with a 120 s cold start: ready at the end of this step
    assert (info["ready"], info["provisioning"], info["draining"]) == (5, 0, 0)
    assert env.state.log_billed_s[1] == pytest.approx(5 * 60.0)  # cancelled ones stop billing at once
    _, _, _, _, info = env.step(env._noop_action)
    _, _, _, _, info = env.step(int(np.flatnonzero(env.deltas == -4)[0]))  # drains 4 ready replicas
    assert env.fleet_size == 1
    assert env.state.log_billed_s[3] >= 60.0  # draining replicas bill until they have finished their work


def test_rate_scale_replicates_arrivals():
    a = GPUAutoscalingEnv("azure-conv")
    b = GPUAutoscalingEnv("azure-conv", rate_scale=2.5)
    a.reset(seed=1)
    b.reset(seed=1)
    ratio = len(b.state.workload) / len(a.state.workload)
    assert 2.4 < ratio < 2.6 and a.n_steps == b.n_steps


def test_synthetic_calibration_to_the_traces():
    rng = np.random.default_rng(0)
    bursty = generate_synthetic(SyntheticParams(diurnal_amplitude=0.0, burstiness=1.0, episode_days=0.5), rng)
    per_min = np.bincount((bursty.arrival_s // 60).astype(int))
    assert bursty.mean_rate_per_s == pytest.approx(5.5, rel=0.1)
    assert 0.7 < per_min.std() / per_min.mean() < 1.4  # azure-code: 1.03


def test_synthetic_is_seeded():
    e1, e2 = GPUAutoscalingEnv(episode_days=0.05), GPUAutoscalingEnv(episode_days=0.05)
    e1.reset(seed=4)
    e2.reset(seed=4)
    np.testing.assert_array_equal(e1.state.workload.arrival_s, e2.state.workload.arrival_s)


# ------------------------------------------------------------------ trace files and kwargs
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
    kw_b = {
        "workload": f"trace:{jsonl_path}",
        "trace_time_unit": "ms",
        "trace_columns": {"time": "timestamp", "prompt_tokens": "input_length", "output_tokens": "output_length"},
    }
    a = gym.make(ENV_ID, workload=f"trace:{csv_path}").unwrapped
    b = gym.make(ENV_ID, **kw_b).unwrapped
    a.reset(seed=0)
    b.reset(seed=0)
    np.testing.assert_allclose(a.state.workload.arrival_s, b.state.workload.arrival_s, atol=1e-5)
    np.testing.assert_array_equal(a.state.workload.prompt_tokens, b.state.workload.prompt_tokens)
    ma = run_episode(gym.make(ENV_ID, workload=f"trace:{csv_path}"), make_policy("hpa", ENV_ID), seed=0).metrics
    mb = run_episode(gym.make(ENV_ID, **kw_b), make_policy("hpa", ENV_ID), seed=0).metrics
    assert ma["requests"] == mb["requests"] == 400
    assert ma["cost_usd"] == pytest.approx(mb["cost_usd"], rel=1e-6)


def test_bad_trace_row_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"t": 0, "p": 10, "o": 5}\n{"t": 1000, "p": 10, "o": 5}\n{"t": 2000, "p": "ten", "o": 5}\n')
    cols = {"time": "t", "prompt_tokens": "p", "output_tokens": "o"}
    with pytest.raises(TraceFormatError, match=r"bad\.jsonl:3:"):
        gym.make(ENV_ID, workload=f"trace:{path}", trace_columns=cols, trace_time_unit="ms")


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"workload": "azure-foo"}, "workload"),
        ({"cold_start_s": -1}, "cold_start_s"),
        ({"cold_start_sigma": -0.1}, "cold_start_sigma"),
        ({"max_replicas": 0}, "max_replicas"),
        ({"min_replicas": 0}, "min_replicas"),
        ({"min_replicas": 40, "max_replicas": 32}, "min_replicas"),
        ({"initial_replicas": 99}, "initial_replicas"),
        ({"slo_scale": 0}, "slo_scale"),
        ({"ttft_slo_floor_s": 0}, "ttft_slo_floor_s"),
        ({"tpot_slo_s": -1}, "tpot_slo_s"),
        ({"sla_target": 1.0}, "sla_target"),
        ({"rate_scale": 0}, "rate_scale"),
        ({"deltas": (1, 2)}, "deltas"),
        ({"gpus_per_replica": 3}, "gpus_per_replica"),
        ({"hardware": "tpu"}, "hardware"),
        ({"max_num_seqs": 0}, "max_num_seqs"),
        ({"max_num_batched_tokens": 8}, "max_num_batched_tokens"),
        ({"preemption": "drop"}, "preemption"),
        ({"routing": "random"}, "routing"),
        ({"burstiness": 2.0}, "burstiness"),
        ({"workload": "azure-code", "trace_time_unit": "h"}, "trace_time_unit"),
    ],
)
def test_kwarg_errors_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        GPUAutoscalingEnv(**kwargs)


def test_observation_layout_scales_and_render():
    env = GPUAutoscalingEnv("azure-conv", history=4, render_mode="ansi")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (env.layout.size,) == (4 * 10 + 6,) and not obs[:40].any()
    for _ in range(6):
        obs, *_ = env.step(env._noop_action)
    window = env.layout.window(obs)
    assert window[-1, env.layout.indicator("request_rate")] > 0
    assert 0 < window[-1, env.layout.indicator("kv_utilisation")] <= 10
    assert np.all(obs[:40] <= 10.5)  # the documented scales keep the trace in [0, 10]
    assert "ready" in env.render()
    rgb = GPUAutoscalingEnv("azure-conv", render_mode="rgb_array")
    rgb.reset(seed=0)
    for _ in range(3):
        rgb.step(rgb._noop_action)
    img = rgb.render()
    assert img.ndim == 3 and img.shape[2] == 3


def test_static_history_sizes_on_past_days_only():
    """static_history's fixed size comes from the history episodes (static_peak's bisection there), never
    from the scored episode: the same size on two different traces."""
    from schedgym.baselines.gpu_autoscaling import StaticHistoryPolicy, StaticPeakPolicy
    from schedgym.envs.gpu_autoscaling.env import GPUAutoscalingEnv

    history = {"workload": "synthetic", "episode_days": 1.0 / 24.0, "start_hour": 13.5}
    sizes = []
    for workload in ("azure-code", "azure-conv"):
        env = make_env(ENV_ID, {"workload": workload}).unwrapped
        env.reset(seed=0)
        pol = StaticHistoryPolicy(history_kwargs=history, history_seeds=(1, 2))
        pol.reset(env)
        sizes.append(pol.size)
    expected = 0
    for seed in (1, 2):
        past = GPUAutoscalingEnv(**history)
        past.reset(seed=seed)
        peak = StaticPeakPolicy()
        peak.reset(past)
        expected = max(expected, peak.size)
    assert sizes == [expected, expected]
    with pytest.raises(ValueError, match="history_seeds"):
        StaticHistoryPolicy(history_seeds=())
