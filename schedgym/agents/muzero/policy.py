"""Acting with a trained MuZero agent: a :class:`~schedgym.baselines.Policy` that searches every move.

``load_policy(DIR, meta, num_simulations=N)`` rebuilds the network from ``schedgym_agent.json`` and
loads ``policy.pt`` with ``torch.load(weights_only=True)`` (tensors only, no code). Acting is a
deterministic Gumbel MuZero search (no Gumbel noise) with the trained network; in ``simulator`` mode the
search steps a scratch copy of the env it is handed in ``reset``.
"""

from __future__ import annotations

import copy
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
            model = make_model("simulator", self.net, obs, legal, [self.scratch], [self.env.get_state()],
                               self.cfg.leaf_value)
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


#: Most search simulations per move a checkpoint's config may ask for when acting.
MAX_EVAL_SIMULATIONS = 100_000


def network_from_weights(state: dict[str, torch.Tensor], meta_net: Any, where: Any) -> NetworkConfig:
    """The :class:`NetworkConfig` the stored tensors describe (sizes from their shapes, not from metadata)."""
    try:
        rep = sorted(int(k.split(".")[1]) for k in state if k.startswith("representation.") and k.endswith(".weight")
                     and state[k].ndim == 2)
        rep_w = [state[f"representation.{i}.weight"] for i in rep]
        obs_dim = int(rep_w[0].shape[1])
        layers = tuple(int(w.shape[0]) for w in rep_w[:-1])
        hidden_dim = int(rep_w[-1].shape[0])
        num_actions = int(state["dynamics.0.weight"].shape[1]) - hidden_dim
        reward = sorted(int(k.split(".")[1]) for k in state if k.startswith("reward_head.") and k.endswith(".weight")
                        and state[k].ndim == 2)
        support_bins = int(state[f"reward_head.{reward[-1]}.weight"].shape[0])
    except (KeyError, IndexError, ValueError):
        raise ValueError(f"{where}: the tensors are not a MuZero network (representation/dynamics/reward_head/prediction)") from None
    if not isinstance(meta_net, dict):
        raise ValueError(f"{where}: schedgym_agent.json 'network' must be a JSON object")
    lo, hi = meta_net.get("support_lo", -2.0), meta_net.get("support_hi", 2.0)
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x) for x in (lo, hi)) or not lo < hi:
        raise ValueError(f"{where}: network.support_lo/support_hi must be finite numbers with lo < hi")
    cfg = NetworkConfig(obs_dim, num_actions, hidden_dim, layers, float(lo), float(hi), support_bins)
    recorded = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in meta_net.items()}
    for key, value in (("obs_dim", obs_dim), ("num_actions", num_actions), ("hidden_dim", hidden_dim),
                       ("layers", list(layers)), ("support_bins", support_bins)):
        if key in recorded and recorded[key] != value:
            raise ValueError(
                f"schedgym_agent.json network.{key} is {str(recorded[key])[:80]}, but {where} holds a network with {key} {value}"
            )
    return cfg


def load_policy(path: str | Path, meta: dict[str, Any] | None = None, num_simulations: int | None = None,
                **kwargs: Any) -> MuZeroPolicy:
    """The policy saved in run directory (or checkpoint directory) ``path``.

    ``num_simulations`` overrides the config's ``eval_simulations``; ``seed`` seeds tie-breaking. The
    network is built from the stored weight shapes after ``policy.pt``'s sha256 is checked.
    """
    from schedgym.agents import AGENT_META_FILE, load_policy_weights, read_agent_meta

    path = Path(path)
    if meta is None:
        meta = read_agent_meta(path)
    unknown = sorted(set(kwargs) - {"seed"})
    if unknown:
        raise ValueError(f"unknown muzero policy kwarg(s) {unknown}; valid: ['num_simulations', 'seed']")
    if "network" not in meta:
        raise ValueError(f"{path / AGENT_META_FILE}: no 'network' section (not a muzero run?)")
    if num_simulations is not None and (isinstance(num_simulations, bool) or not isinstance(num_simulations, int)
                                        or not 1 <= num_simulations <= MAX_EVAL_SIMULATIONS):
        raise ValueError(f"num_simulations must be an integer in [1, {MAX_EVAL_SIMULATIONS}], got {num_simulations!r}")
    if not isinstance(meta.get("config"), dict):
        raise ValueError(f"{path / AGENT_META_FILE}: 'config' must be a JSON object")
    try:
        cfg = MuZeroConfig.from_dict(dict(meta["config"]))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path / AGENT_META_FILE}: config: {str(exc)[:300]}") from None
    if not 1 <= int(cfg.eval_simulations) <= MAX_EVAL_SIMULATIONS:
        raise ValueError(f"{path / AGENT_META_FILE}: config.eval_simulations must be in [1, {MAX_EVAL_SIMULATIONS}]")
    state = load_policy_weights(path, meta)
    net = MuZeroNetwork(network_from_weights(state, meta["network"], path / "policy.pt"))
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{path / 'policy.pt'}: {str(exc).splitlines()[0]}") from None
    return MuZeroPolicy(net, cfg, num_simulations=num_simulations, seed=int(kwargs.get("seed", 0)),
                        name=f"muzero:{path.name}")
