"""A heuristic episode of MemoryMapping on a generated CSV instance of tens of thousands of buffers.

    python benchmarks/large_instance.py [--n-buffers 60000] [--mode place|order]

Writes the instance to a temporary CSV (the MiniMalloc format), builds the env from it (parse + conflict
graph: the *load*) and plays XLA best fit (action 0) to the end (the *episode*). The target is stated as a
ratio, so that it does not depend on the machine: an XLA-best-fit episode of 60k buffers costs at most a
few loads (well under 10 s on the 2-core reference machine). Wall and CPU time of this process are both
printed: on a shared machine the wall time includes other processes' turns.
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
    # Compile (or load from the numba cache) the env's kernels on a small instance first.
    warm = gym.make("schedgym/MemoryMapping-v0", instance="random", n_buffers=50, action_mode=args.mode)
    warm.reset(seed=0)
    while not warm.step(0)[2]:
        pass
    inst = with_capacity(generate_random(np.random.default_rng(0), n_buffers=args.n_buffers), 0.5)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"random{args.n_buffers}.csv"
        rows = np.stack([np.arange(inst.n), inst.start, inst.end, inst.size], axis=1)
        np.savetxt(path, rows, fmt="%d", delimiter=",", header="id,lower,upper,size", comments="")
        t0, c0 = time.perf_counter(), time.process_time()
        env = gym.make("schedgym/MemoryMapping-v0", instance=f"csv:{path}", capacity=0.5, action_mode=args.mode)
        obs, info = env.reset(seed=0)
        t1, c1 = time.perf_counter(), time.process_time()
        steps, done = 0, False
        while not done:
            obs, _, done, _, info = env.step(0)
            steps += 1
        t2, c2 = time.perf_counter(), time.process_time()
    m = info["metrics"]
    load_w, ep_w, load_c, ep_c = t1 - t0, t2 - t1, c1 - c0, c2 - c1
    print(f"{args.n_buffers} buffers ({args.mode} mode): load {load_w:.2f} s wall ({load_c:.2f} s cpu), "
          f"episode {ep_w:.2f} s wall ({ep_c:.2f} s cpu; {steps} steps, {steps / ep_c:,.0f} steps per cpu s)")
    print(f"episode / load: {ep_w / load_w:.2f} (wall), {ep_c / load_c:.2f} (cpu); "
          f"benefit placed {m['benefit_placed_frac']:.3f}, {int(m['buffers_placed'])} placed")


if __name__ == "__main__":
    main()
