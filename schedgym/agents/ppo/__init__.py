"""PPO agents: RLlib (new API stack, action-masking RLModule) or sb3-contrib MaskablePPO.

``train(spec)`` dispatches on ``spec.backend``; ``load_policy(path, meta)`` loads the greedy policy of
either backend from the tensors-only ``policy.pt`` they both export (see :mod:`.policy`).
"""

from __future__ import annotations

from pathlib import Path

from schedgym.agents.ppo.policy import MaskedMLPPolicy, load_policy
from schedgym.training.common import TrainSpec

__all__ = ["train", "load_policy", "MaskedMLPPolicy", "BACKENDS"]

BACKENDS = ("rllib", "sb3")


def train(spec: TrainSpec) -> Path:
    """Train PPO with ``spec.backend`` ("rllib" or "sb3"); return the run directory."""
    if spec.backend == "sb3":
        from schedgym.agents.ppo.sb3 import train_sb3

        return train_sb3(spec)
    if spec.backend == "rllib":
        from schedgym.agents.ppo.rllib import train_rllib

        return train_rllib(spec)
    raise ValueError(f"--backend must be one of {list(BACKENDS)} for ppo, got {spec.backend!r}")
