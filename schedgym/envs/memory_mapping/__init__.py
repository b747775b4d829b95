"""MemoryMapping-v0: the memory-mapping game (mallocGame) with real instances and generators."""

from schedgym.envs.memory_mapping.env import MemoryMappingEnv
from schedgym.envs.memory_mapping.types import Instance

__all__ = ["MemoryMappingEnv", "Instance"]
