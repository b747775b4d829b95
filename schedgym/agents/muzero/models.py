"""The two model modes of the search behind one interface (:class:`~.search.SearchModel`).

- :class:`LearnedModel` — MuZero: the representation network encodes the B root observations, the
  learned dynamics network steps hidden states (stored as a tensor ``[B, num_nodes, hidden]``) and the
  prediction network gives priors and values. No legal-action masks below the root.
- :class:`SimulatorModel` — AlphaZero-style: the env's own ``get_state``/``set_state`` is the dynamics
  (exact rewards, terminals and inner masks), the prediction network (on the env's observation)
  gives priors and values. For deterministic envs such as MemoryMapping.

Both evaluate the B leaves of a simulation with ONE batched network call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from schedgym.agents.muzero.networks import MuZeroNetwork
from schedgym.agents.muzero.search import ModelOutput, SearchConfig, Tree

__all__ = ["MODEL_MODES", "LearnedModel", "SimulatorModel", "make_model"]

MODEL_MODES = ("learned", "simulator")


class LearnedModel:
    """MuZero model: search in the learned latent space.

    With ``fused=True`` (the default) the search runs in one numba call with the network's weights
    copied into it (:mod:`.fused`); ``fused=False`` keeps the per-simulation torch calls below, which the
    tests use as the reference the fused search must equal.
    """

    def __init__(self, net: MuZeroNetwork, obs: np.ndarray, root_legal: np.ndarray, fused: bool = True) -> None:
        self.net = net
        self.obs = torch.as_tensor(np.asarray(obs, np.float32))
        self.root_legal = np.asarray(root_legal, bool)
        self.num_actions = net.cfg.num_actions
        self.hidden: torch.Tensor | None = None
        self.fused = bool(fused)

    def fused_search(
        self, config: SearchConfig, gumbel: np.ndarray, table: np.ndarray, num_considered: np.ndarray
    ) -> Tree:
        from schedgym.agents.muzero.fused import fused_learned_search

        return fused_learned_search(self.net, self.obs.numpy(), self.root_legal, config, gumbel, table,
                                    num_considered)

    @torch.no_grad()
    def root(self, num_nodes: int) -> ModelOutput:
        batch = self.obs.shape[0]
        s0 = self.net.represent(self.obs)
        self.hidden = torch.zeros(batch, num_nodes, s0.shape[-1])
        self.hidden[:, 0] = s0
        logits, value_logits = self.net.predict(s0)
        return ModelOutput(
            prior_logits=logits.numpy(),
            value=self.net.support.logits_to_scalar(value_logits).numpy(),
            reward=np.zeros(batch, np.float32),
            discount=np.ones(batch, np.float32),
            terminal=np.zeros(batch, bool),
            legal=self.root_legal,
        )

    @torch.no_grad()
    def expand(self, parent: np.ndarray, action: np.ndarray, node: np.ndarray, active: np.ndarray) -> ModelOutput:
        assert self.hidden is not None, "root() first"
        batch = parent.shape[0]
        rows = torch.arange(batch)
        s = self.hidden[rows, torch.as_tensor(parent)]
        nxt, reward_logits = self.net.dynamics_step(s, torch.as_tensor(action))
        self.hidden[rows, torch.as_tensor(node)] = nxt
        logits, value_logits = self.net.predict(nxt)
        support = self.net.support
        return ModelOutput(
            prior_logits=logits.numpy(),
            value=support.logits_to_scalar(value_logits).numpy(),
            reward=support.logits_to_scalar(reward_logits).numpy(),
            discount=np.ones(batch, np.float32),
            terminal=np.zeros(batch, bool),
            legal=np.ones((batch, self.num_actions), bool),
        )


class SimulatorModel:
    """The true simulator as dynamics: ``envs[b]`` is a scratch copy of tree b's env (unwrapped).

    ``leaf_value="rollout"`` values every node (root included) by ``env.rollout_return()`` instead of the
    value head: the network then only supplies the prior.
    """

    def __init__(
        self,
        net: MuZeroNetwork,
        envs: Sequence[Any],
        root_states: Sequence[dict[str, Any]],
        obs: np.ndarray,
        root_legal: np.ndarray,
        leaf_value: str = "network",
    ) -> None:
        if leaf_value not in ("network", "rollout"):
            raise ValueError(f"leaf_value must be 'network' or 'rollout', got {leaf_value!r}")
        if not (len(envs) == len(root_states) == len(obs) == len(root_legal)):
            raise ValueError("SimulatorModel: envs, root_states, obs and root_legal need one row per tree")
        self.net = net
        self.envs = list(envs)
        self.root_states = list(root_states)
        self.obs = np.asarray(obs, np.float32)
        self.root_legal = np.asarray(root_legal, bool)
        self.leaf_value = leaf_value
        self.num_actions = net.cfg.num_actions
        self.states: list[list[Any]] = []

    @torch.no_grad()
    def _predict(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        logits, value_logits = self.net.predict(self.net.represent(torch.as_tensor(obs)))
        return logits.numpy(), self.net.support.logits_to_scalar(value_logits).numpy()

    def root(self, num_nodes: int) -> ModelOutput:
        batch = len(self.envs)
        self.states = [[None] * num_nodes for _ in range(batch)]
        for b in range(batch):
            self.states[b][0] = self.root_states[b]
        logits, value = self._predict(self.obs)
        for b in range(batch):
            # Checked once per move: the root snapshot must be of this scratch env's class, version and
            # kwargs. The search's own snapshots below are restored unchecked into the env that took them.
            self.envs[b].set_state(self.root_states[b])
            if self.leaf_value == "rollout":
                value[b] = self.envs[b].rollout_return()
        return ModelOutput(
            prior_logits=logits,
            value=value,
            reward=np.zeros(batch, np.float32),
            discount=np.ones(batch, np.float32),
            terminal=np.zeros(batch, bool),
            legal=self.root_legal,
        )

    def expand(self, parent: np.ndarray, action: np.ndarray, node: np.ndarray, active: np.ndarray) -> ModelOutput:
        batch = len(self.envs)
        obs = np.zeros_like(self.obs)
        reward = np.zeros(batch, np.float32)
        terminal = np.zeros(batch, bool)
        legal = np.ones((batch, self.num_actions), bool)
        rollout = np.zeros(batch, np.float32)
        for b in np.flatnonzero(active):
            env = self.envs[b]
            env.restore_unchecked(self.states[b][parent[b]])
            o, r, term, trunc, info = env.step(int(action[b]))
            self.states[b][node[b]] = env.snapshot_unchecked()
            if self.leaf_value == "rollout" and not (term or trunc):
                rollout[b] = env.rollout_return()
            obs[b] = o
            reward[b] = r
            terminal[b] = term or trunc
            legal[b] = np.asarray(info["action_mask"], bool)
            if not legal[b].any():
                legal[b, :] = True
        logits, value = self._predict(obs)  # one batched call for all B leaves
        if self.leaf_value == "rollout":
            value = rollout
        value = np.where(terminal, 0.0, value).astype(np.float32)
        return ModelOutput(
            prior_logits=logits,
            value=value,
            reward=reward,
            discount=np.where(terminal, 0.0, 1.0).astype(np.float32),
            terminal=terminal,
            legal=legal,
        )


def make_model(
    mode: str,
    net: MuZeroNetwork,
    obs: np.ndarray,
    legal: np.ndarray,
    scratch_envs: Sequence[Any] | None = None,
    root_states: Sequence[dict[str, Any]] | None = None,
    leaf_value: str = "network",
) -> LearnedModel | SimulatorModel:
    """The search model of ``mode`` for B roots (``scratch_envs``/``root_states`` for the simulator)."""
    if mode == "learned":
        return LearnedModel(net, obs, legal)
    if mode == "simulator":
        if scratch_envs is None or root_states is None:
            raise ValueError("model 'simulator' needs scratch_envs and root_states (env get_state snapshots)")
        return SimulatorModel(net, scratch_envs, root_states, obs, legal, leaf_value)
    raise ValueError(f"model must be one of {MODEL_MODES}, got {mode!r}")
