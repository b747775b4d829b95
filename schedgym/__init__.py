"""schedgym: reinforcement-learning environments for resource scheduling in ML systems.

Importing the package registers every environment with Gymnasium::

    import gymnasium as gym
    import schedgym  # noqa: F401

    env = gym.make("schedgym/MemoryMapping-v0", instance="minimalloc:A")

or, without the import (e.g. in Ray's remote env runners)::

    env = gym.make("schedgym:schedgym/MemoryMapping-v0", instance="minimalloc:A")

What there is to run: ``schedgym.env_ids()``, ``schedgym.instances(env_id)``, ``schedgym.policies(env_id)``,
``schedgym.tasks(env_id)`` (and ``schedgym list ...`` on the command line).
"""

__version__ = "0.1.0"

from schedgym.envs import register_envs as _register_envs

_register_envs()

# ``env_ids``, not ``envs``: a function named ``envs`` would shadow the ``schedgym.envs`` subpackage, and
# ``import schedgym.envs.power_capping.env as m`` would fail.
from schedgym.discovery import env_ids, instances, policies, tasks  # noqa: E402  (after registration)

__all__ = ["__version__", "env_ids", "instances", "policies", "tasks"]
