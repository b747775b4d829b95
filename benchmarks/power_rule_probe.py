"""Where POLCA's deployability rule binds, under each candidate loss measure (the data behind v2's batch LP).

For each policy and server count on a 40-server budget (azure-conv, ``trace_replication="shifted"``, whose
bursts rise like POLCA's production rows; one episode per cell), this prints the brake events and three
measures of the HP/LP performance loss against the uncapped reference row on the same arrivals. By default
the LP class is v1's (``--lp-workload interactive``: open-loop request streams), the case that decided
PowerCapping-v2: no LP latency measure lets polca beat no_cap there, and a throughput rule makes LP capping
free (open-loop servers finish every arrival), so v2 makes LP servers backlogged batch servers
(``lp_workload="batch"``, whose LP loss is throughput: ``--lp-workload batch``).

- ``mean``: mean latency by Little's law (``hp/lp_perf_loss``, what v1's rule priced for both classes);
- ``p50``: median end-to-end latency (``hp/lp_latency_p50_loss``; POLCA states "<1 % P50 latency impact");
- ``thr``: tokens processed (``hp/lp_throughput_loss``; POLCA's "HP throughput within 1 %, LP within 2 %").

A cell reads ``brakes | mean HP/LP | p50 HP/LP | thr HP/LP`` in %. Reproduces the probe in issue 13's notes:

    python benchmarks/power_rule_probe.py [--counts 50,52,54,56,58] [--policies no_cap,polca,...] [--seed 0]
"""

from __future__ import annotations

import argparse

import schedgym  # noqa: F401
from schedgym.baselines import make_policy
from schedgym.evaluation import make_env, run_episode

ENV_ID = "schedgym/PowerCapping-v2"


def cell(
    policy: str, n_servers: int, seed: int, replication: str, episode_hours: float | None = None,
    lp_workload: str = "interactive",
) -> str:  # fmt: skip
    kwargs = {"workload": "azure-conv", "n_servers": n_servers, "provisioned_servers": 40, "trace_replication": replication,
              "lp_workload": lp_workload}  # fmt: skip
    if episode_hours is not None:
        kwargs["episode_hours"] = episode_hours
    env = make_env(ENV_ID, kwargs)
    m = run_episode(env, make_policy(policy, ENV_ID), seed=seed).metrics
    pct = lambda k: f"{100 * m[k]:.1f}"  # noqa: E731
    return (f"{m['brake_events']} | {pct('hp_perf_loss')}/{pct('lp_perf_loss')} | "
            f"{pct('hp_latency_p50_loss')}/{pct('lp_latency_p50_loss')} | "
            f"{pct('hp_throughput_loss')}/{pct('lp_throughput_loss')}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", default="50,52,54,56,58")
    ap.add_argument("--policies", default="no_cap,polca,static_cap,static_cap_both,bayesian,clairvoyant")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--replication", default="shifted", choices=("shifted", "jitter"))
    ap.add_argument("--episode-hours", type=float, default=None, help="shorter episodes (default: the trace's hour)")
    ap.add_argument("--lp-workload", default="interactive", choices=("interactive", "batch"))
    args = ap.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",")]
    print(f"azure-conv, trace_replication={args.replication}, seed {args.seed}; "
          "cell: brakes | mean-latency loss HP/LP % | P50 latency loss HP/LP % | throughput loss HP/LP %")
    print("| policy | " + " | ".join(f"{n} servers" for n in counts) + " |")
    print("|---" * (len(counts) + 1) + "|")
    for policy in args.policies.split(","):
        cells = [cell(policy, n, args.seed, args.replication, args.episode_hours, args.lp_workload).replace(" | ", " ; ") for n in counts]
        print(f"| {policy} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
