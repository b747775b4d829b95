"""`schedgym train`: configs (YAML per algorithm keyed by env id), run directories, checkpoints."""

from schedgym.training.common import TrainSpec

__all__ = ["TrainSpec"]
