"""Unit tests of the batched Gumbel MuZero search on hand-made trees and a toy deterministic env."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest
import torch

from schedgym.agents.muzero.models import LearnedModel, SimulatorModel
from schedgym.agents.muzero.networks import (
    MuZeroNetwork,
    NetworkConfig,
    ValueSupport,
    h_inverse,
    h_transform,
)
from schedgym.agents.muzero.search import (
    ModelOutput,
    SearchConfig,
    completed_qvalues,
    considered_visit_sequence,
    gumbel_muzero_search,
)
from schedgym.envs.core.base import SchedEnv


# --------------------------------------------------------------------------- hand-made models
class BanditModel:
    """A one-step tree: child ``a`` of the root is terminal with reward ``rewards[b, a]``."""

    def __init__(self, logits: np.ndarray, root_value: np.ndarray, rewards: np.ndarray, legal: np.ndarray) -> None:
        self.logits, self.root_value, self.rewards, self.legal = logits, root_value, rewards, legal
        self.num_actions = logits.shape[1]
        self.calls = 0

    def root(self, num_nodes: int) -> ModelOutput:
        b = self.logits.shape[0]
        return ModelOutput(self.logits, self.root_value, np.zeros(b), np.ones(b), np.zeros(b, bool), self.legal)

    def expand(self, parent, action, node, active) -> ModelOutput:
        self.calls += 1
        b = parent.shape[0]
        assert np.all(parent == 0)
        r = self.rewards[np.arange(b), action]
        return ModelOutput(np.zeros_like(self.logits), np.zeros(b), r, np.zeros(b), np.ones(b, bool),
                           np.ones_like(self.legal))


def test_sequence_of_considered_visits_matches_mctx() -> None:
    # Hand-computed from the rule: each phase spends ~S / (log2(m) * #considered) visits per action.
    assert considered_visit_sequence(4, 8) == [0, 0, 0, 0, 1, 1, 2, 2]
    assert considered_visit_sequence(2, 6) == [0, 0, 1, 1, 2, 2]
    assert considered_visit_sequence(1, 3) == [0, 1, 2]
    assert considered_visit_sequence(16, 32)[:16] == [0] * 16


def test_visit_counts_follow_sequential_halving() -> None:
    # 4 legal actions of 6, m = 4, 8 simulations: phase 1 visits each once, phase 2 gives the best two
    # (by reward, equal priors, no Gumbel noise) two more each -> visits {1, 3, 1, 3} on the legal ones.
    logits = np.zeros((1, 6))
    legal = np.array([[True, True, False, True, True, False]])
    rewards = np.array([[0.1, 0.9, 5.0, 0.2, 0.8, 5.0]])
    model = BanditModel(logits, np.zeros(1), rewards, legal)
    out = gumbel_muzero_search(model, SearchConfig(num_simulations=8, max_considered_actions=4, gumbel_scale=0.0),
                               np.random.default_rng(0))
    np.testing.assert_array_equal(out.root_visits[0], [1, 3, 0, 1, 3, 0])
    assert out.action[0] == 1  # highest reward among the most visited
    assert model.calls == 8  # one batched call per simulation


def test_gumbel_top_m_selects_m_actions() -> None:
    # 10 legal actions, m = 3, 3 simulations: exactly the top-3 of g + logits are visited once each.
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(1, 10))
    model = BanditModel(logits, np.zeros(1), np.zeros((1, 10)), np.ones((1, 10), bool))
    cfg = SearchConfig(num_simulations=3, max_considered_actions=3)
    out = gumbel_muzero_search(model, cfg, [np.random.default_rng(11)])
    g = np.random.default_rng(11).gumbel(size=10)
    top3 = set(np.argsort(-(g + logits[0]))[:3])
    assert set(np.flatnonzero(out.root_visits[0])) == top3
    assert out.root_visits[0].sum() == 3


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def test_completed_q_and_policy_target_match_hand_computation() -> None:
    logits = np.array([[1.0, 0.0, -1.0, 0.5]])
    legal = np.array([[True, True, True, False]])
    rewards = np.array([[0.3, 0.6, 0.0, 9.0]])
    raw_value = 0.2
    model = BanditModel(logits, np.array([raw_value]), rewards, legal)
    cfg = SearchConfig(num_simulations=2, max_considered_actions=2, gumbel_scale=0.0)
    out = gumbel_muzero_search(model, cfg, np.random.default_rng(0))
    # The two highest logits (actions 0 and 1) are visited once each.
    np.testing.assert_array_equal(out.root_visits[0], [1, 1, 0, 0])
    # Hand computation (Gumbel MuZero Appendix D): prior over legal actions, mixed value for action 2.
    prior = _softmax(np.array([1.0, 0.0, -1.0]))
    q_visited = np.array([0.3, 0.6])
    weighted_q = (prior[:2] * q_visited).sum() / prior[:2].sum()
    mixed = (raw_value + 2 * weighted_q) / (2 + 1)
    completed = np.array([0.3, 0.6, mixed])
    q_hat = (completed - completed.min()) / (completed.max() - completed.min())
    sigma = (50 + 1) * 0.1 * q_hat
    np.testing.assert_allclose(completed_qvalues(out.tree, 0, 0)[:3], sigma, rtol=1e-9)
    target = _softmax(np.array([1.0, 0.0, -1.0]) + sigma)
    np.testing.assert_allclose(out.policy_target[0, :3], target, rtol=1e-5)
    assert out.policy_target[0, 3] == 0.0  # illegal action gets no mass
    # Root value: mean of raw value and the two backed-up returns.
    np.testing.assert_allclose(out.root_value[0], (0.2 + 0.3 + 0.6) / 3, rtol=1e-6)
    assert out.action[0] == 1


# --------------------------------------------------------------------------- a toy deterministic env
@dataclass
class _ToyState:
    taken: np.ndarray  # (n_items,) bool
    used: int
    steps: int


class ToyKnapsackEnv(SchedEnv):
    """Tiny deterministic knapsack: take items (actions 0..n-1) until stopping (action n) or full.

    Items that are taken or do not fit are masked, so inner nodes have non-trivial masks.
    """

    def __init__(self, n_items: int = 5, capacity: int = 10) -> None:
        super().__init__()
        self.n_items, self.capacity = n_items, capacity
        self.action_space = gym.spaces.Discrete(n_items + 1)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (3 * n_items + 1,), np.float32)

    def _reset(self, options) -> None:
        self.sizes = self.np_random.integers(1, 6, self.n_items)
        self.values = self.np_random.uniform(0.1, 1.0, self.n_items)
        self.state = _ToyState(np.zeros(self.n_items, bool), 0, 0)

    def _observe(self) -> np.ndarray:
        s = self.state
        return np.concatenate([self.sizes / 10, self.values, s.taken, [s.used / self.capacity]]).astype(np.float32)

    def _action_mask(self) -> np.ndarray:
        s = self.state
        fits = (~s.taken) & (s.used + self.sizes <= self.capacity)
        return np.append(fits, True)

    def _default_action(self) -> int:
        return self.n_items

    def _apply(self, action: int):
        s = self.state
        s.steps += 1
        if action == self.n_items:
            return 0.0, True, False, {}
        s.taken[action] = True
        s.used += int(self.sizes[action])
        done = not self._action_mask()[: self.n_items].any()
        return float(self.values[action]), done, False, {}

    def metrics(self) -> dict[str, float]:
        return {"value": float(self.values[self.state.taken].sum())}


def _net(obs_dim: int, num_actions: int, seed: int = 0) -> MuZeroNetwork:
    torch.manual_seed(seed)
    return MuZeroNetwork(NetworkConfig(obs_dim, num_actions, hidden_dim=16, layers=(32,))).eval()


def _toy_roots(seeds: list[int]):
    envs, obs, legal = [], [], []
    for s in seeds:
        env = ToyKnapsackEnv()
        o, info = env.reset(seed=s)
        envs.append(env)
        obs.append(o)
        legal.append(info["action_mask"].astype(bool))
    return envs, np.stack(obs), np.stack(legal)


def test_masked_actions_are_never_selected_at_root_or_inner_nodes() -> None:
    envs, obs, legal = _toy_roots([1, 2, 3, 4])
    legal[:, 0] = False  # mask one more root action to be sure root masks are honoured
    net = _net(obs.shape[1], envs[0].action_space.n)
    model = SimulatorModel(net, [copy.deepcopy(e) for e in envs], [e.get_state() for e in envs], obs, legal)
    out = gumbel_muzero_search(model, SearchConfig(num_simulations=24), np.random.default_rng(0))
    t = out.tree
    illegal = ~t.children_legal
    used = t.node_visits > 0
    assert (t.children_visits[illegal] == 0).all()
    assert (t.children_index[illegal] == -1).all()
    assert (t.children_visits[:, 0, 0] == 0).all()
    assert not t.children_legal[:, 0, 0].any()
    # inner masks come from the simulator: some inner node must have a mask different from the root's
    inner = used[:, 1:] & ~t.node_terminal[:, 1:]
    assert (t.children_legal[:, 1:][inner] != legal[:, None].repeat(t.node_visits.shape[1] - 1, 1)[inner]).any()
    assert all(legal[b, out.action[b]] for b in range(4))
    # the search never changed the real envs
    for e, s in zip(envs, [1, 2, 3, 4]):
        assert not e.state.taken.any()


def test_simulator_search_finds_a_good_knapsack_with_enough_simulations() -> None:
    """With exact dynamics and uninformative priors, search value approaches the optimum."""
    env = ToyKnapsackEnv(n_items=4, capacity=8)
    o, info = env.reset(seed=3)
    from itertools import combinations

    best = max(
        env.values[list(c)].sum()
        for k in range(5)
        for c in combinations(range(4), k)
        if env.sizes[list(c)].sum() <= 8
    )
    net = _net(o.shape[0], 5)
    total = 0.0
    done = False
    info_mask = info["action_mask"].astype(bool)
    while not done:
        model = SimulatorModel(net, [copy.deepcopy(env)], [env.get_state()], o[None], info_mask[None])
        out = gumbel_muzero_search(model, SearchConfig(num_simulations=64, gumbel_scale=0.0), np.random.default_rng(0))
        o, r, done, _, info = env.step(int(out.action[0]))
        info_mask = info["action_mask"].astype(bool)
        total += r
    assert total >= 0.9 * best


def test_batch_of_b_equals_b_batches_of_one() -> None:
    seeds = [10, 11, 12, 13, 14]
    envs, obs, legal = _toy_roots(seeds)
    net = _net(obs.shape[1], envs[0].action_space.n, seed=1)
    cfg = SearchConfig(num_simulations=12, max_considered_actions=4)
    for mode in ("learned", "simulator"):

        def model_for(idx: list[int], mode: str = mode):
            if mode == "learned":
                return LearnedModel(net, obs[idx], legal[idx])
            return SimulatorModel(net, [copy.deepcopy(envs[i]) for i in idx], [envs[i].get_state() for i in idx],
                                  obs[idx], legal[idx])

        batched = gumbel_muzero_search(model_for(list(range(5))), cfg, [np.random.default_rng(s) for s in seeds])
        for i, s in enumerate(seeds):
            single = gumbel_muzero_search(model_for([i]), cfg, [np.random.default_rng(s)])
            assert single.action[0] == batched.action[i]
            np.testing.assert_array_equal(single.root_visits[0], batched.root_visits[i])
            np.testing.assert_array_equal(single.tree.children_index[0], batched.tree.children_index[i])
            np.testing.assert_allclose(single.policy_target[0], batched.policy_target[i], rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(single.root_value[0], batched.root_value[i], rtol=1e-4, atol=1e-6)


def test_value_transform_and_support_round_trip() -> None:
    x = torch.tensor([-7.5, -1.0, -0.01, 0.0, 0.003, 0.37, 1.0, 6.0])
    torch.testing.assert_close(h_inverse(h_transform(x)), x, atol=1e-4, rtol=1e-4)
    support = ValueSupport(-2.0, 2.0, 41)
    probs = support.scalar_to_probs(x)
    torch.testing.assert_close(probs.sum(-1), torch.ones(len(x)))
    # log of the two-hot probabilities as logits decodes back to the scalar
    torch.testing.assert_close(support.logits_to_scalar(torch.log(probs + 1e-12)), x, atol=1e-3, rtol=1e-3)


def test_search_rejects_roots_without_legal_actions() -> None:
    model = BanditModel(np.zeros((1, 3)), np.zeros(1), np.zeros((1, 3)), np.zeros((1, 3), bool))
    with pytest.raises(ValueError, match="legal"):
        gumbel_muzero_search(model, SearchConfig(num_simulations=2), np.random.default_rng(0))


@pytest.mark.parametrize("batch,sims,discount", [(1, 8, 1.0), (7, 32, 1.0), (32, 16, 0.97)])
def test_fused_search_equals_the_search_with_model_calls(batch: int, sims: int, discount: float) -> None:
    """The one-numba-call search (network inside) builds the same trees as per-simulation torch calls."""
    from schedgym.agents.muzero.networks import MuZeroNetwork, NetworkConfig

    torch.manual_seed(batch)
    net = MuZeroNetwork(NetworkConfig(obs_dim=24, num_actions=9, hidden_dim=16, layers=(32, 32))).eval()
    rng = np.random.default_rng(batch)
    obs = rng.normal(size=(batch, 24)).astype(np.float32)
    legal = rng.random((batch, 9)) < 0.6
    legal[:, 0] = True
    cfg = SearchConfig(num_simulations=sims, max_considered_actions=4, discount=discount)
    for seed in range(3):
        ref = gumbel_muzero_search(LearnedModel(net, obs, legal, fused=False), cfg, np.random.default_rng(seed))
        out = gumbel_muzero_search(LearnedModel(net, obs, legal), cfg, np.random.default_rng(seed))
        np.testing.assert_array_equal(out.action, ref.action)
        np.testing.assert_array_equal(out.root_visits, ref.root_visits)
        np.testing.assert_array_equal(out.tree.children_index, ref.tree.children_index)
        np.testing.assert_allclose(out.tree.raw_values, ref.tree.raw_values, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out.tree.children_rewards, ref.tree.children_rewards, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out.policy_target, ref.policy_target, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(out.root_value, ref.root_value, rtol=1e-5, atol=1e-6)


def test_fused_weights_follow_training_updates() -> None:
    """The weight copy is refreshed when the torch parameters change (optimiser step, load_state_dict)."""
    from schedgym.agents.muzero.fused import fused_weights
    from schedgym.agents.muzero.networks import MuZeroNetwork, NetworkConfig

    net = MuZeroNetwork(NetworkConfig(obs_dim=6, num_actions=3, hidden_dim=8, layers=(16,)))
    first = fused_weights(net)
    assert fused_weights(net) is first  # cached while nothing changes
    with torch.no_grad():
        net.prediction[0].weight.add_(1.0)
    second = fused_weights(net)
    assert second is not first
    np.testing.assert_allclose(second.prediction.weights[0], net.prediction[0].weight.detach().numpy().T)
    net.load_state_dict(MuZeroNetwork(net.cfg).state_dict())
    assert fused_weights(net) is not second


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("schedgym/MemoryMapping-v0", {"instance": "random", "n_buffers": 15, "K": 4}),
        ("schedgym/GPUAutoscaling-v1", {"workload": "synthetic", "episode_days": 0.01, "mean_rate_per_s": 2.0,
                                        "max_replicas": 8, "history": 2}),  # fmt: skip
    ],
)
def test_simulator_search_with_unchecked_snapshots_equals_the_checked_search(
    env_id: str, kwargs: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search's own snapshots skip get_state/set_state's checks; the tree and targets are the same.
    (GPUAutoscaling rebinds its fleet view on restore: without ``_after_restore`` the two differ.)"""
    envs = [gym.make(env_id, **kwargs).unwrapped for _ in range(2)]
    obs, legal = [], []
    for i, env in enumerate(envs):
        o, info = env.reset(seed=20 + i)
        for _ in range(3):
            o, _, _, _, info = env.step(int(np.flatnonzero(info["action_mask"])[0]))
        obs.append(o)
        legal.append(info["action_mask"].astype(bool))
    obs_a, legal_a = np.stack(obs), np.stack(legal)
    net = _net(obs_a.shape[1], envs[0].action_space.n, seed=2)
    cfg = SearchConfig(num_simulations=10, max_considered_actions=4)

    def search():
        model = SimulatorModel(net, [copy.deepcopy(e) for e in envs], [e.get_state() for e in envs], obs_a, legal_a)
        return gumbel_muzero_search(model, cfg, np.random.default_rng(5))

    fast = search()
    monkeypatch.setattr(SchedEnv, "snapshot_unchecked", SchedEnv.get_state)
    monkeypatch.setattr(SchedEnv, "restore_unchecked", SchedEnv.set_state)
    checked = search()
    np.testing.assert_array_equal(fast.action, checked.action)
    np.testing.assert_array_equal(fast.tree.children_index, checked.tree.children_index)
    np.testing.assert_array_equal(fast.tree.children_visits, checked.tree.children_visits)
    np.testing.assert_array_equal(fast.tree.children_rewards, checked.tree.children_rewards)
    np.testing.assert_array_equal(fast.tree.children_values, checked.tree.children_values)
    np.testing.assert_array_equal(fast.policy_target, checked.policy_target)
