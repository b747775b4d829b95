"""Request arrivals of a PowerCapping-v2 row: one stream per server.

Workloads (constructor kwarg ``workload``):

- ``"azure-code"`` / ``"azure-conv"``: the Azure LLM Inference Trace 2023 (CC-BY 4.0, Patel et al.,
  "Splitwise", ISCA 2024), one hour each, replayed from its first request (both start about 18:15).
- ``"synthetic"``: the shared synthetic generator (:mod:`schedgym.envs.core.synthetic`): Poisson arrivals
  with a daily profile (peak 14:00) and Markov-modulated bursts, token counts resampled from an Azure
  trace; episodes of any length up to days (``episode_hours``).
- ``"trace:<path>"``: a CSV/JSONL file (``trace_columns``, ``trace_time_unit``).

The row's arrivals are the workload scaled to the row (``rate_scale x n_servers / provisioned_servers``
times the trace's rate, by thinning/replication, :func:`schedgym.envs.core.traces.scale_rate`, or with
``trace_replication="shifted"`` by superposing time-shifted copies,
:func:`~schedgym.envs.core.traces.scale_rate_shifted`). A router
then splits them across the servers: each request goes to server ``k`` with probability proportional to
``w_k(t) = exp(x_k(t))``, where ``x_k`` is a per-server AR(1) process on one-minute steps (stationary
standard deviation ``server_variation``, correlation time ``server_variation_tau_s``). This is the
"per-server variation" of a real row (session and tenant affinity, model/prompt mix of the
deployments behind each server): the servers' peaks do not coincide, which is where the row's headroom
comes from. The per-server streams partition the row's arrivals exactly (tested). Servers
``0 .. n_hp - 1`` serve the high-priority (HP) class, the others low priority (LP); a request's class is
its server's. With ``lp_workload="batch"`` (v2's default) the LP servers run a backlog instead
(:mod:`.batch_lp`) and the requests routed to them are dropped, so each HP server keeps its stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from schedgym.envs.core.synthetic import SyntheticParams, generate_synthetic
from schedgym.envs.core.traces import AZURE_TRACES, RequestTrace, load_workload_trace, scale_rate, scale_rate_shifted

__all__ = ["RowRequests", "base_trace", "row_requests", "split_across_servers", "default_start_hour"]

#: Local time at the first request of each Azure trace (timestamps 2023-11-16 18:15-18:17).
_AZURE_START_HOUR = 18.25
_STEP_S = 60.0


@dataclass(frozen=True)
class RowRequests:
    """The requests of one episode, sorted by arrival, with the server each is routed to."""

    arrival_s: np.ndarray  # (n,) float64, seconds from the episode start, < horizon_s
    prompt_tokens: np.ndarray  # (n,) int64
    output_tokens: np.ndarray  # (n,) int64
    server: np.ndarray  # (n,) int64 in [0, n_servers)

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])

    def of_server(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        sel = self.server == k
        return self.arrival_s[sel], self.prompt_tokens[sel], self.output_tokens[sel]


def default_start_hour(workload: str) -> float:
    if workload in AZURE_TRACES:
        return _AZURE_START_HOUR
    if workload == "synthetic":
        return 0.0  # a whole day from midnight when episode_hours=24; see the env docstring
    return 0.0


def base_trace(workload: str, trace_columns: dict[str, str] | None, trace_time_unit: str) -> RequestTrace | None:
    """The replayed trace (``None`` for ``"synthetic"``); file errors name the file and line."""
    if workload == "synthetic":
        return None
    return load_workload_trace(workload, trace_columns, trace_time_unit)


def split_across_servers(
    rng: np.random.Generator, arrival_s: np.ndarray, n_servers: int, horizon_s: float, variation: float, tau_s: float
) -> np.ndarray:
    """Server of each request (module docstring): weighted random routing with per-server AR(1) weights."""
    n_steps = int(np.ceil(max(horizon_s, 1.0) / _STEP_S)) + 1
    phi = float(np.exp(-_STEP_S / tau_s))
    x = np.empty((n_steps, n_servers))
    x[0] = rng.normal(0.0, variation, n_servers)
    innov = rng.normal(0.0, variation * np.sqrt(1.0 - phi * phi), (n_steps - 1, n_servers))
    for i in range(1, n_steps):
        x[i] = phi * x[i - 1] + innov[i - 1]
    w = np.exp(x)
    cdf = np.cumsum(w, axis=1)
    cdf /= cdf[:, -1:]
    step = np.minimum((arrival_s // _STEP_S).astype(np.int64), n_steps - 1)
    u = rng.random(arrival_s.shape[0])
    # Inverse CDF per request: count the servers whose cumulative weight is below u.
    server = np.empty(arrival_s.shape[0], dtype=np.int64)
    order = np.argsort(step, kind="stable")
    bounds = np.searchsorted(step[order], np.arange(n_steps + 1))
    for i in range(n_steps):
        idx = order[bounds[i] : bounds[i + 1]]
        if idx.size:
            server[idx] = np.searchsorted(cdf[i], u[idx], side="right")
    return np.minimum(server, n_servers - 1)


def row_requests(
    rng: np.random.Generator,
    base: RequestTrace | None,
    horizon_s: float,
    row_rate_scale: float,
    n_servers: int,
    start_hour: float,
    variation: float,
    tau_s: float,
    synthetic_knobs: dict[str, Any] | None = None,
    replication: str = "jitter",
    max_shift_s: float = 300.0,
) -> RowRequests:
    """One episode's requests: the scaled workload cut at ``horizon_s``, split across the servers."""
    if base is None:
        k = dict(synthetic_knobs or {})
        k["mean_rate_per_s"] = float(k.get("mean_rate_per_s", SyntheticParams.mean_rate_per_s)) * row_rate_scale
        trace = generate_synthetic(SyntheticParams(episode_days=horizon_s / 86400.0, start_hour=start_hour, **k), rng)
    else:
        if replication == "shifted":
            trace = scale_rate_shifted(base, row_rate_scale, rng, max_shift_s)
        else:
            trace = scale_rate(base, row_rate_scale, rng)
    keep = trace.arrival_s < horizon_s
    arrival = np.ascontiguousarray(trace.arrival_s[keep], dtype=np.float64)
    return RowRequests(
        arrival_s=arrival,
        prompt_tokens=np.ascontiguousarray(trace.prompt_tokens[keep], dtype=np.int64),
        output_tokens=np.ascontiguousarray(np.maximum(trace.output_tokens[keep], 1), dtype=np.int64),
        server=split_across_servers(rng, arrival, n_servers, horizon_s, variation, tau_s),
    )
