"""The exact solver on the 11 MiniMalloc challenging instances: per-instance solve time, as a ratio to
MiniMalloc's own (C++, one thread), and a check of every mapping.

    python benchmarks/exact_solver.py [--only A,B] [--time-limit 300] [--via-cli]

MiniMalloc's times are the ones measured on this machine class from its public source (one thread; see
``docs``/the issue that introduced the solver): A 16.2 s, B 10.0, C 1.8, D 6.9, E 9.0, F 11.9, G 3.5,
H 4.9, I 8.3, J 2.4, K 1.6 (76.5 s in all). The goal is a total ratio <= 2 and every instance proven
(all buffers packed). With ``--via-cli`` each instance runs through ``schedgym run ... --policy exact
--json`` in a fresh process (load, solve, replay, numba cache warm), as a user would.

Wall time depends on what else the machine runs; beside it: the CPU time of the search (in-process) or,
with ``--via-cli``, the solver's own time inside the run (the wall column then includes starting Python,
loading the instance and replaying the mapping). The ratio is wall time / MiniMalloc's time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

from schedgym.envs.memory_mapping.instances import MINIMALLOC_NAMES, load_minimalloc
from schedgym.envs.memory_mapping.solver import solve_packing

#: MiniMalloc (github.com/google/minimalloc, one thread), seconds per instance, measured on this machine class.
MINIMALLOC_S = {"A": 16.2, "B": 10.0, "C": 1.8, "D": 6.9, "E": 9.0, "F": 11.9, "G": 3.5, "H": 4.9, "I": 8.3, "J": 2.4, "K": 1.6}


def _check(inst, offsets: np.ndarray) -> bool:
    """Independent of the solver: every buffer placed, inside [0, C), no overlap in time and address."""
    x, s = offsets, inst.size
    if np.any(x < 0) or np.any(x + s > inst.capacity):
        return False
    t = (inst.start[:, None] < inst.end[None, :]) & (inst.start[None, :] < inst.end[:, None])
    a = (x[:, None] < (x + s)[None, :]) & (x[None, :] < (x + s)[:, None])
    clash = t & a
    np.fill_diagonal(clash, False)
    return not clash.any()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated letters (default: all 11)")
    parser.add_argument("--time-limit", type=float, default=300.0, help="seconds per instance")
    parser.add_argument("--via-cli", action="store_true", help="run `schedgym run --policy exact --json` per instance")
    args = parser.parse_args()
    letters = [x for x in args.only.split(",") if x] or list(MINIMALLOC_NAMES)
    if not args.via_cli:
        solve_packing(load_minimalloc("C"), time_limit_s=60)  # compile (or load the numba cache) first
    total_wall = total_ref = 0.0
    all_ok = True
    solve_col = "solve s" if args.via_cli else "cpu s"  # via the CLI: the solver's time inside the run
    print(f"{'inst':>4} {'n':>4} {'status':>10} {'nodes':>9} {'wall s':>8} {solve_col:>7} {'MiniMalloc s':>12} {'ratio':>6}  check")
    for x in letters:
        inst = load_minimalloc(x)
        c0, t0 = time.process_time(), time.perf_counter()
        if args.via_cli:
            kwargs = json.dumps({"instance": f"minimalloc:{x}"})
            pk = json.dumps({"time_limit_s": args.time_limit})
            out = subprocess.run(
                [sys.executable, "-m", "schedgym.cli", "run", "--env", "schedgym/MemoryMapping-v0", "--kwargs", kwargs,
                 "--policy", "exact", "--policy-kwargs", pk, "--json"],
                check=True, capture_output=True, text=True,
            ).stdout
            rec = json.loads(out.strip().splitlines()[-1])
            status = rec["policy_metrics"]["solver_status"]
            nodes = rec["policy_metrics"]["solver_nodes"]
            ok = status == "optimal" and rec["metrics"]["area_placed_frac"] == 1.0
            cpu = float(rec["policy_metrics"]["solve_time_s"])  # the solver's own time, in that process
        else:
            r = solve_packing(inst, time_limit_s=args.time_limit)
            status, nodes = r.status, r.nodes
            ok = r.status == "feasible" and _check(inst, r.offsets)
            cpu = time.process_time() - c0
        wall = time.perf_counter() - t0
        total_wall += wall
        total_ref += MINIMALLOC_S[x]
        all_ok &= ok
        print(f"{x:>4} {inst.n:>4} {status:>10} {nodes:>9} {wall:>8.2f} {cpu:>7.2f} {MINIMALLOC_S[x]:>12.1f} "
              f"{wall / MINIMALLOC_S[x]:>6.2f}  {'ok' if ok else 'FAIL'}", flush=True)
    print(f"total: {total_wall:.1f} s wall vs MiniMalloc {total_ref:.1f} s: ratio {total_wall / total_ref:.2f} "
          f"(goal <= 2); all proven and checked: {all_ok}")


if __name__ == "__main__":
    main()
