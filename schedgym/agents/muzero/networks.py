"""MuZero networks: representation h, dynamics g and prediction f as MLPs with LayerNorm.

Value and reward heads predict a categorical distribution over a fixed support in the transformed
space of the MuZero value transform (Schrittwieser et al. 2020, Appendix F; Pohlen et al. 2018)::

    h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x,   eps = 0.001

Scalars are encoded as a two-hot vector on the support and decoded as the expectation followed by
``h^-1``. Hidden states are min-max scaled to [0, 1] as in MuZero (Appendix G).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MuZeroNetwork", "NetworkConfig", "ValueSupport", "h_inverse", "h_transform"]

#: eps of the MuZero value transform (MuZero Appendix F).
TRANSFORM_EPS = 0.001


def h_transform(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * (torch.sqrt(torch.abs(x) + 1.0) - 1.0) + TRANSFORM_EPS * x


def h_inverse(y: torch.Tensor) -> torch.Tensor:
    """Exact inverse of :func:`h_transform` (closed form from Pohlen et al. 2018, Prop. A.2)."""
    eps = TRANSFORM_EPS
    return torch.sign(y) * (
        ((torch.sqrt(1.0 + 4.0 * eps * (torch.abs(y) + 1.0 + eps)) - 1.0) / (2.0 * eps)) ** 2 - 1.0
    )


class ValueSupport:
    """An evenly spaced support ``[lo, hi]`` with ``bins`` atoms in the transformed space."""

    def __init__(self, lo: float, hi: float, bins: int) -> None:
        if bins < 2 or not hi > lo:
            raise ValueError(f"value support needs bins >= 2 and hi > lo, got lo={lo}, hi={hi}, bins={bins}")
        self.lo, self.hi, self.bins = float(lo), float(hi), int(bins)
        self.atoms = torch.linspace(self.lo, self.hi, self.bins)

    def scalar_to_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Two-hot encoding of ``h(x)`` (shape ``x.shape + (bins,)``)."""
        y = h_transform(x).clamp(self.lo, self.hi)
        pos = (y - self.lo) / (self.hi - self.lo) * (self.bins - 1)
        low = pos.floor().long().clamp(0, self.bins - 1)
        high = (low + 1).clamp(max=self.bins - 1)
        frac = pos - low.float()
        probs = torch.zeros(*x.shape, self.bins, dtype=torch.float32, device=x.device)
        probs.scatter_add_(-1, low.unsqueeze(-1), (1.0 - frac).unsqueeze(-1))
        probs.scatter_add_(-1, high.unsqueeze(-1), frac.unsqueeze(-1))
        return probs

    def logits_to_scalar(self, logits: torch.Tensor) -> torch.Tensor:
        """Expectation on the support, then ``h^-1``, in float64: ``h^-1`` divides by ``2 eps`` (0.002),
        which in float32 turns rounding of the expectation into errors of ~1e-4 in the value."""
        probs = torch.softmax(logits.double(), dim=-1)
        y = (probs * self.atoms.to(logits.device, torch.float64)).sum(-1)
        return h_inverse(y).to(logits.dtype)


@dataclass(frozen=True)
class NetworkConfig:
    obs_dim: int
    num_actions: int
    hidden_dim: int = 64  # size of the hidden (latent) state
    layers: tuple[int, ...] = (128, 128)  # widths of every MLP's hidden layers
    support_lo: float = -2.0  # value/reward support in h-space: covers |x| up to ~8
    support_hi: float = 2.0
    support_bins: int = 41


def _mlp(in_dim: int, widths: tuple[int, ...], out_dim: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    d = in_dim
    for w in widths:
        mods += [nn.Linear(d, w), nn.LayerNorm(w), nn.ReLU()]
        d = w
    mods.append(nn.Linear(d, out_dim))
    return nn.Sequential(*mods)


def _scale_hidden(s: torch.Tensor) -> torch.Tensor:
    lo = s.min(dim=-1, keepdim=True).values
    hi = s.max(dim=-1, keepdim=True).values
    return (s - lo) / (hi - lo).clamp_min(1e-5)


class MuZeroNetwork(nn.Module):
    """h: obs -> s;  g: (s, a) -> (s', r);  f: s -> (policy logits, value)."""

    def __init__(self, cfg: NetworkConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.support = ValueSupport(cfg.support_lo, cfg.support_hi, cfg.support_bins)
        self.representation = _mlp(cfg.obs_dim, cfg.layers, cfg.hidden_dim)
        self.dynamics = _mlp(cfg.hidden_dim + cfg.num_actions, cfg.layers, cfg.hidden_dim)
        self.reward_head = _mlp(cfg.hidden_dim, cfg.layers[:1], cfg.support_bins)
        self.prediction = _mlp(cfg.hidden_dim, cfg.layers, cfg.num_actions + cfg.support_bins)

    def represent(self, obs: torch.Tensor) -> torch.Tensor:
        return _scale_hidden(self.representation(obs))

    def dynamics_step(self, hidden: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Next hidden state and reward logits."""
        onehot = F.one_hot(action.long(), self.cfg.num_actions).to(hidden.dtype)
        nxt = _scale_hidden(self.dynamics(torch.cat([hidden, onehot], dim=-1)))
        return nxt, self.reward_head(nxt)

    def predict(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Policy logits and value logits."""
        out = self.prediction(hidden)
        return out[..., : self.cfg.num_actions], out[..., self.cfg.num_actions :]
