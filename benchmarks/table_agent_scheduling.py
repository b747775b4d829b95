"""AgentScheduling-v1: every baseline on a steady (Poisson), a bursty (Azure code trace) and a multi-tenant
workload, next to the proven lower bound.

    python benchmarks/table_agent_scheduling.py [--seeds 3] [--n-agents 100]

Env defaults (2 cores of llama2-70b on 2 x A100-80GB, 18,310 KV tokens per core, 0.2 agents/s, 1 s slices,
100 agents). Steady: Poisson arrivals. Bursty: the Azure LLM code trace's arrival times thinned to 8 %.
Tenants: four tenants, one heavy (half the agents, coder contexts). Each cell is the mean over seeds
0..n-1: agent turnaround (s) and its proven lower bound (``bound``, the same for every policy),
``wait_share`` (share of turnaround spent queued), ``kv_frac`` (decisions at which the KV cache bound),
preemptions (swaps + recomputes), VTC's max service difference between backlogged tenants in a 20 s
window (tokens) and Jain's index of those tenants' service. ``agent_srpt_oracle`` reads the true lengths
and future steps: best-known, not a bound. ``random`` picks a uniform legal action.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import schedgym  # noqa: F401
from schedgym.baselines import make_policy
from schedgym.evaluation import make_env, run_episode

ENV_ID = "schedgym/AgentScheduling-v1"
WORKLOADS = [
    ("steady poisson", {}),
    ("bursty azure-code", {"workload": "azure-code"}),
    ("tenants", {"workload": "tenants"}),
]
POLICIES = ["fifo", "round_robin", "vtc", "bayesian_sjf", "agent_srpt_oracle", "random"]
COLUMNS = [
    ("turn_mean", "turnaround_mean", 9, 1),
    ("bound", "turnaround_lower_bound", 7, 1),
    ("turn_p99", "turnaround_p99", 8, 0),
    ("wait_shr", "wait_share", 8, 3),
    ("kv_frac", "kv_constrained_frac", 7, 3),
    ("swaps", "swaps", 7, 0),
    ("recomp", "recomputes", 6, 0),
    ("svc_diff", "service_diff_max", 8, 0),
    ("jain", "jain_index", 6, 3),
    ("unfin", "agents_unfinished", 5, 0),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="episodes (seeds 0..n-1) per cell")
    parser.add_argument("--n-agents", type=int, default=100)
    args = parser.parse_args()
    header = f"{'workload':<18} {'policy':<18}" + "".join(f" {name:>{w}}" for name, _, w, _ in COLUMNS)
    header += f" {'steps':>6} {'s/ep':>6}"
    print(header)
    print("-" * len(header))
    for label, kwargs in WORKLOADS:
        kw = {**kwargs, "n_agents": args.n_agents}
        for name in POLICIES:
            t0 = time.perf_counter()
            results = [
                run_episode(make_env(ENV_ID, kw), make_policy(name, ENV_ID, **({"seed": s} if name == "random" else {})),
                            seed=s, record_actions=False)  # fmt: skip
                for s in range(args.seeds)
            ]
            mean = {key: float(np.mean([r.metrics[key] for r in results])) for _, key, _, _ in COLUMNS}
            steps = float(np.mean([r.episode_length for r in results]))
            row = f"{label:<18} {name:<18}" + "".join(f" {mean[key]:>{w}.{d}f}" for _, key, w, d in COLUMNS)
            print(f"{row} {steps:>6.0f} {(time.perf_counter() - t0) / args.seeds:>6.1f}", flush=True)


if __name__ == "__main__":
    main()
