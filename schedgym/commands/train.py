"""``schedgym train``: train PPO (RLlib or SB3) or MuZero on an env; checkpoints in a run directory."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from schedgym.commands import parse_json_object

HELP = "train an agent (PPO with RLlib or SB3, or MuZero) and save checkpoints to a run directory"

ALGOS = ("ppo", "muzero")
PPO_BACKENDS = ("rllib", "sb3")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", required=True, help="env id, e.g. schedgym/MemoryMapping-v0")
    parser.add_argument("--algo", required=True, choices=ALGOS, help="training algorithm")
    parser.add_argument("--backend", choices=PPO_BACKENDS, help="PPO backend (default rllib; not used by muzero)")
    parser.add_argument("--config", metavar="FILE.yaml", help="hyperparameters overriding the packaged ones "
                        "(a flat mapping, or sections 'default' and env ids)")
    parser.add_argument("--kwargs", default="{}", help="env kwargs as a JSON object")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one hyperparameter (VALUE is YAML: 1e-3, [64, 64], true); repeatable")
    parser.add_argument("--timesteps", type=int, help="total env steps across resumes (default: the config's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the run (default 0)")
    parser.add_argument("--train-seeds", metavar="SEEDS", help="reset the training envs only with these seeds: 'N-' "
                        "(N and up) or '3,4,5'; recorded in train_instances (e.g. poisson#seeds>=1000)")
    parser.add_argument("--task", metavar="TASK", help="train on this benchmark task's train split: the reset seeds of "
                        "its train spec for the env's source (e.g. agents-bursty-steady with workload poisson: 1000-)")
    parser.add_argument("--out", help="run directory (default runs/<env>__<algo>[-<backend>]__<seed>__<time>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else embedded Ray on 127.0.0.1); "
                        "gives up after $SCHEDGYM_RAY_CONNECT_TIMEOUT_S seconds (default 10)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_spec(args: argparse.Namespace) -> Any:
    """The :class:`~schedgym.training.TrainSpec` the command line describes (no training)."""
    from schedgym.envs import env_entry
    from schedgym.training.common import TrainSpec
    from schedgym.training.config import parse_set_overrides, resolve_config

    entry = env_entry(args.env)
    backend = args.backend
    if args.algo == "ppo":
        backend = backend or "rllib"
    elif backend is not None:
        raise ValueError(f"--backend applies to --algo ppo only, not {args.algo!r}")
    env_kwargs = parse_json_object(args.kwargs, "--kwargs")
    config = resolve_config(args.algo, backend, entry.id, args.config, parse_set_overrides(args.set))
    tag = f"{args.algo}-{backend}" if backend else args.algo
    if args.resume:
        if not args.out:
            raise ValueError("--resume needs --out DIR, the run directory to continue")
        meta_file = Path(args.out) / "schedgym_agent.json"
        if meta_file.is_file():
            from schedgym.agents import read_agent_meta

            meta = read_agent_meta(args.out)
            config, env_kwargs = meta.get("config", config), meta.get("env_kwargs", env_kwargs)
            if args.timesteps is None:
                args.timesteps = meta.get("timesteps")
    train_seeds = _train_seeds(args, entry.id, env_kwargs)
    if args.resume and Path(args.out, "schedgym_agent.json").is_file():
        from schedgym.agents import read_agent_meta

        train_seeds = read_agent_meta(args.out).get("train_seeds")  # the stored experiment's
    out = Path(args.out) if args.out else Path("runs") / (
        f"{entry.family}__{tag}__{args.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
    )
    timesteps = args.timesteps if args.timesteps is not None else config.get("timesteps")
    if not isinstance(timesteps, int) or timesteps < 1:
        raise ValueError(f"--timesteps must be an integer >= 1, got {timesteps!r}")
    # The run record (schedgym_agent.json, config.yaml) must say what runs, not the packaged default.
    config = {**config, "timesteps": timesteps}
    return TrainSpec(
        env_id=entry.id,
        env_kwargs=env_kwargs,
        algo=args.algo,
        backend=backend,
        config=config,
        timesteps=timesteps,
        seed=args.seed,
        out_dir=out,
        resume=args.resume,
        address=args.address,
        progress=not args.no_progress,
        train_seeds=train_seeds,
    )


def _train_seeds(args: argparse.Namespace, env_id: str, env_kwargs: dict[str, Any]) -> str | None:
    """``--train-seeds`` (checked) or the seeds ``--task``'s train split allows for the env's source."""
    from schedgym.training.seeds import TrainSeeds, train_seeds_for_task

    given = getattr(args, "train_seeds", None)
    task = getattr(args, "task", None)
    if given is not None and task is not None:
        raise ValueError("give --train-seeds or --task, not both")
    if given is not None:
        return str(TrainSeeds.parse(given))
    if task is not None:
        seeds = train_seeds_for_task(task, env_id, env_kwargs)
        return None if seeds is None else str(seeds)
    return None


def main(args: argparse.Namespace) -> int:
    import importlib

    spec = build_spec(args)
    module = importlib.import_module(f"schedgym.agents.{spec.algo}")
    t0 = time.perf_counter()
    run_dir = module.train(spec)
    print(f"trained {spec.algo}{'/' + spec.backend if spec.backend else ''} on {spec.env_id} for "
          f"{spec.timesteps} steps in {time.perf_counter() - t0:.1f} s; run directory: {run_dir}", file=sys.stderr)
    print(f"evaluate: schedgym run --env {spec.env_id} --policy {run_dir} --kwargs '{json.dumps(spec.env_kwargs)}'",
          file=sys.stderr)
    return 0
