"""What there is to run: env ids, their instances/workloads, policies and benchmark tasks.

Modelled on CompilerGym's datasets: a user asks the package instead of reading error messages::

    import schedgym
    schedgym.env_ids()                                   # registered env ids
    schedgym.instances("schedgym/MemoryMapping-v0")    # ['minimalloc:A', ..., 'random', 'csv:<path>']
    schedgym.policies("schedgym/MemoryMapping-v0")     # baseline names
    schedgym.tasks("schedgym/MemoryMapping-v0")        # leaderboard tasks on that env

``schedgym list envs|instances|policies|tasks [--env ID] [--json]`` prints the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["InstanceInfo", "env_ids", "instances", "instance_infos", "policies", "tasks"]


@dataclass(frozen=True)
class InstanceInfo:
    """One value of an env's instance kwarg (``instance=`` or ``workload=``)."""

    kwarg: str  # the constructor kwarg it is passed as: "instance" or "workload"
    name: str  # the value, e.g. "minimalloc:A"; "<path>" marks a user file
    source: str  # "shipped data", "generator" or "user file"
    description: str
    #: Other kwargs the instance needs (e.g. a capacity for a trace that has none).
    needs: dict[str, Any] = field(default_factory=dict)

    @property
    def is_pattern(self) -> bool:
        """True for the user-file forms (``csv:<path>``, ``trace:<path>``), which need a real path."""
        return "<" in self.name

    def as_dict(self) -> dict[str, Any]:
        return {"kwarg": self.kwarg, "name": self.name, "source": self.source, "description": self.description,
                "needs": dict(self.needs)}


def _azure(kwarg: str) -> list[InstanceInfo]:
    from schedgym.envs.core.traces import AZURE_TRACES

    return [InstanceInfo(kwarg, name, "shipped data", f"Azure LLM Inference Trace 2023, {name.split('-', 1)[1]} "
                         "(CC-BY 4.0)") for name in sorted(AZURE_TRACES)] + [
        InstanceInfo(kwarg, "trace:<path>", "user file",
                     "any CSV or JSONL with arrival time and prompt/output token counts (see trace_columns)"),
    ]


def _memory_mapping() -> list[InstanceInfo]:
    from schedgym.envs.memory_mapping.instances import MINIMALLOC_NAMES
    from schedgym.envs.memory_mapping.models import TORCH_MODELS

    out = [InstanceInfo("instance", f"minimalloc:{x}", "shipped data",
                        "MiniMalloc challenging instance (Apache-2.0), capacity 1 MiB") for x in MINIMALLOC_NAMES]
    out.append(InstanceInfo("instance", "somas:resnet50", "shipped data",
                            "MindSpore SOMAS ResNet-50 training trace (MIT); pass capacity as a fraction of the peak",
                            needs={"capacity": 1.0}))
    out += [InstanceInfo("instance", f"torch:{name}", "generator",
                         "buffers and roofline benefits traced from a PyTorch program") for name in TORCH_MODELS]
    out.append(InstanceInfo("instance", "random", "generator",
                            "random buffers drawn at reset (n_buffers; planted=True for a known optimum)"))
    out.append(InstanceInfo("instance", "csv:<path>", "user file", "a MiniMalloc-format CSV (id,lower,upper,size)"))
    return out


def _family_instances(family: str) -> list[InstanceInfo]:
    if family == "MemoryMapping":
        return _memory_mapping()
    if family in ("GPUAutoscaling", "PowerCapping"):
        return [InstanceInfo("workload", "synthetic", "generator",
                             "diurnal/weekly Poisson arrivals with bursts, token lengths from the Azure traces"),
                *_azure("workload")]
    if family == "AgentScheduling":
        return [InstanceInfo("workload", "poisson", "generator", "agents arriving as a Poisson process"),
                InstanceInfo("workload", "tenants", "generator", "four tenants, one heavy (fairness task)"),
                *_azure("workload")]
    raise ValueError(f"no instance list for env family {family!r}")


def _entry(env_id: str) -> Any:
    from schedgym.envs import env_entry

    return env_entry(env_id)


def env_ids() -> list[str]:
    """The registered env ids."""
    from schedgym.envs import ENV_ENTRIES

    return [e.id for e in ENV_ENTRIES]


def instance_infos(env_id: str) -> list[InstanceInfo]:
    """The instances or workloads ``env_id`` accepts, with where they come from."""
    return _family_instances(_entry(env_id).family)


def instances(env_id: str) -> list[str]:
    """The names of the instances or workloads ``env_id`` accepts (``<path>`` marks a user file)."""
    return [info.name for info in instance_infos(env_id)]


def policies(env_id: str) -> list[str]:
    """The baseline policy names for ``env_id`` (a trained agent is a run directory instead)."""
    from schedgym.baselines import list_policies

    return sorted(list_policies(_entry(env_id).id))


def tasks(env_id: str | None = None, tier: str | None = None) -> list[str]:
    """Leaderboard task names, optionally only those on ``env_id`` and/or of one ``tier``."""
    from schedgym.benchmark.tasks import TASKS, TIERS

    if tier is not None and tier not in TIERS:
        raise ValueError(f"tier must be one of {list(TIERS)}, got {tier!r}")
    wanted = _entry(env_id).id if env_id is not None else None
    return [name for name, task in TASKS.items()
            if (wanted is None or task.env_id == wanted) and (tier is None or task.tier == tier)]
