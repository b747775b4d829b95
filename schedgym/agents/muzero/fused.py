"""The whole learned-model Gumbel MuZero search in one numba call: tree kernels and network inference fused.

:func:`schedgym.agents.muzero.search.gumbel_muzero_search` with a :class:`~.models.LearnedModel` spends
most of its time outside arithmetic: per simulation a Python loop turn, two numba dispatches with ~20
array arguments each, and ~30 eager torch calls for the dynamics, reward, prediction and the two support
decodes. The networks are small MLPs (``networks.py``), so here they run inside numba on weights copied
from the torch module (``np.dot`` on float32 is BLAS sgemm), and the select -> expand -> backup loop of
every simulation never returns to Python. The tree arrays and kernels are the same as the unfused
search's (the same ``_select_kernel`` / ``_expand_backup_kernel``), so the search is the same algorithm;
the only difference is float32 rounding in the matrix products (tests pin actions and targets).

The weight copy is cached on the module and refreshed when any parameter changes (torch bumps a
tensor's ``_version`` on every in-place update, which is how optimisers and ``load_state_dict`` write).
"""

from __future__ import annotations

import math
from typing import Any

import numba as nb
import numpy as np
import torch
from numba.typed import List as TypedList
from torch import nn

from schedgym.agents.muzero.networks import TRANSFORM_EPS, MuZeroNetwork
from schedgym.agents.muzero.search import (
    ILLEGAL_LOGIT,
    SearchConfig,
    Tree,
    _expand_backup_kernel,
    _prior_probs,
    _select_kernel,
)

__all__ = ["FusedWeights", "fused_weights", "fused_learned_search"]

#: LayerNorm epsilon of ``nn.LayerNorm`` (the networks use the default).
LAYER_NORM_EPS = 1e-5
#: Lower clamp of the hidden-state min-max scaling (``networks._scale_hidden``).
HIDDEN_SCALE_MIN = 1e-5


class _MLP:
    """One ``networks._mlp``: hidden layers (Linear, LayerNorm, ReLU) then a Linear, as numba lists."""

    def __init__(self, seq: nn.Sequential) -> None:
        mods = list(seq)
        linears = [m for m in mods if isinstance(m, nn.Linear)]
        norms = [m for m in mods if isinstance(m, nn.LayerNorm)]
        if len(linears) != len(norms) + 1:
            raise ValueError("fused search: expected (Linear, LayerNorm, ReLU)* Linear MLPs")
        for ln in norms:
            if ln.eps != LAYER_NORM_EPS or not ln.elementwise_affine:
                raise ValueError("fused search: LayerNorm must be affine with eps 1e-5")

        def f32(t: torch.Tensor) -> np.ndarray:
            return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)

        # W stored transposed (in, out) so that x @ W is a row-major sgemm.
        self.weights = TypedList([f32(m.weight).T.copy() for m in linears])
        self.biases = TypedList([f32(m.bias) for m in linears])
        self.gammas = TypedList([f32(m.weight) for m in norms] or [np.zeros(1, np.float32)])
        self.betas = TypedList([f32(m.bias) for m in norms] or [np.zeros(1, np.float32)])
        self.num_hidden = len(norms)


class FusedWeights:
    """numpy/numba copies of a :class:`MuZeroNetwork`'s weights, plus its value support."""

    def __init__(self, net: MuZeroNetwork) -> None:
        self.representation = _MLP(net.representation)
        self.dynamics = _MLP(net.dynamics)
        self.reward_head = _MLP(net.reward_head)
        self.prediction = _MLP(net.prediction)
        self.atoms = net.support.atoms.numpy().astype(np.float32)
        self.num_actions = net.cfg.num_actions
        self.hidden_dim = net.cfg.hidden_dim


def _params_version(net: nn.Module) -> tuple[int, ...]:
    return tuple(p._version for p in net.parameters())


def fused_weights(net: MuZeroNetwork) -> FusedWeights:
    """The cached :class:`FusedWeights` of ``net``, rebuilt when a parameter changed."""
    version = _params_version(net)
    cached = getattr(net, "_fused_cache", None)
    if cached is None or cached[0] != version:
        cached = (version, FusedWeights(net))
        object.__setattr__(net, "_fused_cache", cached)  # not a submodule or parameter
    return cached[1]


# --------------------------------------------------------------------------- numba network
@nb.njit(cache=True, fastmath=True)
def _layer_norm_relu(h, gamma, beta):  # noqa: ANN001, ANN202
    """In place: ``relu(LayerNorm(h))`` per row, as torch computes it (biased variance, eps 1e-5).

    ``fastmath`` lets LLVM vectorise the row sums (it reorders float32 additions, as torch's own
    vectorised LayerNorm does); the tests compare with torch to 1e-5.
    """
    rows, width = h.shape
    inv_width = np.float32(1.0) / np.float32(width)
    for r in range(rows):
        row = h[r]
        mean = np.float32(0.0)
        for k in range(width):
            mean += row[k]
        mean *= inv_width
        var = np.float32(0.0)
        for k in range(width):
            d = row[k] - mean
            var += d * d
        var *= inv_width
        inv = np.float32(1.0) / np.sqrt(var + np.float32(LAYER_NORM_EPS))
        for k in range(width):
            v = (row[k] - mean) * inv * gamma[k] + beta[k]
            row[k] = max(v, np.float32(0.0))


@nb.njit(cache=True)
def _mlp(x, weights, biases, gammas, betas, num_hidden):  # noqa: ANN001, ANN202
    return _mlp_tail(np.dot(x, weights[0]) + biases[0], weights, biases, gammas, betas, num_hidden)


@nb.njit(cache=True, fastmath=True)
def _scale_hidden(s):  # noqa: ANN001, ANN202
    rows, width = s.shape
    for r in range(rows):
        lo = s[r, 0]
        hi = s[r, 0]
        for k in range(1, width):
            lo = min(lo, s[r, k])
            hi = max(hi, s[r, k])
        den = max(hi - lo, np.float32(HIDDEN_SCALE_MIN))
        for k in range(width):
            s[r, k] = (s[r, k] - lo) / den
    return s


@nb.njit(cache=True)
def _decode(logits, atoms, out):  # noqa: ANN001, ANN202
    """Support logits -> scalar: softmax expectation, then the exact inverse value transform."""
    eps = TRANSFORM_EPS
    rows, bins = logits.shape
    for r in range(rows):
        m = logits[r, 0]
        for k in range(1, bins):
            m = max(m, logits[r, k])
        z = 0.0
        y = 0.0
        for k in range(bins):
            e = math.exp(logits[r, k] - m)
            z += e
            y += e * atoms[k]
        y /= z
        sign = 1.0 if y > 0 else (-1.0 if y < 0 else 0.0)
        # float64 like ValueSupport.logits_to_scalar, returned through float32 as the torch model returns it
        out[r] = np.float32(sign * (((math.sqrt(1.0 + 4.0 * eps * (abs(y) + 1.0 + eps)) - 1.0) / (2.0 * eps)) ** 2
                                    - 1.0))


@nb.njit(cache=True)
def _fused_search(
    obs, root_legal, gumbel, table, num_considered, num_simulations, c_visit, c_scale, discount,  # noqa: ANN001
    rep_w, rep_b, rep_g, rep_be, rep_n,  # noqa: ANN001
    dyn_w, dyn_b, dyn_g, dyn_be, dyn_n,  # noqa: ANN001
    rew_w, rew_b, rew_g, rew_be, rew_n,  # noqa: ANN001
    pre_w, pre_b, pre_g, pre_be, pre_n,  # noqa: ANN001
    atoms, num_actions, hidden_dim,  # noqa: ANN001
    node_visits, raw_values, node_values, node_terminal, parents, action_from_parent,  # noqa: ANN001
    children_index, children_prior_logits, children_prior_probs, children_legal, children_visits,  # noqa: ANN001
    children_rewards, children_discounts, children_values,  # noqa: ANN001
):  # noqa: ANN202
    batch = obs.shape[0]
    num_nodes = num_simulations + 1
    hidden = np.zeros((batch, num_nodes, hidden_dim), np.float32)
    # root: representation + prediction
    s0 = _scale_hidden(_mlp(obs, rep_w, rep_b, rep_g, rep_be, rep_n))
    out = _mlp(s0, pre_w, pre_b, pre_g, pre_be, pre_n)
    value = np.zeros(batch)
    _decode(out[:, num_actions:], atoms, value)
    for b in range(batch):
        hidden[b, 0] = s0[b]
        for a in range(num_actions):
            lg = root_legal[b, a]
            children_legal[b, 0, a] = lg
            children_prior_logits[b, 0, a] = out[b, a] if lg else ILLEGAL_LOGIT
        _prior_probs(children_prior_logits[b, 0], children_legal[b, 0], children_prior_probs[b, 0])
        raw_values[b, 0] = value[b]
        node_values[b, 0] = value[b]
        node_visits[b, 0] = 1

    parent = np.zeros(batch, np.int64)
    action = np.zeros(batch, np.int64)
    existing = np.zeros(batch, np.int64)
    dyn_first = dyn_w[0]
    x = np.empty((batch, hidden_dim), np.float32)
    reward = np.zeros(batch)
    legal_new = np.ones((batch, num_actions), np.bool_)
    zeros_b = np.zeros(batch, np.bool_)
    discounts = np.full(batch, discount)
    for sim in range(num_simulations):
        _select_kernel(
            children_prior_logits, children_prior_probs, children_legal, children_visits, children_rewards,
            children_discounts,
            children_values, children_index, raw_values, node_terminal, gumbel, table, num_considered, sim,
            c_visit, c_scale, parent, action, existing,
        )
        new_node = sim + 1
        for b in range(batch):
            x[b] = hidden[b, parent[b]]
        # dynamics on [hidden, onehot(action)]: the one-hot half of the first layer is a row lookup
        h = np.dot(x, dyn_first[:hidden_dim]) + dyn_b[0]
        for b in range(batch):
            h[b] += dyn_first[hidden_dim + action[b]]
        h = _mlp_tail(h, dyn_w, dyn_b, dyn_g, dyn_be, dyn_n)
        nxt = _scale_hidden(h)
        for b in range(batch):
            hidden[b, new_node] = nxt[b]
        rew = _mlp(nxt, rew_w, rew_b, rew_g, rew_be, rew_n)
        _decode(rew, atoms, reward)
        pred = _mlp(nxt, pre_w, pre_b, pre_g, pre_be, pre_n)
        _decode(pred[:, num_actions:], atoms, value)
        _expand_backup_kernel(
            parent, action, existing, new_node,
            pred[:, :num_actions].astype(np.float64), legal_new, value, reward, discounts, zeros_b,
            node_visits, raw_values, node_values, node_terminal, parents, action_from_parent, children_index,
            children_prior_logits, children_prior_probs, children_legal, children_visits, children_rewards,
            children_discounts, children_values,
        )


@nb.njit(cache=True)
def _mlp_tail(h, weights, biases, gammas, betas, num_hidden):  # noqa: ANN001, ANN202
    """Layers 1.. of an MLP whose first Linear was already applied to give ``h``."""
    for layer in range(num_hidden + 1):
        if layer > 0:
            h = np.dot(h, weights[layer]) + biases[layer]
        if layer < num_hidden:
            _layer_norm_relu(h, gammas[layer], betas[layer])
    return h


def fused_learned_search(
    net: MuZeroNetwork,
    obs: np.ndarray,
    root_legal: np.ndarray,
    config: SearchConfig,
    gumbel: np.ndarray,
    table: np.ndarray,
    num_considered: np.ndarray,
) -> Tree:
    """Run the learned-model search of ``config`` for B roots; returns the filled :class:`Tree`."""
    w = fused_weights(net)
    obs = np.ascontiguousarray(obs, dtype=np.float32)
    batch = obs.shape[0]
    tree = Tree.empty(batch, config.num_simulations + 1, w.num_actions)
    mlps: list[Any] = []
    for m in (w.representation, w.dynamics, w.reward_head, w.prediction):
        mlps += [m.weights, m.biases, m.gammas, m.betas, m.num_hidden]
    _fused_search(
        obs, np.ascontiguousarray(root_legal, dtype=np.bool_), np.ascontiguousarray(gumbel, dtype=np.float64),
        table, num_considered.astype(np.int64), config.num_simulations, config.c_visit, config.c_scale,
        config.discount, *mlps, w.atoms, w.num_actions, w.hidden_dim,
        tree.node_visits, tree.raw_values, tree.node_values, tree.node_terminal, tree.parents,
        tree.action_from_parent, tree.children_index, tree.children_prior_logits, tree.children_prior_probs,
        tree.children_legal, tree.children_visits, tree.children_rewards, tree.children_discounts,
        tree.children_values,
    )
    return tree
