"""schedgym: reinforcement-learning environments for resource scheduling in ML systems.

Importing the package registers every environment with Gymnasium::

    import gymnasium as gym
    import schedgym  # noqa: F401

    env = gym.make("schedgym/MemoryMapping-v0", instance="minimalloc:A")

or, without the import (e.g. in Ray's remote env runners)::

    env = gym.make("schedgym:schedgym/MemoryMapping-v0", instance="minimalloc:A")
"""

__version__ = "0.1.0"

from schedgym.envs import register_envs as _register_envs

_register_envs()

__all__ = ["__version__"]
