"""What every training backend shares: the run specification handed to ``schedgym.agents.<algo>.train``.

Contract between ``schedgym train`` (schedgym/commands/train.py) and the algorithms:

    schedgym.agents.<algo>.train(spec: TrainSpec) -> Path        # the run directory, with checkpoints
    schedgym.agents.<algo>.load_policy(path, meta, **kw) -> Policy  # greedy, deterministic, no code exec

The run directory holds ``schedgym_agent.json`` (algo, backend, env_id, env_kwargs, seed, resolved
config, package versions) so that ``schedgym run --policy DIR`` can load it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TrainSpec"]


@dataclass
class TrainSpec:
    env_id: str  # registered id, e.g. "schedgym/MemoryMapping-v0"
    env_kwargs: dict[str, Any]  # JSON-serialisable constructor kwargs of the env
    algo: str  # "ppo" | "muzero"
    backend: str | None  # "rllib" | "sb3" for ppo; None for muzero
    config: dict[str, Any]  # resolved hyperparameters (YAML defaults for the env id + overrides)
    timesteps: int  # environment steps to train for (in total, across resumes)
    seed: int
    out_dir: Path  # run directory: checkpoints, TensorBoard logs, schedgym_agent.json
    resume: bool = False  # continue from the last checkpoint in out_dir
    address: str | None = None  # Ray cluster address; None = embedded local Ray on 127.0.0.1
    progress: bool = True  # show a progress bar
    #: Reset seeds the training envs draw from (training/seeds.py: "1000-" or "3,4,5"); None = any seed.
    train_seeds: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
