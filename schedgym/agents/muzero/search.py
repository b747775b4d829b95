"""Batched Gumbel MuZero tree search over B environments at once.

The algorithm is Gumbel MuZero (Danihelka, Guez, Schrittwieser, Silver: "Policy improvement by
planning with Gumbel", ICLR 2022, https://openreview.net/forum?id=bERaNdoegnO), laid out as in
DeepMind's mctx (Apache-2.0, ``mctx/_src/{tree,search,action_selection,policies,qtransforms,
seq_halving}.py``): the B trees are stored as arrays ``[B, num_nodes, A]`` and every simulation

1. *selects* one leaf in every tree (a numba kernel looping over B: Gumbel + sequential halving at
   the root, ``argmax(pi'(a) - N(a) / (1 + sum N))`` below it),
2. *expands* all B leaves with ONE batched model call (``SearchModel.expand``), and
3. *backs up* the new values along the B paths (a numba kernel).

There are no per-node Python objects. Legal-action masks are applied at the root always, and at
inner nodes when the model provides them (the true simulator does; a learned model does not).

Constants (Gumbel MuZero paper, Appendix, and mctx defaults): ``m = min(16, #legal)`` considered
root actions, ``sigma(q) = (c_visit + max_b N(b)) * c_scale * q`` with ``c_visit = 50`` and
``c_scale = 0.1`` on min-max normalised completed Q-values; unvisited actions are completed with the
mixed value (Appendix D, eq. 33).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numba as nb
import numpy as np

__all__ = [
    "ModelOutput",
    "SearchConfig",
    "SearchModel",
    "SearchOutput",
    "Tree",
    "completed_qvalues",
    "considered_visit_sequence",
    "considered_visit_table",
    "gumbel_muzero_search",
]

#: Logit given to illegal actions (finite so that arithmetic stays NaN-free).
ILLEGAL_LOGIT = -1e9


@dataclass(frozen=True)
class SearchConfig:
    """Search hyperparameters (defaults from the Gumbel MuZero paper / mctx)."""

    num_simulations: int = 16  # simulations per search (the paper trains with as few as 2-16)
    max_considered_actions: int = 16  # m: root actions sampled by Gumbel-top-m
    c_visit: float = 50.0  # sigma transform: (c_visit + max N) * c_scale * q_hat
    c_scale: float = 0.1
    discount: float = 1.0  # gamma used in backups (episodic envs: 1)
    gumbel_scale: float = 1.0  # 1 while training (exploration), 0 for deterministic acting

    def __post_init__(self) -> None:
        if self.num_simulations < 1:
            raise ValueError(f"num_simulations must be >= 1, got {self.num_simulations}")
        if self.max_considered_actions < 1:
            raise ValueError(f"max_considered_actions must be >= 1, got {self.max_considered_actions}")
        if not 0.0 <= self.discount <= 1.0:
            raise ValueError(f"discount must be in [0, 1], got {self.discount}")


@dataclass
class ModelOutput:
    """What a model returns for B nodes (one batched call)."""

    prior_logits: np.ndarray  # (B, A) float32
    value: np.ndarray  # (B,) float32, value estimate of the node
    reward: np.ndarray  # (B,) float32, reward of the transition into the node (0 at the root)
    discount: np.ndarray  # (B,) float32, gamma for the transition (0 after a terminal transition)
    terminal: np.ndarray  # (B,) bool, the node is a terminal state (never expanded further)
    legal: np.ndarray  # (B, A) bool, legal actions at the node (all True if unknown)


class SearchModel(Protocol):
    """The two model modes (learned dynamics, true simulator) behind one interface.

    The model keeps its own per-node storage (hidden states or env snapshots) indexed by
    ``(tree b, node)``; the search only hands it node indices.
    """

    num_actions: int

    def root(self, num_nodes: int) -> ModelOutput:
        """Evaluate the B roots and store them as node 0 of each tree (``num_nodes`` per tree)."""
        ...

    def expand(self, parent: np.ndarray, action: np.ndarray, node: np.ndarray, active: np.ndarray) -> ModelOutput:
        """One batched call: step tree b from node ``parent[b]`` by ``action[b]`` into ``node[b]``.

        Rows with ``active[b] == False`` need no evaluation (their values are ignored).
        """
        ...


@dataclass
class Tree:
    """B search trees as arrays (mctx layout). ``N = num_simulations + 1`` nodes, ``A`` actions."""

    node_visits: np.ndarray  # (B, N) int32
    raw_values: np.ndarray  # (B, N) float64, model value when the node was expanded
    node_values: np.ndarray  # (B, N) float64, mean backed-up value
    node_terminal: np.ndarray  # (B, N) bool
    parents: np.ndarray  # (B, N) int32, -1 at the root / unused
    action_from_parent: np.ndarray  # (B, N) int32
    children_index: np.ndarray  # (B, N, A) int32, -1 = not expanded
    children_prior_logits: np.ndarray  # (B, N, A) float64, ILLEGAL_LOGIT where illegal
    children_prior_probs: np.ndarray  # (B, N, A) float64, softmax of the logits over legal actions, 0 elsewhere
    children_legal: np.ndarray  # (B, N, A) bool
    children_visits: np.ndarray  # (B, N, A) int32
    children_rewards: np.ndarray  # (B, N, A) float64
    children_discounts: np.ndarray  # (B, N, A) float64
    children_values: np.ndarray  # (B, N, A) float64, node_values of the child

    @classmethod
    def empty(cls, batch: int, num_nodes: int, num_actions: int) -> Tree:
        b, n, a = batch, num_nodes, num_actions
        return cls(
            node_visits=np.zeros((b, n), np.int32),
            raw_values=np.zeros((b, n), np.float64),
            node_values=np.zeros((b, n), np.float64),
            node_terminal=np.zeros((b, n), np.bool_),
            parents=np.full((b, n), -1, np.int32),
            action_from_parent=np.full((b, n), -1, np.int32),
            children_index=np.full((b, n, a), -1, np.int32),
            children_prior_logits=np.zeros((b, n, a), np.float64),
            children_prior_probs=np.zeros((b, n, a), np.float64),
            children_legal=np.zeros((b, n, a), np.bool_),
            children_visits=np.zeros((b, n, a), np.int32),
            children_rewards=np.zeros((b, n, a), np.float64),
            children_discounts=np.zeros((b, n, a), np.float64),
            children_values=np.zeros((b, n, a), np.float64),
        )


@dataclass
class SearchOutput:
    action: np.ndarray  # (B,) int64, the action to play
    policy_target: np.ndarray  # (B, A) float32, softmax(logits + sigma(completed Q)) over legal actions
    root_value: np.ndarray  # (B,) float32, search value of the root (mean backed-up value)
    root_visits: np.ndarray  # (B, A) int32, visit counts of the root's children
    tree: Tree


# --------------------------------------------------------------------------- sequential halving
def considered_visit_sequence(max_num_considered: int, num_simulations: int) -> list[int]:
    """Visit count an action must have to be simulated next, per simulation (sequential halving).

    Port of ``mctx.seq_halving.get_sequence_of_considered_visits``: each phase visits the remaining
    actions equally, using about ``num_simulations / log2(m)`` simulations, then halves them.
    """
    if max_num_considered <= 1:
        return list(range(num_simulations))
    log2max = math.ceil(math.log2(max_num_considered))
    sequence: list[int] = []
    visits = [0] * max_num_considered
    num_considered = max_num_considered
    while len(sequence) < num_simulations:
        num_extra_visits = max(1, int(num_simulations / (log2max * num_considered)))
        for _ in range(num_extra_visits):
            sequence.extend(visits[:num_considered])
            for i in range(num_considered):
                visits[i] += 1
        num_considered = max(2, num_considered // 2)
    return sequence[:num_simulations]


def considered_visit_table(max_num_considered: int, num_simulations: int) -> np.ndarray:
    """``table[m, s]``: the sequence above for every number of considered actions ``m <= max``."""
    table = np.zeros((max_num_considered + 1, num_simulations + 1), np.int32)
    for m in range(max_num_considered + 1):
        seq = considered_visit_sequence(m, num_simulations)
        table[m, :num_simulations] = seq
        table[m, num_simulations] = seq[-1] + 1 if seq else 0  # only used for the final action
    return table


# --------------------------------------------------------------------------- numba kernels
@nb.njit(cache=True)
def _prior_probs(logits: np.ndarray, legal: np.ndarray, out: np.ndarray) -> None:
    """softmax of ``logits`` over the legal actions (0 elsewhere), stored once per node at expansion so
    that selection, which visits a node many times, computes no exponentials for its prior."""
    num_actions = logits.shape[0]
    max_logit = -np.inf
    for a in range(num_actions):
        if legal[a] and logits[a] > max_logit:
            max_logit = logits[a]
    z = 0.0
    for a in range(num_actions):
        if legal[a]:
            z += math.exp(logits[a] - max_logit)
    for a in range(num_actions):
        out[a] = math.exp(logits[a] - max_logit) / z if legal[a] else 0.0


@nb.njit(cache=True)
def _completed_sigma(
    probs: np.ndarray,  # (A,) prior probabilities (softmax over legal actions)
    legal: np.ndarray,  # (A,) bool
    visits: np.ndarray,  # (A,) int32
    qvalues: np.ndarray,  # (A,) reward + discount * child value
    raw_value: float,
    c_visit: float,
    c_scale: float,
    out: np.ndarray,  # (A,) sigma(completed Q) (0 where illegal)
) -> None:
    """mctx ``qtransform_completed_by_mix_value`` restricted to legal actions."""
    num_actions = probs.shape[0]
    sum_visits = 0
    sum_probs = 0.0
    weighted_q = 0.0
    max_visits = 0
    for a in range(num_actions):
        if legal[a] and visits[a] > 0:
            p = max(probs[a], 1e-30)
            sum_visits += visits[a]
            sum_probs += p
            weighted_q += p * qvalues[a]
        max_visits = max(max_visits, visits[a])
    if sum_visits > 0:
        weighted_q /= sum_probs
    # mixed value (Gumbel MuZero Appendix D, eq. 33)
    mixed = (raw_value + sum_visits * weighted_q) / (sum_visits + 1.0)
    lo = np.inf
    hi = -np.inf
    for a in range(num_actions):
        if legal[a]:
            q = qvalues[a] if visits[a] > 0 else mixed
            out[a] = q
            lo = min(lo, q)
            hi = max(hi, q)
        else:
            out[a] = 0.0
    scale = (c_visit + max_visits) * c_scale
    denom = max(hi - lo, 1e-8)
    for a in range(num_actions):
        if legal[a]:
            out[a] = scale * (out[a] - lo) / denom


@nb.njit(cache=True)
def _node_sigma(
    b: int,
    node: int,
    prior_probs: np.ndarray,
    legal: np.ndarray,
    visits: np.ndarray,
    rewards: np.ndarray,
    discounts: np.ndarray,
    child_values: np.ndarray,
    raw_values: np.ndarray,
    c_visit: float,
    c_scale: float,
    qbuf: np.ndarray,
    out: np.ndarray,
) -> None:
    num_actions = prior_probs.shape[2]
    for a in range(num_actions):
        qbuf[a] = rewards[b, node, a] + discounts[b, node, a] * child_values[b, node, a]
    _completed_sigma(
        prior_probs[b, node], legal[b, node], visits[b, node], qbuf, raw_values[b, node], c_visit, c_scale, out
    )


@nb.njit(cache=True)
def _select_kernel(
    prior_logits: np.ndarray,
    prior_probs: np.ndarray,
    legal: np.ndarray,
    visits: np.ndarray,
    rewards: np.ndarray,
    discounts: np.ndarray,
    child_values: np.ndarray,
    children_index: np.ndarray,
    raw_values: np.ndarray,
    node_terminal: np.ndarray,
    gumbel: np.ndarray,  # (B, A)
    table: np.ndarray,  # (m+1, S+1)
    num_considered: np.ndarray,  # (B,)
    sim_index: int,
    c_visit: float,
    c_scale: float,
    out_parent: np.ndarray,  # (B,)
    out_action: np.ndarray,  # (B,)
    out_existing: np.ndarray,  # (B,) child index if the leaf already exists (terminal), else -1
) -> None:
    batch = prior_logits.shape[0]
    num_actions = prior_logits.shape[2]
    qbuf = np.empty(num_actions)
    sigma = np.empty(num_actions)
    expo = np.empty(num_actions)
    for b in range(batch):
        node = 0
        while True:
            _node_sigma(
                b, node, prior_probs, legal, visits, rewards, discounts, child_values, raw_values,
                c_visit, c_scale, qbuf, sigma,
            )
            best = -1
            best_score = -np.inf
            if node == 0:
                # Gumbel root: among the actions whose visit count equals the count sequential halving
                # asks for, argmax of g + logits + sigma(completed Q).
                considered = table[num_considered[b], sim_index]
                for a in range(num_actions):
                    if legal[b, 0, a] and visits[b, 0, a] == considered:
                        score = gumbel[b, a] + prior_logits[b, 0, a] + sigma[a]
                        if score > best_score:
                            best_score = score
                            best = a
            else:
                # Deterministic interior selection: argmax pi'(a) - N(a) / (1 + sum N).
                max_l = -np.inf
                for a in range(num_actions):
                    if legal[b, node, a]:
                        sigma[a] += prior_logits[b, node, a]
                        max_l = max(max_l, sigma[a])
                z = 0.0
                total = 0
                for a in range(num_actions):
                    if legal[b, node, a]:
                        expo[a] = math.exp(sigma[a] - max_l)
                        z += expo[a]
                        total += visits[b, node, a]
                for a in range(num_actions):
                    if legal[b, node, a]:
                        score = expo[a] / z - visits[b, node, a] / (1.0 + total)
                        if score > best_score:
                            best_score = score
                            best = a
            if best < 0:  # no legal action with the required count (cannot happen with a legal action)
                for a in range(num_actions):
                    if legal[b, node, a]:
                        best = a
                        break
                best = max(best, 0)
            child = children_index[b, node, best]
            if child < 0 or node_terminal[b, child]:
                out_parent[b] = node
                out_action[b] = best
                out_existing[b] = child
                break
            node = child


@nb.njit(cache=True)
def _expand_backup_kernel(
    parent: np.ndarray,  # (B,)
    action: np.ndarray,  # (B,)
    existing: np.ndarray,  # (B,) -1 = expand into new_node
    new_node: int,
    prior_logits_new: np.ndarray,  # (B, A)
    legal_new: np.ndarray,  # (B, A)
    value_new: np.ndarray,  # (B,)
    reward_new: np.ndarray,  # (B,)
    discount_new: np.ndarray,  # (B,)
    terminal_new: np.ndarray,  # (B,)
    node_visits: np.ndarray,
    raw_values: np.ndarray,
    node_values: np.ndarray,
    node_terminal: np.ndarray,
    parents: np.ndarray,
    action_from_parent: np.ndarray,
    children_index: np.ndarray,
    children_prior_logits: np.ndarray,
    children_prior_probs: np.ndarray,
    children_legal: np.ndarray,
    children_visits: np.ndarray,
    children_rewards: np.ndarray,
    children_discounts: np.ndarray,
    children_values: np.ndarray,
) -> None:
    batch = parent.shape[0]
    num_actions = prior_logits_new.shape[1]
    for b in range(batch):
        p = parent[b]
        a = action[b]
        if existing[b] < 0:
            leaf = new_node
            terminal = terminal_new[b]
            value = 0.0 if terminal else value_new[b]
            parents[b, leaf] = p
            action_from_parent[b, leaf] = a
            children_index[b, p, a] = leaf
            children_rewards[b, p, a] = reward_new[b]
            children_discounts[b, p, a] = discount_new[b]
            raw_values[b, leaf] = value
            node_values[b, leaf] = value
            node_visits[b, leaf] = 1
            node_terminal[b, leaf] = terminal
            for k in range(num_actions):
                lg = legal_new[b, k]
                children_legal[b, leaf, k] = lg
                children_prior_logits[b, leaf, k] = prior_logits_new[b, k] if lg else -1e9
            _prior_probs(children_prior_logits[b, leaf], children_legal[b, leaf], children_prior_probs[b, leaf])
        else:
            # Revisiting a terminal leaf: its value is exactly 0.
            leaf = existing[b]
            value = 0.0
            cnt = node_visits[b, leaf]
            node_values[b, leaf] = (node_values[b, leaf] * cnt + value) / (cnt + 1.0)
            node_visits[b, leaf] = cnt + 1
        # backup (mctx backward)
        node = leaf
        while node != 0:
            par = parents[b, node]
            act = action_from_parent[b, node]
            value = children_rewards[b, par, act] + children_discounts[b, par, act] * value
            cnt = node_visits[b, par]
            node_values[b, par] = (node_values[b, par] * cnt + value) / (cnt + 1.0)
            node_visits[b, par] = cnt + 1
            children_values[b, par, act] = node_values[b, node]
            children_visits[b, par, act] += 1
            node = par


@nb.njit(cache=True)
def _root_outputs(
    prior_logits: np.ndarray,
    prior_probs: np.ndarray,
    legal: np.ndarray,
    visits: np.ndarray,
    rewards: np.ndarray,
    discounts: np.ndarray,
    child_values: np.ndarray,
    raw_values: np.ndarray,
    gumbel: np.ndarray,
    c_visit: float,
    c_scale: float,
    out_action: np.ndarray,  # (B,)
    out_policy: np.ndarray,  # (B, A)
) -> None:
    batch = prior_logits.shape[0]
    num_actions = prior_logits.shape[2]
    qbuf = np.empty(num_actions)
    sigma = np.empty(num_actions)
    for b in range(batch):
        _node_sigma(b, 0, prior_probs, legal, visits, rewards, discounts, child_values, raw_values,
                    c_visit, c_scale, qbuf, sigma)
        # policy target: softmax(logits + sigma(completed Q)) over legal actions
        max_l = -np.inf
        for a in range(num_actions):
            if legal[b, 0, a]:
                max_l = max(max_l, prior_logits[b, 0, a] + sigma[a])
        z = 0.0
        for a in range(num_actions):
            if legal[b, 0, a]:
                out_policy[b, a] = math.exp(prior_logits[b, 0, a] + sigma[a] - max_l)
                z += out_policy[b, a]
            else:
                out_policy[b, a] = 0.0
        for a in range(num_actions):
            out_policy[b, a] /= z
        # action: argmax g + logits + sigma among the most visited considered actions
        max_visits = 0
        for a in range(num_actions):
            if legal[b, 0, a] and visits[b, 0, a] > max_visits:
                max_visits = visits[b, 0, a]
        best = -1
        best_score = -np.inf
        for a in range(num_actions):
            if legal[b, 0, a] and visits[b, 0, a] == max_visits:
                score = gumbel[b, a] + prior_logits[b, 0, a] + sigma[a]
                if score > best_score:
                    best_score = score
                    best = a
        out_action[b] = best


# --------------------------------------------------------------------------- driver
def completed_qvalues(tree: Tree, b: int, node: int, c_visit: float = 50.0, c_scale: float = 0.1) -> np.ndarray:
    """sigma(completed Q) of ``node`` in tree ``b`` (for tests and inspection)."""
    out = np.zeros(tree.children_prior_logits.shape[2])
    qbuf = np.zeros_like(out)
    _node_sigma(b, node, tree.children_prior_probs, tree.children_legal, tree.children_visits,
                tree.children_rewards, tree.children_discounts, tree.children_values, tree.raw_values,
                c_visit, c_scale, qbuf, out)
    return out


def _make_gumbel(
    rng: np.random.Generator | Sequence[np.random.Generator], batch: int, num_actions: int, scale: float
) -> np.ndarray:
    if isinstance(rng, np.random.Generator):
        g = rng.gumbel(size=(batch, num_actions))
    else:
        if len(rng) != batch:
            raise ValueError(f"rng: expected one Generator per tree ({batch}), got {len(rng)}")
        g = np.stack([r.gumbel(size=num_actions) for r in rng])  # per-tree streams: trees independent
    return g * scale


def _search_with_model_calls(
    model: SearchModel, config: SearchConfig, rng: np.random.Generator | Sequence[np.random.Generator]
) -> tuple[Tree, np.ndarray]:
    """The search loop in Python: per simulation a select kernel, one batched model call, a backup kernel."""
    num_nodes = config.num_simulations + 1
    root = model.root(num_nodes)
    batch, num_actions = root.prior_logits.shape
    tree = Tree.empty(batch, num_nodes, num_actions)
    root_legal = np.asarray(root.legal, bool)
    if not root_legal.any(axis=1).all():
        raise ValueError("every root needs at least one legal action")
    tree.children_legal[:, 0] = root_legal
    tree.children_prior_logits[:, 0] = np.where(root_legal, root.prior_logits, ILLEGAL_LOGIT)
    for b in range(batch):
        _prior_probs(tree.children_prior_logits[b, 0], root_legal[b], tree.children_prior_probs[b, 0])
    tree.raw_values[:, 0] = root.value
    tree.node_values[:, 0] = root.value
    tree.node_visits[:, 0] = 1

    gumbel = _make_gumbel(rng, batch, num_actions, config.gumbel_scale)
    num_legal = root_legal.sum(axis=1)
    num_considered = np.minimum(config.max_considered_actions, num_legal).astype(np.int64)
    table = considered_visit_table(config.max_considered_actions, config.num_simulations)

    parent = np.zeros(batch, np.int64)
    action = np.zeros(batch, np.int64)
    existing = np.zeros(batch, np.int64)
    for sim in range(config.num_simulations):
        _select_kernel(
            tree.children_prior_logits, tree.children_prior_probs, tree.children_legal, tree.children_visits,
            tree.children_rewards, tree.children_discounts, tree.children_values, tree.children_index, tree.raw_values,
            tree.node_terminal, gumbel, table, num_considered, sim, config.c_visit, config.c_scale,
            parent, action, existing,
        )
        new_node = sim + 1
        active = existing < 0
        out = model.expand(parent, action, np.full(batch, new_node, np.int64), active)
        _expand_backup_kernel(
            parent, action, existing, new_node,
            np.asarray(out.prior_logits, np.float64), np.asarray(out.legal, np.bool_),
            np.asarray(out.value, np.float64), np.asarray(out.reward, np.float64),
            np.asarray(out.discount, np.float64) * config.discount, np.asarray(out.terminal, np.bool_),
            tree.node_visits, tree.raw_values, tree.node_values, tree.node_terminal, tree.parents,
            tree.action_from_parent, tree.children_index, tree.children_prior_logits, tree.children_prior_probs,
            tree.children_legal, tree.children_visits, tree.children_rewards, tree.children_discounts,
            tree.children_values,
        )

    return tree, gumbel


def gumbel_muzero_search(
    model: SearchModel,
    config: SearchConfig,
    rng: np.random.Generator | Sequence[np.random.Generator],
) -> SearchOutput:
    """Run ``config.num_simulations`` batched simulations from the roots held by ``model``.

    ``rng`` is one Generator for the whole batch, or one per tree (then tree b's result does not
    depend on the other trees: a batch of B equals B batches of 1).
    """
    if getattr(model, "fused", False):
        # The learned model can run the whole search in one numba call (fused.py): same kernels, same tree.
        root_legal = np.asarray(model.root_legal, bool)
        if not root_legal.any(axis=1).all():
            raise ValueError("every root needs at least one legal action")
        batch, num_actions = root_legal.shape
        gumbel = _make_gumbel(rng, batch, num_actions, config.gumbel_scale)
        num_considered = np.minimum(config.max_considered_actions, root_legal.sum(axis=1)).astype(np.int64)
        table = considered_visit_table(config.max_considered_actions, config.num_simulations)
        tree = model.fused_search(config, gumbel, table, num_considered)
    else:
        tree, gumbel = _search_with_model_calls(model, config, rng)
    batch, _, num_actions = tree.children_prior_logits.shape
    act = np.zeros(batch, np.int64)
    policy = np.zeros((batch, num_actions), np.float64)
    _root_outputs(
        tree.children_prior_logits, tree.children_prior_probs, tree.children_legal, tree.children_visits,
        tree.children_rewards, tree.children_discounts, tree.children_values, tree.raw_values, gumbel, config.c_visit,
        config.c_scale, act, policy,
    )
    return SearchOutput(
        action=act,
        policy_target=policy.astype(np.float32),
        root_value=tree.node_values[:, 0].astype(np.float32),
        root_visits=tree.children_visits[:, 0].copy(),
        tree=tree,
    )
