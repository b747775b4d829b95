"""``spec.max_episode_steps`` from the env's own horizon, for whatever kwargs it was made with.

Three families end every episode themselves after a number of steps fixed at construction: MemoryMapping
after its ``n`` buffers, GPUAutoscaling and PowerCapping at their workload's horizon. That number depends
on the kwargs (``n_buffers``, the instance, ``episode_days``, ``interval_s``, ``episode_hours``...), so a
``max_episode_steps`` registered for the default kwargs would cut every longer configuration short.
Instead these ids are registered with this wrapper: a ``TimeLimit`` whose limit is
``env.unwrapped.horizon_steps``, computed by the env from its kwargs. ``gym.make(id, **kwargs).spec``
then reports the true horizon to RL libraries, and the limit never fires before the env's own end: it
only guards against an env bug. A ``gym.make(id, max_episode_steps=N)`` still applies (inside this one).
"""

from __future__ import annotations

import dataclasses
from copy import deepcopy
from typing import Any, SupportsFloat

import gymnasium as gym
from gymnasium.envs.registration import EnvSpec, WrapperSpec

__all__ = ["EnvHorizonLimit", "ENV_HORIZON_WRAPPER_SPEC", "HorizonSpec"]


class EnvHorizonLimit(gym.wrappers.TimeLimit):
    """``TimeLimit(env, env.unwrapped.horizon_steps)``; a step that terminates is not also flagged truncated."""

    def __init__(self, env: gym.Env) -> None:
        steps = getattr(env.unwrapped, "horizon_steps", None)
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise TypeError(
                f"{type(env.unwrapped).__name__}.horizon_steps must be an int >= 1 to be wrapped in "
                f"EnvHorizonLimit, got {steps!r}"
            )
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self._max_episode_steps = steps
        self._elapsed_steps: int | None = None

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._elapsed_steps += 1
        if self._elapsed_steps >= self._max_episode_steps and not terminated:
            truncated = True
        return obs, reward, terminated, truncated, info

    @property
    def spec(self) -> EnvSpec | None:
        """The inner spec with ``max_episode_steps`` = the first limit to fire (a user's may be smaller)."""
        if self._cached_spec is not None:
            return self._cached_spec
        env_spec = self.env.spec
        if env_spec is not None:
            env_spec = deepcopy(env_spec)
            inner = env_spec.max_episode_steps
            env_spec.max_episode_steps = self._max_episode_steps if inner is None else min(inner, self._max_episode_steps)
        self._cached_spec = env_spec
        return env_spec


ENV_HORIZON_WRAPPER_SPEC = WrapperSpec(
    name="EnvHorizonLimit",
    entry_point="schedgym.envs.core.horizon:EnvHorizonLimit",
    kwargs={},
)


class HorizonSpec:
    """Mixin of an env whose id has a native vector env: such an id cannot carry :class:`EnvHorizonLimit`
    (``gym.make_vec`` refuses additional wrappers), so the env reports its own horizon in its spec.

    ``gym.make`` sets ``env.spec``; the setter fills ``max_episode_steps`` with ``horizon_steps`` (the env
    ends every episode by then) unless a limit was given, so no ``TimeLimit`` wrapper is needed for it.
    """

    horizon_steps: int | None

    @property
    def spec(self) -> EnvSpec | None:
        return self.__dict__.get("_spec")

    @spec.setter
    def spec(self, value: EnvSpec | None) -> None:
        if value is not None and value.max_episode_steps is None:
            value = dataclasses.replace(value, max_episode_steps=self.horizon_steps)
        self._spec = value
