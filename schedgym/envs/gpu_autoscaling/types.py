"""Typed data of the GPU-autoscaling env: the workload of an episode (immutable) and the episode state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Workload", "AutoscalingState", "IntervalResult", "INDICATORS"]

#: The per-interval indicators of the observation window, grouped as in HARMONY (workload -> resource ->
#: performance level).
INDICATORS: tuple[str, ...] = (
    "request_rate",  # workload: requests/s, in replica-equivalents (/ per-replica service rate / max_replicas)
    "prompt_tokens_rate",  # workload: prompt tokens/s, in replica-equivalents
    "output_tokens_rate",  # workload: output tokens/s, in replica-equivalents
    "gpu_utilisation",  # resource: busy / ready replica-seconds in the interval, [0, 1]
    "tokens_in_flight",  # resource: KV-cache pressure, tokens of running requests / fleet KV capacity
    "queue_length",  # performance: waiting requests at the interval end / (max fleet's requests per interval)
    "ttft_p50",  # performance: median TTFT of requests started in the interval / slo_ttft_s
    "ttft_p95",  # performance: 95th-percentile TTFT / slo_ttft_s
    "sla_attainment",  # performance: fraction of the interval's resolved requests meeting the SLO, [0, 1]
)


@dataclass(frozen=True)
class Workload:
    """The requests of one episode in arrival order, with their service demand on one replica.

    Immutable (arrays are read-only): ``copy.deepcopy`` returns the object itself, so that
    ``get_state()`` snapshots stay cheap on day-long synthetic workloads.
    """

    arrival_s: np.ndarray  # (n,) float64 seconds from the episode start, non-decreasing
    prompt_tokens: np.ndarray  # (n,) int64 >= 1
    output_tokens: np.ndarray  # (n,) int64 >= 1
    prefill_s: np.ndarray  # (n,) float64 prefill latency on one replica (batch 1), seconds
    work_s: np.ndarray  # (n,) float64 replica-seconds the request occupies (prefill + its share of decode)
    latency_s: np.ndarray  # (n,) float64 prefill + decode latency once started (no queueing), seconds
    horizon_s: float  # episode length, seconds
    start_hour: float  # local time of day at t=0, hours in [0, 24)
    start_weekday: int  # 0 = Monday ... 6 = Sunday at t=0
    source: str  # "azure-code", "synthetic", "trace:<path>*<rate_scale>", ...

    def __post_init__(self) -> None:
        n = self.arrival_s.shape[0]
        for name in ("prompt_tokens", "output_tokens", "prefill_s", "work_s", "latency_s"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"Workload.{name} must have shape ({n},)")
        for name in ("arrival_s", "prompt_tokens", "output_tokens", "prefill_s", "work_s", "latency_s"):
            getattr(self, name).setflags(write=False)

    def __deepcopy__(self, memo: dict[int, Any]) -> Workload:
        return self

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])


@dataclass
class IntervalResult:
    """What happened in one decision interval (returned by :func:`~.env.serve_interval`)."""

    started_idx: np.ndarray  # (k,) int64 workload indices of the requests that started service
    start_s: np.ndarray  # (k,) float64 their start times
    ttft_s: np.ndarray  # (k,) float64 wait + prefill
    queue_idx: np.ndarray  # (q,) int64 requests still waiting at the interval end (FIFO order)
    dropped_idx: np.ndarray  # (d,) int64 requests dropped at the interval end (waited > drop_after_s)
    carry_work_s: float  # replica-seconds of started work not finished at the interval end
    capacity_s: float  # ready replica-seconds supplied in the interval
    busy_s: float  # replica-seconds of work done in the interval


@dataclass
class AutoscalingState:
    """All mutable simulator state of an episode (what ``get_state()`` snapshots)."""

    workload: Workload  # immutable, shared between snapshots
    step: int  # decision intervals done
    next_arrival: int  # index of the first request not yet arrived
    queue_idx: np.ndarray  # (q,) int64 waiting requests, FIFO
    carry_work_s: float  # replica-seconds of started, unfinished work
    inflight_idx: np.ndarray  # (f,) int64 started requests not finished (for tokens in flight)
    inflight_end_s: np.ndarray  # (f,) float64 their finish times
    ready: int  # replicas serving
    pending_ready_s: np.ndarray  # (p,) float64 times at which cold-starting replicas become ready, sorted
    history: np.ndarray  # (history, len(INDICATORS)) float32 normalised indicators, oldest first
    ttft_s: np.ndarray  # (n,) float32 TTFT of each request, nan until it starts (inf if dropped)
    # Per-interval logs, (n_steps,) each: for metrics, baselines' telemetry and render.
    log_requests: np.ndarray  # float64 requests arrived
    log_work_s: np.ndarray  # float64 replica-seconds of work arrived
    log_prompt_tokens: np.ndarray  # float64 prompt tokens arrived
    log_output_tokens: np.ndarray  # float64 output tokens arrived
    log_capacity_s: np.ndarray  # float64 ready replica-seconds
    log_busy_s: np.ndarray  # float64 busy replica-seconds
    log_billed: np.ndarray  # int64 replicas billed (ready + cold-starting) in the interval
    log_ready_start: np.ndarray  # int64 ready replicas at the interval start
    log_queue: np.ndarray  # float64 waiting requests at the interval end
    log_inflight: np.ndarray  # float64 running requests at the interval end
    log_met: np.ndarray  # float64 requests resolved meeting the SLO
    log_violated: np.ndarray  # float64 requests resolved violating it (late starts and drops)
    log_dropped: np.ndarray  # float64 requests dropped
    log_delta: np.ndarray  # int64 replica change applied at the interval start
    scaling_actions: int  # decisions that changed the fleet
    gpu_hours: float
    penalty_usd: float
    switch_usd: float
