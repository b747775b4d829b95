"""Per-request latencies and SLOs that scale with each request's isolated latency.

SLO rule (DistServe, OSDI'24, sets SLOs as a scale of the latency on an idle system):
``TTFT SLO_i = max(ttft_slo_floor_s, slo_scale x isolated TTFT_i)`` and ``TPOT SLO = tpot_slo_s``, where the
isolated latencies are those of request ``i`` alone on an idle replica of the fleet (chunked prefill
included, :func:`isolated_latency`). With ``slo_scale >= 1`` every request that fits in a replica's KV
pool is feasible under the TTFT rule; one whose isolated TPOT exceeds ``tpot_slo_s`` or that does not fit
is *infeasible*: counted in ``requests_infeasible`` and scored as a miss, never dropped silently.

A request meets its SLO when it finishes with ``TTFT <= TTFT SLO_i`` and ``TPOT <= TPOT SLO`` (TPOT = mean
time per output token after the first; 0 for one-token outputs).
"""

from __future__ import annotations

import numba
import numpy as np

from schedgym.sim.serving.params import ServingParams
from schedgym.sim.serving.profile import S_KV_S_PER_TOKEN, LatencyProfile, iteration_s
from schedgym.sim.serving.state import QF_FINISH_T, QF_FIRST_T, FleetState

__all__ = ["isolated_latency", "slo_targets", "request_latencies", "slo_met"]


def isolated_latency(
    prompt_tokens: np.ndarray, output_tokens: np.ndarray, params: ServingParams, profile: LatencyProfile
) -> tuple[np.ndarray, np.ndarray]:
    """``(ttft_s, tpot_s)`` of each request alone on an idle replica at full frequency.

    TTFT: the prompt in chunks of ``max_num_batched_tokens``, chunk ``j`` costing
    ``iteration_s(c_j, c_j k_j)`` (``k_j`` tokens before it). TPOT: decode at batch 1 with the context
    growing from ``prompt + 1`` to ``prompt + output - 1``: ``base(1) + kv_s_per_token (prompt + output / 2)``.
    """
    p = np.asarray(prompt_tokens, dtype=np.int64)
    o = np.asarray(output_tokens, dtype=np.int64)
    lp, lpf, db, sc = profile.arrays
    ttft = _chunked_prefill_s(p, params.max_num_batched_tokens, lp, lpf, db, sc)
    tpot = np.where(o >= 2, db[1] + sc[S_KV_S_PER_TOKEN] * (p + o / 2.0), 0.0)
    return ttft, tpot


@numba.njit(cache=True)
def _chunked_prefill_s(prompt, budget, lp, lpf, db, sc):
    out = np.zeros(prompt.shape[0])
    for i in range(prompt.shape[0]):
        done = 0
        t = 0.0
        while done < prompt[i]:
            c = min(prompt[i] - done, budget)
            t += iteration_s(c, float(c) * float(done), 0, 0.0, 1.0, lp, lpf, db, sc, 0.0)
            done += c
        out[i] = t
    return out


def slo_targets(ttft_iso_s: np.ndarray, ttft_slo_floor_s: float, slo_scale: float) -> np.ndarray:
    """Per-request TTFT SLO (module docstring)."""
    return np.maximum(ttft_slo_floor_s, slo_scale * np.asarray(ttft_iso_s))


def request_latencies(state: FleetState, e: int, ids: np.ndarray, output_tokens: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(ttft_s, tpot_s, e2e_s)`` of finished requests ``ids`` of fleet ``e``."""
    first = state.qf[e, ids, QF_FIRST_T]
    finish = state.qf[e, ids, QF_FINISH_T]
    arrival = state.arrival_s[e, ids]
    out = output_tokens[ids]
    tpot = np.where(out >= 2, (finish - first) / np.maximum(out - 1, 1), 0.0)
    return first - arrival, tpot, finish - arrival


def slo_met(ttft_s: np.ndarray, tpot_s: np.ndarray, ttft_slo_s: np.ndarray, tpot_slo_s: float) -> np.ndarray:
    return (ttft_s <= ttft_slo_s) & (tpot_s <= tpot_slo_s)
