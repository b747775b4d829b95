"""AgentScheduling-v0: dynamics, metrics, baselines and the Bayesian posterior."""

from __future__ import annotations

import numpy as np
import pytest

import schedgym  # noqa: F401
from schedgym.baselines import list_policies, make_policy
from schedgym.baselines.agent_scheduling import BayesianSJF, LogNormalPosterior
from schedgym.envs.agent_scheduling.env import AgentSchedulingEnv
from schedgym.envs.agent_scheduling.types import ADMIT, DONE, PENDING, RUNNING, WAITING
from schedgym.envs.core.traces import TraceFormatError
from schedgym.evaluation import make_env, run_episode

ENV_ID = "schedgym/AgentScheduling-v0"
SMALL = {"n_agents": 15, "agent_rate": 0.08, "n_cores": 1, "max_batch": 4}


def run(policy: str, seed: int = 0, **kwargs):
    env = make_env(ENV_ID, {**SMALL, **kwargs})
    result = run_episode(env, make_policy(policy, ENV_ID), seed=seed, record_actions=False)
    return env.unwrapped, result


# ---------------------------------------------------------------- the "must show" tests
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_srpt_oracle_waits_no_longer_than_fifo_on_one_core_without_preemption(seed):
    kwargs = {"n_cores": 1, "max_batch": 1, "time_slice_s": 0.0, "agent_rate": 0.02, "n_agents": 25}
    _, fifo = run("fifo", seed, **kwargs)
    _, srpt = run("srpt_oracle", seed, **kwargs)
    assert fifo.metrics["requests_unfinished"] == srpt.metrics["requests_unfinished"] == 0
    assert fifo.metrics["wait_mean"] > 0.5, "the queue must be non-trivial for the comparison to mean anything"
    assert srpt.metrics["wait_mean"] <= fifo.metrics["wait_mean"]


@pytest.mark.parametrize("policy", ["round_robin", "srpt_oracle", "random"])
def test_time_slice_zero_never_switches_context(policy):
    env = make_env(ENV_ID, {**SMALL, "time_slice_s": 0.0, "agent_rate": 0.15})
    pol = make_policy(policy, ENV_ID)
    obs, info = env.reset(seed=3)
    pol.reset(env.unwrapped)
    done = False
    while not done:
        assert env.unwrapped.state.decision_kind in (ADMIT, 0)
        obs, _, te, tr, info = env.step(pol.act(obs, info))
        done = te or tr
    m = info["metrics"]
    assert m["context_switches"] == 0 and m["switch_overhead_s"] == 0
    assert not env.unwrapped.state.n_preempted.any()
    assert m["wait_mean"] > 0  # there was contention, so a preemptive policy would have switched


def test_round_robin_switches_when_slices_are_on():
    _, res = run("round_robin", 3, time_slice_s=0.5, agent_rate=0.15)
    assert res.metrics["context_switches"] > 0 and res.metrics["switch_overhead_s"] > 0


def _check_accounting(env: AgentSchedulingEnv, m: dict) -> None:
    st = env.state
    arrived = st.status != PENDING
    assert np.all(st.ready_s[arrived] <= st.clock_s + 1e-9)
    n_done = int(np.count_nonzero(st.status == DONE))
    n_open = int(np.count_nonzero((st.status == WAITING) | (st.status == RUNNING)))
    assert m["requests_arrived"] == arrived.sum() == n_done + n_open
    assert m["requests_completed"] == n_done and m["requests_unfinished"] == n_open
    # Every running request sits in exactly one slot; no waiting or finished one does.
    in_slots = np.sort(st.slot_req[st.slot_req >= 0])
    np.testing.assert_array_equal(in_slots, np.sort(np.flatnonzero(st.status == RUNNING)))
    # A finished request generated exactly its output; an agent's later steps wait for earlier ones.
    wl = st.workload
    done = st.status == DONE
    np.testing.assert_array_equal(st.generated[done], wl.req_output_tokens[done])
    later = np.flatnonzero(arrived & (wl.req_step > 0))
    assert np.all(st.status[later - 1] == DONE)
    assert m["agents_arrived"] == m["agents_completed"] + m["agents_unfinished"]


@pytest.mark.parametrize("max_sim_s", [60.0, 150.0, 7200.0])
def test_no_request_is_lost(max_sim_s):
    env = make_env(ENV_ID, {**SMALL, "agent_rate": 0.2, "time_slice_s": 0.5, "max_sim_s": max_sim_s})
    for seed in range(2):
        result = run_episode(env, make_policy("random", ENV_ID, seed=seed), seed=seed, record_actions=False)
        _check_accounting(env.unwrapped, result.metrics)
        if max_sim_s < 100:
            assert result.metrics["requests_unfinished"] > 0  # truncated mid-episode
        if max_sim_s == 7200.0:
            assert result.metrics["requests_unfinished"] == 0
            assert result.metrics["requests_completed"] == env.unwrapped.state.workload.n_requests


def test_bayesian_posterior_mean_converges_to_true_mean_on_a_synthetic_stream():
    rng = np.random.default_rng(0)
    mu, sigma = 5.0, 0.8  # lognormal output lengths of type 1 ("reflexion"), prompts in bucket 0
    true_mean = np.exp(mu + sigma**2 / 2)
    post = LogNormalPosterior()
    prior_mean = float(post.mean_output(np.array([1]), np.array([500]))[0])
    errors = []
    for n_batch in [20, 200, 2000, 20000]:
        out = np.exp(rng.normal(mu, sigma, size=n_batch))
        post.observe(np.full(n_batch, 1), np.full(n_batch, 500), out)
        errors.append(abs(float(post.mean_output(np.array([1]), np.array([500]))[0]) / true_mean - 1))
    assert errors[-1] < 0.02
    assert errors[-1] < errors[0]
    # Other types and prompt buckets are untouched (still the prior).
    assert post.mean_output(np.array([2]), np.array([500]))[0] == pytest.approx(prior_mean)
    assert post.mean_output(np.array([1]), np.array([5000]))[0] == pytest.approx(prior_mean)
    # Expected remaining output E[X - g | X > g] matches a Monte Carlo estimate under the posterior.
    m, s2 = post.params(np.array([1]), np.array([500]))
    x = np.exp(rng.normal(m[0], np.sqrt(s2[0]), size=400_000))
    g = np.array([1.0, 200.0, 1000.0])
    rem = post.expected_remaining(np.array([1, 1, 1]), np.array([500] * 3), g)
    for gi, ri in zip(g, rem):
        assert ri == pytest.approx((x[x > gi] - gi).mean(), rel=0.03)
    assert rem[2] > rem[1]  # a request that has run long is probably a long one


def test_bayesian_sjf_learns_from_finished_requests_in_the_env():
    env = make_env(ENV_ID, {**SMALL, "n_agents": 30})
    policy = make_policy("bayesian_sjf", ENV_ID)
    assert isinstance(policy, BayesianSJF)
    run_episode(env, policy, seed=0, record_actions=False)
    policy.observe_finished()
    assert policy.posterior.n.sum() == env.unwrapped.state.workload.n_requests


# ---------------------------------------------------------------- reward, observation, metrics
def test_return_is_littles_law_sum_of_waits_and_turnarounds():
    env, res = run("fifo", 0)
    st = env.state
    wl = st.workload
    turnaround = st.agent_finish_s - wl.agent_arrival_s
    total = st.waited_s.sum() + turnaround.sum()
    assert res.metrics["agents_unfinished"] == 0
    assert -res.episode_return * env.n_cores * env.max_batch == pytest.approx(total, rel=1e-6)
    assert res.metrics["turnaround_mean"] == pytest.approx(turnaround.mean())


def test_fairness_term_only_lowers_the_reward():
    _, plain = run("fifo", 1, agent_rate=0.15)
    _, fair = run("fifo", 1, agent_rate=0.15, fairness_weight=1.0)
    assert plain.metrics == fair.metrics  # same dynamics
    assert fair.episode_return < plain.episode_return


def test_observation_hides_true_output_lengths():
    a = AgentSchedulingEnv(**SMALL)
    b = AgentSchedulingEnv(**SMALL)
    obs_a, _ = a.reset(seed=5)
    b.reset(seed=5)
    b.state.workload.req_output_tokens[:] = 7  # change every true output length
    np.testing.assert_array_equal(obs_a, b._observe())


def test_switch_cost_models():
    env = AgentSchedulingEnv(**SMALL, swap_s_per_token=1e-4)
    env.reset(seed=0)
    env.state.generated[0] = 10.6
    prompt = env.state.workload.req_prompt_tokens[0]
    assert env.switch_cost_s(0) == pytest.approx((prompt + 10) * 1e-4)
    env = AgentSchedulingEnv(**SMALL, context_switch="recompute")
    env.reset(seed=0)
    env.state.generated[0] = 10.6
    assert env.switch_cost_s(0) == pytest.approx(float(env.prefill_time_s(prompt + 10)))


def test_every_baseline_finishes_an_episode_and_oracles_are_labelled():
    policies = list_policies(ENV_ID)
    assert {"fifo", "round_robin", "sjf_oracle", "srpt_oracle", "vtc", "bayesian_sjf"} <= set(policies)
    assert policies["sjf_oracle"].kind == policies["srpt_oracle"].kind == "oracle"
    for name in sorted(policies):
        _, res = run(name, 0, agent_rate=0.12, time_slice_s=0.5)
        assert res.metrics["requests_unfinished"] == 0, name
        assert 0 < res.metrics["jain_fairness"] <= 1 and 0 <= res.metrics["slo_attainment"] <= 1


def test_kv_capacity_limits_admission():
    env, res = run("fifo", 0, max_batch=8, kv_capacity_tokens=12000, agent_rate=0.15)
    assert res.metrics["requests_unfinished"] == 0
    # Observed during the run via the invariant: reserved KV never exceeds the capacity.
    env2 = AgentSchedulingEnv(**{**SMALL, "max_batch": 8, "kv_capacity_tokens": 12000, "agent_rate": 0.15})
    env2.reset(seed=0)
    max_running = 0
    for _ in range(400):
        assert np.all(env2.state.core_kv_tokens <= 12000)
        max_running = max(max_running, int((env2.state.slot_req >= 0).sum()))
        _, _, te, tr, _ = env2.step(env2._default_action())
        if te or tr:
            break
    assert max_running < 8  # 12000 tokens never fit 8 reservations of >= 2049 tokens


# ---------------------------------------------------------------- kwargs and traces
@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_cores": 0}, "n_cores"),
        ({"max_batch": 1.5}, "max_batch"),
        ({"time_slice_s": -1}, "time_slice_s"),
        ({"context_switch": "teleport"}, "context_switch"),
        ({"workload": "bogus"}, "workload"),
        ({"agent_mix": {"chatbot": 1.0}}, "agent_mix"),
        ({"kv_capacity_tokens": 1000}, "kv_capacity_tokens"),
        ({"max_output_tokens": 9000}, "max_output_tokens"),
        ({"agent_rate": 0}, "agent_rate"),
        ({"tensor_parallel": 3}, "tensor_parallel"),
    ],
)
def test_bad_kwargs_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        AgentSchedulingEnv(**kwargs)


def test_trace_workload_sets_arrivals_and_first_lengths(tmp_path):
    path = tmp_path / "agents.csv"
    rows = [(0, 300, 40), (1500, 800, 120), (4000, 100, 7), (4100, 2000, 300)]
    path.write_text("timestamp,input_length,output_length\n" + "".join(f"{t},{p},{o}\n" for t, p, o in rows))
    env = AgentSchedulingEnv(
        workload=f"trace:{path}",
        trace_columns={"time": "timestamp", "prompt_tokens": "input_length", "output_tokens": "output_length"},
        trace_time_unit="ms",
        rate_scale=1.0,
        n_agents=10,
    )
    env.reset(seed=0)
    wl = env.state.workload
    assert wl.n_agents == 4
    np.testing.assert_allclose(wl.agent_arrival_s, [0.0, 1.5, 4.0, 4.1])
    first = wl.agent_first_req
    np.testing.assert_array_equal(wl.req_prompt_tokens[first], [300, 800, 100, 2000])
    np.testing.assert_array_equal(wl.req_output_tokens[first], [40, 120, 7, 300])
    res = run_episode(make_env(ENV_ID, {"workload": "azure-code", "n_agents": 10, "n_cores": 1}), make_policy("fifo", ENV_ID), seed=0)
    assert res.metrics["agents_completed"] == 10


def test_bad_trace_row_names_file_and_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n1.0,10,5\n2.0,ten,5\n")
    with pytest.raises(TraceFormatError, match=r"bad\.csv:3"):
        AgentSchedulingEnv(workload=f"trace:{path}", trace_time_unit="s")
