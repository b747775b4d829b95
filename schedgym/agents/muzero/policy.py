"""Acting with a trained MuZero agent: a :class:`~schedgym.baselines.Policy` that searches every move.

``load_policy(DIR, meta, num_simulations=N)`` rebuilds the network from ``schedgym_agent.json`` and
loads ``policy.pt`` with ``torch.load(weights_only=True)`` (tensors only, no code). Acting is a
deterministic Gumbel MuZero search (no Gumbel noise) with the trained network; in ``simulator`` mode the
search steps a scratch copy of the env it is handed in ``reset``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from schedgym.agents.muzero.config import MuZeroConfig
from schedgym.agents.muzero.models import make_model
from schedgym.agents.muzero.networks import MuZeroNetwork, NetworkConfig
from schedgym.agents.muzero.search import gumbel_muzero_search

__all__ = ["MuZeroPolicy", "load_policy"]


class MuZeroPolicy:
    """Search with a trained network each step (Policy protocol)."""

    def __init__(self, net: MuZeroNetwork, cfg: MuZeroConfig, num_simulations: int | None = None,
                 seed: int = 0, name: str = "muzero") -> None:
        self.net = net.eval()
        self.cfg = cfg
        self.search_cfg = cfg.search(acting=True, num_simulations=num_simulations)
        self.name = name
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.env: Any = None
        self.scratch: Any = None

    def reset(self, env: Any) -> None:
        self.env = getattr(env, "unwrapped", env)
        self.rng = np.random.default_rng(self.seed)
        if self.cfg.model == "simulator":
            self.scratch = copy.deepcopy(self.env)

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        obs = np.asarray(obs, np.float32).reshape(1, -1)
        legal = np.asarray(info["action_mask"], bool).reshape(1, -1)
        if self.cfg.model == "simulator":
            if self.env is None:
                raise RuntimeError("MuZeroPolicy in simulator mode needs reset(env) before act()")
            model = make_model("simulator", self.net, obs, legal, [self.scratch], [self.env.get_state()])
        else:
            model = make_model("learned", self.net, obs, legal)
        # Tiny MLPs at batch 1: extra intra-op threads only contend (10x slower on a loaded 2-core box).
        threads = torch.get_num_threads()
        torch.set_num_threads(self.cfg.torch_threads)
        try:
            with torch.no_grad():
                out = gumbel_muzero_search(model, self.search_cfg, self.rng)
        finally:
            torch.set_num_threads(threads)
        return int(out.action[0])


def load_policy(path: str | Path, meta: dict[str, Any] | None = None, num_simulations: int | None = None,
                **kwargs: Any) -> MuZeroPolicy:
    """The policy saved in run directory (or checkpoint directory) ``path``.

    ``num_simulations`` overrides the config's ``eval_simulations``; ``seed`` seeds tie-breaking.
    """
    path = Path(path)
    if meta is None:
        from schedgym.agents import AGENT_META_FILE

        meta = json.loads((path / AGENT_META_FILE).read_text())
    unknown = sorted(set(kwargs) - {"seed"})
    if unknown:
        raise ValueError(f"unknown muzero policy kwarg(s) {unknown}; valid: ['num_simulations', 'seed']")
    if "network" not in meta:
        raise ValueError(f"{path}: schedgym_agent.json has no 'network' section (not a muzero run?)")
    weights = path / "policy.pt"
    if not weights.is_file():
        raise FileNotFoundError(f"{path}: no policy.pt (no checkpoint written yet?)")
    net_meta = dict(meta["network"])
    net_meta["layers"] = tuple(net_meta["layers"])
    net = MuZeroNetwork(NetworkConfig(**net_meta))
    net.load_state_dict(torch.load(weights, weights_only=True))
    cfg = MuZeroConfig.from_dict(dict(meta["config"]))
    if num_simulations is not None and int(num_simulations) < 1:
        raise ValueError(f"num_simulations must be >= 1, got {num_simulations}")
    return MuZeroPolicy(net, cfg, num_simulations=num_simulations, seed=int(kwargs.get("seed", 0)),
                        name=f"muzero:{path.name}")
