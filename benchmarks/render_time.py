"""Seconds per rendered frame of every env (``render_mode="rgb_array"``), the basis of ``metadata["render_fps"]``.

Each env plays ``--steps`` steps of its default action on a typical instance (so the picture has content),
then renders ``--frames`` times; the figure is rebuilt on every call, as in ``env.render()``. Prints one
line per env: seconds per frame (median) and the frames per second that allows. Each env's
``metadata["render_fps"]`` is the whole frames per second measured on the reference 2-core machine
(2026, shared): MemoryMapping 0.20 s -> 4, GPUAutoscaling 0.26 s -> 3, PowerCapping 0.38 s -> 2,
AgentScheduling 0.56 s -> 1.

    MPLBACKEND=Agg python benchmarks/render_time.py [--frames 5] [--steps 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import gymnasium as gym

import schedgym  # noqa: F401  (registers the ids)

#: A typical instance of each id, with content to draw.
CASES: dict[str, dict[str, Any]] = {
    "schedgym/MemoryMapping-v0": {"instance": "minimalloc:A"},
    "schedgym/GPUAutoscaling-v1": {"workload": "azure-code"},
    "schedgym/PowerCapping-v2": {},
    "schedgym/AgentScheduling-v1": {"n_agents": 40},
}


def seconds_per_frame(env_id: str, kwargs: dict[str, Any], steps: int, frames: int) -> float:
    env = gym.make(env_id, render_mode="rgb_array", **kwargs)
    _, info = env.reset(seed=0)
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(int(info["action_mask"].argmax()))
        if terminated or truncated:
            break
    env.render()  # warm-up: matplotlib imports and font cache
    times = []
    for _ in range(frames):
        t = time.perf_counter()
        env.render()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    for env_id, kwargs in CASES.items():
        spf = seconds_per_frame(env_id, kwargs, args.steps, args.frames)
        fps = gym.make(env_id).metadata["render_fps"]
        print(f"{env_id:30s} {spf:6.3f} s/frame  ({1.0 / spf:5.1f} frames/s possible; metadata render_fps {fps})")


if __name__ == "__main__":
    main()
