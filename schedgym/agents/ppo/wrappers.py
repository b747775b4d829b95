"""Training-only env wrappers of the PPO backends (never used when a trained policy is evaluated)."""

from __future__ import annotations

from typing import SupportsFloat

import gymnasium as gym

__all__ = ["EpisodeReturnInfo", "RewardScale"]


class RewardScale(gym.RewardWrapper):
    """Multiply rewards by a constant ``scale`` (``reward_scale`` in the configs).

    Why: PPO's value loss and advantage scale follow the reward scale; the envs' returns range from O(1)
    (MemoryMapping, a fraction) to O(1e4) (GPUAutoscaling, dollars and SLA penalties per episode), and a
    fixed per-env scale keeps both backends in the range their default learning rates and RLlib's value
    clipping (``vf_clip_param``) expect. The greedy policy does not depend on it.
    """

    def __init__(self, env: gym.Env, scale: float) -> None:
        super().__init__(env)
        self.scale = float(scale)

    def reward(self, reward: SupportsFloat) -> float:
        return float(reward) * self.scale


class EpisodeReturnInfo(gym.Wrapper):
    """Put the episode's undiscounted return in ``info["episode_return"]`` on its last step.

    Why: RLlib hands its ``on_episode_end`` callback the episode's last chunk, whose ``get_return()`` covers
    only the steps since the last rollout fragment; this wrapper sums every reward of the episode (inside
    ``RewardScale``, so in the env's own units) for the ``episode/return`` learning curve.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._return = 0.0

    def reset(self, **kwargs):  # type: ignore[no-untyped-def]
        self._return = 0.0
        return self.env.reset(**kwargs)

    def step(self, action):  # type: ignore[no-untyped-def]
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        if terminated or truncated:
            info = {**info, "episode_return": self._return}
        return obs, reward, terminated, truncated, info
