"""Typed data of GPUAutoscaling-v1: the episode's workload (immutable), its observation layout and state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from schedgym.sim.serving.state import FleetState

__all__ = ["Workload", "AutoscalingState", "ObsLayout", "INDICATORS"]

#: Per-interval indicators of the observation window (HARMONY's hierarchy: workload -> resource ->
#: performance), each with the divisor that scales it to roughly [0, 5] on the shipped workloads (the env
#: then squashes it with 10 tanh(x / 10), so bursts stay below 10).
INDICATORS: tuple[tuple[str, float, str], ...] = (
    ("request_rate", 2.0, "arrivals per second / 2"),
    ("prompt_tokens_rate", 2000.0, "prompt tokens per second / 2000"),
    ("output_tokens_rate", 400.0, "output tokens per second / 400"),
    ("kv_utilisation", 0.1, "KV blocks in use / KV blocks of serving replicas, x 10 (end of interval)"),
    ("queue_depth", 2.0, "waiting requests per ready replica / 2 (end of interval)"),
    ("running_batch", 0.1, "running sequences / (ready replicas x max_num_seqs), x 10 (end of interval)"),
    ("ttft_p50", 0.2, "median over the interval's completions of TTFT / its TTFT SLO, x 5"),
    ("ttft_p95", 0.2, "95th percentile of TTFT / TTFT SLO, x 5"),
    ("tpot_p95", 0.2, "95th percentile of TPOT / TPOT SLO, x 5"),
    ("sla_attainment", 0.1, "share of the interval's completions within their SLOs, x 10 (10 if none)"),
)


@dataclass(frozen=True)
class ObsLayout:
    """Named slices of the flat observation: ``history`` rows of the indicators, then the fleet and clock."""

    history: int
    n_indicators: int = len(INDICATORS)
    #: ready, provisioning, draining replicas (each / max_replicas x 10), sin and cos of the time of day,
    #: day of week / 6.
    n_extra: int = 6

    @property
    def size(self) -> int:
        return self.history * self.n_indicators + self.n_extra

    def window(self, obs: np.ndarray) -> np.ndarray:
        """``(history, n_indicators)`` view, oldest row first."""
        return obs[: self.history * self.n_indicators].reshape(self.history, self.n_indicators)

    def indicator(self, name: str) -> int:
        return [n for n, _, _ in INDICATORS].index(name)


@dataclass(frozen=True)
class Workload:
    """The requests of one episode in arrival order, with their SLOs. Immutable (deep copies share it)."""

    arrival_s: np.ndarray  # (n,) float64 seconds from the episode start, non-decreasing
    prompt_tokens: np.ndarray  # (n,) int64
    output_tokens: np.ndarray  # (n,) int64
    ttft_slo_s: np.ndarray  # (n,) float64 max(floor, slo_scale x isolated TTFT)
    infeasible: np.ndarray  # (n,) bool: misses its SLO even alone on an idle replica, or does not fit its KV
    extrapolated: np.ndarray  # (n,) bool: prompt outside the profile's measured sweep
    work_lb_s: np.ndarray  # (n,) float64 replica-seconds no schedule can serve it in less (env docstring)
    interval_requests: np.ndarray  # (T,) arrivals per decision interval
    interval_prompt: np.ndarray  # (T,) prompt tokens arriving per interval
    interval_output: np.ndarray  # (T,) output tokens arriving per interval
    horizon_s: float
    start_hour: float
    start_weekday: int
    source: str

    def __post_init__(self) -> None:
        for v in self.__dict__.values():
            if isinstance(v, np.ndarray):
                v.setflags(write=False)

    def __deepcopy__(self, memo: dict[int, Any]) -> Workload:
        return self

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])


@dataclass
class AutoscalingState:
    """All mutable state of an episode (what ``get_state()`` snapshots)."""

    workload: Workload
    fleet: FleetState  # the serving core's arrays (one env on the leading axis)
    step: int
    n_resolved: int  # completions already scored
    met: int  # completions within their SLOs so far
    violations: int  # completions outside them + rejected requests so far
    rejected: int  # requests rejected on arrival (larger than a replica's KV pool)
    scaling_actions: int
    allowance: int  # violations the SLA allows over the episode (A of the reward)
    lambda_usd: float  # the reward's price of each violation beyond them
    billed_s: float  # replica-seconds billed up to the last interval's end
    busy_s: float  # replica-seconds busy up to the last interval's end
    history: np.ndarray  # (history, n_indicators) float32 scaled indicators, oldest first
    # Per-interval logs (T,) for metrics, baselines' telemetry and render.
    log_kv: np.ndarray  # KV utilisation at the interval end
    log_waiting: np.ndarray  # waiting requests at the interval end
    log_running: np.ndarray  # running sequences at the interval end
    log_ready: np.ndarray  # ready replicas at the interval end
    log_provisioning: np.ndarray
    log_draining: np.ndarray
    log_target: np.ndarray  # fleet size (ready + provisioning) asked for at the interval start
    log_completed: np.ndarray  # completions in the interval
    log_violations: np.ndarray  # completions outside their SLOs in the interval
    log_billed_s: np.ndarray  # replica-seconds billed in the interval
    log_busy_s: np.ndarray  # replica-seconds busy (iterating) in the interval
    log_ttft_p95: np.ndarray  # 95th percentile of TTFT / TTFT SLO among the interval's completions
