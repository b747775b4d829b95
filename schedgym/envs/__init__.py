"""The registry of schedgym environments.

Each family adds one :class:`EnvEntry` to ``ENV_ENTRIES``; ``register_envs()`` (called on
``import schedgym``) registers them with Gymnasium under the ``schedgym/`` namespace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from schedgym.envs.core.episode_metrics import EPISODE_METRICS_WRAPPER_SPEC
from schedgym.envs.core.horizon import ENV_HORIZON_WRAPPER_SPEC

__all__ = ["EnvEntry", "ENV_ENTRIES", "register_envs", "env_entry", "env_family"]


@dataclass(frozen=True)
class EnvEntry:
    id: str  # e.g. "schedgym/MemoryMapping-v0"
    entry_point: str  # "module:Class"
    description: str  # one line, shown by `schedgym envs`
    #: A registered TimeLimit: None for every id, since every horizon depends on the kwargs (see ``horizon``).
    max_episode_steps: int | None = None
    #: The episode length in steps, for ``schedgym list envs`` (each env's docstring, "Episode End").
    horizon: str = ""
    #: True: the env computes its horizon from its kwargs (``horizon_steps``) and is registered with
    #: ``EnvHorizonLimit``, so ``gym.make(id, **kwargs).spec.max_episode_steps`` is that horizon (an id with a
    #: ``vector_entry_point`` cannot carry the wrapper: its env sets ``spec.max_episode_steps`` itself).
    horizon_from_kwargs: bool = False
    #: Small, fast kwargs used by the generic contract tests over the registry.
    test_kwargs: dict[str, Any] = field(default_factory=dict)
    #: ``"module:Class"`` of the native ``gymnasium.vector.VectorEnv`` (``gym.make_vec``), or None.
    vector_entry_point: str | None = None

    @property
    def family(self) -> str:
        """``"MemoryMapping"`` for ``"schedgym/MemoryMapping-v0"``."""
        return self.id.split("/", 1)[1].rsplit("-v", 1)[0]


ENV_ENTRIES: tuple[EnvEntry, ...] = (
    EnvEntry(
        id="schedgym/AgentScheduling-v1",
        entry_point="schedgym.envs.agent_scheduling.env:AgentSchedulingEnv",
        description="Schedule LLM agents' requests onto LLM cores whose KV cache binds: admission, swap vs recompute, slices (AIOS; FastSwitch; VTC).",
        horizon="none in steps: decisions are event-driven; ends when every agent finishes or at max_sim_s",
        test_kwargs={"n_agents": 12, "agent_rate": 0.2, "n_cores": 1, "time_slice_s": 0.5},
        vector_entry_point="schedgym.envs.agent_scheduling.vector:AgentSchedulingVectorEnv",
    ),
    EnvEntry(
        id="schedgym/MemoryMapping-v0",
        entry_point="schedgym.envs.memory_mapping.env:MemoryMappingEnv",
        description="Place tensor buffers in an accelerator's fast memory at compile time (mallocGame; XLA best fit).",
        horizon="n buffers (200 by default), from the kwargs",
        horizon_from_kwargs=True,
        test_kwargs={"instance": "random", "n_buffers": 40},
        vector_entry_point="schedgym.envs.memory_mapping.vector:MemoryMappingVectorEnv",
    ),
    EnvEntry(
        id="schedgym/GPUAutoscaling-v1",
        entry_point="schedgym.envs.gpu_autoscaling.env:GPUAutoscalingEnv",
        description="Scale GPU replicas of an LLM service (serving core: batching, paged KV, cold starts) for least cost at a met SLA (HARMONY; Kubernetes HPA).",
        horizon="workload length / interval_s (1440 by default), from the kwargs",
        horizon_from_kwargs=True,
        test_kwargs={"workload": "synthetic", "episode_days": 0.1, "mean_rate_per_s": 2.0, "max_replicas": 12},
        vector_entry_point="schedgym.envs.gpu_autoscaling.vector:GPUAutoscalingVectorEnv",
    ),
    EnvEntry(
        id="schedgym/PowerCapping-v2",
        entry_point="schedgym.envs.power_capping.env:PowerCappingEnv",
        description="Keep an oversubscribed row of LLM inference servers (serving core; batch LP) under its power budget with slow GPU clock caps (POLCA).",
        horizon="episode_hours / decision_interval_s (351 by default), from the kwargs",
        horizon_from_kwargs=True,
        test_kwargs={"n_servers": 10, "provisioned_servers": 8, "episode_hours": 0.1},
        vector_entry_point="schedgym.envs.power_capping.vector:PowerCappingVectorEnv",
    ),
)


def register_envs() -> None:
    for entry in ENV_ENTRIES:
        if entry.id in gym.registry:
            continue
        # Gymnasium refuses ``make_vec(..., vectorization_mode="vector_entry_point")`` on a spec with
        # additional wrappers, so an id with a native vector env is registered without
        # EpisodeMetricsOnTruncation: a TimeLimit added by ``gym.make(id, max_episode_steps=N)`` then truncates
        # without ``info["metrics"]`` (read ``env.unwrapped.metrics()``); the vector env's own
        # ``max_episode_steps`` does add them.
        # EnvHorizonLimit (a TimeLimit at the kwargs' own horizon) goes inside EpisodeMetricsOnTruncation; an id
        # with a native vector env reports its horizon in ``spec.max_episode_steps`` itself (core.horizon.HorizonSpec).
        # Every shipped id has one now; the wrappers remain for an id without.
        wrappers = () if entry.vector_entry_point else (
            (ENV_HORIZON_WRAPPER_SPEC,) if entry.horizon_from_kwargs else ()) + (EPISODE_METRICS_WRAPPER_SPEC,)
        gym.register(id=entry.id, entry_point=entry.entry_point, max_episode_steps=entry.max_episode_steps,
                     vector_entry_point=entry.vector_entry_point, additional_wrappers=wrappers)


def env_entry(env_id: str) -> EnvEntry:
    """The entry of a registered id (accepts the ``"schedgym:schedgym/X-v0"`` form); clear error otherwise."""
    plain = env_id.split(":", 1)[1] if env_id.startswith("schedgym:") else env_id
    for entry in ENV_ENTRIES:
        if entry.id == plain:
            return entry
    raise ValueError(f"unknown env id {env_id!r}; registered ids: {[e.id for e in ENV_ENTRIES]}")


def env_family(env_id: str) -> str:
    return env_entry(env_id).family
