"""`make bench`: the leaderboard's quick tier, then validation, then the rendered leaderboard.

1. ``schedgym bench --tier quick`` for every baseline of every registered family, plus every trained
   agent committed under ``leaderboard/agents/*/`` (directories holding ``schedgym_agent.json``);
   results are appended to ``leaderboard/results`` (a rerun resumes: finished rows are not rerun).
2. ``schedgym validate`` on every results file under ``--out`` (every row replayed in a fresh env from
   its frozen task; the leaderboard ranks only the rows that replay).
3. ``schedgym leaderboard``: ``leaderboard/README.md`` and ``leaderboard/index.html`` from every results
   file (failing rows left out; learning curves from the agents' run directories).

4. The per-family tables (``benchmarks/table_*.py``) and ``env_throughput.py`` (about 6 minutes together on
   2 cores), unless ``--no-tables``. ``make bench`` must stay under 15 minutes, so a table script that
   would start after ``--budget-s`` seconds is skipped and named (run it by hand:
   ``python benchmarks/<script>.py``).

    python benchmarks/run_all.py [--tier quick|full] [--out leaderboard/results] [--workers N] [--no-tables]
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def _run_tables(t_start: float, budget_s: float) -> None:
    scripts = sorted(HERE.glob("table_*.py")) + [HERE / "env_throughput.py"]
    for script in scripts:
        if time.perf_counter() - t_start > budget_s:
            print(f"\n=== {script.name}: skipped (past the {budget_s:.0f} s budget; run it by hand) ===", flush=True)
            continue
        print(f"\n=== {script.name} ===", flush=True)
        t0 = time.perf_counter()
        saved = sys.argv
        sys.argv = [str(script)]
        try:
            runpy.run_path(str(script), run_name="__main__")
        finally:
            sys.argv = saved
        print(f"({script.name}: {time.perf_counter() - t0:.0f} s)", flush=True)


def agent_dirs(root: Path) -> list[Path]:
    """Run dirs under ``root`` whose agent loads; one that does not (e.g. still training) is named and skipped."""
    from schedgym.agents import AGENT_META_FILE, load_agent_policy

    found = []
    for p in sorted(root.glob("*")) if root.is_dir() else []:
        if not (p / AGENT_META_FILE).is_file():
            continue
        try:
            load_agent_policy(p)
        except Exception as exc:  # noqa: BLE001  (any load error: name it and go on without the agent)
            print(f"skipping agent {p}: it does not load ({type(exc).__name__}: {exc})", flush=True)
            continue
        found.append(p)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", default="quick", help="task tier (default quick)")
    parser.add_argument("--out", default=str(REPO / "leaderboard" / "results"), help="results directory")
    parser.add_argument("--leaderboard", default=str(REPO / "leaderboard"), help="where README.md and index.html go")
    parser.add_argument("--agents", default=str(REPO / "leaderboard" / "agents"), help="trained agents' run dirs live here")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="Ray CPUs (default: all)")
    parser.add_argument("--no-tables", action="store_true", help="skip benchmarks/table_*.py and env_throughput.py")
    parser.add_argument("--budget-s", type=float, default=540.0, help="start no table script after this many seconds")
    args = parser.parse_args()

    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("MPLBACKEND", "Agg")
    from schedgym.benchmark.render import write_leaderboard
    from schedgym.benchmark.runner import print_summary, resolve_policy_specs, run_bench
    from schedgym.benchmark.tasks import tasks_for_tier
    from schedgym.benchmark.validate import validate_file

    t_start = time.perf_counter()
    tasks = tasks_for_tier(args.tier)
    print(f"=== schedgym bench --tier {args.tier}: {len(tasks)} task(s) -> {args.out} ===", flush=True)
    summary = run_bench(tasks, None, args.out, workers=args.workers)
    print_summary(summary, args.out)
    agents = agent_dirs(Path(args.agents))
    if agents:
        print(f"=== trained agents: {', '.join(a.name for a in agents)} ===", flush=True)
        agent_summary = run_bench(tasks, resolve_policy_specs([str(a) for a in agents]), args.out, workers=args.workers)
        print_summary(agent_summary, args.out)
        summary.failed = (summary.failed or []) + (agent_summary.failed or [])
    t_bench = time.perf_counter() - t_start

    # Every file the leaderboard renders is validated (not only this run's): only rows that replay from
    # their frozen task are ranked, and duplicates across files are rejected.
    from schedgym.benchmark.results import find_results

    files = find_results([args.out])
    print(f"=== schedgym validate ({len(files)} file(s)) ===", flush=True)
    exclude: list[tuple[str, int]] = []
    n_rows = 0
    seen: dict = {}
    for path in files:
        check = validate_file(path, seen=seen, agents_dirs=[args.agents])
        n_rows += len(check.rows)
        for rc in check.failed:
            print(f"FAIL {path}:{rc.line}: {rc.label}: {rc.reason}", flush=True)
            exclude.append((str(path), rc.line))
    print(f"validate: {n_rows - len(exclude)}/{n_rows} rows replay", flush=True)
    t_validate = time.perf_counter() - t_start - t_bench

    md, page, boards, _ = write_leaderboard(
        [args.out], args.leaderboard, [str(a) for a in agents], exclude, agents_dirs=[args.agents]
    )
    print(f"=== schedgym leaderboard: {len(boards)} task(s) -> {md}, {page} ===", flush=True)
    text = md.read_text()
    if "## Aggregate" in text:  # the headline table
        print("## Aggregate" + text.split("## Aggregate", 1)[1].split("\n## ", 1)[0], flush=True)
    print(f"(bench {t_bench:.0f} s, validate {t_validate:.0f} s, total {time.perf_counter() - t_start:.0f} s)", flush=True)
    if not args.no_tables:
        _run_tables(t_start, args.budget_s)
    return 1 if (summary.failed or exclude) else 0


if __name__ == "__main__":
    sys.exit(main())
