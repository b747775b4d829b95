"""Training-only env wrappers of the PPO backends (never used when a trained policy is evaluated)."""

from __future__ import annotations

from typing import SupportsFloat

import gymnasium as gym

__all__ = ["RewardScale"]


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
