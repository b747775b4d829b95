"""``schedgym envs``: list the registered environments."""

from __future__ import annotations

import argparse

HELP = "list every registered env id with a one-line description"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per env")


def main(args: argparse.Namespace) -> int:
    import json

    from schedgym.envs import ENV_ENTRIES

    if args.json:
        for e in ENV_ENTRIES:
            print(json.dumps({"id": e.id, "description": e.description}))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="schedgym environments")
    table.add_column("id", style="bold")
    table.add_column("description")
    for e in ENV_ENTRIES:
        table.add_row(e.id, e.description)
    Console().print(table)
    return 0
