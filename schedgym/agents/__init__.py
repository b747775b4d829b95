"""Trained agents (PPO with RLlib or SB3, MuZero) and loading them as policies.

A checkpoint directory written by ``schedgym train`` holds ``schedgym_agent.json`` with at least
``{"algo": "ppo"|"muzero", "backend": ..., "env_id": ...}``; :func:`load_agent_policy` reads it and
hands the directory to ``schedgym.agents.<algo>.load_policy``. Loading never executes code from the
checkpoint (no pickle: ``torch.load(weights_only=True)`` and JSON/YAML only).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

__all__ = ["load_agent_policy", "AGENT_META_FILE"]

AGENT_META_FILE = "schedgym_agent.json"
_ALGOS = ("ppo", "muzero")


def load_agent_policy(path: str | Path, env_id: str | None = None, **kwargs: Any) -> Any:
    """A :class:`~schedgym.baselines.Policy` that acts greedily with the agent saved in ``path``."""
    path = Path(path)
    meta_file = path / AGENT_META_FILE
    if not meta_file.is_file():
        raise ValueError(f"{path} is not a schedgym checkpoint directory: {AGENT_META_FILE} is missing")
    meta = json.loads(meta_file.read_text())
    algo = meta.get("algo")
    if algo not in _ALGOS:
        raise ValueError(f"{meta_file}: 'algo' must be one of {list(_ALGOS)}, got {algo!r}")
    if env_id is not None and meta.get("env_id") not in (None, env_id) and not str(meta.get("env_id")).endswith(env_id):
        raise ValueError(f"{path} was trained on {meta.get('env_id')!r}, not {env_id!r}")
    module = importlib.import_module(f"schedgym.agents.{algo}")
    return module.load_policy(path, meta=meta, **kwargs)
