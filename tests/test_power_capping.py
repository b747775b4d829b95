"""PowerCapping-v0: power model, brake, actuation delay, baselines, the oversubscription sweep and its CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

import schedgym  # noqa: F401
from schedgym.baselines import make_policy
from schedgym.envs.power_capping import power_model as pm
from schedgym.envs.power_capping.env import PowerCappingEnv
from schedgym.envs.power_capping.oversubscription import servers_deployable
from schedgym.evaluation import make_env, run_episode

ENV_ID = "schedgym/PowerCapping-v0"
#: Short horizon (the first 10 minutes of azure-conv), load calibrated to peak at 79 % of the budget.
SHORT = {"episode_s": 600}


def run(n_servers: int, policy: str, seed: int = 0, **kwargs):
    env = make_env(ENV_ID, {**SHORT, "n_servers": n_servers, **kwargs})
    result = run_episode(env, make_policy(policy, ENV_ID), seed=seed)
    return env.unwrapped, result.metrics


# ------------------------------------------------------------------ power model
def test_alpha_calibration_matches_polca_tradeoff():
    # At the clock where prefill is 7 % slower, peak (prefill) GPU power is 80 % of uncapped.
    f = pm.F_MAX_MHZ / 1.07
    gpu_peak_w = pm.GPU_IDLE_W + pm.PREFILL_DYN_W * pm.dynamic_power_factor(f)
    assert gpu_peak_w == pytest.approx(0.80 * pm.GPU_PREFILL_W, rel=1e-9)
    assert pm.prefill_stretch(f) == pytest.approx(1.07)
    assert 3.5 < pm.ALPHA < 4.5
    # Decode is memory-bound: unaffected at POLCA's caps, slowed only at the brake clock.
    assert pm.decode_stretch(1110.0) == 1.0 and pm.decode_stretch(pm.F_BRAKE_MHZ) > 2.0
    # All GPUs at full prefill draw the DGX-A100's rated 6.5 kW; idle is 1.5 kW.
    one = np.ones(1)
    assert pm.server_power_w(one, 0 * one, one)[0] == pytest.approx(pm.SERVER_RATED_PEAK_W)
    assert pm.server_power_w(0 * one, 0 * one, one)[0] == pytest.approx(pm.SERVER_IDLE_W)


# ------------------------------------------------------------------ must-show behaviour
@pytest.mark.parametrize("seed", [0, 1])
def test_provisioned_row_without_caps_never_brakes(seed):
    env, m = run(40, "no_cap", seed=seed)
    assert m["brake_events"] == 0 and m["seconds_over_budget"] == 0
    assert 0.7 < m["peak_power_frac"] < 0.85  # calibrated near POLCA's 79 %
    # No caps and no brake: the controlled row is the reference row.
    assert m["hp_perf_loss"] == 0.0 and m["lp_perf_loss"] == 0.0
    assert m["energy_kwh"] == pytest.approx(m["ref_energy_kwh"])


def test_heavy_oversubscription_without_caps_brakes():
    env, m = run(60, "no_cap")
    assert m["brake_events"] > 0 and m["seconds_over_budget"] > 0
    assert m["peak_power_frac"] > 1.0
    # Brakes hurt both classes against the uncapped reference.
    assert m["hp_perf_loss"] > 0.02 and m["lp_perf_loss"] > 0.02


@pytest.mark.parametrize("delay_s", [20, 40])
def test_caps_take_effect_only_after_the_actuation_delay(delay_s):
    env = PowerCappingEnv(n_servers=40, episode_s=200, actuation_delay_s=delay_s, decision_interval_s=10)
    env.reset(seed=0)
    a = env.action_for_caps(900, 1110)
    for _ in range(10):
        _, _, _, _, info = env.step(a)
    s = env.state
    assert np.all(s.lp_cap_hist_mhz[:delay_s] == pm.F_MAX_MHZ)
    assert np.all(s.hp_cap_hist_mhz[:delay_s] == pm.F_MAX_MHZ)
    assert np.all(s.lp_cap_hist_mhz[delay_s:100] == 900) and np.all(s.hp_cap_hist_mhz[delay_s:100] == 1110)
    # Power follows the caps: lower after the delay than in the reference row.
    assert s.power_w[delay_s + 5 : 100].mean() < 0.9 * s.ref_power_w[delay_s + 5 : 100].mean()
    assert info["telemetry"]["active_lp_mhz"] == 900


@pytest.mark.parametrize("brake_delay_s", [1, 5])
def test_brake_lowers_power_within_5_seconds(brake_delay_s):
    env, m = run(60, "no_cap", brake_delay_s=brake_delay_s)
    s, budget = env.state, env.budget_w
    fired = np.flatnonzero(s.brake_fired)
    assert fired.size == m["brake_events"] > 0
    for t in fired:
        assert s.power_w[t] > budget
        t_brake = t + brake_delay_s
        assert t_brake <= t + 5
        assert s.lp_cap_hist_mhz[t_brake] == pm.F_BRAKE_MHZ
        assert s.power_w[t_brake] < 0.5 * budget
        assert np.all(s.lp_cap_hist_mhz[t + 1 : t_brake] > pm.F_BRAKE_MHZ)


def test_energy_and_perf_loss_move_in_opposite_directions_as_caps_tighten():
    caps = [(1410, 1410), (1275, 1305), (1110, 1110), (900, 1110)]
    energy, loss = [], []
    for lp, hp in caps:
        env = make_env(ENV_ID, {**SHORT, "n_servers": 40})
        res = run_episode(env, make_policy("static_cap", ENV_ID, lp_mhz=lp, hp_mhz=hp), seed=0)
        assert res.metrics["brake_events"] == 0
        energy.append(res.metrics["energy_kwh"])
        loss.append(res.metrics["hp_perf_loss"] + res.metrics["lp_perf_loss"])
    assert all(np.diff(energy) < 0), energy
    assert all(np.diff(loss) > 0), loss


def test_perf_loss_is_per_class():
    env = make_env(ENV_ID, {**SHORT, "n_servers": 40})
    m = run_episode(env, make_policy("static_cap", ENV_ID, lp_mhz=900, hp_mhz=1410), seed=0).metrics
    assert m["hp_perf_loss"] == 0.0 and m["lp_perf_loss"] > 0.0
    assert m["lp_ttft_p99"] > m["hp_ttft_p99"] > m["hp_ttft_p50"] > 0


# ------------------------------------------------------------------ baselines
def test_capping_policies_avoid_brakes_that_no_cap_suffers():
    _, base = run(54, "no_cap")
    _, polca = run(54, "polca")
    _, bayes = run(54, "bayesian")
    assert base["brake_events"] > 0
    assert polca["brake_events"] < base["brake_events"]
    assert bayes["brake_events"] < base["brake_events"]
    assert bayes["energy_kwh"] < base["ref_energy_kwh"]


def test_polca_escalates_with_row_power():
    env = PowerCappingEnv(n_servers=40, episode_s=100, rate_scale=1.0)
    obs, _ = env.reset(seed=0)
    pol = make_policy("polca", ENV_ID)
    pol.reset(env)

    def act(p: float) -> tuple[float, float]:
        o = np.zeros_like(obs)
        o[1] = p
        return env.caps_of_action(pol.act(o, {}))

    assert act(0.70) == (1410, 1410)
    assert act(0.82) == (1275, 1410)
    assert act(0.78) == (1275, 1410)  # hysteresis: above 75 %
    assert act(0.90) == (1110, 1410)
    assert act(0.90) == (1110, 1410)  # the LP cap has not had time to act yet
    for _ in range(4):
        caps = act(0.90)
    assert caps == (1110, 1305)  # still above T2 one actuation delay later: cap HP too
    assert act(0.86) == (1110, 1305)  # above 84 %: keep
    assert act(0.83) == (1275, 1410)
    assert act(0.74) == (1410, 1410)


def test_bayesian_prior_predictive_and_epsilon_monotonicity():
    from schedgym.baselines.power_capping import BayesianCapPolicy

    env = PowerCappingEnv(n_servers=40, episode_s=100, rate_scale=1.0)
    env.reset(seed=0)
    pol = BayesianCapPolicy(prior_sigma=0.06)
    pol.reset(env)
    dof, loc, scale = pol._posterior_predictive()  # no data yet: the prior predictive
    assert (dof, loc) == (6.0, 0.0)
    assert scale == pytest.approx(np.sqrt(0.06**2 * 2.0 * 2.0 / 3.0))
    # A smaller risk budget never caps less: lower energy, more perf loss.
    out = {}
    for eps in (1e-4, 0.3):
        e = make_env(ENV_ID, {**SHORT, "n_servers": 52})
        out[eps] = run_episode(e, make_policy("bayesian", ENV_ID, epsilon=eps), seed=0).metrics
    assert out[1e-4]["energy_kwh"] < out[0.3]["energy_kwh"]
    assert out[1e-4]["lp_perf_loss"] > out[0.3]["lp_perf_loss"]


def test_bayesian_rejects_bad_epsilon():
    with pytest.raises(ValueError, match="epsilon"):
        make_policy("bayesian", ENV_ID, epsilon=1.5)


# ------------------------------------------------------------------ workloads and kwargs
def test_trace_file_workload_and_errors(tmp_path):
    path = tmp_path / "t.csv"
    rows = ["ts_ms,inp,out"] + [f"{i * 137},{500 + (i * 97) % 3000},{20 + (i * 31) % 300}" for i in range(3000)]
    path.write_text("\n".join(rows) + "\n")
    kw = {"trace_columns": {"time": "ts_ms", "prompt_tokens": "inp", "output_tokens": "out"}, "trace_time_unit": "ms"}
    env = PowerCappingEnv(n_servers=6, provisioned_servers=5, workload=f"trace:{path}", rate_scale=1.0, **kw)
    assert env.horizon_s == int(2999 * 0.137)
    env.reset(seed=0)
    m = run_episode(env, make_policy("polca", ENV_ID), seed=0).metrics
    assert m["n_requests"] > 2000 and m["energy_kwh"] > 0
    bad = tmp_path / "bad.csv"
    bad.write_text("ts_ms,inp,out\n0,10,10\n5,x,10\n")
    with pytest.raises(ValueError, match=r"bad\.csv:3"):
        PowerCappingEnv(workload=f"trace:{bad}", rate_scale=1.0, **kw)


def test_synthetic_workload_runs_and_depends_on_seed():
    kw = {"workload": "synthetic", "episode_s": 300, "n_servers": 12, "provisioned_servers": 10}
    env = make_env(ENV_ID, kw)
    a = run_episode(env, make_policy("no_cap", ENV_ID), seed=0).metrics
    b = run_episode(env, make_policy("no_cap", ENV_ID), seed=1).metrics
    assert a["n_requests"] > 0 and a["n_requests"] != b["n_requests"]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_servers": 0}, "n_servers"),
        ({"hp_fraction": 1.0}, "hp_fraction"),
        ({"workload": "azure-chat"}, "workload"),
        ({"lp_caps_mhz": [2000]}, "lp_caps_mhz"),
        ({"brake_delay_s": 6}, "brake_delay_s"),
        ({"rate_scale": -1.0}, "rate_scale"),
    ],
)
def test_bad_kwargs_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PowerCappingEnv(**{"rate_scale": 1.0, **kwargs})


# ------------------------------------------------------------------ the oversubscription sweep
SWEEP_ENV = {"episode_s": 600, "provisioned_servers": 10}


def test_sweep_finds_the_largest_safe_count():
    res = servers_deployable("no_cap", env_kwargs=SWEEP_ENV, max_servers=16, patience=2)
    counts = {c.n_servers: c for c in res.counts}
    assert res.counts[0].n_servers == 10 and res.counts[0].ok
    assert res.servers_deployable >= 10 and counts[res.servers_deployable].ok
    # Every count above the answer that was tried failed one of the three conditions.
    for n, c in counts.items():
        if n > res.servers_deployable:
            assert not c.ok
            assert c.brake_events > 0 or c.hp_perf_loss > 0.01 or c.lp_perf_loss > 0.02
    assert res.counts[-1].n_servers == 16 or not res.counts[-1].ok


def test_oversubscription_cli_json(capsys):
    from schedgym.cli import main

    rc = main(["oversubscription", "--policy", "no_cap", "--kwargs", json.dumps(SWEEP_ENV), "--max-servers", "13", "--json"])
    assert rc == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    *counts, last = lines
    assert [c["n_servers"] for c in counts] == list(range(10, 10 + len(counts)))
    for c in counts:
        assert {"n_servers", "brake_events", "hp_perf_loss", "lp_perf_loss", "ok"} <= set(c)
    assert isinstance(last["servers_deployable"], int) and last["policy"] == "no_cap"


def test_oversubscription_cli_rejects_n_servers(capsys):
    from schedgym.cli import main

    assert main(["oversubscription", "--policy", "no_cap", "--kwargs", '{"n_servers": 50}', "--json"]) == 2
    assert "n_servers" in capsys.readouterr().err
