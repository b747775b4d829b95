"""Run a policy in an env for whole episodes: the loop shared by the CLI and the benchmark runner."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from schedgym.baselines import Policy

__all__ = ["EpisodeResult", "run_episode", "make_env"]


@dataclass
class EpisodeResult:
    episode_return: float
    episode_length: int
    metrics: dict[str, float]
    walltime_s: float
    actions: list[int] = field(default_factory=list)
    #: What the policy reports about its own run (e.g. an exact solver's status and proven bound), from its
    #: optional ``episode_metrics()``; kept apart from the env's ``metrics`` (which replay must reproduce).
    policy_metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self, include_actions: bool = False) -> str:
        d = asdict(self)
        if not include_actions:
            d.pop("actions")
        if not d["policy_metrics"]:
            d.pop("policy_metrics")
        return json.dumps(d, default=_json_default)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def make_env(env_id: str, kwargs: dict[str, Any] | None = None, **make_kwargs: Any) -> gym.Env:
    """``gym.make`` with errors that name the bad kwarg and list the valid ones."""
    import inspect

    import schedgym  # noqa: F401  (registers the ids)
    from schedgym.envs import env_entry

    entry = env_entry(env_id)
    kwargs = dict(kwargs or {})
    module_name, cls_name = entry.entry_point.split(":")
    import importlib

    cls = getattr(importlib.import_module(module_name), cls_name)
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        valid = sorted(n for n in params if n != "self")
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise ValueError(f"unknown kwarg(s) {unknown} for {entry.id}; valid kwargs: {valid}")
    return gym.make(entry.id, **kwargs, **make_kwargs)


def run_episode(env: gym.Env, policy: Policy, seed: int | None = None, record_actions: bool = True) -> EpisodeResult:
    """One episode of ``policy`` in ``env`` from ``reset(seed=seed)``; metrics from the env at the end."""
    t0 = time.perf_counter()
    obs, info = env.reset(seed=seed)
    policy.reset(env.unwrapped)
    total, length, actions = 0.0, 0, []
    terminated = truncated = False
    while not (terminated or truncated):
        action = policy.act(obs, info)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        length += 1
        if record_actions:
            actions.append(int(info.get("action", action)))
    metrics = info.get("metrics") or env.unwrapped.metrics()
    report = getattr(policy, "episode_metrics", None)
    policy_metrics = dict(report()) if callable(report) else {}
    return EpisodeResult(total, length, dict(metrics), time.perf_counter() - t0, actions, policy_metrics)
