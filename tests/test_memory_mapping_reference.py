"""MemoryMapping-v0 reproduces, bit for bit, the trajectories recorded before its step was fused into one
numba kernel (commit 255367f): observations, rewards, terminations, masks, infos (metrics included),
final placements, over random-action episodes with invalid and non-integral actions.

Each case is digested into one SHA-256 over everything the env returned; ``EXPECTED`` holds the digests
of the code before the rewrite. A change of dynamics must change the id's version, not these digests.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import schedgym  # noqa: F401

ENV_ID = "schedgym/MemoryMapping-v0"


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, np.ndarray):
        h.update(f"nd{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, dict):
        h.update(b"{")
        for key in sorted(value):
            h.update(repr(key).encode())
            _feed(h, value[key])
        h.update(b"}")
    elif isinstance(value, (float, np.floating)):
        h.update(f"f{type(value).__name__}{float(value).hex()}".encode())
    else:
        h.update(f"{type(value).__name__}:{value!r}".encode())


def _action(rng: np.random.Generator, mask: np.ndarray, n_actions: int) -> Any:
    u = rng.random()
    legal = np.flatnonzero(mask)
    if u < 0.06:
        illegal = np.flatnonzero(mask == 0)
        return int(rng.choice(illegal)) if illegal.size else -1
    if u < 0.08:
        return [-1, n_actions, n_actions + 3][int(rng.integers(3))]
    if u < 0.10:
        return [1.5, True, "0", np.array([0])][int(rng.integers(4))]
    a = int(legal[int(rng.integers(legal.size))])
    if u < 0.15:
        return np.int32(a)
    if u < 0.2:
        return np.array(a, dtype=np.int64)
    if u < 0.6 and mask[0]:  # lean on the best fit so that episodes place many buffers
        return 0
    return a


def trajectory_digest(kwargs: dict[str, Any], seeds: list[int | None], max_steps: int | None = None) -> str:
    env = gym.make(ENV_ID, **kwargs)
    h = hashlib.sha256()
    rng = np.random.default_rng(12345)
    n_actions = int(env.action_space.n)
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        _feed(h, obs)
        _feed(h, info)
        _feed(h, env.unwrapped.action_masks())
        steps = 0
        done = False
        while not done and (max_steps is None or steps < max_steps):
            obs, reward, terminated, truncated, info = env.step(_action(rng, info["action_mask"], n_actions))
            for value in (obs, reward, terminated, truncated, info):
                _feed(h, value)
            done = terminated or truncated
            steps += 1
        _feed(h, env.unwrapped.metrics())
        _feed(h, env.unwrapped.placements())
        h.update(json.dumps(steps).encode())
    return h.hexdigest()


#: (case id, kwargs, reset seeds, steps per episode or None for whole episodes)
CASES: list[tuple[str, dict[str, Any], list[int | None], int | None]] = [
    ("minimalloc-A-place", {"instance": "minimalloc:A"}, [0, 1], None),
    ("minimalloc-A-order", {"instance": "minimalloc:A", "action_mode": "order"}, [0, 1], None),
    ("minimalloc-K-place-K4", {"instance": "minimalloc:K", "K": 4, "invalid_action_penalty": 0.25}, [3], None),
    ("minimalloc-D-order-K3-cap", {"instance": "minimalloc:D", "action_mode": "order", "K": 3, "capacity": 0.6},
     [0], None),
    ("random-200-place", {"instance": "random", "n_buffers": 200}, [0, 1, None], None),
    ("random-200-order", {"instance": "random", "n_buffers": 200, "action_mode": "order"}, [0, 1], None),
    ("random-200-order-tight-K5", {"instance": "random", "n_buffers": 200, "action_mode": "order", "K": 5,
                                   "capacity": 0.15, "size_distribution": "pareto", "order": "start"}, [2, 3], None),
    ("random-300-place-K2-size", {"instance": "random", "n_buffers": 300, "K": 2, "order": "size",
                                  "capacity": 0.3, "max_lifetime": 30}, [4], None),
    ("planted-40-order", {"instance": "random", "planted": True, "action_mode": "order", "K": 40}, [0, 5], None),
    ("planted-40-place-area", {"instance": "random", "planted": True, "order": "area"}, [1], None),
    ("torch-transformer-place", {"instance": "torch:transformer"}, [0], None),
    ("torch-transformer-order", {"instance": "torch:transformer", "action_mode": "order", "capacity": 0.5},
     [0], None),
]

EXPECTED = {
    "minimalloc-A-place": "56c262f6e4ac00e87433aaea96fce57e40856770af43f309bd17e7097bd9910a",
    "minimalloc-A-order": "fbedc70004ce3e7022332009b91afb63d0b51b2ccbeaa1cfe1cd9b450605db42",
    "minimalloc-K-place-K4": "ca18363b1c492c66bf9378c1afa26a527b30ef9cae478b48e1f445995dee81f1",
    "minimalloc-D-order-K3-cap": "aa6192196285f86c78eeeaf9dbb661c3e55b08763e610ba71e03a5984fee5c75",
    "random-200-place": "6d72cdcde525e2ee1419ad587138b66cb2043df8f26f6dc0b1518fd57edbffd6",
    "random-200-order": "5659d82b92321a4718f51a679730aa9d5dbfd30aaf487fb23afe5dd5c1785de3",
    "random-200-order-tight-K5": "0323098686bcda4e34d746385498f637affcca0e49aa1c9b1698aef2c65a20d3",
    "random-300-place-K2-size": "8eb1b79c33be91ad323e334f0535e4fa1248980cb93dd49251890f6da1942ac5",
    "planted-40-order": "c2daf8f39f3d9810f45d78977ae3bc8521904dac2c3e9999398e7ffe67543032",
    "planted-40-place-area": "5bfad9621b4c921210634674ad147872504c8db829259f49ca9687bcbef4a70d",
    "torch-transformer-place": "22b712fd793bdc3a5e979724a76b70ea7c2795a6f3b3282ab3e4daa7ed1abc3d",
    "torch-transformer-order": "20927d08848b54d6a3a3fe6afab9febf506dee8a613b5385f47a3ff760e51822",
}


@pytest.mark.parametrize(("kwargs", "seeds", "max_steps"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_trajectories_equal_the_recorded_ones(kwargs: dict[str, Any], seeds: list[int | None],
                                              max_steps: int | None, request: pytest.FixtureRequest) -> None:
    case = request.node.callspec.id
    assert trajectory_digest(kwargs, seeds, max_steps) == EXPECTED[case]


if __name__ == "__main__":  # prints EXPECTED for the current code
    import time

    for case, kwargs, seeds, max_steps in CASES:
        t0 = time.perf_counter()
        digest = trajectory_digest(kwargs, seeds, max_steps)
        print(f'    "{case}": "{digest}",  # {time.perf_counter() - t0:.1f} s')
