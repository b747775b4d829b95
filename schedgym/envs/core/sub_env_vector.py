"""A native vector env over N unwrapped :class:`~schedgym.envs.core.base.SchedEnv` sub-envs.

For the serving-core families (GPUAutoscaling, PowerCapping) a step is dominated by the serving core's
numba kernel simulating every batching iteration of every replica over the decision interval (~85 % of
a step, ``python benchmarks/env_throughput.py``), so what a vector env can save is the Gymnasium wrapper
stack and per-env Python that ``SyncVectorEnv`` adds, and what it can add is the other cores: the
sub-envs' kernels run on several threads (GPUAutoscaling: one ``prange`` call over all fleets;
PowerCapping: rows on a thread pool, the kernel releasing the GIL). A family subclass sets
:attr:`env_class` and may override :meth:`SubEnvVectorEnv._apply_stepped` to batch the dynamics of the
stepped sub-envs.

Semantics are those of ``gymnasium.vector.SyncVectorEnv`` over N ``gym.make(id, **kwargs)`` envs (sub-env
``i`` reset with ``seed + i``), which ``tests/test_vector_envs.py`` checks step for step: next-step
autoreset (the step after an episode ends resets that sub-env without a seed, ignores its action and
returns reward 0, not terminated, not truncated, with the reset's info), infos in the vector-info
convention (``action_mask`` (N, A) int8 with ``_action_mask``, ``metrics`` for finished episodes).
Train-split seeds for auto-resets: :meth:`~schedgym.envs.core.vector.AutoresetSeeds.seed_autoresets`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from schedgym.envs.core.base import SchedEnv
from schedgym.envs.core.vector import AutoresetSeeds, integral_actions, vector_args

__all__ = ["SubEnvVectorEnv"]

#: A stepped sub-env's result: (observation, reward, terminated, truncated, info), as ``SchedEnv.step``.
StepResult = tuple[np.ndarray, float, bool, bool, dict[str, Any]]


class SubEnvVectorEnv(AutoresetSeeds, VectorEnv):
    """``num_envs`` episodes of :attr:`env_class` (same ``kwargs``) stepped together.

    ``max_episode_steps`` (optional) truncates a sub-env after that many steps, with its metrics, as
    ``gym.make``'s ``TimeLimit`` would. Rendering is not supported: render a single env. The sub-envs are
    in :attr:`envs` (unwrapped, read them like ``env.unwrapped``; stepping them directly desynchronises
    the vector env).
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}
    env_class: ClassVar[type[SchedEnv]]

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = None, **kwargs: Any) -> None:
        self.num_envs, self.max_episode_steps = vector_args(type(self).__name__, num_envs, max_episode_steps, kwargs)
        self.render_mode = None
        self.envs: list[SchedEnv] = [self.env_class(**kwargs) for _ in range(self.num_envs)]
        first = self.envs[0]
        self.single_action_space = first.action_space
        self.single_observation_space = first.observation_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        n = self.num_envs
        self._rngs: list[np.random.Generator | None] = [None] * n
        self._obs = np.zeros((n, *self.single_observation_space.shape), dtype=self.single_observation_space.dtype)
        self._autoreset = np.zeros(n, dtype=bool)
        self._elapsed = np.zeros(n, dtype=np.int64)
        self._ready = False

    # ------------------------------------------------------------------ hooks
    def _after_reset(self, e: int) -> None:
        """Called after sub-env ``e`` reset (a family adopts its new episode's arrays here)."""

    def _apply_stepped(self, stepped: np.ndarray, actions: list[int]) -> list[tuple[float, bool, bool, dict[str, Any]]]:
        """``_apply`` of every stepped sub-env (``actions[k]`` for the k-th of ``stepped``), in order. A family
        overrides this to advance all of them in one kernel call."""
        return [self.envs[e]._apply(a) for e, a in zip(stepped, actions)]

    # ------------------------------------------------------------------ resets
    def _reset_one(self, e: int, options: dict[str, Any] | None) -> dict[str, Any]:
        env = self.envs[e]
        if self._rngs[e] is None:
            self._rngs[e], _ = seeding.np_random()
        env._np_random = self._rngs[e]  # reset(seed=None) keeps this stream, as a seeded gym.make env would
        obs, info = env.reset(options=options)
        self._after_reset(e)
        self._obs[e] = obs
        self._elapsed[e] = 0
        self._autoreset[e] = False
        return info

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every sub-env (or those of ``options["reset_mask"]``); ``seed`` int -> sub-env i gets
        ``seed + i``, a list gives one seed per sub-env."""
        seeds, which = self._reset_plan(seed, options, self._ready)
        infos: dict[str, Any] = {}
        sub_options = None if options is None else {k: v for k, v in options.items() if k != "reset_mask"} or None
        for e in np.flatnonzero(which):
            if seeds[e] is not None:
                self._rngs[e], _ = seeding.np_random(seeds[e])
            infos = self._add_info(infos, self._reset_one(int(e), sub_options), int(e))
        self._ready = True
        return self._obs.copy(), infos

    # ------------------------------------------------------------------ steps
    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._ready:
            raise RuntimeError("call reset() before step()")
        n = self.num_envs
        acts, valid = integral_actions(actions, n)  # only integral actions are valid (SchedEnv's contract)
        resets = self._autoreset.copy()
        rewards = np.zeros(n)
        terminated = np.zeros(n, dtype=bool)
        truncated = np.zeros(n, dtype=bool)
        infos: dict[str, Any] = {}
        env_infos: list[dict[str, Any] | None] = [None] * n
        if resets.any():
            self._seed_autoresetting(resets)
            for e in np.flatnonzero(resets):
                env_infos[e] = self._reset_one(int(e), None)
        stepped = np.flatnonzero(~resets)
        checked = [
            self.envs[e]._validate_action(acts[e] if valid is None or valid[e] else None) for e in stepped
        ]
        applied = self._apply_stepped(stepped, [a for a, _ in checked])
        for e, (a, invalid), result in zip(stepped, checked, applied):
            obs, reward, term, trunc, info = self.envs[e]._finish_step(a, invalid, *result)
            self._elapsed[e] += 1
            if self.max_episode_steps is not None and self._elapsed[e] >= self.max_episode_steps and not (term or trunc):
                trunc = True
                info["metrics"] = self.envs[e].metrics()
            self._obs[e], rewards[e], terminated[e], truncated[e] = obs, reward, term, trunc
            env_infos[e] = info
        for e in range(n):
            infos = self._add_info(infos, env_infos[e], e)
        self._autoreset = terminated | truncated
        return self._obs.copy(), rewards, terminated, truncated, infos

    def action_masks(self) -> np.ndarray:
        """Legal actions of every sub-env, bool (N, A) (sb3-contrib's vectorised convention)."""
        if not self._ready:
            raise RuntimeError("call reset() first")
        return np.stack([env.action_masks() for env in self.envs])

    def metrics(self, i: int) -> dict[str, float]:
        """Sub-env ``i``'s episode metrics so far."""
        return self.envs[i].metrics()

    def close_extras(self, **kwargs: Any) -> None:
        for env in self.__dict__.get("envs", ()):  # empty if the constructor raised
            env.close()
        self._ready = False
