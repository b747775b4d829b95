"""Simulations per second of the batched Gumbel MuZero search vs DeepMind's mctx and a muzero-general-style search.

All searches use the same fixed small network (learned model: representation, dynamics, prediction; obs
128 -> hidden 64, MLPs (128, 128) with LayerNorm, 41-atom value/reward supports) and the same number of
simulations per move, in the same run, on one thread:

- fused: :func:`schedgym.agents.muzero.search.gumbel_muzero_search` with ``LearnedModel(fused=True)``
  (the default): the whole search, network inference included, in one numba call (``fused.py``);
- model calls: the same search with ``fused=False``: per simulation a numba select kernel, one batched
  torch call for all B trees, a numba backup kernel;
- mctx (when installed: ``pip install -e .[compare]``): DeepMind's ``mctx.gumbel_muzero_policy`` under
  ``jax.jit``, with the same network written in JAX and the torch weights copied in, XLA on one thread;
- reference: written here in the style of muzero-general's ``self_play.py`` (MIT): Python ``Node``
  objects with a children dict, pUCT selection, min-max stats, one batch-1 network call per simulation.

Usage: ``python benchmarks/mcts_throughput.py [--sims 32] [--actions 17] [--quick] [--json]``.
Rates are simulations per CPU second of the process (``time.process_time``: all threads, immune to
time spent descheduled on a shared machine), best of 3 interleaved rounds. Prints them per B and the ratios fused / mctx and fused / model calls (target: fused >= mctx at
B = 16, 64, 256).
"""

from __future__ import annotations

import os

# One thread for every library (before numpy, torch or jax load their thread pools): XLA, torch and the
# BLAS that numba's np.dot calls, so that the searches compare like for like (as self-play actors run).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable

import numpy as np  # noqa: E402
import torch  # noqa: E402

from schedgym.agents.muzero.models import LearnedModel  # noqa: E402
from schedgym.agents.muzero.networks import MuZeroNetwork, NetworkConfig  # noqa: E402
from schedgym.agents.muzero.search import SearchConfig, gumbel_muzero_search  # noqa: E402


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


# --------------------------------------------------------------------------- mctx (optional)
def make_mctx_search(net: MuZeroNetwork, num_simulations: int) -> Callable[[np.ndarray, np.ndarray, int], Any] | None:
    """A jitted ``mctx.gumbel_muzero_policy`` over the same network (weights copied from ``net``), or None."""
    try:
        import jax
        import jax.numpy as jnp
        import mctx
    except ImportError:
        return None
    from schedgym.agents.muzero.networks import TRANSFORM_EPS

    def layers_of(seq: torch.nn.Sequential) -> tuple[tuple[str, ...], list[Any]]:
        """Layer kinds (static, closed over) and their arrays (the jitted function's params)."""
        kinds, arrays = [], []
        for m in seq:
            if isinstance(m, (torch.nn.Linear, torch.nn.LayerNorm)):
                kinds.append("linear" if isinstance(m, torch.nn.Linear) else "norm")
                w = m.weight.detach().numpy()
                arrays.append((jnp.asarray(w.T if kinds[-1] == "linear" else w), jnp.asarray(m.bias.detach().numpy())))
            elif isinstance(m, torch.nn.ReLU):
                kinds.append("relu")
                arrays.append(())
        return tuple(kinds), arrays

    def mlp(kinds: tuple[str, ...], arrays: list[Any], x: Any) -> Any:
        for kind, p in zip(kinds, arrays):
            if kind == "linear":
                x = x @ p[0] + p[1]
            elif kind == "norm":
                mean = x.mean(-1, keepdims=True)
                var = ((x - mean) ** 2).mean(-1, keepdims=True)
                x = (x - mean) / jnp.sqrt(var + 1e-5) * p[0] + p[1]
            else:
                x = jax.nn.relu(x)
        return x

    def scale(s: Any) -> Any:
        lo, hi = s.min(-1, keepdims=True), s.max(-1, keepdims=True)
        return (s - lo) / jnp.maximum(hi - lo, 1e-5)

    atoms = jnp.asarray(net.support.atoms.numpy())
    num_actions = net.cfg.num_actions

    def decode(logits: Any) -> Any:
        y = (jax.nn.softmax(logits, -1) * atoms).sum(-1)
        eps = TRANSFORM_EPS
        return jnp.sign(y) * (((jnp.sqrt(1.0 + 4.0 * eps * (jnp.abs(y) + 1.0 + eps)) - 1.0) / (2.0 * eps)) ** 2 - 1.0)

    names = ("representation", "dynamics", "reward_head", "prediction")
    kinds = {name: layers_of(getattr(net, name))[0] for name in names}
    params = {name: layers_of(getattr(net, name))[1] for name in names}

    def net_fn(name: str, params: Any, x: Any) -> Any:
        return mlp(kinds[name], params[name], x)

    def recurrent_fn(params: Any, key: Any, action: Any, embedding: Any) -> Any:
        x = jnp.concatenate([embedding, jax.nn.one_hot(action, num_actions)], -1)
        nxt = scale(net_fn("dynamics", params, x))
        out = net_fn("prediction", params, nxt)
        return mctx.RecurrentFnOutput(
            reward=decode(net_fn("reward_head", params, nxt)), discount=jnp.ones(nxt.shape[0]),
            prior_logits=out[:, :num_actions], value=decode(out[:, num_actions:])), nxt

    @jax.jit
    def search(params: Any, key: Any, obs: Any, invalid: Any) -> Any:
        s0 = scale(net_fn("representation", params, obs))
        out = net_fn("prediction", params, s0)
        root = mctx.RootFnOutput(prior_logits=out[:, :num_actions], value=decode(out[:, num_actions:]), embedding=s0)
        return mctx.gumbel_muzero_policy(params, key, root, recurrent_fn, num_simulations=num_simulations,
                                         invalid_actions=invalid, max_num_considered_actions=16)

    def run(obs: np.ndarray, legal: np.ndarray, seed: int) -> Any:
        out = search(params, jax.random.PRNGKey(seed), jnp.asarray(obs), jnp.asarray(~legal))
        return out.action.block_until_ready()

    return run


# --------------------------------------------------------------------------- benchmark
def _rate(fn: Callable[[], Any], sims_per_call: int, min_s: float) -> float:
    """Simulations per CPU second of this process (all its threads, so XLA's worker thread counts too).

    CPU time rather than wall time: on a shared machine a descheduled process's wall clock keeps running.
    """
    fn()  # warm-up (numba / XLA compile)
    calls, elapsed = 0, 0.0
    while elapsed < min_s or calls < 2:
        t0 = time.process_time()
        fn()
        elapsed += time.process_time() - t0
        calls += 1
    return calls * sims_per_call / elapsed


def _interleaved_rates(fns: dict[str, Callable[[], Any]], sims_per_call: int, min_s: float, rounds: int) -> dict[str, float]:
    """Best of ``rounds`` measurements per search, the searches taking turns within each round.

    On a shared machine the load changes from second to second; taking turns exposes every search to the
    same conditions, and the best round is the one least disturbed (as ``timeit`` reports the minimum).
    """
    best = {name: 0.0 for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = max(best[name], _rate(fn, sims_per_call, min_s / rounds))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sims", type=int, default=32, help="simulations per move (all searches)")
    ap.add_argument("--actions", type=int, default=17, help="actions (MemoryMapping default K=16 -> 17)")
    ap.add_argument("--obs-dim", type=int, default=128)
    ap.add_argument("--batches", type=str, default="1,16,64,256")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--json", action="store_true", help="one JSON object per B instead of the table")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = MuZeroNetwork(NetworkConfig(args.obs_dim, args.actions, hidden_dim=64, layers=(128, 128))).eval()
    rng = np.random.default_rng(0)
    cfg = SearchConfig(num_simulations=args.sims)
    min_s = 0.5 if args.quick else 2.0
    mctx_search = make_mctx_search(net, args.sims)

    ref = ReferenceMCTS(net, args.sims)
    ref_obs = rng.normal(size=(1, args.obs_dim)).astype(np.float32)
    ref_legal = [a for a in range(args.actions) if a % 3 != 1] or [0]
    ref_rate = _rate(lambda: ref.run(ref_obs[0], ref_legal), args.sims, 2 * min_s)
    if not args.json:
        print(f"network: obs {args.obs_dim} -> hidden 64, MLP (128, 128) + LayerNorm; actions {args.actions}; "
              f"{args.sims} simulations/move; one thread")
        print(f"reference (muzero-general style, Python nodes, batch-1 calls): {ref_rate:10.0f} simulations/s")
        if mctx_search is None:
            print("mctx: not installed (pip install -e .[compare]); its columns are empty")
        print(f"{'B':>5} {'fused sims/s':>13} {'model-call sims/s':>18} {'mctx sims/s':>12} "
              f"{'fused/mctx':>11} {'fused/calls':>12}")
    for batch in [int(b) for b in args.batches.split(",")]:
        obs = rng.normal(size=(batch, args.obs_dim)).astype(np.float32)
        legal = rng.random((batch, args.actions)) < 0.7
        legal[:, -1] = True
        sims = batch * args.sims
        fns: dict[str, Callable[[], Any]] = {
            "fused": lambda: gumbel_muzero_search(LearnedModel(net, obs, legal), cfg, rng),
            "calls": lambda: gumbel_muzero_search(LearnedModel(net, obs, legal, fused=False), cfg, rng),
        }
        if mctx_search is not None:
            fns["mctx"] = lambda: mctx_search(obs, legal, 0)
        rates = _interleaved_rates(fns, sims, 3 * min_s, rounds=3)
        fused, calls, jaxed = rates["fused"], rates["calls"], rates.get("mctx")
        row = {"batch": batch, "fused_sims_per_s": fused, "model_calls_sims_per_s": calls,
               "mctx_sims_per_s": jaxed, "reference_sims_per_s": ref_rate,
               "fused_over_mctx": fused / jaxed if jaxed else None, "fused_over_model_calls": fused / calls}
        if args.json:
            print(json.dumps(row))
        else:
            m = f"{jaxed:12.0f} {fused / jaxed:10.2f}x" if jaxed else f"{'-':>12} {'-':>11}"
            print(f"{batch:>5} {fused:13.0f} {calls:18.0f} {m} {fused / calls:11.1f}x")


if __name__ == "__main__":
    main()
