"""Training on a task's train split: reset seeds drawn only from the split's seeds.

Without it a trainer resets its envs from its own RNG streams, so a generated source (MemoryMapping
``random``, GPUAutoscaling/PowerCapping ``synthetic``, AgentScheduling ``poisson``/``tenants``) may draw
any seed, the run records ``poisson`` (every seed), and validation rejects its rows on a task whose test
split names seeds of that generator. With ``schedgym train --train-seeds 1000-`` (or ``--task TASK``,
which reads the seeds from the task's train split) every env the trainers build is wrapped in
:class:`ResetSeeds`: each reset draws the env's seed from those seeds, and the run records exactly that
(``poisson#seeds>=1000``), which :mod:`schedgym.benchmark.splits` checks against the test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["ResetSeeds", "TrainSeeds", "train_seeds_for_task"]

_SEED_MAX = 2**31 - 1


@dataclass(frozen=True)
class TrainSeeds:
    """Seeds a training env may be reset with: an explicit set, or ``seeds_from`` and up (below 2**31 - 1)."""

    seeds: tuple[int, ...] | None = None
    seeds_from: int | None = None

    def __post_init__(self) -> None:
        if (self.seeds is None) == (self.seeds_from is None):
            raise ValueError("train seeds: give an explicit seed list or a first seed, exactly one")
        if self.seeds is not None and (not self.seeds or any(not 0 <= s < _SEED_MAX for s in self.seeds)):
            raise ValueError(f"train seeds: need at least one seed, each in [0, {_SEED_MAX}), got {self.seeds!r}")
        if self.seeds_from is not None and not 0 <= self.seeds_from < _SEED_MAX:
            raise ValueError(f"train seeds: first seed must be in [0, {_SEED_MAX}), got {self.seeds_from!r}")

    @classmethod
    def parse(cls, text: str) -> TrainSeeds:
        """``"1000-"`` (1000 and up) or ``"3,4,5"``; ``ValueError`` naming the text otherwise."""
        t = str(text).strip()
        try:
            if t.endswith("-"):
                return cls(seeds_from=int(t[:-1]))
            return cls(seeds=tuple(sorted({int(x) for x in t.split(",")})))
        except ValueError as exc:
            if "train seeds:" in str(exc):
                raise
            raise ValueError(f"--train-seeds {text!r}: expected 'N-' (seed N and up) or a list '3,4,5'") from None

    def __str__(self) -> str:
        return f"{self.seeds_from}-" if self.seeds_from is not None else ",".join(map(str, self.seeds or ()))

    def draw(self, rng: np.random.Generator) -> int:
        if self.seeds is not None:
            return int(self.seeds[int(rng.integers(len(self.seeds)))])
        assert self.seeds_from is not None
        return int(rng.integers(self.seeds_from, _SEED_MAX))

    def instance_spec(self, source: str) -> str:
        """The instance spec string a run on ``source`` with these seeds records (splits.InstanceSpec)."""
        from schedgym.benchmark.splits import InstanceSpec

        return str(InstanceSpec(source, seeds=self.seeds, seeds_from=self.seeds_from))


class ResetSeeds(gym.Wrapper):
    """Reset the wrapped env only with seeds from ``train_seeds``.

    A seed passed to ``reset`` (the trainer seeding its stream) seeds the draw; every reset, with or
    without one, resets the env with a seed drawn from ``train_seeds``. Deterministic for the same seeds.
    """

    def __init__(self, env: gym.Env, train_seeds: TrainSeeds | str) -> None:
        super().__init__(env)
        self.train_seeds = train_seeds if isinstance(train_seeds, TrainSeeds) else TrainSeeds.parse(train_seeds)
        self._draws = np.random.default_rng(0)
        self.last_seed: int | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
        if seed is not None:
            self._draws = np.random.default_rng(int(seed))
        self.last_seed = self.train_seeds.draw(self._draws)
        return self.env.reset(seed=self.last_seed, options=options)


def train_seeds_for_task(task_name: str, env_id: str, env_kwargs: dict[str, Any]) -> TrainSeeds | None:
    """The seeds of ``task_name``'s train split for the source ``env_kwargs`` picks.

    ``None`` when the split allows every seed of that source (nothing to restrict). ``ValueError`` when
    the task is for another env or its train split does not hold the source (it is test data).
    """
    from schedgym.benchmark.splits import instance_source
    from schedgym.benchmark.tasks import get_task

    task = get_task(task_name)
    if task.env_id != env_id:
        raise ValueError(f"--task {task_name}: its env is {task.env_id}, not {env_id}")
    source = instance_source(env_id, env_kwargs)
    for spec in task.split.train:
        if spec.source == source:
            if spec.seeds is None and spec.seeds_from is None:
                return None
            return TrainSeeds(seeds=spec.seeds, seeds_from=spec.seeds_from)
    raise ValueError(f"--task {task_name}: {source!r} is not in its train split ({task.split.describe()}); "
                     "pick a source of the train split with --kwargs")
