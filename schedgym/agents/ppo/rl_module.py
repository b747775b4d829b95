"""An action-masking torch RLModule for PPO on RLlib's new API stack.

The env is wrapped with :class:`~schedgym.envs.core.ActionMaskObservation`, so each observation is a
Dict ``{"observations": flat obs, "action_mask": 0/1 per action}``. The module has two MLPs over the
flat observation, ``pi`` (actor, logits) and ``vf`` (critic), like SB3's default ``MlpPolicy`` with
separate networks; illegal actions get a logit of :data:`MASKED_LOGIT`, so PPO never samples them and
their probability (and gradient) is zero. ``pi`` is a :func:`~schedgym.agents.ppo.policy.build_mlp`
network, which is what lets the trained actor be exported as a tensors-only state dict.

``model_config`` keys: ``hidden_sizes`` (list of ints, default ``[64, 64]``) and ``activation``
(``"tanh"`` or ``"relu"``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis.value_function_api import ValueFunctionAPI
from ray.rllib.core.rl_module.torch import TorchRLModule

from schedgym.agents.ppo.policy import build_mlp, flat_obs_dim

__all__ = ["MaskedMLPTorchRLModule", "MASKED_LOGIT"]

#: Logit of an illegal action. Finite (not -inf) so softmax, entropy and the PPO ratio stay NaN-free;
#: replaced (not added), so it cannot overflow; exp(-1e9 - max logit) is exactly 0 in float32.
MASKED_LOGIT = -1.0e9


class MaskedMLPTorchRLModule(TorchRLModule, ValueFunctionAPI):
    """PPO actor-critic over ``{"observations", "action_mask"}`` Dict observations (masking in the logits)."""

    def setup(self) -> None:
        space = self.observation_space
        if not (isinstance(space, gym.spaces.Dict) and {"observations", "action_mask"} <= set(space.spaces)):
            raise ValueError(
                "MaskedMLPTorchRLModule needs a Dict observation space with keys 'observations' and "
                f"'action_mask' (wrap the env with ActionMaskObservation), got {space}"
            )
        if not isinstance(self.action_space, gym.spaces.Discrete):
            raise ValueError(f"MaskedMLPTorchRLModule needs a Discrete action space, got {self.action_space}")
        config = dict(self.model_config or {})
        hidden_sizes = list(config.get("hidden_sizes", [64, 64]))
        activation = str(config.get("activation", "tanh"))
        obs_dim = flat_obs_dim(space)
        n_actions = int(self.action_space.n)
        self.pi = build_mlp(obs_dim, hidden_sizes, n_actions, activation)
        self.vf = build_mlp(obs_dim, hidden_sizes, 1, activation)

    @staticmethod
    def _flat_obs(batch: dict[str, Any]) -> torch.Tensor:
        obs = batch[Columns.OBS]["observations"]
        return obs.reshape(obs.shape[0], -1).float()

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        logits = self.pi(self._flat_obs(batch))
        legal = batch[Columns.OBS]["action_mask"] > 0.5
        # An all-illegal row (never produced by a SchedEnv) keeps its raw logits rather than NaNs.
        legal = legal | ~legal.any(dim=-1, keepdim=True)
        return {Columns.ACTION_DIST_INPUTS: logits.masked_fill(~legal, MASKED_LOGIT)}

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        return self.vf(self._flat_obs(batch)).squeeze(-1)
