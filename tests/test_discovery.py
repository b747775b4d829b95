"""Discovery (`schedgym list ...`, `schedgym.instances(env_id)`) and episode limits: what can be run, and it runs."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import schedgym
from schedgym.cli import main as cli_main


def _json_lines(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[dict]:
    assert cli_main(argv) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_list_envs_matches_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _json_lines(capsys, ["list", "envs", "--json"])
    assert [r["id"] for r in rows] == schedgym.env_ids()
    assert all(r["id"] in gym.registry for r in rows)


@pytest.mark.parametrize("env_id", schedgym.env_ids())
def test_list_instances_and_policies(capsys: pytest.CaptureFixture[str], env_id: str) -> None:
    rows = _json_lines(capsys, ["list", "instances", "--env", env_id, "--json"])
    assert [r["name"] for r in rows] == schedgym.instances(env_id)
    assert {r["source"] for r in rows} >= {"shipped data", "user file"}
    policies = _json_lines(capsys, ["list", "policies", "--env", env_id, "--json"])
    assert [p["name"] for p in policies] == schedgym.policies(env_id) and "random" in schedgym.policies(env_id)


def test_listed_shipped_instances_construct() -> None:
    """Every listed shipped/generated instance is a value the env accepts (the list cannot drift)."""
    from schedgym.envs import env_entry

    for env_id in schedgym.env_ids():
        entry = env_entry(env_id)
        for info in schedgym.discovery.instance_infos(env_id):
            if info.is_pattern or info.name.startswith("torch:"):
                continue  # user files need a path; torch programs are traced (slow) and tested elsewhere
            kwargs = {**entry.test_kwargs, info.kwarg: info.name, **info.needs}
            if info.kwarg == "instance":
                kwargs = {info.kwarg: info.name, **info.needs}
            env = gym.make(env_id, **kwargs)
            env.reset(seed=0)
            env.close()


def test_list_tasks_filters_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _json_lines(capsys, ["list", "tasks", "--tier", "quick", "--json"])
    assert rows and all(r["tier"] == "quick" for r in rows)
    assert {r["name"] for r in rows} == set(schedgym.tasks(tier="quick"))
    mm = schedgym.tasks("schedgym/MemoryMapping-v0")
    assert mm and all(name.startswith("memory-") for name in mm)
    assert cli_main(["list", "instances"]) == 2
    assert "needs --env" in capsys.readouterr().err
    assert cli_main(["list", "policies", "--env", "schedgym/Nope-v0"]) == 2
    assert "unknown env id" in capsys.readouterr().err


@pytest.mark.parametrize("env_id", schedgym.env_ids())
def test_metrics_present_when_a_time_limit_truncates(env_id: str) -> None:
    from schedgym.envs import env_entry

    if env_entry(env_id).vector_entry_point:
        pytest.skip("ids with a vector_entry_point cannot carry Gymnasium additional_wrappers (make_vec refuses "
                    "them); tests/test_vector_envs.py checks the vector env's own time limit")
    env = gym.make(env_id, max_episode_steps=3, **env_entry(env_id).test_kwargs)
    _, info = env.reset(seed=0)
    for _ in range(3):
        _, _, terminated, truncated, info = env.step(int(info["action_mask"].argmax()))
        if terminated:
            pytest.skip("the test instance ended on its own within 3 steps")
    assert truncated and set(info["metrics"]) == set(env.unwrapped.metrics())
    assert env.spec.max_episode_steps == 3


#: ``gym.make(id).spec.max_episode_steps`` as each docstring's "Episode End" documents it (default kwargs).
DOCUMENTED_HORIZONS = {
    "schedgym/AgentScheduling-v1": None,
    "schedgym/MemoryMapping-v0": 200,
    "schedgym/GPUAutoscaling-v1": 1440,
    "schedgym/PowerCapping-v2": 351,
}


@pytest.mark.parametrize("env_id", schedgym.env_ids())
def test_spec_max_episode_steps_is_the_documented_horizon(env_id: str) -> None:
    env = gym.make(env_id)
    assert env.spec.max_episode_steps == DOCUMENTED_HORIZONS[env_id]
    assert str(DOCUMENTED_HORIZONS[env_id]) in (type(env.unwrapped).__doc__ or "").split("## Episode End")[1]


@pytest.mark.parametrize(("env_id", "kwargs", "steps"), [
    ("schedgym/MemoryMapping-v0", {"n_buffers": 300}, 300),
    ("schedgym/MemoryMapping-v0", {"instance": "minimalloc:A"}, None),
    ("schedgym/GPUAutoscaling-v1", {"episode_days": 2.0}, 2880),
    ("schedgym/GPUAutoscaling-v1", {"workload": "azure-code"}, 58),
    ("schedgym/PowerCapping-v2", {"episode_hours": 2.0, "workload": "synthetic"}, 720),
    ("schedgym/PowerCapping-v2", {"decision_interval_s": 5}, 701),
])
def test_the_limit_follows_the_kwargs(env_id: str, kwargs: dict, steps: int | None) -> None:
    """Other kwargs are never cut at the default horizon: the limit is the env's own, from its kwargs."""
    env = gym.make(env_id, **kwargs)
    expected = env.unwrapped.horizon_steps if steps is None else steps
    assert env.spec.max_episode_steps == expected == env.unwrapped.horizon_steps
    # A smaller limit asked for at make() is the one the spec reports.
    assert gym.make(env_id, max_episode_steps=7, **kwargs).spec.max_episode_steps == 7


@pytest.mark.parametrize(("env_id", "kwargs"), [
    ("schedgym/MemoryMapping-v0", {}),
    ("schedgym/MemoryMapping-v0", {"action_mode": "order"}),
    ("schedgym/PowerCapping-v2", {}),
    # The default day of GPUAutoscaling takes ~1 min; 0.05 days has the same rule (72 intervals).
    ("schedgym/GPUAutoscaling-v1", {"episode_days": 0.05}),
])
def test_an_episode_ends_by_itself_within_the_limit_with_metrics(env_id: str, kwargs: dict) -> None:
    env = gym.make(env_id, **kwargs)
    limit = env.spec.max_episode_steps
    _, info = env.reset(seed=0)
    for step in range(1, limit + 1):
        _, _, terminated, truncated, info = env.step(int(info["action_mask"].argmax()))
        if terminated or truncated:
            break
    assert terminated or truncated, f"{env_id} ran {limit} steps without ending"
    assert not (terminated and truncated), "a terminating step must not also be flagged truncated"
    if env_id.startswith("schedgym/MemoryMapping"):
        assert terminated and (step == limit or kwargs.get("action_mode") == "order")
    else:  # these end by the env's own truncation at exactly their horizon
        assert truncated and step == limit
    assert set(info["metrics"]) == set(env.unwrapped.metrics())


def test_run_table_prints_integral_metrics_exactly() -> None:
    from schedgym.commands.run import _number

    assert _number(1048576.0, 6) == "1048576" and _number(0.5, 6) == "0.5" and _number(float("nan"), 3) == "nan"


def test_the_discovery_api_does_not_shadow_the_envs_subpackage():
    """``schedgym.envs`` stays the subpackage, so dotted imports of env modules work after ``import schedgym``."""
    import schedgym.envs.power_capping.env as power_env  # noqa: PLC0415 (the import is what is tested)

    assert power_env.PowerCappingEnv.__name__ == "PowerCappingEnv"
    assert callable(schedgym.env_ids) and not callable(schedgym.envs)
