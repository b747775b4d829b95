"""Workloads of the GPU-autoscaling env: Azure trace replay, a calibrated synthetic generator, any trace file.

The service demand of each request on one replica comes from the SplitwiseSim profile table
(``schedgym/data/splitwise_sim_perf_model/perf_model.csv``, MIT; Patel et al., "Splitwise", ISCA 2024),
read by :func:`schedgym.envs.core.perf_profile.load_perf_profile`. With the defaults (llama2-70b on
a100-80gb, tensor_parallel 8 = one 8-GPU replica) the rows used are:

- prefill: the prompt-size sweep ``prompt_size in 128..8192, batch_size=1, token_size=128`` (median of the 5
  repetitions of ``prompt_time``), e.g. 94 ms at 512 tokens, 274 ms at 2048, 1.55 s at 8192;
- decode: the batch sweep ``prompt_size=512, batch_size in 1..64, token_size=128`` (median ``token_time``),
  e.g. 50 ms per iteration at batch 16, 53 ms at batch 32.

A running replica decodes ``max_batch`` sequences per iteration (continuous batching), so one output token
costs ``decode_step_s(max_batch) / max_batch`` replica-seconds of capacity, and a request occupies

    work_s = prefill_s(prompt_tokens) + output_tokens * decode_step_s(max_batch) / max_batch

replica-seconds, while its own latency once started is ``prefill_s + output_tokens * decode_step_s(max_batch)``.
"""

from __future__ import annotations

import numpy as np

from schedgym.envs.core.perf_profile import PerfProfile
from schedgym.envs.core.synthetic import AZURE_START, SyntheticParams, generate_synthetic, rate_profile
from schedgym.envs.core.traces import RequestTrace, scale_rate
from schedgym.envs.gpu_autoscaling.types import Workload

# The synthetic generator lives in envs/core (PowerCapping uses it too); re-exported here.
__all__ = ["SyntheticParams", "generate_synthetic", "rate_profile", "service_demand", "make_workload", "AZURE_START"]

def service_demand(
    prompt_tokens: np.ndarray, output_tokens: np.ndarray, profile: PerfProfile, max_batch: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(prefill_s, work_s, latency_s)`` of each request on one replica (formulas in the module docstring)."""
    prefill_s = np.asarray(profile.prefill_time_s(prompt_tokens), dtype=np.float64)
    step_s = float(profile.decode_step_time_s(max_batch))
    out = np.asarray(output_tokens, dtype=np.float64)
    work_s = prefill_s + out * (step_s / max_batch)
    latency_s = prefill_s + out * step_s
    return prefill_s, work_s, latency_s


def make_workload(
    trace: RequestTrace,
    profile: PerfProfile,
    max_batch: int,
    *,
    interval_s: float,
    horizon_s: float | None = None,
    start_hour: float = 0.0,
    start_weekday: int = 0,
) -> Workload:
    """Attach service demands to a trace; the horizon defaults to the trace length in whole intervals."""
    prefill_s, work_s, latency_s = service_demand(trace.prompt_tokens, trace.output_tokens, profile, max_batch)
    if horizon_s is None:
        horizon_s = max(1.0, float(np.ceil((trace.duration_s + 1e-9) / interval_s))) * interval_s
    return Workload(
        arrival_s=np.asarray(trace.arrival_s, dtype=np.float64).copy(),
        prompt_tokens=np.asarray(trace.prompt_tokens, dtype=np.int64).copy(),
        output_tokens=np.asarray(trace.output_tokens, dtype=np.int64).copy(),
        prefill_s=prefill_s,
        work_s=work_s,
        latency_s=latency_s,
        horizon_s=float(horizon_s),
        start_hour=float(start_hour) % 24.0,
        start_weekday=int(start_weekday) % 7,
        source=trace.source,
    )


def scaled_trace(trace: RequestTrace, rate_scale: float, rng: np.random.Generator) -> RequestTrace:
    """``rate_scale`` applied to a replayed trace (thinning/replication seeded by ``rng``)."""
    return scale_rate(trace, rate_scale, rng)
