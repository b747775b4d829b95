"""The POLCA headline as a function: how many servers fit on a 40-server power budget under a policy.

POLCA (ASPLOS'24) deploys 52 servers (+30 %) on a row provisioned for 40 with zero power-brake events,
high-priority performance within 1 % and low-priority within 2 %. :func:`servers_deployable` adds servers
one at a time from ``provisioned_servers`` and runs the policy on the same workload, keeping the largest
count that meets all three conditions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CountResult", "SweepResult", "servers_deployable", "ENV_ID"]

ENV_ID = "schedgym/PowerCapping-v2"


@dataclass
class CountResult:
    """Metrics of one server count (means over the seeds; brake events summed)."""

    n_servers: int
    oversubscription_pct: float
    brake_events: int
    seconds_over_budget: int
    peak_power_frac: float
    hp_perf_loss: float
    lp_perf_loss: float
    energy_kwh: float
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SweepResult:
    policy: str
    provisioned_servers: int
    servers_deployable: int  # largest passing count; 0 if even provisioned_servers fails
    counts: list[CountResult] = field(default_factory=list)

    @property
    def gain_pct(self) -> float:
        """Extra servers deployable, in % of the provisioned count."""
        if self.servers_deployable == 0:
            return -100.0
        return 100.0 * (self.servers_deployable / self.provisioned_servers - 1.0)


def servers_deployable(
    policy: str,
    policy_kwargs: dict[str, Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    seeds: Sequence[int] = (0,),
    hp_loss_max: float = 0.01,
    lp_loss_max: float = 0.02,
    max_servers: int | None = None,
    patience: int = 2,
    on_count: Callable[[CountResult], None] | None = None,
) -> SweepResult:
    """Largest ``n_servers`` with zero brake events and HP/LP perf loss within the limits.

    Counts are tried upwards from ``provisioned_servers`` (from ``env_kwargs``, default 40) until
    ``max_servers`` (default twice the provisioned count) or until ``patience`` consecutive counts fail
    (a count that fails can be followed by one that passes: arrivals are re-drawn and routing changes).
    ``on_count`` is called after each count (progress reporting).
    """
    from schedgym.baselines import make_policy
    from schedgym.evaluation import make_env, run_episode

    env_kwargs = dict(env_kwargs or {})
    if "n_servers" in env_kwargs:
        raise ValueError("env_kwargs must not set n_servers: the sweep chooses it")
    provisioned = int(env_kwargs.get("provisioned_servers", 40))
    if max_servers is None:
        max_servers = 2 * provisioned
    if max_servers < provisioned:
        raise ValueError(f"max_servers must be >= provisioned_servers ({provisioned}), got {max_servers}")
    if patience < 1:
        raise ValueError(f"patience must be >= 1, got {patience}")
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    result = SweepResult(policy=policy, provisioned_servers=provisioned, servers_deployable=0)
    failures = 0
    for n in range(provisioned, max_servers + 1):
        env = make_env(ENV_ID, {**env_kwargs, "n_servers": n})
        pol = make_policy(policy, ENV_ID, **dict(policy_kwargs or {}))
        runs = [run_episode(env, pol, seed=int(s), record_actions=False).metrics for s in seeds]
        env.close()

        def mean(key: str) -> float:
            return float(sum(r[key] for r in runs) / len(runs))

        brakes = int(sum(r["brake_events"] for r in runs))
        hp, lp = mean("hp_perf_loss"), mean("lp_perf_loss")
        ok = brakes == 0 and hp <= hp_loss_max and lp <= lp_loss_max
        count = CountResult(
            n_servers=n,
            oversubscription_pct=100.0 * (n / provisioned - 1.0),
            brake_events=brakes,
            seconds_over_budget=int(sum(r["seconds_over_budget"] for r in runs)),
            peak_power_frac=max(r["peak_power_frac"] for r in runs),
            hp_perf_loss=hp,
            lp_perf_loss=lp,
            energy_kwh=mean("energy_kwh"),
            ok=ok,
        )
        result.counts.append(count)
        if on_count is not None:
            on_count(count)
        if ok:
            result.servers_deployable = n
            failures = 0
        else:
            failures += 1
            if failures >= patience:
                break
    return result
