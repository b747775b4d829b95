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

from dataclasses import dataclass

import numpy as np

from schedgym.envs.core.perf_profile import PerfProfile
from schedgym.envs.core.traces import RequestTrace, load_azure_trace, scale_rate
from schedgym.envs.gpu_autoscaling.types import Workload

__all__ = ["SyntheticParams", "generate_synthetic", "service_demand", "make_workload", "AZURE_START"]

#: Local start (hour of day, weekday) of the shipped Azure traces: 2023-11-16 (a Thursday) 18:17 / 18:15
#: per their TIMESTAMP column (the dataset README says November 11th; the date is uncertain, see
#: schedgym/data/azure_llm_inference_2023/README.md).
AZURE_START = {"azure-code": (18.0 + 17.0 / 60.0, 3), "azure-conv": (18.0 + 15.0 / 60.0, 3)}

#: The burst state of the synthetic generator changes every this many seconds (Markov chain step).
_BURST_STEP_S = 10.0
#: Mean length of a burst: the bursts of the azure-code trace last about one to two minutes.
_BURST_MEAN_S = 60.0
#: Weekend demand relative to weekdays (an assumption: the shipped 1-hour traces carry no weekly pattern).
_WEEKEND_FACTOR = 0.7


@dataclass(frozen=True)
class SyntheticParams:
    """Knobs of the synthetic workload; the defaults are calibrated to the Azure 2023 traces.

    - ``mean_rate_per_s=5.5``: the mean rate of azure-conv (19,366 requests in 3,502 s).
    - ``burstiness`` in [0, 1] sets a two-state Markov-modulated Poisson process: a fraction
      ``0.25 * burstiness`` of the time is spent in bursts at ``1 + 6 * burstiness`` times the base rate
      (mean burst length 60 s), the base rate being lowered so that the mean stays ``mean_rate_per_s``.
      ``burstiness=1`` gives a per-minute count CV of about 1.0, that of azure-code (1.03);
      ``burstiness=0`` is plain Poisson (azure-conv's per-minute CV is 0.25, mostly its slow ramp).
      Default 0.3 (per-minute CV about 0.4).
    - ``diurnal_amplitude=0.5``: rate ``x (1 + a cos(2 pi (h - 14) / 24))``, peak at 14:00. The shipped traces
      are one hour long and show no daily cycle, so this is an assumption, not a fit.
    - weekends run at 0.7 x the weekday rate (assumption, same reason).
    - token lengths are resampled (prompt and output jointly) from ``token_trace`` ("azure-conv" default).
    """

    mean_rate_per_s: float = 5.5
    burstiness: float = 0.3
    diurnal_amplitude: float = 0.5
    episode_days: float = 1.0
    start_hour: float = 0.0
    start_weekday: int = 0
    token_trace: str = "azure-conv"


def rate_profile(params: SyntheticParams, t_s: np.ndarray) -> np.ndarray:
    """Expected arrival rate (requests/s) at times ``t_s`` without bursts: daily x weekly profile."""
    hours = params.start_hour + t_s / 3600.0
    daily = 1.0 + params.diurnal_amplitude * np.cos(2.0 * np.pi * (hours - 14.0) / 24.0)
    weekday = (params.start_weekday + np.floor(hours / 24.0)).astype(np.int64) % 7
    weekly = np.where(weekday >= 5, _WEEKEND_FACTOR, 1.0)
    return params.mean_rate_per_s * daily * weekly


def generate_synthetic(params: SyntheticParams, rng: np.random.Generator) -> RequestTrace:
    """Non-homogeneous Poisson arrivals (1-s bins) modulated by a two-state burst chain; seeded by ``rng``."""
    horizon_s = params.episode_days * 86400.0
    n_bins = int(np.ceil(horizon_s))
    t = np.arange(n_bins, dtype=np.float64)
    rate = rate_profile(params, t)
    b = params.burstiness
    if b > 0:
        frac_on = 0.25 * b
        multiplier = 1.0 + 6.0 * b
        p_off = _BURST_STEP_S / _BURST_MEAN_S  # leave a burst
        p_on = p_off * frac_on / (1.0 - frac_on)  # stationary fraction frac_on
        n_chain = int(np.ceil(horizon_s / _BURST_STEP_S))
        # Two-state chain simulated by run lengths (geometric) instead of a Python loop per step.
        state = np.empty(n_chain, dtype=bool)
        pos, on = 0, bool(rng.random() < frac_on)
        while pos < n_chain:
            run = int(rng.geometric(p_off if on else p_on))
            state[pos : pos + run] = on
            pos += run
            on = not on
        factor = np.where(state, multiplier, 1.0) / (1.0 + frac_on * (multiplier - 1.0))
        rate = rate * factor[(t // _BURST_STEP_S).astype(np.int64)]
    counts = rng.poisson(rate)
    arrival = np.repeat(t, counts) + rng.random(int(counts.sum()))
    arrival.sort()
    pool = load_azure_trace(params.token_trace)
    pick = rng.integers(0, len(pool), size=arrival.size)
    return RequestTrace(
        arrival_s=arrival,
        prompt_tokens=np.asarray(pool.prompt_tokens[pick]),
        output_tokens=np.asarray(pool.output_tokens[pick]),
        source="synthetic",
    )


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
