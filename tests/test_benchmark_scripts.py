"""Smoke runs of the benchmark scripts whose numbers the issue notes and READMEs quote, at toy sizes, so
that they keep running and print what they claim to."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import schedgym

REPO = Path(schedgym.__file__).resolve().parent.parent


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_paired_difference_on_committed_rows(capsys, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    _script("paired_difference").main(["agents-bursty-steady", "agent_scheduling-ppo_sb3_bc", "vtc"])
    out = capsys.readouterr().out
    assert "over 10 (instance, seed) pairs" in out and "better on 10, worse on 0" in out
    assert "the interval excludes 0" in out
    _script("paired_difference").main(["power-deep-oversubscription", "power_capping-ppo_sb3", "static_cap_both"])
    assert "mean difference 0," in capsys.readouterr().out  # the agent is the constant cap
    with pytest.raises(SystemExit, match="no results file"):
        _script("paired_difference").main(["agents-bursty-steady", "no_such_policy", "vtc"])


def test_power_rule_probe_prints_every_loss_measure(capsys) -> None:
    _script("power_rule_probe").main(["--counts", "12", "--policies", "no_cap,static_cap", "--episode-hours", "0.1"])
    lines = capsys.readouterr().out.splitlines()
    no_cap = next(line for line in lines if line.startswith("| no_cap |"))
    static = next(line for line in lines if line.startswith("| static_cap |"))
    # 12 servers on a 40-server budget never reach it: no brakes, no loss uncapped; the LP cap costs LP latency
    assert no_cap == "| no_cap | 0 ; 0.0/0.0 ; 0.0/0.0 ; 0.0/0.0 |"
    brakes, mean, p50, _ = static.split("|")[2].split(";")
    assert int(brakes) == 0 and float(mean.split("/")[1]) > 0 and float(p50.split("/")[1]) > 0


def test_power_reactive_probe_rows(capsys) -> None:
    _script("power_reactive_probe").main(["--seeds", "1", "--thresholds", "0.8", "--episode-hours", "0.1"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    names = [line.split("|")[1].strip() for line in lines[1:]]  # after the header row
    assert names[:5] == [f"constant LP {lp} / HP {hp}" for lp, hp in
                         ((1410, 1410), (1275, 1410), (1410, 1305), (1275, 1305), (1110, 1410))]  # fmt: skip
    assert names[5] == "relax to LP 1410 / HP 1410 below 0.80" and names[6] == "clairvoyant"


def test_env_throughput_json_rows(capsys, monkeypatch) -> None:
    import json

    monkeypatch.setattr("sys.argv", ["env_throughput.py", "--seconds", "0.05", "--num-envs", "4", "--json",
                                     "--only", "GPUAutoscaling azure-conv", "--serial", "--sync"])  # fmt: skip
    _script("env_throughput").main()
    rows = json.loads(capsys.readouterr().out)
    assert [(r["case"], r["vectorized"], r["num_envs"]) for r in rows] == [
        ("GPUAutoscaling azure-conv", False, 1),
        ("GPUAutoscaling azure-conv vector N=4", True, 4),
        ("GPUAutoscaling azure-conv vector N=4 serial", True, 4),
        ("GPUAutoscaling azure-conv SyncVectorEnv N=4", True, 4),
    ]
    for r in rows:
        assert set(r) == {"case", "env_id", "num_envs", "vectorized", "steps_per_s", "ratio_to_cartpole"}
        assert r["env_id"] == "schedgym/GPUAutoscaling-v1" and r["steps_per_s"] > 0 and r["ratio_to_cartpole"] > 0


def test_simulator_search_prints_both_rates(capsys, monkeypatch) -> None:
    monkeypatch.setattr("sys.argv", ["simulator_search.py", "--moves", "1", "--rounds", "1"])
    _script("simulator_search").main()
    out = capsys.readouterr().out
    assert "unchecked" in out and "checked" in out and "unchecked / checked = " in out
