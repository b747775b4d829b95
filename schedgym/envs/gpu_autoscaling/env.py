"""GPUAutoscaling-v0: choose how many GPU replicas serve an LLM inference workload, interval by interval.

Motivation: HARMONY (hierarchical multi-indicator forecasting + Bayesian scaling decisions, SJTU + Ant Group,
2024) and the Kubernetes Horizontal Pod Autoscaler that most users run today. Workloads: the Azure LLM
Inference Trace 2023 (CC-BY 4.0; Patel et al., "Splitwise", ISCA 2024), a calibrated synthetic generator, or
any request trace. Service rates: the SplitwiseSim profile table (see ``workload.py`` for the rows used).
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from schedgym.envs.core.base import SchedEnv
from schedgym.envs.core.perf_profile import available_profiles, load_perf_profile
from schedgym.envs.core.traces import (
    AZURE_TRACES,
    check_workload,
    load_azure_trace,
    load_workload_trace,
)
from schedgym.envs.core.validation import check_choice, check_float, check_int
from schedgym.envs.gpu_autoscaling.types import (
    INDICATORS,
    AutoscalingState,
    IntervalResult,
    Workload,
)
from schedgym.envs.gpu_autoscaling.workload import (
    AZURE_START,
    SyntheticParams,
    generate_synthetic,
    make_workload,
    scaled_trace,
)

__all__ = ["GPUAutoscalingEnv", "serve_interval", "DEFAULT_DELTAS"]

DEFAULT_DELTAS: tuple[int, ...] = (-4, -2, -1, 0, 1, 2, 4)
_N_EXTRA = 5  # ready, pending, sin(time of day), cos(time of day), day of week
_OBS_CLIP = 50.0  # normalised indicators are clipped to [0, 50] (a fleet 50x too small is simply "very")


def serve_interval(
    workload: Workload,
    queue_idx: np.ndarray,
    new_idx: np.ndarray,
    carry_work_s: float,
    t0: float,
    t1: float,
    ready: int,
    pending_ready_s: np.ndarray,
    drop_after_s: float,
) -> IntervalResult:
    """Serve one interval ``[t0, t1)`` with a FIFO queue over a pooled fleet, vectorised.

    The fleet is a fluid server whose rate is the number of ready replicas (piecewise constant: cold-starting
    replicas join at their ready time). In *capacity time* ``C(t)`` (ready replica-seconds since ``t0``) the
    server has rate 1, so FIFO departures follow Lindley's recursion ``D_i = max(c_i, D_{i-1}) + w_i``, whose
    closed form ``D_i = S_i + max(carry, max_{j<=i} (c_j - S_{j-1}))`` (``S`` the cumulative work) is a
    cumulative sum and a running maximum. Start times map back through ``C^-1``; TTFT = wait + prefill.
    Requests still waiting at ``t1`` after more than ``drop_after_s`` are dropped.
    """
    # Capacity schedule: breakpoints t0 < r_1 < ... < t1, rate = ready replicas on each segment.
    joins = pending_ready_s[(pending_ready_s > t0) & (pending_ready_s < t1)]
    seg_t = np.concatenate(([t0], joins, [t1]))
    seg_rate = ready + np.arange(joins.size + 1, dtype=np.float64)
    seg_cap = np.concatenate(([0.0], np.cumsum(seg_rate * np.diff(seg_t))))
    capacity_s = float(seg_cap[-1])

    idx = np.concatenate((queue_idx, new_idx)) if queue_idx.size else new_idx
    if idx.size == 0:
        busy = min(carry_work_s, capacity_s)
        empty = np.empty(0, dtype=np.int64)
        return IntervalResult(empty, np.empty(0), np.empty(0), empty, empty, carry_work_s - busy, capacity_s, busy)
    arrival = workload.arrival_s[idx]
    work = workload.work_s[idx]
    # Capacity time of each arrival (backlog arrived before t0: 0).
    k = np.minimum(np.searchsorted(seg_t, arrival, side="right") - 1, seg_rate.size - 1)
    k[k < 0] = 0
    c = np.where(arrival <= t0, 0.0, seg_cap[k] + seg_rate[k] * (arrival - seg_t[k]))
    cum = np.cumsum(work)
    depart_c = cum + np.maximum(carry_work_s, np.maximum.accumulate(c - (cum - work)))
    start_c = depart_c - work
    n_started = int(np.searchsorted(start_c, capacity_s, side="left")) if capacity_s > 0 else 0
    started = idx[:n_started]
    if n_started:
        positive = seg_rate > 0
        cap_p, t_p, rate_p = seg_cap[:-1][positive], seg_t[:-1][positive], seg_rate[positive]
        kk = np.clip(np.searchsorted(cap_p, start_c[:n_started], side="right") - 1, 0, cap_p.size - 1)
        start_s = np.maximum(arrival[:n_started], t_p[kk] + (start_c[:n_started] - cap_p[kk]) / rate_p[kk])
        start_s = np.minimum(start_s, t1)
        carry_out = max(0.0, float(depart_c[n_started - 1]) - capacity_s)
        busy = carry_work_s + float(cum[n_started - 1]) - carry_out
    else:
        start_s = np.empty(0)
        carry_out = max(0.0, carry_work_s - capacity_s)
        busy = carry_work_s - carry_out
    ttft_s = start_s - arrival[:n_started] + workload.prefill_s[started]
    waiting = idx[n_started:]
    too_old = (t1 - workload.arrival_s[waiting]) > drop_after_s
    return IntervalResult(
        started_idx=started,
        start_s=start_s,
        ttft_s=ttft_s,
        queue_idx=waiting[~too_old],
        dropped_idx=waiting[too_old],
        carry_work_s=carry_out,
        capacity_s=capacity_s,
        busy_s=busy,
    )


def _quantiles(values: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """Linear-interpolation quantiles (numpy's default method) without np.percentile's per-call overhead."""
    v = np.sort(values)
    pos = np.asarray(qs) * (v.size - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, v.size - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


class GPUAutoscalingEnv(SchedEnv):
    """Scale the GPU replicas of an LLM inference service against cost and a TTFT SLA.

    ## Description

    Every ``interval_s`` (60 s) the agent changes the number of replicas of an LLM service. A replica is one
    inference server of ``gpus_per_replica`` GPUs (tensor parallel) whose speed comes from the SplitwiseSim
    profile (llama2-70b on a100-80gb by default). Requests (Azure LLM trace 2023 replay, a synthetic day,
    or any trace file) queue FIFO across the fleet; each interval the ready replicas supply capacity and the
    env computes every request's start time and TTFT (wait + prefill) with numpy (see
    :func:`serve_interval`). New replicas serve only after ``cold_start_s`` (VM + model load, billed from the
    launch); removing replicas is immediate (cold-starting ones are cancelled first; draining is not
    modelled: a removed replica's running work continues on the rest of the fleet). A request meets the SLA
    if its TTFT <= ``slo_ttft_s``; one still queued after ``drop_after_s`` is dropped at the next decision
    boundary and counts as a violation.

    ## Action Space

    ``Discrete(len(deltas))``: action ``i`` changes the fleet (ready + cold-starting replicas) by
    ``deltas[i]`` replicas; default ``deltas = (-4, -2, -1, 0, +1, +2, +4)``.

    ## Action Mask

    ``deltas[i]`` is legal iff the fleet stays inside ``[min_replicas, max_replicas]``. The "0" action is
    always legal and is the default action that replaces an invalid one (with ``invalid_action_penalty``).

    ## Observation Space

    ``Box(float32, shape=(history * 9 + 5,))``: a window of the last ``history`` intervals (oldest first,
    zeros before the episode start) of 9 hierarchical indicators, then 5 scalars.

    | index | meaning | min | max |
    |---|---|---|---|
    | 9h+0 | request rate, replica-equivalents / max_replicas (workload) | 0 | 50 |
    | 9h+1 | prompt tokens/s, same normalisation (workload) | 0 | 50 |
    | 9h+2 | output tokens/s, same normalisation (workload) | 0 | 50 |
    | 9h+3 | GPU utilisation: busy / ready replica-seconds (resource) | 0 | 1 |
    | 9h+4 | tokens in flight / (ready x max_batch x mean tokens per request), KV pressure (resource) | 0 | 50 |
    | 9h+5 | queue length / requests the max fleet serves in an interval (performance) | 0 | 50 |
    | 9h+6 | TTFT p50 of the interval / slo_ttft_s (performance) | 0 | 50 |
    | 9h+7 | TTFT p95 of the interval / slo_ttft_s (performance) | 0 | 50 |
    | 9h+8 | SLA attainment of the interval (performance) | 0 | 1 |
    | -5 | ready replicas / max_replicas | 0 | 1 |
    | -4 | cold-starting replicas / max_replicas | 0 | 1 |
    | -3, -2 | sin, cos of the time of day | -1 | 1 |
    | -1 | day of week / 6 (0 = Monday) | 0 | 1 |

    "Replica-equivalents" divide a rate by what one replica serves (1 / mean work per request of the
    workload), so 1.0 in the first three rows means the whole ``max_replicas`` fleet would be busy.

    ## Rewards

    Per interval, in units of ``reward_scale_usd`` dollars:
    ``-(gpu_hour_usd * gpus_per_replica * billed_replicas * interval_s / 3600 + sla_penalty_usd *
    violations + switch_cost_usd * |delta|)``. Defaults: $3.00 per GPU-hour (a round figure in the
    2024-2025 range of on-demand A100-80GB prices, set it for your provider), $0.02 per violating request,
    $0.05 per replica added or removed.

    ## Starting State

    ``initial_replicas`` ready replicas (default: the fleet that serves the workload's mean demand at 70 %
    utilisation), an empty queue; the synthetic workload is drawn from the ``reset`` seed, and ``rate_scale``
    thinning/replication of a trace too.

    ## Episode End

    Never terminated; truncated after the workload's horizon (``ceil(trace length / interval_s)`` intervals
    for traces, ``episode_days * 1440`` minutes for synthetic). Requests still queued then count as
    violations if they already waited past the SLO.

    ## Arguments

    | parameter | type | default | meaning |
    |---|---|---|---|
    | workload | str | "synthetic" | "azure-code", "azure-conv", "synthetic" or "trace:<path>" (CSV/JSONL) |
    | trace_columns | dict | Azure names | ``{"time", "prompt_tokens", "output_tokens"}`` columns of a trace file |
    | trace_time_unit | str | "datetime" | "s", "ms" or "datetime" for a trace file |
    | rate_scale | float | 1.0 | multiply the arrival rate (thin or replicate a trace; scale the generator) |
    | mean_rate_per_s, burstiness, diurnal_amplitude, episode_days, token_trace | | 5.5, 0.3, 0.5, 1.0, "azure-conv" | synthetic knobs (see ``SyntheticParams``) |
    | start_hour, start_weekday | float, int | None | local time at t=0 (Azure traces: 18:17 Thursday; else 0:00 Monday) |
    | interval_s | float | 60 | decision interval, seconds |
    | history | int | 12 | intervals in the observation window |
    | model, hardware, gpus_per_replica | str, str, int | "llama2-70b", "a100-80gb", 8 | perf-profile row (gpus_per_replica = tensor parallel degree) |
    | max_batch | int | 32 | sequences decoded together on a replica |
    | cold_start_s | float | 120 | launch-to-ready time of a replica |
    | min_replicas, max_replicas | int | 1, 32 | fleet bounds |
    | initial_replicas | int or None | None | fleet at reset |
    | slo_ttft_s | float | 2.0 | TTFT SLO (a 8k-token prompt prefills in 1.55 s on the default replica) |
    | sla_target | float | 0.99 | fraction of requests within the SLO that counts as "meeting the SLA" (metric ``sla_met``) |
    | drop_after_s | float | 300 | requests queued longer are dropped |
    | deltas | tuple[int] | (-4,-2,-1,0,1,2,4) | replica changes of the actions |
    | gpu_hour_usd, sla_penalty_usd, switch_cost_usd | float | 3.0, 0.02, 0.05 | reward terms |
    | reward_scale_usd | float | 1.0 | dollars per unit of reward |

    ``gym.make("schedgym/GPUAutoscaling-v0", workload="azure-conv", rate_scale=4.0, max_replicas=48)``

    ## Info / Metrics

    Every step: ``ready``, ``pending``, ``billed``, ``requests``, ``violations``, ``dropped``, ``utilisation``,
    ``queue``, ``cost_usd`` (this interval). At the episode end ``info["metrics"]``: ``gpu_hours``,
    ``cost_usd`` (GPU cost), ``sla_attainment``, ``sla_met`` (1.0 if attainment >= sla_target), ``ttft_p50``,
    ``ttft_p99`` (seconds, over started requests), ``mean_utilisation``, ``scaling_actions``, ``dropped``,
    ``requests``, ``penalty_usd``.

    ## Version History

    - v0: initial version.
    """

    def __init__(
        self,
        workload: str = "synthetic",
        *,
        trace_columns: dict[str, str] | None = None,
        trace_time_unit: str = "datetime",
        rate_scale: float = 1.0,
        mean_rate_per_s: float = 5.5,
        burstiness: float = 0.3,
        diurnal_amplitude: float = 0.5,
        episode_days: float = 1.0,
        token_trace: str = "azure-conv",
        start_hour: float | None = None,
        start_weekday: int | None = None,
        interval_s: float = 60.0,
        history: int = 12,
        model: str = "llama2-70b",
        hardware: str = "a100-80gb",
        gpus_per_replica: int = 8,
        max_batch: int = 32,
        cold_start_s: float = 120.0,
        min_replicas: int = 1,
        max_replicas: int = 32,
        initial_replicas: int | None = None,
        slo_ttft_s: float = 2.0,
        sla_target: float = 0.99,
        drop_after_s: float = 300.0,
        deltas: tuple[int, ...] | list[int] = DEFAULT_DELTAS,
        gpu_hour_usd: float = 3.0,
        sla_penalty_usd: float = 0.02,
        switch_cost_usd: float = 0.05,
        reward_scale_usd: float = 1.0,
        invalid_action_penalty: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(invalid_action_penalty=invalid_action_penalty, render_mode=render_mode)
        check_workload(workload, generated=("synthetic",))
        self.workload_name = workload
        self.rate_scale = check_float("rate_scale", rate_scale, low=0.0, low_inclusive=False, high=1000.0)
        self.interval_s = check_float("interval_s", interval_s, low=1.0, high=86400.0)
        self.history = check_int("history", history, low=1, high=1440)
        self.max_batch = check_int("max_batch", max_batch, low=1, high=1024)
        self.cold_start_s = check_float("cold_start_s", cold_start_s, low=0.0, high=86400.0)
        self.max_replicas = check_int("max_replicas", max_replicas, low=1, high=100000)
        self.min_replicas = check_int("min_replicas", min_replicas, low=0, high=self.max_replicas)
        self.initial_replicas = (
            None
            if initial_replicas is None
            else check_int("initial_replicas", initial_replicas, low=self.min_replicas, high=self.max_replicas)
        )
        self.slo_ttft_s = check_float("slo_ttft_s", slo_ttft_s, low=0.0, low_inclusive=False)
        self.sla_target = check_float("sla_target", sla_target, low=0.0, high=1.0)
        self.drop_after_s = check_float("drop_after_s", drop_after_s, low=0.0, low_inclusive=False)
        self.gpu_hour_usd = check_float("gpu_hour_usd", gpu_hour_usd, low=0.0)
        self.sla_penalty_usd = check_float("sla_penalty_usd", sla_penalty_usd, low=0.0)
        self.switch_cost_usd = check_float("switch_cost_usd", switch_cost_usd, low=0.0)
        self.reward_scale_usd = check_float("reward_scale_usd", reward_scale_usd, low=0.0, low_inclusive=False)
        try:
            deltas_t = tuple(int(d) for d in deltas)
        except (TypeError, ValueError):
            raise ValueError(f"deltas must be a sequence of integers containing 0, got {deltas!r}") from None
        if 0 not in deltas_t or len(set(deltas_t)) != len(deltas_t) or any(float(d) != d for d in deltas):
            raise ValueError(f"deltas must be distinct integers including 0, got {deltas!r}")
        self.deltas = np.asarray(deltas_t, dtype=np.int64)
        self._noop_action = int(np.flatnonzero(self.deltas == 0)[0])

        profiles = available_profiles()
        check_choice("model", model, sorted({p[0] for p in profiles}))
        check_choice("hardware", hardware, sorted({p[1] for p in profiles if p[0] == model}))
        tps = sorted({p[2] for p in profiles if p[0] == model and p[1] == hardware})
        self.gpus_per_replica = check_int("gpus_per_replica", gpus_per_replica)
        check_choice("gpus_per_replica", self.gpus_per_replica, tps)
        self.profile = load_perf_profile(model, hardware, self.gpus_per_replica)

        if workload == "synthetic":
            self.synthetic = SyntheticParams(
                mean_rate_per_s=check_float("mean_rate_per_s", mean_rate_per_s, low=0.0, low_inclusive=False)
                * self.rate_scale,
                burstiness=check_float("burstiness", burstiness, low=0.0, high=1.0),
                diurnal_amplitude=check_float("diurnal_amplitude", diurnal_amplitude, low=0.0, high=1.0),
                episode_days=check_float("episode_days", episode_days, low=1.0 / 1440.0, high=366.0),
                start_hour=0.0 if start_hour is None else check_float("start_hour", start_hour, low=0.0, high=24.0),
                start_weekday=0 if start_weekday is None else check_int("start_weekday", start_weekday, low=0, high=6),
                token_trace=check_choice("token_trace", token_trace, sorted(AZURE_TRACES)),
            )
            self._trace = load_azure_trace(self.synthetic.token_trace)  # token pool: normalisation stats
            self._horizon_s = math.ceil(self.synthetic.episode_days * 86400.0 / self.interval_s) * self.interval_s
        else:
            self.synthetic = None
            check_choice("trace_time_unit", trace_time_unit, ["s", "ms", "datetime"])
            self._trace = load_workload_trace(workload, trace_columns, trace_time_unit)
            self._horizon_s = max(1, math.ceil((self._trace.duration_s + 1e-9) / self.interval_s)) * self.interval_s
            default_start = AZURE_START.get(workload, (0.0, 0))
            self._start_hour = (
                default_start[0] if start_hour is None else check_float("start_hour", start_hour, low=0.0, high=24.0)
            )
            self._start_weekday = (
                default_start[1]
                if start_weekday is None
                else check_int("start_weekday", start_weekday, low=0, high=6)
            )
        self.n_steps = int(round(self._horizon_s / self.interval_s))
        # Normalisation constants from the (unscaled) trace or token pool: fixed per env, not per episode.
        base = make_workload(self._trace, self.profile, self.max_batch, interval_s=self.interval_s)
        self.mean_work_s = float(np.mean(base.work_s))
        self.mean_tokens = float(np.mean(base.prompt_tokens + base.output_tokens))
        self.mean_prompt_tokens = float(np.mean(base.prompt_tokens))
        self.mean_output_tokens = float(np.mean(base.output_tokens))
        #: Requests/s one replica serves at 100 % utilisation on this workload's mix.
        self.service_rate_per_replica = 1.0 / self.mean_work_s
        self.replica_cost_per_interval_usd = self.gpu_hour_usd * self.gpus_per_replica * self.interval_s / 3600.0

        n_obs = self.history * len(INDICATORS) + _N_EXTRA
        low = np.zeros(n_obs, dtype=np.float32)
        high = np.full(n_obs, _OBS_CLIP, dtype=np.float32)
        per = np.arange(self.history) * len(INDICATORS)
        for col in (3, 8):  # utilisation and attainment are fractions
            high[per + col] = 1.0
        high[-5:] = 1.0
        low[-3:-1] = -1.0
        self.observation_space = gym.spaces.Box(low=low, high=high, dtype=np.float32)
        self.action_space = gym.spaces.Discrete(len(self.deltas))

    # ------------------------------------------------------------------ episode construction
    def _make_episode_workload(self) -> Workload:
        if self.synthetic is not None:
            trace = generate_synthetic(self.synthetic, self.np_random)
            return make_workload(
                trace,
                self.profile,
                self.max_batch,
                interval_s=self.interval_s,
                horizon_s=self._horizon_s,
                start_hour=self.synthetic.start_hour,
                start_weekday=self.synthetic.start_weekday,
            )
        trace = scaled_trace(self._trace, self.rate_scale, self.np_random)
        return make_workload(
            trace,
            self.profile,
            self.max_batch,
            interval_s=self.interval_s,
            horizon_s=self._horizon_s,
            start_hour=self._start_hour,
            start_weekday=self._start_weekday,
        )

    def _reset(self, options: dict[str, Any] | None) -> None:
        wl = self._make_episode_workload()
        if self.initial_replicas is not None:
            initial = self.initial_replicas
        else:
            mean_demand = float(np.sum(wl.work_s)) / wl.horizon_s  # replicas busy on average
            initial = int(np.clip(math.ceil(mean_demand / 0.7), self.min_replicas, self.max_replicas))
        n = self.n_steps
        self.state = AutoscalingState(
            workload=wl,
            step=0,
            next_arrival=0,
            queue_idx=np.empty(0, dtype=np.int64),
            carry_work_s=0.0,
            inflight_idx=np.empty(0, dtype=np.int64),
            inflight_end_s=np.empty(0, dtype=np.float64),
            ready=initial,
            pending_ready_s=np.empty(0, dtype=np.float64),
            history=np.zeros((self.history, len(INDICATORS)), dtype=np.float32),
            ttft_s=np.full(len(wl), np.nan, dtype=np.float32),
            log_requests=np.zeros(n),
            log_work_s=np.zeros(n),
            log_prompt_tokens=np.zeros(n),
            log_output_tokens=np.zeros(n),
            log_capacity_s=np.zeros(n),
            log_busy_s=np.zeros(n),
            log_billed=np.zeros(n, dtype=np.int64),
            log_ready_start=np.zeros(n, dtype=np.int64),
            log_queue=np.zeros(n),
            log_inflight=np.zeros(n),
            log_met=np.zeros(n),
            log_violated=np.zeros(n),
            log_dropped=np.zeros(n),
            log_delta=np.zeros(n, dtype=np.int64),
            scaling_actions=0,
            gpu_hours=0.0,
            penalty_usd=0.0,
            switch_usd=0.0,
        )

    # ------------------------------------------------------------------ fleet helpers
    @property
    def billed(self) -> int:
        """Replicas paid for: ready + cold-starting."""
        return int(self.state.ready + self.state.pending_ready_s.size)

    @property
    def now_s(self) -> float:
        return self.state.step * self.interval_s

    def _action_mask(self) -> np.ndarray:
        target = self.billed + self.deltas
        return (target >= self.min_replicas) & (target <= self.max_replicas)

    def _default_action(self) -> int:
        return self._noop_action

    def _scale(self, delta: int, t0: float) -> None:
        s = self.state
        if delta > 0:
            s.pending_ready_s = np.concatenate((s.pending_ready_s, np.full(delta, t0 + self.cold_start_s)))
        elif delta < 0:
            remove = -delta
            cancel = min(remove, s.pending_ready_s.size)  # cancel the latest launches first (no sunk cold start)
            if cancel:
                s.pending_ready_s = s.pending_ready_s[: s.pending_ready_s.size - cancel]
            s.ready -= remove - cancel
        arrived = s.pending_ready_s <= t0
        if arrived.any():
            s.ready += int(arrived.sum())
            s.pending_ready_s = s.pending_ready_s[~arrived]

    # ------------------------------------------------------------------ dynamics
    def _apply(self, action: int) -> tuple[float, bool, bool, dict[str, Any]]:
        s = self.state
        wl = s.workload
        t = s.step
        t0, t1 = t * self.interval_s, (t + 1) * self.interval_s
        delta = int(self.deltas[action])
        self._scale(delta, t0)
        billed = self.billed
        ready_start = s.ready

        end = int(np.searchsorted(wl.arrival_s, t1, side="left"))
        new_idx = np.arange(s.next_arrival, end, dtype=np.int64)
        res = serve_interval(
            wl, s.queue_idx, new_idx, s.carry_work_s, t0, t1, s.ready, s.pending_ready_s, self.drop_after_s
        )
        s.next_arrival = end
        s.queue_idx = res.queue_idx
        s.carry_work_s = res.carry_work_s
        s.ttft_s[res.started_idx] = res.ttft_s
        s.ttft_s[res.dropped_idx] = np.inf
        joined = s.pending_ready_s < t1
        s.ready += int(joined.sum())
        s.pending_ready_s = s.pending_ready_s[~joined]

        # Running requests at t1 (tokens in flight = KV-cache pressure).
        inflight_idx = np.concatenate((s.inflight_idx, res.started_idx))
        inflight_end = np.concatenate((s.inflight_end_s, res.start_s + wl.latency_s[res.started_idx]))
        running = inflight_end > t1
        s.inflight_idx, s.inflight_end_s = inflight_idx[running], inflight_end[running]

        met = int(np.count_nonzero(res.ttft_s <= self.slo_ttft_s))
        violated = int(res.ttft_s.size - met + res.dropped_idx.size)
        gpu_hours = self.gpus_per_replica * billed * self.interval_s / 3600.0
        gpu_usd = gpu_hours * self.gpu_hour_usd
        penalty = self.sla_penalty_usd * violated
        switch = self.switch_cost_usd * abs(delta)
        s.gpu_hours += gpu_hours
        s.penalty_usd += penalty
        s.switch_usd += switch
        s.scaling_actions += int(delta != 0)

        s.log_requests[t] = new_idx.size
        s.log_work_s[t] = float(wl.work_s[new_idx].sum())
        s.log_prompt_tokens[t] = float(wl.prompt_tokens[new_idx].sum())
        s.log_output_tokens[t] = float(wl.output_tokens[new_idx].sum())
        s.log_capacity_s[t] = res.capacity_s
        s.log_busy_s[t] = res.busy_s
        s.log_billed[t] = billed
        s.log_ready_start[t] = ready_start
        s.log_queue[t] = s.queue_idx.size
        s.log_inflight[t] = s.inflight_idx.size
        s.log_met[t] = met
        s.log_violated[t] = violated
        s.log_dropped[t] = res.dropped_idx.size
        s.log_delta[t] = delta
        self._push_indicators(t, res, met, violated)
        s.step += 1

        reward = -(gpu_usd + penalty + switch) / self.reward_scale_usd
        truncated = s.step >= self.n_steps
        info = {
            "ready": int(s.ready),
            "pending": int(s.pending_ready_s.size),
            "billed": billed,
            "requests": int(new_idx.size),
            "violations": violated,
            "dropped": int(res.dropped_idx.size),
            "utilisation": res.busy_s / res.capacity_s if res.capacity_s > 0 else 0.0,
            "queue": int(s.queue_idx.size),
            "cost_usd": gpu_usd,
        }
        return float(reward), False, bool(truncated), info

    def _push_indicators(self, t: int, res: IntervalResult, met: int, violated: int) -> None:
        s = self.state
        wl = s.workload
        per_replica_rate = self.service_rate_per_replica * self.max_replicas  # requests/s of the max fleet
        ttft = res.ttft_s
        p50, p95 = _quantiles(ttft, (0.5, 0.95)) / self.slo_ttft_s if ttft.size else (0.0, 0.0)
        tokens_in_flight = float(np.sum(wl.prompt_tokens[s.inflight_idx] + wl.output_tokens[s.inflight_idx]))
        row = np.array(
            [
                s.log_requests[t] / self.interval_s / per_replica_rate,
                s.log_prompt_tokens[t] / self.interval_s / (per_replica_rate * self.mean_prompt_tokens),
                s.log_output_tokens[t] / self.interval_s / (per_replica_rate * self.mean_output_tokens),
                res.busy_s / res.capacity_s if res.capacity_s > 0 else 0.0,
                tokens_in_flight / (max(s.ready, 1) * self.max_batch * self.mean_tokens),
                s.queue_idx.size / (per_replica_rate * self.interval_s),
                p50,
                p95,
                met / (met + violated) if met + violated else 1.0,
            ],
            dtype=np.float64,
        )
        s.history[:-1] = s.history[1:]
        s.history[-1] = np.clip(row, 0.0, _OBS_CLIP)

    def _observe(self) -> np.ndarray:
        s = self.state
        hours = s.workload.start_hour + self.now_s / 3600.0
        angle = 2.0 * np.pi * (hours % 24.0) / 24.0
        weekday = (s.workload.start_weekday + int(hours // 24.0)) % 7
        extra = np.array(
            [
                s.ready / self.max_replicas,
                s.pending_ready_s.size / self.max_replicas,
                np.sin(angle),
                np.cos(angle),
                weekday / 6.0,
            ],
            dtype=np.float32,
        )
        obs = np.concatenate((s.history.reshape(-1), extra))
        return np.clip(obs, self.observation_space.low, self.observation_space.high).astype(np.float32)

    # ------------------------------------------------------------------ metrics
    def metrics(self) -> dict[str, float]:
        s = self.state
        wl = s.workload
        n = s.step
        met = float(s.log_met[:n].sum())
        violated = float(s.log_violated[:n].sum())
        # Requests still queued: certain violations if they already waited past the SLO.
        waited = self.now_s - wl.arrival_s[s.queue_idx] + wl.prefill_s[s.queue_idx]
        violated += float(np.count_nonzero(waited > self.slo_ttft_s))
        resolved = met + violated
        attainment = met / resolved if resolved else 1.0
        ttft = s.ttft_s[np.isfinite(s.ttft_s)]
        capacity = float(s.log_capacity_s[:n].sum())
        return {
            "gpu_hours": float(s.gpu_hours),
            "cost_usd": float(s.gpu_hours * self.gpu_hour_usd),
            "sla_attainment": float(attainment),
            "sla_met": float(attainment >= self.sla_target),
            "ttft_p50": float(np.percentile(ttft, 50.0)) if ttft.size else 0.0,
            "ttft_p99": float(np.percentile(ttft, 99.0)) if ttft.size else 0.0,
            "mean_utilisation": float(s.log_busy_s[:n].sum() / capacity) if capacity > 0 else 0.0,
            "scaling_actions": float(s.scaling_actions),
            "dropped": float(s.log_dropped[:n].sum()),
            "requests": float(s.log_requests[:n].sum()),
            "penalty_usd": float(s.penalty_usd),
        }

    # ------------------------------------------------------------------ rendering
    def _render_rgb(self) -> np.ndarray:
        from schedgym.envs.gpu_autoscaling.render import render_rgb

        return render_rgb(self)

    def _render_ansi(self) -> str:
        from schedgym.envs.gpu_autoscaling.render import render_ansi

        return render_ansi(self)
