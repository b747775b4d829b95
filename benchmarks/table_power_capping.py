"""PowerCapping-v0: each baseline at 52 servers on a 40-server budget, and servers deployable per policy.

POLCA (ASPLOS'24) reports 52 servers (+30 %) on a 40-server budget with zero brake events, HP performance
within 1 % and LP within 2 %. The first table runs every baseline at 52 servers (azure-conv, three
seeds); the second sweeps the server count per policy and workload (seed 0) with
:func:`schedgym.envs.power_capping.oversubscription.servers_deployable`.

    python benchmarks/table_power_capping.py [--seeds 0,1,2] [--workloads azure-conv,azure-code,synthetic]
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

ENV_ID = "schedgym/PowerCapping-v0"
POLICIES = ("no_cap", "static_cap", "polca", "bayesian")


def table_at(n_servers: int, seeds: list[int], workload: str) -> Table:
    table = Table(title=f"PowerCapping-v0: {n_servers} servers on a 40-server budget ({workload}, seeds {seeds})")
    cols = ("policy", "brakes", "s over", "peak power", "energy kWh", "HP loss", "LP loss", "HP TTFT p50", "HP TTFT p99", "LP TTFT p99", "return")
    for c in cols:
        table.add_column(c, justify="left" if c == "policy" else "right")
    env = make_env(ENV_ID, {"n_servers": n_servers, "workload": workload})
    for name in POLICIES:
        runs = [run_episode(env, make_policy(name, ENV_ID), seed=s, record_actions=False) for s in seeds]
        m = {k: np.mean([r.metrics[k] for r in runs]) for k in runs[0].metrics}
        table.add_row(
            name,
            f"{sum(r.metrics['brake_events'] for r in runs)}",
            f"{sum(r.metrics['seconds_over_budget'] for r in runs)}",
            f"{max(r.metrics['peak_power_frac'] for r in runs):.1%}",
            f"{m['energy_kwh']:.1f}",
            f"{m['hp_perf_loss']:.2%}",
            f"{m['lp_perf_loss']:.2%}",
            f"{m['hp_ttft_p50']:.2f}",
            f"{m['hp_ttft_p99']:.2f}",
            f"{m['lp_ttft_p99']:.2f}",
            f"{np.mean([r.episode_return for r in runs]):.1f}",
        )
    env.close()
    return table


def sweep_table(workloads: list[str]) -> Table:
    table = Table(title="Servers deployable on a 40-server budget (0 brakes, HP loss <= 1 %, LP loss <= 2 %; POLCA paper: 52)")
    table.add_column("workload")
    for name in POLICIES:
        table.add_column(name, justify="right")
    for workload in workloads:
        cells = []
        for name in POLICIES:
            res = servers_deployable(name, env_kwargs={"workload": workload}, seeds=(0,), patience=2)
            cells.append(f"{res.servers_deployable} ({res.gain_pct:+.0f}%)" if res.servers_deployable else "< 40")
        table.add_row(workload, *cells)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--workloads", default="azure-conv,azure-code,synthetic")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    console = Console(width=160)
    t0 = time.perf_counter()
    console.print(table_at(52, seeds, "azure-conv"))
    console.print(sweep_table(args.workloads.split(",")))
    console.print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
