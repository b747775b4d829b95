"""Baselines: heuristics, Bayesian policies and oracles, one module per env family.

Everything that acts implements the :class:`Policy` protocol, so the CLI and the benchmark runner
treat a heuristic, a Bayesian policy, an oracle and a trained agent alike. Policies are looked up by
name with :func:`make_policy`; each family's module registers its own with :func:`register_policy`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

__all__ = [
    "Policy",
    "register_policy",
    "make_policy",
    "list_policies",
    "PolicyInfo",
    "RandomPolicy",
    "env_kwargs_for",
    "PRESENTATION_KWARGS",
]


@runtime_checkable
class Policy(Protocol):
    """What acts in an env: ``reset`` once per episode, then ``act`` every step.

    Optionally a policy has ``env_overrides: dict`` (see :func:`env_kwargs_for`).
    """

    name: str

    def reset(self, env: gym.Env) -> None:
        """Start an episode. ``env`` is the *unwrapped* env (heuristics read telemetry, oracles the future)."""
        ...

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        """The action for this step; ``info["action_mask"]`` holds the legal actions."""
        ...


#: Env kwargs a policy may add through ``env_overrides`` (how the game is presented; never the instance
#: or the objective), per env family. Anything else in a results row's ``env_kwargs`` must be the task's.
PRESENTATION_KWARGS: dict[str, tuple[str, ...]] = {"MemoryMapping": ("action_mode", "order", "K")}


def env_kwargs_for(policy: Any, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The env kwargs a policy runs with: the task's, plus the policy's ``env_overrides``.

    A policy may declare ``env_overrides`` (a dict of env kwargs) for how the game must be *presented*
    to it, e.g. best fit in the spatial order needs ``order="size"``. Overrides never change the
    instance or the objective. A task kwarg that contradicts an override is an error.
    """
    overrides = dict(getattr(policy, "env_overrides", None) or {})
    clash = {k: (env_kwargs[k], v) for k, v in overrides.items() if k in env_kwargs and env_kwargs[k] != v}
    if clash:
        name = getattr(policy, "name", type(policy).__name__)
        details = ", ".join(f"{k}={have!r} (needs {want!r})" for k, (have, want) in clash.items())
        raise ValueError(f"policy {name!r} cannot run with env kwargs {details}")
    return {**env_kwargs, **overrides}


class PolicyInfo:
    """A registered policy factory and what it is (``kind``: heuristic, bayesian, oracle, random)."""

    def __init__(self, name: str, factory: Callable[..., Policy], kind: str, description: str) -> None:
        self.name, self.factory, self.kind, self.description = name, factory, kind, description


#: Modules that register the baselines of each env family (imported on first use).
_FAMILY_MODULES = {
    "MemoryMapping": "schedgym.baselines.memory_mapping",
    "GPUAutoscaling": "schedgym.baselines.gpu_autoscaling",
    "PowerCapping": "schedgym.baselines.power_capping",
    "AgentScheduling": "schedgym.baselines.agent_scheduling",
}
_REGISTRY: dict[str, dict[str, PolicyInfo]] = {}


def register_policy(family: str, name: str, kind: str, description: str) -> Callable[[Callable[..., Policy]], Any]:
    """Class/function decorator registering a policy factory under ``(family, name)``."""

    def deco(factory: Callable[..., Policy]) -> Callable[..., Policy]:
        _REGISTRY.setdefault(family, {})[name] = PolicyInfo(name, factory, kind, description)
        return factory

    return deco


def _load_family(family: str) -> dict[str, PolicyInfo]:
    if family not in _FAMILY_MODULES:
        raise ValueError(f"unknown env family {family!r}; known: {sorted(_FAMILY_MODULES)}")
    importlib.import_module(_FAMILY_MODULES[family])
    policies = dict(_REGISTRY.get(family, {}))
    policies.setdefault("random", PolicyInfo("random", RandomPolicy, "random", "uniform over legal actions"))
    return policies


def list_policies(env_id: str) -> dict[str, PolicyInfo]:
    """Policies available for a registered env id, by name."""
    from schedgym.envs import env_family

    return _load_family(env_family(env_id))


def make_policy(name: str, env_id: str, **kwargs: Any) -> Policy:
    """Instantiate the named baseline for ``env_id``; the error lists the valid names."""
    policies = list_policies(env_id)
    if name not in policies:
        raise ValueError(f"unknown policy {name!r} for {env_id}; choose one of {sorted(policies)}")
    try:
        return policies[name].factory(**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad kwargs for policy {name!r}: {exc}") from None


class RandomPolicy:
    """Uniform over the legal actions (``info["action_mask"]``), seeded from ``seed``."""

    def __init__(self, seed: int = 0) -> None:
        self.name = "random"
        self._seed = seed
        self._rng = np.random.default_rng(seed)

    def reset(self, env: gym.Env) -> None:
        # The stream continues across episodes; it never touches the env's RNG (that would change
        # the env's own trajectory under the same seed).
        pass

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        legal = np.flatnonzero(info["action_mask"])
        return int(self._rng.choice(legal)) if legal.size else 0
