"""``schedgym leaderboard``: render leaderboard/README.md and leaderboard/index.html from results CSVs."""

from __future__ import annotations

import argparse

HELP = "render the leaderboard (README.md tables + self-contained index.html with plots) from results CSVs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", nargs="+", default=["leaderboard/results"], metavar="DIR", help="results dirs or CSVs (default leaderboard/results)")
    parser.add_argument("--out", default="leaderboard", help="output directory (default leaderboard)")
    parser.add_argument("--runs", nargs="+", action="extend", default=[], metavar="DIR", help="training run dirs whose logs give learning curves")
    parser.add_argument("--validate", action="store_true", help="replay every row first and leave out rows that fail")


def main(args: argparse.Namespace) -> int:
    from schedgym.benchmark.render import write_leaderboard
    from schedgym.benchmark.results import find_results

    exclude: list[tuple[str, int]] = []
    if args.validate:
        from schedgym.benchmark.validate import validate_file

        for path in find_results(args.results):
            for rc in validate_file(path).failed:
                print(f"excluded {path}:{rc.line}: {rc.label}: {rc.reason}")
                exclude.append((str(path), rc.line))
    md, page, boards, report = write_leaderboard(args.results, args.out, args.runs, exclude)
    for msg in report.ignored:
        print(f"ignored {msg}")
    print(f"leaderboard: {len(boards)} task(s) from {len(report.files)} file(s) -> {md}, {page}")
    return 0
