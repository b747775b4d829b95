"""Frozen, versioned benchmark tasks in two tiers (``quick`` for ``make bench``/CI, ``full`` for the real numbers).

A task is data: env id and kwargs, a list of instances (named kwarg overlays) and seeds, the metric and
its direction, the reference policy scores are normalised to, and two reference values: the *bound*
(proven only: the exact solver's recorded bound, or a proven bound metric of every row) and the *best
known* score (the best of the task's oracles, which are not proofs). Changing anything that changes a
task's numbers (dynamics, instances, kwargs, a baseline's budget) means bumping ``version``: results of
other versions are kept but ignored.

Two aggregations:

- ``"mean"``: every row is one episode; the task score is the metric averaged over instances (per seed).
- ``"sweep"``: PowerCapping's *servers deployable* (POLCA, ASPLOS'24). The instances are server counts
  ``n_servers`` on a fixed power budget; every row is one episode at one count and seed (so every row
  replays on its own), and the task score is the largest count that keeps zero brake events and HP/LP
  performance loss within 1 %/2 %, found exactly as
  :func:`schedgym.envs.power_capping.oversubscription.servers_deployable` walks the counts upwards
  (stopping after ``patience`` failing counts in a row).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from schedgym.benchmark.splits import InstanceSpec, Split, test_specs

__all__ = [
    "METRIC_MEANING", "TASKS", "TIERS", "InstanceSpec", "Split", "SweepRule", "Task", "TaskInstance", "get_task", "task_key", "tasks_for_tier",
]

TIERS = ("quick", "full")


@dataclass(frozen=True)
class TaskInstance:
    """One named overlay of env kwargs (a MiniMalloc file, a trace, a server count)."""

    name: str
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepRule:
    """Pass rule of the servers-deployable sweep (POLCA's: no brakes, HP <= 1 %, LP <= 2 % slower)."""

    hp_loss_max: float = 0.01
    lp_loss_max: float = 0.02
    patience: int = 2
    provisioned_servers: int = 40


@dataclass(frozen=True)
class Task:
    name: str
    version: int
    tier: str
    env_id: str
    description: str
    env_kwargs: Mapping[str, Any]
    instances: tuple[TaskInstance, ...]
    seeds: tuple[int, ...]
    #: Key of ``info["metrics"]`` (or ``"episode_return"``); with ``metric_terms`` the sum of those keys.
    metric: str
    direction: str  # "max" or "min"
    reference: str
    #: A solver policy whose rows record a *proven* bound per episode in ``extra["bound"]`` (the exact
    #: solver's upper bound; equal to its score where it proved optimality). Proven only: an oracle that
    #: is not a proof belongs in ``best_known``.
    bound: str | None = None
    #: Per-policy kwargs (budgets and time limits of the expensive baselines): part of the task.
    policy_kwargs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    metric_terms: tuple[str, ...] = ()
    aggregate: str = "mean"
    sweep: SweepRule | None = None
    #: A proven bound read from every row's metrics (e.g. ``turnaround_lower_bound``) instead of a bound policy.
    bound_metric: str | None = None
    #: Reference policies that are not proofs (oracles that see the future, solvers stopped at a time limit):
    #: the task's *best known* score is the best of theirs among those that keep the rule.
    best_known: tuple[str, ...] = ()
    #: A rule every episode must keep (a key of ``info["metrics"]`` that is 1.0 when kept, e.g. ``sla_met``):
    #: policies that keep it in every episode rank by the metric; the others rank after all of them, by
    #: ``constraint_order`` (mean over episodes, higher first), and their normalised score is 0.
    constraint: str | None = None
    constraint_order: str | None = None
    #: What an agent may train on (see splits.py); disjoint from the test split, which is exactly the
    #: task's ``instances`` x ``seeds`` (what its rows run), so it is derived, never written twice.
    train: tuple[InstanceSpec, ...] = ()
    #: Why the train split is what it is.
    split_note: str = ""
    #: ``Split(train, test)``; built (and checked disjoint) when the task is defined.
    split: Split = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        test = test_specs(self.env_id, [(i.name, self.env_kwargs_for(i)) for i in self.instances], self.seeds)
        try:
            split = Split(self.train, test, self.split_note)
        except ValueError as exc:
            raise ValueError(f"task {self.name}: {exc}") from None
        object.__setattr__(self, "split", split)

    @property
    def family(self) -> str:
        return self.env_id.split("/", 1)[1].rsplit("-v", 1)[0]

    @property
    def metric_sentence(self) -> str:
        """What the score measures and which direction is better, in one sentence for the page."""
        name = "servers_deployable" if self.aggregate == "sweep" else self.metric
        meaning = METRIC_MEANING.get(name, f"the episode's {name}")
        better = "higher is better" if self.direction == "max" else "lower is better"
        return f"Score: {meaning}; {better}."

    @property
    def metric_label(self) -> str:
        arrow = "higher is better" if self.direction == "max" else "lower is better"
        name = "servers_deployable" if self.aggregate == "sweep" else self.metric
        return f"{name} ({arrow})"

    def env_kwargs_for(self, instance: TaskInstance) -> dict[str, Any]:
        return {**dict(self.env_kwargs), **dict(instance.env_kwargs)}

    def instance(self, name: str) -> TaskInstance:
        for inst in self.instances:
            if inst.name == name:
                return inst
        raise ValueError(f"task {self.name!r} has no instance {name!r}; instances: {[i.name for i in self.instances]}")

    def row_metric(self, metrics: Mapping[str, Any], episode_return: float) -> float:
        """The per-episode value written to a row's ``metric`` column."""
        if self.metric_terms:
            return float(sum(float(metrics[k]) for k in self.metric_terms))
        if self.metric == "episode_return":
            return float(episode_return)
        return float(metrics[self.metric])


#: What each task metric means, for a reader of the page (tests check every task's metric is here).
METRIC_MEANING: dict[str, str] = {
    "benefit_placed_frac": "the share of the instance's total buffer benefit whose buffers the policy placed in "
    "fast memory (the rest spill to slow memory), 1.0 when every buffer is placed",
    "cost_usd": "the GPU bill of the episode in US dollars (replica-seconds billed x price), compared only among "
    "policies that keep the SLA in every episode",
    "servers_deployable": "the most servers the policy runs on the 40-server power budget with zero brake events "
    "over its seeds and mean HP/LP loss within 1 %/2 % (HP: mean latency; LP, backlogged batch servers: throughput)",
    "perf_loss": "the performance loss caused by power capping, summed over the two priority classes (HP: mean "
    "latency / uncapped reference - 1; LP, backlogged batch servers: 1 - tokens / uncapped reference), 0 when "
    "capping costs nothing",
    "turnaround_mean": "the mean time in seconds from an agent's arrival until its last request finishes",
    "jain_index": "Jain's fairness index of the service backlogged tenants receive per 20 s window, 1.0 when "
    "every such tenant gets an equal share",
}


def task_key(task: Task) -> str:
    return f"{task.name}@v{task.version}"


_MINIMALLOC = tuple("ABCDEFGHIJK")
_MM = "schedgym/MemoryMapping-v0"
_GPU = "schedgym/GPUAutoscaling-v1"
_PC = "schedgym/PowerCapping-v2"
_AS = "schedgym/AgentScheduling-v1"


_S = InstanceSpec
#: Every random instance the MemoryMapping generator draws (any seed): never a test instance.
_RANDOM = _S("random")
#: The solvers' and searches' mappings: the best known where ``exact`` stops at its time limit (its proven
#: bound is the bound).
_MM_BEST_KNOWN = ("exact", "cpsat_search", "rollout_search")
_MM_TRAIN_NOTE = (
    "train on generated instances and on the programs the task does not score; capacities do not count as "
    "new data (an agent trained on a file has seen it at every capacity)"
)


def _memory_tasks(tier: str) -> list[Task]:
    quick = tier == "quick"
    # MiniMalloc tasks score only the MiniMalloc files: every torch program may be trained on.
    train_mm = (_RANDOM, _S("torch:resnet"), _S("torch:transformer"), _S("torch:mlp_mixer"))
    # Torch tasks: the programs they do not score, and the MiniMalloc files. torch:resnet is held out of the
    # full tier's train split: it traces the same ResNet-50 as the SOMAS test instance.
    train_torch = (_RANDOM, _S("torch:resnet"), _S("torch:mlp_mixer")) if quick else (_RANDOM,)
    train_torch += tuple(_S(f"minimalloc:{x}") for x in _MINIMALLOC)
    # The solvers' time limits and the BO budget are the knobs that make the quick tier fit in minutes.
    # `exact` stops as soon as it proves optimality; its limit only binds where it cannot.
    pk = {
        "exact": {"time_limit_s": 20.0 if quick else 300.0},
        "cpsat_search": {"time_limit_s": 1.0 if quick else 10.0, "workers": 1},
        "bayesian_order_search": {"budget": 4 if quick else 30},
    }
    # Below the peak `exact` rarely proves optimality: it runs to its limit, so the limit is smaller.
    pk_tight = {**pk, "exact": {"time_limit_s": 10.0 if quick else 30.0}}
    pk_torch = {**pk, "exact": {"time_limit_s": 10.0 if quick else 60.0}}
    suffix = "-quick" if quick else ""
    tight_letters = ("A", "C", "K") if quick else _MINIMALLOC
    tight_fracs = (0.9,) if quick else (0.9, 0.8)
    tight_programs = ("torch:transformer",) if quick else ("torch:transformer", "torch:mlp_mixer", "somas:resnet50")
    return [
        Task(
            name=f"memory-minimalloc{suffix}",
            version=1,
            tier=tier,
            env_id=_MM,
            description="the 11 MiniMalloc challenging instances (capacity 1 MiB), fraction of the benefit placed in fast memory",
            env_kwargs={},
            instances=tuple(TaskInstance(f"minimalloc:{x}", {"instance": f"minimalloc:{x}"}) for x in _MINIMALLOC),
            seeds=(0,),  # fixed instances: the env has no randomness
            metric="benefit_placed_frac",
            direction="max",
            reference="xla_best_fit",
            bound="exact",
            best_known=_MM_BEST_KNOWN,
            policy_kwargs=pk,
            train=train_mm,
            split_note=_MM_TRAIN_NOTE,
        ),
        Task(
            name=f"memory-torch{suffix}",
            version=1,
            tier=tier,
            env_id=_MM,
            description="buffers of real PyTorch programs (torch.fx + roofline benefits, TPU-like 128 MiB)"
            + ("" if quick else " and SOMAS ResNet-50 at half its peak"),
            env_kwargs={},
            instances=(TaskInstance("torch:transformer", {"instance": "torch:transformer"}),)
            + (
                ()
                if quick
                else (
                    TaskInstance("torch:mlp_mixer", {"instance": "torch:mlp_mixer"}),
                    TaskInstance("somas:resnet50@0.5", {"instance": "somas:resnet50", "capacity": 0.5}),
                )
            ),
            seeds=(0,),
            metric="benefit_placed_frac",
            direction="max",
            reference="xla_best_fit",
            bound="exact",
            best_known=_MM_BEST_KNOWN,
            policy_kwargs=pk_torch,
            train=train_torch,
            split_note=_MM_TRAIN_NOTE,
        ),
        Task(
            name=f"memory-minimalloc-tight{suffix}",
            version=1,
            tier=tier,
            env_id=_MM,
            description="the MiniMalloc instances with fast memory at 90 % and 80 % of their peak: not everything fits, "
            "so what goes to slow memory matters (benefit = area); bound: the proven knapsack bound",
            env_kwargs={},
            instances=tuple(
                TaskInstance(f"minimalloc:{x}@{f}", {"instance": f"minimalloc:{x}", "capacity": f})
                for f in tight_fracs
                for x in tight_letters
            ),
            seeds=(0,),
            metric="benefit_placed_frac",
            direction="max",
            reference="xla_best_fit",
            bound="exact",
            best_known=_MM_BEST_KNOWN,
            policy_kwargs=pk_tight,
            train=train_mm,
            split_note=_MM_TRAIN_NOTE,
        ),
        Task(
            name=f"memory-torch-tight{suffix}",
            version=1,
            tier=tier,
            env_id=_MM,
            description="PyTorch programs (roofline benefits) and SOMAS ResNet-50 (benefit = area) with fast memory at "
            "90 % and 80 % of their peak; bound: the proven knapsack bound",
            env_kwargs={},
            instances=tuple(
                TaskInstance(f"{p}@{f}", {"instance": p, "capacity": f}) for f in (0.9, 0.8) for p in tight_programs
            ),
            seeds=(0,),
            metric="benefit_placed_frac",
            direction="max",
            reference="xla_best_fit",
            bound="exact",
            best_known=_MM_BEST_KNOWN,
            policy_kwargs=pk_tight,
            train=train_torch,
            split_note=_MM_TRAIN_NOTE,
        ),
    ]


def _gpu_tasks(tier: str) -> list[Task]:
    quick = tier == "quick"
    return [
        Task(
            name="gpu-azure" + ("-quick" if quick else ""),
            version=2,
            tier=tier,
            env_id=_GPU,
            description="Azure LLM inference 2023 traces (code, conversation)"
            + ("" if quick else " and a synthetic 6-hour afternoon")
            + "; GPU cost in USD among policies that meet the SLA (99 % of requests within their TTFT/TPOT SLOs)",
            env_kwargs={},
            instances=(
                TaskInstance("azure-code", {"workload": "azure-code"}),
                TaskInstance("azure-conv", {"workload": "azure-conv"}),
            )
            + (
                ()
                if quick
                else (TaskInstance("synthetic-6h", {"workload": "synthetic", "episode_days": 0.25, "start_hour": 10.0}),)
            ),
            seeds=(0,),  # one seed: it fixes the synthetic day, rate thinning and the cold-start draws
            metric="cost_usd",
            direction="min",
            reference="static_peak",
            # the proven bound recorded in every row; the oracles (perfect foresight, and static_peak's
            # hindsight sizing) are best-known policy rows, not bounds
            bound_metric="cost_lower_bound_usd",
            best_known=("oracle", "static_peak"),
            constraint="sla_met",
            constraint_order="sla_attainment",
            # Both Azure traces are scored, so only synthetic days train (seed 0 is the full tier's test day).
            train=(_S("synthetic", seeds_from=1),),
            split_note="both Azure traces are test data; train on synthetic days other than the test's seed 0",
        )
    ]


def _power_tasks(tier: str) -> list[Task]:
    quick = tier == "quick"
    seeds = (0, 1, 2)
    base: dict[str, Any] = {"workload": "azure-conv", "provisioned_servers": 40}
    if quick:
        base["episode_hours"] = 0.5
    counts = range(40, 61, 2) if quick else range(40, 65)  # up to +60 %; POLCA reports +30 %
    suffix = "-quick" if quick else ""
    _power_train = (_S("azure-code"), _S("synthetic"))
    _power_note = "the azure-conv trace is test data; train on the other Azure trace and synthetic days"
    return [
        Task(
            name=f"power-servers-deployable{suffix}",
            version=3,
            tier=tier,
            env_id=_PC,
            description="POLCA's sweep: most servers on a 40-server power budget with 0 brakes, HP/LP loss <= 1 %/2 %",
            env_kwargs=base,
            instances=tuple(TaskInstance(f"n_servers={n}", {"n_servers": n}) for n in counts),
            seeds=seeds,
            metric="episode_return",
            direction="max",
            reference="polca",
            # a greedy clairvoyant controller, not a proven optimum (its docstring): best known, no proven bound
            best_known=("clairvoyant",),
            aggregate="sweep",
            sweep=SweepRule(provisioned_servers=40),
            train=_power_train,
            split_note=_power_note,
        ),
        Task(
            name=f"power-deep-oversubscription{suffix}",
            version=2,
            tier=tier,
            env_id=_PC,
            description="60 servers on a 40-server budget (1.5x), azure-conv: HP + LP perf loss with zero brake events",
            env_kwargs={**base, "n_servers": 60},
            instances=(TaskInstance("n_servers=60", {}),),
            seeds=seeds,
            metric="perf_loss",
            direction="min",
            # polca and no_cap brake here (score 0 under the rule); the simplest brake-free controller is the reference.
            reference="static_cap",
            # a greedy clairvoyant controller, not a proven optimum (its docstring): best known, no proven bound
            best_known=("clairvoyant",),
            constraint="no_brakes",
            constraint_order="within_budget_frac",
            train=_power_train,
            split_note=_power_note,
        ),
    ]


#: Generator seeds from here up train AgentScheduling agents (the tasks score seeds 0..4).
_AGENT_TRAIN_SEED = 1000


def _agent_tasks(tier: str) -> list[Task]:
    quick = tier == "quick"
    common = {"n_agents": 40 if quick else 100}
    seeds = (0, 1, 2) if quick else (0, 1, 2, 3, 4)
    suffix = "-quick" if quick else ""
    return [
        Task(
            name="agents-bursty-steady" + suffix,
            version=3,
            tier=tier,
            env_id=_AS,
            description="LLM agents on 2 TP2 llama2-70b cores whose KV cache binds: bursty arrivals (Azure code trace "
            "times) and steady Poisson arrivals; mean agent turnaround (s)",
            env_kwargs=common,
            instances=(
                TaskInstance("bursty", {"workload": "azure-code"}),
                TaskInstance("steady", {"workload": "poisson"}),
            ),
            seeds=seeds,
            metric="turnaround_mean",
            direction="min",
            reference="fifo",
            bound_metric="turnaround_lower_bound",
            best_known=("agent_srpt_oracle",),  # an oracle heuristic, not a proof (its docstring)
            # A truncated episode averages over the agents that finished: leaving agents unfinished is the rule broken.
            constraint="all_agents_finished",
            constraint_order="agents_finished_frac",
            train=(_S("azure-conv"), _S("poisson", seeds_from=_AGENT_TRAIN_SEED), _S("tenants")),
            split_note=f"the azure-code arrival times and Poisson seeds below {_AGENT_TRAIN_SEED} are test data; "
            "train on the other Azure trace, later Poisson seeds and the tenants workload",
        ),
        Task(
            name="agents-tenants-fairness" + suffix,
            version=3,
            tier=tier,
            env_id=_AS,
            description="four tenants share the cores, one heavy (half the agents, coder contexts); Jain's index of the "
            "service (input + 2 x output tokens) that tenants backlogged throughout a 20 s window receive in it, "
            "averaged over windows (VTC's max service difference is in the rows' metrics; it is not the score because "
            "a policy that serves less, e.g. by thrashing, shrinks it)",
            env_kwargs=common,
            instances=(TaskInstance("tenants", {"workload": "tenants"}),),
            seeds=seeds,
            metric="jain_index",
            direction="max",
            reference="fifo",
            best_known=("agent_srpt_oracle",),  # the only oracle: sees true lengths, optimises turnaround
            constraint="all_agents_finished",
            constraint_order="agents_finished_frac",
            train=(_S("tenants", seeds_from=_AGENT_TRAIN_SEED), _S("poisson"), _S("azure-code"), _S("azure-conv")),
            split_note=f"tenants seeds below {_AGENT_TRAIN_SEED} are test data; train on later seeds and the other workloads",
        ),
    ]


def _all_tasks() -> dict[str, Task]:
    tasks: dict[str, Task] = {}
    for tier in TIERS:
        for t in _memory_tasks(tier) + _gpu_tasks(tier) + _power_tasks(tier) + _agent_tasks(tier):
            tasks[t.name] = t
    return tasks


#: Every task by name.
TASKS: dict[str, Task] = _all_tasks()


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; tasks: {sorted(TASKS)}")
    return TASKS[name]


def tasks_for_tier(tier: str) -> list[Task]:
    if tier not in TIERS:
        raise ValueError(f"--tier must be one of {list(TIERS)}, got {tier!r}")
    return [t for t in TASKS.values() if t.tier == tier]
