"""Can a delayed controller beat a constant cap on the deep row? The evidence behind the PowerCapping agent's
recipe (``schedgym/training/configs/ppo_sb3_power_capping.yaml``), on the task's *train* workloads only.

On 60 servers under a 40-server budget (power-deep-oversubscription's row), for synthetic days (seeds 1-3
by default) this prints brakes and the summed HP + LP perf loss of:

- every constant action worth trying (no cap; POLCA's levels on LP, HP or both; ``static_cap``'s LP 1110);
- threshold policies that hold a cap (``--capped``, default LP 1275 / HP 1305, what PPO converges to) and
  relax to a milder one (``--relaxed``) while the 60-s max row power is below a threshold;
- the clairvoyant (knows the next 40 s: what a delayed controller cannot see).

    python benchmarks/power_reactive_probe.py [--workload synthetic] [--seeds 1,2,3] [--replication shifted]
        [--lp-workload batch]

The defaults are v2's (batch LP, shifted replication); ``--lp-workload interactive --replication jitter``
gives v1's row, on which PPO learned one constant (LP 1275 / HP 1305) and no reactive policy beat it.
"""

from __future__ import annotations

import argparse

import numpy as np

import schedgym  # noqa: F401
from schedgym.baselines import make_policy
from schedgym.baselines.power_capping import StaticCapPolicy
from schedgym.envs.power_capping.env import OBS_INDEX
from schedgym.evaluation import make_env, run_episode

ENV_ID = "schedgym/PowerCapping-v2"
_MAX_60S = OBS_INDEX["power_frac_max_60s"]


class Threshold:
    """Hold ``capped``; relax to ``relaxed`` while the 60-s max row power / budget is below ``threshold``."""

    def __init__(self, capped: tuple[float, float], relaxed: tuple[float, float], threshold: float) -> None:
        self.name = f"relax to LP {relaxed[0]:.0f} / HP {relaxed[1]:.0f} below {threshold:.2f}"
        self.capped, self.relaxed, self.threshold = capped, relaxed, threshold

    def reset(self, env) -> None:
        self._hold, self._relax = env.action_for_caps(*self.capped), env.action_for_caps(*self.relaxed)

    def act(self, obs, info) -> int:
        return self._relax if obs[_MAX_60S] < self.threshold else self._hold


def caps(text: str) -> tuple[float, float]:
    lp, hp = (float(x) for x in text.split("/"))
    return lp, hp


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workload", default="synthetic")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--replication", default="shifted", choices=("jitter", "shifted"))
    ap.add_argument("--lp-workload", default="batch", choices=("batch", "interactive"))
    ap.add_argument("--capped", type=caps, default=(1275.0, 1305.0), help="LP/HP MHz held, e.g. 1275/1305")
    ap.add_argument("--relaxed", type=caps, default=(1410.0, 1410.0), help="LP/HP MHz when quiet")
    ap.add_argument("--thresholds", default="0.80,0.85,0.90")
    ap.add_argument("--episode-hours", type=float, default=None, help="shorter episodes (default: 1 h)")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    kwargs = {"workload": args.workload, "n_servers": 60, "provisioned_servers": 40, "trace_replication": args.replication,
              "lp_workload": args.lp_workload}  # fmt: skip
    if args.episode_hours is not None:
        kwargs["episode_hours"] = args.episode_hours
    env = make_env(ENV_ID, kwargs)
    constants = ((1410, 1410), (1275, 1410), (1410, 1305), (1275, 1305), (1110, 1410))
    rows = [(f"constant LP {lp} / HP {hp}", StaticCapPolicy(lp, hp)) for lp, hp in constants]
    rows += [(p.name, p) for p in (Threshold(args.capped, args.relaxed, float(t)) for t in args.thresholds.split(","))]
    rows.append(("clairvoyant", make_policy("clairvoyant", ENV_ID)))
    print(f"{args.workload} ({args.replication}, {args.lp_workload} LP), 60 servers on a 40-server budget, seeds {args.seeds}")
    print("| policy | brake events (sum) | HP + LP perf loss (mean) | per seed |")
    print("|---|---|---|---|")
    for label, policy in rows:
        runs = [run_episode(env, policy, seed=s).metrics for s in seeds]
        brakes = sum(int(m["brake_events"]) for m in runs)
        loss = [float(m["perf_loss"]) for m in runs]
        print(f"| {label} | {brakes} | {np.mean(loss):.4f} | {', '.join(f'{x:.4f}' for x in loss)} |", flush=True)


if __name__ == "__main__":
    main()
