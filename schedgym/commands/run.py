"""``schedgym run``: run a named policy for some episodes and print the env's metrics."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from schedgym.commands import parse_json_object

HELP = "run a baseline (or a trained agent) in an env and print its metrics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="env id, e.g. schedgym/MemoryMapping-v0")
    parser.add_argument("--kwargs", default="{}", help="env kwargs as a JSON object")
    parser.add_argument("--policy", required=True, help="a baseline name (see the error for the list) or a checkpoint dir")
    parser.add_argument("--policy-kwargs", default="{}", help="policy kwargs as a JSON object")
    parser.add_argument("--episodes", type=int, default=1, help="number of episodes (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode; episode i uses seed+i")
    parser.add_argument("--render", metavar="FILE.png", help="save a picture of the last episode's final state")
    parser.add_argument("--json", action="store_true", help="print one JSON object per episode")


def resolve_policy(name: str, env_id: str, policy_kwargs: dict[str, Any], seed: int) -> Any:
    """A baseline by name, or a trained agent from a checkpoint directory."""
    from pathlib import Path

    from schedgym.baselines import make_policy

    if Path(name).is_dir():
        from schedgym.agents import load_agent_policy

        return load_agent_policy(name, env_id=env_id, **policy_kwargs)
    if name == "random" and "seed" not in policy_kwargs:
        policy_kwargs = {**policy_kwargs, "seed": seed}
    return make_policy(name, env_id, **policy_kwargs)


def main(args: argparse.Namespace) -> int:
    from schedgym.baselines import env_kwargs_for
    from schedgym.envs import env_entry
    from schedgym.evaluation import make_env, run_episode

    entry = env_entry(args.env)
    env_kwargs = parse_json_object(args.kwargs, "--kwargs")
    policy_kwargs = parse_json_object(args.policy_kwargs, "--policy-kwargs")
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    policy = resolve_policy(args.policy, entry.id, policy_kwargs, args.seed)
    env_kwargs = env_kwargs_for(policy, env_kwargs)
    env = make_env(entry.id, env_kwargs, render_mode="rgb_array" if args.render else None)
    results = []
    for i in range(args.episodes):
        result = run_episode(env, policy, seed=args.seed + i, record_actions=False)
        results.append(result)
        if args.json:
            print(result.to_json(), flush=True)
    if args.render:
        from schedgym.envs.core.render import save_rgb_png

        save_rgb_png(env.render(), args.render)
        print(f"saved {args.render}", file=sys.stderr)
    if not args.json:
        _print_table(entry.id, getattr(policy, "name", args.policy), results)
    env.close()
    return 0


def _print_table(env_id: str, policy_name: str, results: list) -> None:
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{policy_name} on {env_id} ({len(results)} episode(s))")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("std", justify="right")
    rows: dict[str, list[float]] = {
        "episode_return": [r.episode_return for r in results],
        "episode_length": [r.episode_length for r in results],
    }
    for r in results:
        for k, v in r.metrics.items():
            if isinstance(v, (int, float)) and v is not None:
                rows.setdefault(k, []).append(float(v))
    rows["walltime_s"] = [r.walltime_s for r in results]
    for k, vals in rows.items():
        arr = np.asarray(vals, dtype=float)
        table.add_row(k, _number(float(arr.mean()), 6), _number(float(arr.std()), 3))
    Console().print(table)


def _number(x: float, digits: int) -> str:
    """Integral values exactly (``capacity_bytes`` 1048576, not 1.04858e+06), others to ``digits`` significant."""
    if math.isfinite(x) and x.is_integer() and abs(x) < 1e18:
        return str(int(x))
    return f"{x:.{digits}g}"
