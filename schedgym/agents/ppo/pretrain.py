"""Behaviour cloning before PPO: the actor first imitates a shipped baseline, then PPO continues from there.

Why: PPO from a random initial policy did not find the structure of AgentScheduling-v1 in 2M steps (a
random admission/preemption policy's turnaround is 15x FIFO's, and the reward of one decision says little
about it), while the baselines encode what the papers know. Starting the actor from a baseline's decisions
(Ross and Bagnell's behaviour cloning; AlphaStar and the DQfD family start the same way) turns PPO into a
fine-tuner. The demonstrations come from the run's own env kwargs and train-split seeds, so the agent never
sees a test instance; the imitated baseline is recorded with the run (``schedgym_agent.json``).

Config keys (``ppo_sb3.yaml``): ``pretrain_policy`` (a baseline name, or null for none),
``pretrain_episodes``, ``pretrain_epochs``, ``pretrain_lr``, ``pretrain_batch_size``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["Demonstrations", "collect_demonstrations", "clone_into_actor"]


@dataclass
class Demonstrations:
    """Every decision of the baseline's episodes: observations, legal-action masks, actions, reset seeds."""

    obs: np.ndarray  # (n, obs_dim) float32
    masks: np.ndarray  # (n, n_actions) bool
    actions: np.ndarray  # (n,) int64
    seeds: list[int]


def collect_demonstrations(env_id: str, env_kwargs: dict[str, Any], policy_name: str, episodes: int, seed: int,
                           train_seeds: Any = None) -> Demonstrations:
    """Play ``episodes`` episodes of baseline ``policy_name``; episode ``k`` resets with a seed drawn from
    ``train_seeds`` (a :class:`~schedgym.training.seeds.TrainSeeds` or its text) by a generator seeded by
    ``seed``, or ``seed + k`` without a split."""
    from schedgym.baselines import env_kwargs_for, make_policy
    from schedgym.evaluation import make_env
    from schedgym.training.seeds import TrainSeeds

    if episodes < 1:
        raise ValueError(f"pretrain_episodes must be >= 1, got {episodes}")
    policy = make_policy(policy_name, env_id)
    env = make_env(env_id, env_kwargs_for(policy, env_kwargs))
    if isinstance(train_seeds, str):
        train_seeds = TrainSeeds.parse(train_seeds)
    draws = np.random.default_rng(seed)
    obs_rows: list[np.ndarray] = []
    mask_rows: list[np.ndarray] = []
    actions: list[int] = []
    seeds: list[int] = []
    try:
        for k in range(episodes):
            s = train_seeds.draw(draws) if train_seeds is not None else seed + k
            seeds.append(int(s))
            obs, info = env.reset(seed=int(s))
            policy.reset(env.unwrapped)
            done = False
            while not done:
                a = int(policy.act(obs, info))
                obs_rows.append(np.asarray(obs, dtype=np.float32).reshape(-1))
                mask_rows.append(np.asarray(info["action_mask"], dtype=bool))
                actions.append(a)
                obs, _, terminated, truncated, info = env.step(a)
                done = terminated or truncated
    finally:
        env.close()
    return Demonstrations(np.stack(obs_rows), np.stack(mask_rows), np.asarray(actions, dtype=np.int64), seeds)


def clone_into_actor(policy: Any, demos: Demonstrations, epochs: int, lr: float, batch_size: int,
                     seed: int) -> list[float]:
    """Fit a MaskablePPO policy's actor (features, ``policy_net``, ``action_net``) to the demonstrations by
    cross-entropy over the legal actions; returns the mean loss of each epoch. The critic is left alone."""
    if epochs < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"pretrain needs epochs >= 1, batch_size >= 1 and lr > 0; got {epochs}, {batch_size}, {lr}")
    device = policy.device
    obs = torch.as_tensor(demos.obs, device=device)
    masks = torch.as_tensor(demos.masks, device=device)
    actions = torch.as_tensor(demos.actions, device=device)
    params = [*policy.mlp_extractor.policy_net.parameters(), *policy.action_net.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator().manual_seed(int(seed))
    losses = []
    policy.set_training_mode(True)
    for _ in range(epochs):
        order = torch.randperm(len(actions), generator=generator)
        total = 0.0
        for i in range(0, len(actions), batch_size):
            idx = order[i : i + batch_size]
            features = policy.extract_features(obs[idx], policy.pi_features_extractor)
            logits = policy.action_net(policy.mlp_extractor.forward_actor(features))
            logits = logits.masked_fill(~masks[idx], -1e9)
            loss = torch.nn.functional.cross_entropy(logits, actions[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(actions))
    policy.set_training_mode(False)
    return losses
