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

Trust rules enforced here, once for every env:

- an action is valid only if it is integral (a Python ``int``, a numpy integer or a 0-d integer array) in
  range and legal; ``True``, ``"0"``, ``1.7`` or ``[1]`` are invalid actions (default action + penalty,
  ``info["invalid_action"] = True``), never truncated or coerced;
- a snapshot carries the env class, its registered id (the version) and a fingerprint of the
  constructor kwargs (the instance), plus the shape and dtype of every top-level state array;
  ``set_state`` refuses a snapshot of another env, version or instance, and arrays whose shapes or
  dtypes differ from the recorded ones, with a ``ValueError`` that names the difference.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
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

    def __new__(cls, *args: Any, **kwargs: Any) -> SchedEnv:
        # Record the constructor arguments (the instance an env simulates) for the snapshot fingerprint;
        # pickling and deepcopy bypass this and restore the recorded value from __dict__.
        self = super().__new__(cls)
        self._ctor_kwargs = _canonical_kwargs(args, kwargs)
        return self

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

    @property
    def horizon_steps(self) -> int | None:
        """Steps by which the env itself has ended every episode, given its kwargs (None: no such bound).

        Envs that return an int are registered with :class:`~schedgym.envs.core.horizon.EnvHorizonLimit`,
        which makes it ``spec.max_episode_steps`` (documented under "Episode End").
        """
        return None

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
        return self._finish_step(action_int, invalid, *self._apply(action_int))

    def _finish_step(
        self, action_int: int, invalid: bool, reward: float, terminated: bool, truncated: bool, info: dict[str, Any]
    ) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """The rest of :meth:`step` once ``_apply`` has run: the penalty, the contract's info entries, the
        episode's metrics at its end, the observation. (Vector envs that batch ``_apply`` call it too.)"""
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
        """Return the action to execute and whether the requested one was invalid (never raises).

        Only integral actions are valid (Python ``int``, numpy integer, 0-d integer array; never ``bool``):
        ``1.7`` is not silently truncated to 1, and ``"0"`` or ``True`` are not coerced.
        """
        a = integral_action(action)
        if a is not None and 0 <= a < self.action_space.n and self._action_mask()[a]:
            return a, False
        return self._default_action(), True

    def rollout_return(self, max_steps: int = 1_000_000) -> float:
        """The return of playing the default action (:meth:`_default_action`, the env's own heuristic) from
        the current state to the episode's end or ``max_steps``, leaving the env as it was.

        A search with the true simulator uses it as a leaf value (AlphaGo's rollouts; exact in a
        deterministic env). Costs a snapshot and one :meth:`_apply` per step; envs override it with a kernel.
        """
        if self.state is None:
            raise RuntimeError("call reset() before rollout_return()")
        if self._episode_over:
            return 0.0
        snapshot = self.snapshot_unchecked()
        total = 0.0
        try:
            for _ in range(int(max_steps)):
                reward, terminated, truncated, _ = self._apply(self._default_action())
                total += float(reward)
                if terminated or truncated:
                    break
        finally:
            self.restore_unchecked(snapshot)
        return total

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
    def _fingerprint(self) -> str:
        """Hash of the env class, its registered id and constructor kwargs (computed once per env)."""
        fp = self.__dict__.get("_snapshot_fingerprint")
        if fp is None:
            text = json.dumps([_class_path(type(self)), _registered_id(type(self)), self._kwargs_text()])
            fp = hashlib.sha256(text.encode()).hexdigest()[:32]
            self._snapshot_fingerprint = fp
        return fp

    def _kwargs_text(self) -> str:
        return self.__dict__.get("_ctor_kwargs", "{}")

    def get_state(self) -> EnvState:
        """Snapshot the full simulator state (including the RNG) for tree search or replay.

        Besides ``sim``/``rng``/``episode_over`` the snapshot records what it belongs to (``env``,
        ``env_id``, ``kwargs``, ``fingerprint``) and the shape/dtype of every top-level state array.
        """
        sim = copy.deepcopy(self.state)
        return {
            "sim": sim,
            "rng": self.np_random.bit_generator.state,  # a new dict on every read
            "episode_over": self._episode_over,
            "env": _class_path(type(self)),
            "env_id": _registered_id(type(self)),
            "kwargs": self._kwargs_text(),
            "fingerprint": self._fingerprint(),
            "arrays": _array_signature(sim),
        }

    def snapshot_unchecked(self) -> EnvState:
        """A snapshot for a search that restores it into this same env object only (MuZero's simulator
        model): the simulator state, RNG and episode flag of :meth:`get_state`, without the provenance
        and array signature that make a snapshot safe to hand around: 1.3x the simulator search's
        moves/s on MemoryMapping (``benchmarks/simulator_search.py``)."""
        return {"sim": copy.deepcopy(self.state), "rng": self.np_random.bit_generator.state,
                "episode_over": self._episode_over}  # fmt: skip

    def restore_unchecked(self, state: EnvState) -> None:
        """Restore :meth:`snapshot_unchecked`'s (or :meth:`get_state`'s) snapshot without :meth:`set_state`'s
        checks: only for snapshots taken from this env object or an exact copy of it."""
        self.np_random.bit_generator.state = state["rng"]
        self.state = copy.deepcopy(state["sim"])
        self._episode_over = bool(state["episode_over"])
        self._after_restore()

    def _after_restore(self) -> None:
        """Hook: rebuild what the env derives from ``self.state`` after a restore (default: nothing)."""

    def set_state(self, state: EnvState) -> None:
        """Restore a snapshot taken by :meth:`get_state` on an env of the same class, version and kwargs.

        ``ValueError`` (naming the difference) for anything else: a snapshot of another env class or
        version, of an env built with other kwargs (another instance), or whose arrays were cut short or
        changed type. Nothing is restored when a check fails.
        """
        if not isinstance(state, dict):
            raise ValueError(f"set_state expects a dict returned by get_state(), got {type(state).__name__}")
        missing = [k for k in _SNAPSHOT_KEYS if k not in state]
        if missing:
            raise ValueError(f"set_state expects a dict returned by get_state(); it lacks {missing}")
        mine = _class_path(type(self))
        if state["env"] != mine:
            raise ValueError(f"set_state: the snapshot is of env class {state['env']!r}, this env is {mine!r}")
        if state["env_id"] != _registered_id(type(self)):
            raise ValueError(
                f"set_state: the snapshot is of {state['env_id']!r}, this env is {_registered_id(type(self))!r}"
            )
        if state["fingerprint"] != self._fingerprint():
            raise ValueError(
                "set_state: the snapshot was taken on an env built with other kwargs (another instance): "
                + _kwargs_difference(str(state["kwargs"]), self._kwargs_text())
            )
        sim, rng = state["sim"], state["rng"]
        recorded = state["arrays"]
        if not isinstance(recorded, dict):
            raise ValueError("set_state: the snapshot's 'arrays' signature is not a dict")
        actual = _array_signature(sim)
        for name in sorted(set(recorded) | set(actual)):
            if name not in actual:
                raise ValueError(f"set_state: state array {name!r} is missing (the snapshot recorded {recorded[name]})")
            if name not in recorded:
                raise ValueError(f"set_state: state array {name!r} was not in the snapshot when it was taken")
            if tuple(actual[name]) != tuple(recorded[name]):
                raise ValueError(
                    f"set_state: state array {name!r} has shape/dtype {actual[name]}, the snapshot recorded {recorded[name]}"
                )
        if not isinstance(rng, dict) or rng.get("bit_generator") != self.np_random.bit_generator.state["bit_generator"]:
            raise ValueError("set_state: the snapshot's 'rng' is not a state of this env's bit generator")
        saved_rng = self.np_random.bit_generator.state
        try:
            self.np_random.bit_generator.state = rng  # read, not kept: the snapshot stays reusable
        except (TypeError, ValueError, KeyError) as exc:
            self.np_random.bit_generator.state = saved_rng
            raise ValueError(f"set_state: the snapshot's 'rng' is not a valid generator state ({exc})") from None
        self.state = copy.deepcopy(sim)
        self._episode_over = bool(state["episode_over"])
        self._after_restore()


_SNAPSHOT_KEYS = ("sim", "rng", "episode_over", "env", "env_id", "kwargs", "fingerprint", "arrays")


def integral_action(action: Any) -> int | None:
    """``action`` as an int if it is integral (int, numpy integer, 0-d integer array; not bool), else None."""
    if isinstance(action, (bool, np.bool_)):
        return None
    if isinstance(action, int):
        return int(action)
    if isinstance(action, np.integer):
        return int(action)
    if isinstance(action, np.ndarray) and action.ndim == 0 and action.dtype.kind in "iu":
        return int(action)
    return None


def _canonical_kwargs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Constructor arguments as canonical JSON (render_mode left out: it does not change the dynamics)."""
    kw = {k: v for k, v in kwargs.items() if k != "render_mode"}
    if args:
        kw["__args__"] = list(args)
    try:
        return json.dumps(kw, sort_keys=True, default=repr, allow_nan=True)
    except (TypeError, ValueError):
        return repr(sorted(kw.items(), key=lambda kv: kv[0]))


def _kwargs_difference(theirs: str, mine: str) -> str:
    try:
        a, b = json.loads(theirs), json.loads(mine)
    except ValueError:
        return f"snapshot kwargs {theirs[:200]}, this env's {mine[:200]}"
    keys = sorted(set(a) | set(b))
    diffs = [f"{k}: snapshot {a.get(k, '(default)')!r}, this env {b.get(k, '(default)')!r}" for k in keys if a.get(k, None) != b.get(k, None)]
    return "; ".join(diffs)[:500] if diffs else "the kwargs are equal but the fingerprint differs (another env version?)"


_CLASS_IDS: dict[type, str | None] = {}


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _registered_id(cls: type) -> str | None:
    """The registered env id (name and version) whose entry point is ``cls``, or None."""
    if cls not in _CLASS_IDS:
        from schedgym.envs import ENV_ENTRIES

        path = _class_path(cls)
        _CLASS_IDS[cls] = next((e.id for e in ENV_ENTRIES if e.entry_point == path), None)
    return _CLASS_IDS[cls]


def _array_signature(sim: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """Shape and dtype of every numpy array among the top-level fields of the simulator state."""
    if dataclasses.is_dataclass(sim) and not isinstance(sim, type):
        items = ((f.name, getattr(sim, f.name, None)) for f in dataclasses.fields(sim))
    elif isinstance(sim, dict):
        items = ((str(k), v) for k, v in sim.items())
    else:
        items = ()
    return {name: (tuple(v.shape), v.dtype.str) for name, v in items if isinstance(v, np.ndarray)}
