"""Batched moves per CPU second of MuZero self-play with the simulator model (MemoryMapping's default).

The simulator model (``agents/muzero/models.py``) uses the env itself as the dynamics: every expansion
restores the parent's snapshot into a scratch env, steps it and snapshots the child. Measured here in one
run, interleaved, on one thread, with the packaged MuZero config of the env (B = ``envs_per_worker``
trees, ``num_simulations`` per move):

- unchecked: the search's snapshots are :meth:`SchedEnv.snapshot_unchecked` /
  :meth:`SchedEnv.restore_unchecked` (the default; the root snapshot is still checked once per move);
- checked: every expansion goes through ``get_state``/``set_state`` with their provenance and
  array-signature checks (what the search did before).

It also compares learned-model self-play (the fused search) on one native vector env, the default, with
the same self-play on B single envs (the simulator model keeps single envs: it snapshots each tree's).

Usage: ``python benchmarks/simulator_search.py [--env schedgym/MemoryMapping-v0] [--moves 10] [--rounds 5]``
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

import schedgym  # noqa: E402, F401
from schedgym.agents.muzero.actors import SelfPlayCore  # noqa: E402
from schedgym.agents.muzero.config import MuZeroConfig  # noqa: E402
from schedgym.envs.core.base import SchedEnv  # noqa: E402
from schedgym.training.config import resolve_config  # noqa: E402

UNCHECKED = (SchedEnv.snapshot_unchecked, SchedEnv.restore_unchecked)
CHECKED = (SchedEnv.get_state, SchedEnv.set_state)


def moves_per_cpu_s(core: SelfPlayCore, variant: tuple, moves: int) -> float:
    SchedEnv.snapshot_unchecked, SchedEnv.restore_unchecked = variant
    try:
        t = time.process_time()
        for _ in range(moves):
            core.step()
        return moves / (time.process_time() - t)
    finally:
        SchedEnv.snapshot_unchecked, SchedEnv.restore_unchecked = UNCHECKED


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="schedgym/MemoryMapping-v0")
    ap.add_argument("--moves", type=int, default=10, help="batched moves per measurement")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds; the best of each is kept")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = resolve_config("muzero", None, args.env)
    cfg.pop("timesteps", None)
    cfg["model"] = "simulator"
    mz = MuZeroConfig.from_dict(cfg)
    SelfPlayCore(args.env, {}, mz, seed=0).step()  # compile and warm up
    best = {"unchecked": 0.0, "checked": 0.0}
    for _ in range(args.rounds):
        for name, variant in (("unchecked", UNCHECKED), ("checked", CHECKED)):
            # the same episodes and moves every time (the two searches are equal, tests/test_muzero_search.py)
            core = SelfPlayCore(args.env, {}, mz, seed=0)
            best[name] = max(best[name], moves_per_cpu_s(core, variant, args.moves))
    b, sims = mz.envs_per_worker, mz.num_simulations
    print(f"{args.env}: simulator-model self-play, B={b} trees, {sims} simulations per move")
    for name, rate in best.items():
        print(f"  {name:<10} {rate:6.2f} batched moves / CPU s  ({rate * b:7.1f} env steps / CPU s)")
    print(f"  unchecked / checked = {best['unchecked'] / best['checked']:.2f}")

    # Learned model (fused search): self-play on one native vector env vs on B single envs, same episodes.
    cfg["model"] = "learned"
    rates = {True: 0.0, False: 0.0}
    for _ in range(args.rounds):
        for native in (True, False):
            core = SelfPlayCore(args.env, {}, MuZeroConfig.from_dict({**cfg, "native_vector_env": native}), seed=0)
            core.step()
            t = time.process_time()
            for _ in range(args.moves * 10):
                core.step()
            rates[native] = max(rates[native], args.moves * 10 / (time.process_time() - t))
    print(f"learned-model self-play: {rates[True]:.1f} batched moves / CPU s on the native vector env, "
          f"{rates[False]:.1f} on {b} single envs ({rates[True] / rates[False]:.2f}x)")


if __name__ == "__main__":
    main()
