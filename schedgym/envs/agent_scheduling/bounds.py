"""A proven lower bound on every agent's turnaround in AgentScheduling-v1 (``turnaround_lower_bound``).

**Claim.** Under the dynamics of ``dynamics.py``, whatever the scheduler does, agent ``a`` finishes no
earlier than ``arrival_a + LB_a`` with

    LB_a = sum over its requests i of [ P_i * c_min + (O_i - 1) * min(d_min + kv * (P_i + 1), c_min * (P_i + 1)) ]
           + sum of its tool times,

where ``P_i`` / ``O_i`` are the request's prompt / output tokens, ``c_min = min over 1 <= c <= B of
prefill_s(c) / c`` (the cheapest prefill cost per token over every chunk size the token budget ``B =
max_num_batched_tokens`` allows), ``d_min = min over 1 <= b <= max_num_seqs of base(b)`` (the cheapest
decode iteration of any batch size) and ``kv`` the profile's KV-read seconds per context token. So the
mean turnaround of any policy is >= the mean of ``LB_a`` (over the same agents).

**Proof.** (1) An agent's requests run one after another: request ``i+1`` is submitted when request ``i``
finishes plus its tool time, so the turnaround is the sum of the requests' submit-to-finish times plus the
tool times. It remains to show submit-to-finish of request ``i`` >= its bracket. (2) Every iteration lasts
at least its compute part, and the request's iterations do not overlap in time (a core runs one
iteration at a time and a request is on one core). (3) *Prefill*: the request's first token needs all
``P_i`` prompt tokens prefilled, in chunks ``c_j`` (1 <= c_j <= B), each inside an iteration of length
>= ``prefill_s(c_j + others) >= prefill_s(c_j) >= c_j * c_min``: ``prefill_s`` is non-decreasing (log-log
interpolation of a table that increases with prompt length, extrapolated with slopes >= 0; checked by
:func:`bound_constants`), the cross-attention, KV-read and swap terms are >= 0. Summing, >= ``P_i c_min``.
(4) *Later tokens*: each of the ``O_i - 1`` later tokens is emitted at the end of a distinct iteration
set of the request: either a decode iteration, which lasts >= ``max(mixed, pure decode) >= base(b) +
kv * context >= d_min + kv * (P_i + 1)`` (the batch's context includes the request's own, >= ``P_i + 1``),
or the iterations of a recompute's re-prefill of ``P_i + g >= P_i + 1`` tokens, >= ``c_min (P_i + 1)``
by (3). These sets are disjoint from each other and from the first prefill's. Summing gives the bracket.
(5) Waiting, swaps and batching only add time. QED.

It is the agent's critical path on an unloaded core with zero queueing and no batching slowdown,
relaxed in two ways that keep it provable: the cheapest chunk size's per-token prefill cost, and the
context term at its smallest (``P_i + 1``). It is a bound, not a policy: it need not be achievable.
"""

from __future__ import annotations

import numpy as np

from schedgym.envs.agent_scheduling.workload import Workload
from schedgym.sim.serving import LatencyProfile, ServingParams
from schedgym.sim.serving.profile import S_KV_S_PER_TOKEN

__all__ = ["bound_constants", "agent_lower_bounds_s", "request_lower_bounds_s"]


def bound_constants(params: ServingParams, profile: LatencyProfile) -> tuple[float, float, float]:
    """``(c_min, d_min, kv)`` of the module docstring; checks that ``prefill_s`` is non-decreasing."""
    if np.any(np.diff(profile.log_prefill) < 0) or profile.scalars[0] < 0 or profile.scalars[1] < 0:
        raise ValueError("the latency profile's prefill time decreases with prompt length: the bound's proof needs it not to")
    chunks = np.arange(1, params.max_num_batched_tokens + 1, dtype=np.float64)
    per_token = np.array([profile.prefill_s(c) for c in chunks]) / chunks
    c_min = float(per_token.min())
    d_min = float(profile.decode_base[1 : params.max_num_seqs + 1].min())
    return c_min, d_min, float(profile.scalars[S_KV_S_PER_TOKEN])


def request_lower_bounds_s(wl: Workload, consts: tuple[float, float, float]) -> np.ndarray:
    """Per request: the bracket of the module docstring (seconds)."""
    c_min, d_min, kv = consts
    p = wl.req_prompt_tokens.astype(np.float64)
    later = np.minimum(d_min + kv * (p + 1.0), c_min * (p + 1.0))
    return p * c_min + (wl.req_output_tokens - 1) * later


def agent_lower_bounds_s(wl: Workload, consts: tuple[float, float, float]) -> np.ndarray:
    """Per agent: ``LB_a`` of the module docstring (seconds)."""
    per_req = request_lower_bounds_s(wl, consts) + wl.req_tool_s
    return np.bincount(wl.req_agent, weights=per_req, minlength=wl.n_agents)
