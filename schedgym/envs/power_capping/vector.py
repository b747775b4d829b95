"""Native vector env of PowerCapping-v2: N rows behind one ``gymnasium.vector.VectorEnv``.

``gym.make_vec("schedgym/PowerCapping-v2", num_envs=N, vectorization_mode="vector_entry_point", **kwargs)``
builds :class:`PowerCappingVectorEnv`. Its results equal N single envs step for step
(``tests/test_vector_envs.py``; semantics in :mod:`schedgym.envs.core.sub_env_vector`).

Each sub-env is an unwrapped :class:`PowerCappingEnv` stepped by its own call of the row kernel
(``dynamics.run_seconds``), without the Gymnasium wrapper stack. The rows are not merged into one kernel
call: the kernel already advances a row's 2 x ``n_servers`` fleets second by second in one call and is
~85 % of a step (``python benchmarks/env_throughput.py --only PowerCapping``), so merging would save
little of the rest.
"""

from __future__ import annotations

from schedgym.envs.core.sub_env_vector import SubEnvVectorEnv
from schedgym.envs.power_capping.env import PowerCappingEnv

__all__ = ["PowerCappingVectorEnv"]


class PowerCappingVectorEnv(SubEnvVectorEnv):
    """``num_envs`` PowerCapping-v2 rows (module docstring). ``kwargs`` are those of :class:`PowerCappingEnv`
    (every sub-env gets the same); ``max_episode_steps`` (optional) truncates a sub-env after that many
    steps, with its metrics."""

    env_class = PowerCappingEnv
