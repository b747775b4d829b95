"""PowerCapping-v2 load calibration against POLCA's production figures, per trace replication mode.

POLCA (Patel et al., ASPLOS'24) measured inference rows that peak at 79 % of their provisioned power and
whose largest power rise within 40 s (the cap actuation delay) is 11.8 % of it. This prints, for the
uncapped reference row of ``provisioned_servers`` (40) servers on each Azure trace and seeds 0-2: the
1-s peak and mean power as fractions of the budget, and the largest rise of the 10-s mean power within
40 s. ``trace_replication="jitter"`` (v1's default) repeats the trace's bursts in step when it scales the
trace up; ``"shifted"`` (v2's default) superposes time-shifted copies (``DEFAULT_RATE_SCALE_SHIFTED``).
The LP servers are v2's backlogged batch servers (the env default).

    python benchmarks/power_calibration.py [--seeds 0,1,2] [--workloads azure-conv,azure-code]
"""

from __future__ import annotations

import argparse

import numpy as np

import schedgym  # noqa: F401
from schedgym.envs.power_capping.calibration import (
    POLCA_MAX_RISE_40S,
    POLCA_PEAK_FRAC,
    largest_rise,
    reference_row_power,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--workloads", default="azure-conv,azure-code")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"POLCA: peak {POLCA_PEAK_FRAC:.2f} of provisioned, largest 40-s rise {POLCA_MAX_RISE_40S:.3f}")
    print(f"{'workload':<12} {'replication':<12} {'peak':>14} {'mean':>6} {'40-s rise':>16}")
    for workload in args.workloads.split(","):
        for replication in ("jitter", "shifted"):
            stats = [reference_row_power(workload, replication, s) for s in seeds]
            peaks = [float(p.max()) for p in stats]
            rises = [largest_rise(p) for p in stats]
            mean = float(np.mean([p.mean() for p in stats]))
            print(f"{workload:<12} {replication:<12} {min(peaks):.2f}-{max(peaks):.2f} {mean:>10.2f} "
                  f"{min(rises):.3f}-{max(rises):.3f}", flush=True)


if __name__ == "__main__":
    main()
