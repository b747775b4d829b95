"""Paired difference of two policies on a leaderboard task, with a bootstrap interval.

Both policies' committed rows (``leaderboard/results/<task>/<policy>.csv``) are matched by (instance, seed);
the mean of ``metric(a) - metric(b)`` gets a 95 % percentile-bootstrap interval over those pairs (10,000
resamples, seed 0). Whether ``a`` beats ``b`` depends on the task's direction (printed).

    python benchmarks/paired_difference.py memory-minimalloc memory_mapping-muzero_search lowest_offset_first
    python benchmarks/paired_difference.py agents-bursty-steady agent_scheduling-ppo_sb3_bc vtc
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from schedgym.benchmark.results import read_rows
from schedgym.benchmark.tasks import get_task


def paired(task: str, a: str, b: str, results: Path) -> tuple[np.ndarray, list[tuple[str, int]]]:
    rows = {}
    for policy in (a, b):
        path = results / task / f"{policy}.csv"
        if not path.is_file():
            raise SystemExit(f"no results file {path}")
        rows[policy] = {(str(r["instance"]), int(r["seed"])): float(r["metric"]) for r in read_rows(path).rows}
    keys = sorted(set(rows[a]) & set(rows[b]))
    if not keys:
        raise SystemExit(f"{a} and {b} share no (instance, seed) on {task}")
    return np.array([rows[a][k] - rows[b][k] for k in keys]), keys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("task")
    parser.add_argument("a", help="policy (file name without .csv)")
    parser.add_argument("b", help="policy it is compared with")
    parser.add_argument("--results", type=Path, default=Path("leaderboard/results"))
    args = parser.parse_args(argv)
    task = get_task(args.task)
    d, keys = paired(args.task, args.a, args.b, args.results)
    rng = np.random.default_rng(0)
    boots = d[rng.integers(0, len(d), size=(10_000, len(d)))].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    better = (d > 0) if task.direction == "max" else (d < 0)
    worse = (d < 0) if task.direction == "max" else (d > 0)
    print(f"{args.task}: {task.metric} ({'higher' if task.direction == 'max' else 'lower'} is better), "
          f"{args.a} - {args.b} over {len(d)} (instance, seed) pairs")
    print(f"mean difference {d.mean():.6g}, 95 % bootstrap interval [{lo:.6g}, {hi:.6g}]; "
          f"{args.a} better on {int(better.sum())}, worse on {int(worse.sum())}, equal on {int((d == 0).sum())}")
    excludes_zero = lo > 0 or hi < 0
    print("the interval excludes 0" if excludes_zero else "the interval includes 0")


if __name__ == "__main__":
    main()
