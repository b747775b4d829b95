"""GPUAutoscaling-v1: scale GPU replicas of an LLM inference service (env, workloads, typed state, render)."""

from schedgym.envs.gpu_autoscaling.env import DEFAULT_DELTAS, GPUAutoscalingEnv
from schedgym.envs.gpu_autoscaling.types import INDICATORS, AutoscalingState, ObsLayout, Workload
from schedgym.envs.gpu_autoscaling.workload import SyntheticParams

__all__ = [
    "GPUAutoscalingEnv",
    "DEFAULT_DELTAS",
    "INDICATORS",
    "AutoscalingState",
    "ObsLayout",
    "Workload",
    "SyntheticParams",
]
