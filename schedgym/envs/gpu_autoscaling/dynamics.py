"""Pure dynamics of GPUAutoscaling-v1: scaling actions, interval scoring and the observation.

The functions read the episode's :class:`~.types.AutoscalingState`, its serving fleet (a
:class:`~schedgym.sim.serving.ServingFleet` whose ``state`` is ``s.fleet``) and the frozen
:class:`ScalingParams` the env builds from its kwargs; they change only ``s`` and the fleet. The single
env (``env.py``), its native vector env (``vector.py``, which advances every sub-env's fleet in one
serving-core call between :func:`start_interval` and :func:`finish_interval`) and anything that
simulates ahead call these same functions. The requests themselves are simulated by the serving core's
numba kernels (``schedgym.sim.serving.kernels``); the per-interval work here is a few numpy reductions.

A step of the env is ``until = start_interval(...)``, ``fleet.advance(until)``, ``finish_interval(...)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from schedgym.envs.gpu_autoscaling.types import INDICATORS, AutoscalingState, Workload
from schedgym.sim.serving import ServingFleet, request_latencies
from schedgym.sim.serving.state import (
    EI_N_DONE,
    EI_REJECTED,
    R_PROVISIONING,
    R_READY,
    RF_LAUNCH_T,
    RI_OUTSTANDING,
    RI_STATE,
)

__all__ = [
    "ScalingParams",
    "OBS_SQUASH",
    "fleet_size",
    "action_mask",
    "episode_prices",
    "scale_to",
    "start_interval",
    "finish_interval",
    "observe",
]

#: Indicators are divided by their scale, then squashed by OBS_SQUASH x tanh(x / OBS_SQUASH): about the
#: identity below 5 (the shipped workloads' usual range), and bursts (azure-code reaches 67 x the prompt
#: token scale) stay below 10 instead of saturating a clip, so MLPs need no extra normalisation.
OBS_SQUASH = 10.0
_SCALES = np.array([s for _, s, _ in INDICATORS])


@dataclass(frozen=True, eq=False)
class ScalingParams:
    """The env's kwargs the dynamics read (the env's docstring, Arguments, documents each)."""

    interval_s: float
    n_steps: int  # intervals of an episode
    deltas: np.ndarray  # (A,) int64 replica change of each action
    min_replicas: int
    max_replicas: int
    cold_start_s: float  # median launch-to-ready time
    cold_start_sigma: float  # its log-normal shape
    tpot_slo_s: float
    sla_target: float
    replica_cost_per_s_usd: float
    reward_scale_usd: float
    max_num_seqs: int  # of a replica (the running-batch indicator's denominator)


def _quantiles(values: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """Linear-interpolation quantiles (numpy's default) without np.percentile's per-call overhead."""
    v = np.sort(values)
    pos = np.asarray(qs) * (v.size - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, v.size - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def fleet_size(s: AutoscalingState) -> int:
    """Ready + provisioning replicas (what the actions change; draining ones are on their way out)."""
    ri = s.fleet.ri[0, :, RI_STATE]
    return int(np.count_nonzero((ri == R_READY) | (ri == R_PROVISIONING)))


def action_mask(p: ScalingParams, s: AutoscalingState) -> np.ndarray:
    """``deltas[i]`` is legal iff the fleet stays inside ``[min_replicas, max_replicas]``."""
    target = fleet_size(s) + p.deltas
    return (target >= p.min_replicas) & (target <= p.max_replicas)


def episode_prices(p: ScalingParams, wl: Workload) -> tuple[int, float]:
    """``(allowance A, lambda)`` of the reward (the env's docstring, Rewards): the violations the SLA
    allows and the price of each one beyond them."""
    allowance = int(math.floor((1.0 - p.sla_target) * len(wl) + 1e-9))
    return allowance, p.max_replicas * p.replica_cost_per_s_usd * wl.horizon_s / max(allowance, 1)


def scale_to(p: ScalingParams, s: AutoscalingState, fleet: ServingFleet, target: int, now: float,
             rng: np.random.Generator) -> None:  # fmt: skip
    """Launch replicas (cold starts drawn from ``rng``) or remove them: cancel provisioning ones first
    (newest first), then drain ready ones (fewest outstanding tokens first)."""
    ri, rf = s.fleet.ri[0], s.fleet.rf[0]
    current = fleet_size(s)
    if target > current:
        draws = rng.lognormal(0.0, p.cold_start_sigma, size=target - current)
        for d in draws:
            if fleet.launch(0, now, now + p.cold_start_s * float(d)) < 0:
                break
        return
    remove = current - target
    prov = np.flatnonzero(ri[:, RI_STATE] == R_PROVISIONING)
    # newest launches first (ties: the higher slot)
    for r in prov[np.lexsort((-prov, -rf[prov, RF_LAUNCH_T]))][:remove]:
        fleet.cancel(0, int(r), now)
        remove -= 1
    if remove > 0:
        ready = np.flatnonzero(ri[:, RI_STATE] == R_READY)
        order = ready[np.lexsort((ready, ri[ready, RI_OUTSTANDING]))]
        for r in order[:remove]:
            fleet.drain(0, int(r), now)


def start_interval(p: ScalingParams, s: AutoscalingState, fleet: ServingFleet, action: int,
                   rng: np.random.Generator) -> float:  # fmt: skip
    """Apply ``action`` at the interval's start; returns the time the fleet must be advanced to."""
    t = s.step
    delta = int(p.deltas[action])
    target = fleet_size(s) + delta
    if delta:
        scale_to(p, s, fleet, target, t * p.interval_s, rng)
        s.scaling_actions += 1
    s.log_target[t] = target
    return (t + 1) * p.interval_s


def finish_interval(p: ScalingParams, s: AutoscalingState, fleet: ServingFleet,
                    rng: np.random.Generator) -> tuple[float, bool, dict[str, Any]]:  # fmt: skip
    """Score the interval the fleet was advanced over and push its indicators into the history; the
    episode's last interval first empties the fleet and serves every request to its end. Returns
    ``(reward, last, info)``."""
    wl = s.workload
    t = s.step
    t1 = (t + 1) * p.interval_s
    last = t + 1 >= p.n_steps
    if last:  # cancel what is provisioning, drain the rest, and serve every request to its end
        scale_to(p, s, fleet, 0, t1, rng)
        fleet.advance(np.inf)
    st = s.fleet
    n_done = int(st.ei[0, EI_N_DONE])
    ids = st.done_ids[0, s.n_resolved : n_done]
    completed = ids.size
    if completed:
        ttft, tpot, _ = request_latencies(st, 0, ids, wl.output_tokens)
        ttft_ratio = ttft / wl.ttft_slo_s[ids]
        ok = (ttft_ratio <= 1.0) & (tpot <= p.tpot_slo_s)
        met = int(np.count_nonzero(ok))
        p50, p95 = _quantiles(ttft_ratio, (0.5, 0.95))
        tpot95 = float(_quantiles(tpot, (0.95,))[0]) / p.tpot_slo_s
    else:
        met, p50, p95, tpot95 = 0, 0.0, 0.0, 0.0
    rejected_new = int(st.ei[0, EI_REJECTED]) - s.rejected
    s.rejected += rejected_new
    violations = completed - met + rejected_new
    excess_before = max(0, s.violations - s.allowance)
    s.met += met
    s.violations += violations
    s.n_resolved = n_done
    excess_after = max(0, s.violations - s.allowance)

    billed = fleet.billed_s(0)
    busy = fleet.busy_s(0)
    billed_dt, busy_dt = billed - s.billed_s, busy - s.busy_s
    s.billed_s, s.busy_s = billed, busy
    cost = billed_dt * p.replica_cost_per_s_usd
    prov, ready, draining = fleet.counts(0)
    kv = fleet.kv_used_frac(0)
    waiting, running = fleet.waiting(0), fleet.running(0)
    s.log_kv[t], s.log_waiting[t], s.log_running[t] = kv, waiting, running
    s.log_ready[t], s.log_provisioning[t], s.log_draining[t] = ready, prov, draining
    s.log_completed[t], s.log_violations[t] = completed, violations
    s.log_billed_s[t], s.log_busy_s[t] = billed_dt, busy_dt
    s.log_ttft_p95[t] = p95
    row = np.array(
        [
            wl.interval_requests[t] / p.interval_s,
            wl.interval_prompt[t] / p.interval_s,
            wl.interval_output[t] / p.interval_s,
            kv,
            waiting / max(ready, 1),
            running / (max(ready, 1) * p.max_num_seqs),
            p50,
            p95,
            tpot95,
            met / completed if completed else 1.0,
        ]
    )
    s.history[:-1] = s.history[1:]
    s.history[-1] = OBS_SQUASH * np.tanh(row / _SCALES / OBS_SQUASH)
    s.step += 1

    reward = -(cost + s.lambda_usd * (excess_after - excess_before)) / p.reward_scale_usd
    info = {
        "ready": ready,
        "provisioning": prov,
        "draining": draining,
        "requests": int(wl.interval_requests[t]),
        "completed": int(completed),
        "violations": int(violations),
        "kv_utilisation": kv,
        "waiting": waiting,
        "running": running,
        "cost_usd": cost,
    }
    return float(reward), bool(last), info


def observe(p: ScalingParams, s: AutoscalingState, fleet: ServingFleet) -> np.ndarray:
    """The flat observation (``types.ObsLayout``): the indicator history, then the fleet and the clock."""
    wl = s.workload
    hours = wl.start_hour + s.step * p.interval_s / 3600.0
    angle = 2.0 * np.pi * (hours % 24.0) / 24.0
    weekday = (wl.start_weekday + int(hours // 24.0)) % 7
    prov, ready, draining = fleet.counts(0)
    k = 10.0 / p.max_replicas
    extra = np.array([ready * k, prov * k, draining * k, np.sin(angle), np.cos(angle), weekday / 6.0])
    return np.concatenate((s.history.reshape(-1), extra)).astype(np.float32)
