"""A stable-baselines3 ``VecEnv`` over a schedgym native vector env (``gym.make_vec(..., "vector_entry_point")``).

SB3 steps its ``DummyVecEnv`` copies one Python env at a time; a native vector env steps all N sub-envs in
one kernel call, so PPO can collect from many more envs per policy forward pass. The adapter gives SB3 what
its own wrappers would:

- **same-step autoreset** (SB3's convention): a sub-env that ends is reset at once with
  ``options={"reset_mask": ...}``; its last observation goes to ``info["terminal_observation"]`` and
  ``info["TimeLimit.truncated"]`` says whether it was cut rather than finished (Gymnasium's native vector
  envs reset on the *next* step instead);
- **Monitor records**: ``info["episode"] = {"r", "l", "t"}`` with the return in the env's own units, which
  :mod:`schedgym.training.curves` logs as ``episode/return``;
- **reward scaling** (``reward_scale``, as :class:`~schedgym.agents.ppo.wrappers.RewardScale`);
- **train-split seeds** (``train_seeds``, as :class:`~schedgym.training.seeds.ResetSeeds`): every reset of
  sub-env ``i`` draws its seed from them with a generator seeded by ``seed + i``;
- **action masks** for sb3-contrib's ``MaskablePPO`` (``env_method("action_masks")``);
- **episode metrics**: a finished sub-env's ``info["metrics"]`` as a dict, as a single env gives it.
"""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

__all__ = ["NativeVecEnv", "has_native_vector_env"]


def has_native_vector_env(env_id: str) -> bool:
    """Whether ``env_id`` registers a ``vector_entry_point`` (one kernel call steps every sub-env)."""
    import schedgym  # noqa: F401  (registers the ids)

    return gym.spec(env_id).vector_entry_point is not None


class NativeVecEnv(VecEnv):
    """``num_envs`` sub-envs of ``env_id`` in one native vector env, behind SB3's ``VecEnv`` API (module
    docstring)."""

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict[str, Any],
        num_envs: int,
        reward_scale: float = 1.0,
        train_seeds: Any = None,
    ) -> None:
        if not has_native_vector_env(env_id):
            raise ValueError(f"{env_id} has no native vector env (no vector_entry_point)")
        self.vec = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **env_kwargs)
        super().__init__(num_envs, self.vec.single_observation_space, self.vec.single_action_space)
        self.reward_scale = float(reward_scale)
        if train_seeds is not None and isinstance(train_seeds, str):
            from schedgym.training.seeds import TrainSeeds

            train_seeds = TrainSeeds.parse(train_seeds)
        self.train_seeds = train_seeds
        self._draws = [np.random.default_rng(i) for i in range(num_envs)]
        self._actions: np.ndarray | None = None
        self._masks = np.ones((num_envs, int(self.action_space.n)), dtype=bool)
        self._returns = np.zeros(num_envs)
        self._lengths = np.zeros(num_envs, dtype=np.int64)
        self._t0 = time.time()

    # ------------------------------------------------------------------ seeds
    def _reset_seeds_for(self, which: np.ndarray) -> list[int | None]:
        """The seed each sub-env in ``which`` is reset with (None: continue its own stream)."""
        seeds: list[int | None] = [None] * self.num_envs
        for i in np.flatnonzero(which):
            if self._seeds[i] is not None:  # set by seed(): also seeds the train-seed draws
                self._draws[i] = np.random.default_rng(int(self._seeds[i]))
            if self.train_seeds is not None:
                seeds[i] = self.train_seeds.draw(self._draws[i])
            else:
                seeds[i] = self._seeds[i]
        return seeds

    def _set_masks(self, info: dict[str, Any], which: np.ndarray) -> None:
        if "action_mask" in info:
            self._masks[which] = np.asarray(info["action_mask"], dtype=bool)[which]

    # ------------------------------------------------------------------ VecEnv API
    def reset(self) -> np.ndarray:
        every = np.ones(self.num_envs, dtype=bool)
        obs, info = self.vec.reset(seed=self._reset_seeds_for(every))
        self._reset_seeds()
        self._set_masks(info, every)
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.int64)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, rewards, terminated, truncated, info = self.vec.step(self._actions)
        rewards = np.asarray(rewards, dtype=np.float64)
        self._returns += rewards
        self._lengths += 1
        dones = np.asarray(terminated) | np.asarray(truncated)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        self._set_masks(info, ~dones)
        if dones.any():
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = obs[i].copy()
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                infos[i]["episode"] = {"r": float(self._returns[i]), "l": int(self._lengths[i]),
                                       "t": round(time.time() - self._t0, 6)}  # fmt: skip
                metrics = _sub_env_metrics(info, i)
                if metrics:
                    infos[i]["metrics"] = metrics  # the episode's metrics, as a gym.make env's last info has them
            obs, reset_info = self.vec.reset(seed=self._reset_seeds_for(dones), options={"reset_mask": dones})
            self._set_masks(reset_info, dones)
            self._returns[dones] = 0.0
            self._lengths[dones] = 0
        return obs, (rewards * self.reward_scale).astype(np.float32), dones, infos

    def action_masks(self) -> np.ndarray:
        return self._masks.copy()

    def close(self) -> None:
        self.vec.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        if attr_name == "action_masks":
            return [self.action_masks] * len(self._indices(indices))
        if attr_name == "render_mode":
            return [None] * len(self._indices(indices))
        raise AttributeError(f"NativeVecEnv sub-envs have no attribute {attr_name!r}")

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        raise AttributeError(f"NativeVecEnv cannot set {attr_name!r} on its sub-envs")

    def env_method(self, method_name: str, *method_args: Any, indices: Any = None, **method_kwargs: Any) -> list[Any]:
        if method_name == "action_masks":
            return [self._masks[i].copy() for i in self._indices(indices)]
        raise AttributeError(f"NativeVecEnv sub-envs have no method {method_name!r}")

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)


def _sub_env_metrics(info: dict[str, Any], i: int) -> dict[str, Any]:
    """Sub-env ``i``'s entries of a vector info's stacked ``metrics`` (arrays with ``_key`` masks)."""
    stacked = info.get("metrics")
    if not stacked or not info.get("_metrics", np.ones(i + 1, dtype=bool))[i]:
        return {}
    return {k: v[i].item() for k, v in stacked.items() if not k.startswith("_") and stacked.get(f"_{k}", [True] * (i + 1))[i]}
