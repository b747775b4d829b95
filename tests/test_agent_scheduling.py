"""AgentScheduling-v1: defaults that make scheduling matter, the proven lower bound, oracles, fairness,
traces, KV accounting, baselines and the Bayesian posterior."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import schedgym  # noqa: F401
from schedgym.baselines import list_policies, make_policy
from schedgym.baselines.agent_scheduling import BayesianSJF, LogNormalPosterior
from schedgym.envs.agent_scheduling import dynamics as dyn
from schedgym.envs.agent_scheduling.bounds import bound_constants
from schedgym.envs.agent_scheduling.env import AgentSchedulingEnv
from schedgym.envs.agent_scheduling.types import (
    CI_FREE,
    CI_NRUN,
    DONE,
    PENDING,
    QI_BLOCKS,
    QI_STATE,
    QI_SWAPPED,
    RUNNING,
    WAITING,
)
from schedgym.envs.core.traces import TraceFormatError
from schedgym.evaluation import make_env, run_episode

ENV_ID = "schedgym/AgentScheduling-v1"
POLICIES = ["fifo", "round_robin", "vtc", "bayesian_sjf", "agent_srpt_oracle", "random"]


def run(policy: str, seed: int = 0, **kwargs):
    env = make_env(ENV_ID, kwargs)
    pol = make_policy(policy, ENV_ID, **({"seed": seed} if policy == "random" else {}))
    result = run_episode(env, pol, seed=seed, record_actions=False)
    return env.unwrapped, result


# ---------------------------------------------------------------- the "must show" tests
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_defaults_make_waiting_and_kv_matter(seed):
    """Under FIFO on the defaults, waiting is >= 40 % of turnaround and >= 10 % of decisions are KV-bound."""
    _, res = run("fifo", seed)
    m = res.metrics
    assert m["agents_unfinished"] == 0
    assert m["wait_share"] >= 0.40, m["wait_share"]
    assert m["kv_constrained_frac"] >= 0.10, m["kv_constrained_frac"]
    assert m["kv_preemptions"] > 0  # the cache really runs out, not only at admission


def _turnarounds(env: AgentSchedulingEnv) -> tuple[np.ndarray, np.ndarray]:
    wl = env.state.workload
    done = env.state.agent_finish_s >= 0
    return (env.state.agent_finish_s - wl.agent_arrival_s)[done], env.agent_lower_bounds_s()[done]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_agents": 25},
        {"n_agents": 25, "workload": "tenants"},
        {"n_agents": 25, "workload": "azure-code"},
        {"n_agents": 12, "tensor_parallel": 4, "max_num_seqs": 64},  # KV never binds: the bound is tight-ish
    ],
    ids=["poisson", "tenants", "azure-code", "tp4"],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_no_policy_beats_the_lower_bound(kwargs, seed):
    for policy in POLICIES:
        env, res = run(policy, seed, **{**kwargs, "max_sim_s": 3000.0})
        turn, lb = _turnarounds(env)
        assert turn.size > 0
        # Per agent (stronger than the mean), for every finished agent.
        assert np.all(turn >= lb * (1 - 1e-12)), (policy, float((turn - lb).min()))
        if res.metrics["agents_unfinished"] == 0:
            assert res.metrics["turnaround_mean"] >= res.metrics["turnaround_lower_bound"]


def test_lower_bound_is_close_to_an_agent_alone():
    """One agent alone on a core (no queueing, batch 1): its turnaround is at most ~15 % above the bound."""
    for seed in range(3):
        env, res = run("fifo", seed, n_agents=1, time_slice_s=0.0)
        turn, lb = _turnarounds(env)
        assert lb[0] <= turn[0] <= 1.15 * lb[0]


def test_bound_constants_need_a_monotone_prefill():
    env = AgentSchedulingEnv()
    c_min, d_min, kv = env.bound_consts
    assert 0 < c_min < env.profile.prefill_s(512) / 512 and 0 < d_min <= env.profile.decode_base[1] and kv > 0
    assert bound_constants(env.params, env.profile) == env.bound_consts


@pytest.mark.parametrize("workload", ["poisson", "azure-code"])
def test_agent_srpt_oracle_beats_fifo_and_round_robin_on_the_default_workloads(workload):
    mean = {p: np.mean([run(p, s, workload=workload)[1].metrics["turnaround_mean"] for s in (0, 1)])
            for p in ("fifo", "round_robin", "agent_srpt_oracle")}  # fmt: skip
    assert mean["agent_srpt_oracle"] <= mean["fifo"] and mean["agent_srpt_oracle"] <= mean["round_robin"], mean


def test_vtc_is_fairer_than_fifo_on_tenants():
    m = {p: [run(p, s, workload="tenants")[1].metrics for s in (0, 1, 2)] for p in ("fifo", "vtc")}
    diff = {p: np.mean([x["service_diff_max"] for x in v]) for p, v in m.items()}
    jain = {p: np.mean([x["jain_index"] for x in v]) for p, v in m.items()}
    assert diff["vtc"] < diff["fifo"], diff
    assert jain["vtc"] > jain["fifo"], jain
    # Per-tenant service is reported and adds up to everything served.
    x = m["vtc"][0]
    assert all(f"tenant{t}_service" in x for t in range(4))


def test_trace_workload_replays_without_losing_a_request(tmp_path):
    path = tmp_path / "agents.csv"
    rows = [(0, 300, 40), (1500, 6000, 120), (1600, 800, 700), (4000, 100, 7), (4100, 2000, 300), (4200, 7000, 900)]
    path.write_text("timestamp,input_length,output_length\n" + "".join(f"{t},{p},{o}\n" for t, p, o in rows))
    kwargs = {
        "workload": f"trace:{path}",
        "trace_columns": {"time": "timestamp", "prompt_tokens": "input_length", "output_tokens": "output_length"},
        "trace_time_unit": "ms",
        "rate_scale": 1.0,
        "n_agents": 10,
        "n_cores": 1,
    }
    for policy in ("fifo", "round_robin", "random"):
        env, res = run(policy, 0, **kwargs)
        wl = env.state.workload
        assert wl.n_agents == 6
        np.testing.assert_allclose(wl.agent_arrival_s, [0.0, 1.5, 1.6, 4.0, 4.1, 4.2])
        first = wl.agent_first_req
        # First requests carry the row's lengths (the prompt truncated so that prompt + output fits the context cap).
        np.testing.assert_array_equal(wl.req_prompt_tokens[first], np.minimum([300, 6000, 800, 100, 2000, 7000], 8192 - wl.req_output_tokens[first]))
        np.testing.assert_array_equal(wl.req_output_tokens[first], [40, 120, 700, 7, 300, 900])
        assert res.metrics["requests_completed"] == wl.n_requests and res.metrics["agents_completed"] == 6


def test_bad_trace_row_names_file_and_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n1.0,10,5\n2.0,ten,5\n")
    with pytest.raises(TraceFormatError, match=r"bad\.csv:3"):
        AgentSchedulingEnv(workload=f"trace:{path}", trace_time_unit="s")


def test_cli_run_json_prints_the_headline_metrics():
    out = subprocess.run(
        [sys.executable, "-m", "schedgym.cli", "run", "--env", ENV_ID, "--policy", "vtc", "--kwargs", '{"n_agents": 8}', "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout.strip().splitlines()[-1])["metrics"]
    for key in ("turnaround_mean", "turnaround_lower_bound", "wait_share", "kv_constrained_frac", "preemptions", "jain_index"):
        assert key in metrics


# ---------------------------------------------------------------- dynamics and accounting
def _check_kv_and_queue(env: AgentSchedulingEnv) -> None:
    st = env.state
    status = st.qi[:, QI_STATE]
    for c in range(env.n_cores):
        run_ids = st.running[c, : st.ci[c, CI_NRUN]]
        assert np.all(status[run_ids] == RUNNING)
        held = st.qi[run_ids, QI_BLOCKS].sum()
        assert st.ci[c, CI_FREE] >= 0 and held + st.ci[c, CI_FREE] == env.params.kv_blocks
    assert st.n_waiting == int(np.count_nonzero(status == WAITING))
    assert np.all(st.qi[status == DONE, QI_BLOCKS] == 0)
    swapped = st.qi[:, QI_SWAPPED] == 1
    assert np.all(status[swapped] == WAITING)


@pytest.mark.parametrize("policy", ["random", "round_robin"])
def test_kv_blocks_are_conserved_and_no_request_is_lost(policy):
    env = make_env(ENV_ID, {"n_agents": 20, "n_cores": 1, "max_sim_s": 400.0})
    pol = make_policy(policy, ENV_ID, **({"seed": 0} if policy == "random" else {}))
    obs, info = env.reset(seed=4)
    pol.reset(env)
    for _ in range(20000):
        _check_kv_and_queue(env.unwrapped)
        obs, _, te, tr, info = env.step(pol.act(obs, info))
        if te or tr:
            break
    m = info["metrics"]
    st = env.unwrapped.state
    status = st.qi[:, QI_STATE]
    arrived = status != PENDING
    assert m["requests_arrived"] == arrived.sum()
    assert m["requests_completed"] + m["requests_unfinished"] == m["requests_arrived"]
    assert m["agents_completed"] + m["agents_unfinished"] == m["agents_arrived"]
    assert m["preemptions"] > 0 and m["swaps"] > 0


def test_swap_and_recompute_costs_come_from_pcie_and_the_profile():
    env = AgentSchedulingEnv(n_agents=5)
    env.reset(seed=0)
    st = env.state
    st.qi[0, QI_BLOCKS] = 100
    # 100 blocks x 16 tokens x 327,680 B / 25 GB/s, out and back in.
    assert env.swap_cost_s(0) == pytest.approx(2 * 100 * 16 * 327_680 / 25e9)
    assert env.recompute_cost_s(0) == pytest.approx(env.profile.prefill_s(st.workload.req_prompt_tokens[0]))


def test_decode_slows_with_batch_and_context():
    env = AgentSchedulingEnv()
    lp, lpf, db, sc = env.profile.arrays
    from schedgym.sim.serving.profile import iteration_s

    one = iteration_s(0, 0.0, 1, 1000.0, 1.0, lp, lpf, db, sc, 0.0)
    assert iteration_s(0, 0.0, 8, 8000.0, 1.0, lp, lpf, db, sc, 0.0) > one
    assert iteration_s(0, 0.0, 1, 8000.0, 1.0, lp, lpf, db, sc, 0.0) > one


def test_contexts_grow_across_an_agents_steps():
    env = AgentSchedulingEnv(n_agents=30, max_context_tokens=16000)
    env.reset(seed=0)
    wl = env.state.workload
    for a in range(wl.n_agents):
        f, n = wl.agent_first_req[a], wl.agent_n_steps[a]
        p = wl.req_prompt_tokens[f : f + n]
        assert np.all(np.diff(p) > 0)  # each step's prompt holds the previous output and tool result


def test_time_slice_zero_never_preempts_for_slices():
    _, res = run("round_robin", 0, n_agents=20, time_slice_s=0.0)
    assert res.metrics["slice_preemptions"] == 0
    _, res = run("round_robin", 0, n_agents=20)
    assert res.metrics["slice_preemptions"] > 0


def test_return_is_minus_total_turnaround():
    env, res = run("fifo", 0, n_agents=20)
    turn, _ = _turnarounds(env)
    assert res.metrics["agents_unfinished"] == 0
    assert -res.episode_return * 100.0 == pytest.approx(turn.sum(), rel=1e-9)


def test_observation_hides_true_output_lengths():
    a = AgentSchedulingEnv(n_agents=10)
    b = AgentSchedulingEnv(n_agents=10)
    obs_a, _ = a.reset(seed=5)
    b.reset(seed=5)
    b.state.wq[:, dyn.W_OUTPUT] = 7
    np.testing.assert_array_equal(obs_a, b._observe())


# ---------------------------------------------------------------- baselines and kwargs
def test_every_baseline_finishes_and_the_oracle_is_labelled():
    policies = list_policies(ENV_ID)
    assert set(POLICIES) <= set(policies)
    assert policies["agent_srpt_oracle"].kind == "oracle"
    assert "best-known" in policies["agent_srpt_oracle"].description
    for name in sorted(policies):
        _, res = run(name, 0, n_agents=15)
        assert res.metrics["requests_unfinished"] == 0, name
        assert 0 < res.metrics["jain_index"] <= 1


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_cores": 0}, "n_cores"),
        ({"max_num_seqs": 1.5}, "max_num_seqs"),
        ({"time_slice_s": -1}, "time_slice_s"),
        ({"workload": "bogus"}, "workload"),
        ({"agent_mix": {"chatbot": 1.0}}, "agent_mix"),
        ({"workload": "tenants", "agent_mix": {"react": 1.0}}, "agent_mix"),
        ({"max_context_tokens": 40000}, "max_context_tokens"),
        ({"max_output_tokens": 9000}, "max_output_tokens"),
        ({"agent_rate": 0}, "agent_rate"),
        ({"tensor_parallel": 3}, "tensor_parallel"),
        ({"swap_bandwidth_gbs": 0}, "swap_bandwidth_gbs"),
        ({"fairness_window_s": 0}, "fairness_window_s"),
    ],
)
def test_bad_kwargs_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        AgentSchedulingEnv(**kwargs)


def test_bayesian_posterior_mean_converges_to_true_mean_on_a_synthetic_stream():
    rng = np.random.default_rng(0)
    mu, sigma = 5.0, 0.8
    true_mean = np.exp(mu + sigma**2 / 2)
    post = LogNormalPosterior()
    prior_mean = float(post.mean_output(np.array([1]), np.array([500]))[0])
    errors = []
    for n_batch in [20, 200, 2000, 20000]:
        out = np.exp(rng.normal(mu, sigma, size=n_batch))
        post.observe(np.full(n_batch, 1), np.full(n_batch, 500), out)
        errors.append(abs(float(post.mean_output(np.array([1]), np.array([500]))[0]) / true_mean - 1))
    assert errors[-1] < 0.02 and errors[-1] < errors[0]
    assert post.mean_output(np.array([2]), np.array([500]))[0] == pytest.approx(prior_mean)
    m, s2 = post.params(np.array([1]), np.array([500]))
    x = np.exp(rng.normal(m[0], np.sqrt(s2[0]), size=400_000))
    g = np.array([1.0, 200.0, 1000.0])
    rem = post.expected_remaining(np.array([1, 1, 1]), np.array([500] * 3), g)
    for gi, ri in zip(g, rem):
        assert ri == pytest.approx((x[x > gi] - gi).mean(), rel=0.03)


def test_bayesian_sjf_learns_from_finished_requests_in_the_env():
    env = make_env(ENV_ID, {"n_agents": 20})
    policy = make_policy("bayesian_sjf", ENV_ID)
    assert isinstance(policy, BayesianSJF)
    run_episode(env, policy, seed=0, record_actions=False)
    policy.observe_finished()
    assert policy.posterior.n.sum() == env.unwrapped.state.workload.n_requests


def test_set_state_restores_a_snapshot_of_another_episode():
    env = AgentSchedulingEnv(n_agents=15)
    env.reset(seed=1)
    for _ in range(30):
        env.step(env._default_action())
    snap = env.get_state()
    first = [env.step(env._default_action())[:3] for _ in range(40)]
    env.reset(seed=2)  # another workload (another number of requests)
    env.set_state(snap)
    again = [env.step(env._default_action())[:3] for _ in range(40)]
    for (o1, r1, t1), (o2, r2, t2) in zip(first, again):
        np.testing.assert_array_equal(o1, o2)
        assert (r1, t1) == (r2, t2)


@pytest.mark.parametrize("policy", ["fifo", "round_robin", "agent_srpt_oracle"])
def test_service_and_tool_times_are_conserved(policy):
    """VTC service adds up to input + 2 x output tokens of every request, whatever was swapped or recomputed;
    an agent's next request is submitted exactly when its tool finishes."""
    env, res = run(policy, 3, n_agents=30, workload="tenants")
    assert res.metrics["agents_unfinished"] == 0 and res.metrics["preemptions"] > 0
    wl = env.state.workload
    expected = np.bincount(wl.agent_tenant[wl.req_agent], weights=wl.req_prompt_tokens + 2.0 * wl.req_output_tokens)
    np.testing.assert_allclose(env.state.tenant_service, expected)
    np.testing.assert_allclose(env.state.win_service.sum(axis=0), expected)
    from schedgym.envs.agent_scheduling.types import QF_FINISH, QF_READY

    later = np.flatnonzero(wl.req_step > 0)
    np.testing.assert_allclose(env.state.qf[later, QF_READY], env.state.qf[later - 1, QF_FINISH] + wl.req_tool_s[later - 1])


def test_truncation_breaks_the_leaderboard_rule():
    """A truncated episode averages turnaround over the finished agents only, so the tasks require all to finish."""
    from schedgym.benchmark.tasks import get_task

    _, cut = run("fifo", 0, n_agents=30, max_sim_s=60.0)
    assert cut.metrics["all_agents_finished"] == 0.0 and 0.0 <= cut.metrics["agents_finished_frac"] < 1.0
    _, full = run("fifo", 0, n_agents=30)
    assert full.metrics["all_agents_finished"] == 1.0 and full.metrics["agents_finished_frac"] == 1.0
    for name in ("agents-bursty-steady", "agents-tenants-fairness"):
        assert get_task(name).constraint == "all_agents_finished"
