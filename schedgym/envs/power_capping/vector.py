"""Native vector env of PowerCapping-v2: N rows behind one ``gymnasium.vector.VectorEnv``.

``gym.make_vec("schedgym/PowerCapping-v2", num_envs=N, vectorization_mode="vector_entry_point", **kwargs)``
builds :class:`PowerCappingVectorEnv`. Its results equal N single envs step for step
(``tests/test_vector_envs.py``; semantics in :mod:`schedgym.envs.core.sub_env_vector`).

Each sub-env is an unwrapped :class:`PowerCappingEnv` stepped by its own call of the row kernel
(``dynamics.run_seconds``), without the Gymnasium wrapper stack. The kernel already advances a row's
2 x ``n_servers`` fleets second by second in one call and is ~85 % of a step, so instead of merging rows
into one call the vector env runs the rows' steps on a pool of threads (``parallel``, the default: as many
as numba's ``NUMBA_NUM_THREADS``): the kernel releases the GIL, so rows run on all cores. Each row touches only its own
state, so the results are those of the rows stepped one after another.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
import numpy as np

from schedgym.envs.core.sub_env_vector import SubEnvVectorEnv
from schedgym.envs.core.validation import check_bool
from schedgym.envs.power_capping.env import PowerCappingEnv

__all__ = ["PowerCappingVectorEnv"]


class PowerCappingVectorEnv(SubEnvVectorEnv):
    """``num_envs`` PowerCapping-v2 rows (module docstring). ``kwargs`` are those of :class:`PowerCappingEnv`
    (every sub-env gets the same); ``max_episode_steps`` (optional) truncates a sub-env after that many
    steps, with its metrics; ``parallel`` (default) steps rows on a thread pool, with the same results."""

    env_class = PowerCappingEnv

    def __init__(self, num_envs: int = 1, max_episode_steps: int | None = None, parallel: bool = True,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(num_envs, max_episode_steps, **kwargs)
        threads = min(int(numba.config.NUMBA_NUM_THREADS), self.num_envs) if check_bool("parallel", parallel) else 1
        self.parallel = threads > 1
        self._pool = ThreadPoolExecutor(threads) if self.parallel else None

    def _apply_stepped(self, stepped: np.ndarray, actions: list[int]) -> list[tuple[float, bool, bool, dict[str, Any]]]:
        if self._pool is None:
            return super()._apply_stepped(stepped, actions)
        return list(self._pool.map(lambda ea: self.envs[ea[0]]._apply(ea[1]), zip(stepped, actions)))

    def close_extras(self, **kwargs: Any) -> None:
        pool = self.__dict__.get("_pool")
        if pool is not None:
            pool.shutdown(wait=True)
            self._pool = None
        super().close_extras(**kwargs)
