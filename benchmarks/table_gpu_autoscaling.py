"""GPUAutoscaling-v1: every baseline on azure-code, azure-conv and a synthetic afternoon (seed 0).

    python benchmarks/table_gpu_autoscaling.py [--synthetic-days 0.25]

Columns are the env's episode metrics. ``sla`` is the share of requests within their TTFT/TPOT SLOs and
``met`` says whether it reaches sla_target 0.99; ``lb`` is the proven ``cost_lower_bound_usd``;
``cost/lb`` how far a policy is above it. ``oracle`` is the best-known perfect-foresight plan (not a
bound); its ``cost/lb`` is how tight the lower bound is.
"""

from __future__ import annotations

import argparse
import time

import schedgym  # noqa: F401
from schedgym.baselines import make_policy
from schedgym.evaluation import make_env, run_episode

ENV_ID = "schedgym/GPUAutoscaling-v1"
POLICIES = ["static_peak", "hpa", "queue_keda", "predictive", "bayesian", "random", "oracle"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic-days", type=float, default=0.25, help="synthetic episode length (from 10:00)")
    args = parser.parse_args()
    workloads = [
        ("azure-code", {"workload": "azure-code"}),
        ("azure-conv", {"workload": "azure-conv"}),
        (f"synthetic {args.synthetic_days:g} d", {"workload": "synthetic", "episode_days": args.synthetic_days,
                                                  "start_hour": 10.0}),
    ]
    header = (f"{'workload':<16} {'policy':<12} {'cost_usd':>9} {'lb':>8} {'cost/lb':>7} {'sla':>7} {'met':>4} "
              f"{'gpu_h':>7} {'ttft_p99':>8} {'tpot_p99':>8} {'preempt':>7} {'time_s':>6}")
    print(header)
    print("-" * len(header))
    for label, kwargs in workloads:
        for name in POLICIES:
            t0 = time.perf_counter()
            result = run_episode(make_env(ENV_ID, kwargs), make_policy(name, ENV_ID), seed=0, record_actions=False)
            m = result.metrics
            print(
                f"{label:<16} {name:<12} {m['cost_usd']:>9.2f} {m['cost_lower_bound_usd']:>8.2f} "
                f"{m['cost_usd'] / m['cost_lower_bound_usd']:>7.2f} {m['sla_attainment']:>7.4f} "
                f"{'yes' if m['sla_met'] else 'no':>4} {m['gpu_hours']:>7.1f} {m['ttft_p99_s']:>8.2f} "
                f"{m['tpot_p99_s']:>8.3f} {m['preemptions']:>7.0f} {time.perf_counter() - t0:>6.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
