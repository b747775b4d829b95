"""``schedgym leaderboard``: render leaderboard/README.md and leaderboard/index.html from results CSVs."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "render the leaderboard (README.md tables + self-contained index.html with plots) from results CSVs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", nargs="+", default=["leaderboard/results"], metavar="DIR", help="results dirs or CSVs (default leaderboard/results)")
    parser.add_argument("--out", default="leaderboard", help="output directory (default leaderboard)")
    parser.add_argument("--runs", nargs="+", action="extend", default=[], metavar="DIR", help="training run dirs whose logs give learning curves")
    parser.add_argument("--json", metavar="PATH", help="also write the leaderboard as one JSON document "
                        "(schema: schedgym/benchmark/export.py)")
    parser.add_argument(
        "--validate", action="store_true",
        help="(always on) every row is replayed first; rows that fail, duplicates and unparsable rows are left out",
    )


def main(args: argparse.Namespace) -> int:
    from schedgym.benchmark.render import write_leaderboard
    from schedgym.benchmark.results import find_results

    from schedgym.benchmark.validate import validate_file

    # Only validated rows are rendered: results are untrusted until they replay from the frozen task.
    exclude: list[tuple[str, int]] = []
    seen: dict = {}
    for path in find_results([p for p in args.results if Path(p).exists()]):
        for rc in validate_file(path, seen=seen).failed:
            print(f"excluded {path}:{rc.line}: {rc.label}: {rc.reason}")
            exclude.append((str(path), rc.line))
    md, page, boards, report = write_leaderboard(args.results, args.out, args.runs, exclude)
    for msg in report.ignored:
        print(f"ignored {msg}")
    print(f"leaderboard: {len(boards)} task(s) from {len(report.files)} file(s) -> {md}, {page}")
    if args.json:
        from schedgym.benchmark.export import write_json

        print(f"leaderboard: JSON -> {write_json(boards, args.json)}")
    return 0
