"""Request arrivals of a PowerCapping episode: trace replay or a synthetic daily profile.

Workloads (constructor kwarg ``workload``), as in GPUAutoscaling-v0:

- ``"azure-code"`` / ``"azure-conv"``: the Azure LLM Inference Trace 2023 (CC-BY 4.0, Patel et al.,
  "Splitwise", ISCA 2024), replayed from its first request; both start at about 18:15 local time.
- ``"synthetic"``: GPUAutoscaling-v0's generator (same kwargs): a non-homogeneous Poisson process with a
  daily (peak 14:00) and weekly profile and Markov-modulated bursts; token counts resampled (as pairs)
  from an Azure trace; defaults calibrated to azure-conv (5.5 req/s).
- ``"trace:<path>"``: a CSV/JSONL file (``trace_columns``, ``trace_time_unit`` as in
  :func:`schedgym.envs.core.traces.load_workload_trace`).

The trace's rate is then multiplied by the row's load scale (see the env's ``rate_scale``) with
:func:`schedgym.envs.core.traces.scale_rate`, and each request is given a priority class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from schedgym.envs.core.traces import AZURE_TRACES, RequestTrace, load_workload_trace, scale_rate
from schedgym.envs.core.synthetic import SyntheticParams, generate_synthetic

__all__ = ["EpisodeRequests", "base_trace", "synthetic_trace", "episode_requests", "default_start_hour"]

#: Local time at the first request of each Azure trace (timestamps 2023-11-16 18:15-18:17).
_AZURE_START_HOUR = 18.25


@dataclass(frozen=True)
class EpisodeRequests:
    """The requests of one episode, sorted by arrival."""

    arrival_s: np.ndarray  # (n,) float64, seconds from the episode start, < horizon_s
    prompt_tokens: np.ndarray  # (n,) int64
    output_tokens: np.ndarray  # (n,) int64
    is_hp: np.ndarray  # (n,) bool, high-priority class

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])


def default_start_hour(workload: str) -> float:
    """Time of day at the episode start when the user does not set ``start_hour``."""
    if workload in AZURE_TRACES:
        return _AZURE_START_HOUR
    if workload == "synthetic":
        # Half an hour before the synthetic profile's 14:00 peak: an hour-long episode holds the busiest period.
        return 13.5
    return 0.0


def base_trace(workload: str, trace_columns: dict[str, str] | None, trace_time_unit: str) -> RequestTrace | None:
    """The replayed trace (``None`` for ``"synthetic"``); file errors name the file and line."""
    if workload == "synthetic":
        return None
    return load_workload_trace(workload, trace_columns, trace_time_unit)


def synthetic_trace(
    rng: np.random.Generator, duration_s: float, start_hour: float, rate_scale: float = 1.0, **knobs: Any
) -> RequestTrace:
    """``duration_s`` seconds of GPUAutoscaling's synthetic workload, its rate multiplied by ``rate_scale``.

    ``knobs`` are :class:`schedgym.envs.core.synthetic.SyntheticParams` fields
    (``mean_rate_per_s``, ``burstiness``, ``diurnal_amplitude``, ``token_trace``, ``start_weekday``): both
    families draw the same synthetic traffic.
    """
    k = dict(knobs)
    k["mean_rate_per_s"] = float(k.get("mean_rate_per_s", SyntheticParams.mean_rate_per_s)) * rate_scale
    params = SyntheticParams(episode_days=duration_s / 86400.0, start_hour=start_hour, **k)
    return generate_synthetic(params, rng)


def episode_requests(
    rng: np.random.Generator,
    base: RequestTrace | None,
    horizon_s: float,
    rate_scale: float,
    hp_fraction: float,
    start_hour: float,
    synthetic_knobs: dict[str, Any] | None = None,
) -> EpisodeRequests:
    """Draw one episode's requests: the (scaled) trace cut at ``horizon_s``, each HP with ``hp_fraction``."""
    if base is None:
        trace = synthetic_trace(rng, horizon_s, start_hour, rate_scale, **(synthetic_knobs or {}))
    else:
        trace = scale_rate(base, rate_scale, rng)
    keep = trace.arrival_s < horizon_s
    n = int(keep.sum())
    return EpisodeRequests(
        arrival_s=np.ascontiguousarray(trace.arrival_s[keep], dtype=np.float64),
        prompt_tokens=np.ascontiguousarray(trace.prompt_tokens[keep], dtype=np.int64),
        output_tokens=np.ascontiguousarray(trace.output_tokens[keep], dtype=np.int64),
        is_hp=rng.random(n) < hp_fraction,
    )
