"""``schedgym oversubscription``: servers deployable on a power budget under a PowerCapping policy."""

from __future__ import annotations

import argparse
import json

HELP = "find the largest n_servers a PowerCapping policy keeps safe on a provisioned power budget (POLCA)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy",
        required=True,
        help="a PowerCapping baseline: no_cap, static_cap, static_cap_both, polca, bayesian, clairvoyant (best known), random",
    )
    parser.add_argument("--kwargs", default="{}", help="PowerCapping-v2 env kwargs as a JSON object (not n_servers)")
    parser.add_argument("--policy-kwargs", default="{}", help="policy kwargs as a JSON object")
    parser.add_argument("--seeds", default="0", help="comma-separated episode seeds per count (default 0)")
    parser.add_argument("--hp-loss", type=float, default=0.01, help="max HP perf loss (default 0.01)")
    parser.add_argument("--lp-loss", type=float, default=0.02, help="max LP perf loss (default 0.02)")
    parser.add_argument("--max-servers", type=int, default=None, help="largest count to try (default 2x provisioned)")
    parser.add_argument("--patience", type=int, default=2, help="stop after this many failing counts in a row")
    parser.add_argument("--json", action="store_true", help="one JSON object per count, then {servers_deployable}")


def _parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds:
        raise ValueError(f"--seeds must name at least one seed, got {text!r}")
    return seeds


def main(args: argparse.Namespace) -> int:
    from schedgym.commands import parse_json_object
    from schedgym.envs.power_capping.oversubscription import servers_deployable

    env_kwargs = parse_json_object(args.kwargs, "--kwargs")
    policy_kwargs = parse_json_object(args.policy_kwargs, "--policy-kwargs")
    seeds = _parse_seeds(args.seeds)
    common = dict(
        policy=args.policy,
        policy_kwargs=policy_kwargs,
        env_kwargs=env_kwargs,
        seeds=seeds,
        hp_loss_max=args.hp_loss,
        lp_loss_max=args.lp_loss,
        max_servers=args.max_servers,
        patience=args.patience,
    )
    if args.json:
        result = servers_deployable(**common, on_count=lambda c: print(json.dumps(c.to_dict()), flush=True))
        print(
            json.dumps(
                {
                    "policy": result.policy,
                    "provisioned_servers": result.provisioned_servers,
                    "servers_deployable": result.servers_deployable,
                    "gain_pct": result.gain_pct,
                }
            ),
            flush=True,
        )
        return 0

    from rich.console import Console
    from rich.table import Table

    from schedgym.progress import Progress

    console = Console()
    # The walk's length is not known in advance (it stops at the first count that fails): no total, no ETA.
    with Progress(None, f"{args.policy}: trying counts", unit="counts") as progress:

        def on_count(c: object) -> None:
            progress.update(advance=1, description=f"{args.policy}: n_servers={c.n_servers} {'ok' if c.ok else 'fail'}")

        result = servers_deployable(**common, on_count=on_count)
    table = Table(title=f"{args.policy}: servers deployable on a {result.provisioned_servers}-server budget")
    for col in ("servers", "oversub", "brakes", "s>budget", "peak", "HP loss", "LP loss", "kWh", "ok"):
        table.add_column(col, justify="right", no_wrap=True)
    for c in result.counts:
        table.add_row(
            str(c.n_servers),
            f"{c.oversubscription_pct:+.0f}%",
            str(c.brake_events),
            str(c.seconds_over_budget),
            f"{c.peak_power_frac:.1%}",
            f"{c.hp_perf_loss:.2%}",
            f"{c.lp_perf_loss:.2%}",
            f"{c.energy_kwh:.1f}",
            "yes" if c.ok else "no",
        )
    console.print(table)
    console.print(
        f"servers deployable: {result.servers_deployable} ({result.gain_pct:+.0f}% over {result.provisioned_servers})"
    )
    return 0
