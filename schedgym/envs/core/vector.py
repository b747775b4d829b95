"""Pieces every native vector env (``vector_entry_point``) needs the same way, in Gymnasium 1.x's conventions:
the constructor's checks, the seeds and sub-envs of a ``reset``, the actions of a ``step`` under
:class:`~schedgym.envs.core.base.SchedEnv`'s rule (only integral actions are valid), and finished episodes'
metrics in the vector-info convention.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from gymnasium.utils import seeding

from schedgym.envs.core.base import integral_action

__all__ = ["vector_args", "reset_plan", "integral_actions", "stacked_metrics", "add_step_info", "AutoresetSeeds"]


class AutoresetSeeds:
    """Seeds for the next auto-resets of a native vector env whose sub-env ``e`` draws from ``_rngs[e]``.

    Under next-step autoreset a sub-env restarts inside ``step`` without a seed (it continues its own
    stream). A trainer that may only use a train split's seeds names the seed of each finished sub-env's
    next episode with :meth:`seed_autoresets`; that episode then starts exactly as ``reset(seed=s)``
    would start it. The env calls :meth:`_seed_autoresetting` just before it auto-resets and
    :meth:`_forget_autoreset_seeds` when ``reset`` restarts sub-envs itself.
    """

    num_envs: int
    _rngs: list[np.random.Generator | None]

    def seed_autoresets(self, seeds: Sequence[int | None]) -> None:
        """Seed the next auto-reset of each sub-env ``i`` with ``seeds[i]`` (``None``: its own stream)."""
        seeds = list(seeds)
        if len(seeds) != self.num_envs:
            raise ValueError(f"seed_autoresets: {len(seeds)} seeds for {self.num_envs} envs")
        for s in seeds:
            if s is not None and (isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0):
                raise ValueError(f"seed_autoresets: seeds must be non-negative integers or None, got {s!r}")
        pending = self.__dict__.setdefault("_autoreset_seeds", [None] * self.num_envs)
        for e, s in enumerate(seeds):
            if s is not None:
                pending[e] = int(s)

    def _seed_autoresetting(self, resets: np.ndarray) -> None:
        pending = self.__dict__.get("_autoreset_seeds")
        if pending is None:
            return
        for e in np.flatnonzero(resets):
            if pending[e] is not None:
                self._rngs[e], _ = seeding.np_random(pending[e])
                pending[e] = None

    def _reset_plan(self, seed: int | list[int | None] | None, options: dict[str, Any] | None,
                    ready: bool) -> tuple[list[int | None], np.ndarray]:  # fmt: skip
        """:func:`reset_plan` of a ``reset(seed=..., options=...)``, forgetting the pending auto-reset seeds
        of the sub-envs it resets and seeding the vector env's own ``np_random`` from the first seed."""
        seeds, which = reset_plan(seed, options, self.num_envs, ready)
        self._forget_autoreset_seeds(which)
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seeds[0])
        return seeds, which

    def _forget_autoreset_seeds(self, which: np.ndarray) -> None:
        pending = self.__dict__.get("_autoreset_seeds")
        if pending is not None:
            for e in np.flatnonzero(which):
                pending[e] = None


def vector_args(name: str, num_envs: Any, max_episode_steps: Any, kwargs: dict[str, Any]) -> tuple[int, int | None]:
    """Checked ``(num_envs, max_episode_steps)`` of a vector env's constructor; drops ``render_mode=None``
    from the sub-envs' ``kwargs`` and refuses any other (a vector env does not render)."""
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
    if kwargs.get("render_mode") is not None:
        raise ValueError(f"{name} does not render; render a single env (gym.make) instead")
    kwargs.pop("render_mode", None)
    if max_episode_steps is not None and (isinstance(max_episode_steps, bool) or int(max_episode_steps) < 1):
        raise ValueError(f"max_episode_steps must be None or an int >= 1, got {max_episode_steps!r}")
    return int(num_envs), None if max_episode_steps is None else int(max_episode_steps)


def reset_plan(
    seed: int | list[int | None] | None, options: dict[str, Any] | None, n: int, ready: bool
) -> tuple[list[int | None], np.ndarray]:
    """``(seeds, which)`` of ``VectorEnv.reset(seed=..., options=...)`` over ``n`` sub-envs: an int seed gives
    sub-env ``i`` ``seed + i``, a list one seed each; ``which`` (bool (n,)) is ``options["reset_mask"]`` or
    every sub-env (the first reset, ``ready`` False, must reset them all)."""
    if seed is None:
        seeds: list[int | None] = [None] * n
    elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        seeds = [int(seed) + i for i in range(n)]
    else:
        seeds = list(seed)
        if len(seeds) != n:
            raise ValueError(f"reset: {len(seeds)} seeds for {n} envs")
    reset_mask = None if options is None else options.get("reset_mask")
    if reset_mask is None:
        return seeds, np.ones(n, dtype=bool)
    which = np.asarray(reset_mask, dtype=bool)
    if which.shape != (n,):
        raise ValueError(f"reset: options['reset_mask'] must have shape ({n},), got {which.shape}")
    if not ready and not which.all():
        raise ValueError("reset: the first reset must reset every sub-env")
    return seeds, which


def integral_actions(actions: Any, n: int) -> tuple[np.ndarray, np.ndarray | None]:
    """``(actions as int64 (n,), valid)`` for a kernel that only reads them: ``valid`` is None when every
    action is integral (an integer array, which is not copied if it is int64 already), else a bool (n,)
    array marking the integral ones (bools, floats and objects are not: they get the default action)."""
    arr = np.asarray(actions)
    if arr.shape != (n,):
        raise ValueError(f"step: actions must have shape ({n},), got {arr.shape}")
    if arr.dtype.kind in "iu":  # uint64 beyond int64 wraps negative: out of range, as it is
        return np.ascontiguousarray(arr, dtype=np.int64), None
    acts = np.zeros(n, dtype=np.int64)
    valid = np.zeros(n, dtype=bool)
    for e, x in enumerate(arr.tolist()):
        a = integral_action(x)
        if a is not None and -(2**63) < a < 2**63:
            acts[e], valid[e] = a, True
    return acts, valid


def stacked_metrics(n: int, finished: np.ndarray, metrics_of: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    """``info["metrics"]`` of a vector step: for each key of ``metrics_of(e)`` (e in ``finished``) an (n,)
    array of the values' type and its ``_key`` bool mask, as ``SyncVectorEnv`` gathers them."""
    m: dict[str, Any] = {}
    for e in finished:
        for key, value in metrics_of(int(e)).items():
            if key not in m:
                m[key] = np.zeros(n, dtype=type(value))
                m[f"_{key}"] = np.zeros(n, dtype=bool)
            m[key][e] = value
            m[f"_{key}"][e] = True
    return m


def add_step_info(
    info: dict[str, Any],
    stepped: np.ndarray,
    invalid: np.ndarray,
    executed: np.ndarray,
    done: np.ndarray,
    metrics_of: Callable[[int], dict[str, Any]],
) -> dict[str, Any]:
    """Add a vector step's per-sub-env ``invalid_action`` and ``action`` (only when some sub-env stepped,
    as ``SyncVectorEnv`` has them) and the finished episodes' ``metrics`` to ``info``; returns it."""
    if stepped.any():
        info["invalid_action"] = invalid.copy()
        info["_invalid_action"] = stepped.copy()
        info["action"] = executed.copy()
        info["_action"] = stepped.copy()
    finished = np.flatnonzero(done)
    if finished.size:
        info["metrics"] = stacked_metrics(len(done), finished, metrics_of)
        info["_metrics"] = done.copy()
    return info
