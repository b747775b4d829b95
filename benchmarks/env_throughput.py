"""Steps per second of every schedgym env, measured in the same run as ``gym.make("CartPole-v1")``.

The machine is shared and noisy, so each env is reported as a ratio to CartPole measured in this same
run (CartPole-v1 through gym.make is ~58k steps/s on the reference 2-core machine).

    python benchmarks/env_throughput.py [--seconds 3] [--only MemoryMapping]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

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
    ("PowerCapping azure-conv 52 servers", "schedgym/PowerCapping-v1", {"n_servers": 52}),
    ("PowerCapping synthetic 200 servers", "schedgym/PowerCapping-v1", {"n_servers": 200, "provisioned_servers": 160, "workload": "synthetic"}),
]


def measure(make: Callable[[], gym.Env], seconds: float, masked: bool = True) -> tuple[float, int]:
    """Steps/s of random legal actions (the policy's cost excluded as far as possible)."""
    env = make()
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    n_actions = env.action_space.n
    steps, spent, episodes = 0, 0.0, 0
    # Pre-drawn uniforms keep the action choice cheap next to the env step.
    uniforms = rng.random(1 << 16)
    while spent < seconds:
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
                # Reset time counts: an episode's setup is part of what a trainer pays.
                obs, info = env.reset()
                episodes += 1
        spent += time.perf_counter() - t0
    return steps / spent, episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per case")
    parser.add_argument("--only", default="", help="substring filter on the case labels")
    args = parser.parse_args()
    cartpole, _ = measure(lambda: gym.make("CartPole-v1"), args.seconds, masked=False)
    print(f"{'case':<40} {'steps/s':>12} {'x CartPole':>11} {'episodes':>9}")
    print(f"{'CartPole-v1 (gym.make)':<40} {cartpole:>12,.0f} {1.0:>11.3f} {'':>9}")
    for label, env_id, kwargs in CASES:
        if args.only and args.only not in label:
            continue
        rate, episodes = measure(lambda: gym.make(env_id, **kwargs), args.seconds)
        print(f"{label:<40} {rate:>12,.0f} {rate / cartpole:>11.3f} {episodes:>9}")


if __name__ == "__main__":
    main()
