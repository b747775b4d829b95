"""A heuristic episode of MemoryMapping on a generated CSV instance of tens of thousands of buffers.

    python benchmarks/large_instance.py [--n-buffers 60000] [--mode place|order]

Writes the instance to a temporary CSV (the MiniMalloc format), builds the env from it (parse + conflict
graph) and plays XLA best fit (action 0) to the end, printing the time of each phase.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import schedgym  # noqa: F401
from schedgym.envs.memory_mapping.instances import generate_random, with_capacity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-buffers", type=int, default=60_000)
    parser.add_argument("--mode", choices=["place", "order"], default="place")
    args = parser.parse_args()
    inst = with_capacity(generate_random(np.random.default_rng(0), n_buffers=args.n_buffers), 0.5)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"random{args.n_buffers}.csv"
        rows = np.stack([np.arange(inst.n), inst.start, inst.end, inst.size], axis=1)
        np.savetxt(path, rows, fmt="%d", delimiter=",", header="id,lower,upper,size", comments="")
        t0 = time.perf_counter()
        env = gym.make("schedgym/MemoryMapping-v0", instance=f"csv:{path}", capacity=0.5, action_mode=args.mode)
        obs, info = env.reset(seed=0)
        t1 = time.perf_counter()
        steps, done = 0, False
        while not done:
            obs, _, done, _, info = env.step(0)
            steps += 1
        t2 = time.perf_counter()
    m = info["metrics"]
    print(f"{args.n_buffers} buffers ({args.mode} mode): load+prepare {t1 - t0:.1f} s, episode {t2 - t1:.1f} s "
          f"({steps} steps, {steps / (t2 - t1):,.0f} steps/s), benefit placed {m['benefit_placed_frac']:.3f}, "
          f"{int(m['buffers_placed'])} placed")


if __name__ == "__main__":
    main()
