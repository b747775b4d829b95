"""Steps per second of every schedgym env, as a ratio to CartPole measured interleaved in the same run.

The machine is shared and noisy, so each case runs in alternating slices with its CartPole yardstick and
is reported as a ratio: single-env cases against ``gym.make("CartPole-v1")`` (~58k steps/s on the
reference 2-core machine), native vector cases (``gym.make_vec(id, num_envs=N,
vectorization_mode="vector_entry_point")``, env steps/s = N x vector steps/s) against CartPole's native
vector env at the same N. The vector envs spread their sub-envs over threads (``NUMBA_NUM_THREADS``, both
cores here) while CartPole's runs on one: ``--serial`` adds their one-thread rates (``parallel=False``).

    python benchmarks/env_throughput.py [--seconds 3] [--only MemoryMapping] [--num-envs 64] [--json] [--serial] [--sync]

``--json`` prints a JSON list of ``{"case", "env_id", "num_envs", "vectorized", "steps_per_s",
"ratio_to_cartpole"}`` instead of the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator

import gymnasium as gym
import numpy as np

import schedgym  # noqa: F401

#: (label, env id, kwargs). Each family adds its cases here.
CASES: list[tuple[str, str, dict]] = [
    ("MemoryMapping minimalloc:K", "schedgym/MemoryMapping-v0", {"instance": "minimalloc:K"}),
    ("MemoryMapping random n=10000", "schedgym/MemoryMapping-v0", {"instance": "random", "n_buffers": 10000}),
    ("MemoryMapping order minimalloc:K", "schedgym/MemoryMapping-v0", {"instance": "minimalloc:K", "action_mode": "order"}),
    ("GPUAutoscaling azure-conv", "schedgym/GPUAutoscaling-v1", {"workload": "azure-conv"}),
    ("GPUAutoscaling synthetic 1 day", "schedgym/GPUAutoscaling-v1", {"workload": "synthetic"}),
    ("AgentScheduling poisson (default)", "schedgym/AgentScheduling-v1", {}),
    ("AgentScheduling azure-code bursty", "schedgym/AgentScheduling-v1", {"workload": "azure-code"}),
    ("PowerCapping azure-conv 52 servers", "schedgym/PowerCapping-v2", {"n_servers": 52}),
    ("PowerCapping synthetic 200 servers", "schedgym/PowerCapping-v2", {"n_servers": 200, "provisioned_servers": 160, "workload": "synthetic"}),
]


#: (label, env id, kwargs) of the native vector cases (ids registered with a ``vector_entry_point``).
VECTOR_CASES: list[tuple[str, str, dict]] = [
    ("MemoryMapping minimalloc:K", "schedgym/MemoryMapping-v0", {"instance": "minimalloc:K"}),
    ("AgentScheduling poisson (default)", "schedgym/AgentScheduling-v1", {}),
    ("AgentScheduling azure-code bursty", "schedgym/AgentScheduling-v1", {"workload": "azure-code"}),
    ("GPUAutoscaling azure-conv", "schedgym/GPUAutoscaling-v1", {"workload": "azure-conv"}),
    ("PowerCapping azure-conv 52 servers", "schedgym/PowerCapping-v2", {"n_servers": 52}),
]


#: Vector envs that spread their sub-envs over threads by default (``parallel=True``; CartPole's vector env
#: runs on one thread). ``--serial`` measures them on one thread too.
PARALLEL_VECTOR_IDS = ("schedgym/MemoryMapping-v0", "schedgym/AgentScheduling-v1", "schedgym/GPUAutoscaling-v1",
                       "schedgym/PowerCapping-v2")  # fmt: skip


def _single_stepper(make: Callable[[], gym.Env], masked: bool = True) -> Iterator[tuple[int, float]]:
    """Yields (env steps, seconds) of 256 steps of random legal actions at a time (resets count)."""
    env = make()
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    n_actions = env.action_space.n
    uniforms = rng.random(1 << 16)
    steps = 0
    while True:
        t0 = time.perf_counter()
        for _ in range(256):
            if masked and "action_mask" in info:
                legal = np.flatnonzero(info["action_mask"])
                action = int(legal[int(uniforms[steps & 0xFFFF] * legal.size)])
            else:
                action = int(uniforms[steps & 0xFFFF] * n_actions)
            obs, reward, terminated, truncated, info = env.step(action)
            steps += 1
            if terminated or truncated:
                obs, info = env.reset()
        yield 256, time.perf_counter() - t0


def _vector_stepper(make: Callable[[], gym.vector.VectorEnv], masked: bool = True) -> Iterator[tuple[int, float]]:
    """Yields (env steps, seconds) of 16 vector steps of random legal actions at a time (autoresets count)."""
    env = make()
    n = env.num_envs
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    n_actions = int(env.single_action_space.n)
    # Pre-drawn uniforms keep the action choice cheap next to the env step.
    uniforms = rng.random((64, n, n_actions))
    i = 0
    while True:
        t0 = time.perf_counter()
        for _ in range(16):
            u = uniforms[i & 63]
            i += 1
            if masked and "action_mask" in info:
                actions = (u * info["action_mask"]).argmax(axis=1)  # uniform among the legal actions
            else:
                actions = (u[:, 0] * n_actions).astype(np.int64)
            obs, reward, terminated, truncated, info = env.step(actions)
        yield 16 * n, time.perf_counter() - t0


def interleaved(case: Iterator[tuple[int, float]], cartpole: Iterator[tuple[int, float]], seconds: float,
                rounds: int = 6) -> tuple[float, float]:
    """Steps/s of ``case`` and of ``cartpole``, alternating slices of ``seconds / rounds`` each."""
    totals = {"case": [0, 0.0], "cartpole": [0, 0.0]}
    next(case), next(cartpole)  # warm-up slices, not counted: numba compiles kernels on first use
    for r in range(1, rounds + 1):
        for name, it in (("case", case), ("cartpole", cartpole)):
            acc = totals[name]
            while acc[1] < seconds * r / rounds:
                n, dt = next(it)
                acc[0] += n
                acc[1] += dt
    return totals["case"][0] / totals["case"][1], totals["cartpole"][0] / totals["cartpole"][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per case (and as much for CartPole)")
    parser.add_argument("--only", default="", help="substring filter on the case labels")
    parser.add_argument("--num-envs", type=int, default=64, help="N of the vector cases")
    parser.add_argument("--json", action="store_true", help="print a JSON list of rows instead of the table")
    parser.add_argument("--serial", action="store_true",
                        help="also measure every vector env with parallel=False (one thread)")  # fmt: skip
    parser.add_argument("--sync", action="store_true",
                        help="also measure Gymnasium's SyncVectorEnv over N gym.make envs for each vector case "
                             "(the native env's gain over it, against the same CartPole yardstick)")  # fmt: skip
    args = parser.parse_args()
    n = args.num_envs
    rows: list[dict] = []
    out = sys.stderr if args.json else sys.stdout
    print(f"{'case':<48} {'steps/s':>12} {'CartPole':>12} {'x CartPole':>11}", file=out, flush=True)

    def report(label: str, env_id: str, num_envs: int, vectorized: bool, rate: float, cart: float) -> None:
        rows.append({"case": label, "env_id": env_id, "num_envs": num_envs, "vectorized": vectorized,
                     "steps_per_s": rate, "ratio_to_cartpole": rate / cart})  # fmt: skip
        print(f"{label:<48} {rate:>12,.0f} {cart:>12,.0f} {rate / cart:>11.3f}", file=out, flush=True)

    for label, env_id, kwargs in CASES:
        if args.only and args.only not in label:
            continue
        case = _single_stepper(lambda: gym.make(env_id, **kwargs))
        cart = _single_stepper(lambda: gym.make("CartPole-v1"), masked=False)
        rate, cart_rate = interleaved(case, cart, args.seconds)
        report(label, env_id, 1, False, rate, cart_rate)
    for label, env_id, kwargs in VECTOR_CASES:
        label = f"{label} vector N={n}"
        if args.only and args.only not in label:
            continue
        case = _vector_stepper(lambda: gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs))
        cart = _vector_stepper(lambda: gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point"),
                               masked=False)  # fmt: skip
        rate, cart_rate = interleaved(case, cart, args.seconds)
        report(label, env_id, n, True, rate, cart_rate)
        if args.serial and env_id in PARALLEL_VECTOR_IDS:
            case = _vector_stepper(lambda: gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point",
                                                        parallel=False, **kwargs))  # fmt: skip
            cart = _vector_stepper(lambda: gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point"),
                                   masked=False)  # fmt: skip
            rate, cart_rate = interleaved(case, cart, args.seconds)
            report(f"{label} serial", env_id, n, True, rate, cart_rate)
        if args.sync:
            case = _vector_stepper(lambda: gym.make_vec(env_id, num_envs=n, vectorization_mode="sync", **kwargs))
            cart = _vector_stepper(lambda: gym.make_vec("CartPole-v1", num_envs=n, vectorization_mode="vector_entry_point"),
                                   masked=False)  # fmt: skip
            rate, cart_rate = interleaved(case, cart, args.seconds)
            report(label.replace("vector", "SyncVectorEnv"), env_id, n, True, rate, cart_rate)
    if args.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
