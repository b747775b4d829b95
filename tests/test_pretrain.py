"""Behaviour cloning before PPO (``agents/ppo/pretrain.py``) and the AgentScheduling agent it trained."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import schedgym
from schedgym.agents.ppo.pretrain import clone_into_actor, collect_demonstrations

ENV_ID = "schedgym/AgentScheduling-v1"
SMALL = {"workload": "poisson", "n_agents": 6}
REPO = Path(schedgym.__file__).resolve().parent.parent
AGENT = REPO / "leaderboard" / "agents" / "agent_scheduling-ppo_sb3_bc"


def test_demonstrations_use_only_the_train_seeds_and_record_every_decision() -> None:
    demos = collect_demonstrations(ENV_ID, SMALL, "fifo", episodes=3, seed=0, train_seeds="1000-")
    assert len(demos.seeds) == 3 and all(s >= 1000 for s in demos.seeds)
    assert demos.obs.shape[0] == demos.masks.shape[0] == demos.actions.shape[0] > 30
    assert demos.masks[np.arange(len(demos.actions)), demos.actions].all()  # FIFO only takes legal actions
    again = collect_demonstrations(ENV_ID, SMALL, "fifo", episodes=3, seed=0, train_seeds="1000-")
    np.testing.assert_array_equal(demos.actions, again.actions)  # deterministic under the run seed
    with pytest.raises(ValueError, match="pretrain_episodes"):
        collect_demonstrations(ENV_ID, SMALL, "fifo", episodes=0, seed=0)


def test_cloning_makes_the_actor_take_the_baselines_decisions() -> None:
    import gymnasium as gym
    from sb3_contrib import MaskablePPO

    demos = collect_demonstrations(ENV_ID, SMALL, "bayesian_sjf", episodes=4, seed=0, train_seeds="1000-")
    model = MaskablePPO("MlpPolicy", gym.make(ENV_ID, **SMALL), seed=0, device="cpu",
                        policy_kwargs={"net_arch": {"pi": [128, 128], "vf": [64]}})

    def agreement() -> float:
        acts, _ = model.predict(demos.obs, action_masks=demos.masks, deterministic=True)
        return float(np.mean(acts == demos.actions))

    before = agreement()
    losses = clone_into_actor(model.policy, demos, epochs=15, lr=1e-3, batch_size=256, seed=0)
    assert losses[-1] < losses[0] / 3
    assert agreement() > max(0.9, before + 0.2)


@pytest.mark.slow
def test_committed_agent_scheduling_agent_reproduces_its_row_and_beats_vtc() -> None:
    from schedgym.agents import load_agent_policy
    from schedgym.benchmark.results import decode_actions, read_rows
    from schedgym.evaluation import make_env, run_episode

    rows = read_rows(REPO / "leaderboard" / "results" / "agents-bursty-steady" / f"{AGENT.name}.csv").rows
    row = next(r for r in rows if r["instance"] == "bursty" and r["seed"] == 0)
    policy = load_agent_policy(AGENT, env_id=ENV_ID)
    result = run_episode(make_env(ENV_ID, {"n_agents": 100, "workload": "azure-code"}), policy, seed=0)
    assert result.actions == list(decode_actions(row["actions"]))
    assert result.metrics["turnaround_mean"] == pytest.approx(float(row["metric"]), rel=1e-12)
    vtc = read_rows(REPO / "leaderboard" / "results" / "agents-bursty-steady" / "vtc.csv").rows
    assert result.metrics["turnaround_mean"] < next(float(r["metric"]) for r in vtc
                                                    if r["instance"] == "bursty" and r["seed"] == 0)


def test_pretrain_config_is_checked() -> None:
    from schedgym.agents.ppo.sb3 import _check_config

    with pytest.raises(ValueError, match="pretrain_policy must be a baseline name or null"):
        _check_config({"pretrain_policy": 3})
    with pytest.raises(ValueError, match="pretrain_episodes"):
        _check_config({"pretrain_policy": "fifo", "pretrain_episodes": 0})
