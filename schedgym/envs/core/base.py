"""The env contract shared by every schedgym environment.

`SchedEnv` implements the parts of the contract that do not depend on the domain (see
ARCHITECTURE.md, "The env contract"): action masks in the three conventions of the ecosystem,
replacement of invalid actions by a documented default action with a penalty, episode metrics in
``info["metrics"]``, ``get_state()``/``set_state()`` snapshots and the two render modes.

A subclass supplies the dynamics through a handful of hooks::

    _reset(options)            build the episode's simulator state from ``self.np_random``
    _observe() -> obs          the flat float32 observation
    _action_mask() -> mask     bool/int array of shape (n_actions,)
    _default_action() -> int   the legal action used in place of an invalid one
    _apply(action) -> (reward, terminated, truncated, info)
    metrics() -> dict          domain metrics (called at episode end, and on demand)
    _render_rgb() / _render_ansi()

and keeps every piece of mutable simulator state in ``self.state`` (anything deep-copyable, usually
a dataclass of numpy arrays), which is what ``get_state``/``set_state`` snapshot.
"""

from __future__ import annotations

import copy
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np

__all__ = ["SchedEnv", "EnvState"]

#: A snapshot returned by :meth:`SchedEnv.get_state`: the simulator state and the RNG state.
EnvState = dict[str, Any]


class SchedEnv(gym.Env[np.ndarray, np.int64]):
    """Base class of the schedgym environments (not registered itself)."""

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    #: Subclasses set these in ``__init__``.
    action_space: gym.spaces.Discrete
    observation_space: gym.spaces.Box

    def __init__(self, *, invalid_action_penalty: float = 0.0, render_mode: str | None = None) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r} is not supported; choose one of {self.metadata['render_modes']} or None"
            )
        if not np.isfinite(invalid_action_penalty) or invalid_action_penalty < 0:
            raise ValueError(f"invalid_action_penalty must be a finite number >= 0, got {invalid_action_penalty!r}")
        self.render_mode = render_mode
        self.invalid_action_penalty = float(invalid_action_penalty)
        self.state: Any = None
        self._episode_over = False

    # ------------------------------------------------------------------ hooks for subclasses
    def _reset(self, options: dict[str, Any] | None) -> None:
        raise NotImplementedError

    def _observe(self) -> np.ndarray:
        raise NotImplementedError

    def _action_mask(self) -> np.ndarray:
        raise NotImplementedError

    def _default_action(self) -> int:
        raise NotImplementedError

    def _apply(self, action: int) -> tuple[float, bool, bool, dict[str, Any]]:
        raise NotImplementedError

    def _extra_info(self) -> dict[str, Any]:
        """Domain entries added to ``info`` on reset and every step (default: none)."""
        return {}

    def metrics(self) -> dict[str, float]:
        """Domain metrics of the episode so far (documented per env)."""
        raise NotImplementedError

    def _render_rgb(self) -> np.ndarray:
        raise NotImplementedError

    def _render_ansi(self) -> str:
        raise NotImplementedError

    # ------------------------------------------------------------------ Gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._reset(options)
        self._episode_over = False
        info = self._extra_info()
        info["action_mask"] = self.action_masks().astype(np.int8)
        return self._observe(), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        if self._episode_over:
            raise RuntimeError("the episode is over: call reset() before stepping again")
        action_int, invalid = self._validate_action(action)
        reward, terminated, truncated, info = self._apply(action_int)
        info.update(self._extra_info())
        if invalid:
            reward -= self.invalid_action_penalty
        info["invalid_action"] = invalid
        info["action"] = action_int
        info["action_mask"] = self.action_masks().astype(np.int8)
        if terminated or truncated:
            self._episode_over = True
            info["metrics"] = self.metrics()
        return self._observe(), float(reward), bool(terminated), bool(truncated), info

    def _validate_action(self, action: Any) -> tuple[int, bool]:
        """Return the action to execute and whether the requested one was invalid (never raises)."""
        try:
            a = int(np.asarray(action).reshape(()))
        except (TypeError, ValueError):
            return self._default_action(), True
        if 0 <= a < self.action_space.n and self._action_mask()[a]:
            return a, False
        return self._default_action(), True

    def action_masks(self) -> np.ndarray:
        """Legal actions as a bool array of shape ``(action_space.n,)`` (sb3-contrib MaskablePPO)."""
        if self.state is None:
            raise RuntimeError("call reset() before action_masks()")
        return np.asarray(self._action_mask(), dtype=bool)

    def render(self) -> np.ndarray | str | None:  # type: ignore[override]
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'rgb_array'")
            return None
        if self.state is None:
            raise RuntimeError("call reset() before render()")
        if self.render_mode == "ansi":
            return self._render_ansi()
        return self._render_rgb()

    # ------------------------------------------------------------------ snapshots
    def get_state(self) -> EnvState:
        """Snapshot the full simulator state (including the RNG) for tree search or replay."""
        return {
            "sim": copy.deepcopy(self.state),
            "rng": copy.deepcopy(self.np_random.bit_generator.state),
            "episode_over": self._episode_over,
        }

    def set_state(self, state: EnvState) -> None:
        """Restore a snapshot taken by :meth:`get_state` on an env built with the same kwargs."""
        try:
            sim, rng, over = state["sim"], state["rng"], state["episode_over"]
        except (KeyError, TypeError) as exc:
            raise ValueError("set_state expects a dict returned by get_state()") from exc
        self.state = copy.deepcopy(sim)
        self.np_random.bit_generator.state = copy.deepcopy(rng)
        self._episode_over = bool(over)
