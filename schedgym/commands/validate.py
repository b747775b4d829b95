"""``schedgym validate``: replay every row of results CSVs in a fresh env and re-check its metric."""

from __future__ import annotations

import argparse

HELP = "replay every row of benchmark results CSVs (files or directories) and check the recorded metrics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="results CSVs, or directories searched for *.csv")
    parser.add_argument("--quiet", action="store_true", help="print only failing rows and the summary")
    parser.add_argument("--agents", nargs="+", action="extend", default=[], metavar="DIR",
                        help="directories holding agent run dirs, searched (by name) for the records of agent rows "
                        "before agents/ beside results/ and ./leaderboard/agents")


def main(args: argparse.Namespace) -> int:
    from schedgym.benchmark.results import find_results
    from schedgym.benchmark.validate import validate_file

    paths = find_results(args.files)
    if not paths:
        raise ValueError(f"no results CSVs found in {args.files}")
    n_ok = n_bad = 0
    seen: dict = {}  # duplicates are rejected across all the files given
    for path in paths:
        check = validate_file(path, seen=seen, agents_dirs=args.agents)
        for rc in check.rows:
            if rc.ok:
                n_ok += 1
            else:
                n_bad += 1
                print(f"FAIL {path}:{rc.line}: {rc.label}: {rc.reason}")
        if not args.quiet:
            print(f"{path}: {len(check.rows) - len(check.failed)}/{len(check.rows)} rows replay")
    print(f"validate: {n_ok} row(s) replay, {n_bad} row(s) fail in {len(paths)} file(s)")
    return 1 if n_bad else 0
