"""The one learning-curve tag every training algorithm writes, so the leaderboard plots them alike.

``episode/return``: one TensorBoard scalar per *finished training episode*, its undiscounted return in the
env's own units (before any ``reward_scale``), at the env step count of the run when it finished. PPO on
SB3 writes it from the Monitor's episode record at the exact step; RLlib PPO from its env runners' episode
returns at the env step count of the iteration they finished in; MuZero from its self-play actors' episodes
when the driver collects them. Nothing is smoothed here: the page draws the points and a running mean.

``episode/<metric>``: the episode's numeric ``info["metrics"]`` at the same step (cost, SLA attainment ...).

Older runs logged PPO's smoothed ``rollout/ep_rew_mean`` instead; :func:`read_episode_returns` reads only
this tag, so such runs are listed on the page as having no curve rather than plotted differently.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EPISODE_RETURN_TAG", "EPISODE_DIR", "log_episode", "read_episode_returns"]

EPISODE_RETURN_TAG = "episode/return"
#: Sub-directory of a run's ``tb/`` that the PPO backends write the tag to (MuZero's driver writes to ``tb/``).
EPISODE_DIR = "episodes"


def log_episode(writer: Any, env_step: int, episode_return: float, metrics: Mapping[str, Any] | None = None) -> None:
    """Write one finished episode: ``episode/return`` and ``episode/<metric>`` at ``env_step``.

    ``writer``: a ``torch.utils.tensorboard.SummaryWriter``. Non-finite and non-numeric values are skipped.
    """
    value = float(episode_return)
    if math.isfinite(value):
        writer.add_scalar(EPISODE_RETURN_TAG, value, int(env_step))
    for key, v in (metrics or {}).items():
        if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) and math.isfinite(float(v)):
            writer.add_scalar(f"episode/{key}", float(v), int(env_step))


def read_episode_returns(run_dir: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(env steps, returns) of every ``episode/return`` point under ``run_dir``, sorted by step; None if none."""
    events = sorted(Path(run_dir).rglob("events.out.tfevents*"))
    if not events:
        return None
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps: list[float] = []
    values: list[float] = []
    for ev_dir in sorted({e.parent for e in events}):
        acc = EventAccumulator(str(ev_dir), size_guidance={"scalars": 0})
        acc.Reload()
        if EPISODE_RETURN_TAG in acc.Tags().get("scalars", []):
            for p in acc.Scalars(EPISODE_RETURN_TAG):
                steps.append(float(p.step))
                values.append(float(p.value))
    if not steps:
        return None
    x, y = np.asarray(steps), np.asarray(values)
    order = np.argsort(x, kind="stable")
    return x[order], y[order]
