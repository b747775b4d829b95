"""Simulations per second of the batched Gumbel MuZero search vs a muzero-general-style reference.

Both searches use the same fixed small network (learned model: representation, dynamics, prediction)
and the same number of simulations per move, in the same run, with torch on one thread:

- batched: :func:`schedgym.agents.muzero.search.gumbel_muzero_search` over B trees at once
  (array tree, numba kernels, ONE batched network call per simulation for all B trees);
- reference: written here in the style of muzero-general's ``self_play.py`` (MIT): Python ``Node``
  objects with a children dict, pUCT selection, min-max stats, and one batch-1 network call per
  simulation; B trees are searched one after the other.

Usage: ``python benchmarks/mcts_throughput.py [--sims 32] [--actions 17] [--quick]``.
Prints simulations/s per B and the ratio batched / reference (target: >= 10x at B = 64).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from schedgym.agents.muzero.models import LearnedModel
from schedgym.agents.muzero.networks import MuZeroNetwork, NetworkConfig
from schedgym.agents.muzero.search import SearchConfig, gumbel_muzero_search


# --------------------------------------------------------------------------- reference (muzero-general style)
class MinMaxStats:
    def __init__(self) -> None:
        self.maximum, self.minimum = -float("inf"), float("inf")

    def update(self, value: float) -> None:
        self.maximum = max(self.maximum, value)
        self.minimum = min(self.minimum, value)

    def normalize(self, value: float) -> float:
        if self.maximum > self.minimum:
            return (value - self.minimum) / (self.maximum - self.minimum)
        return value


class Node:
    def __init__(self, prior: float) -> None:
        self.visit_count = 0
        self.prior = prior
        self.value_sum = 0.0
        self.children: dict[int, Node] = {}
        self.hidden_state: torch.Tensor | None = None
        self.reward = 0.0

    def expanded(self) -> bool:
        return len(self.children) > 0

    def value(self) -> float:
        return 0.0 if self.visit_count == 0 else self.value_sum / self.visit_count

    def expand(self, actions: list[int], reward: float, policy_logits: torch.Tensor, hidden: torch.Tensor) -> None:
        self.reward = reward
        self.hidden_state = hidden
        policy_values = torch.softmax(torch.tensor([policy_logits[0][a] for a in actions]), dim=0).tolist()
        for a, p in zip(actions, policy_values):
            self.children[a] = Node(p)


class ReferenceMCTS:
    """muzero-general's MCTS.run, minus exploration noise (pb_c_base 19652, pb_c_init 1.25)."""

    def __init__(self, net: MuZeroNetwork, num_simulations: int, discount: float = 1.0) -> None:
        self.net, self.num_simulations, self.discount = net, num_simulations, discount
        self.pb_c_base, self.pb_c_init = 19652, 1.25

    @torch.no_grad()
    def run(self, obs: np.ndarray, legal_actions: list[int]) -> Node:
        net = self.net
        root = Node(0.0)
        hidden = net.represent(torch.as_tensor(obs[None]))
        logits, value_logits = net.predict(hidden)
        root.expand(legal_actions, 0.0, logits, hidden)
        stats = MinMaxStats()
        all_actions = list(range(net.cfg.num_actions))
        for _ in range(self.num_simulations):
            node = root
            path = [node]
            action = 0
            while node.expanded():
                action, node = self.select_child(node, stats)
                path.append(node)
            parent = path[-2]
            # one network call of batch 1 per simulation
            hidden, reward_logits = net.dynamics_step(parent.hidden_state, torch.tensor([action]))
            logits, value_logits = net.predict(hidden)
            value = float(net.support.logits_to_scalar(value_logits)[0])
            reward = float(net.support.logits_to_scalar(reward_logits)[0])
            node.expand(all_actions, reward, logits, hidden)
            self.backpropagate(path, value, stats)
        return root

    def select_child(self, node: Node, stats: MinMaxStats) -> tuple[int, Node]:
        max_ucb = max(self.ucb_score(node, child, stats) for child in node.children.values())
        action = next(a for a, child in node.children.items() if self.ucb_score(node, child, stats) == max_ucb)
        return action, node.children[action]

    def ucb_score(self, parent: Node, child: Node, stats: MinMaxStats) -> float:
        pb_c = math.log((parent.visit_count + self.pb_c_base + 1) / self.pb_c_base) + self.pb_c_init
        pb_c *= math.sqrt(parent.visit_count) / (child.visit_count + 1)
        prior_score = pb_c * child.prior
        value_score = stats.normalize(child.reward + self.discount * child.value()) if child.visit_count > 0 else 0.0
        return prior_score + value_score

    def backpropagate(self, path: list[Node], value: float, stats: MinMaxStats) -> None:
        for node in reversed(path):
            node.value_sum += value
            node.visit_count += 1
            stats.update(node.reward + self.discount * node.value())
            value = node.reward + self.discount * value


# --------------------------------------------------------------------------- benchmark
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sims", type=int, default=32, help="simulations per move (both searches)")
    ap.add_argument("--actions", type=int, default=17, help="actions (MemoryMapping default K=16 -> 17)")
    ap.add_argument("--obs-dim", type=int, default=128)
    ap.add_argument("--batches", type=str, default="1,16,64,256")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = MuZeroNetwork(NetworkConfig(args.obs_dim, args.actions, hidden_dim=64, layers=(128, 128))).eval()
    rng = np.random.default_rng(0)
    cfg = SearchConfig(num_simulations=args.sims)

    def batched_rate(batch: int) -> float:
        obs = rng.normal(size=(batch, args.obs_dim)).astype(np.float32)
        legal = rng.random((batch, args.actions)) < 0.7
        legal[:, -1] = True
        gumbel_muzero_search(LearnedModel(net, obs, legal), cfg, rng)  # warm-up (numba compile)
        reps, elapsed = 0, 0.0
        while elapsed < (0.5 if args.quick else 2.0) or reps < 2:
            t0 = time.perf_counter()
            gumbel_muzero_search(LearnedModel(net, obs, legal), cfg, rng)
            elapsed += time.perf_counter() - t0
            reps += 1
        return reps * batch * args.sims / elapsed

    def reference_rate() -> float:
        ref = ReferenceMCTS(net, args.sims)
        obs = rng.normal(size=(1, args.obs_dim)).astype(np.float32)
        legal = [a for a in range(args.actions) if a % 3 != 1] or [0]
        ref.run(obs[0], legal)
        trees, elapsed = 0, 0.0
        while elapsed < (1.0 if args.quick else 4.0) or trees < 4:
            t0 = time.perf_counter()
            ref.run(obs[0], legal)
            elapsed += time.perf_counter() - t0
            trees += 1
        return trees * args.sims / elapsed

    ref_rate = reference_rate()
    print(f"network: obs {args.obs_dim} -> hidden 64, MLP (128, 128) + LayerNorm; actions {args.actions}; "
          f"{args.sims} simulations/move; torch threads 1")
    print(f"reference (muzero-general style, Python nodes, batch-1 calls): {ref_rate:10.0f} simulations/s")
    print(f"{'B':>5} {'batched sims/s':>15} {'ratio vs reference':>20}")
    for batch in [int(b) for b in args.batches.split(",")]:
        rate = batched_rate(batch)
        print(f"{batch:>5} {rate:15.0f} {rate / ref_rate:19.1f}x")


if __name__ == "__main__":
    main()
