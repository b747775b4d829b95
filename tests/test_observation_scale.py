"""Observations stay in [-10, 10] on every shipped instance and workload, so SB3/RLlib MLPs need no extra
normalisation (issue: observations reached 1e4-1e6)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import schedgym
from schedgym import discovery
from schedgym.envs import env_entry

STEPS = 60


def _cases() -> list[tuple[str, str, dict]]:
    out = []
    for env_id in schedgym.env_ids():
        entry = env_entry(env_id)
        for info in discovery.instance_infos(env_id):
            if info.is_pattern or info.name.startswith("torch:"):
                continue  # user files need a path; traced torch programs are covered by their own tests
            base = {} if info.kwarg == "instance" else dict(entry.test_kwargs)
            out.append((env_id, info.name, {**base, info.kwarg: info.name, **info.needs}))
    return out


@pytest.mark.parametrize("env_id,name,kwargs", _cases(), ids=lambda x: x if isinstance(x, str) else "")
def test_observations_stay_within_ten_under_random_play(env_id: str, name: str, kwargs: dict) -> None:
    env = gym.make(env_id, **kwargs)
    assert env.observation_space.low.min() >= -10.0 and env.observation_space.high.max() <= 10.0
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    lo, hi = float(obs.min()), float(obs.max())
    for t in range(STEPS):
        legal = np.flatnonzero(info["action_mask"])
        obs, _, terminated, truncated, info = env.step(int(rng.choice(legal)) if legal.size else 0)
        lo, hi = min(lo, float(obs.min())), max(hi, float(obs.max()))
        if terminated or truncated:
            obs, info = env.reset(seed=t + 1)
    assert -10.0 <= lo and hi <= 10.0, (env_id, name, lo, hi)
