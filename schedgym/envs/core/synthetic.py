"""The synthetic LLM request workload shared by GPUAutoscaling and PowerCapping (and any trace user).

Non-homogeneous Poisson arrivals with a daily and weekly profile, Markov-modulated bursts, and token lengths
resampled from the Azure LLM Inference Trace 2023 (CC-BY 4.0; Patel et al., "Splitwise", ISCA 2024).
Defaults are calibrated to the trace statistics (see :class:`SyntheticParams`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schedgym.envs.core.traces import RequestTrace, load_azure_trace

__all__ = ["SyntheticParams", "rate_profile", "generate_synthetic", "AZURE_START"]

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
