"""``info["metrics"]`` on truncation too, whoever truncates.

An env puts its domain metrics in ``info`` when *it* ends the episode. Gymnasium's ``TimeLimit`` (from a
registered ``max_episode_steps`` or ``gym.make(id, max_episode_steps=N)``) truncates from outside, and
the env cannot see it (``gym.make`` gives the unwrapped env a spec without the limit). Every schedgym id
is registered with this wrapper as an ``additional_wrapper``, which ``gym.make`` applies outside the
``TimeLimit``: when an episode ends without metrics, it adds the env's metrics of the episode so far.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
from gymnasium.envs.registration import WrapperSpec

__all__ = ["EpisodeMetricsOnTruncation", "EPISODE_METRICS_WRAPPER_SPEC"]


class EpisodeMetricsOnTruncation(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Adds ``info["metrics"] = env.unwrapped.metrics()`` to a truncated step that has none."""

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if (terminated or truncated) and "metrics" not in info:
            info["metrics"] = self.env.unwrapped.metrics()
        return obs, reward, terminated, truncated, info


EPISODE_METRICS_WRAPPER_SPEC = WrapperSpec(
    name="EpisodeMetricsOnTruncation",
    entry_point="schedgym.envs.core.episode_metrics:EpisodeMetricsOnTruncation",
    kwargs={},
)
