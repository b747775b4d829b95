"""Workloads of GPUAutoscaling-v1: Azure trace replay, the calibrated synthetic generator, any trace file.

Arrivals and token counts come from ``schedgym.envs.core`` (traces.py, synthetic.py); this module adds
each request's SLO, feasibility and work lower bound for the serving fleet of the env.
"""

from __future__ import annotations

import numpy as np

from schedgym.envs.core.synthetic import AZURE_START, SyntheticParams, generate_synthetic, rate_profile
from schedgym.envs.core.traces import RequestTrace, scale_rate
from schedgym.envs.gpu_autoscaling.types import Workload
from schedgym.sim.serving import LatencyProfile, ServingParams, isolated_latency, slo_targets
from schedgym.sim.serving.profile import prefill_s

__all__ = [
    "SyntheticParams",
    "generate_synthetic",
    "rate_profile",
    "AZURE_START",
    "scale_rate",
    "token_cost_lower_bounds",
    "make_workload",
]


def token_cost_lower_bounds(params: ServingParams, profile: LatencyProfile) -> tuple[float, float]:
    """``(rho_prompt, rho_output)``: replica-seconds that one prompt token / one decode token costs at least.

    An iteration with prefill processes ``x <= max_num_batched_tokens`` compute-bound tokens (prompt chunks
    plus piggybacked decodes) and lasts at least ``prefill(x) >= x min_y prefill(y) / y``; a pure decode
    iteration of ``b <= max_num_seqs`` sequences lasts at least ``base(b) >= b min_c base(c) / c``
    (the KV term, frequency caps and swaps only add time). So a prompt token costs at least
    ``rho_prompt = min_y prefill(y)/y`` and a decode token at least ``min(rho_prompt, min_c base(c)/c)``.
    """
    lp, lpf, _, sc = profile.arrays
    # Every reset needs them; the min over a thousand chunk sizes is a third of a reset's time.
    key = (params, lp.tobytes(), lpf.tobytes(), sc.tobytes(), profile.decode_base.tobytes())
    cached = _RHO_CACHE.get(key)
    if cached is not None:
        return cached
    ys = np.arange(1, params.max_num_batched_tokens + 1)
    rho_prompt = min(prefill_s(float(y), lp, lpf, sc) / y for y in ys)
    b = np.arange(1, params.max_num_seqs + 1)
    rho_decode = float(np.min(profile.decode_base[1:] / b))
    result = (float(rho_prompt), float(min(rho_prompt, rho_decode)))
    if len(_RHO_CACHE) > 64:
        _RHO_CACHE.clear()
    _RHO_CACHE[key] = result
    return result


_RHO_CACHE: dict[tuple, tuple[float, float]] = {}


def make_workload(
    trace: RequestTrace,
    params: ServingParams,
    profile: LatencyProfile,
    *,
    interval_s: float,
    horizon_s: float,
    ttft_slo_floor_s: float,
    slo_scale: float,
    tpot_slo_s: float,
    start_hour: float = 0.0,
    start_weekday: int = 0,
) -> Workload:
    prompt = np.asarray(trace.prompt_tokens, dtype=np.int64)
    output = np.asarray(trace.output_tokens, dtype=np.int64)
    arrival = np.asarray(trace.arrival_s, dtype=np.float64)
    keep = arrival < horizon_s
    arrival, prompt, output = arrival[keep], prompt[keep], output[keep]
    iso_ttft, iso_tpot = isolated_latency(prompt, output, params, profile)
    ttft_slo = slo_targets(iso_ttft, ttft_slo_floor_s, slo_scale)
    too_big = -(-(prompt + output) // params.block_tokens) > params.kv_blocks
    infeasible = (iso_ttft > ttft_slo) | (iso_tpot > tpot_slo_s) | too_big
    rho_p, rho_o = token_cost_lower_bounds(params, profile)
    n_steps = int(round(horizon_s / interval_s))
    k = np.minimum((arrival // interval_s).astype(np.int64), n_steps - 1)
    return Workload(
        arrival_s=arrival.copy(),
        prompt_tokens=prompt.copy(),
        output_tokens=output.copy(),
        ttft_slo_s=ttft_slo,
        infeasible=infeasible,
        extrapolated=profile.extrapolated(prompt),
        work_lb_s=rho_p * prompt + rho_o * (output - 1),
        interval_requests=np.bincount(k, minlength=n_steps).astype(np.float64),
        interval_prompt=np.bincount(k, weights=prompt, minlength=n_steps),
        interval_output=np.bincount(k, weights=output, minlength=n_steps),
        horizon_s=float(horizon_s),
        start_hour=float(start_hour) % 24.0,
        start_weekday=int(start_weekday) % 7,
        source=trace.source,
    )
