"""Cost of the rollouts behind ``rollout_search`` and the memory search agent, per MiniMalloc instance.

A rollout (``env.rollout_return()``) plays the order-mode default action from the first state to the end
of the episode in one numba call; ``rollout_search`` and the agent do up to ``K + 1`` of them per move.
Prints, per instance, the rollouts per second, the env steps per second inside them and the same steps
through ``gym.make`` + ``step`` (Python per step), and CartPole-v1's ``gym.make`` steps per second measured
in the same run (this machine is shared: compare ratios).

    python benchmarks/memory_rollouts.py [--seconds 1.0] [--instances ABCDEFGHIJK] [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np

import schedgym  # noqa: F401  (registers the ids)


def _cartpole_steps_per_s(seconds: float) -> float:
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        _, _, term, trunc, _ = env.step(n % 2)
        n += 1
        if term or trunc:
            env.reset()
    return n / (time.perf_counter() - t0)


def measure(letter: str, seconds: float) -> dict[str, float | str]:
    env = gym.make("schedgym/MemoryMapping-v0", instance=f"minimalloc:{letter}", action_mode="order")
    env.reset(seed=0)
    inner = env.unwrapped
    inner.rollout_return()  # compile
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        inner.rollout_return()
        n += 1
    per_rollout = (time.perf_counter() - t0) / n
    steps, t0, done = 0, time.perf_counter(), False
    while not done:
        _, _, term, trunc, _ = env.step(0)
        steps += 1
        done = term or trunc
    python_steps_per_s = steps / (time.perf_counter() - t0)
    return {"instance": f"minimalloc:{letter}", "rollouts_per_s": 1.0 / per_rollout,
            "rollout_steps_per_s": steps / per_rollout, "gym_steps_per_s": python_steps_per_s,
            "cartpole_steps_per_s": _cartpole_steps_per_s(min(seconds, 0.5))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per instance for the rollouts")
    parser.add_argument("--instances", default="ABCDEFGHIJK", help="MiniMalloc letters")
    parser.add_argument("--json", action="store_true", help="one JSON object per instance")
    args = parser.parse_args()
    rows = [measure(x, args.seconds) for x in args.instances]
    for r in rows:
        if args.json:
            print(json.dumps(r))
        else:
            print(f"{r['instance']:>14}  {r['rollouts_per_s']:8.1f} rollouts/s  {r['rollout_steps_per_s']:10.0f} "
                  f"steps/s in rollouts  {r['gym_steps_per_s']:8.0f} steps/s via gym  "
                  f"(CartPole {r['cartpole_steps_per_s']:.0f}; ratio {r['rollout_steps_per_s'] / r['cartpole_steps_per_s']:.2f})")
    if not args.json:
        print(f"mean rollouts/s {np.mean([r['rollouts_per_s'] for r in rows]):.1f}")


if __name__ == "__main__":
    main()
