"""``schedgym bench``: run baselines and trained agents over the benchmark tasks (resumable, Ray-parallel)."""

from __future__ import annotations

import argparse
import os

HELP = "run policies over the frozen benchmark tasks, appending replayable results CSVs (resumes)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tier", default="quick", help="task tier: quick (minutes) or full (default quick)")
    parser.add_argument("--task", action="append", metavar="T", help="run only this task (repeatable; overrides --tier)")
    parser.add_argument(
        "--policy", nargs="+", action="extend", metavar="NAME|DIR",
        help="baseline names and/or `schedgym train` run dirs (default: every baseline of each task's family)",
    )
    parser.add_argument("--out", default="leaderboard/results", help="results directory (default leaderboard/results)")
    parser.add_argument("--address", default=None, help="join this Ray cluster (HOST:PORT) instead of starting a local one; "
                        "gives up after $SCHEDGYM_RAY_CONNECT_TIMEOUT_S seconds (default 10)")
    parser.add_argument("--workers", type=int, default=None, help="CPUs of the local Ray (default: all); 1 runs in-process without Ray")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--list", action="store_true", help="list the tasks of the tier and exit")


def main(args: argparse.Namespace) -> int:
    from schedgym.benchmark.runner import print_summary, resolve_policy_specs, run_bench
    from schedgym.benchmark.tasks import get_task, tasks_for_tier

    tasks = [get_task(t) for t in args.task] if args.task else tasks_for_tier(args.tier)
    if args.list:
        for t in tasks:
            print(f"{t.name:32s} v{t.version}  {t.env_id:30s} {len(t.instances)} instance(s) x {len(t.seeds)} seed(s)  {t.description}")
        return 0
    workers = args.workers if args.workers is not None else (os.cpu_count() or 1)
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    policies = resolve_policy_specs(args.policy) if args.policy else None
    summary = run_bench(tasks, policies, args.out, workers=workers, address=args.address, progress=not args.no_progress)
    print_summary(summary, args.out)
    return 1 if summary.failed else 0
