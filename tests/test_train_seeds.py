"""Training on a task's train split: `schedgym train --task/--train-seeds` resets the training envs only with
the split's seeds and records exactly that, so validation accepts the agent on a task whose test split names
other seeds of the same generator (and rejects one trained at every seed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from schedgym.training.seeds import ResetSeeds, TrainSeeds, train_seeds_for_task

AS = "schedgym/AgentScheduling-v1"
POISSON = {"workload": "poisson", "n_agents": 12, "agent_rate": 0.2, "n_cores": 1, "time_slice_s": 0.5}
TASK = "agents-bursty-steady-quick"  # scores poisson seeds 0..2; trains on poisson seeds >= 1000


def test_train_seeds_parse_and_draw() -> None:
    assert str(TrainSeeds.parse("1000-")) == "1000-" and str(TrainSeeds.parse("5,3,5")) == "3,5"
    assert TrainSeeds.parse("1000-").instance_spec("poisson") == "poisson#seeds>=1000"
    assert TrainSeeds.parse("3,5").instance_spec("tenants") == "tenants#seeds=3,5"
    for bad in ("", "a-", "x,1", "-5-"):
        with pytest.raises(ValueError, match="train-seeds|train seeds"):
            TrainSeeds.parse(bad)
    rng = np.random.default_rng(0)
    assert all(TrainSeeds.parse("1000-").draw(rng) >= 1000 for _ in range(100))
    assert {TrainSeeds.parse("3,5").draw(rng) for _ in range(50)} == {3, 5}


def test_reset_seeds_wrapper_resets_only_with_train_seeds() -> None:
    from schedgym.evaluation import make_env

    def episode_seeds(seed: int) -> list[int]:
        env = ResetSeeds(make_env(AS, POISSON), "1000-")
        seen = []
        env.reset(seed=seed)
        seen.append(env.last_seed)
        for _ in range(4):
            env.reset()  # an auto-reset without a seed still draws from the train seeds
            seen.append(env.last_seed)
        return seen

    a = episode_seeds(7)
    assert all(s >= 1000 for s in a) and len(set(a)) > 1
    assert a == episode_seeds(7) and a != episode_seeds(8)  # deterministic, seeded by the trainer's seed
    # the env itself was reset with that seed: the same workload as a plain reset(seed=drawn)
    env, plain = ResetSeeds(make_env(AS, POISSON), "1000-"), make_env(AS, POISSON)
    obs, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs, plain.reset(seed=env.last_seed)[0])


def test_task_train_seeds_follow_the_split() -> None:
    assert str(train_seeds_for_task(TASK, AS, {"workload": "poisson"})) == "1000-"
    assert train_seeds_for_task(TASK, AS, {"workload": "tenants"}) is None  # every tenants seed is train data
    with pytest.raises(ValueError, match="not in its train split"):
        train_seeds_for_task(TASK, AS, {"workload": "azure-code"})  # the bursty test trace
    with pytest.raises(ValueError, match="its env is"):
        train_seeds_for_task(TASK, "schedgym/PowerCapping-v2", {})


def _record(tmp_path: Path, name: str, extra_args: list[str]) -> Path:
    """The agent record `schedgym train` writes (RunDir.prepare, no training)."""
    from schedgym.cli import build_parser
    from schedgym.commands.train import build_spec
    from schedgym.training.rundir import RunDir

    out = tmp_path / "agents" / name
    args = build_parser().parse_args(["train", "--env", AS, "--algo", "ppo", "--backend", "sb3", "--kwargs",
                                      json.dumps(POISSON), "--out", str(out), "--timesteps", "64", *extra_args])
    RunDir(out).prepare(build_spec(args))
    return out


def test_agent_trained_on_the_train_seeds_passes_validation_and_one_at_every_seed_does_not(tmp_path: Path) -> None:
    from schedgym.benchmark.tasks import get_task
    from schedgym.benchmark.validate import RowRejected, check_agent_training

    task = get_task(TASK)
    split_run = _record(tmp_path, "split", ["--task", TASK])
    seeds_run = _record(tmp_path, "seeds", ["--train-seeds", "2000-"])
    every_run = _record(tmp_path, "every", [])
    assert json.loads((split_run / "schedgym_agent.json").read_text())["train_instances"] == ["poisson#seeds>=1000"]
    assert json.loads((every_run / "schedgym_agent.json").read_text())["train_instances"] == ["poisson"]
    agents = [tmp_path / "agents"]
    for run in (split_run, seeds_run):
        check_agent_training(task, {"extra": {"agent_dir": str(run)}}, agents)
    with pytest.raises(RowRejected, match="overlap"):
        check_agent_training(task, {"extra": {"agent_dir": str(every_run)}}, agents)
    low = _record(tmp_path, "low", ["--train-seeds", "0-"])  # seeds 0.. include the test seeds
    with pytest.raises(RowRejected, match="overlap"):
        check_agent_training(task, {"extra": {"agent_dir": str(low)}}, agents)


@pytest.mark.parametrize("native", ["true", "false"])  # the native vector env and DummyVecEnv + ResetSeeds
def test_sb3_trains_on_the_train_seeds_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: str) -> None:
    from schedgym.cli import main as cli_main
    from schedgym.training.seeds import TrainSeeds

    seen: list[int] = []
    real_draw = TrainSeeds.draw

    def spy(self, rng):  # type: ignore[no-untyped-def]
        seed = real_draw(self, rng)
        seen.append(seed)
        return seed

    monkeypatch.setattr(TrainSeeds, "draw", spy)
    out = tmp_path / "run"
    assert cli_main(["train", "--env", AS, "--algo", "ppo", "--backend", "sb3", "--kwargs", json.dumps(POISSON),
                     "--timesteps", "128", "--out", str(out), "--no-progress", "--task", TASK,
                     "--set", "n_envs=1", "--set", "n_steps=64", "--set", "batch_size=32", "--set", "n_epochs=1",
                     "--set", f"native_vector_env={native}"]) == 0
    assert seen and all(s >= 1000 for s in seen)
    meta = json.loads((out / "schedgym_agent.json").read_text())
    assert meta["train_seeds"] == "1000-" and meta["train_instances"] == ["poisson#seeds>=1000"]
