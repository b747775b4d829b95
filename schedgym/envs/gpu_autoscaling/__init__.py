"""GPUAutoscaling-v0: scale GPU replicas of an LLM inference service (env, workloads, typed state, render)."""

from schedgym.envs.gpu_autoscaling.env import DEFAULT_DELTAS, GPUAutoscalingEnv, serve_interval
from schedgym.envs.gpu_autoscaling.types import INDICATORS, AutoscalingState, Workload
from schedgym.envs.gpu_autoscaling.workload import SyntheticParams

__all__ = [
    "GPUAutoscalingEnv",
    "serve_interval",
    "DEFAULT_DELTAS",
    "INDICATORS",
    "AutoscalingState",
    "Workload",
    "SyntheticParams",
]
