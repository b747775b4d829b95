"""``schedgym list``: what there is to run — env ids, their instances/workloads, policies, benchmark tasks."""

from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "list envs, an env's instances or workloads, its policies, or the benchmark tasks"

KINDS = ("envs", "instances", "policies", "tasks")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=KINDS, help="what to list")
    parser.add_argument("--env", help="env id (needed for instances and policies; filters tasks)")
    parser.add_argument("--tier", help="tasks of one tier only (quick or full)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def _rows(args: argparse.Namespace) -> tuple[list[str], list[dict[str, Any]]]:
    from schedgym import discovery

    if args.kind in ("instances", "policies") and not args.env:
        raise ValueError(f"list {args.kind} needs --env ID; env ids: {discovery.env_ids()}")
    envs = [args.env] if args.env else discovery.env_ids()
    if args.kind == "envs":
        from schedgym.envs import ENV_ENTRIES

        return ["id", "episode_steps", "description"], [
            {"id": e.id, "episode_steps": e.horizon, "description": e.description}
            for e in ENV_ENTRIES if e.id in envs or args.env is None
        ]
    if args.kind == "instances":
        return ["kwarg", "name", "source", "description"], [i.as_dict() for i in discovery.instance_infos(args.env)]
    if args.kind == "policies":
        from schedgym.baselines import list_policies

        infos = list_policies(args.env)
        return ["name", "kind", "description"], [
            {"name": n, "kind": infos[n].kind, "description": infos[n].description} for n in sorted(infos)
        ]
    from schedgym.benchmark.tasks import get_task

    rows = []
    for name in discovery.tasks(args.env, args.tier):
        t = get_task(name)
        row = {"name": t.name, "tier": t.tier, "env_id": t.env_id, "instances": len(t.instances),
               "seeds": len(t.seeds), "metric": t.metric_label, "split": t.split.describe()}
        if args.json:  # the full lists, machine-readable
            row["split"] = t.split.as_dict()
        rows.append(row)
    return ["name", "tier", "env_id", "instances", "seeds", "metric", "split"], rows


def main(args: argparse.Namespace) -> int:
    columns, rows = _rows(args)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    from rich.console import Console
    from rich.table import Table

    title = f"schedgym {args.kind}" + (f" of {args.env}" if args.env else "")
    table = Table(title=title)
    for col in columns:
        table.add_column(col, style="bold" if col in ("id", "name") else None, no_wrap=col in ("id", "name", "kwarg"),
                         justify="right" if col in ("instances", "seeds") else "left")
    for row in rows:
        table.add_row(*("-" if row[c] is None else str(row[c]) for c in columns))
    Console().print(table)
    return 0
