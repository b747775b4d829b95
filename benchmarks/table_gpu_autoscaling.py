"""GPUAutoscaling-v0: every baseline on azure-code, azure-conv and one synthetic day (seed 0).

    python benchmarks/table_gpu_autoscaling.py

Columns are the env's episode metrics; ``sla`` is the fraction of requests with TTFT <= 2 s and ``met``
says whether it reaches the default sla_target 0.99. ``oracle`` has perfect foresight (a bound).
"""

from __future__ import annotations

import time

import schedgym  # noqa: F401
from schedgym.baselines import make_policy
from schedgym.evaluation import make_env, run_episode

ENV_ID = "schedgym/GPUAutoscaling-v0"
WORKLOADS = [
    ("azure-code", {"workload": "azure-code"}),
    ("azure-conv", {"workload": "azure-conv"}),
    ("synthetic 1 day", {"workload": "synthetic", "episode_days": 1.0}),
]
POLICIES = ["static_peak", "hpa", "queue_keda", "predictive", "bayesian", "oracle"]


def main() -> None:
    header = f"{'workload':<16} {'policy':<12} {'gpu_hours':>10} {'cost_usd':>10} {'sla':>8} {'met':>4} {'ttft_p99_s':>11} {'scaling':>8} {'time_s':>7}"
    print(header)
    print("-" * len(header))
    for label, kwargs in WORKLOADS:
        for name in POLICIES:
            t0 = time.perf_counter()
            result = run_episode(make_env(ENV_ID, kwargs), make_policy(name, ENV_ID), seed=0, record_actions=False)
            m = result.metrics
            print(
                f"{label:<16} {name:<12} {m['gpu_hours']:>10.1f} {m['cost_usd']:>10.1f} {m['sla_attainment']:>8.4f} "
                f"{'yes' if m['sla_met'] else 'no':>4} {m['ttft_p99']:>11.2f} {m['scaling_actions']:>8.0f} "
                f"{time.perf_counter() - t0:>7.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
