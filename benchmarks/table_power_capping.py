"""PowerCapping-v2: servers deployable per policy, and every baseline on the deep-oversubscription row.

POLCA (ASPLOS'24) reports 52 servers (+30 %) on a 40-server budget with zero brake events, HP performance
within 1 % and LP within 2 %. The first table sweeps the server count per policy and workload with
:func:`schedgym.envs.power_capping.oversubscription.servers_deployable` (``clairvoyant`` is the best
known, not a bound: it knows the future power, but greedily); the second runs every baseline on 60 servers (1.5x) of azure-conv over the
seeds: HP + LP perf loss among the rows with zero brake events (the deep-oversubscription task).

    python benchmarks/table_power_capping.py [--seeds 0,1,2] [--workloads azure-conv,azure-code] [--episode-hours 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

import schedgym  # noqa: F401
from schedgym.baselines import make_policy
from schedgym.envs.power_capping.oversubscription import servers_deployable
from schedgym.evaluation import make_env, run_episode

ENV_ID = "schedgym/PowerCapping-v2"
POLICIES = ("no_cap", "static_cap", "static_cap_both", "polca", "bayesian", "random", "clairvoyant")


def deep_table(n_servers: int, seeds: list[int], env_kwargs: dict) -> Table:
    table = Table(title=f"PowerCapping-v2: {n_servers} servers on a 40-server budget ({env_kwargs}, seeds {seeds})")
    cols = ("policy", "brakes", "s over", "peak power", "energy kWh", "HP loss", "LP loss", "perf_loss", "HP TTFT p99", "LP TTFT p99", "return")
    for c in cols:
        table.add_column(c, justify="left" if c == "policy" else "right")
    env = make_env(ENV_ID, {**env_kwargs, "n_servers": n_servers})
    for name in POLICIES:
        runs = [run_episode(env, make_policy(name, ENV_ID), seed=s, record_actions=False) for s in seeds]
        m = {k: np.mean([r.metrics[k] for r in runs]) for k in runs[0].metrics}
        loss = [r.metrics["perf_loss"] for r in runs]
        table.add_row(
            name,
            f"{sum(r.metrics['brake_events'] for r in runs)}",
            f"{sum(r.metrics['seconds_over_budget'] for r in runs)}",
            f"{max(r.metrics['peak_power_frac'] for r in runs):.1%}",
            f"{m['energy_kwh']:.1f}",
            f"{m['hp_perf_loss']:.2%}",
            f"{m['lp_perf_loss']:.2%}",
            f"{np.mean(loss):.2%} ± {np.std(loss, ddof=1) if len(loss) > 1 else 0:.2%}",
            f"{m['hp_ttft_p99']:.2f}",
            f"{m['lp_ttft_p99']:.2f}",
            f"{np.mean([r.episode_return for r in runs]):.1f}",
        )
    env.close()
    return table


def sweep_table(workloads: list[str], seeds: list[int], env_kwargs: dict) -> Table:
    table = Table(title=f"Servers deployable on a 40-server budget (0 brakes, HP loss <= 1 %, LP <= 2 %; seeds {seeds}; POLCA paper: 52)")
    table.add_column("workload")
    for name in POLICIES:
        table.add_column(name + (" (bound)" if name == "clairvoyant" else ""), justify="right")
    for workload in workloads:
        cells = []
        for name in POLICIES:
            res = servers_deployable(name, env_kwargs={**env_kwargs, "workload": workload}, seeds=seeds, patience=2)
            cells.append(f"{res.servers_deployable} ({res.gain_pct:+.0f}%)" if res.servers_deployable else "< 40")
        table.add_row(workload, *cells)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--sweep-seeds", default="0")
    parser.add_argument("--workloads", default="azure-conv,azure-code")
    parser.add_argument("--episode-hours", type=float, default=None, help="shorter episodes (default: the trace's hour)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    kw = {} if args.episode_hours is None else {"episode_hours": args.episode_hours}
    console = Console(width=180)
    t0 = time.perf_counter()
    console.print(sweep_table(args.workloads.split(","), [int(s) for s in args.sweep_seeds.split(",")], kw))
    console.print(deep_table(60, seeds, {"workload": "azure-conv", **kw}))
    console.print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
