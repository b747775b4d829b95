"""Iteration latencies and power of one replica, from the SplitwiseSim profile (MIT).

Source table: ``schedgym/data/splitwise_sim_perf_model/perf_model.csv`` (Patel et al., "Splitwise",
ISCA'24), read by :func:`schedgym.envs.core.perf_profile.load_perf_profile` (medians of 5 repetitions):
a prompt sweep (128..8192 tokens at batch 1) and a batch sweep (1..64 sequences at prompt 512,
output 128) per (model, hardware, tensor_parallel).

Model of one continuous-batching iteration (Orca OSDI'22; vLLM SOSP'23; Sarathi-Serve OSDI'24):

- **Prefill** of ``P`` tokens (``P`` = this iteration's prompt chunks plus the decode tokens riding on
  them): ``prefill(P)`` by log-log interpolation of the prompt sweep. Outside the table: below 128 tokens
  a power law with the first segment's log-log slope (clipped to [0, 1]); above 8192 a power law with the
  last segment's slope, at least 1 (attention makes long prompts superlinear). A chunk of ``c`` tokens of a
  prompt whose first ``k`` tokens are already in the KV cache also attends to them:
  ``+ 2 a2 c k``, with ``a2`` the quadratic coefficient of a least-squares fit ``t = a0 + a1 p + a2 p^2`` to
  the prompt sweep from 512 tokens up. So a chunked prompt pays the attention cost a whole one would.
  Decode tokens piggybacked on a prefill chunk are compute-bound tokens like the prompt's (Sarathi-Serve's
  observation that they are nearly free), plus their KV reads (below).
- **Decode** of ``b`` sequences holding ``C`` context tokens in total:
  ``base(b) + kv_s_per_token * C``. ``kv_s_per_token`` is the least-squares slope of batch-1 decode time
  against context over the prompt sweep (memory traffic of reading the KV cache); ``base(b)`` is the batch
  sweep (log-log interpolation; linear extrapolation beyond 64) minus the context term of its own
  measurement (``b x 576`` tokens: prompt 512 + half of the 128 outputs), floored at half the measurement.
- **Decode runs**: consecutive pure-decode iterations of the same ``b`` sequences have contexts
  ``C0, C0 + b, C0 + 2b, ...``, so iteration ``j`` of such a run (0-based, started at ``t0``) ends at
  ``t0 + g (j + 1) (base(b) + kv C0) + g kv b j (j + 1) / 2`` (``g`` the frequency factor below): the sum
  of the per-iteration times in closed form (:func:`decode_run_end_s`), which lets the kernels jump over
  thousands of decode iterations in O(1) and still land on the same floating-point event times as a
  simulator that steps them one by one (both evaluate this formula).
- **Frequency cap** ``f`` in (0, 1] (PowerCapping hook): iterations with prefill are compute-bound and
  take ``t / f``; pure decode iterations are memory-bound and take ``t (1 + s (1/f - 1))``,
  ``s = decode_freq_sensitivity``.
- **Power** per GPU: SplitwiseSim's constant phase model (``params.GPU_POWER_W``) with dynamic SM power
  scaled by ``f^alpha``: prefill ``idle + (P_prefill - idle) f^alpha``; decode ``idle + (P_decode - idle)
  (m + (1 - m) f^alpha)`` with ``m`` the HBM share. Not calibrated against POLCA here (issue 13 does).

``extrapolated`` tells whether a prompt length lies outside the measured sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from schedgym.envs.core.perf_profile import load_perf_profile
from schedgym.sim.serving.params import ServingParams

__all__ = ["LatencyProfile", "build_profile", "prefill_s", "iteration_s", "decode_base_s", "decode_run_end_s", "decode_run_end_from"]

#: Context tokens per sequence in the batch sweep's measurement (prompt 512 + half of 128 outputs).
_REF_CONTEXT = 576.0

# Layout of ``LatencyProfile.scalars``.
S_SLOPE_LO, S_SLOPE_HI, S_A2, S_KV_S_PER_TOKEN = range(4)


@dataclass(frozen=True)
class LatencyProfile:
    """Arrays the kernels read (all float64)."""

    log_prompt: np.ndarray  # (7,) log prompt sizes of the sweep
    log_prefill: np.ndarray  # (7,) log prefill seconds
    decode_base: np.ndarray  # (max_num_seqs + 1,) base(b) seconds for b = 0..max_num_seqs (base(0) = 0)
    scalars: np.ndarray  # (4,) slope_lo, slope_hi, a2 (s/token^2), kv_s_per_token
    max_prompt_measured: float

    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.log_prompt, self.log_prefill, self.decode_base, self.scalars

    def prefill_s(self, tokens: float) -> float:
        return float(prefill_s(float(tokens), self.log_prompt, self.log_prefill, self.scalars))

    def extrapolated(self, prompt_tokens: np.ndarray) -> np.ndarray:
        """Prompts whose prefill time comes from outside the measured sweep."""
        p = np.asarray(prompt_tokens)
        return (p > self.max_prompt_measured) | (p < np.exp(self.log_prompt[0]) - 1e-9)


def build_profile(params: ServingParams) -> LatencyProfile:
    perf = load_perf_profile(params.model, params.hardware, params.tensor_parallel)
    xs, ys = perf.prompt_sizes, perf.prefill_s
    lx, ly = np.log(xs), np.log(ys)
    slope_lo = float(np.clip((ly[1] - ly[0]) / (lx[1] - lx[0]), 0.0, 1.0))
    slope_hi = float(max(1.0, (ly[-1] - ly[-2]) / (lx[-1] - lx[-2])))
    big = xs >= 512
    coef = np.polyfit(xs[big], ys[big], 2)  # a2, a1, a0
    a2 = float(max(coef[0], 0.0))
    dec_ctx = perf.decode_by_prompt_s
    ctx = perf.prompt_sizes + 64.0
    kv_slope = float(max(np.polyfit(ctx, dec_ctx, 1)[0], 0.0)) if dec_ctx is not None else 0.0
    b = np.arange(params.max_num_seqs + 1, dtype=np.float64)
    bx, by = perf.batch_sizes, perf.decode_step_s
    inside = np.exp(np.interp(np.log(np.maximum(b, 1.0)), np.log(bx), np.log(by)))
    hi_slope = (by[-1] - by[-2]) / (bx[-1] - bx[-2])
    measured = np.where(b > bx[-1], by[-1] + hi_slope * (b - bx[-1]), inside)
    base = np.maximum(measured - kv_slope * b * _REF_CONTEXT, 0.5 * measured)
    base[0] = 0.0
    return LatencyProfile(
        log_prompt=lx,
        log_prefill=ly,
        decode_base=base,
        scalars=np.array([slope_lo, slope_hi, a2, kv_slope]),
        max_prompt_measured=float(xs[-1]),
    )


@numba.njit(cache=True)
def prefill_s(tokens: float, log_prompt: np.ndarray, log_prefill: np.ndarray, scalars: np.ndarray) -> float:
    """Prefill seconds of ``tokens`` compute-bound tokens (log-log interpolation; module docstring)."""
    if tokens <= 0.0:
        return 0.0
    lx = np.log(tokens)
    n = log_prompt.shape[0]
    if lx <= log_prompt[0]:
        return np.exp(log_prefill[0] + scalars[S_SLOPE_LO] * (lx - log_prompt[0]))
    if lx >= log_prompt[n - 1]:
        return np.exp(log_prefill[n - 1] + scalars[S_SLOPE_HI] * (lx - log_prompt[n - 1]))
    i = 0
    while log_prompt[i + 1] < lx:
        i += 1
    w = (lx - log_prompt[i]) / (log_prompt[i + 1] - log_prompt[i])
    return np.exp(log_prefill[i] + w * (log_prefill[i + 1] - log_prefill[i]))


@numba.njit(cache=True)
def decode_base_s(batch: int, decode_base: np.ndarray) -> float:
    return decode_base[batch]


@numba.njit(cache=True)
def iteration_s(
    prefill_tokens: int,
    cross_attention: float,
    decode_batch: int,
    decode_context: float,
    freq: float,
    log_prompt: np.ndarray,
    log_prefill: np.ndarray,
    decode_base: np.ndarray,
    scalars: np.ndarray,
    decode_freq_sensitivity: float,
) -> float:
    """Seconds of one iteration (module docstring). ``cross_attention`` = sum over prompt chunks of c k."""
    kv = scalars[S_KV_S_PER_TOKEN] * decode_context
    if prefill_tokens > 0:
        t = prefill_s(float(prefill_tokens + decode_batch), log_prompt, log_prefill, scalars)
        t += 2.0 * scalars[S_A2] * cross_attention + kv
        return t / freq
    if decode_batch > 0:
        t = decode_base[decode_batch] + kv
        return t * (1.0 + decode_freq_sensitivity * (1.0 / freq - 1.0))
    return 0.0


@numba.njit(cache=True, inline="always")
def decode_run_end_s(
    anchor: float,
    j: int,
    decode_batch: int,
    first_context: int,
    freq: float,
    decode_base: np.ndarray,
    scalars: np.ndarray,
    decode_freq_sensitivity: float,
) -> float:
    """End time of iteration ``j`` (0-based) of a decode run of ``decode_batch`` sequences that started at
    ``anchor`` with ``first_context`` context tokens: ``anchor`` plus the closed-form sum of
    :func:`iteration_s` over the run's first ``j + 1`` iterations (module docstring)."""
    kv = scalars[S_KV_S_PER_TOKEN]
    first = decode_base[decode_batch] + kv * float(first_context)
    growth = kv * float(decode_batch)
    return decode_run_end_from(anchor, j, first, growth, 1.0 + decode_freq_sensitivity * (1.0 / freq - 1.0))


@numba.njit(cache=True, inline="always")
def decode_run_end_from(anchor: float, j: int, first_s: float, growth_s: float, freq_factor: float) -> float:
    """:func:`decode_run_end_s` from a run's constants: ``first_s`` = base(b) + kv C0 (its first iteration
    at full clock), ``growth_s`` = kv b (added per iteration), ``freq_factor`` = the clock's slow-down.
    The kernels keep these per replica, so stepping a run reads no arrays."""
    n = float(j + 1)
    return anchor + (n * first_s + growth_s * (n * float(j) * 0.5)) * freq_factor
