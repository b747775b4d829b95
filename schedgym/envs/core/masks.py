"""The Dict-observation convention of action masks (RLlib's action-masking RLModule).

``info["action_mask"]`` and ``action_masks()`` are provided by :class:`~schedgym.envs.core.base.SchedEnv`
itself; this wrapper adds the third convention, an observation
``{"observations": <flat obs>, "action_mask": <0/1 float32>}``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["ActionMaskObservation"]


class ActionMaskObservation(gym.ObservationWrapper[dict[str, np.ndarray], np.int64, np.ndarray]):
    """Expose the action mask inside a Dict observation ``{"observations", "action_mask"}``.

    Example::

        env = ActionMaskObservation(gym.make("schedgym/MemoryMapping-v0"))
        obs, info = env.reset(seed=0)
        obs["action_mask"]  # float32 0/1 of shape (env.action_space.n,)
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        if not isinstance(env.action_space, gym.spaces.Discrete):
            raise TypeError(f"ActionMaskObservation needs a Discrete action space, got {env.action_space}")
        n = int(env.action_space.n)
        self.observation_space = gym.spaces.Dict(
            {
                "observations": env.observation_space,
                "action_mask": gym.spaces.Box(0.0, 1.0, shape=(n,), dtype=np.float32),
            }
        )

    def observation(self, observation: np.ndarray) -> dict[str, np.ndarray]:
        mask = self.env.unwrapped.action_masks().astype(np.float32)
        return {"observations": observation, "action_mask": mask}

    def action_masks(self) -> np.ndarray:
        return self.env.unwrapped.action_masks()

    def step(self, action: Any):  # type: ignore[override]
        return super().step(action)
