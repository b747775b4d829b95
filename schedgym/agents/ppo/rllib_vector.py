"""RLlib's env runners on a schedgym native vector env (``vector_entry_point``) instead of N wrapped copies.

RLlib builds its runners' envs with ``gym.make_vec``; by default it vectorises single envs itself
(``SyncVectorEnv``, one Python ``step`` per sub-env) and applies the training wrappers to each copy:
:class:`~schedgym.envs.core.ActionMaskObservation`, :class:`~schedgym.agents.ppo.wrappers.EpisodeReturnInfo`,
:class:`~schedgym.training.seeds.ResetSeeds` and :class:`~schedgym.agents.ppo.wrappers.RewardScale`.
Gymnasium forbids per-env wrappers on a native vector env, so :class:`RLlibVectorEnv` does the same four
jobs on the whole vector at once, with the same numbers (``tests/test_rllib_vector.py`` checks it step for
step against the ``SyncVectorEnv`` of wrapped single envs):

- observations ``{"observations": (N, obs), "action_mask": (N, A) float32}``;
- ``info["episode_return"]`` (env units) on a sub-env's last step;
- train-split seeds: sub-env ``i``'s resets draw their seeds from a generator seeded by its reset seed
  (``ResetSeeds``); under next-step autoreset the draw is handed to the env with
  ``seed_autoresets`` (:class:`~schedgym.envs.core.vector.AutoresetSeeds`);
- rewards times ``reward_scale``.

:func:`make_rllib_env` is the env creator RLlib calls (``config.env``): with ``"num_envs"`` in its context
it returns the vector env, otherwise one wrapped single env (RLlib asks for that to infer spaces).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space

from schedgym.envs.core.vector import reset_plan

__all__ = ["RLlibVectorEnv", "make_rllib_env"]


class RLlibVectorEnv(gym.vector.VectorWrapper):
    """A native vector env with RLlib's training wrappers applied to every sub-env (module docstring)."""

    def __init__(self, env: gym.vector.VectorEnv, reward_scale: float = 1.0, train_seeds: Any = None) -> None:
        super().__init__(env)
        if not isinstance(env.single_action_space, gym.spaces.Discrete):
            raise TypeError(f"RLlibVectorEnv needs a Discrete action space, got {env.single_action_space}")
        if train_seeds is not None and not hasattr(env.unwrapped, "seed_autoresets"):
            raise TypeError(f"{type(env.unwrapped).__name__} cannot seed its auto-resets (train_seeds needs it)")
        n_actions = int(env.single_action_space.n)
        self.single_observation_space = gym.spaces.Dict(
            {
                "observations": env.single_observation_space,
                "action_mask": gym.spaces.Box(0.0, 1.0, shape=(n_actions,), dtype=np.float32),
            }
        )
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.reward_scale = float(reward_scale)
        if isinstance(train_seeds, str):
            from schedgym.training.seeds import TrainSeeds

            train_seeds = TrainSeeds.parse(train_seeds)
        self.train_seeds = train_seeds
        n = self.num_envs
        # ResetSeeds starts every copy's draws from default_rng(0) until a reset seed re-seeds them.
        self._draws = [np.random.default_rng(0) for _ in range(n)]
        self._returns = np.zeros(n)
        self._resetting = np.zeros(n, dtype=bool)  # sub-envs the next step auto-resets

    def _observe(self, obs: np.ndarray, info: dict[str, Any]) -> dict[str, np.ndarray]:
        return {"observations": obs, "action_mask": np.asarray(info["action_mask"], dtype=np.float32)}

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        seeds, which = reset_plan(seed, options, self.num_envs, ready=True)
        if self.train_seeds is not None:
            for e in np.flatnonzero(which):
                if seeds[e] is not None:
                    self._draws[e] = np.random.default_rng(int(seeds[e]))
                seeds[e] = self.train_seeds.draw(self._draws[e])
        obs, info = self.env.reset(seed=seeds, options=options)
        self._returns[which] = 0.0
        self._resetting[which] = False
        return self._observe(obs, info), info

    def step(self, actions: Any) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        rewards = np.asarray(rewards, dtype=np.float64)
        self._returns[self._resetting] = 0.0  # those rows are the first observation of a new episode
        self._returns += rewards
        done = np.logical_or(terminated, truncated)
        if done.any():
            info["episode_return"] = np.where(done, self._returns, 0.0)
            info["_episode_return"] = done.copy()
            if self.train_seeds is not None:
                self.env.unwrapped.seed_autoresets(
                    [self.train_seeds.draw(self._draws[e]) if done[e] else None for e in range(self.num_envs)]
                )
        self._resetting = done
        return self._observe(obs, info), rewards * self.reward_scale, terminated, truncated, info


def make_rllib_env(env_ctx: Any) -> Any:
    """RLlib's env creator: ``env_ctx`` holds ``env_id``, ``env_kwargs``, ``reward_scale``, ``train_seeds``,
    ``parallel`` (the vector env's threads; false in remote runners, which hold one CPU each) and, when
    RLlib asks for the vector env, ``num_envs``."""
    import schedgym  # noqa: F401  (registers the ids in a remote env runner)

    env_id = env_ctx["env_id"]
    kwargs = dict(env_ctx.get("env_kwargs") or {})
    scale = float(env_ctx.get("reward_scale", 1.0))
    train_seeds = env_ctx.get("train_seeds")
    num_envs = env_ctx.get("num_envs")
    if num_envs is not None:
        vec = gym.make_vec(env_id, num_envs=int(num_envs), vectorization_mode="vector_entry_point",
                           parallel=bool(env_ctx.get("parallel", True)), **kwargs)  # fmt: skip
        return RLlibVectorEnv(vec, reward_scale=scale, train_seeds=train_seeds)
    from schedgym.agents.ppo.wrappers import EpisodeReturnInfo, RewardScale
    from schedgym.envs.core import ActionMaskObservation

    env: gym.Env = gym.make(env_id, **kwargs)
    if train_seeds is not None:
        from schedgym.training.seeds import ResetSeeds

        env = ResetSeeds(env, train_seeds=str(train_seeds))
    env = EpisodeReturnInfo(ActionMaskObservation(env))
    return RewardScale(env, scale) if scale != 1.0 else env
