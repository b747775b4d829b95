"""The greedy policy of a trained PPO agent, whichever backend trained it.

Both backends export the actor network in one format: an MLP ``obs -> logits`` stored as a torch
``state_dict`` (tensors only, read with ``torch.load(weights_only=True)``) in ``policy.pt`` and its
architecture in ``schedgym_agent.json["policy_arch"]``. Loading therefore never unpickles code, and a
policy trained with RLlib or SB3 acts the same way: argmax of the logits over the legal actions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

__all__ = ["ACTIVATIONS", "build_mlp", "policy_arch", "MaskedMLPPolicy", "load_policy", "check_ppo_config"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}


def check_ppo_config(
    config: dict[str, Any],
    defaults: dict[str, Any],
    label: str,
    positive_ints: tuple[str, ...],
    non_negative_ints: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``defaults`` updated by ``config``; ``ValueError`` naming the key for an unknown or bad value.

    Shared by both PPO backends (``label`` is ``"ppo/rllib"`` or ``"ppo/sb3"``).
    """
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {unknown} for {label}; valid: {sorted(defaults)}")
    cfg = {**defaults, **config}
    for keys, low in ((positive_ints, 1), (non_negative_ints, 0)):
        for key in keys:
            if isinstance(cfg[key], bool) or not isinstance(cfg[key], int) or cfg[key] < low:
                raise ValueError(f"{label} hyperparameter {key} must be an integer >= {low}, got {cfg[key]!r}")
    if not isinstance(cfg["reward_scale"], (int, float)) or not cfg["reward_scale"] > 0:
        raise ValueError(f"{label} hyperparameter reward_scale must be a number > 0, got {cfg['reward_scale']!r}")
    if cfg["activation"] not in ACTIVATIONS:
        raise ValueError(f"{label} hyperparameter activation must be one of {sorted(ACTIVATIONS)}, got {cfg['activation']!r}")
    return cfg


def build_mlp(in_dim: int, hidden_sizes: list[int], out_dim: int, activation: str = "tanh") -> nn.Sequential:
    """``Linear, act, ..., Linear``: the layer indices match SB3's ``policy_net`` (0, 2, ...) plus one head."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    last = in_dim
    for size in hidden_sizes:
        if int(size) < 1:
            raise ValueError(f"hidden layer sizes must be >= 1, got {hidden_sizes!r}")
        layers += [nn.Linear(last, int(size)), ACTIVATIONS[activation]()]
        last = int(size)
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


def policy_arch(obs_dim: int, n_actions: int, hidden_sizes: list[int], activation: str) -> dict[str, Any]:
    return {
        "kind": "masked_mlp",
        "obs_dim": int(obs_dim),
        "n_actions": int(n_actions),
        "hidden_sizes": [int(h) for h in hidden_sizes],
        "activation": activation,
    }


def flat_obs_dim(space: gym.Space) -> int:
    if isinstance(space, gym.spaces.Dict) and "observations" in space.spaces:
        space = space["observations"]
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"PPO agents need a Box observation space, got {space}")
    return int(np.prod(space.shape))


class MaskedMLPPolicy:
    """Acts greedily: ``argmax`` of the actor's logits among the actions ``info["action_mask"]`` allows."""

    def __init__(self, net: nn.Sequential, arch: dict[str, Any], name: str = "ppo") -> None:
        self.name = name
        self.net = net.eval()
        self.arch = arch

    def reset(self, env: gym.Env) -> None:
        pass

    def logits(self, obs: Any) -> np.ndarray:
        if isinstance(obs, dict):
            obs = obs["observations"]
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(1, -1))
        if x.shape[1] != self.arch["obs_dim"]:
            raise ValueError(f"observation has {x.shape[1]} values, the policy expects {self.arch['obs_dim']}")
        with torch.no_grad():
            return self.net(x)[0].numpy()

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        logits = self.logits(obs).astype(np.float64)
        mask = info.get("action_mask")
        if mask is None and isinstance(obs, dict):
            mask = obs.get("action_mask")
        if mask is not None:
            legal = np.asarray(mask).astype(bool)
            if legal.any():
                logits = np.where(legal, logits, -np.inf)
        # np.argmax takes the first maximum: ties break deterministically towards low action ids.
        return int(np.argmax(logits))


def arch_from_weights(state: dict[str, torch.Tensor], where: Any) -> tuple[int, list[int], int]:
    """``(obs_dim, hidden_sizes, n_actions)`` of the ``Linear, act, ..., Linear`` MLP the tensors describe."""
    linear = sorted({int(k.split(".", 1)[0]) for k in state if k.split(".", 1)[0].isdigit()})
    expected = {f"{i}.{p}" for i in linear for p in ("weight", "bias")}
    if not linear or set(state) != expected or linear != list(range(0, 2 * len(linear), 2)):
        raise ValueError(f"{where}: the tensors are not an MLP policy (layers 0.weight, 0.bias, 2.weight, ...)")
    dims = []
    for i in linear:
        w, b = state[f"{i}.weight"], state[f"{i}.bias"]
        if w.ndim != 2 or b.shape != (w.shape[0],) or (dims and w.shape[1] != dims[-1]):
            raise ValueError(f"{where}: layer {i} has weight {tuple(w.shape)} and bias {tuple(b.shape)}, not a chained MLP")
        if not dims:
            dims.append(int(w.shape[1]))
        dims.append(int(w.shape[0]))
    return dims[0], dims[1:-1], dims[-1]


def load_policy(path: str | Path, meta: dict[str, Any], **kwargs: Any) -> MaskedMLPPolicy:
    """The greedy policy saved in ``path`` (a run directory or one of its ``checkpoints/step_<N>``).

    The network is built from the stored weight shapes; metadata that disagrees with them is refused
    before anything is built (so ``hidden_sizes: [1e7, 1e7]`` cannot make it allocate).
    """
    from schedgym.agents import AGENT_META_FILE, load_policy_weights

    if kwargs:
        raise ValueError(f"PPO policies take no kwargs, got {sorted(kwargs)}")
    path = Path(path)
    meta_file = path / AGENT_META_FILE
    arch = meta.get("policy_arch")
    if not isinstance(arch, dict) or arch.get("kind") != "masked_mlp":
        raise ValueError(
            f"{meta_file}: no 'policy_arch' of kind 'masked_mlp' "
            "(was training interrupted before the first checkpoint?)"
        )
    if arch.get("activation") not in ACTIVATIONS:
        raise ValueError(f"{meta_file}: policy_arch.activation must be one of {sorted(ACTIVATIONS)}, got {str(arch.get('activation'))[:40]!r}")
    state = load_policy_weights(path, meta)
    obs_dim, hidden, n_actions = arch_from_weights(state, path / "policy.pt")
    stored = {"obs_dim": obs_dim, "hidden_sizes": hidden, "n_actions": n_actions}
    for key, value in stored.items():
        if arch.get(key) != value:
            raise ValueError(
                f"{meta_file}: policy_arch.{key} is {str(arch.get(key))[:80]}, but policy.pt holds a network with {key} {value}"
            )
    net = build_mlp(obs_dim, hidden, n_actions, arch["activation"])
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"{path / 'policy.pt'}: {str(exc).splitlines()[0]}") from None
    backend = meta.get("backend") or "?"
    return MaskedMLPPolicy(net, {**arch, **stored}, name=f"ppo-{backend}:{path.name}")
